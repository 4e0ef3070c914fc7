#pragma once
// A small PDF 1.4 writer for reports: pages of text in the standard Type 1 fonts (Helvetica,
// Helvetica-Bold, Courier; no embedding, WinAnsiEncoding), lines, filled rectangles and whole
// report::Drawing charts as vector graphics. No compression, no images, no Qt.
//
// File layout written by finish():
//   %PDF-1.4, then objects  1 Catalog → 2 Pages (Kids = the page objects)
//                           3 Helvetica, 4 Helvetica-Bold, 5 Courier (Font, Type1, WinAnsiEncoding)
//                           6 Info (Title, Producer, CreationDate)
//                           7, 8, … one Page object and its content stream per page
//   then the cross-reference table (byte offsets of every object), trailer, startxref, %%EOF.
// Coordinates given to this class are points from the page's *top left*, y downwards (as in
// Drawing); they are flipped to PDF's bottom-left user space when written. Text is UTF-8 and
// is converted to WinAnsi (Latin-1 plus the typographic quotes, dashes and ellipsis); other
// characters become '?'. Text extraction (pdftotext) gives the text back.
//
//   PdfWriter pdf;             // A4 portrait
//   pdf.newPage();
//   pdf.text(72, 72, "Hello", 12, PdfWriter::Font::Bold);
//   writeFileAtomically("out.pdf", pdf.finish("Title"));

#include "report/drawing.h"

#include <string>
#include <vector>

namespace sparselab::report {

class PdfWriter {
public:
    enum class Font { Regular, Bold, Mono };

    explicit PdfWriter(double pageWidth = 595.28, double pageHeight = 841.89); // A4 in points
    [[nodiscard]] double pageWidth() const { return m_width; }
    [[nodiscard]] double pageHeight() const { return m_height; }

    void newPage();                               // starts a page; drawing calls go to it
    [[nodiscard]] int pageCount() const { return int(m_pages.size()); }

    // Text with its baseline at (x, y) from the top left. std::logic_error before newPage().
    void text(double x, double y, const std::string& utf8, double size, Font font = Font::Regular,
              const Color& color = {});
    void line(double x1, double y1, double x2, double y2, double width = 0.5, const Color& color = {});
    void fillRect(double x, double y, double w, double h, const Color& fill);
    // A chart at (x, y) (its top left), scaled by `scale`.
    void drawing(const Drawing& d, double x, double y, double scale = 1.0);

    // Width in points of `utf8` in `font` at `size` (the AFM widths of the standard fonts).
    [[nodiscard]] static double width(const std::string& utf8, double size, Font font = Font::Regular);
    // UTF-8 → WinAnsi bytes.
    [[nodiscard]] static std::string toWinAnsi(const std::string& utf8);

    // The complete file.
    [[nodiscard]] std::string finish(const std::string& title) const;

private:
    std::string& page();
    double m_width, m_height;
    std::vector<std::string> m_pages; // content streams
};

} // namespace sparselab::report

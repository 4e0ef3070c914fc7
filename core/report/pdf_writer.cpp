#include "report/pdf_writer.h"

#include <cstdint>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <stdexcept>

namespace sparselab::report {

namespace {

std::string num(double v)
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.2f", v);
    return buffer;
}

std::string rgb(const Color& c, bool stroke)
{
    return num(c.r) + " " + num(c.g) + " " + num(c.b) + (stroke ? " RG\n" : " rg\n");
}

// A PDF literal string: ( ) \ escaped, bytes outside printable ASCII as octal escapes.
std::string literal(const std::string& bytes)
{
    std::string out = "(";
    for (unsigned char c : bytes) {
        if (c == '(' || c == ')' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 32 || c > 126) {
            char buffer[8];
            std::snprintf(buffer, sizeof buffer, "\\%03o", c);
            out += buffer;
        } else {
            out += char(c);
        }
    }
    return out + ")";
}

const char* fontName(PdfWriter::Font font)
{
    switch (font) {
    case PdfWriter::Font::Bold: return "/F2";
    case PdfWriter::Font::Mono: return "/F3";
    default: return "/F1";
    }
}

// Decodes one UTF-8 code point at s[i] (advancing i); invalid bytes give U+FFFD.
uint32_t nextCodePoint(const std::string& s, size_t& i)
{
    const auto c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (extra < 0) {
        ++i;
        return 0xFFFD;
    }
    uint32_t cp = extra == 0 ? c : c & (0x3F >> extra);
    ++i;
    for (int k = 0; k < extra; ++k, ++i) {
        if (i >= s.size() || (static_cast<unsigned char>(s[i]) >> 6) != 2)
            return 0xFFFD;
        cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
    }
    return cp;
}

} // namespace

PdfWriter::PdfWriter(double pageWidth, double pageHeight) : m_width(pageWidth), m_height(pageHeight) {}

void PdfWriter::newPage()
{
    m_pages.emplace_back();
}

std::string& PdfWriter::page()
{
    if (m_pages.empty())
        throw std::logic_error("PdfWriter: draw after newPage()");
    return m_pages.back();
}

std::string PdfWriter::toWinAnsi(const std::string& utf8)
{
    std::string out;
    for (size_t i = 0; i < utf8.size();) {
        const uint32_t cp = nextCodePoint(utf8, i);
        if (cp == '\n' || cp == '\t')
            out += ' ';
        else if ((cp >= 32 && cp < 127) || (cp >= 0xA0 && cp <= 0xFF))
            out += char(cp);
        else if (cp == 0x2018)
            out += '\x91';
        else if (cp == 0x2019)
            out += '\x92';
        else if (cp == 0x201C)
            out += '\x93';
        else if (cp == 0x201D)
            out += '\x94';
        else if (cp == 0x2013)
            out += '\x96';
        else if (cp == 0x2014)
            out += '\x97';
        else if (cp == 0x2026)
            out += '\x85';
        else if (cp == 0x2022)
            out += '\x95';
        else if (cp >= 32)
            out += '?';
    }
    return out;
}

double PdfWriter::width(const std::string& utf8, double size, Font font)
{
    const std::string ansi = toWinAnsi(utf8);
    if (font == Font::Mono)
        return double(ansi.size()) * 0.6 * size;
    // Helvetica widths for ASCII (textWidth); Helvetica-Bold is ~5 % wider on average.
    std::string ascii;
    for (char c : ansi)
        ascii += (static_cast<unsigned char>(c) < 127) ? c : 'a';
    return textWidth(ascii, size) * (font == Font::Bold ? 1.05 : 1.0);
}

void PdfWriter::text(double x, double y, const std::string& utf8, double size, Font font, const Color& color)
{
    std::string& s = page();
    s += "BT\n" + rgb(color, false) + fontName(font) + " " + num(size) + " Tf\n" + num(x) + " " + num(m_height - y)
        + " Td\n" + literal(toWinAnsi(utf8)) + " Tj\nET\n";
}

void PdfWriter::line(double x1, double y1, double x2, double y2, double width, const Color& color)
{
    std::string& s = page();
    s += rgb(color, true) + num(width) + " w\n" + num(x1) + " " + num(m_height - y1) + " m " + num(x2) + " "
        + num(m_height - y2) + " l S\n";
}

void PdfWriter::fillRect(double x, double y, double w, double h, const Color& fill)
{
    std::string& s = page();
    s += rgb(fill, false) + num(x) + " " + num(m_height - y - h) + " " + num(w) + " " + num(h) + " re f\n";
}

void PdfWriter::drawing(const Drawing& d, double x, double y, double scale)
{
    std::string& s = page();
    auto X = [&](double v) { return num(x + v * scale); };
    auto Y = [&](double v) { return num(m_height - (y + v * scale)); };
    s += "q\n";
    for (const auto& r : d.rects) {
        if (r.filled)
            s += rgb(r.fill, false) + X(r.x) + " " + Y(r.y + r.h) + " " + num(r.w * scale) + " " + num(r.h * scale) + " re f\n";
        if (r.stroked)
            s += rgb(r.stroke, true) + "0.5 w " + X(r.x) + " " + Y(r.y + r.h) + " " + num(r.w * scale) + " "
                + num(r.h * scale) + " re S\n";
    }
    for (const auto& l : d.lines) {
        if (l.width <= 0)
            continue;
        s += rgb(l.color, true) + num(l.width * scale) + " w " + (l.dashed ? "[3 2] 0 d " : "[] 0 d ") + X(l.x1) + " "
            + Y(l.y1) + " m " + X(l.x2) + " " + Y(l.y2) + " l S\n";
    }
    s += "[] 0 d\n";
    for (const auto& p : d.polylines) {
        if (p.points.size() < 2)
            continue;
        s += rgb(p.color, true) + num(p.width * scale) + " w " + X(p.points[0].first) + " " + Y(p.points[0].second) + " m";
        for (size_t i = 1; i < p.points.size(); ++i)
            s += " " + X(p.points[i].first) + " " + Y(p.points[i].second) + " l";
        s += " S\n";
    }
    for (const auto& m : d.markers) {
        const std::string box = X(m.x - m.size / 2) + " " + Y(m.y + m.size / 2) + " " + num(m.size * scale) + " "
            + num(m.size * scale) + " re";
        if (m.hollow)
            s += "1 1 1 rg " + box + " f " + rgb(m.color, true) + "1 w " + box + " S\n";
        else
            s += rgb(m.color, false) + box + " f\n";
    }
    for (const auto& t : d.texts) {
        const double size = t.size * scale;
        const double w = width(t.text, size);
        const double shift = t.anchor == Drawing::Anchor::Start ? 0 : t.anchor == Drawing::Anchor::Middle ? w / 2 : w;
        s += "BT\n" + rgb(t.color, false) + "/F1 " + num(size) + " Tf\n";
        if (t.vertical) // rotated 90° counter-clockwise about the anchor point
            s += "0 1 -1 0 " + X(t.x) + " " + num(m_height - (y + t.y * scale) - shift) + " Tm\n";
        else
            s += "1 0 0 1 " + num(x + t.x * scale - shift) + " " + Y(t.y) + " Tm\n";
        s += literal(toWinAnsi(t.text)) + " Tj\nET\n";
    }
    s += "Q\n";
}

std::string PdfWriter::finish(const std::string& title) const
{
    std::vector<std::string> objects; // object k+1 = objects[k], without "N 0 obj"/"endobj"
    const size_t pages = std::max<size_t>(1, m_pages.size());
    std::string kids;
    for (size_t p = 0; p < pages; ++p)
        kids += std::to_string(7 + 2 * p) + " 0 R ";
    objects.push_back("<< /Type /Catalog /Pages 2 0 R >>");
    objects.push_back("<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(pages) + " >>");
    for (const char* base : {"Helvetica", "Helvetica-Bold", "Courier"})
        objects.push_back(std::string("<< /Type /Font /Subtype /Type1 /BaseFont /") + base
                          + " /Encoding /WinAnsiEncoding >>");
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "D:%Y%m%d%H%M%SZ", std::gmtime(&now));
    objects.push_back("<< /Title " + literal(toWinAnsi(title)) + " /Producer (SparseLab " SPARSELAB_VERSION
                      ") /CreationDate (" + date + ") >>");
    for (size_t p = 0; p < pages; ++p) {
        const std::string content = p < m_pages.size() ? m_pages[p] : std::string();
        objects.push_back("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " + num(m_width) + " " + num(m_height)
                          + "] /Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> /Contents "
                          + std::to_string(8 + 2 * p) + " 0 R >>");
        objects.push_back("<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content + "\nendstream");
    }
    std::string out = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
    std::vector<size_t> offsets;
    for (size_t k = 0; k < objects.size(); ++k) {
        offsets.push_back(out.size());
        out += std::to_string(k + 1) + " 0 obj\n" + objects[k] + "\nendobj\n";
    }
    const size_t xref = out.size();
    out += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
    for (size_t offset : offsets) {
        char line[24];
        std::snprintf(line, sizeof line, "%010zu 00000 n \n", offset);
        out += line;
    }
    out += "trailer\n<< /Size " + std::to_string(objects.size() + 1) + " /Root 1 0 R /Info 6 0 R >>\nstartxref\n"
        + std::to_string(xref) + "\n%%EOF\n";
    return out;
}

} // namespace sparselab::report

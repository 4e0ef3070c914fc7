#pragma once
// Vector drawings for reports: a list of primitives (lines, polylines, rectangles, markers,
// text) in a box of width × height points, origin at the top left, y downwards. One drawing
// is rendered by two back ends: inline SVG for the HTML report (toSvg) and PDF content
// operators for the PDF report (PdfWriter::drawing). No LibTorch, no Qt.
//
// Charts (lineChart, barChart, heatMap) lay out axes, ticks, labels, legend and data as
// primitives; they take plain numbers, so they are shared by the CLI and any front end.

#include <string>
#include <utility>
#include <vector>

namespace sparselab::report {

struct Color {
    double r = 0, g = 0, b = 0; // each in [0, 1]
    [[nodiscard]] std::string hex() const; // "#rrggbb"
};

struct Drawing {
    enum class Anchor { Start, Middle, End };
    struct Line { double x1, y1, x2, y2; Color color; double width = 1.0; bool dashed = false; };
    struct Polyline { std::vector<std::pair<double, double>> points; Color color; double width = 1.5; };
    struct Rect { double x = 0, y = 0, w = 0, h = 0; Color fill{}; bool filled = true; Color stroke{}; bool stroked = false; };
    struct Marker { double x, y, size; Color color; bool hollow = false; }; // a square of side `size`
    struct Text { double x, y; std::string text; double size = 9; Anchor anchor = Anchor::Start;
                  bool vertical = false; Color color; }; // (x, y) = baseline point; vertical: rotated 90° ccw

    double width = 480, height = 300;
    std::vector<Rect> rects;       // drawn first
    std::vector<Line> lines;
    std::vector<Polyline> polylines;
    std::vector<Marker> markers;
    std::vector<Text> texts;       // drawn last
    std::string title;             // caption (not drawn; used as the SVG <title> and by front ends)
};

// Inline <svg> element (no xmlns, no external references), for HTML5 documents.
[[nodiscard]] std::string toSvg(const Drawing& drawing);

// Approximate width in points of `text` in Helvetica at `size` (the PDF standard font's AFM
// widths; characters outside ASCII count as an average glyph).
[[nodiscard]] double textWidth(const std::string& text, double size);

struct Series {
    std::string name;
    std::vector<double> x, y;
    bool line = true;     // connect the points (else markers only)
    bool markers = true;
    bool highlight = false; // drawn thicker, e.g. a Pareto frontier
};

struct Axes {
    std::string xLabel, yLabel;
    bool logY = false;
};

// A line/scatter chart with linear x, linear or log y, nice ticks and a legend.
[[nodiscard]] Drawing lineChart(const std::string& title, const std::vector<Series>& series, const Axes& axes,
                                double width = 480, double height = 300);

// Vertical bars, one per label (labels drawn vertically under the axis when many).
[[nodiscard]] Drawing barChart(const std::string& title, const std::vector<std::string>& labels,
                               const std::vector<double>& values, const Axes& axes, double width = 480,
                               double height = 300);

// Rows × columns of cells coloured by value (log scale when logScale and all values > 0),
// light (low) to dark (high); a colour bar with the range.
[[nodiscard]] Drawing heatMap(const std::string& title, const std::vector<std::string>& rowLabels,
                              const std::vector<std::string>& columnLabels,
                              const std::vector<std::vector<double>>& values, bool logScale, double width = 480);

// The palette series are drawn in (cycled).
[[nodiscard]] Color seriesColor(size_t index);

} // namespace sparselab::report

#include "report/drawing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace sparselab::report {

namespace {

// Helvetica advance widths (AFM, 1/1000 em) for ASCII 32..126.
constexpr int kHelvetica[95] = {
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '..'/'
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // '0'..'?'
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // '@'..'O'
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 'P'..'_'
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // '`'..'o'
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584};     // 'p'..'~'

std::string number(double v)
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.2f", v);
    std::string s = buffer;
    while (!s.empty() && s.back() == '0')
        s.pop_back();
    if (!s.empty() && s.back() == '.')
        s.pop_back();
    return s == "-0" ? "0" : s;
}

std::string escapeXml(const std::string& text)
{
    std::string out;
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string tickLabel(double v)
{
    char buffer[32];
    if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3))
        std::snprintf(buffer, sizeof buffer, "%.0e", v);
    else
        std::snprintf(buffer, sizeof buffer, "%g", v);
    return buffer;
}

// "Nice" ticks covering [lo, hi] (about `count` of them).
std::vector<double> niceTicks(double lo, double hi, int count)
{
    if (!(hi > lo))
        hi = lo + 1.0;
    const double raw = (hi - lo) / std::max(1, count);
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude;
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    std::vector<double> ticks;
    for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
        ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    return ticks;
}

const Color kBlack{0, 0, 0};
const Color kGrey{0.45, 0.45, 0.45};
const Color kGrid{0.88, 0.88, 0.88};

// Plot frame shared by the charts: margins, axis lines, labels.
struct Frame {
    double left = 58, top = 28, right = 12, bottom = 44;
    double x0() const { return left; }
    double y0(const Drawing& d) const { return d.height - bottom; }
    double plotWidth(const Drawing& d) const { return d.width - left - right; }
    double plotHeight(const Drawing& d) const { return d.height - top - bottom; }
};

void drawTitle(Drawing& d, const std::string& title)
{
    d.title = title;
    d.texts.push_back({d.width / 2, 16, title, 11, Drawing::Anchor::Middle, false, kBlack});
}

} // namespace

std::string Color::hex() const
{
    char buffer[8];
    auto channel = [](double v) { return int(std::lround(std::clamp(v, 0.0, 1.0) * 255)); };
    std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", channel(r), channel(g), channel(b));
    return buffer;
}

Color seriesColor(size_t index)
{
    static const Color palette[] = {{0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17}, {1.0, 0.5, 0.05},
                                    {0.58, 0.4, 0.74},  {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.5, 0.5, 0.5}};
    return palette[index % (sizeof palette / sizeof palette[0])];
}

double textWidth(const std::string& text, double size)
{
    double units = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 32 && c < 127) {
            units += kHelvetica[c - 32];
        } else if (c >= 0xC0 || c < 0x80) {
            units += 556; // a non-ASCII character (its UTF-8 lead byte) or a control
        }
    }
    return units * size / 1000.0;
}

std::string toSvg(const Drawing& d)
{
    std::ostringstream s;
    s << "<svg viewBox=\"0 0 " << number(d.width) << ' ' << number(d.height) << "\" width=\"" << number(d.width)
      << "\" height=\"" << number(d.height) << "\" role=\"img\" font-family=\"Helvetica, Arial, sans-serif\">";
    if (!d.title.empty())
        s << "<title>" << escapeXml(d.title) << "</title>";
    for (const auto& r : d.rects) {
        s << "<rect x=\"" << number(r.x) << "\" y=\"" << number(r.y) << "\" width=\"" << number(r.w) << "\" height=\""
          << number(r.h) << "\" fill=\"" << (r.filled ? r.fill.hex() : std::string("none")) << '"';
        if (r.stroked)
            s << " stroke=\"" << r.stroke.hex() << "\" stroke-width=\"0.5\"";
        s << "/>";
    }
    for (const auto& l : d.lines) {
        s << "<line x1=\"" << number(l.x1) << "\" y1=\"" << number(l.y1) << "\" x2=\"" << number(l.x2) << "\" y2=\""
          << number(l.y2) << "\" stroke=\"" << l.color.hex() << "\" stroke-width=\"" << number(l.width) << '"';
        if (l.dashed)
            s << " stroke-dasharray=\"3 2\"";
        s << "/>";
    }
    for (const auto& p : d.polylines) {
        s << "<polyline fill=\"none\" stroke=\"" << p.color.hex() << "\" stroke-width=\"" << number(p.width)
          << "\" points=\"";
        for (const auto& [x, y] : p.points)
            s << number(x) << ',' << number(y) << ' ';
        s << "\"/>";
    }
    for (const auto& m : d.markers) {
        s << "<rect x=\"" << number(m.x - m.size / 2) << "\" y=\"" << number(m.y - m.size / 2) << "\" width=\""
          << number(m.size) << "\" height=\"" << number(m.size) << '"';
        if (m.hollow)
            s << " fill=\"white\" stroke=\"" << m.color.hex() << "\" stroke-width=\"1\"";
        else
            s << " fill=\"" << m.color.hex() << '"';
        s << "/>";
    }
    for (const auto& t : d.texts) {
        const char* anchor = t.anchor == Drawing::Anchor::Start ? "start"
            : t.anchor == Drawing::Anchor::Middle                ? "middle"
                                                                 : "end";
        s << "<text x=\"" << number(t.x) << "\" y=\"" << number(t.y) << "\" font-size=\"" << number(t.size)
          << "\" text-anchor=\"" << anchor << "\" fill=\"" << t.color.hex() << '"';
        if (t.vertical)
            s << " transform=\"rotate(-90 " << number(t.x) << ' ' << number(t.y) << ")\"";
        s << '>' << escapeXml(t.text) << "</text>";
    }
    s << "</svg>";
    return s.str();
}

Drawing lineChart(const std::string& title, const std::vector<Series>& series, const Axes& axes, double width,
                  double height)
{
    Drawing d;
    d.width = width;
    d.height = height;
    drawTitle(d, title);
    Frame f;
    f.right = 130; // legend
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    for (const auto& s : series)
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (axes.logY && s.y[i] <= 0))
                continue;
            xmin = std::min(xmin, s.x[i]);
            xmax = std::max(xmax, s.x[i]);
            const double y = axes.logY ? std::log10(s.y[i]) : s.y[i];
            ymin = std::min(ymin, y);
            ymax = std::max(ymax, y);
        }
    if (!std::isfinite(xmin)) {
        xmin = 0;
        xmax = 1;
        ymin = 0;
        ymax = 1;
    }
    if (xmax == xmin) {
        xmin -= 0.5;
        xmax += 0.5;
    }
    if (ymax == ymin) {
        ymin -= 0.5;
        ymax += 0.5;
    }
    const double ypad = (ymax - ymin) * 0.05;
    ymin -= ypad;
    ymax += ypad;
    const double pw = f.plotWidth(d), ph = f.plotHeight(d), x0 = f.x0(), y0 = f.y0(d);
    auto px = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * pw; };
    auto py = [&](double y) { return y0 - ((axes.logY ? std::log10(y) : y) - ymin) / (ymax - ymin) * ph; };

    for (double t : niceTicks(xmin, xmax, 6)) {
        d.lines.push_back({px(t), y0, px(t), y0 - ph, kGrid, 0.5});
        d.texts.push_back({px(t), y0 + 12, tickLabel(t), 8, Drawing::Anchor::Middle, false, kGrey});
    }
    if (axes.logY) {
        for (int e = int(std::floor(ymin)); e <= int(std::ceil(ymax)); ++e)
            for (int m : {1, 2, 5}) {
                const double v = m * std::pow(10.0, e);
                const double lv = std::log10(v);
                if (lv < ymin || lv > ymax)
                    continue;
                d.lines.push_back({x0, py(v), x0 + pw, py(v), kGrid, 0.5});
                d.texts.push_back({x0 - 4, py(v) + 3, tickLabel(v), 8, Drawing::Anchor::End, false, kGrey});
            }
    } else {
        for (double t : niceTicks(ymin, ymax, 5)) {
            d.lines.push_back({x0, py(t), x0 + pw, py(t), kGrid, 0.5});
            d.texts.push_back({x0 - 4, py(t) + 3, tickLabel(t), 8, Drawing::Anchor::End, false, kGrey});
        }
    }
    d.lines.push_back({x0, y0, x0 + pw, y0, kBlack, 1});
    d.lines.push_back({x0, y0, x0, y0 - ph, kBlack, 1});
    d.texts.push_back({x0 + pw / 2, d.height - 8, axes.xLabel, 9, Drawing::Anchor::Middle, false, kBlack});
    d.texts.push_back({14, y0 - ph / 2, axes.yLabel + (axes.logY ? " (log)" : ""), 9, Drawing::Anchor::Middle, true, kBlack});

    for (size_t k = 0; k < series.size(); ++k) {
        const auto& s = series[k];
        const Color c = s.highlight ? Color{0.1, 0.1, 0.1} : seriesColor(k);
        Drawing::Polyline poly{{}, c, s.highlight ? 2.0 : 1.5};
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (axes.logY && s.y[i] <= 0))
                continue;
            poly.points.emplace_back(px(s.x[i]), py(s.y[i]));
            if (s.markers)
                d.markers.push_back({px(s.x[i]), py(s.y[i]), s.highlight ? 7.0 : 4.5, c, s.highlight});
        }
        if (s.line && poly.points.size() > 1)
            d.polylines.push_back(poly);
        const double ly = f.top + 10 + 14 * double(k);
        d.lines.push_back({x0 + pw + 10, ly - 3, x0 + pw + 26, ly - 3, c, s.line ? 2.0 : 0.0});
        d.markers.push_back({x0 + pw + 18, ly - 3, 4.5, c, s.highlight});
        d.texts.push_back({x0 + pw + 30, ly, s.name, 8, Drawing::Anchor::Start, false, kBlack});
    }
    return d;
}

Drawing barChart(const std::string& title, const std::vector<std::string>& labels, const std::vector<double>& values,
                 const Axes& axes, double width, double height)
{
    Drawing d;
    d.width = width;
    d.height = height;
    drawTitle(d, title);
    Frame f;
    double longest = 0;
    for (const auto& l : labels)
        longest = std::max(longest, textWidth(l, 7));
    const bool verticalLabels = labels.size() > 8;
    f.bottom = verticalLabels ? std::min(height * 0.45, longest + 24) : 44;
    double vmin = std::numeric_limits<double>::infinity(), vmax = -vmin;
    for (double v : values)
        if (std::isfinite(v) && (!axes.logY || v > 0)) {
            const double t = axes.logY ? std::log10(v) : v;
            vmin = std::min(vmin, t);
            vmax = std::max(vmax, t);
        }
    if (!std::isfinite(vmin)) {
        vmin = 0;
        vmax = 1;
    }
    if (!axes.logY)
        vmin = std::min(0.0, vmin);
    else
        vmin = std::floor(vmin);
    if (vmax == vmin)
        vmax = vmin + 1;
    const double pw = f.plotWidth(d), ph = f.plotHeight(d), x0 = f.x0(), y0 = f.y0(d);
    auto py = [&](double v) { return y0 - ((axes.logY ? std::log10(v) : v) - vmin) / (vmax - vmin) * ph; };
    if (axes.logY) {
        for (int e = int(vmin); e <= int(std::ceil(vmax)); ++e) {
            const double v = std::pow(10.0, e);
            if (std::log10(v) > vmax + 1e-9)
                break;
            d.lines.push_back({x0, py(v), x0 + pw, py(v), kGrid, 0.5});
            d.texts.push_back({x0 - 4, py(v) + 3, tickLabel(v), 8, Drawing::Anchor::End, false, kGrey});
        }
    } else {
        for (double t : niceTicks(vmin, vmax, 5)) {
            d.lines.push_back({x0, py(t), x0 + pw, py(t), kGrid, 0.5});
            d.texts.push_back({x0 - 4, py(t) + 3, tickLabel(t), 8, Drawing::Anchor::End, false, kGrey});
        }
    }
    const double slot = labels.empty() ? pw : pw / double(labels.size());
    for (size_t i = 0; i < labels.size() && i < values.size(); ++i) {
        const double v = values[i];
        const double cx = x0 + slot * (double(i) + 0.5);
        if (std::isfinite(v) && (!axes.logY || v > 0)) {
            const double top = py(v);
            d.rects.push_back({cx - slot * 0.35, top, slot * 0.7, y0 - top, seriesColor(0)});
        }
        if (verticalLabels)
            d.texts.push_back({cx + 2.5, y0 + 4, labels[i], 7, Drawing::Anchor::End, true, kBlack});
        else
            d.texts.push_back({cx, y0 + 12, labels[i], 8, Drawing::Anchor::Middle, false, kBlack});
    }
    d.lines.push_back({x0, y0, x0 + pw, y0, kBlack, 1});
    d.lines.push_back({x0, y0, x0, y0 - ph, kBlack, 1});
    d.texts.push_back({14, y0 - ph / 2, axes.yLabel + (axes.logY ? " (log)" : ""), 9, Drawing::Anchor::Middle, true, kBlack});
    if (!axes.xLabel.empty() && !verticalLabels)
        d.texts.push_back({x0 + pw / 2, d.height - 8, axes.xLabel, 9, Drawing::Anchor::Middle, false, kBlack});
    return d;
}

Drawing heatMap(const std::string& title, const std::vector<std::string>& rowLabels,
                const std::vector<std::string>& columnLabels, const std::vector<std::vector<double>>& values,
                bool logScale, double width)
{
    Drawing d;
    d.width = width;
    drawTitle(d, title);
    double labelWidth = 0;
    for (const auto& l : rowLabels)
        labelWidth = std::max(labelWidth, textWidth(l, 6.5));
    // Column labels run vertically when they would not fit side by side.
    double columnLabelWidth = 0;
    for (const auto& l : columnLabels)
        columnLabelWidth = std::max(columnLabelWidth, textWidth(l, 7));
    const double left = std::min(width * 0.5, labelWidth + 8), right = 60;
    const bool verticalColumns = !columnLabels.empty()
        && columnLabelWidth + 2 > (width - left - right) / double(columnLabels.size());
    const double top = verticalColumns ? 30 + columnLabelWidth : 40;
    const double cellH = 9;
    d.height = top + cellH * double(rowLabels.size()) + 20;
    const double cellW = columnLabels.empty() ? 0 : (width - left - right) / double(columnLabels.size());
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    bool allPositive = true;
    for (const auto& row : values)
        for (double v : row)
            if (std::isfinite(v)) {
                allPositive = allPositive && v > 0;
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
    const bool useLog = logScale && allPositive && std::isfinite(lo);
    auto t = [&](double v) {
        if (!std::isfinite(v) || !std::isfinite(lo) || hi == lo)
            return 0.0;
        return useLog ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    };
    // Light yellow (low) → dark red (high).
    auto colour = [](double u) {
        u = std::clamp(u, 0.0, 1.0);
        return Color{1.0 - 0.45 * u, 0.97 - 0.9 * u, 0.8 - 0.75 * u};
    };
    for (size_t j = 0; j < columnLabels.size(); ++j)
        if (verticalColumns)
            d.texts.push_back({left + cellW * (double(j) + 0.5) + 2.5, top - 4, columnLabels[j], 7, Drawing::Anchor::Start,
                               true, kBlack});
        else
            d.texts.push_back({left + cellW * (double(j) + 0.5), top - 4, columnLabels[j], 7, Drawing::Anchor::Middle,
                               false, kBlack});
    for (size_t i = 0; i < rowLabels.size(); ++i) {
        const double y = top + cellH * double(i);
        d.texts.push_back({left - 4, y + cellH - 2, rowLabels[i], 6.5, Drawing::Anchor::End, false, kBlack});
        for (size_t j = 0; j < columnLabels.size(); ++j) {
            const double v = i < values.size() && j < values[i].size() ? values[i][j]
                                                                     : std::numeric_limits<double>::quiet_NaN();
            d.rects.push_back({left + cellW * double(j), y, cellW, cellH,
                               std::isfinite(v) ? colour(t(v)) : Color{1, 1, 1}, true, Color{1, 1, 1}, true});
        }
    }
    // Colour bar.
    const double bx = width - right + 14, bh = std::max(40.0, cellH * double(rowLabels.size()));
    for (int k = 0; k < 20; ++k)
        d.rects.push_back({bx, top + bh * (1.0 - (k + 1) / 20.0), 10, bh / 20.0 + 0.3, colour(k / 19.0)});
    if (std::isfinite(lo)) {
        d.texts.push_back({bx + 12, top + 6, tickLabel(hi), 7, Drawing::Anchor::Start, false, kBlack});
        d.texts.push_back({bx + 12, top + bh, tickLabel(lo), 7, Drawing::Anchor::Start, false, kBlack});
    }
    d.height = std::max(d.height, top + bh + 20);
    return d;
}

} // namespace sparselab::report

#include "report/report.h"
#include "util/json_file.h"

#include "model/causal_lm.h"
#include "analysis/size_model.h"
#include "report/pdf_writer.h"
#include "tokenize/tokenizer.h"
#include "tokenize/unicode.h"
#include "export/hf_export.h"
#include "util/atomic_file.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/sha256.h"
#include "util/utc_time.h"

#include <torch/types.h>
#include <torch/version.h>

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>

namespace sparselab::report {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fmt(double v, int digits = 4)
{
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
    return buffer;
}

std::string sci(double v)
{
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.3g", v);
    return buffer;
}

std::string bytesText(int64_t bytes)
{
    char buffer[64];
    if (bytes >= 1000000)
        std::snprintf(buffer, sizeof buffer, "%.2f MB (%lld bytes)", double(bytes) / 1e6, (long long)bytes);
    else if (bytes >= 1000)
        std::snprintf(buffer, sizeof buffer, "%.1f kB (%lld bytes)", double(bytes) / 1e3, (long long)bytes);
    else
        std::snprintf(buffer, sizeof buffer, "%lld bytes", (long long)bytes);
    return buffer;
}

int64_t folderBytes(const fs::path& folder)
{
    int64_t total = 0;
    for (const auto& entry : fs::directory_iterator(folder))
        if (entry.is_regular_file())
            total += int64_t(entry.file_size());
    return total;
}

std::string jsonText(const json& j, const char* key, const std::string& fallback = "—")
{
    if (!j.is_object() || !j.contains(key) || j.at(key).is_null())
        return fallback;
    const auto& v = j.at(key);
    return v.is_string() ? v.get<std::string>() : v.dump();
}

json machineInfo()
{
    json m;
    struct utsname u {};
    if (uname(&u) == 0) {
        m["os"] = std::string(u.sysname) + " " + u.release;
        m["arch"] = u.machine;
        m["host"] = u.nodename;
    }
    m["cpus"] = std::thread::hardware_concurrency();
    m["torch_threads"] = libraryThreads();
    m["kernel_threads"] = kernelThreads();
    m["libtorch"] = TORCH_VERSION;
    m["sparselab"] = SPARSELAB_VERSION;
    m["compiler"] = __VERSION__;
    return m;
}

// ---- a format-neutral document ------------------------------------------------------------------

struct Block {
    enum class Kind { Heading, Paragraph, Table, Figure } kind;
    std::string text;                          // Heading / Paragraph
    std::vector<std::string> headers;          // Table
    std::vector<std::vector<std::string>> rows;
    bool monospaceCells = false;
    Drawing figure;                            // Figure
};

Block heading(const std::string& text) { return {Block::Kind::Heading, text, {}, {}, false, {}}; }
Block paragraph(const std::string& text) { return {Block::Kind::Paragraph, text, {}, {}, false, {}}; }
Block table(std::vector<std::string> headers, std::vector<std::vector<std::string>> rows, bool mono = false)
{
    return {Block::Kind::Table, {}, std::move(headers), std::move(rows), mono, {}};
}
Block figure(Drawing d) { return {Block::Kind::Figure, {}, {}, {}, false, std::move(d)}; }

// Section 3b: when the layers were not all given the same target sparsity and bits (a recipe
// from an allocator), the profile — each layer kind's target sparsity by block against the
// size-weighted average, which is where a uniform plan's flat line would be — and a summary.
// Layers without a number target (N:M, dense) are left out.
std::vector<Block> allocationProfileBlocks(const json& layers)
{
    struct Row { std::string kind; int64_t block; double target, realised, weights; int bits; };
    std::vector<Row> rows;
    for (const auto& l : layers) {
        if (!l.is_object() || !l.contains("target_sparsity") || !l.at("target_sparsity").is_number())
            continue;
        if (l.contains("nm") && l.at("nm").is_string())
            continue;
        const std::string name = l.value("name", std::string());
        const auto dot = name.rfind('.');
        const double weights = double(l.value("rows", int64_t(0))) * double(l.value("cols", int64_t(0)));
        rows.push_back({dot == std::string::npos ? name : name.substr(dot + 1), l.value("block", int64_t(0)),
                        l.at("target_sparsity").get<double>(), l.value("sparsity", 0.0), weights > 0 ? weights : 1.0,
                        l.value("bits", 16)});
    }
    if (rows.size() < 2)
        return {};
    const auto [lo, hi] = std::minmax_element(rows.begin(), rows.end(),
                                              [](const Row& a, const Row& b) { return a.target < b.target; });
    const bool bitsVary = std::any_of(rows.begin(), rows.end(), [&](const Row& r) { return r.bits != rows.front().bits; });
    if (hi->target - lo->target < 1e-12 && !bitsVary)
        return {};
    double weights = 0, target = 0, realised = 0;
    std::map<int, double> weightsAtBits;
    for (const Row& r : rows) {
        weights += r.weights;
        target += r.weights * r.target;
        realised += r.weights * r.realised;
        weightsAtBits[r.bits] += r.weights;
    }
    target /= weights;
    realised /= weights;
    std::ostringstream text;
    text << "The layers were not compressed alike (a per-layer allocation, e.g. from sparselab-cli allocate: "
            "the DP over a sensitivity scan, OWL or the end-to-end search; docs/allocation.md). Target sparsity "
            "ranges from "
         << fmt(100 * lo->target, 1) << " % to " << fmt(100 * hi->target, 1) << " %; weighted by layer size the "
         << "average is " << fmt(100 * target, 2) << " % (realised " << fmt(100 * realised, 2) << " %).";
    if (bitsVary) {
        text << " Bit-widths by share of the weights:";
        for (auto it = weightsAtBits.rbegin(); it != weightsAtBits.rend(); ++it)
            text << ' ' << it->first << " bits " << fmt(100 * it->second / weights, 1) << " %"
                 << (std::next(it) == weightsAtBits.rend() ? "." : ",");
    }
    text << " The chart shows each layer kind's target by block; the flat line is the average, where a "
            "uniform plan of the same average would put every layer.";
    std::map<std::string, Series> byKind;
    std::vector<std::string> order;
    int64_t lastBlock = 0;
    for (const Row& r : rows) {
        if (!byKind.count(r.kind)) {
            order.push_back(r.kind);
            byKind[r.kind] = Series{r.kind, {}, {}, true, true, false};
        }
        byKind[r.kind].x.push_back(double(r.block));
        byKind[r.kind].y.push_back(100 * r.target);
        lastBlock = std::max(lastBlock, r.block);
    }
    std::vector<Series> series;
    for (const auto& kind : order)
        series.push_back(byKind[kind]);
    series.push_back(Series{"average (uniform)", {0.0, double(std::max<int64_t>(1, lastBlock))}, {100 * target, 100 * target},
                            true, false, true});
    std::vector<Block> blocks;
    blocks.push_back(heading("3b. Per-layer allocation"));
    blocks.push_back(paragraph(text.str()));
    blocks.push_back(figure(lineChart("Allocation profile: target sparsity by block and layer kind", series,
                                      {"block", "target sparsity (%)", false}, 480, 300)));
    return blocks;
}

// Section 3c: a sweep with an allocation axis (pipeline/sweep.h) compared at equal average
// sparsity — one row per (method, layers, bits, sparsity), one perplexity column per
// allocation, the lowest of each row marked — so that a reader sees what the per-layer
// allocation bought against uniform on the same model, texts and settings.
std::vector<Block> allocationComparisonBlocks(const analysis::SweepResult& sweep)
{
    if (!sweep.grid.allocatesPerLayer() || sweep.points.empty())
        return {};
    using Key = std::tuple<std::string, std::string, int, double>; // method, group, bits, sparsity
    std::map<Key, std::map<std::string, double>> byRow;
    for (const auto& p : sweep.points)
        byRow[{solve::methodName(p.spec.method), p.spec.group, p.spec.bits, p.spec.sparsity}][p.spec.allocation] =
            p.perplexity;
    std::vector<std::string> headers = {"method", "layers", "bits", "average sparsity"};
    for (const auto& a : sweep.grid.allocations)
        headers.push_back(a + " perplexity");
    std::vector<std::vector<std::string>> rows;
    for (const auto& [key, perplexities] : byRow) {
        const auto& [method, group, bits, sparsity] = key;
        double best = std::numeric_limits<double>::infinity();
        for (const auto& [allocation, perplexity] : perplexities)
            best = std::min(best, perplexity);
        std::vector<std::string> row = {method, group, std::to_string(bits), fmt(100 * sparsity, 1) + " %"};
        for (const auto& a : sweep.grid.allocations) {
            const auto found = perplexities.find(a);
            row.push_back(found == perplexities.end() ? std::string("—")
                                                       : fmt(found->second, 2) + (found->second == best ? " (best)" : ""));
        }
        rows.push_back(std::move(row));
    }
    std::ostringstream text;
    text << "The sweep in this report ran every point under each allocation of its grid (uniform: every layer at "
            "the point's sparsity; owl: OWL's per-block sparsities; search: the end-to-end search's per-layer "
            "levels — docs/allocation.md), at the same average linear sparsity, and measured perplexity on "
            "the same evaluation text (dense "
         << fmt(sweep.densePerplexity, 2) << ").";
    return {heading("3c. Allocations compared (sweep)"), paragraph(text.str()), table(std::move(headers), std::move(rows))};
}

std::vector<Block> reportBlocks(const ReportData& data)
{
    std::vector<Block> blocks;
    const json& prov = data.provenance;
    const json calib = prov.value("calibration", json::object());
    const json recipe = prov.value("recipe", json::object());
    const auto& c = data.comparison;

    blocks.push_back(heading("1. Summary"));
    std::ostringstream what;
    what << "The model " << data.denseFolder << " (" << data.architecture << ", " << data.parameters
         << " parameters) was compressed by SparseLab into " << data.compressedFolder << ": "
         << prov.value("layers", json::array()).size() << " linear layers with the recipe below, "
         << "linear-layer sparsity " << fmt(data.linearSparsity, 4) << ". Calibration: "
         << jsonText(calib, "nsamples") << " windows of " << jsonText(calib, "seqlen") << " tokens (seed "
         << jsonText(calib, "seed") << ") from " << fs::path(jsonText(calib, "file")).filename().string()
         << ". Evaluation: " << c.windows << " windows of " << c.seqlen << " tokens of "
         << fs::path(data.evalFile).filename().string() << ".";
    blocks.push_back(paragraph(what.str()));
    blocks.push_back(table({"", "dense", "compressed", "change"},
                           {{"perplexity", fmt(c.referencePerplexity), fmt(c.otherPerplexity),
                             fmt(c.otherPerplexity / c.referencePerplexity, 3) + "x"},
                            {"size (size model)", bytesText(data.denseBytes), bytesText(data.compressedBytes),
                             fmt(double(data.compressedBytes) / double(std::max<int64_t>(1, data.denseBytes)), 3) + "x"},
                            {"files on disk", bytesText(data.denseDiskBytes), bytesText(data.compressedDiskBytes), ""},
                            {"mean KL(dense || compressed)", "0", fmt(c.meanKl, 5) + " nats", ""},
                            {"top-1 agreement with dense", "1", fmt(c.top1Agreement, 4), ""}}));
    blocks.push_back(paragraph("Size model: fp16 values; pruned layers store a 1-bit mask and the kept values, "
                               "quantized layers b-bit values plus an fp16 scale and zero per row (or group). "
                               "The exported safetensors keep the dense layout with exact zeros."));

    blocks.push_back(heading("2. Provenance"));
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"report created", data.createdUtc});
    rows.push_back({"compression run", jsonText(prov, "created_utc")});
    rows.push_back({"SparseLab (run)", jsonText(prov, "sparselab_version")});
    rows.push_back({"dense model", data.denseFolder});
    for (const auto& [file, hash] : data.denseHashes.items())
        rows.push_back({"  sha256 " + file, hash.get<std::string>()});
    rows.push_back({"compressed model", data.compressedFolder});
    for (const auto& [file, hash] : data.compressedHashes.items())
        rows.push_back({"  sha256 " + file, hash.get<std::string>()});
    rows.push_back({"calibration text", jsonText(calib, "file")});
    rows.push_back({"  sha256", jsonText(calib, "sha256")});
    rows.push_back({"  windows x tokens, seed",
                    jsonText(calib, "nsamples") + " x " + jsonText(calib, "seqlen") + ", " + jsonText(calib, "seed")});
    rows.push_back({"evaluation text", data.evalFile});
    rows.push_back({"  sha256", data.evalSha256});
    rows.push_back({"recipe", recipe.dump()});
    rows.push_back({"true sequential", jsonText(prov, "true_sequential")});
    // Older runs (before kernel_threads was recorded) name LibTorch's threads only.
    rows.push_back({"prune time", fmt(prov.value("prune_seconds", 0.0), 2) + " s with "
                                      + jsonText(prov, "torch_threads") + " LibTorch thread(s)"
                                      + (prov.contains("kernel_threads")
                                             ? ", " + jsonText(prov, "kernel_threads") + " kernel thread(s)"
                                             : std::string())});
    for (const auto& [key, value] : data.machine.items())
        rows.push_back({"machine: " + key, value.is_string() ? value.get<std::string>() : value.dump()});
    blocks.push_back(table({"item", "value"}, rows));

    blocks.push_back(heading("3. Per-layer results"));
    rows.clear();
    for (const auto& l : prov.value("layers", json::array()))
        rows.push_back({l.value("name", std::string()), l.value("method", std::string()),
                        l.contains("nm") && l.at("nm").is_string() ? l.at("nm").get<std::string>()
                                                                   : fmt(l.value("target_sparsity", 0.0), 2),
                        std::to_string(l.value("bits", 16)), fmt(l.value("sparsity", 0.0), 4),
                        sci(l.value("rel_output_error", 0.0)), sci(l.value("loss", 0.0)),
                        fmt(l.value("seconds", 0.0), 3)});
    blocks.push_back(table({"layer", "method", "target", "bits", "sparsity", "rel. error", "loss", "s"}, rows));

    if (prov.contains("recovery")) {
        const json& r = prov.at("recovery");
        blocks.push_back(heading("3a. Recovery after pruning"));
        std::ostringstream text;
        text << "After pruning, the kept weights were trained to imitate the dense model ("
             << (jsonText(r, "loss") == "block" ? "block-wise reconstruction: each block's output matched to the dense block's"
                                               : "KL divergence of the next-token distributions")
             << ") with Adam; pruned weights stayed exactly zero and quantized layers were left on their grid. "
             << jsonText(r, "steps_run") << " of " << jsonText(r, "steps") << " steps ("
             << (jsonText(r, "loss") == "block" ? "per block" : "in all") << "), stopped by " << jsonText(r, "stopped_by")
             << ", in " << fmt(r.value("seconds", 0.0), 1) << " s.";
        blocks.push_back(paragraph(text.str()));
        // The run's own evaluation: dense, pruned (before recovery), recovered.
        std::vector<std::vector<std::string>> figures;
        const json runEval = r.value("evaluation", prov.value("evaluation", json::object()));
        const auto number = [](const json& j, const char* key) {
            return j.contains(key) && j.at(key).is_number() ? fmt(j.at(key).get<double>()) : std::string("—");
        };
        if (r.contains("evaluation"))
            figures.push_back({number(runEval, "perplexity_dense"), number(runEval, "perplexity_pruned"),
                               number(runEval, "perplexity_recovered")});
        else
            figures.push_back({number(runEval, "perplexity_before"), number(r, "perplexity_pruned"),
                               number(runEval, "perplexity_after")});
        blocks.push_back(table({"perplexity: dense", "pruned", "after recovery"}, figures));
        blocks.push_back(table({"setting", "value"},
                               {{"learning rate, schedule", jsonText(r, "learning_rate") + ", " + jsonText(r, "schedule")},
                                {"windows per step", jsonText(r, "batch_windows")},
                                {"held-out windows (calibration text)", jsonText(r, "held_out_windows")},
                                {"weights kept from step", jsonText(r, "best_step") == "-1" ? std::string("the last")
                                                                                            : jsonText(r, "best_step")},
                                {"nonzero linear weights before / after",
                                 jsonText(r, "nonzero_before") + " / " + jsonText(r, "nonzero_after")}}));
    }

    for (auto& block : allocationProfileBlocks(prov.value("layers", json::array())))
        blocks.push_back(std::move(block));
    if (data.sweep)
        for (auto& block : allocationComparisonBlocks(*data.sweep))
            blocks.push_back(std::move(block));

    blocks.push_back(heading("4. Plots"));
    for (auto& d : reportPlots(data))
        blocks.push_back(figure(std::move(d)));

    blocks.push_back(heading("5. Next-token distribution"));
    std::ostringstream kl;
    kl << "KL divergence KL(P_dense || Q_compressed) of the next-token distributions at every position of the "
       << c.windows << " evaluation windows (" << c.positions << " positions): mean " << fmt(c.meanKl, 5)
       << " nats, 99th percentile " << fmt(c.p99Kl, 4) << ", maximum " << fmt(c.maxKl, 4)
       << ". The compressed model's most likely next token equals the dense model's at "
       << fmt(100.0 * c.top1Agreement, 2) << " % of the positions. Perplexities on the same windows: dense "
       << fmt(c.referencePerplexity) << ", compressed " << fmt(c.otherPerplexity) << ".";
    blocks.push_back(paragraph(kl.str()));

    blocks.push_back(heading("6. Greedy continuations"));
    blocks.push_back(paragraph("Each prompt continued by " + std::to_string(data.newTokens)
                               + " greedy (argmax) tokens by each model."));
    rows.clear();
    for (const auto& cont : data.continuations)
        rows.push_back({cont.prompt, cont.dense, cont.compressed});
    blocks.push_back(table({"prompt", "dense", "compressed"}, rows));

    if (data.workspace) {
        const auto& ws = *data.workspace;
        blocks.push_back(heading("7. Workspace"));
        std::ostringstream text;
        text << "Built from the workspace " << ws.file << ", run " << ws.runId << ". Dense model: " << ws.modelCheck
             << ". Runs recorded: " << ws.runs.size() << "; sweeps: "
             << (ws.sweeps.empty() ? std::string("none") : std::to_string(ws.sweeps.size())) << "; sensitivity scans: "
             << (ws.sensitivities.empty() ? std::string("none") : std::to_string(ws.sensitivities.size())) << ".";
        blocks.push_back(paragraph(text.str()));
        blocks.push_back(table({"run", "label", "kind", "sparsity", "ppl before", "ppl after", "size", "export"}, ws.runs));
    }
    return blocks;
}

std::string escapeHtml(const std::string& text)
{
    std::string out;
    for (char ch : text) {
        switch (ch) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        default: out += ch;
        }
    }
    return out;
}

// ---- PDF flow layout -------------------------------------------------------------------------

class PdfFlow {
public:
    explicit PdfFlow(const std::string& title) : m_title(title) { newPage(); }

    void heading(const std::string& text)
    {
        need(90); // keep a heading with the start of its section
        m_y += 10;
        m_pdf.text(kMargin, m_y + 12, text, 13, PdfWriter::Font::Bold);
        m_y += 22;
    }
    void title(const std::string& text, const std::string& subtitle)
    {
        m_pdf.text(kMargin, m_y + 18, text, 18, PdfWriter::Font::Bold);
        m_y += 28;
        paragraph(subtitle, 9, PdfWriter::Font::Regular);
    }
    void paragraph(const std::string& text, double size = 9.5, PdfWriter::Font font = PdfWriter::Font::Regular)
    {
        for (const auto& line : wrap(text, contentWidth(), size, font)) {
            need(size * 1.35);
            m_pdf.text(kMargin, m_y + size, line, size, font);
            m_y += size * 1.35;
        }
        m_y += 4;
    }
    void table(const Block& t)
    {
        const size_t columns = t.headers.size();
        const double size = 7.0;
        const PdfWriter::Font cellFont = t.monospaceCells ? PdfWriter::Font::Mono : PdfWriter::Font::Regular;
        // Column widths ∝ the widest cell (capped), scaled to the content width.
        std::vector<double> widths(columns, 20.0);
        for (size_t j = 0; j < columns; ++j) {
            widths[j] = std::max(widths[j], PdfWriter::width(t.headers[j], size, PdfWriter::Font::Bold) + 6);
            for (const auto& row : t.rows)
                if (j < row.size())
                    widths[j] = std::max(widths[j], std::min(220.0, PdfWriter::width(row[j], size, cellFont) + 6));
        }
        double total = 0;
        for (double w : widths)
            total += w;
        for (double& w : widths)
            w *= contentWidth() / total;
        auto drawRow = [&](const std::vector<std::string>& cells, bool header) {
            std::vector<std::vector<std::string>> lines(columns);
            size_t height = 1;
            for (size_t j = 0; j < columns; ++j) {
                lines[j] = wrap(j < cells.size() ? cells[j] : "", widths[j] - 4, size,
                                header ? PdfWriter::Font::Bold : cellFont);
                height = std::max(height, lines[j].size());
            }
            const double rowHeight = double(height) * size * 1.3 + 3;
            if (need(rowHeight) && !header)
                drawHeader(t, widths, size);
            if (header)
                m_pdf.fillRect(kMargin, m_y, contentWidth(), rowHeight, Color{0.9, 0.92, 0.95});
            double x = kMargin;
            for (size_t j = 0; j < columns; ++j) {
                for (size_t k = 0; k < lines[j].size(); ++k)
                    m_pdf.text(x + 2, m_y + size * 1.3 * double(k + 1), lines[j][k], size,
                               header ? PdfWriter::Font::Bold : cellFont);
                x += widths[j];
            }
            m_y += rowHeight;
            m_pdf.line(kMargin, m_y, kMargin + contentWidth(), m_y, 0.3, Color{0.7, 0.7, 0.7});
        };
        m_drawRow = drawRow;
        drawRow(t.headers, true);
        for (const auto& row : t.rows)
            drawRow(row, false);
        m_drawRow = nullptr;
        m_y += 8;
    }
    void figure(const Drawing& d)
    {
        const double scale = std::min(1.0, contentWidth() / d.width);
        need(d.height * scale + 8);
        m_pdf.drawing(d, kMargin + (contentWidth() - d.width * scale) / 2, m_y, scale);
        m_y += d.height * scale + 10;
    }
    [[nodiscard]] std::string finish() const { return m_pdf.finish(m_title); }

private:
    static constexpr double kMargin = 50;
    double contentWidth() const { return m_pdf.pageWidth() - 2 * kMargin; }

    void drawHeader(const Block& t, const std::vector<double>&, double)
    {
        if (m_drawRow) {
            auto draw = m_drawRow;
            m_drawRow = nullptr; // no recursion while drawing the repeated header
            draw(t.headers, true);
            m_drawRow = draw;
        }
    }
    // Starts a new page when `height` does not fit; true when it did.
    bool need(double height)
    {
        if (m_y + height <= m_pdf.pageHeight() - kMargin)
            return false;
        newPage();
        return true;
    }
    void newPage()
    {
        m_pdf.newPage();
        m_y = kMargin;
        const std::string footer = m_title + " - page " + std::to_string(m_pdf.pageCount());
        m_pdf.text(kMargin, m_pdf.pageHeight() - 25, footer, 7, PdfWriter::Font::Regular, Color{0.4, 0.4, 0.4});
    }
    static std::vector<std::string> wrap(const std::string& text, double width, double size, PdfWriter::Font font)
    {
        std::vector<std::string> lines;
        std::string line;
        std::istringstream words(text);
        std::string word;
        while (words >> word) {
            // Break words longer than a line (hashes, paths).
            while (PdfWriter::width(word, size, font) > width && word.size() > 1) {
                size_t cut = word.size();
                while (cut > 1 && PdfWriter::width(word.substr(0, cut), size, font) > width)
                    --cut;
                if (!line.empty()) {
                    lines.push_back(line);
                    line.clear();
                }
                lines.push_back(word.substr(0, cut));
                word = word.substr(cut);
            }
            const std::string candidate = line.empty() ? word : line + " " + word;
            if (PdfWriter::width(candidate, size, font) > width && !line.empty()) {
                lines.push_back(line);
                line = word;
            } else {
                line = candidate;
            }
        }
        if (!line.empty() || lines.empty())
            lines.push_back(line);
        return lines;
    }

    std::string m_title;
    PdfWriter m_pdf;
    double m_y = 0;
    std::function<void(const std::vector<std::string>&, bool)> m_drawRow;
};

const char* const kCss = R"(body{font-family:Helvetica,Arial,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.82em;width:100%}th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top;word-break:break-word}
th{background:#e6ebf2}figure{margin:1em 0;text-align:center}figcaption{font-size:.85em;color:#555}.sub{color:#555;font-size:.9em}
td.mono{font-family:monospace})";

} // namespace

// ---- plots ---------------------------------------------------------------------------------------

Drawing sweepPerplexityPlot(const analysis::SweepResult& sweep)
{
    std::map<std::string, Series> bySeries;
    for (const auto& p : sweep.points) {
        std::string name = solve::methodName(p.spec.method) + ", " + std::to_string(p.spec.bits) + " bit";
        if (sweep.grid.allocatesPerLayer())
            name = p.spec.allocation + " " + name;
        if (sweep.grid.groups.size() > 1 || p.spec.group != "all")
            name += ", " + p.spec.group;
        auto& s = bySeries[name];
        s.name = name;
        s.x.push_back(p.spec.sparsity);
        s.y.push_back(p.perplexity);
    }
    std::vector<Series> series;
    for (auto& [name, s] : bySeries) {
        // Sort each series by sparsity so the line runs left to right.
        std::vector<size_t> order(s.x.size());
        for (size_t i = 0; i < order.size(); ++i)
            order[i] = i;
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s.x[a] < s.x[b]; });
        Series sorted{s.name, {}, {}, true, true, false};
        for (size_t i : order) {
            sorted.x.push_back(s.x[i]);
            sorted.y.push_back(s.y[i]);
        }
        series.push_back(sorted);
    }
    Series dense{"dense", {}, {}, false, true, false};
    if (!sweep.points.empty()) {
        dense.x = {0.0};
        dense.y = {sweep.densePerplexity};
        series.push_back(dense);
    }
    return lineChart("Sweep: perplexity vs sparsity", series, {"sparsity (fraction of weights pruned)", "perplexity", true});
}

Drawing sweepParetoPlot(const analysis::SweepResult& sweep)
{
    Series all{"sweep points", {}, {}, false, true, false};
    for (const auto& p : sweep.points) {
        all.x.push_back(double(p.modelBytes) / 1e6);
        all.y.push_back(p.perplexity);
    }
    Series frontier{"Pareto frontier", {}, {}, true, true, true};
    for (size_t i : analysis::paretoFrontier(sweep.points)) {
        frontier.x.push_back(double(sweep.points[i].modelBytes) / 1e6);
        frontier.y.push_back(sweep.points[i].perplexity);
    }
    Series dense{"dense (fp16)", {double(sweep.denseBytes) / 1e6}, {sweep.densePerplexity}, false, true, false};
    return lineChart("Sweep: size vs perplexity", {all, frontier, dense}, {"model size (MB, size model)", "perplexity", true});
}

Drawing sensitivityHeatMap(const analysis::SensitivityResult& scan)
{
    std::vector<std::string> rows, columns;
    for (const auto& l : scan.layers)
        rows.push_back(l.name);
    for (double s : scan.sparsities)
        for (int b : scan.bits) {
            char buffer[32];
            std::snprintf(buffer, sizeof buffer, "%.0f%%%s", s * 100, b < 16 ? ("/" + std::to_string(b)).c_str() : "");
            columns.push_back(buffer);
        }
    std::vector<std::vector<double>> values;
    for (const auto& l : scan.layers) {
        std::vector<double> row;
        for (const auto& c : l.cells)
            row.push_back(c.sparsity == 0.0 && c.bits == 16 ? std::numeric_limits<double>::quiet_NaN() : c.relError);
        values.push_back(row);
    }
    return heatMap("Sensitivity: relative output error (layers x sparsity/bits)", rows, columns, values, true, 495.0);
}

std::vector<Drawing> reportPlots(const ReportData& data)
{
    std::vector<Drawing> plots;
    std::vector<std::string> labels;
    std::vector<double> errors;
    for (const auto& l : data.provenance.value("layers", json::array())) {
        labels.push_back(l.value("name", std::string()));
        errors.push_back(l.value("rel_output_error", 0.0));
    }
    if (!labels.empty())
        plots.push_back(barChart("Per-layer relative output error", labels, errors, {"layer", "relative error", true}, 480, 340));
    if (!data.comparison.windowKl.empty()) {
        Series kl{"KL per window", {}, {}, true, false, false};
        for (size_t i = 0; i < data.comparison.windowKl.size(); ++i) {
            kl.x.push_back(double(i));
            kl.y.push_back(data.comparison.windowKl[i]);
        }
        plots.push_back(lineChart("KL(dense || compressed) per evaluation window", {kl}, {"window", "mean KL (nats)", false}));
    }
    if (const auto r = data.provenance.find("recovery"); r != data.provenance.end() && r->is_object()) {
        Series loss{"training loss", {}, {}, true, false, false};
        const json curve = r->value("loss_curve", json::array());
        for (size_t i = 0; i < curve.size(); ++i)
            if (curve[i].is_number() && curve[i].get<double>() > 0) {
                loss.x.push_back(double(i + 1));
                loss.y.push_back(curve[i].get<double>());
            }
        if (!loss.x.empty())
            plots.push_back(lineChart("Recovery: training loss per step", {loss}, {"step", "loss", true}));
        Series held{"held-out perplexity", {}, {}, true, true, false};
        for (const auto& point : r->value("held_out", json::array())) {
            held.x.push_back(double(point.at("step").get<int64_t>()));
            held.y.push_back(point.at("perplexity").get<double>());
        }
        if (held.x.size() > 1)
            plots.push_back(lineChart("Recovery: perplexity on held-out calibration windows", {held},
                                      {"step", "perplexity", false}));
    }
    if (data.sweep && !data.sweep->points.empty()) {
        plots.push_back(sweepPerplexityPlot(*data.sweep));
        plots.push_back(sweepParetoPlot(*data.sweep));
    }
    if (data.sensitivity && !data.sensitivity->layers.empty())
        plots.push_back(sensitivityHeatMap(*data.sensitivity));
    return plots;
}

// ---- build -------------------------------------------------------------------------------------

namespace {

// The fields of a compressed folder's sparselab.json that the report reads, with the JSON type
// each must have when present (absent ones take defaults). Checked once when the file is read,
// so a wrongly typed field is one line naming the file and the field, never a JSON type_error
// from deep inside the report (exit 1).
void checkProvenanceTypes(const json& prov, const fs::path& file)
{
    enum class Kind { Number, Integer, String, Object, Array, Boolean };
    const auto check = [&](const json& object, const std::string& where, const char* key, Kind kind) {
        if (!object.contains(key))
            return; // absent: the report's default (a null is a wrongly typed value)
        const json& v = object.at(key);
        const bool ok = kind == Kind::Number    ? v.is_number() && std::isfinite(v.get<double>())
                        : kind == Kind::Integer ? v.is_number_integer()
                        : kind == Kind::String  ? v.is_string()
                        : kind == Kind::Object  ? v.is_object()
                        : kind == Kind::Array   ? v.is_array()
                                                : v.is_boolean();
        static const char* const names[] = {"a finite number", "an integer", "a string", "an object", "an array",
                                            "true or false"};
        if (!ok)
            throw inputError(file, "field '" + where + key + "' must be " + names[int(kind)] + ", got "
                                       + v.dump().substr(0, 80));
    };
    for (const char* key : {"linear_sparsity", "prune_seconds"})
        check(prov, "", key, Kind::Number);
    for (const char* key : {"calibration", "evaluation", "recipe"})
        check(prov, "", key, Kind::Object);
    check(prov, "", "layers", Kind::Array);
    if (prov.contains("evaluation") && prov.at("evaluation").is_object()) {
        check(prov.at("evaluation"), "evaluation.", "file", Kind::String);
        check(prov.at("evaluation"), "evaluation.", "seqlen", Kind::Integer);
    }
    if (prov.contains("calibration") && prov.at("calibration").is_object())
        check(prov.at("calibration"), "calibration.", "seqlen", Kind::Integer);
    if (prov.contains("recipe") && prov.at("recipe").is_object()) {
        check(prov.at("recipe"), "recipe.", "defaults", Kind::Object);
        if (prov.at("recipe").contains("defaults") && prov.at("recipe").at("defaults").is_object())
            check(prov.at("recipe").at("defaults"), "recipe.defaults.", "group", Kind::Integer);
    }
    check(prov, "", "recovery", Kind::Object);
    if (prov.contains("recovery") && prov.at("recovery").is_object()) {
        const json& r = prov.at("recovery");
        for (const char* key : {"loss", "schedule", "stopped_by"})
            check(r, "recovery.", key, Kind::String);
        for (const char* key : {"learning_rate", "seconds", "perplexity_pruned"})
            check(r, "recovery.", key, Kind::Number);
        for (const char* key : {"steps", "steps_run", "best_step", "batch_windows", "held_out_windows",
                                "nonzero_before", "nonzero_after"})
            check(r, "recovery.", key, Kind::Integer);
        for (const char* key : {"loss_curve", "held_out"})
            check(r, "recovery.", key, Kind::Array);
        for (size_t i = 0; r.contains("loss_curve") && r.at("loss_curve").is_array() && i < r.at("loss_curve").size(); ++i)
            if (!r.at("loss_curve").at(i).is_number())
                throw inputError(file, "field 'recovery.loss_curve' must hold numbers");
        for (size_t i = 0; r.contains("held_out") && r.at("held_out").is_array() && i < r.at("held_out").size(); ++i) {
            const json& point = r.at("held_out").at(i);
            if (!point.is_object() || !point.contains("step") || !point.at("step").is_number_integer()
                || !point.contains("perplexity") || !point.at("perplexity").is_number())
                throw inputError(file, "field 'recovery.held_out' must hold {step, perplexity} objects");
        }
        check(r, "recovery.", "evaluation", Kind::Object);
        if (r.contains("evaluation") && r.at("evaluation").is_object())
            for (const char* key : {"perplexity_dense", "perplexity_pruned", "perplexity_recovered"})
                check(r.at("evaluation"), "recovery.evaluation.", key, Kind::Number);
    }
    check(prov, "", "evaluation", Kind::Object);
    if (prov.contains("evaluation") && prov.at("evaluation").is_object())
        for (const char* key : {"perplexity_before", "perplexity_after"})
            check(prov.at("evaluation"), "evaluation.", key, Kind::Number);
    for (size_t i = 0; prov.contains("layers") && i < prov.at("layers").size(); ++i) {
        const json& layer = prov.at("layers").at(i);
        const std::string where = "layers[" + std::to_string(i) + "].";
        if (!layer.is_object())
            throw inputError(file, "field '" + where.substr(0, where.size() - 1) + "' must be an object");
        for (const char* key : {"name", "method"})
            check(layer, where, key, Kind::String);
        for (const char* key : {"target_sparsity", "sparsity", "rel_output_error", "loss", "seconds"})
            check(layer, where, key, Kind::Number);
        for (const char* key : {"bits", "rows", "cols"})
            check(layer, where, key, Kind::Integer);
        // rows × cols are summed into parameter counts: bounded like a model's own sizes.
        for (const char* key : {"rows", "cols"})
            if (layer.contains(key) && layer.at(key).is_number_integer()
                && (layer.at(key).get<int64_t>() < 0 || layer.at(key).get<int64_t>() > model::kMaxModelMlpWidth))
                throw inputError(file, "field '" + where + key + "' is " + layer.at(key).dump()
                                           + ", not a layer size from 0 to " + std::to_string(model::kMaxModelMlpWidth));
        if (layer.contains("bits") && layer.at("bits").is_number_integer()
            && (layer.at("bits").get<int64_t>() < 1 || layer.at("bits").get<int64_t>() > 32))
            throw inputError(file, "field '" + where + "bits' is " + layer.at("bits").dump() + ", not 1 to 32");
    }
}

} // namespace

ReportData buildReport(const ReportParams& params, const ProgressCallback& progress, const CancelToken* cancel)
{
    ReportData data;
    const fs::path provFile = params.compressedFolder / "sparselab.json";
    if (!fs::is_directory(params.denseFolder))
        throw inputError(params.denseFolder, "is not a model folder");
    if (!fs::is_regular_file(provFile))
        throw inputError(params.compressedFolder, "has no sparselab.json (is it a folder written by 'sparselab-cli prune'?)");
    data.provenance = readJsonFile(provFile);
    if (!data.provenance.is_object() || !data.provenance.contains("layers") || !data.provenance.at("layers").is_array())
        throw inputError(provFile, "has no 'layers' array");
    checkProvenanceTypes(data.provenance, provFile);
    data.denseFolder = fs::absolute(params.denseFolder).string();
    data.compressedFolder = fs::absolute(params.compressedFolder).string();
    data.denseHashes = exporting::hashModelFolder(params.denseFolder, cancel);
    data.compressedHashes = exporting::hashModelFolder(params.compressedFolder, cancel);
    data.denseDiskBytes = folderBytes(params.denseFolder);
    data.compressedDiskBytes = folderBytes(params.compressedFolder);
    data.linearSparsity = data.provenance.value("linear_sparsity", 0.0);
    data.machine = machineInfo();
    data.createdUtc = utcNow();
    data.newTokens = params.newTokens;
    if (params.sweepFile)
        data.sweep = analysis::SweepResult::load(*params.sweepFile);
    else
        data.sweep = params.sweep;
    if (params.sensitivityFile)
        data.sensitivity = analysis::SensitivityResult::load(*params.sensitivityFile);
    else
        data.sensitivity = params.sensitivity;
    data.workspace = params.workspace;

    const json evaluation = data.provenance.value("evaluation", json::object());
    fs::path evalFile = params.evalFile;
    if (evalFile.empty()) {
        if (!evaluation.contains("file"))
            throw optionError("--eval", "is required: the compressed folder's provenance names no evaluation text");
        evalFile = evaluation.at("file").get<std::string>();
    }
    int64_t seqlen = params.seqlen;
    if (seqlen <= 0)
        seqlen = evaluation.value("seqlen", data.provenance.value("calibration", json::object()).value("seqlen", int64_t(0)));
    if (seqlen <= 0)
        throw optionError("--seqlen", "is required: the provenance records none");
    const std::string evalText = readTextFile(evalFile);
    if (evalText.empty())
        throw inputError(evalFile, "the text is empty");
    data.evalFile = fs::absolute(evalFile).string();
    data.evalSha256 = sha256Hex(evalText);

    torch::NoGradGuard noGrad;
    const auto tokenizer = tokenize::loadTokenizer(params.denseFolder);
    const auto dense = model::CausalLM::load(params.denseFolder);
    const auto compressed = model::CausalLM::load(params.compressedFolder);
    data.architecture = dense->config().modelType;
    data.parameters = dense->parameterCount();
    if (compressed->parameterCount() != dense->parameterCount())
        throw inputError(params.compressedFolder, "has a different number of parameters than " + params.denseFolder.string());

    // Size model.
    int64_t linearParams = 0, linearBytes = 0;
    const int64_t group = data.provenance.value("recipe", json::object()).value("defaults", json::object()).value("group", int64_t(0));
    for (const auto& l : data.provenance.at("layers")) {
        const int64_t rows = l.value("rows", int64_t(0)), cols = l.value("cols", int64_t(0));
        linearParams += rows * cols;
        const bool isDense = l.value("method", std::string()) == "dense";
        linearBytes += isDense ? analysis::linearLayerBytes(rows, cols, 0.0, 16)
                               : analysis::linearLayerBytes(rows, cols, l.value("sparsity", 0.0), l.value("bits", 16), group);
    }
    data.denseBytes = analysis::fixedParameterBytes(dense->parameterCount());
    data.compressedBytes = linearBytes + analysis::fixedParameterBytes(dense->parameterCount() - linearParams);

    const auto ids = tokenizer->encodeForModel(evalText, cancel);
    if (int64_t(ids.size()) < seqlen)
        throw inputError(evalFile, "has fewer tokens than one window of " + std::to_string(seqlen));
    data.comparison = eval::compareDistributions(*dense, *compressed, ids, seqlen, params.maxWindows, 8, progress, cancel);

    const int32_t stop = tokenizer->eosId().value_or(-1);
    ProgressReporter reporter(progress, "continuations", int64_t(params.prompts.size()));
    for (size_t i = 0; i < params.prompts.size(); ++i) {
        const auto prompt = tokenizer->encodeForModel(params.prompts[i], cancel);
        Continuation c;
        c.prompt = params.prompts[i];
        const auto a = eval::greedyContinuation(*dense, prompt, params.newTokens, stop, cancel);
        const auto b = eval::greedyContinuation(*compressed, prompt, params.newTokens, stop, cancel);
        // A continuation can stop inside a multi-byte character: kept as valid UTF-8 (U+FFFD)
        // for the HTML, PDF and JSON that show it.
        c.dense = tokenize::unicode::toValidUtf8(tokenizer->decode(a));
        c.compressed = tokenize::unicode::toValidUtf8(tokenizer->decode(b));
        data.continuations.push_back(c);
        reporter.report(int64_t(i + 1));
    }
    return data;
}

std::string renderHtml(const ReportData& data)
{
    std::ostringstream h;
    h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>SparseLab report: "
      << escapeHtml(fs::path(data.compressedFolder).filename().string()) << "</title><style>" << kCss
      << "</style></head><body>\n<h1>SparseLab compression report</h1><p class=\"sub\">"
      << escapeHtml(data.compressedFolder) << " &mdash; created " << escapeHtml(data.createdUtc) << "</p>\n";
    for (const auto& b : reportBlocks(data)) {
        switch (b.kind) {
        case Block::Kind::Heading: h << "<h2>" << escapeHtml(b.text) << "</h2>\n"; break;
        case Block::Kind::Paragraph: h << "<p>" << escapeHtml(b.text) << "</p>\n"; break;
        case Block::Kind::Table:
            h << "<table><thead><tr>";
            for (const auto& head : b.headers)
                h << "<th>" << escapeHtml(head) << "</th>";
            h << "</tr></thead><tbody>\n";
            for (const auto& row : b.rows) {
                h << "<tr>";
                for (const auto& cell : row)
                    h << (b.monospaceCells ? "<td class=\"mono\">" : "<td>") << escapeHtml(cell) << "</td>";
                h << "</tr>\n";
            }
            h << "</tbody></table>\n";
            break;
        case Block::Kind::Figure:
            h << "<figure>" << toSvg(b.figure) << "<figcaption>" << escapeHtml(b.figure.title) << "</figcaption></figure>\n";
            break;
        }
    }
    h << "</body></html>\n";
    return h.str();
}

std::string renderPdf(const ReportData& data)
{
    PdfFlow flow("SparseLab compression report");
    flow.title("SparseLab compression report", data.compressedFolder + " - created " + data.createdUtc);
    for (const auto& b : reportBlocks(data)) {
        switch (b.kind) {
        case Block::Kind::Heading: flow.heading(b.text); break;
        case Block::Kind::Paragraph: flow.paragraph(b.text); break;
        case Block::Kind::Table: flow.table(b); break;
        case Block::Kind::Figure: flow.figure(b.figure); break;
        }
    }
    return flow.finish();
}

} // namespace sparselab::report

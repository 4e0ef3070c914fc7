// The only GUI translation unit that sees LibTorch: it runs the engine and converts its
// objects into the plain values the widgets show.
#include "engine_jobs.h"
#include "engine_support.h"

#include "recipe_bridge.h"

#include "data/calibration.h"
#include "export/gguf_export.h"
#include "export/hf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "pipeline/prune_pipeline.h"
#include "pipeline/recipe.h"
#include "store/run_records.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/gpu_info.h"
#include "util/json_file.h"
#include "util/sha256.h"
#include "workflow/compression_run.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>

#include <QCoreApplication>
#include <QDateTime>
#include <QDirIterator>
#include <QLocale>
#include <QThread>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif

#include <algorithm>
#include <chrono>
#include <map>
#include <new>
#include <set>
#include <string_view>

namespace sparselab::gui {

namespace {

std::filesystem::path toPath(const QString& path) { return toEnginePath(path); }

QString fromStd(std::string_view text) { return QString::fromUtf8(text.data(), qsizetype(text.size())); }

// Engine messages are single lines by contract; library messages (LibTorch) may not be.
QString firstLine(const std::string& text)
{
    const QString s = fromStd(text).trimmed();
    const qsizetype nl = s.indexOf(QLatin1Char('\n'));
    return nl < 0 ? s : s.left(nl).trimmed();
}

QString progressText(const Progress& p)
{
    QString text = fromStd(p.stage);
    if (!text.isEmpty())
        text[0] = text[0].toUpper();
    if (!p.detail.empty())
        text += QStringLiteral(": ") + fromStd(p.detail);
    return text;
}

std::string readText(const QString& path, const char* what) { return readEngineText(path, what); }

// Engine work yields the CPU to the GUI thread: on a busy machine the event loop then keeps
// its 10 ms rhythm while the solver runs. On Linux a nice value belongs to a thread, and the
// threads it starts afterwards (its OpenMP team) inherit it. Once per pool thread.
void lowerWorkerPriority()
{
#if defined(__linux__)
    static thread_local bool lowered = false;
    if (lowered)
        return;
    lowered = true;
    const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    errno = 0;
    const int current = ::getpriority(PRIO_PROCESS, tid);
    if (errno == 0)
        (void)::setpriority(PRIO_PROCESS, tid, std::min(19, current + 5));
#endif
}

} // namespace

// ---------------------------------------------------------------------------------------------
// EngineJob

EngineJob::EngineJob(int threads, QObject* parent)
    : QObject(parent), m_threads(threads)
{
    // The owner deletes the job after its last signal (the pool must not).
    setAutoDelete(false);
}

EngineJob::~EngineJob() = default;

void EngineJob::run()
{
    try {
        // Grad mode and the intra-op thread setting are thread-local in LibTorch, and pool
        // threads are reused: set both here, every time.
        lowerWorkerPriority(); // before any OpenMP team is created on this thread
        at::init_num_threads();
        if (m_threads > 0)
            setEngineThreads(m_threads); // torch's pool (thread-local) and OpenBLAS's (process-wide)
        at::NoGradGuard noGrad;
        throwIfCancelled(&m_cancel);
        execute();
        return;
    } catch (const CancelledError&) {
        if (!m_delivered)
            postFinal([this] { Q_EMIT cancelled(); });
        return;
    } catch (const InputError& e) {
        const QString message = firstLine(e.what());
        if (!m_delivered)
            postFinal([this, message] { Q_EMIT failed(message); });
        return;
    } catch (const c10::Error& e) {
        const QString message = tr("Internal error: %1").arg(firstLine(e.what_without_backtrace()));
        if (!m_delivered)
            postFinal([this, message] { Q_EMIT failed(message); });
        return;
    } catch (const std::bad_alloc&) {
        if (!m_delivered)
            postFinal([this] { Q_EMIT failed(tr("Out of memory: the model or the text is too large for this machine.")); });
        return;
    } catch (const std::exception& e) {
        const QString message = tr("Internal error: %1").arg(firstLine(e.what()));
        if (!m_delivered)
            postFinal([this, message] { Q_EMIT failed(message); });
        return;
    } catch (...) {
        if (!m_delivered)
            postFinal([this] { Q_EMIT failed(tr("Internal error: unknown exception")); });
    }
}

void EngineJob::post(std::function<void()> emitter)
{
    // Queued to the job's own thread: receivers never run on the worker, and events for a
    // job deleted in the meantime are discarded by Qt.
    QMetaObject::invokeMethod(this, std::move(emitter), Qt::QueuedConnection);
}

ProgressCallback EngineJob::progressCallback()
{
    return [this](const Progress& p) { reportProgress(p); };
}

void EngineJob::reportProgress(const Progress& p)
{
    const auto now = std::chrono::steady_clock::now();
    // The last report of a stage is always delivered, even when throttled away at the time.
    if (m_pending && m_latest.stage != p.stage)
        emitProgress(m_latest);
    const bool complete = p.total > 0 && p.done >= p.total;
    if (!m_emittedOnce || complete || now - m_lastEmit >= m_interval) {
        emitProgress(p);
    } else {
        m_latest = p;
        m_pending = true;
    }
}

void EngineJob::flushProgress()
{
    if (m_pending)
        emitProgress(m_latest);
}

void EngineJob::emitProgress(const Progress& p)
{
    m_latest = p;
    m_pending = false;
    m_emittedOnce = true;
    m_lastEmit = std::chrono::steady_clock::now();
    const qint64 done = p.done;
    const qint64 total = p.total;
    const double eta = p.etaSeconds;
    const QString text = progressText(p);
    post([this, done, total, eta, text] { Q_EMIT progress(done, total, eta, text); });
}

void EngineJob::deliver(std::function<void()> emitFinished)
{
    flushProgress();
    m_delivered = true;
    postFinal(std::move(emitFinished));
}

void EngineJob::postFinal(std::function<void()> emitFinal)
{
    post([this, emitFinal = std::move(emitFinal)] {
        Q_EMIT ending();
        emitFinal();
    });
}

EvaluationDetailPtr evaluationDetail(const eval::PerplexityResult& result)
{
    return std::make_shared<const store::PerplexityRecord>(store::perplexityRecord(result));
}

int engineThreads(qint64 hiddenSize) { return defaultEngineThreads(hiddenSize); }

QString engineDescription(qint64 hiddenSize)
{
    // Before a model is loaded the threads are not decided yet (they depend on its size), so the
    // machine's cores are named instead of a thread count the first run may not use.
    if (hiddenSize <= 0) {
        const int cores = std::max(1, QThread::idealThreadCount());
        return cores == 1 ? QStringLiteral("LibTorch %1, 1 CPU core").arg(QStringLiteral(TORCH_VERSION))
                          : QStringLiteral("LibTorch %1, %2 CPU cores").arg(QStringLiteral(TORCH_VERSION)).arg(cores);
    }
    // The threads the engine jobs use (engineThreads), as the Run view's device list says;
    // not at::get_num_threads(), which is the GUI thread's own setting.
    const int threads = engineThreads(hiddenSize);
    return threads == 1 ? QStringLiteral("LibTorch %1, 1 CPU thread").arg(QStringLiteral(TORCH_VERSION))
                        : QStringLiteral("LibTorch %1, %2 CPU threads").arg(QStringLiteral(TORCH_VERSION)).arg(threads);
}

// ---------------------------------------------------------------------------------------------
// Summary

ModelSummary summarizeModel(const model::CausalLM& model, const tokenize::Tokenizer& tokenizer)
{
    const model::ModelConfig& cfg = model.config();
    ModelSummary s;
    const QFileInfo folder(QFile::decodeName(model.folder().string().c_str()));
    s.folder = QDir::cleanPath(folder.absoluteFilePath());
    s.name = QFileInfo(s.folder).fileName();
    s.architecture = fromStd(model::architectureName(cfg.architecture));
    s.modelType = fromStd(cfg.modelType);
    s.hiddenSize = cfg.hiddenSize;
    s.intermediateSize = cfg.intermediateSize;
    s.numHeads = cfg.numHeads;
    s.numKvHeads = cfg.numKvHeads;
    s.headDim = cfg.headDim;
    s.vocabSize = cfg.vocabSize;
    s.maxPositions = cfg.maxPositions;
    s.activation = fromStd(cfg.activation);
    s.tiedEmbeddings = cfg.tieWordEmbeddings;
    s.storedDtype = fromStd(model.storedDtype());
    s.tokenizer = fromStd(tokenizer.description());
    s.tokenizerVocab = tokenizer.vocabSize();
    s.tokenizerAddsBos = tokenizer.addsBos();
    s.totalParameters = model.parameterCount();

    // Tensors that belong to a linear layer (weight and bias, by identity and by name).
    std::set<const void*> linearData;
    std::set<std::string> linearNames;
    for (int64_t b = 0; b < model.numBlocks(); ++b) {
        widgets::BlockInfo block;
        block.index = int(b);
        for (const model::LinearLayer& layer : model.linears(b)) {
            widgets::LinearLayerInfo info;
            info.name = fromStd(layer.name);
            info.kind = fromStd(layer.kind);
            info.rows = layer.weight.size(0); // [out, in]
            info.cols = layer.weight.size(1);
            info.hasBias = layer.bias.defined();
            info.parameters = layer.weight.numel() + (info.hasBias ? layer.bias.numel() : 0);
            info.dtype = s.storedDtype;
            s.linearParameters += info.parameters;
            block.linears.push_back(info);
            linearData.insert(layer.weight.data_ptr());
            linearNames.insert(layer.name);
            if (info.hasBias)
                linearData.insert(layer.bias.data_ptr());
        }
        s.blocks.push_back(block);
    }
    for (const auto& [name, tensor] : model.parameters()) {
        if (linearNames.count(name) || linearData.count(tensor.data_ptr()))
            continue;
        widgets::TensorInfo t;
        t.name = fromStd(name);
        for (int64_t d : tensor.sizes())
            t.shape.push_back(d);
        t.parameters = tensor.numel();
        s.otherTensors.push_back(t);
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// LoadModelJob

LoadModelJob::LoadModelJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

void LoadModelJob::execute()
{
    QElapsedTimer timer;
    timer.start();
    if (m_params.folder.trimmed().isEmpty())
        throw InputError("No model folder was given.");
    QFileInfo info(m_params.folder);
    // A .gguf file is converted to a temporary model folder (io/gguf_import.h).
    if (info.isFile() && io::isGgufFile(toPath(info.absoluteFilePath())))
        info = QFileInfo(QString::fromStdString(io::resolveModelPath(toPath(info.absoluteFilePath())).string()));
    // A config.json (or any file) inside the folder stands for the folder.
    else if (info.isFile())
        info = QFileInfo(info.absolutePath());
    const std::filesystem::path folder = toPath(QDir::cleanPath(info.absoluteFilePath()));
    if (!info.exists())
        throw inputError(folder, "no such folder");
    if (!info.isDir())
        throw inputError(folder, "not a folder");

    const ProgressCallback callback = progressCallback(); // ProgressReporter keeps a reference
    ProgressReporter reporter(callback, "Loading model", 3);
    reporter.report(0, "config.json");
    (void)model::ModelConfig::load(folder); // fails fast, before any weights are read
    throwIfCancelled(cancelToken());

    reporter.report(1, "tokenizer");
    std::shared_ptr<const tokenize::Tokenizer> tokenizer = tokenize::loadTokenizer(folder);
    throwIfCancelled(cancelToken());

    reporter.report(2, "weights");
    std::shared_ptr<const model::CausalLM> lm = model::CausalLM::load(folder, torch::kCPU);
    throwIfCancelled(cancelToken());

    Result result;
    result.summary = summarizeModel(*lm, *tokenizer);
    result.model = std::move(lm);
    result.tokenizer = std::move(tokenizer);
    reporter.report(3, "done");
    result.seconds = double(timer.nsecsElapsed()) / 1e9;
    deliver([this, result] { Q_EMIT finished(result); });
}

// ---------------------------------------------------------------------------------------------
// PerplexityJob

PerplexityJob::PerplexityJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

void PerplexityJob::execute()
{
    if (!m_params.model || !m_params.tokenizer)
        throw InputError("No model is loaded: open a model folder first.");
    if (m_params.textPath.trimmed().isEmpty())
        throw InputError("No evaluation text was chosen.");
    const std::string text = readEngineText(m_params.textPath, "evaluation");

    const ProgressCallback callback = progressCallback(); // ProgressReporter keeps a reference
    ProgressReporter(callback, "Tokenizing", 1).report(0, QFileInfo(m_params.textPath).fileName().toStdString());
    const std::vector<int32_t> ids =
        m_params.tokenizer->encodeForModel(text, cancelToken());
    throwIfCancelled(cancelToken());

    eval::PerplexityParams params;
    params.seqlen = m_params.seqlen;
    params.maxWindows = m_params.maxWindows;
    params.batchSize = m_params.batchSize > 0 ? m_params.batchSize : 8;

    Result result;
    result.perplexity = eval::evaluatePerplexity(*m_params.model, ids, params, callback, cancelToken());
    result.textPath = m_params.textPath;
    result.modelFolder = QFile::decodeName(m_params.model->folder().string().c_str());
    deliver([this, result] { Q_EMIT finished(result); });
}

// ---------------------------------------------------------------------------------------------
// CalibrationPreviewJob

CalibrationPreviewJob::CalibrationPreviewJob(Params params, QObject* parent)
    : EngineJob(0, parent), m_params(std::move(params))
{
}

namespace {

// The text token `ids[i]` adds after `ids[i-1]`: decoding a single piece would lose the
// leading space SentencePiece encodes as "▁", so decode it with one token of context.
QString pieceText(const tokenize::Tokenizer& tok, const std::vector<int32_t>& ids, size_t i)
{
    const int32_t cur = ids[i];
    if (i == 0)
        return fromStd(tok.decode(std::span<const int32_t>(&cur, 1)));
    const int32_t pair[2] = {ids[i - 1], cur};
    const std::string both = tok.decode(std::span<const int32_t>(pair, 2));
    const std::string prev = tok.decode(std::span<const int32_t>(pair, 1));
    if (both.compare(0, prev.size(), prev) == 0)
        return fromStd(std::string_view(both).substr(prev.size()));
    return fromStd(tok.decode(std::span<const int32_t>(&cur, 1)));
}

} // namespace

void CalibrationPreviewJob::execute()
{
    QElapsedTimer timer;
    timer.start();
    if (!m_params.tokenizer)
        throw InputError("No model is loaded: open a model folder first.");
    const std::string text = readText(m_params.textPath, "calibration");
    const ProgressCallback callback = progressCallback();
    ProgressReporter(callback, "Tokenizing", 1).report(0, QFileInfo(m_params.textPath).fileName().toStdString());
    const std::vector<int32_t> ids = m_params.tokenizer->encodeForModel(text, cancelToken());
    throwIfCancelled(cancelToken());

    Result r;
    r.textPath = m_params.textPath;
    r.textBytes = qint64(text.size());
    r.textTokens = qint64(ids.size());
    r.nsamples = m_params.nsamples;
    r.seqlen = m_params.seqlen;
    r.calibrationTokens = m_params.nsamples * m_params.seqlen;
    if (m_params.seqlen < 2 || m_params.nsamples < 1)
        throw InputError("Calibration needs at least one window of at least 2 tokens.");
    if (r.textTokens < m_params.seqlen + 1) {
        r.tooShort = true;
        r.warning = tr("The text is too short: %1 tokens, but one window needs %2. Choose a longer text or shorter windows.")
                        .arg(r.textTokens)
                        .arg(m_params.seqlen + 1);
        r.seconds = double(timer.nsecsElapsed()) / 1e9;
        deliver([this, r] { Q_EMIT finished(r); });
        return;
    }

    data::CalibrationParams cp;
    cp.nsamples = m_params.nsamples;
    cp.seqlen = m_params.seqlen;
    cp.seed = m_params.seed;
    const data::CalibrationWindows windows = data::sampleCalibrationWindows(ids, cp, toPath(m_params.textPath));
    throwIfCancelled(cancelToken());

    // Coverage by a difference array: O(text + windows).
    std::vector<int32_t> delta(ids.size() + 1, 0);
    for (int64_t offset : windows.offsets) {
        ++delta[size_t(offset)];
        --delta[size_t(std::min<int64_t>(offset + windows.seqlen, int64_t(ids.size())))];
    }
    int64_t covered = 0, depth = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
        depth += delta[i];
        covered += depth > 0 ? 1 : 0;
    }
    r.coverage = double(covered) / double(ids.size());
    if (r.calibrationTokens > r.textTokens)
        r.warning = tr("The windows repeat the text: %1 tokens are drawn from a text of %2 tokens. A longer text "
                       "calibrates better.")
                        .arg(QLocale().toString(r.calibrationTokens), QLocale().toString(r.textTokens));

    for (int64_t w = 0; w < std::min<int64_t>(windows.nsamples, m_params.previewWindows); ++w) {
        throwIfCancelled(cancelToken());
        widgets::TokenWindowPreview preview;
        preview.index = w;
        preview.offset = windows.offsets[size_t(w)];
        preview.length = windows.seqlen;
        const int64_t shown = std::min<int64_t>(windows.seqlen, m_params.previewTokens);
        for (int64_t t = 0; t < shown; ++t) {
            const size_t at = size_t(preview.offset + t);
            preview.ids.append(ids[at]);
            preview.pieces.append(pieceText(*m_params.tokenizer, ids, at));
        }
        r.windows.append(preview);
    }
    r.seconds = double(timer.nsecsElapsed()) / 1e9;
    deliver([this, r] { Q_EMIT finished(r); });
}

// ---------------------------------------------------------------------------------------------
// RunJob

namespace {

constexpr auto kFrameInterval = std::chrono::milliseconds(100);

// The weight [rows, cols] as a frame of at most cap × cap cells. Only entries in final
// columns (< colsFinal) count as pruned: zeros ahead of the solver are not decisions yet.
widgets::HeatmapFrame makeFrame(const QString& layer, const torch::Tensor& weight, int64_t colsFinal,
                                int64_t blocksDone, int64_t blocksTotal, int cap)
{
    const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat32); // [rows, cols]
    const int64_t rows = w.size(0), cols = w.size(1);
    torch::Tensor pruned = w.eq(0);
    if (colsFinal < cols)
        pruned.slice(1, std::max<int64_t>(0, colsFinal), cols).fill_(false);
    const torch::Tensor prunedF = pruned.to(torch::kFloat32);
    const torch::Tensor keptAbs = w.abs().mul(1.0 - prunedF);
    const int64_t h = std::min<int64_t>(rows, cap), wd = std::min<int64_t>(cols, cap);
    torch::Tensor magnitude, share;
    if (h == rows && wd == cols) {
        magnitude = keptAbs;
        share = prunedF;
    } else {
        const auto pool = [&](const torch::Tensor& t) {
            return at::adaptive_avg_pool2d(t.unsqueeze(0).unsqueeze(0), {h, wd}).squeeze(0).squeeze(0);
        };
        share = pool(prunedF);
        const torch::Tensor kept = 1.0 - share;
        magnitude = torch::where(kept > 1e-6, pool(keptAbs) / kept.clamp_min(1e-6), torch::zeros_like(kept));
    }
    magnitude = magnitude.contiguous();
    share = share.contiguous();

    widgets::HeatmapFrame f;
    f.layer = layer;
    f.rows = rows;
    f.cols = cols;
    f.height = int(h);
    f.width = int(wd);
    f.magnitude = QVector<float>(magnitude.data_ptr<float>(), magnitude.data_ptr<float>() + magnitude.numel());
    f.pruned = QVector<float>(share.data_ptr<float>(), share.data_ptr<float>() + share.numel());
    f.colsFinal = std::clamp<int64_t>(colsFinal, 0, cols);
    f.blocksDone = blocksDone;
    f.blocksTotal = blocksTotal;
    f.prunedFraction = double(pruned.sum().item<int64_t>()) / double(std::max<int64_t>(1, w.numel())); // exact count
    return f;
}

// A private copy whose linear weights can be pruned without touching `dense`: the copy
// shares the never-pruned tensors (embeddings, norms, head) and owns fresh linear weights.
// CausalLM reads linear weights from its LinearLayer entries at run time (causal_lm.cpp),
// so replacing them in the copy is enough.
std::shared_ptr<model::CausalLM> prunableCopy(const model::CausalLM& dense)
{
    auto copy = std::make_shared<model::CausalLM>(dense);
    for (model::LinearLayer* layer : copy->allLinears())
        layer->weight = layer->weight.clone();
    return copy;
}

} // namespace

struct RunJob::State {
    // The run's phases, in order; their weights are expected seconds (job_progress.h).
    enum Phase { Tokenize = 0, Prune = 1, Before = 2, Pruned = 3, Recover = 4, After = 5 };
    PhasedProgress progress;
    QString stage;
    qint64 layersDone = 0;
    qint64 layerCount = 0;
    QString currentLayer;
    qint64 currentLayerIndex = 0; // 0-based among the layers solved, of currentLayer
    double layerFraction = 0;
    // Pruning advances per decoder block: collecting its inputs (kCollect), solving its layers
    // (kSolve, by layers solved), passing the inputs on (the rest, done when the next block
    // starts). Every block costs about the same, so block boundaries fall on the right time.
    static constexpr double kCollect = 0.45;
    static constexpr double kSolve = 0.10;
    int64_t numBlocks = 1;
    int64_t block = 0;                          // block being worked on
    double blockShare = 0;                      // how much of it is done, [0, 1)
    std::map<int64_t, int64_t> layersPerBlock;  // block → layers to solve
    std::map<int64_t, int64_t> solvedPerBlock;  // block → layers solved
    std::chrono::steady_clock::time_point lastEmit{};
    bool emittedOnce = false;
    std::chrono::steady_clock::time_point lastFrame{};
    std::map<std::string, model::LinearLayer*> layers; // module name → layer of the copy
    std::map<std::string, int64_t> layerBlock;         // module name → decoder block
    std::map<std::string, int64_t> blocksize;          // module name → SparseGPT block
    std::map<std::string, std::pair<int64_t, int64_t>> blocks; // module name → last blocks done/total
    double pruneUnits = 0;                      // windows × tokens × blocks to prune
    double recoveryUnits = 0;                   // token-blocks recovery runs through
    std::chrono::steady_clock::time_point lastStepPost{}; // the loss curve's last point

    void updatePruneFraction()
    {
        const int64_t layers = layersPerBlock.count(block) ? layersPerBlock.at(block) : 0;
        const int64_t solved = solvedPerBlock.count(block) ? solvedPerBlock.at(block) : 0;
        double share = blockShare;
        if (layers > 0)
            share = std::max(share, kCollect + kSolve * (double(solved) + std::min(layerFraction, 0.999)) / double(layers));
        progress.set(Prune, (double(block) + std::min(share, 0.999)) / double(std::max<int64_t>(1, numBlocks)));
    }
};

RunJob::RunJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

void RunJob::report(State& state, bool force)
{
    const auto now = std::chrono::steady_clock::now();
    if (!force && state.emittedOnce && now - state.lastEmit < std::chrono::milliseconds(100))
        return;
    state.emittedOnce = true;
    state.lastEmit = now;
    RunProgress p;
    p.overall = state.progress.overall();
    p.etaSeconds = state.progress.etaSeconds();
    p.stage = state.stage;
    p.layer = state.currentLayer;
    p.layerIndex = state.currentLayer.isEmpty() ? state.layersDone : state.currentLayerIndex;
    p.layerCount = state.layerCount;
    p.layerFraction = state.layerFraction;
    p.recovering = state.progress.phase() == State::Recover;
    const qint64 done = qint64(std::llround(p.overall * 10000.0));
    QString text = p.stage;
    if (state.progress.phase() == State::Prune && !p.layer.isEmpty())
        text += QStringLiteral(": ") + p.layer;
    post([this, p, done, text] {
        Q_EMIT runProgress(p);
        Q_EMIT progress(done, 10000, p.etaSeconds, text);
    });
}

void RunJob::postFrame(State& state, const QString& layer, bool force)
{
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - state.lastFrame < kFrameInterval)
        return;
    const auto it = state.layers.find(layer.toStdString());
    if (it == state.layers.end())
        return;
    state.lastFrame = now;
    const auto blocks = state.blocks[it->first];
    const int64_t colsFinal = force ? it->second->weight.size(1) : blocks.first * state.blocksize[it->first];
    widgets::HeatmapFrame frame =
        makeFrame(layer, it->second->weight, colsFinal, force ? std::max(blocks.first, blocks.second) : blocks.first,
                  blocks.second, std::max(8, m_params.heatmapCells));
    post([this, frame] { Q_EMIT heatmapFrame(frame); });
}

void RunJob::execute()
{
    if (!m_params.model || !m_params.tokenizer)
        throw InputError("No model is loaded: open a model folder first.");
    if (m_params.plan.isEmpty())
        throw InputError("The plan has no layers: open a model first.");
    if (m_params.calibration.textPath.trimmed().isEmpty())
        throw InputError("No calibration text was chosen.");
    if (m_params.evaluation.enabled && m_params.evaluation.textPath.trimmed().isEmpty())
        throw InputError("No evaluation text was chosen.");
    model::requireWindowFits(m_params.model->config(), m_params.calibration.seqlen, "Window length");

    // The run as the CLI's prune runs it (workflow/compression_run.h): same spec, same record.
    const workflow::CompressionSpec spec = compressionSpec();
    State state;
    planProgress(state, spec);
    std::shared_ptr<model::CausalLM> copy = copyToPrune();
    trackLayers(state, *copy);
    CostRates measured = m_params.rates;
    const workflow::RunObserver observer = runObserver(state, spec, measured);
    const workflow::CompressionOutcome outcome =
        workflow::runCompression(*copy, *m_params.tokenizer, spec, observer, m_params.model.get());
    // The compressed model is in memory now, kept by the window: the checkpoints have served.
    workflow::clearCheckpoints(spec);
    measureRates(state, outcome, measured);

    Result result;
    result.record = viewRecord(state, outcome);
    result.model = std::move(copy);
    result.measured = measured;
    state.progress.finish();
    state.stage = tr("Done");
    report(state, true); // the final state, before finished()
    deliver([this, result] { Q_EMIT finished(result); });
}

workflow::CompressionSpec RunJob::compressionSpec() const
{
    const CalibrationSettings& calib = m_params.calibration;
    const EvaluationSettings& evalSettings = m_params.evaluation;
    workflow::CompressionSpec spec;
    spec.calibrationFile = toPath(calib.textPath);
    spec.calibration.nsamples = calib.nsamples;
    spec.calibration.seqlen = calib.seqlen;
    spec.calibration.seed = calib.seed;
    if (evalSettings.enabled)
        spec.evaluationFile = toPath(evalSettings.textPath);
    spec.evaluation.seqlen = evalSettings.seqlen > 0 ? evalSettings.seqlen : calib.seqlen;
    spec.evaluation.maxWindows = evalSettings.maxWindows;
    spec.evaluation.batchSize = evalSettings.batchSize > 0 ? evalSettings.batchSize : 8;
    spec.prune.recipe = recipeFromPlan(m_params.plan);
    spec.prune.recipeSource = "plan";
    spec.device = m_params.device.toStdString();
    spec.createdBy = "sparselab (GUI)";
    spec.keepRecordMasks = true; // saved with the workspace later, the model perhaps gone by then
    spec.label = m_params.name.toStdString();
    if (evalSettings.enabled && std::isfinite(m_params.perplexityBefore)) {
        if (m_params.detailBefore) {
            spec.knownBefore = *m_params.detailBefore;
        } else {
            store::PerplexityRecord known;
            known.perplexity = m_params.perplexityBefore;
            spec.knownBefore = known;
        }
    }
    if (m_params.recovery.enabled) {
        spec.recovery.steps = m_params.recovery.steps;
        spec.recovery.loss = recovery::parseLoss(m_params.recovery.loss.toStdString(), "Recovery loss");
        spec.recovery.learningRate = m_params.recovery.learningRate;
    }
    if (!m_params.checkpointFolder.isEmpty())
        spec.checkpointFolder = toPath(m_params.checkpointFolder);
    return spec;
}

// The phases and what each is expected to cost (the weights of the progress bar).
void RunJob::planProgress(State& state, const workflow::CompressionSpec& spec) const
{
    // The evaluation passes are weighed once the calibration text is tokenized (its bytes per
    // token give the evaluation's windows).
    state.numBlocks = std::max<int64_t>(1, m_params.model->numBlocks());
    const CalibrationSettings& calib = m_params.calibration;
    state.pruneUnits = double(calib.nsamples) * double(calib.seqlen) * double(state.numBlocks);
    const RecoverySettings& recoverySettings = m_params.recovery;
    // A recovery step runs one batch of windows forward and backward through the whole model
    // (block loss: through one block per step, every block in turn).
    state.recoveryUnits =
        recoverySettings.enabled
            ? double(recoverySettings.steps) * double(spec.recovery.batchWindows) * double(calib.seqlen)
                  * (spec.recovery.loss == recovery::RecoveryLoss::BlockMse ? double(state.numBlocks) : double(state.numBlocks + 1))
            : 0.0;
    state.progress = PhasedProgress({{tr("Tokenizing"), 0.0},
                                     {tr("Pruning"), state.pruneUnits * m_params.rates.prunePerTokenBlock},
                                     {tr("Perplexity before"), 0.0},
                                     {tr("Perplexity of the pruned model"), 0.0},
                                     {tr("Recovery"), state.recoveryUnits * m_params.rates.recoverPerTokenBlock},
                                     {tr("Perplexity after"), 0.0}});
}

// The model to prune: a copy sharing the dense model's other tensors, or a fresh load on the GPU.
std::shared_ptr<model::CausalLM> RunJob::copyToPrune() const
{
    if (m_params.device == QLatin1String("cuda")) {
        if (!torch::cuda::is_available())
            throw InputError("CUDA was chosen, but this build's LibTorch has no CUDA or no GPU is present.");
        return std::shared_ptr<model::CausalLM>(model::CausalLM::load(m_params.model->folder(), torch::kCUDA));
    }
    return prunableCopy(*m_params.model);
}

// The copy's layers by module name, for the live view's frames and the layer progress.
void RunJob::trackLayers(State& state, model::CausalLM& copy) const
{
    for (int64_t b = 0; b < copy.numBlocks(); ++b)
        for (model::LinearLayer& layer : copy.linears(b)) {
            const std::string name = pipeline::moduleName(layer.name);
            state.layers[name] = &layer;
            state.layerBlock[name] = b;
        }
    for (const PlanRow& row : m_params.plan) {
        const std::string name = row.name.toStdString();
        state.blocksize[name] = std::max<int64_t>(1, row.setting.blocksize);
        if (!row.setting.dense()) {
            ++state.layerCount;
            ++state.layersPerBlock[row.block];
        }
    }
}

// What the run reports, turned into progress, heat-map frames, the live view's layer bars, the
// loss curve and log lines. `state`, `spec` and `measured` outlive the run.
workflow::RunObserver RunJob::runObserver(State& state, const workflow::CompressionSpec& spec, CostRates& measured)
{
    workflow::RunObserver observer;
    observer.prune.cancel = cancelToken();
    observer.prune.log = [this](const std::string& line) { postLog(fromStd(line)); };
    observer.onPhase = [this, &state, &spec, &measured](workflow::RunPhase phase, const workflow::RunFacts& facts) {
        const CostRates& rates = m_params.rates;
        const bool before = m_params.evaluation.enabled && !spec.knownBefore;
        switch (phase) {
        case workflow::RunPhase::Tokenizing:
            state.progress.setExpectedSeconds(State::Tokenize, double(facts.calibrationBytes) * rates.tokenizePerByte);
            state.stage = tr("Tokenizing");
            report(state, true);
            break;
        case workflow::RunPhase::Pruning: {
            if (facts.calibrationBytes > 0)
                measured.tokenizePerByte = state.progress.phaseSeconds(State::Tokenize) / double(facts.calibrationBytes);
            if (m_params.evaluation.enabled) {
                // Windows the evaluation will have, from the text's length at the calibration
                // text's bytes per token (same tokenizer; counted exactly once it is tokenized).
                const double tokensPerByte =
                    double(facts.calibrationTokens) / double(std::max<int64_t>(1, facts.calibrationBytes));
                int64_t evalWindows = int64_t(double(facts.evaluationBytes) * tokensPerByte)
                                      / std::max<int64_t>(1, spec.evaluation.seqlen);
                if (spec.evaluation.maxWindows > 0)
                    evalWindows = std::min<int64_t>(evalWindows, spec.evaluation.maxWindows);
                const double evalUnits =
                    double(evalWindows) * double(spec.evaluation.seqlen) * double(state.numBlocks + 1);
                // Tokenizing the evaluation text is part of the first evaluation pass.
                const double tokenizeEval = double(facts.evaluationBytes) * rates.tokenizePerByte;
                state.progress.setExpectedSeconds(State::Before,
                                                  before ? tokenizeEval + evalUnits * rates.evalPerTokenBlock : 0.0);
                state.progress.setExpectedSeconds(State::After, (before ? 0.0 : tokenizeEval)
                                                                    + evalUnits * rates.evalPerTokenBlock);
                if (m_params.recovery.enabled)
                    state.progress.setExpectedSeconds(State::Pruned, evalUnits * rates.evalPerTokenBlock);
            }
            state.stage = tr("Pruning");
            state.progress.set(State::Prune, 0.0);
            report(state, true);
            // The first layer to be solved, still dense, while its block's calibration inputs
            // are collected: the live view shows what is about to be pruned from the start.
            for (const PlanRow& row : m_params.plan)
                if (!row.setting.dense()) {
                    state.blocks[row.name.toStdString()] = {0, 0};
                    postFrame(state, row.name, false);
                    break;
                }
            break;
        }
        case workflow::RunPhase::PerplexityBefore:
        case workflow::RunPhase::PerplexityAfter: {
            const State::Phase p = phase == workflow::RunPhase::PerplexityBefore ? State::Before : State::After;
            if (p == State::After) {
                state.layersDone = state.layerCount;
                state.currentLayer.clear();
                state.layerFraction = 0;
                state.progress.set(State::Prune, 1.0);
            }
            state.stage = p == State::Before ? tr("Perplexity before") : tr("Perplexity after");
            state.progress.set(p, 0.0);
            report(state, true);
            break;
        }
        case workflow::RunPhase::PerplexityPruned:
        case workflow::RunPhase::Recovering: {
            const State::Phase p = phase == workflow::RunPhase::PerplexityPruned ? State::Pruned : State::Recover;
            state.layersDone = state.layerCount;
            state.currentLayer.clear();
            state.layerFraction = 0;
            state.stage = p == State::Pruned ? tr("Perplexity of the pruned model") : tr("Recovery");
            state.progress.set(p, 0.0);
            report(state, true);
            break;
        }
        case workflow::RunPhase::Recording:
            break;
        }
    };
    observer.onPhaseProgress = [this, &state](workflow::RunPhase phase, const Progress& p) {
        const auto index = [phase]() -> int {
            switch (phase) {
            case workflow::RunPhase::PerplexityBefore: return State::Before;
            case workflow::RunPhase::PerplexityPruned: return State::Pruned;
            case workflow::RunPhase::Recovering: return State::Recover;
            case workflow::RunPhase::PerplexityAfter: return State::After;
            default: return -1;
            }
        }();
        if (index >= 0) {
            state.progress.set(index, p.fraction());
            report(state, false);
        }
    };
    // The loss curve, throttled to ~10 points a second (the record keeps every step).
    state.lastStepPost = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    const int64_t recoverySteps =
        spec.recovery.steps * (spec.recovery.loss == recovery::RecoveryLoss::BlockMse ? state.numBlocks : 1);
    observer.onRecoveryStep = [this, &state, recoverySteps](int64_t step, double loss) {
        const auto now = std::chrono::steady_clock::now();
        if (now - state.lastStepPost < std::chrono::milliseconds(100) && step < recoverySteps)
            return;
        state.lastStepPost = now;
        post([this, step, loss] { Q_EMIT recoveryStep(step, loss); });
    };
    observer.stopRecovery = &m_stopRecovery;
    observer.onRecoveryHeldOut = [this](const recovery::HeldOutPoint& point) {
        post([this, point] { Q_EMIT recoveryHeldOut(point.step, point.perplexity); });
    };
    observer.prune.progress = [this, &state](const Progress& p) {
        if (p.stage != "prune")
            return;
        if (p.done != state.layersDone) { // a layer was finished
            state.layersDone = p.done;
            state.layerFraction = 0;
        }
        const QString detail = fromStd(p.detail);
        if (const auto layer = state.layers.find(p.detail); layer != state.layers.end()) {
            if (detail != state.currentLayer) {
                // A layer starts: show it dense, before its first block.
                state.currentLayer = detail;
                state.currentLayerIndex = state.layersDone;
                state.layerFraction = 0;
                state.blocks[p.detail] = {0, 0};
                const int64_t b = state.layerBlock[p.detail];
                if (b != state.block) {
                    state.block = b;
                    state.blockShare = 0;
                }
                state.blockShare = std::max(state.blockShare, State::kCollect); // its inputs are collected
                postFrame(state, detail, false);
            }
        } else if (p.detail.rfind("block ", 0) == 0) {
            // "block B: collecting inputs": the previous block has passed its inputs on.
            const int64_t b = std::strtoll(p.detail.c_str() + 6, nullptr, 10);
            if (b != state.block) {
                state.block = b;
                state.blockShare = 0;
            }
        }
        state.updatePruneFraction();
        report(state, false);
    };
    observer.prune.onBlock = [this, &state](const std::string& layer, int64_t done, int64_t total, const at::Tensor&) {
        state.blocks[layer] = {done, total};
        state.layerFraction = total > 0 ? double(done) / double(total) : 0.0;
        state.updatePruneFraction();
        if (done < total)
            postFrame(state, fromStd(layer), false);
        report(state, false);
    };
    observer.prune.onLayer = [this, &state](const solve::LayerRecord& r) {
        post([this, r] { Q_EMIT layerFinished(r); });
        if (!r.dense) {
            ++state.solvedPerBlock[r.block];
            state.layerFraction = 0;
            auto& blocks = state.blocks[r.name];
            if (blocks.second == 0)
                blocks = {1, 1}; // baselines have no column blocks
            postFrame(state, fromStd(r.name), true);
            state.updatePruneFraction();
            report(state, false);
        }
    };
    return observer;
}

// The rates this run measured, for weighing the next run's progress.
void RunJob::measureRates(const State& state, const workflow::CompressionOutcome& outcome, CostRates& measured) const
{
    if (state.pruneUnits > 0)
        measured.prunePerTokenBlock = outcome.prune.seconds / state.pruneUnits;
    if (outcome.recovery && state.recoveryUnits > 0 && outcome.recovery->stoppedBy == "steps")
        measured.recoverPerTokenBlock = outcome.recovery->seconds / state.recoveryUnits;
    for (const auto& measuredPass : {outcome.before, outcome.after})
        if (measuredPass) {
            const double units = double(measuredPass->windows) * double(measuredPass->seqlen) * double(state.numBlocks + 1);
            if (units > 0)
                measured.evalPerTokenBlock = measuredPass->seconds / units;
        }
}

// The run as the views keep it: the record the run made, its perplexities and details, plan
// and settings; the outcome is logged as it is read.
RunRecord RunJob::viewRecord(const State& state, const workflow::CompressionOutcome& outcome)
{
    const store::RunRecord& stored = outcome.record;
    postLog(tr("Pruned %1 layers in %2; linear-layer sparsity %3 %")
            .arg(state.layerCount)
            .arg(formatSeconds(outcome.prune.seconds))
            .arg(100.0 * outcome.prune.linearSparsity(), 0, 'f', 2));

    RunRecord record;
    record.name = m_params.name;
    record.modelFolder = QFile::decodeName(m_params.model->folder().string().c_str());
    record.device = m_params.device;
    record.calibration = m_params.calibration;
    record.evaluation = m_params.evaluation;
    record.plan = m_params.plan;
    record.recipeJson = QByteArray::fromStdString(stored.recipeJson); // the recipe the run ran, as recorded
    if (stored.perplexityBefore) {
        record.perplexityBefore = stored.perplexityBefore->perplexity;
        record.detailBefore = outcome.before ? evaluationDetail(*outcome.before) : m_params.detailBefore;
        if (outcome.before)
            postLog(tr("Perplexity before: %1 (%2 windows × %3 tokens)")
                    .arg(outcome.before->perplexity, 0, 'f', 4)
                    .arg(outcome.before->windows)
                    .arg(outcome.before->seqlen));
    }
    if (outcome.recovery) {
        record.recovery = m_params.recovery;
        if (outcome.pruned)
            record.perplexityPruned = outcome.pruned->perplexity;
        postLog(tr("Recovery (%1): %2 steps in %3, stopped by %4%5")
                .arg(m_params.recovery.summary())
                .arg(outcome.recovery->stepsRun)
                .arg(formatSeconds(outcome.recovery->seconds))
                .arg(fromStd(outcome.recovery->stoppedBy))
                .arg(outcome.pruned ? tr("; perplexity of the pruned model %1").arg(outcome.pruned->perplexity, 0, 'f', 4)
                                    : QString()));
    }
    if (outcome.after) {
        record.perplexityAfter = outcome.after->perplexity;
        record.detailAfter = evaluationDetail(*outcome.after);
        record.evalWindows = outcome.after->windows;
        record.evalSeqlen = outcome.after->seqlen;
        postLog(tr("Perplexity after: %1").arg(outcome.after->perplexity, 0, 'f', 4));
    }
    record.layers = QList<solve::LayerRecord>(stored.layers.begin(), stored.layers.end());
    record.linearSparsity = stored.linearSparsity;
    record.pruneSeconds = stored.timings.pruneSeconds;
    record.totalSeconds = state.progress.elapsedSeconds();
    record.finishedAt = QDateTime::currentDateTime();
    record.modelKept = true;
    auto storedRecord = std::make_shared<store::RunRecord>(stored);
    storedRecord->timings.totalSeconds = record.totalSeconds; // the whole job, as the views show it
    record.stored = std::move(storedRecord);
    const std::string provenance = outcome.provenance.dump();
    record.provenanceJson = QByteArray(provenance.data(), qsizetype(provenance.size()));

    return record;
}

void RunJob::postLog(const QString& line)
{
    post([this, line] { Q_EMIT logLine(line); });
}

// ---------------------------------------------------------------------------------------------
// ExportJob

ExportJob::ExportJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

// ---------------------------------------------------------------------------------------------
// engine_support.h

std::filesystem::path toEnginePath(const QString& path) { return std::filesystem::path(QFile::encodeName(path).toStdString()); }

// Reads a whole UTF-8 text file (readTextFile: a regular file, size-capped); InputError naming
// it when unreadable or empty.
std::string readEngineText(const QString& path, const char* what)
{
    if (path.trimmed().isEmpty())
        throw InputError(std::string("No ") + what + " text was chosen.");
    const std::filesystem::path file = toEnginePath(path);
    std::string text = readTextFile(file);
    if (text.find_first_not_of(" \t\r\n\v\f") == std::string::npos)
        throw inputError(file, "the file holds no text");
    return text;
}

data::CalibrationWindows drawCalibrationWindows(const tokenize::Tokenizer& tokenizer, const CalibrationSettings& calibration,
                                                const CancelToken* cancel)
{
    const std::string text = readEngineText(calibration.textPath, "calibration");
    const std::vector<int32_t> ids = tokenizer.encodeForModel(text, cancel);
    data::CalibrationParams cp;
    cp.nsamples = calibration.nsamples;
    cp.seqlen = calibration.seqlen;
    cp.seed = calibration.seed;
    return data::sampleCalibrationWindows(ids, cp, toEnginePath(calibration.textPath));
}

nlohmann::json runProvenance(const RunRecord& run)
{
    if (run.provenanceJson.isEmpty())
        throw InputError("Run '" + run.name.toStdString() + "' carries no provenance record: run it again to export it.");
    nlohmann::json provenance =
        parseJsonText(std::string_view(run.provenanceJson.constData(), size_t(run.provenanceJson.size())),
                      "run '" + run.name.toStdString() + "'", "its provenance");
    provenance["run_name"] = run.name.toStdString(); // renamed since, perhaps
    return provenance;
}

void ExportJob::exportGgufFile(const std::filesystem::path& out, const QElapsedTimer& timer)
{
    const auto type = io::parseGgufFileType(m_params.ggufType.toStdString());
    if (!type)
        throw InputError("Unknown GGUF type '" + m_params.ggufType.toStdString() + "'.");
    const QString problem = ggufTargetProblem(QFile::decodeName(out.string().c_str()));
    if (!problem.isEmpty())
        throw InputError(problem.toStdString());
    const nlohmann::json layers = runProvenance(m_params.record).at("layers");
    exporting::GgufExportParams params;
    params.type = *type;
    params.name = m_params.record.name.toStdString();
    params.grids = exporting::gridsFromLayerRecords(*m_params.model, layers, *type, out);
    const exporting::GgufExportSummary s =
        exporting::exportGguf(*m_params.model, out, params, progressCallback(), cancelToken());
    Result r;
    r.folder = QFile::decodeName(s.file.string().c_str());
    r.files = 1;
    r.bytes = qint64(s.bytes);
    r.tensorsReplaced = qint64(params.grids.size());
    QStringList types;
    for (const auto& [name, count] : s.tensorTypes)
        types << QStringLiteral("%1 × %2").arg(count).arg(QString::fromStdString(name));
    r.fileNames << QStringLiteral("%1 (%2)").arg(QFileInfo(r.folder).fileName(), formatBytes(r.bytes))
                << tr("Tensors: %1").arg(types.join(QStringLiteral(", ")))
                << tr("%n layer(s) packed losslessly from their fp16 GPTQ grids", nullptr, int(params.grids.size()));
    r.seconds = double(timer.nsecsElapsed()) / 1e9;
    deliver([this, r] { Q_EMIT finished(r); });
}

void ExportJob::execute()
{
    QElapsedTimer timer;
    timer.start();
    if (!m_params.model)
        throw InputError("This run's compressed model is no longer in memory: run it again to export it.");
    if (m_params.outDir.trimmed().isEmpty())
        throw InputError("No output folder was chosen.");
    const std::filesystem::path out = toPath(QDir::cleanPath(QFileInfo(m_params.outDir).absoluteFilePath()));
    const std::filesystem::path source = m_params.model->folder();
    if (!m_params.ggufType.isEmpty()) {
        exportGgufFile(out, timer);
        return;
    }
    exporting::checkExportTarget(source, out);

    const ProgressCallback callback = progressCallback();
    const nlohmann::json provenance = runProvenance(m_params.record);

    const exporting::ExportSummary summary =
        exporting::exportHuggingFaceFolder(*m_params.model, out, provenance, callback, cancelToken());

    Result r;
    r.folder = QFile::decodeName(summary.folder.string().c_str());
    r.files = summary.files;
    r.bytes = summary.bytes;
    r.tensorsReplaced = summary.tensorsReplaced;
    QDirIterator it(r.folder, QDir::Files, QDirIterator::Subdirectories);
    QStringList names;
    while (it.hasNext()) {
        it.next();
        names << QStringLiteral("%1 (%2)").arg(QDir(r.folder).relativeFilePath(it.filePath()), formatBytes(it.fileInfo().size()));
    }
    names.sort();
    r.fileNames = names;
    r.seconds = double(timer.nsecsElapsed()) / 1e9;
    deliver([this, r] { Q_EMIT finished(r); });
}

// ---------------------------------------------------------------------------------------------
// Devices and the export guard

QList<DeviceChoice> availableDevices(qint64 hiddenSize)
{
    QList<DeviceChoice> devices;
    DeviceChoice cpu;
    cpu.key = QStringLiteral("cpu");
    const int threads = engineThreads(hiddenSize);
    cpu.label = threads == 1 ? QStringLiteral("CPU (1 thread)") : QStringLiteral("CPU (%1 threads)").arg(threads);
    cpu.available = true;
    devices << cpu;

    DeviceChoice cuda;
    cuda.key = QStringLiteral("cuda");
    cuda.label = QStringLiteral("CUDA");
    cuda.available = torch::cuda::is_available();
    const util::GpuQuery gpus = util::queryGpus(); // NVML via dlopen: free memory, names
    if (cuda.available) {
        cuda.label = QStringLiteral("CUDA (%1 device%2)").arg(torch::cuda::device_count()).arg(torch::cuda::device_count() == 1 ? "" : "s");
        if (!gpus.gpus.empty()) {
            const util::GpuInfo& g = gpus.gpus.front();
            cuda.label = QStringLiteral("CUDA 0: %1, %2 GB free of %3 GB")
                             .arg(QString::fromStdString(g.name))
                             .arg(double(g.freeBytes) / 1e9, 0, 'f', 1)
                             .arg(double(g.totalBytes) / 1e9, 0, 'f', 1);
        }
    } else if (!gpus.gpus.empty()) {
        cuda.reason = QCoreApplication::translate("sparselab::gui::RunJob",
                                                  "This build's LibTorch has no CUDA (a %1 is present; build against a CUDA LibTorch, see docs/gpu.md).")
                          .arg(QString::fromStdString(gpus.gpus.front().name));
    } else {
        cuda.reason = QCoreApplication::translate("sparselab::gui::RunJob", "This build's LibTorch has no CUDA.");
    }
    devices << cuda;
    return devices;
}

QString exportTargetProblem(const QString& modelFolder, const QString& outDir)
{
    if (outDir.trimmed().isEmpty())
        return QCoreApplication::translate("sparselab::gui::ExportJob", "Choose an output folder.");
    try {
        exporting::checkExportTarget(toPath(modelFolder), toPath(QDir::cleanPath(QFileInfo(outDir).absoluteFilePath())));
        return {};
    } catch (const std::exception& e) {
        return firstLine(e.what());
    }
}

QString ggufTargetProblem(const QString& file)
{
    const QFileInfo info(file);
    if (file.trimmed().isEmpty())
        return QCoreApplication::translate("sparselab::gui::ExportJob", "Choose an output file.");
    if (!file.endsWith(QLatin1String(".gguf"), Qt::CaseInsensitive))
        return QCoreApplication::translate("sparselab::gui::ExportJob", "A GGUF file name must end in .gguf.");
    if (info.exists())
        return QCoreApplication::translate("sparselab::gui::ExportJob", "%1 already exists; choose a new file (nothing is overwritten).")
            .arg(QDir::toNativeSeparators(info.absoluteFilePath()));
    if (!info.absoluteDir().exists())
        return QCoreApplication::translate("sparselab::gui::ExportJob", "Its folder %1 does not exist.")
            .arg(QDir::toNativeSeparators(info.absolutePath()));
    return {};
}

} // namespace sparselab::gui

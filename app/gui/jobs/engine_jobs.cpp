// The only GUI translation unit that sees LibTorch: it runs the engine and converts its
// objects into the plain values the widgets show.
#include "engine_jobs.h"
#include "engine_support.h"

#include "recipe_bridge.h"
#include "run_live_feed.h"

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

EngineJob::EngineJob(EngineThreads threads, QObject* parent)
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
        setEngineThreads(m_threads); // the kernels' and torch's counts (thread-local), OpenBLAS's pool (process-wide)
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

EngineThreads engineThreads(qint64 hiddenSize) { return defaultEngineThreads(hiddenSize); }

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
    const int threads = engineThreads(hiddenSize).kernels;
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
    : EngineJob(EngineThreads{}, parent), m_params(std::move(params))
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

RunJob::RunJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
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
    std::map<std::string, model::LinearLayer*> layers; // the copy's, by module name (for frames)
    RunLiveFeed feed(spec, m_params.plan, m_params.model->numBlocks(), m_params.calibration, m_params.evaluation,
                     m_params.recovery, m_params.rates, liveSink(layers));
    std::shared_ptr<model::CausalLM> copy = copyToPrune();
    std::map<std::string, RunLiveFeed::Layer> shapes;
    for (int64_t b = 0; b < copy->numBlocks(); ++b)
        for (model::LinearLayer& layer : copy->linears(b)) {
            const std::string name = pipeline::moduleName(layer.name);
            layers[name] = &layer;
            shapes[name] = {b, layer.weight.size(1)};
        }
    feed.setLayers(std::move(shapes));
    CostRates measured = m_params.rates;
    const workflow::CompressionOutcome outcome = workflow::runCompression(
        *copy, *m_params.tokenizer, spec, feed.observer(measured, cancelToken(), &m_stopRecovery), m_params.model.get());
    // The compressed model is in memory now, kept by the window: the checkpoints have served.
    workflow::clearCheckpoints(spec);
    feed.measureRates(outcome, measured);

    Result result;
    result.record = viewRecord(feed, outcome);
    result.model = std::move(copy);
    result.measured = measured;
    feed.finish(); // the final state, before finished()
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

// What the feed makes, posted to the GUI thread as this job's signals. The heat-map frames are
// made here, on the worker, from the copy's weights (`layers`).
RunFeedSink RunJob::liveSink(const std::map<std::string, model::LinearLayer*>& layers)
{
    RunFeedSink sink;
    sink.progress = [this](const RunProgress& p, qint64 done, const QString& text) {
        post([this, p, done, text] {
            Q_EMIT runProgress(p);
            Q_EMIT progress(done, 10000, p.etaSeconds, text);
        });
    };
    sink.frame = [this, &layers](const QString& layer, int64_t colsFinal, int64_t blocksDone, int64_t blocksTotal) {
        const auto it = layers.find(layer.toStdString());
        if (it == layers.end())
            return;
        widgets::HeatmapFrame frame = makeFrame(layer, it->second->weight, colsFinal, blocksDone, blocksTotal,
                                                std::max(8, m_params.heatmapCells));
        post([this, frame] { Q_EMIT heatmapFrame(frame); });
    };
    sink.layerFinished = [this](const solve::LayerRecord& r) { post([this, r] { Q_EMIT layerFinished(r); }); };
    sink.recoveryStep = [this](int64_t step, double loss) { post([this, step, loss] { Q_EMIT recoveryStep(step, loss); }); };
    sink.recoveryHeldOut = [this](int64_t step, double perplexity) {
        post([this, step, perplexity] { Q_EMIT recoveryHeldOut(step, perplexity); });
    };
    sink.log = [this](const QString& line) { postLog(line); };
    return sink;
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

// The run as the views keep it: the record the run made, its perplexities and details, plan
// and settings; the outcome is logged as it is read.
RunRecord RunJob::viewRecord(const RunLiveFeed& feed, const workflow::CompressionOutcome& outcome)
{
    const store::RunRecord& stored = outcome.record;
    postLog(tr("Pruned %1 layers in %2; linear-layer sparsity %3 %")
            .arg(feed.layerCount())
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
    record.totalSeconds = feed.elapsedSeconds();
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
    const int threads = engineThreads(hiddenSize).kernels;
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

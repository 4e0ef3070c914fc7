#include "workbench.h"

#include "memory/memory_plan.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QStandardPaths>

#include <cmath>
#include <filesystem>

namespace sparselab::gui {

namespace {

// Evaluation settings as a cache key: the text's absolute, cleaned path, seqlen, max windows.
QString evaluationKey(const QString& text, qint64 seqlen, qint64 maxWindows)
{
    return QStringLiteral("%1|%2|%3").arg(QDir::cleanPath(QFileInfo(text).absoluteFilePath())).arg(seqlen).arg(maxWindows);
}

} // namespace

Workbench::Workbench() = default;
Workbench::~Workbench() = default;

bool Workbench::setModel(std::shared_ptr<const model::CausalLM> model, std::shared_ptr<const tokenize::Tokenizer> tokenizer,
                         const widgets::ModelSummary& summary)
{
    const bool sameModel = summary.folder == m_summary.folder;
    m_model = std::move(model);
    m_tokenizer = std::move(tokenizer);
    m_summary = summary;
    try {
        m_memoryInput = std::make_shared<memory::MemoryPlanInput>(
            memory::describeModelFolder(std::filesystem::path(QFile::encodeName(m_summary.folder).toStdString())));
    } catch (const std::exception&) {
        m_memoryInput.reset(); // e.g. a .gguf file: the planner reads safetensors headers
    }
    m_densePerplexity.clear();
    if (!sameModel)
        m_runModels.clear();
    return sameModel;
}

QString Workbench::checkpointFolder() const
{
    const QByteArray folder = QDir::cleanPath(QFileInfo(m_summary.folder).absoluteFilePath()).toUtf8();
    const QString name = QString::fromLatin1(QCryptographicHash::hash(folder, QCryptographicHash::Sha256).toHex().left(16));
    return QStandardPaths::writableLocation(QStandardPaths::CacheLocation) + QStringLiteral("/resume/") + name;
}

void Workbench::keepRunModel(int runId, std::shared_ptr<model::CausalLM> model)
{
    if (model)
        m_runModels[runId] = std::move(model);
}

std::shared_ptr<const model::CausalLM> Workbench::runModel(int runId) const
{
    const auto it = m_runModels.find(runId);
    return it == m_runModels.end() ? nullptr : it->second;
}

void Workbench::forgetRunModel(int runId) { m_runModels.erase(runId); }

void Workbench::forgetRunModels() { m_runModels.clear(); }

QList<int> Workbench::releaseOldRunModels()
{
    qint64 perModel = 0;
    for (const auto& block : m_summary.blocks)
        for (const auto& layer : block.linears)
            perModel += layer.rows * layer.cols * 4; // float32 copies of the linear weights
    QList<int> newestFirst;
    for (const auto& [id, model] : m_runModels)
        newestFirst.prepend(id);
    QList<int> released;
    qint64 used = 0;
    for (int i = 0; i < newestFirst.size(); ++i) {
        if (i > 0 && used + perModel > kKeptModelBytes) {
            m_runModels.erase(newestFirst[i]);
            released.append(newestFirst[i]);
            continue;
        }
        used += perModel;
    }
    return released;
}

std::optional<Workbench::DenseEvaluation> Workbench::densePerplexity(const QString& text, qint64 seqlen,
                                                                     qint64 maxWindows) const
{
    const auto it = m_densePerplexity.find(evaluationKey(text, seqlen, maxWindows));
    if (it == m_densePerplexity.end())
        return std::nullopt;
    return it->second;
}

void Workbench::rememberDensePerplexity(const QString& text, qint64 seqlen, qint64 maxWindows,
                                        const DenseEvaluation& value)
{
    m_densePerplexity[evaluationKey(text, seqlen, maxWindows)] = value;
}

void Workbench::rememberDensePerplexityOf(const RunRecord& run, bool replace)
{
    if (!run.evaluation.enabled || !std::isfinite(run.perplexityBefore))
        return;
    const qint64 seqlen = run.evalSeqlen > 0 ? run.evalSeqlen
                                             : (run.evaluation.seqlen > 0 ? run.evaluation.seqlen : run.calibration.seqlen);
    const QString key = evaluationKey(run.evaluation.textPath, seqlen, run.evaluation.maxWindows);
    if (replace)
        m_densePerplexity[key] = {run.perplexityBefore, run.detailBefore};
    else
        m_densePerplexity.try_emplace(key, DenseEvaluation{run.perplexityBefore, run.detailBefore});
}

} // namespace sparselab::gui

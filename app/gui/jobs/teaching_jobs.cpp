#include "teaching_jobs.h"

#include "engine_support.h"
#include "teaching_problem_tensors.h"

#include "data/calibration.h"
#include "pipeline/layer_capture.h"
#include "solve/teaching_problems.h"
#include "tokenize/tokenizer.h"
#include "util/errors.h"

#include <QFile>
#include <QFileInfo>

#include <filesystem>

namespace sparselab::gui {

QString teachingProblemName(const TeachingProblem& problem) { return problem.name; }
qint64 teachingProblemRows(const TeachingProblem& problem) { return problem.weight.size(0); }
qint64 teachingProblemCols(const TeachingProblem& problem) { return problem.weight.size(1); }

CaptureLayerJob::CaptureLayerJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

void CaptureLayerJob::execute()
{
    if (!m_params.model || !m_params.tokenizer)
        throw InputError("No model is loaded: open a model folder first.");
    if (m_params.textPath.trimmed().isEmpty())
        throw InputError("No calibration text was chosen (File → Choose Calibration Text).");
    const std::filesystem::path textPath(QFile::encodeName(m_params.textPath).toStdString());
    const std::string text = readEngineText(m_params.textPath, "calibration");
    const ProgressCallback callback = progressCallback();
    ProgressReporter(callback, "Tokenizing", 1).report(0, QFileInfo(m_params.textPath).fileName().toStdString());
    const auto ids = m_params.tokenizer->encodeForModel(text, cancelToken());
    throwIfCancelled(cancelToken());
    data::CalibrationParams calib;
    calib.nsamples = m_params.nsamples;
    calib.seqlen = m_params.seqlen;
    calib.seed = m_params.seed;
    const auto windows = data::sampleCalibrationWindows(ids, calib, textPath);
    auto layer = pipeline::captureLayerProblem(*m_params.model, windows, m_params.layer.toStdString(), 8,
                                               {callback, cancelToken()});
    auto problem = std::make_shared<TeachingProblem>();
    problem->name = QString::fromStdString(layer.name);
    problem->weight = layer.weight;
    problem->hessian = layer.hessian;
    Result result;
    result.problem = problem;
    result.samples = layer.samples;
    deliver([this, result] { Q_EMIT finished(result); });
}

CompareJob::CompareJob(Params params, QObject* parent) : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

void CompareJob::execute()
{
    if (!m_params.problem)
        throw InputError("No layer problem: capture a layer or make a synthetic one first.");
    solve::ComparisonParams params;
    params.options.sparsity = m_params.sparsity;
    params.options.blocksize = m_params.blocksize;
    params.options.damp = m_params.damp;
    params.options.quant.bits = m_params.bits;
    params.points = m_params.points;
    const auto curves = solve::compareOnLayer(m_params.problem->weight, m_params.problem->hessian, params,
                                              progressCallback(), cancelToken());
    Result result;
    for (const auto& c : curves) {
        TeachingCurve t;
        t.label = QString::fromStdString(c.label);
        for (size_t i = 0; i < c.columns.size(); ++i) {
            t.columns.push_back(double(c.columns[i]));
            t.loss.push_back(c.loss[i]);
            t.relOutputError.push_back(c.relOutputError[i]);
        }
        t.sparsity = c.sparsity;
        result.curves.push_back(t);
    }
    deliver([this, result] { Q_EMIT finished(result); });
}

} // namespace sparselab::gui

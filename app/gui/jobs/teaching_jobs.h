#pragma once
// Engine jobs of the teaching mode (see engine_jobs.h for the job contract: Params in, Result
// out, progress, cancel, exactly one of finished / failed / cancelled):
//   CaptureLayerJob — calibration windows from a text, then the chosen linear layer's weight
//                     and Hessian from the dense model (pipeline/layer_capture.h);
//   CompareJob      — magnitude vs SparseGPT curves over the columns of one layer,
//                     unstructured and 2:4 (solve/teaching_problems.h).
// No LibTorch in this header: problems travel as shared pointers to an opaque struct.

#include "engine_jobs.h"

#include <QString>
#include <QVector>

#include <memory>

namespace sparselab::gui {

// A layer problem for the teaching view: weight [rows, cols] and Hessian [cols, cols]
// (float32 CPU tensors), defined in teaching_jobs.cpp; build one with makeTeachingProblem.
struct TeachingProblem;
using TeachingProblemPtr = std::shared_ptr<const TeachingProblem>;

// Layer problem accessors (teaching_jobs.cpp), so that code without LibTorch can ask.
[[nodiscard]] QString teachingProblemName(const TeachingProblem& problem);
[[nodiscard]] qint64 teachingProblemRows(const TeachingProblem& problem);
[[nodiscard]] qint64 teachingProblemCols(const TeachingProblem& problem);

class CaptureLayerJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model;         // required (read only)
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        QString layer;           // module name, e.g. "model.layers.0.self_attn.q_proj"
        QString textPath;        // calibration text (UTF-8)
        qint64 nsamples = 32;    // windows
        qint64 seqlen = 256;     // tokens per window
        quint64 seed = 0;
        EngineThreads threads;
    };
    struct Result {
        TeachingProblemPtr problem;
        qint64 samples = 0;
    };

    explicit CaptureLayerJob(Params params, QObject* parent = nullptr);

Q_SIGNALS:
    void finished(const sparselab::gui::CaptureLayerJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

// One curve of the comparison, plain values for the plots.
struct TeachingCurve {
    QString label;               // "magnitude 50%", "SparseGPT 2:4", …
    QVector<double> columns;     // columns finished
    QVector<double> loss;        // see solve::ColumnCurve::loss
    QVector<double> relOutputError;
    double sparsity = 0.0;
};

class CompareJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        TeachingProblemPtr problem;  // required
        double sparsity = 0.5;       // unstructured curves
        qint64 blocksize = 128;
        double damp = 0.01;
        int bits = 16;
        int points = 64;
        EngineThreads threads;
    };
    struct Result {
        QVector<TeachingCurve> curves; // [magnitude, SparseGPT] × [unstructured, 2:4]
    };

    explicit CompareJob(Params params, QObject* parent = nullptr);

Q_SIGNALS:
    void finished(const sparselab::gui::CompareJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

} // namespace sparselab::gui

Q_DECLARE_METATYPE(sparselab::gui::CaptureLayerJob::Result)
Q_DECLARE_METATYPE(sparselab::gui::CompareJob::Result)

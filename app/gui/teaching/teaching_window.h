#pragma once
// Teaching mode: SparseGPT on one layer, step by step (View → Teaching Mode, Ctrl+Shift+M).
//
// The problem is a small synthetic one (8 × 16 by default, Hessian identity / correlated /
// from random inputs, or matrices typed in), or any linear layer of the loaded model whose
// calibration inputs are captured on a worker thread (dense model, the Calibration view's
// text, window length and seed). The solver is solve::SparseGptStepper: its result equals
// solveLayer's bit for bit.
//
// The figure shows side by side: the weight matrix (pruned entries dark, the current block
// outlined, the current column and the followed row marked), the block's saliency
// w²/[H⁻¹]ⱼⱼ² sorted with the threshold that selects the mask, the followed row of the
// block before and after the column's update, the rows of Hinv for the block, the running
// loss, and (after Compare) magnitude vs SparseGPT, unstructured and 2:4, as loss and output
// error over the columns. Beside it the formula of the current step with its numbers.
//
// Playback is timer driven: a step runs at most ~12 ms of columns per event-loop turn and the
// views refresh at most ~30 times a second, so the window never blocks; capture and compare
// are engine jobs with progress and cancel. Export writes the figure as PNG, SVG or PDF
// (written to a temporary name, then renamed).
// GUI thread only.

#include "job_runner.h"
#include "session_types.h"
#include "teaching_jobs.h"

#include <QElapsedTimer>
#include <QMainWindow>
#include <QPointer>
#include <QString>
#include <QThreadPool>
#include <QTimer>

#include <functional>
#include <memory>
#include <vector>

class QCheckBox;
class QComboBox;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSlider;
class QSpinBox;
class QStackedWidget;
class QTextBrowser;
class QToolButton;

namespace sparselab::solve { class SparseGptStepper; }
namespace sparselab::widgets { class MatrixView; }

namespace sparselab::gui {

class TeachingWindow : public QMainWindow {
    Q_OBJECT

public:
    enum class Granularity { Column, Block };
    enum class Source { Synthetic, Custom, ModelLayer };

    struct StepOptions {
        bool nm24 = false;         // 2:4 instead of unstructured
        double sparsity = 0.5;     // unstructured
        qint64 blocksize = 8;      // columns per block (a multiple of 4 for 2:4)
        double damp = 0.0;         // relative damping (0: the correlated preset's Hinv is exact)
        int bits = 16;             // 16 = no quantization; 2..8 joint quantization
    };
    struct SyntheticParams {
        int rows = 8;
        int cols = 16;
        int preset = 1;            // 0 identity, 1 correlated, 2 random inputs
        double rho = 0.5;
        quint64 seed = 0;
    };
    using ErrorHandler = std::function<void(const QString& title, const QString& message)>;

    explicit TeachingWindow(bool restoreSettings = true, QWidget* parent = nullptr);
    ~TeachingWindow() override;

    // The model whose layers can be captured (null: none) and the calibration to use.
    void setModel(std::shared_ptr<const model::CausalLM> model, std::shared_ptr<const tokenize::Tokenizer> tokenizer);
    // Runs captures and comparisons on `runner` (the workbench's, so they queue behind nothing
    // and are refused while a run holds the model); null: this window's own.
    void setJobRunner(JobRunner* runner);
    void setCalibration(const CalibrationSettings& settings);
    void setErrorHandler(ErrorHandler handler);
    [[nodiscard]] const QString& lastError() const { return m_lastError; }

    // Problems. Each replaces the current one and resets the stepper.
    void setSyntheticProblem(const SyntheticParams& params);
    // Matrices typed as rows of numbers (see solve::parseMatrixText); false + error on bad text.
    bool setCustomProblem(const QString& weightText, const QString& hessianText);
    // Starts capturing a model layer (module name); false when refused (no model, busy).
    bool captureLayer(const QString& layer);
    void setProblem(TeachingProblemPtr problem);
    [[nodiscard]] TeachingProblemPtr problem() const { return m_problem; }
    [[nodiscard]] QStringList layerNames() const;

    void setStepOptions(const StepOptions& options); // resets the stepper
    [[nodiscard]] StepOptions stepOptions() const;
    void setGranularity(Granularity granularity);
    void setSpeed(int stepsPerSecond);               // 1..100
    // Row the formula and the update plot follow; -1 = the row with the largest |err|.
    void setFollowedRow(int row);

    [[nodiscard]] const solve::SparseGptStepper* stepper() const { return m_stepper.get(); }
    [[nodiscard]] int selectedRow() const { return m_selectedRow; }
    [[nodiscard]] QString formulaText() const;       // the formula panel, as plain text
    [[nodiscard]] bool isPlaying() const { return m_playTimer.isActive(); }
    [[nodiscard]] bool isWorking() const { return m_pendingColumns > 0; } // steps still queued
    [[nodiscard]] bool isBusy() const { return m_captureJob || m_compareJob; }
    [[nodiscard]] QWidget* figure() const { return m_figure; }
    [[nodiscard]] const QVector<TeachingCurve>& comparison() const { return m_curves; }

    // Numbers as the formula panel prints them: 4 decimals, or 4 significant digits when tiny/huge.
    [[nodiscard]] static QString formatNumber(double value);

public Q_SLOTS:
    void reset();
    bool stepColumn();         // one column now (false when finished or busy)
    bool stepBlock();          // queues the rest of the block (done in slices)
    void play();
    void pause();
    void togglePlay();
    void runToEnd();           // queues everything left (done in slices)
    bool compare();            // starts the comparison job; false when refused
    void cancelJob();
    bool exportFigure(const QString& file); // .png, .svg or .pdf; false + error otherwise
    void exportFigureDialog();

Q_SIGNALS:
    void problemChanged();
    void stepped();            // after each batch of steps, views refreshed
    void finishedLayer();      // the last column is done
    void captureFinished();
    void captureFailed(const QString& message);
    void compareFinished();
    void compareFailed(const QString& message);

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    QWidget* createControls();
    QWidget* createFigure();
    void onPlayTick();
    void doWork();
    void scheduleWork();
    void refreshViews();
    void refreshFormula();
    void refreshComparisonPlots();
    void updateControls();
    void reportError(const QString& title, const QString& message);
    void readSettings();
    void writeSettings() const;
    void rebuildStepper();

    // Engine state.
    TeachingProblemPtr m_problem;
    std::unique_ptr<solve::SparseGptStepper> m_stepper;
    std::shared_ptr<const model::CausalLM> m_model;
    std::shared_ptr<const tokenize::Tokenizer> m_tokenizer;
    CalibrationSettings m_calibration;
    QVector<TeachingCurve> m_curves;
    float m_weightScale = 1.0f;       // |w| at the ends of the weight colour scale (dense max)
    int m_selectedRow = 0;
    int m_followedRow = -1;
    qint64 m_pendingColumns = 0;
    qint64 m_cachedSaliencyBlock = -1;
    std::vector<float> m_sortedSaliency;
    JobRunner m_ownJobs;           // when no window's runner is given
    QPointer<JobRunner> m_jobs;    // where captures and comparisons run
    QPointer<CaptureLayerJob> m_captureJob;
    QPointer<CompareJob> m_compareJob;
    QTimer m_playTimer;
    QTimer m_workTimer;
    QElapsedTimer m_sinceRefresh;
    Granularity m_granularity = Granularity::Column;
    ErrorHandler m_errorHandler;
    QString m_lastError;
    bool m_restoreSettings = true;
    bool m_settingOptions = false;

    // Controls.
    QComboBox* m_source = nullptr;
    QStackedWidget* m_sourcePages = nullptr;
    QSpinBox* m_synRows = nullptr;
    QSpinBox* m_synCols = nullptr;
    QComboBox* m_synPreset = nullptr;
    QDoubleSpinBox* m_synRho = nullptr;
    QSpinBox* m_synSeed = nullptr;
    QPlainTextEdit* m_customW = nullptr;
    QPlainTextEdit* m_customH = nullptr;
    QComboBox* m_layer = nullptr;
    QSpinBox* m_windows = nullptr;
    QPushButton* m_captureButton = nullptr;
    QProgressBar* m_jobProgress = nullptr;
    QPushButton* m_cancelButton = nullptr;
    QComboBox* m_pattern = nullptr;
    QDoubleSpinBox* m_sparsity = nullptr;
    QSpinBox* m_blocksize = nullptr;
    QDoubleSpinBox* m_damp = nullptr;
    QComboBox* m_bits = nullptr;
    QComboBox* m_granularityBox = nullptr;
    QSlider* m_speed = nullptr;
    QLabel* m_speedLabel = nullptr;
    QSpinBox* m_rowSpin = nullptr;
    QPushButton* m_stepColumnButton = nullptr;
    QPushButton* m_stepBlockButton = nullptr;
    QPushButton* m_playButton = nullptr;
    QPushButton* m_runButton = nullptr;
    QPushButton* m_resetButton = nullptr;
    QPushButton* m_compareButton = nullptr;
    QPushButton* m_exportButton = nullptr;
    QLabel* m_status = nullptr;

    // Figure.
    QWidget* m_figure = nullptr;
    QLabel* m_figureTitle = nullptr;
    widgets::MatrixView* m_weights = nullptr;
    widgets::MatrixView* m_hinvView = nullptr;
    QCustomPlot* m_saliencyPlot = nullptr;
    QCustomPlot* m_updatePlot = nullptr;
    QCustomPlot* m_lossPlot = nullptr;
    QCustomPlot* m_compareLossPlot = nullptr;
    QCustomPlot* m_compareErrorPlot = nullptr;
    QTextBrowser* m_formula = nullptr;
};

} // namespace sparselab::gui

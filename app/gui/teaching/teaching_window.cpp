#include "teaching_window.h"

#include "teaching_problem_tensors.h"

#include "matrix_view.h"
#include "plot_legend.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "solve/sparsegpt_stepper.h"
#include "solve/teaching_problems.h"
#include "util/errors.h"

#include "qcustomplot_include.h"

#include <QAction>
#include <QCloseEvent>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QGroupBox>
#include <QLabel>
#include <QMessageBox>
#include <QPainter>
#include <QPdfWriter>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSaveFile>
#include <QScrollArea>
#include <QSettings>
#include <QSlider>
#include <QSpinBox>
#include <QSplitter>
#include <QStackedWidget>
#include <QStatusBar>
#include <QSvgGenerator>
#include <QTextBrowser>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace sparselab::gui {

namespace {

namespace key {
constexpr auto geometry = "teaching/geometry";
constexpr auto splitter = "teaching/splitter";
constexpr auto nm24 = "teaching/nm24";
constexpr auto sparsity = "teaching/sparsity";
constexpr auto blocksize = "teaching/blocksize";
constexpr auto damp = "teaching/damp";
constexpr auto bits = "teaching/bits";
constexpr auto speed = "teaching/speed";
constexpr auto granularity = "teaching/granularity";
constexpr auto synRows = "teaching/syntheticRows";
constexpr auto synCols = "teaching/syntheticCols";
constexpr auto synPreset = "teaching/syntheticPreset";
constexpr auto synRho = "teaching/syntheticRho";
constexpr auto synSeed = "teaching/syntheticSeed";
constexpr auto windows = "teaching/windows";
} // namespace key

// Work done per event-loop turn while steps are queued, and the views' refresh interval.
constexpr qint64 kSliceMs = 12;
constexpr qint64 kRefreshMs = 33;
// The weight heat-map shows at most this many rows (the followed row is always among them).
constexpr int kMaxShownRows = 192;
constexpr int kMaxShownCols = 1024;
constexpr int kUpdateTermsShown = 4;

const QColor kBefore(31, 119, 180);
const QColor kAfter(255, 127, 14);
const QColor kThreshold(214, 39, 40);
const QColor kMagnitude(127, 127, 127);
const QColor kSparseGpt(31, 119, 180);


void stylePlot(QCustomPlot* plot, const QString& title, const QString& xLabel, const QString& yLabel)
{
    plot->plotLayout()->insertRow(0);
    auto* titleElement = new QCPTextElement(plot, title, QFont(plot->font().family(), plot->font().pointSize(), QFont::Bold));
    plot->plotLayout()->addElement(0, 0, titleElement);
    plot->xAxis->setLabel(xLabel);
    plot->yAxis->setLabel(yLabel);
    plot->setMinimumSize(200, 150);
    plot->legend->setFont(QFont(plot->font().family(), std::max(6, plot->font().pointSize() - 1)));
    plot->setNoAntialiasingOnDrag(true);
}

// rescaleAxes with some air above and below, so that curves never touch the frame.
void rescaleWithMargin(QCustomPlot* plot)
{
    plot->rescaleAxes();
    const QCPRange y = plot->yAxis->range();
    const double pad = std::max(1e-12, y.size() * 0.08);
    plot->yAxis->setRange(y.lower - pad, y.upper + pad);
}

// The legend above the axes, not over the curves (plot_legend.h); `where` is kept by the
// callers as the corner the curves leave free, no longer used.
void placeLegend(QCustomPlot* plot, Qt::Alignment /*where*/)
{
    widgets::placeLegendAboveAxes(plot, 3);
    plot->legend->setRowSpacing(0);
}

QVector<float> toVector(const torch::Tensor& t)
{
    const auto c = t.to(torch::kFloat).contiguous();
    return QVector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

} // namespace

QString TeachingWindow::formatNumber(double value)
{
    if (value == 0.0)
        return QStringLiteral("0");
    const double a = std::fabs(value);
    if (a < 5e-7) // float32 rounding noise (e.g. Hinv entries that are 0 in exact arithmetic)
        return QStringLiteral("0.0000");
    if (a >= 1e-3 && a < 1e5)
        return QString::number(value, 'f', 4);
    return QString::number(value, 'g', 4);
}

TeachingWindow::TeachingWindow(bool restoreSettings, QWidget* parent)
    : QMainWindow(parent), m_restoreSettings(restoreSettings)
{
    setWindowTitle(tr("Teaching Mode — SparseGPT step by step"));
    m_jobs = &m_ownJobs;
    m_playTimer.setTimerType(Qt::PreciseTimer);
    connect(&m_playTimer, &QTimer::timeout, this, &TeachingWindow::onPlayTick);
    m_workTimer.setSingleShot(true);
    m_workTimer.setInterval(0);
    connect(&m_workTimer, &QTimer::timeout, this, &TeachingWindow::doWork);

    auto* splitter = new QSplitter(Qt::Horizontal, this);
    splitter->setObjectName(QStringLiteral("teachingSplitter"));
    auto* scroll = new QScrollArea(splitter);
    scroll->setWidget(createControls());
    scroll->setWidgetResizable(true);
    scroll->setMinimumWidth(250);
    splitter->addWidget(scroll);
    splitter->addWidget(createFigure());
    splitter->setStretchFactor(1, 1);
    setCentralWidget(splitter);
    statusBar()->addWidget(m_status = new QLabel(this), 1);

    // Window-wide shortcuts (the controls' tooltips name them).
    auto shortcut = [this](const QKeySequence& keys, auto slot) {
        auto* a = new QAction(this);
        a->setShortcut(keys);
        a->setShortcutContext(Qt::WindowShortcut);
        connect(a, &QAction::triggered, this, slot);
        addAction(a);
    };
    shortcut(QKeySequence(Qt::Key_Right), [this] { stepColumn(); });
    shortcut(QKeySequence(Qt::SHIFT | Qt::Key_Right), [this] { stepBlock(); });
    shortcut(QKeySequence(Qt::Key_Space), [this] { togglePlay(); });
    shortcut(QKeySequence(Qt::Key_End), [this] { runToEnd(); });
    shortcut(QKeySequence(Qt::Key_Home), [this] { reset(); });
    shortcut(QKeySequence(Qt::CTRL | Qt::Key_E), [this] { exportFigureDialog(); });
    shortcut(QKeySequence(Qt::Key_Escape), [this] { cancelJob(); });
    shortcut(QKeySequence(Qt::CTRL | Qt::Key_W), [this] { close(); });

    resize(1500, 900);
    readSettings();
    setSyntheticProblem(SyntheticParams{m_synRows->value(), m_synCols->value(), m_synPreset->currentIndex(),
                                        m_synRho->value(), quint64(m_synSeed->value())});
}

TeachingWindow::~TeachingWindow()
{
    const bool running = m_captureJob || m_compareJob;
    cancelJob();
    if (running && m_jobs)
        m_jobs->waitForDone(); // the job's handlers point here
}

void TeachingWindow::setJobRunner(JobRunner* runner)
{
    m_jobs = runner ? runner : &m_ownJobs;
}

QWidget* TeachingWindow::createControls()
{
    auto* panel = new QWidget;
    auto* layout = new QVBoxLayout(panel);

    // ---- problem
    auto* problemBox = new QGroupBox(tr("Layer problem"), panel);
    auto* problemLayout = new QVBoxLayout(problemBox);
    m_source = new QComboBox(problemBox);
    m_source->addItems({tr("Synthetic matrix"), tr("Typed matrices"), tr("Layer of the loaded model")});
    m_source->setToolTip(tr("Where W and H come from."));
    problemLayout->addWidget(m_source);
    m_sourcePages = new QStackedWidget(problemBox);
    problemLayout->addWidget(m_sourcePages);
    connect(m_source, &QComboBox::currentIndexChanged, this, [this](int index) {
        // Only the current page takes room (QStackedWidget sizes itself to its largest page).
        for (int i = 0; i < m_sourcePages->count(); ++i)
            m_sourcePages->widget(i)->setSizePolicy(QSizePolicy::Preferred,
                                                    i == index ? QSizePolicy::Preferred : QSizePolicy::Ignored);
        m_sourcePages->setCurrentIndex(index);
        m_sourcePages->adjustSize();
    });

    auto* synthetic = new QWidget;
    auto* synForm = new QFormLayout(synthetic);
    synForm->setContentsMargins(0, 0, 0, 0);
    m_synRows = new QSpinBox;
    m_synRows->setRange(1, 512);
    m_synRows->setValue(8);
    m_synCols = new QSpinBox;
    m_synCols->setRange(2, 1024);
    m_synCols->setValue(16);
    m_synPreset = new QComboBox;
    m_synPreset->addItems({tr("Identity"), tr("Correlated ρ^|i−j|"), tr("From random inputs")});
    m_synPreset->setCurrentIndex(1);
    m_synPreset->setToolTip(tr("Identity: nothing is spread onto other columns.\n"
                               "Correlated: H = ρ^|i−j|; with damping 0, [H⁻¹]ᵢᵢ = 1/√(1−ρ²) and pruning w\n"
                               "adds exactly ρ·w to the next weight of its row.\n"
                               "Random inputs: H = 2/N·XᵀX for X with correlated neighbouring inputs."));
    m_synRho = new QDoubleSpinBox;
    m_synRho->setRange(-0.95, 0.95);
    m_synRho->setSingleStep(0.05);
    m_synRho->setValue(0.5);
    m_synSeed = new QSpinBox;
    m_synSeed->setRange(0, 1'000'000);
    auto* make = new QPushButton(tr("Make"));
    make->setToolTip(tr("Weights uniform on the 0.01 grid in [−1, 1] from the seed."));
    synForm->addRow(tr("Rows"), m_synRows);
    synForm->addRow(tr("Columns"), m_synCols);
    synForm->addRow(tr("Hessian"), m_synPreset);
    synForm->addRow(tr("ρ"), m_synRho);
    synForm->addRow(tr("Seed"), m_synSeed);
    synForm->addRow(make);
    connect(make, &QPushButton::clicked, this, [this] {
        setSyntheticProblem(SyntheticParams{m_synRows->value(), m_synCols->value(), m_synPreset->currentIndex(),
                                            m_synRho->value(), quint64(m_synSeed->value())});
    });
    m_sourcePages->addWidget(synthetic);

    auto* custom = new QWidget;
    auto* customLayout = new QVBoxLayout(custom);
    customLayout->setContentsMargins(0, 0, 0, 0);
    customLayout->addWidget(new QLabel(tr("W (rows × cols), one row per line:")));
    m_customW = new QPlainTextEdit;
    m_customW->setPlaceholderText(QStringLiteral("0.5 -0.2 0.1\n0.3 0.8 -0.4"));
    customLayout->addWidget(m_customW);
    customLayout->addWidget(new QLabel(tr("H (cols × cols), symmetric positive definite:")));
    m_customH = new QPlainTextEdit;
    m_customH->setPlaceholderText(QStringLiteral("1 0.5 0.25\n0.5 1 0.5\n0.25 0.5 1"));
    customLayout->addWidget(m_customH);
    auto* useCustom = new QPushButton(tr("Use these matrices"));
    customLayout->addWidget(useCustom);
    connect(useCustom, &QPushButton::clicked, this,
            [this] { setCustomProblem(m_customW->toPlainText(), m_customH->toPlainText()); });
    m_sourcePages->addWidget(custom);

    auto* modelPage = new QWidget;
    auto* modelForm = new QFormLayout(modelPage);
    modelForm->setContentsMargins(0, 0, 0, 0);
    m_layer = new QComboBox;
    m_layer->setToolTip(tr("Any linear layer of the loaded model."));
    m_windows = new QSpinBox;
    m_windows->setRange(1, 4096);
    m_windows->setValue(32);
    m_windows->setToolTip(tr("Calibration windows to capture (text, window length and seed come from the Calibration view)."));
    m_captureButton = new QPushButton(tr("Capture inputs"));
    m_captureButton->setToolTip(tr("Runs the dense model over the calibration windows up to the layer and\n"
                                   "accumulates the Hessian of its inputs (on a worker thread)."));
    modelForm->addRow(tr("Layer"), m_layer);
    modelForm->addRow(tr("Windows"), m_windows);
    modelForm->addRow(m_captureButton);
    connect(m_captureButton, &QPushButton::clicked, this, [this] { captureLayer(m_layer->currentText()); });
    m_sourcePages->addWidget(modelPage);

    auto* jobRow = new QHBoxLayout;
    m_jobProgress = new QProgressBar(problemBox);
    m_jobProgress->setVisible(false);
    m_cancelButton = new QPushButton(tr("Cancel"), problemBox);
    m_cancelButton->setToolTip(tr("Cancel the capture or comparison (Esc)."));
    m_cancelButton->setVisible(false);
    connect(m_cancelButton, &QPushButton::clicked, this, &TeachingWindow::cancelJob);
    jobRow->addWidget(m_jobProgress, 1);
    jobRow->addWidget(m_cancelButton);
    problemLayout->addLayout(jobRow);
    for (int i = 1; i < m_sourcePages->count(); ++i)
        m_sourcePages->widget(i)->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Ignored);
    layout->addWidget(problemBox);

    // ---- solver options
    auto* optionsBox = new QGroupBox(tr("Solver"), panel);
    auto* optionsForm = new QFormLayout(optionsBox);
    m_pattern = new QComboBox;
    m_pattern->addItems({tr("Unstructured"), tr("2:4")});
    m_sparsity = new QDoubleSpinBox;
    m_sparsity->setRange(0.0, 0.95);
    m_sparsity->setSingleStep(0.05);
    m_sparsity->setValue(0.5);
    m_blocksize = new QSpinBox;
    m_blocksize->setRange(4, 1024);
    m_blocksize->setSingleStep(4);
    m_blocksize->setValue(8);
    m_blocksize->setToolTip(tr("Columns per block: the mask is chosen per block; after a block its errors\n"
                               "update the later columns at once (the lazy batch update)."));
    m_damp = new QDoubleSpinBox;
    m_damp->setDecimals(4);
    m_damp->setRange(0.0, 1.0);
    m_damp->setSingleStep(0.01);
    m_damp->setValue(0.0);
    m_damp->setToolTip(tr("Relative damping: H += damp·mean(diag H)·I (the reference uses 0.01)."));
    m_bits = new QComboBox;
    m_bits->addItem(tr("none (float)"), 16);
    for (int b : {8, 4, 3, 2})
        m_bits->addItem(tr("%1 bit").arg(b), b);
    optionsForm->addRow(tr("Pattern"), m_pattern);
    optionsForm->addRow(tr("Sparsity"), m_sparsity);
    optionsForm->addRow(tr("Block size"), m_blocksize);
    optionsForm->addRow(tr("Damping"), m_damp);
    optionsForm->addRow(tr("Quantize"), m_bits);
    auto optionsChanged = [this] {
        if (m_settingOptions)
            return;
        m_sparsity->setEnabled(m_pattern->currentIndex() == 0);
        rebuildStepper();
        writeSettings();
    };
    connect(m_pattern, &QComboBox::currentIndexChanged, this, optionsChanged);
    connect(m_sparsity, &QDoubleSpinBox::valueChanged, this, optionsChanged);
    connect(m_blocksize, &QSpinBox::valueChanged, this, optionsChanged);
    connect(m_damp, &QDoubleSpinBox::valueChanged, this, optionsChanged);
    connect(m_bits, &QComboBox::currentIndexChanged, this, optionsChanged);
    layout->addWidget(optionsBox);

    // ---- playback
    auto* playBox = new QGroupBox(tr("Step through"), panel);
    auto* playLayout = new QGridLayout(playBox);
    m_stepColumnButton = new QPushButton(tr("Step column"));
    m_stepColumnButton->setToolTip(tr("One column (Right)."));
    m_stepBlockButton = new QPushButton(tr("Step block"));
    m_stepBlockButton->setToolTip(tr("The rest of the block (Shift+Right)."));
    m_playButton = new QPushButton(tr("Play"));
    m_playButton->setToolTip(tr("Play / pause (Space)."));
    m_runButton = new QPushButton(tr("Run to end"));
    m_runButton->setToolTip(tr("Everything left (End)."));
    m_resetButton = new QPushButton(tr("Reset"));
    m_resetButton->setToolTip(tr("Back to the dense weights (Home)."));
    connect(m_stepColumnButton, &QPushButton::clicked, this, [this] { stepColumn(); });
    connect(m_stepBlockButton, &QPushButton::clicked, this, [this] { stepBlock(); });
    connect(m_playButton, &QPushButton::clicked, this, &TeachingWindow::togglePlay);
    connect(m_runButton, &QPushButton::clicked, this, &TeachingWindow::runToEnd);
    connect(m_resetButton, &QPushButton::clicked, this, &TeachingWindow::reset);
    playLayout->addWidget(m_stepColumnButton, 0, 0);
    playLayout->addWidget(m_stepBlockButton, 0, 1);
    playLayout->addWidget(m_playButton, 1, 0);
    playLayout->addWidget(m_runButton, 1, 1);
    playLayout->addWidget(m_resetButton, 2, 0);
    m_granularityBox = new QComboBox;
    m_granularityBox->addItems({tr("by column"), tr("by block")});
    m_granularityBox->setToolTip(tr("What one step of Play is."));
    playLayout->addWidget(m_granularityBox, 2, 1);
    connect(m_granularityBox, &QComboBox::currentIndexChanged, this, [this](int i) {
        m_granularity = i == 0 ? Granularity::Column : Granularity::Block;
        writeSettings();
    });
    m_speed = new QSlider(Qt::Horizontal);
    m_speed->setRange(1, 100);
    m_speed->setValue(4);
    m_speed->setToolTip(tr("Steps per second while playing."));
    m_speedLabel = new QLabel;
    playLayout->addWidget(new QLabel(tr("Speed")), 3, 0);
    playLayout->addWidget(m_speed, 3, 1);
    playLayout->addWidget(m_speedLabel, 4, 1);
    connect(m_speed, &QSlider::valueChanged, this, [this](int v) {
        m_speedLabel->setText(tr("%1 steps/s").arg(v));
        m_playTimer.setInterval(1000 / std::max(1, v));
        writeSettings();
    });
    m_speedLabel->setText(tr("%1 steps/s").arg(m_speed->value()));
    m_playTimer.setInterval(1000 / m_speed->value());
    m_rowSpin = new QSpinBox;
    m_rowSpin->setRange(-1, 0);
    m_rowSpin->setValue(-1);
    m_rowSpin->setSpecialValueText(tr("largest |err|"));
    m_rowSpin->setToolTip(tr("Row followed by the formula and the update plot."));
    playLayout->addWidget(new QLabel(tr("Follow row")), 5, 0);
    playLayout->addWidget(m_rowSpin, 5, 1);
    connect(m_rowSpin, &QSpinBox::valueChanged, this, [this](int v) {
        m_followedRow = v;
        refreshViews();
    });
    layout->addWidget(playBox);

    // ---- compare and export
    auto* moreBox = new QGroupBox(tr("Compare and export"), panel);
    auto* moreLayout = new QVBoxLayout(moreBox);
    m_compareButton = new QPushButton(tr("Compare magnitude vs SparseGPT"));
    m_compareButton->setToolTip(tr("Loss and output error over the columns, unstructured and 2:4, on this layer."));
    m_exportButton = new QPushButton(tr("Export figure…"));
    m_exportButton->setToolTip(tr("PNG, SVG or PDF of the figure, for slides (Ctrl+E)."));
    connect(m_compareButton, &QPushButton::clicked, this, &TeachingWindow::compare);
    connect(m_exportButton, &QPushButton::clicked, this, &TeachingWindow::exportFigureDialog);
    moreLayout->addWidget(m_compareButton);
    moreLayout->addWidget(m_exportButton);
    layout->addWidget(moreBox);
    layout->addStretch(1);
    return panel;
}

QWidget* TeachingWindow::createFigure()
{
    m_figure = new QWidget;
    m_figure->setObjectName(QStringLiteral("teachingFigure"));
    m_figure->setAutoFillBackground(true);
    auto* grid = new QGridLayout(m_figure);
    grid->setSpacing(6);
    m_figureTitle = new QLabel(m_figure);
    QFont big = m_figureTitle->font();
    big.setBold(true);
    big.setPointSizeF(big.pointSizeF() * 1.2);
    m_figureTitle->setFont(big);
    grid->addWidget(m_figureTitle, 0, 0, 1, 4);

    m_weights = new widgets::MatrixView(m_figure);
    m_weights->setToolTip(tr("Current weights: red > 0 > blue, pruned entries dark; the current block outlined,\n"
                             "the current column in orange, the followed row dashed."));
    grid->addWidget(m_weights, 1, 0, 1, 2);

    m_formula = new QTextBrowser(m_figure);
    m_formula->setObjectName(QStringLiteral("formula"));
    m_formula->setMinimumWidth(360);
    m_formula->setOpenLinks(false);
    m_formula->setFrameShape(QFrame::NoFrame);
    grid->addWidget(m_formula, 1, 2, 2, 2);

    m_saliencyPlot = new QCustomPlot(m_figure);
    stylePlot(m_saliencyPlot, tr("Block saliency w²/[H⁻¹]ⱼⱼ², sorted"), tr("entries of the block, by saliency"),
              tr("saliency"));
    placeLegend(m_saliencyPlot, Qt::AlignTop | Qt::AlignLeft);
    grid->addWidget(m_saliencyPlot, 2, 0);
    m_updatePlot = new QCustomPlot(m_figure);
    stylePlot(m_updatePlot, tr("Update of the followed row (this block)"), tr("column"), tr("weight"));
    placeLegend(m_updatePlot, Qt::AlignBottom | Qt::AlignLeft);
    grid->addWidget(m_updatePlot, 2, 1);

    m_hinvView = new widgets::MatrixView(m_figure);
    m_hinvView->setToolTip(tr("Hinv of the block (upper Cholesky factor of H⁻¹): row i spreads column i's error."));
    grid->addWidget(m_hinvView, 3, 0);
    m_lossPlot = new QCustomPlot(m_figure);
    stylePlot(m_lossPlot, tr("Running loss Σ(w−q)²/[H⁻¹]ᵢᵢ²/2"), tr("columns done"), tr("loss"));
    placeLegend(m_lossPlot, Qt::AlignBottom | Qt::AlignRight);
    grid->addWidget(m_lossPlot, 3, 1);
    m_compareLossPlot = new QCustomPlot(m_figure);
    stylePlot(m_compareLossPlot, tr("Loss: magnitude vs SparseGPT"), tr("columns done"), tr("loss"));
    placeLegend(m_compareLossPlot, Qt::AlignTop | Qt::AlignLeft);
    m_compareErrorPlot = new QCustomPlot(m_figure);
    stylePlot(m_compareErrorPlot, tr("Output error ‖XΔWᵀ‖²/‖XWᵀ‖²"), tr("columns done"), tr("relative error"));
    placeLegend(m_compareErrorPlot, Qt::AlignTop | Qt::AlignLeft);
    grid->addWidget(m_compareLossPlot, 3, 2);
    grid->addWidget(m_compareErrorPlot, 3, 3);
    grid->setRowStretch(1, 3);
    grid->setRowStretch(2, 2);
    grid->setRowStretch(3, 2);
    for (int c = 0; c < 4; ++c)
        grid->setColumnStretch(c, 1);
    return m_figure;
}

// ---- problems ------------------------------------------------------------------------------------

void TeachingWindow::setModel(std::shared_ptr<const model::CausalLM> model,
                              std::shared_ptr<const tokenize::Tokenizer> tokenizer)
{
    m_model = std::move(model);
    m_tokenizer = std::move(tokenizer);
    m_layer->clear();
    m_layer->addItems(layerNames());
    updateControls();
}

QStringList TeachingWindow::layerNames() const
{
    QStringList names;
    if (!m_model)
        return names;
    for (int64_t b = 0; b < m_model->numBlocks(); ++b)
        for (const auto& layer : m_model->linears(b))
            names << QString::fromStdString(pipeline::moduleName(layer.name));
    return names;
}

void TeachingWindow::setCalibration(const CalibrationSettings& settings) { m_calibration = settings; }

void TeachingWindow::setErrorHandler(ErrorHandler handler) { m_errorHandler = std::move(handler); }

void TeachingWindow::reportError(const QString& title, const QString& message)
{
    m_lastError = message;
    m_status->setText(message);
    if (m_errorHandler) {
        m_errorHandler(title, message);
        return;
    }
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setWindowModality(Qt::WindowModal);
    box->show();
}

void TeachingWindow::setSyntheticProblem(const SyntheticParams& params)
{
    solve::SyntheticProblemParams p;
    p.rows = params.rows;
    p.cols = params.cols;
    p.preset = params.preset == 0 ? solve::HessianPreset::Identity
        : params.preset == 2     ? solve::HessianPreset::RandomInputs
                                 : solve::HessianPreset::Correlated;
    p.rho = params.rho;
    p.seed = params.seed;
    try {
        const auto s = solve::makeSyntheticProblem(p);
        auto problem = std::make_shared<TeachingProblem>();
        const QString hessian = params.preset == 0 ? tr("H = I")
            : params.preset == 2                    ? tr("H from random inputs")
                                                    : tr("H = %1^|i−j|").arg(params.rho);
        problem->name = tr("a synthetic matrix, %1, seed %2").arg(hessian).arg(params.seed);
        problem->weight = s.weight;
        problem->hessian = s.hessian;
        m_synRows->setValue(params.rows);
        m_synCols->setValue(params.cols);
        m_synPreset->setCurrentIndex(params.preset);
        m_synRho->setValue(params.rho);
        m_synSeed->setValue(int(params.seed));
        writeSettings();
        setProblem(problem);
    } catch (const InputError& e) {
        reportError(tr("Synthetic problem"), QString::fromUtf8(e.what()));
    }
}

bool TeachingWindow::setCustomProblem(const QString& weightText, const QString& hessianText)
{
    try {
        auto problem = std::make_shared<TeachingProblem>();
        problem->weight = solve::parseMatrixText(weightText.toStdString(), "W");
        problem->hessian = solve::parseMatrixText(hessianText.toStdString(), "H");
        const auto cols = problem->weight.size(1);
        if (problem->hessian.size(0) != cols || problem->hessian.size(1) != cols)
            throw InputError("H: expected " + std::to_string(cols) + " × " + std::to_string(cols)
                             + " to match W's columns, got " + std::to_string(problem->hessian.size(0)) + " × "
                             + std::to_string(problem->hessian.size(1)));
        if (!torch::allclose(problem->hessian, problem->hessian.t(), 1e-5, 1e-6))
            throw InputError("H: not symmetric");
        problem->name = tr("typed matrices");
        // Validate before replacing the current problem (a singular H is refused here).
        solve::SparseGptStepper probe(problem->weight, problem->hessian, [this] {
            solve::SolverOptions o;
            o.blocksize = std::max<int64_t>(4, m_blocksize->value());
            o.damp = m_damp->value();
            return o;
        }());
        m_customW->setPlainText(weightText);
        m_customH->setPlainText(hessianText);
        setProblem(problem);
        return true;
    } catch (const std::exception& e) {
        reportError(tr("Typed matrices"), QString::fromUtf8(e.what()));
        return false;
    }
}

bool TeachingWindow::captureLayer(const QString& layer)
{
    if (isBusy())
        return false;
    if (!m_model || !m_tokenizer) {
        reportError(tr("Capture"), tr("No model is loaded: open a model in the workbench first."));
        return false;
    }
    if (!layerNames().contains(layer)) {
        reportError(tr("Capture"), tr("The model has no linear layer named '%1'.").arg(layer));
        return false;
    }
    pause();
    CaptureLayerJob::Params params;
    params.model = m_model;
    params.tokenizer = m_tokenizer;
    params.layer = layer;
    params.textPath = m_calibration.textPath;
    params.nsamples = m_windows->value();
    params.seqlen = m_calibration.seqlen;
    params.seed = m_calibration.seed;
    auto* job = new CaptureLayerJob(params); // the runner deletes it
    m_captureJob = job;
    connect(job, &EngineJob::progress, this, [this](qint64 done, qint64 total, double, const QString& text) {
        m_jobProgress->setRange(0, int(std::max<qint64>(total, 1)));
        m_jobProgress->setValue(int(done));
        m_status->setText(text);
    });
    JobOutcome<CaptureLayerJob> outcome;
    outcome.ended = [this] {
        m_captureJob = nullptr;
        updateControls();
    };
    outcome.finished = [this](const CaptureLayerJob::Result& result) {
        m_source->setCurrentIndex(int(Source::ModelLayer));
        setProblem(result.problem);
        m_status->setText(tr("Captured %1 from %2 calibration windows.").arg(teachingProblemName(*result.problem)).arg(result.samples));
        Q_EMIT captureFinished();
    };
    outcome.failed = [this](const QString& message) {
        reportError(tr("Capture failed"), message);
        Q_EMIT captureFailed(message);
    };
    outcome.cancelled = [this] {
        m_status->setText(tr("Capture cancelled."));
        Q_EMIT captureFailed(tr("cancelled"));
    };
    outcome.refused = [this](const QString& refusal) {
        reportError(tr("Capture"), refusal);
        Q_EMIT captureFailed(refusal);
    };
    if (!m_jobs->launch(job, tr("the Teaching Mode capture of %1").arg(layer), {m_model.get()}, this, std::move(outcome)))
        return false;
    updateControls();
    return true;
}

void TeachingWindow::setProblem(TeachingProblemPtr problem)
{
    if (!problem)
        return;
    pause();
    m_problem = std::move(problem);
    m_curves.clear();
    m_weightScale = float(m_problem->weight.abs().max().item<double>());
    rebuildStepper();
    Q_EMIT problemChanged();
}

// ---- options -------------------------------------------------------------------------------------

TeachingWindow::StepOptions TeachingWindow::stepOptions() const
{
    StepOptions o;
    o.nm24 = m_pattern->currentIndex() == 1;
    o.sparsity = m_sparsity->value();
    o.blocksize = m_blocksize->value();
    o.damp = m_damp->value();
    o.bits = m_bits->currentData().toInt();
    return o;
}

void TeachingWindow::setStepOptions(const StepOptions& options)
{
    m_settingOptions = true;
    m_pattern->setCurrentIndex(options.nm24 ? 1 : 0);
    m_sparsity->setValue(options.sparsity);
    m_sparsity->setEnabled(!options.nm24);
    m_blocksize->setValue(int(options.blocksize));
    m_damp->setValue(options.damp);
    const int bitsIndex = m_bits->findData(options.bits);
    m_bits->setCurrentIndex(bitsIndex >= 0 ? bitsIndex : 0);
    m_settingOptions = false;
    rebuildStepper();
    writeSettings();
}

void TeachingWindow::setGranularity(Granularity granularity)
{
    m_granularityBox->setCurrentIndex(granularity == Granularity::Column ? 0 : 1);
}

void TeachingWindow::setSpeed(int stepsPerSecond) { m_speed->setValue(std::clamp(stepsPerSecond, 1, 100)); }

void TeachingWindow::setFollowedRow(int row) { m_rowSpin->setValue(row); }

void TeachingWindow::rebuildStepper()
{
    pause();
    m_pendingColumns = 0;
    m_workTimer.stop();
    m_stepper.reset();
    m_cachedSaliencyBlock = -1;
    if (!m_problem)
        return;
    const StepOptions s = stepOptions();
    solve::SolverOptions o;
    o.sparsity = s.sparsity;
    if (s.nm24) {
        o.nmN = 2;
        o.nmM = 4;
    }
    o.blocksize = s.blocksize;
    o.damp = s.damp;
    o.quant.bits = s.bits;
    try {
        m_stepper = std::make_unique<solve::SparseGptStepper>(m_problem->weight, m_problem->hessian, o);
        m_status->setText(tr("%1: ready, %2 blocks of %3 columns.")
                              .arg(m_problem->name)
                              .arg(m_stepper->blockCount())
                              .arg(std::min<qint64>(s.blocksize, m_stepper->cols())));
    } catch (const InputError& e) {
        reportError(tr("Solver options"), QString::fromUtf8(e.what()));
    }
    if (m_stepper) {
        m_rowSpin->setRange(-1, int(m_stepper->rows()) - 1);
    }
    refreshViews();
    updateControls();
}

// ---- stepping ------------------------------------------------------------------------------------

void TeachingWindow::reset() { rebuildStepper(); }

bool TeachingWindow::stepColumn()
{
    if (!m_stepper || m_stepper->finished() || m_pendingColumns > 0)
        return false;
    m_stepper->stepColumn();
    refreshViews();
    Q_EMIT stepped();
    if (m_stepper->finished()) {
        pause();
        Q_EMIT finishedLayer();
    }
    return true;
}

bool TeachingWindow::stepBlock()
{
    if (!m_stepper || m_stepper->finished() || m_pendingColumns > 0)
        return false;
    const int64_t bs = m_stepper->options().blocksize;
    const int64_t done = m_stepper->columnsDone();
    const int64_t blockEnd = std::min<int64_t>((done / bs + 1) * bs, m_stepper->cols());
    m_pendingColumns = blockEnd - done;
    scheduleWork();
    return true;
}

void TeachingWindow::runToEnd()
{
    if (!m_stepper || m_stepper->finished())
        return;
    pause();
    m_pendingColumns = m_stepper->cols() - m_stepper->columnsDone();
    scheduleWork();
}

void TeachingWindow::play()
{
    if (!m_stepper || m_stepper->finished())
        return;
    m_playTimer.start();
    m_playButton->setText(tr("Pause"));
    onPlayTick();
}

void TeachingWindow::pause()
{
    m_playTimer.stop();
    if (m_playButton)
        m_playButton->setText(tr("Play"));
}

void TeachingWindow::togglePlay()
{
    if (isPlaying())
        pause();
    else
        play();
}

void TeachingWindow::onPlayTick()
{
    if (!m_stepper || m_stepper->finished()) {
        pause();
        return;
    }
    if (m_pendingColumns > 0)
        return; // the previous step is still being worked through
    if (m_granularity == Granularity::Column)
        stepColumn();
    else
        stepBlock();
}

void TeachingWindow::scheduleWork()
{
    updateControls();
    if (!m_workTimer.isActive())
        m_workTimer.start();
}

void TeachingWindow::doWork()
{
    if (!m_stepper) {
        m_pendingColumns = 0;
        return;
    }
    QElapsedTimer slice;
    slice.start();
    while (m_pendingColumns > 0 && !m_stepper->finished() && slice.elapsed() < kSliceMs) {
        m_stepper->stepColumn();
        --m_pendingColumns;
    }
    if (m_stepper->finished())
        m_pendingColumns = 0;
    if (m_pendingColumns == 0 || !m_sinceRefresh.isValid() || m_sinceRefresh.elapsed() >= kRefreshMs) {
        refreshViews();
        Q_EMIT stepped();
    }
    if (m_pendingColumns > 0) {
        m_workTimer.start();
        return;
    }
    updateControls();
    if (m_stepper->finished()) {
        pause();
        Q_EMIT finishedLayer();
    }
}

// ---- compare / export ----------------------------------------------------------------------------

bool TeachingWindow::compare()
{
    if (isBusy() || !m_problem)
        return false;
    const StepOptions s = stepOptions();
    CompareJob::Params params;
    params.problem = m_problem;
    params.sparsity = s.sparsity;
    params.blocksize = s.blocksize;
    params.damp = s.damp;
    params.bits = s.bits;
    auto* job = new CompareJob(params); // the runner deletes it
    m_compareJob = job;
    connect(job, &EngineJob::progress, this, [this](qint64 done, qint64 total, double, const QString& text) {
        m_jobProgress->setRange(0, int(std::max<qint64>(total, 1)));
        m_jobProgress->setValue(int(done));
        m_status->setText(tr("Comparing: %1").arg(text));
    });
    JobOutcome<CompareJob> outcome;
    outcome.ended = [this] {
        m_compareJob = nullptr;
        updateControls();
    };
    outcome.finished = [this](const CompareJob::Result& result) {
        m_curves = result.curves;
        refreshComparisonPlots();
        m_status->setText(tr("Compared magnitude and SparseGPT on %1.").arg(m_problem->name));
        Q_EMIT compareFinished();
    };
    outcome.failed = [this](const QString& message) {
        reportError(tr("Comparison failed"), message);
        Q_EMIT compareFailed(message);
    };
    outcome.cancelled = [this] {
        m_status->setText(tr("Comparison cancelled."));
        Q_EMIT compareFailed(tr("cancelled"));
    };
    outcome.refused = [this](const QString& refusal) {
        reportError(tr("Comparison"), refusal);
        Q_EMIT compareFailed(refusal);
    };
    if (!m_jobs->launch(job, tr("the Teaching Mode comparison"), {}, this, std::move(outcome)))
        return false;
    updateControls();
    return true;
}

void TeachingWindow::cancelJob()
{
    if (m_captureJob)
        m_captureJob->cancel();
    if (m_compareJob)
        m_compareJob->cancel();
}

bool TeachingWindow::exportFigure(const QString& file)
{
    const QString suffix = QFileInfo(file).suffix().toLower();
    if (suffix != QLatin1String("png") && suffix != QLatin1String("svg") && suffix != QLatin1String("pdf")) {
        reportError(tr("Export"), tr("%1: choose a .png, .svg or .pdf file name").arg(file));
        return false;
    }
    QSaveFile out(file);
    if (!out.open(QIODevice::WriteOnly)) {
        reportError(tr("Export"), tr("%1: cannot write: %2").arg(file, out.errorString()));
        return false;
    }
    const QSize size = m_figure->size();
    bool ok = true;
    if (suffix == QLatin1String("png")) {
        constexpr int kScale = 2; // slides want more pixels than the screen has
        QImage image(size * kScale, QImage::Format_ARGB32);
        image.fill(m_figure->palette().color(QPalette::Window));
        {
            QPainter painter(&image);
            painter.scale(kScale, kScale);
            m_figure->render(&painter, QPoint(), QRegion(), QWidget::DrawChildren);
        }
        ok = image.save(&out, "PNG");
    } else if (suffix == QLatin1String("svg")) {
        QSvgGenerator svg;
        svg.setOutputDevice(&out);
        svg.setSize(size);
        svg.setViewBox(QRect(QPoint(0, 0), size));
        svg.setTitle(windowTitle());
        svg.setDescription(m_figureTitle->text());
        QPainter painter;
        ok = painter.begin(&svg);
        if (ok) {
            m_figure->render(&painter, QPoint(), QRegion(), QWidget::DrawWindowBackground | QWidget::DrawChildren);
            painter.end();
        }
    } else {
        QPdfWriter pdf(&out);
        pdf.setTitle(windowTitle());
        pdf.setCreator(QStringLiteral("SparseLab"));
        pdf.setResolution(96);
        pdf.setPageSize(QPageSize(QSizeF(size), QPageSize::Point));
        pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
        QPainter painter;
        ok = painter.begin(&pdf);
        if (ok) {
            const double scale = double(pdf.width()) / double(std::max(1, size.width()));
            painter.scale(scale, scale);
            m_figure->render(&painter, QPoint(), QRegion(), QWidget::DrawWindowBackground | QWidget::DrawChildren);
            painter.end();
        }
    }
    if (!ok || !out.commit()) {
        out.cancelWriting();
        reportError(tr("Export"), tr("%1: could not write the figure").arg(file));
        return false;
    }
    m_status->setText(tr("Figure written to %1").arg(QDir::toNativeSeparators(file)));
    return true;
}

void TeachingWindow::exportFigureDialog()
{
    QString selected;
    const QString file = QFileDialog::getSaveFileName(this, tr("Export Figure"), QStringLiteral("sparsegpt-step.png"),
                                                      tr("PNG image (*.png);;SVG drawing (*.svg);;PDF document (*.pdf)"),
                                                      &selected);
    if (!file.isEmpty())
        exportFigure(file);
}

// ---- views ---------------------------------------------------------------------------------------

void TeachingWindow::updateControls()
{
    const bool ready = m_stepper && !m_stepper->finished();
    const bool working = m_pendingColumns > 0;
    m_stepColumnButton->setEnabled(ready && !working);
    m_stepBlockButton->setEnabled(ready && !working);
    m_playButton->setEnabled(ready);
    m_runButton->setEnabled(ready && !working);
    m_resetButton->setEnabled(m_stepper != nullptr);
    m_compareButton->setEnabled(m_problem && !isBusy());
    m_captureButton->setEnabled(m_model && !isBusy());
    m_jobProgress->setVisible(isBusy());
    m_cancelButton->setVisible(isBusy());
}

void TeachingWindow::refreshViews()
{
    m_sinceRefresh.start();
    if (!m_stepper) {
        m_weights->clear();
        m_hinvView->clear();
        m_formula->clear();
        return;
    }
    const auto& s = *m_stepper;
    const auto& block = s.block();
    const auto& column = s.lastColumn();
    const bool started = s.columnsDone() > 0;
    const int rows = int(s.rows());
    const int cols = int(s.cols());

    // The followed row.
    if (m_followedRow >= 0 && m_followedRow < rows) {
        m_selectedRow = m_followedRow;
    } else if (started && !column.err.empty()) {
        int best = 0;
        for (int r = 1; r < rows; ++r)
            if (std::fabs(column.err[size_t(r)]) > std::fabs(column.err[size_t(best)]))
                best = r;
        m_selectedRow = best;
    } else {
        m_selectedRow = 0;
    }
    const int r = m_selectedRow;

    const auto o = s.options();
    const QString pattern = o.structured() ? tr("2:4") : tr("%1 % unstructured").arg(o.sparsity * 100.0, 0, 'f', 0);
    m_figureTitle->setText(tr("SparseGPT on %1 (%2 × %3), %4%5, blocks of %6, damp %7 — %8 of %9 columns done")
                               .arg(m_problem ? m_problem->name : QString())
                               .arg(rows)
                               .arg(cols)
                               .arg(pattern)
                               .arg(o.quant.enabled() ? tr(", %1 bit").arg(o.quant.bits) : QString())
                               .arg(o.blocksize)
                               .arg(s.stats().dampUsed)
                               .arg(s.columnsDone())
                               .arg(cols));

    // Weights with the mask; at most kMaxShownRows rows (a window around the followed row).
    {
        const int shownRows = std::min(rows, kMaxShownRows);
        const int firstRow = std::clamp(r - shownRows / 2, 0, rows - shownRows);
        const int shownCols = std::min(cols, kMaxShownCols);
        const auto w = s.weightRows(firstRow, shownRows).narrow(1, 0, shownCols).contiguous();
        const auto m = s.maskRows(firstRow, shownRows).narrow(1, 0, shownCols).to(torch::kUInt8).contiguous();
        widgets::MatrixFrame f;
        f.title = shownRows < rows || shownCols < cols
            ? tr("Weights W (rows %1–%2 of %3, columns 0–%4 of %5)").arg(firstRow).arg(firstRow + shownRows - 1).arg(rows).arg(shownCols - 1).arg(cols)
            : tr("Weights W (%1 × %2)").arg(rows).arg(cols);
        f.rows = shownRows;
        f.cols = shownCols;
        f.values = toVector(w);
        f.marked = QVector<quint8>(m.data_ptr<uint8_t>(), m.data_ptr<uint8_t>() + m.numel());
        f.scaleMax = m_weightScale;
        if (block.index >= 0 && !s.atBlockStart()) {
            f.spanBegin = int(block.begin);
            f.spanEnd = int(block.end);
        }
        f.highlightColumn = started && !s.finished() ? int(column.column) : -1;
        f.highlightRow = r - firstRow;
        m_weights->setFrame(f);
    }

    // Saliency of the block, sorted, with the threshold.
    m_saliencyPlot->clearGraphs();
    m_saliencyPlot->clearItems();
    if (block.index >= 0) {
        if (m_cachedSaliencyBlock != block.index) {
            m_sortedSaliency = block.saliency;
            std::sort(m_sortedSaliency.begin(), m_sortedSaliency.end());
            m_cachedSaliencyBlock = block.index;
        }
        QVector<double> x, y;
        const size_t n = m_sortedSaliency.size();
        const size_t stride = std::max<size_t>(1, n / 2000);
        for (size_t k = 0; k < n; k += stride) {
            x << double(k);
            y << double(m_sortedSaliency[k]);
        }
        auto* g = m_saliencyPlot->addGraph();
        g->setData(x, y, true);
        g->setPen(QPen(kBefore, 1.5));
        g->setName(tr("block %1 (columns %2–%3)").arg(block.index).arg(block.begin).arg(block.end - 1));
        if (!o.structured() && std::isfinite(block.threshold)) {
            auto* t = m_saliencyPlot->addGraph();
            t->setData(QVector<double>{0.0, double(n)}, QVector<double>{double(block.threshold), double(block.threshold)});
            t->setPen(QPen(kThreshold, 1.5, Qt::DashLine));
            t->setName(tr("threshold τ = %1 (%2 pruned)").arg(formatNumber(block.threshold)).arg(block.prunedInBlock));
            auto* rank = m_saliencyPlot->addGraph();
            rank->setData(QVector<double>{double(block.rank), double(block.rank)},
                          QVector<double>{0.0, double(m_sortedSaliency.empty() ? 0.0f : m_sortedSaliency.back())});
            rank->setPen(QPen(kThreshold, 1, Qt::DotLine));
            rank->setName(tr("sorted index %1 = ⌊numel·p⌋").arg(block.rank));
        }
        m_saliencyPlot->legend->setVisible(true);
        rescaleWithMargin(m_saliencyPlot);
    } else {
        m_saliencyPlot->legend->setVisible(false);
    }
    m_saliencyPlot->replot(QCustomPlot::rpQueuedReplot);

    // The followed row of the block before and after this column's update.
    m_updatePlot->clearGraphs();
    if (started && !column.blockBefore.empty()) {
        const int64_t count = int64_t(column.blockBefore.size()) / rows;
        const int64_t begin = column.column - column.local;
        QVector<double> x, before, after;
        for (int64_t j = 0; j < count; ++j) {
            x << double(begin + j);
            before << double(column.blockBefore[size_t(r * count + j)]);
            after << double(column.blockAfter[size_t(r * count + j)]);
        }
        auto* g0 = m_updatePlot->addGraph();
        g0->setData(x, before, true);
        g0->setPen(QPen(kBefore, 1.5));
        g0->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
        g0->setName(tr("row %1 before").arg(r));
        auto* g1 = m_updatePlot->addGraph();
        g1->setData(x, after, true);
        g1->setPen(QPen(kAfter, 1.5));
        g1->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, 5));
        g1->setName(tr("after column %1").arg(column.column));
        m_updatePlot->legend->setVisible(true);
        rescaleWithMargin(m_updatePlot);
        m_updatePlot->xAxis->setRange(double(begin) - 0.5, double(begin + count) - 0.5);
    } else {
        m_updatePlot->legend->setVisible(false);
    }
    m_updatePlot->replot(QCustomPlot::rpQueuedReplot);

    // Hinv of the block, the current row highlighted.
    if (block.index >= 0) {
        const int64_t count = block.end - block.begin;
        const auto h1 = s.hinv().narrow(0, block.begin, count).narrow(1, block.begin, count).contiguous();
        widgets::MatrixFrame f;
        f.title = tr("Rows of Hinv, block %1 (UᵀU = H⁻¹)").arg(block.index);
        f.rows = int(count);
        f.cols = int(count);
        f.values = toVector(h1);
        f.highlightRow = started && !s.atBlockStart() ? int(column.local) : (started ? int(count) - 1 : -1);
        f.columnOffset = int(block.begin);
        m_hinvView->setFrame(f);
    } else {
        m_hinvView->clear();
        m_hinvView->setPlaceholderText(tr("Hinv appears with the first step."));
    }

    // Running loss.
    m_lossPlot->clearGraphs();
    {
        const auto& curve = s.lossCurve();
        QVector<double> x{0.0}, y{0.0};
        for (size_t k = 0; k < curve.size(); ++k) {
            x << double(k + 1);
            y << curve[k];
        }
        auto* g = m_lossPlot->addGraph();
        g->setData(x, y, true);
        g->setPen(QPen(kSparseGpt, 2));
        g->setName(tr("SparseGPT, L = %1").arg(formatNumber(s.loss())));
        m_lossPlot->legend->setVisible(true);
        rescaleWithMargin(m_lossPlot);
        m_lossPlot->xAxis->setRange(0, double(cols));
    }
    m_lossPlot->replot(QCustomPlot::rpQueuedReplot);
    refreshComparisonPlots();
    refreshFormula();
}

void TeachingWindow::refreshComparisonPlots()
{
    for (QCustomPlot* plot : {m_compareLossPlot, m_compareErrorPlot}) {
        plot->clearGraphs();
        const bool loss = plot == m_compareLossPlot;
        for (const auto& c : m_curves) {
            auto* g = plot->addGraph();
            g->setData(c.columns, loss ? c.loss : c.relOutputError, true);
            const bool magnitude = c.label.startsWith(QLatin1String("magnitude"));
            const bool nm = c.label.endsWith(QLatin1String("2:4"));
            g->setPen(QPen(magnitude ? kMagnitude : kSparseGpt, 2, nm ? Qt::DashLine : Qt::SolidLine));
            g->setName(loss ? c.label : tr("%1 (%2)").arg(c.label, formatNumber(c.relOutputError.isEmpty() ? 0.0 : c.relOutputError.back())));
        }
        if (m_stepper && !m_curves.isEmpty()) {
            auto* now = plot->addGraph();
            double top = 0.0;
            for (const auto& c : m_curves)
                for (double v : loss ? c.loss : c.relOutputError)
                    top = std::max(top, v);
            now->setData(QVector<double>{double(m_stepper->columnsDone()), double(m_stepper->columnsDone())},
                         QVector<double>{0.0, top});
            now->setPen(QPen(QColor(255, 140, 0), 1, Qt::DotLine));
            now->removeFromLegend();
        }
        plot->legend->setVisible(!m_curves.isEmpty());
        if (m_curves.isEmpty()) {
            plot->xAxis->setRange(0, m_stepper ? double(m_stepper->cols()) : 1.0);
            plot->yAxis->setRange(0, 1);
        } else {
            rescaleWithMargin(plot);
        }
        plot->replot(QCustomPlot::rpQueuedReplot);
    }
}

void TeachingWindow::refreshFormula()
{
    const auto& s = *m_stepper;
    const auto& block = s.block();
    const auto& c = s.lastColumn();
    const auto o = s.options();
    const int r = m_selectedRow;
    const auto N = [](double v) { return formatNumber(v); };
    QString h;
    h += QStringLiteral("<style>p{margin:3px 0} td{padding:0 6px} .m{font-family:monospace}</style>");
    if (s.columnsDone() == 0) {
        h += tr("<h3>Ready: %1 × %2, nothing pruned yet</h3>").arg(s.rows()).arg(s.cols());
        h += tr("<p>SparseGPT sweeps the columns left to right in blocks of %1. At the start of a block it "
                "chooses the mask from the saliency <b>s = w² / [H⁻¹]ⱼⱼ²</b>; then, column by column, it sets "
                "the pruned weights to zero and spreads each row's error onto the columns still to come:</p>")
                 .arg(o.blocksize);
        h += tr("<p class=m>err = (w − q) / [H⁻¹]ᵢᵢ<br>w<sub>j</sub> ← w<sub>j</sub> − err · [H⁻¹]ᵢⱼ &nbsp;(j &gt; i)<br>"
                "loss += (w − q)² / [H⁻¹]ᵢᵢ² / 2</p>");
        h += tr("<p>Hinv is the upper Cholesky factor of the damped H⁻¹ (UᵀU = H⁻¹). Press <b>Step column</b> (→).</p>");
        m_formula->setHtml(h);
        return;
    }
    const int64_t count = block.end - block.begin;
    h += tr("<h3>Column i = %1, row r = %2</h3>").arg(c.column).arg(r);
    h += tr("<p>Block %1: columns %2–%3").arg(block.index).arg(block.begin).arg(block.end - 1);
    if (!o.structured() && o.sparsity > 0.0) {
        h += tr(", mask chosen at its start: s = w² / [H⁻¹]ⱼⱼ² over its %1 entries; "
                "τ = s at sorted index ⌊%1 · %2⌋ = %3, τ = %4; prune s ≤ τ → %5 pruned.</p>")
                 .arg(s.rows() * count)
                 .arg(o.sparsity)
                 .arg(block.rank)
                 .arg(N(block.threshold))
                 .arg(block.prunedInBlock);
    } else if (o.structured()) {
        h += tr(", 2:4 — in every group of 4 columns each row prunes its 2 smallest s = w² / [H⁻¹]ⱼⱼ², "
                "computed when the group's first column is reached.</p>");
    } else {
        h += tr(", sparsity 0: nothing pruned.</p>");
    }
    const double w = c.w[size_t(r)];
    const double q = c.q[size_t(r)];
    const double d = c.d;
    const bool pruned = c.pruned[size_t(r)] != 0;
    if (!o.structured() && std::isfinite(block.threshold)) {
        // The mask was chosen from the weights at the block start, before this column's updates.
        const double w0 = block.startWeights[size_t(r * count + c.local)];
        const double s0 = block.saliency[size_t(r * count + c.local)];
        h += tr("<p><b>Saliency</b> (block start) s = w₀² / [H⁻¹]ᵢᵢ² = %1² / %2² = %3 %4 τ = %5 → <b>%6</b>")
                 .arg(N(w0), N(d), N(s0), pruned ? tr("≤") : tr(">"), N(block.threshold),
                      pruned ? tr("pruned") : tr("kept"));
        if (w0 != w)
            h += tr("; the updates of earlier columns have since moved w to %1").arg(N(w));
        h += QStringLiteral("</p>");
    } else if (o.structured() && c.groupWidth > 0) {
        h += tr("<p><b>Saliency</b> of the group (columns %1–%2) from the current weights: s = w² / [H⁻¹]ⱼⱼ² =")
                 .arg(c.column)
                 .arg(c.column + c.groupWidth - 1);
        for (int64_t k = 0; k < c.groupWidth; ++k)
            h += QStringLiteral(" %1").arg(N(c.groupSaliency[size_t(r * c.groupWidth + k)]));
        h += tr(" → the 2 smallest are pruned; this entry is <b>%1</b></p>").arg(pruned ? tr("pruned") : tr("kept"));
    } else {
        h += tr("<p>This entry is <b>%1</b> (chosen at the start of its group of 4).</p>")
                 .arg(pruned ? tr("pruned") : tr("kept"));
    }
    if (o.quant.enabled())
        h += tr("<p><b>Target</b> q = %1 = %2</p>").arg(pruned ? tr("0 (pruned; zero stays zero on the grid)") : tr("quant(w), %1-bit grid of the row").arg(o.quant.bits), N(q));
    else
        h += tr("<p><b>Target</b> q = %1 = %2</p>").arg(pruned ? tr("0 (pruned)") : tr("w (kept)"), N(q));
    h += tr("<p><b>Error</b> err = (w − q) / [H⁻¹]ᵢᵢ = (%1 − %2) / %3 = <b>%4</b></p>")
             .arg(N(w), N(q), N(d), N(c.err[size_t(r)]));
    // The update of the later columns in the block.
    const int64_t later = count - c.local - 1;
    if (later > 0) {
        h += tr("<p><b>Update</b> w<sub>r,j</sub> ← w<sub>r,j</sub> − err · [H⁻¹]ᵢⱼ for j = %1…%2:</p><table class=m>")
                 .arg(c.column + 1)
                 .arg(block.end - 1);
        const int64_t shown = std::min<int64_t>(later, kUpdateTermsShown);
        for (int64_t k = 1; k <= shown; ++k) {
            const int64_t j = c.local + k;
            const double before = c.blockBefore[size_t(r * count + j)];
            const double after = c.blockAfter[size_t(r * count + j)];
            h += QStringLiteral("<tr><td>j = %1:</td><td>%2 − %3 · (%4) = %5</td></tr>")
                     .arg(c.column + k)
                     .arg(N(before), N(c.err[size_t(r)]), N(c.hinvRow[size_t(k)]), N(after));
        }
        h += QStringLiteral("</table>");
        if (later > shown)
            h += tr("<p>… and %1 more columns of the block.</p>").arg(later - shown);
    } else {
        h += tr("<p>Last column of the block: no later columns inside it.</p>");
    }
    const double rowLoss = (w - q) * (w - q) / (d * d) / 2.0;
    h += tr("<p><b>Loss</b> += (w − q)² / [H⁻¹]ᵢᵢ² / 2 = %1; this column, all rows: %2; running loss L = <b>%3</b></p>")
             .arg(N(rowLoss), N(c.columnLoss), N(s.loss()));
    if (c.endedBlock) {
        if (block.end < s.cols())
            h += tr("<p><b>Block done:</b> lazy batch update W[:, %1:] −= Err₁ · Hinv[%2:%1, %1:] "
                    "(the block's errors reach the later columns in one product).</p>")
                     .arg(block.end)
                     .arg(block.begin);
        else
            h += tr("<p><b>Layer done.</b> Sparsity %1, loss %2, relative output error %3.</p>")
                     .arg(N(s.stats().sparsity), N(s.loss()), N(s.stats().relOutputError));
    }
    m_formula->setHtml(h);
}

QString TeachingWindow::formulaText() const { return m_formula->toPlainText(); }

// ---- settings ------------------------------------------------------------------------------------

void TeachingWindow::readSettings()
{
    if (!m_restoreSettings)
        return;
    QSettings s;
    if (s.contains(key::geometry))
        restoreGeometry(s.value(key::geometry).toByteArray());
    if (auto* splitter = findChild<QSplitter*>(QStringLiteral("teachingSplitter")); splitter && s.contains(key::splitter))
        splitter->restoreState(s.value(key::splitter).toByteArray());
    m_settingOptions = true;
    m_synRows->setValue(s.value(key::synRows, 8).toInt());
    m_synCols->setValue(s.value(key::synCols, 16).toInt());
    m_synPreset->setCurrentIndex(s.value(key::synPreset, 1).toInt());
    m_synRho->setValue(s.value(key::synRho, 0.5).toDouble());
    m_synSeed->setValue(s.value(key::synSeed, 0).toInt());
    m_windows->setValue(s.value(key::windows, 32).toInt());
    m_pattern->setCurrentIndex(s.value(key::nm24, false).toBool() ? 1 : 0);
    m_sparsity->setValue(s.value(key::sparsity, 0.5).toDouble());
    m_blocksize->setValue(s.value(key::blocksize, 8).toInt());
    m_damp->setValue(s.value(key::damp, 0.0).toDouble());
    const int bits = m_bits->findData(s.value(key::bits, 16).toInt());
    m_bits->setCurrentIndex(std::max(0, bits));
    m_speed->setValue(s.value(key::speed, 4).toInt());
    m_granularityBox->setCurrentIndex(s.value(key::granularity, 0).toInt());
    m_settingOptions = false;
}

void TeachingWindow::writeSettings() const
{
    if (!m_restoreSettings || m_settingOptions)
        return;
    QSettings s;
    s.setValue(key::nm24, m_pattern->currentIndex() == 1);
    s.setValue(key::sparsity, m_sparsity->value());
    s.setValue(key::blocksize, m_blocksize->value());
    s.setValue(key::damp, m_damp->value());
    s.setValue(key::bits, m_bits->currentData().toInt());
    s.setValue(key::speed, m_speed->value());
    s.setValue(key::granularity, m_granularityBox->currentIndex());
    s.setValue(key::synRows, m_synRows->value());
    s.setValue(key::synCols, m_synCols->value());
    s.setValue(key::synPreset, m_synPreset->currentIndex());
    s.setValue(key::synRho, m_synRho->value());
    s.setValue(key::synSeed, m_synSeed->value());
    s.setValue(key::windows, m_windows->value());
}

void TeachingWindow::closeEvent(QCloseEvent* event)
{
    pause();
    if (m_restoreSettings) {
        QSettings s;
        s.setValue(key::geometry, saveGeometry());
        if (auto* splitter = findChild<QSplitter*>(QStringLiteral("teachingSplitter")))
            s.setValue(key::splitter, splitter->saveState());
        writeSettings();
    }
    event->accept();
}

} // namespace sparselab::gui

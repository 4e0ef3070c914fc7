#include "run_panel.h"

#include "action_button.h"

#include "log_view.h"

#include "util/gpu_info.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QStandardItemModel>
#include <QTimer>
#include <QVBoxLayout>

#include <algorithm>

namespace sparselab::gui {

namespace {
constexpr int kScale = 1000;
} // namespace

RunPanel::RunPanel(QWidget* parent)
    : QWidget(parent)
{
    m_start = new QPushButton(tr("Run"), this);
    m_start->setDefault(true);
    m_cancel = new QPushButton(tr("Cancel"), this);
    m_stopRecovery = new QPushButton(tr("Stop Recovery"), this);
    m_stopRecovery->hide();
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_start, 1);
    buttons->addWidget(m_cancel, 1);
    buttons->addWidget(m_stopRecovery, 1);

    m_device = new QComboBox(this);
    m_device->setToolTip(tr("Where the solver runs; unavailable devices say why when you hover them."));
    m_name = new QLineEdit(this);
    m_name->setToolTip(tr("Name of the next run in the Results view; leave empty for the suggested name."));
    m_name->setClearButtonEnabled(true);
    m_evaluate = new QCheckBox(tr("Measure perplexity before and after"), this);
    m_evaluate->setChecked(true);
    m_evaluate->setToolTip(tr("Evaluate the dense and the compressed model on the Evaluation dock's text (the dense value is reused when known)."));
    m_checkpoints = new QCheckBox(tr("Keep checkpoints to resume"), this);
    m_checkpoints->setChecked(true);
    m_checkpoints->setToolTip(tr("Write every finished decoder block to disk (in your cache folder), so that a run "
                                 "that was cancelled or stopped by a crash resumes from its last block when you run "
                                 "it again with the same settings. Costs one float32 copy of the model's linear "
                                 "weights on disk while the run lasts (removed when it completes), and a SHA-256 of "
                                 "the model's files at the start of each run, so that checkpoints are never applied "
                                 "to a changed model."));
    m_evalSummary = new QLabel(this);
    m_evalSummary->setForegroundRole(QPalette::PlaceholderText);
    m_evalSummary->setWordWrap(true);
    connect(m_device, &QComboBox::currentIndexChanged, this, &RunPanel::settingsChanged);
    connect(m_evaluate, &QCheckBox::toggled, this, &RunPanel::settingsChanged);
    connect(m_checkpoints, &QCheckBox::toggled, this, &RunPanel::settingsChanged);

    auto* form = new QFormLayout;
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    form->addRow(tr("&Device:"), m_device);
    form->addRow(tr("&Name:"), m_name);
    form->addRow(m_evaluate);
    form->addRow(m_evalSummary);
    form->addRow(m_checkpoints);
    m_memorySummary = new QLabel(this);
    m_memorySummary->setWordWrap(true);
    m_memorySummary->setToolTip(tr("The memory planner's estimate for this run (model, calibration windows and "
                                   "length, device), against the memory available now; a run that does not fit "
                                   "is refused before it starts. sparselab-cli plan prints the breakdown."));
    form->addRow(m_memorySummary);
    m_gpu = new QLabel(this);
    m_gpu->setToolTip(tr("GPU utilisation and memory in use, read from the NVIDIA driver (NVML) once a second."));
    m_gpu->setVisible(false);
    form->addRow(m_gpu);
    m_gpuTimer = new QTimer(this);
    m_gpuTimer->setInterval(1000);
    connect(m_gpuTimer, &QTimer::timeout, this, &RunPanel::refreshGpu);
    connect(m_device, &QComboBox::currentIndexChanged, this, &RunPanel::refreshGpu);

    m_overall = new QProgressBar(this);
    m_overall->setRange(0, kScale);
    m_overall->setValue(0);
    m_overall->setFormat(QStringLiteral("%p %"));
    m_overall->setToolTip(tr("The whole run: perplexity before, calibration and solving, perplexity after."));
    m_stage = new QLabel(tr("Idle"), this);
    m_stage->setForegroundRole(QPalette::PlaceholderText);
    m_layer = new QProgressBar(this);
    m_layer->setRange(0, kScale);
    m_layer->setValue(0);
    m_layer->setTextVisible(false);
    m_layer->setToolTip(tr("The layer being solved: its column blocks done."));
    m_layerText = new QLabel(this);
    m_layerText->setForegroundRole(QPalette::PlaceholderText);
    m_layerText->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_status = new QLabel(this);
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_log = new widgets::LogView(this);
    m_log->setPlaceholderText(tr("The run's log appears here."));
    m_log->setLineWrapMode(QPlainTextEdit::WidgetWidth);
    m_log->setMinimumHeight(fontMetrics().height() * 3);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 8, 8, 8);
    layout->addLayout(form);
    layout->addLayout(buttons);
    m_overallLabel = new QLabel(tr("Overall:"), this);
    m_layerLabel = new QLabel(tr("Current layer:"), this);
    layout->addWidget(m_overallLabel);
    layout->addWidget(m_overall);
    layout->addWidget(m_stage);
    layout->addWidget(m_layerLabel);
    layout->addWidget(m_layer);
    layout->addWidget(m_layerText);
    layout->addWidget(m_status);
    layout->addWidget(m_log, 1);
}

void RunPanel::setActions(QAction* start, QAction* cancel)
{
    widgets::bindButtonToAction(m_start, start, true);
    widgets::bindButtonToAction(m_cancel, cancel, true);
}

void RunPanel::setStopRecoveryAction(QAction* stop)
{
    widgets::bindButtonToAction(m_stopRecovery, stop, true);
    // Shown only while it applies, so the Run dock's two usual buttons keep their place.
    connect(stop, &QAction::changed, m_stopRecovery, [this, stop] { m_stopRecovery->setVisible(stop->isEnabled()); });
}

void RunPanel::setDevices(const QList<DeviceChoice>& devices)
{
    const QString current = device();
    m_device->clear();
    auto* model = qobject_cast<QStandardItemModel*>(m_device->model());
    for (const DeviceChoice& d : devices) {
        m_device->addItem(d.available ? d.label : tr("%1 — unavailable").arg(d.label), d.key);
        const int row = m_device->count() - 1;
        m_device->setItemData(row, d.available ? tr("Run the solver on %1.").arg(d.label) : d.reason, Qt::ToolTipRole);
        if (!d.available && model)
            model->item(row)->setEnabled(false); // greyed out, not selectable
    }
    setDevice(current.isEmpty() ? QStringLiteral("cpu") : current);
}

QString RunPanel::device() const { return m_device->currentData().toString(); }

void RunPanel::setDevice(const QString& key)
{
    const int i = m_device->findData(key);
    auto* model = qobject_cast<QStandardItemModel*>(m_device->model());
    if (i >= 0 && (!model || model->item(i)->isEnabled()))
        m_device->setCurrentIndex(i);
    else
        m_device->setCurrentIndex(std::max(0, m_device->findData(QStringLiteral("cpu"))));
}

void RunPanel::refreshGpu()
{
    const bool cuda = device() == QLatin1String("cuda");
    m_gpu->setVisible(cuda);
    if (!cuda) {
        m_gpuTimer->stop();
        return;
    }
    if (!m_gpuTimer->isActive())
        m_gpuTimer->start();
    const util::GpuQuery q = util::queryGpus();
    if (q.gpus.empty()) {
        m_gpu->setText(tr("GPU: no live figures (%1)").arg(QString::fromStdString(q.unavailableReason)));
        return;
    }
    const util::GpuInfo& g = q.gpus.front();
    const QString busy = g.utilizationPercent >= 0 ? tr("%1 % busy").arg(g.utilizationPercent) : tr("utilisation unknown");
    m_gpu->setText(tr("GPU %1 %2: %3, %4 of %5 GB used")
                       .arg(g.index)
                       .arg(QString::fromStdString(g.name), busy)
                       .arg(double(g.totalBytes - g.freeBytes) / 1e9, 0, 'f', 1)
                       .arg(double(g.totalBytes) / 1e9, 0, 'f', 1));
}

QString RunPanel::gpuText() const { return m_gpu->isHidden() ? QString() : m_gpu->text(); }

QString RunPanel::runName() const { return m_name->text().trimmed(); }
void RunPanel::setSuggestedName(const QString& name) { m_name->setPlaceholderText(name); }
void RunPanel::clearRunName() { m_name->clear(); }

bool RunPanel::evaluate() const { return m_evaluate->isChecked(); }
void RunPanel::setEvaluate(bool on) { m_evaluate->setChecked(on); }
bool RunPanel::keepCheckpoints() const { return m_checkpoints->isChecked(); }
void RunPanel::setKeepCheckpoints(bool on) { m_checkpoints->setChecked(on); }
void RunPanel::setEvaluationSummary(const QString& text) { m_evalSummary->setText(text); }

void RunPanel::setMemorySummary(const QString& text, bool fits)
{
    m_memorySummary->setText(text);
    m_memorySummary->setForegroundRole(fits ? QPalette::PlaceholderText : QPalette::Link);
    QFont font = m_memorySummary->font();
    font.setBold(!fits);
    m_memorySummary->setFont(font);
}

QString RunPanel::memorySummary() const { return m_memorySummary->text(); }

void RunPanel::setRunning(bool running)
{
    for (QWidget* w : std::initializer_list<QWidget*>{m_device, m_name, m_evaluate, m_checkpoints})
        w->setEnabled(!running);
    const bool starting = running && !m_running; // the window calls this on every action update
    m_running = running;
    if (starting) {
        startJob(tr("Run"));
        m_stage->setText(tr("Starting…"));
        for (QWidget* w : std::initializer_list<QWidget*>{m_layerLabel, m_layer, m_layerText})
            w->setVisible(true);
    }
}

void RunPanel::startJob(const QString& title)
{
    m_overallLabel->setText(tr("%1:").arg(title));
    m_overall->setValue(0);
    m_layer->setValue(0);
    m_stage->setText(tr("Starting…"));
    m_layerText->clear();
    m_status->clear();
    // Only runs solve layers one by one.
    for (QWidget* w : std::initializer_list<QWidget*>{m_layerLabel, m_layer, m_layerText})
        w->setVisible(false);
}

namespace {
QString withEta(QString stage, double overall, double etaSeconds)
{
    if (overall < 1.0)
        stage += QStringLiteral(" · ")
            + (etaSeconds >= 0 ? RunPanel::tr("%1 left").arg(formatSeconds(etaSeconds)) : RunPanel::tr("estimating time left…"));
    return stage;
}
} // namespace

void RunPanel::setJobProgress(qint64 done, qint64 total, double etaSeconds, const QString& text)
{
    const double share = total > 0 ? std::clamp(double(done) / double(total), 0.0, 1.0) : 0.0;
    if (total > 0)
        m_overall->setValue(std::max(m_overall->value(), int(std::lround(share * kScale))));
    m_stage->setText(withEta(text, share, etaSeconds));
}

void RunPanel::setProgress(const RunProgress& p)
{
    m_overall->setValue(int(std::lround(std::clamp(p.overall, 0.0, 1.0) * kScale)));
    m_stage->setText(withEta(p.stage, p.overall, p.etaSeconds));
    if (!p.layer.isEmpty()) {
        m_layer->setValue(int(std::lround(std::clamp(p.layerFraction, 0.0, 1.0) * kScale)));
        // layerIndex is the 0-based position of the layer shown among the layers solved.
        m_layerText->setText(tr("%1 (layer %2 of %3)").arg(p.layer).arg(std::min(p.layerIndex + 1, p.layerCount)).arg(p.layerCount));
    } else if (p.layerCount > 0 && p.layerIndex >= p.layerCount) {
        m_layer->setValue(kScale);
        m_layerText->setText(tr("All %1 layers solved").arg(p.layerCount));
    } else if (p.layerCount > 0 && p.layerIndex > 0) {
        m_layer->setValue(0);
        m_layerText->setText(tr("%1 of %2 layers solved").arg(p.layerIndex).arg(p.layerCount));
    }
}

void RunPanel::finishJob(Outcome outcome, const QString& text)
{
    switch (outcome) {
    case Outcome::Done:
        m_overall->setValue(kScale);
        m_stage->setText(tr("Done"));
        break;
    case Outcome::Cancelled:
    case Outcome::Failed:
        // Nothing of the job was kept: the bars say so rather than where it stopped.
        m_overall->setValue(0);
        m_layer->setValue(0);
        m_layerText->clear();
        m_stage->setText(outcome == Outcome::Cancelled ? tr("Cancelled") : tr("Failed"));
        break;
    }
    m_status->setText(text);
}

int RunPanel::overallValue() const { return m_overall->value(); }
QString RunPanel::stageText() const { return m_stage->text(); }
QString RunPanel::statusText() const { return m_status->text(); }
int RunPanel::layerValue() const { return m_layer->value(); }
QString RunPanel::layerText() const { return m_layerText->text(); }

} // namespace sparselab::gui

#include "calibration_panel.h"

#include "token_preview_widget.h"

#include <QAction>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QSpinBox>
#include <QStyle>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <limits>

namespace sparselab::gui {

namespace {
constexpr int kMaxSeqlen = 131072;
}

CalibrationPanel::CalibrationPanel(QWidget* parent)
    : QWidget(parent)
{
    m_textPath = new QLineEdit(this);
    m_textPath->setPlaceholderText(tr("Calibration text file"));
    m_textPath->setToolTip(tr("Plain UTF-8 text the layers are calibrated on: it is tokenized whole, then windows are drawn from it."));
    m_textPath->setAcceptDrops(false);
    m_browse = new QToolButton(this);
    m_browse->setIcon(style()->standardIcon(QStyle::SP_DirOpenIcon));
    m_browse->setText(tr("…"));

    m_nsamples = new QSpinBox(this);
    m_nsamples->setRange(1, 1'000'000);
    m_nsamples->setValue(128);
    m_nsamples->setSuffix(tr(" windows"));
    m_nsamples->setToolTip(tr("How many calibration windows are drawn; the reference uses 128."));
    m_nsamples->setAccelerated(true);

    m_seqlen = new QSpinBox(this);
    m_seqlen->setRange(2, kMaxSeqlen);
    m_seqlen->setValue(256);
    m_seqlen->setSingleStep(64);
    m_seqlen->setSuffix(tr(" tokens"));
    m_seqlen->setToolTip(tr("Tokens per calibration window, at most the model's context length (reference: 2048)."));
    m_seqlen->setAccelerated(true);

    m_seed = new QSpinBox(this);
    m_seed->setRange(0, std::numeric_limits<int>::max());
    m_seed->setToolTip(tr("Seed of the window offsets: the same seed draws the same windows on every machine."));

    auto* textRow = new QHBoxLayout;
    textRow->setSpacing(4);
    textRow->addWidget(m_textPath, 1);
    textRow->addWidget(m_browse);

    auto* form = new QFormLayout;
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    form->addRow(tr("Text:"), textRow);
    form->addRow(tr("&Windows:"), m_nsamples);
    form->addRow(tr("Window &length:"), m_seqlen);
    form->addRow(tr("&Seed:"), m_seed);

    m_counts = new QLabel(this);
    m_counts->setWordWrap(true);
    m_counts->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_warningRow = new QWidget(this);
    m_warningIcon = new QLabel(m_warningRow);
    const int iconSize = style()->pixelMetric(QStyle::PM_SmallIconSize, nullptr, this);
    m_warningIcon->setPixmap(style()->standardIcon(QStyle::SP_MessageBoxWarning).pixmap(iconSize, iconSize));
    m_warningIcon->setAlignment(Qt::AlignTop);
    m_warning = new QLabel(m_warningRow);
    m_warning->setWordWrap(true);
    QFont bold = m_warning->font();
    bold.setBold(true);
    m_warning->setFont(bold);
    auto* warningLayout = new QHBoxLayout(m_warningRow);
    warningLayout->setContentsMargins(0, 0, 0, 0);
    warningLayout->addWidget(m_warningIcon);
    warningLayout->addWidget(m_warning, 1);
    m_warningRow->setVisible(false);

    m_preview = new widgets::TokenPreviewWidget(this);
    m_preview->setToolTip(tr("The first tokens of the first windows a run will draw; shading alternates at token boundaries."));

    auto* previewLabel = new QLabel(tr("Sampled windows (token boundaries shaded):"), this);
    previewLabel->setForegroundRole(QPalette::PlaceholderText);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 8, 8, 8);
    layout->addLayout(form);
    layout->addWidget(m_counts);
    layout->addWidget(m_warningRow);
    layout->addWidget(previewLabel);
    layout->addWidget(m_preview, 1);

    m_debounce = new QTimer(this);
    m_debounce->setSingleShot(true);
    m_debounce->setInterval(300);
    connect(m_debounce, &QTimer::timeout, this, &CalibrationPanel::previewRequested);

    connect(m_textPath, &QLineEdit::editingFinished, this, &CalibrationPanel::onChanged);
    for (QSpinBox* box : {m_nsamples, m_seqlen, m_seed})
        connect(box, &QSpinBox::valueChanged, this, &CalibrationPanel::onChanged);
    clearPreview();
}

void CalibrationPanel::setChooseAction(QAction* chooseText)
{
    m_browse->setToolTip(chooseText->toolTip());
    connect(m_browse, &QToolButton::clicked, chooseText, &QAction::trigger);
}

void CalibrationPanel::onChanged()
{
    if (m_restoring)
        return;
    Q_EMIT settingsChanged();
    m_debounce->start();
}

CalibrationSettings CalibrationPanel::settings() const
{
    CalibrationSettings s;
    s.textPath = m_textPath->text().trimmed();
    s.nsamples = m_nsamples->value();
    s.seqlen = m_seqlen->value();
    s.seed = quint64(m_seed->value());
    return s;
}

void CalibrationPanel::setSettings(const CalibrationSettings& s)
{
    m_restoring = true;
    m_textPath->setText(s.textPath);
    setNsamples(s.nsamples);
    setSeqlen(s.seqlen);
    setSeed(s.seed);
    m_restoring = false;
    onChanged();
}

void CalibrationPanel::setTextPath(const QString& path)
{
    m_textPath->setText(path);
    onChanged();
}

void CalibrationPanel::setNsamples(qint64 windows) { m_nsamples->setValue(int(std::clamp<qint64>(windows, 1, m_nsamples->maximum()))); }
void CalibrationPanel::setSeqlen(qint64 tokens) { m_seqlen->setValue(int(std::clamp<qint64>(tokens, 2, m_seqlen->maximum()))); }
void CalibrationPanel::setSeed(quint64 seed) { m_seed->setValue(int(std::min<quint64>(seed, quint64(m_seed->maximum())))); }

void CalibrationPanel::setModelContext(qint64 maxPositions)
{
    m_seqlen->setMaximum(int(maxPositions > 0 ? std::min<qint64>(maxPositions, kMaxSeqlen) : kMaxSeqlen));
}

void CalibrationPanel::setEditable(bool editable)
{
    for (QWidget* w : std::initializer_list<QWidget*>{m_textPath, m_browse, m_nsamples, m_seqlen, m_seed})
        w->setEnabled(editable);
}

void CalibrationPanel::showWarning(const QString& text)
{
    m_warning->setText(text);
    m_warningRow->setVisible(!text.isEmpty());
}

void CalibrationPanel::showPreview(const CalibrationPreviewJob::Result& r)
{
    const QLocale locale;
    QString counts = tr("<b>%1</b>: %2, %3 tokens.")
                         .arg(QFileInfo(r.textPath).fileName().toHtmlEscaped(), locale.formattedDataSize(r.textBytes),
                              locale.toString(r.textTokens));
    if (!r.tooShort)
        counts += QLatin1Char(' ')
            + tr("Calibration: %1 windows × %2 tokens = %3 tokens, covering %4 % of the text.")
                  .arg(locale.toString(r.nsamples), locale.toString(r.seqlen), locale.toString(r.calibrationTokens))
                  .arg(100.0 * r.coverage, 0, 'f', 1);
    m_counts->setText(counts);
    showWarning(r.warning);
    m_preview->setWindows(r.windows);
}

void CalibrationPanel::showPreviewError(const QString& message)
{
    m_counts->setText(QString());
    showWarning(message);
    m_preview->clearWindows();
}

void CalibrationPanel::clearPreview()
{
    m_counts->setText(tr("Open a model to preview the calibration windows."));
    showWarning({});
    m_preview->clearWindows();
}

QString CalibrationPanel::countsText() const { return m_counts->text(); }
QString CalibrationPanel::warningText() const { return m_warning->text(); }
bool CalibrationPanel::warningVisible() const { return !m_warningRow->isHidden(); }

} // namespace sparselab::gui

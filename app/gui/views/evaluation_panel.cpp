#include "evaluation_panel.h"

#include "action_button.h"

#include <QAction>
#include <QCheckBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QStyle>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace sparselab::gui {

namespace {
constexpr int kMaxSeqlen = 131072;
constexpr int kProgressScale = 1000;

} // namespace

EvaluationPanel::EvaluationPanel(QWidget* parent)
    : QWidget(parent)
{
    // --- text
    m_textPath = new QLineEdit(this);
    m_textPath->setPlaceholderText(tr("Evaluation text file"));
    m_textPath->setToolTip(tr("Plain UTF-8 text: the whole file is tokenized once and cut into windows."));
    m_textPath->setAcceptDrops(false); // file drops go to the window, which sets the path
    m_browse = new QToolButton(this);
    m_browse->setText(tr("…"));
    m_browse->setIcon(style()->standardIcon(QStyle::SP_DirOpenIcon));
    m_textInfo = new QLabel(this);
    m_textInfo->setForegroundRole(QPalette::PlaceholderText);
    m_textInfo->setWordWrap(true);
    connect(m_textPath, &QLineEdit::editingFinished, this, [this] {
        updateTextInfo();
        Q_EMIT settingsChanged();
    });

    auto* textRow = new QHBoxLayout;
    textRow->setSpacing(4);
    textRow->addWidget(m_textPath, 1);
    textRow->addWidget(m_browse);
    auto* textBox = new QGroupBox(tr("Text"), this);
    auto* textLayout = new QVBoxLayout(textBox);
    textLayout->addLayout(textRow);
    textLayout->addWidget(m_textInfo);

    // --- windowing
    m_seqlen = new QSpinBox(this);
    m_seqlen->setRange(0, kMaxSeqlen);
    m_seqlen->setSingleStep(128);
    m_seqlen->setSuffix(tr(" tokens"));
    m_seqlen->setToolTip(tr("Tokens per evaluation window; Auto uses the calibration window length, as runs do."));
    m_seqlen->setAccelerated(true);
    setAutoSeqlen(m_autoSeqlen);

    m_maxWindows = new QSpinBox(this);
    m_maxWindows->setRange(1, 10'000'000);
    m_maxWindows->setValue(int(kDefaultWindows));
    m_maxWindows->setPrefix(tr("first "));
    m_maxWindows->setSuffix(tr(" windows"));
    m_maxWindows->setToolTip(
        tr("Evaluate only this many windows from the start of the text: a quick estimate (%1 by default).").arg(kDefaultWindows));
    m_maxWindows->setAccelerated(true);
    m_allWindows = new QCheckBox(tr("&All windows"), this);
    m_allWindows->setToolTip(tr("Evaluate every complete window of the text, as the SparseGPT reference reports "
                                "perplexity (slower: all 764 windows of the demo text take minutes)."));
    connect(m_allWindows, &QCheckBox::toggled, this, [this](bool all) {
        m_maxWindows->setEnabled(!all && m_allWindows->isEnabled());
        Q_EMIT settingsChanged();
    });

    m_batchSize = new QSpinBox(this);
    m_batchSize->setRange(1, 512);
    m_batchSize->setValue(8);
    m_batchSize->setSuffix(tr(" windows per pass"));
    m_batchSize->setToolTip(tr("Windows per forward pass: larger is faster but needs more memory."));

    for (QSpinBox* box : {m_seqlen, m_maxWindows, m_batchSize})
        connect(box, &QSpinBox::valueChanged, this, &EvaluationPanel::settingsChanged);

    auto* settingsBox = new QGroupBox(tr("Windows"), this);
    auto* form = new QFormLayout(settingsBox);
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    form->addRow(tr("&Window length:"), m_seqlen);
    form->addRow(tr("&Evaluate:"), m_maxWindows);
    form->addRow(QString(), m_allWindows); // its own row: the dock stays as narrow as before
    form->addRow(tr("&Batch:"), m_batchSize);

    // --- run
    m_evaluate = new QPushButton(tr("Evaluate"), this);
    m_evaluate->setIcon(style()->standardIcon(QStyle::SP_MediaPlay));
    m_evaluate->setDefault(true);
    m_cancel = new QPushButton(tr("Cancel"), this);
    m_cancel->setIcon(style()->standardIcon(QStyle::SP_MediaStop));
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_evaluate, 1);
    buttons->addWidget(m_cancel, 1);

    m_progress = new QProgressBar(this);
    m_progress->setRange(0, kProgressScale);
    m_progress->setValue(0);
    m_progress->setTextVisible(true);
    m_progress->setFormat(QString());
    m_progressText = new QLabel(this);
    m_progressText->setForegroundRole(QPalette::PlaceholderText);
    m_progressText->setText(tr("Idle"));

    // --- result
    m_result = new QLabel(QStringLiteral("—"), this);
    QFont big = m_result->font();
    big.setPointSizeF(big.pointSizeF() * 2.2);
    big.setBold(true);
    m_result->setFont(big);
    m_result->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_result->setToolTip(tr("exp(mean next-token cross-entropy over the windows): lower is better."));
    auto* caption = new QLabel(tr("Perplexity (lower is better)"), this);
    caption->setForegroundRole(QPalette::PlaceholderText);
    m_resultDetails = new QLabel(this);
    m_resultDetails->setWordWrap(true);
    m_resultDetails->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_status = new QLabel(this);
    m_status->setWordWrap(true);

    auto* resultBox = new QGroupBox(tr("Result"), this);
    auto* resultLayout = new QVBoxLayout(resultBox);
    resultLayout->addWidget(m_result);
    resultLayout->addWidget(caption);
    resultLayout->addWidget(m_resultDetails);
    resultLayout->addWidget(m_status);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 8, 8, 8);
    layout->addWidget(textBox);
    layout->addWidget(settingsBox);
    layout->addLayout(buttons);
    layout->addWidget(m_progress);
    layout->addWidget(m_progressText);
    layout->addWidget(resultBox);
    layout->addStretch(1);
    clearResult();
}

void EvaluationPanel::setActions(QAction* evaluate, QAction* cancel, QAction* chooseText)
{
    widgets::bindButtonToAction(m_evaluate, evaluate);
    widgets::bindButtonToAction(m_cancel, cancel);
    m_browse->setToolTip(chooseText->toolTip());
    connect(m_browse, &QToolButton::clicked, chooseText, &QAction::trigger);
}

QString EvaluationPanel::textPath() const { return m_textPath->text().trimmed(); }

void EvaluationPanel::setTextPath(const QString& path)
{
    m_textPath->setText(path);
    updateTextInfo();
}

qint64 EvaluationPanel::seqlen() const { return m_seqlen->value(); }
void EvaluationPanel::setSeqlen(qint64 tokens) { m_seqlen->setValue(int(std::clamp<qint64>(tokens, 0, kMaxSeqlen))); }
qint64 EvaluationPanel::maxWindows() const { return m_allWindows->isChecked() ? 0 : m_maxWindows->value(); }

void EvaluationPanel::setMaxWindows(qint64 windows)
{
    const QSignalBlocker block(m_allWindows); // one settingsChanged, from the box that changes last
    m_allWindows->setChecked(windows <= 0);
    m_maxWindows->setEnabled(windows > 0 && m_allWindows->isEnabled());
    if (windows > 0)
        m_maxWindows->setValue(int(std::clamp<qint64>(windows, 1, m_maxWindows->maximum())));
    else
        Q_EMIT settingsChanged();
}

void EvaluationPanel::setAutoSeqlen(qint64 tokens)
{
    m_autoSeqlen = std::max<qint64>(2, tokens);
    m_seqlen->setSpecialValueText(tr("Auto (%1 tokens, as calibration)").arg(m_autoSeqlen));
}

qint64 EvaluationPanel::effectiveSeqlen() const { return seqlen() > 0 ? seqlen() : m_autoSeqlen; }
qint64 EvaluationPanel::batchSize() const { return m_batchSize->value(); }
void EvaluationPanel::setBatchSize(qint64 windows) { m_batchSize->setValue(int(std::clamp<qint64>(windows, 1, 512))); }

void EvaluationPanel::setModelContext(qint64 maxPositions)
{
    m_modelContext = maxPositions;
    if (maxPositions > 0) {
        m_seqlen->setMaximum(int(std::min<qint64>(maxPositions, kMaxSeqlen)));
    } else {
        m_seqlen->setMaximum(kMaxSeqlen);
    }
}

void EvaluationPanel::setRunning(bool running)
{
    for (QWidget* w : std::initializer_list<QWidget*>{m_textPath, m_browse, m_seqlen, m_allWindows, m_batchSize})
        w->setEnabled(!running);
    m_maxWindows->setEnabled(!running && !m_allWindows->isChecked());
    if (running) {
        m_progress->setRange(0, 0); // busy until the first report
        m_progress->setFormat(QString());
        m_progressText->setText(tr("Starting…"));
        m_status->clear();
    } else {
        m_progress->setRange(0, kProgressScale);
    }
}

QString EvaluationPanel::formatDuration(double seconds)
{
    if (!(seconds >= 0) || !std::isfinite(seconds))
        return tr("unknown");
    if (seconds < 10.0)
        return tr("%1 s").arg(seconds, 0, 'f', 1);
    const qint64 s = qint64(std::llround(seconds));
    if (s < 60)
        return tr("%1 s").arg(s);
    if (s < 3600)
        return QStringLiteral("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2:%3").arg(s / 3600).arg((s / 60) % 60, 2, 10, QLatin1Char('0')).arg(s % 60, 2, 10, QLatin1Char('0'));
}

void EvaluationPanel::setProgress(qint64 done, qint64 total, double etaSeconds, const QString& text)
{
    if (total > 0) {
        m_progress->setRange(0, kProgressScale);
        m_progress->setValue(int(std::clamp<qint64>(done * kProgressScale / total, 0, kProgressScale)));
        m_progress->setFormat(QStringLiteral("%1 / %2").arg(done).arg(total));
    } else {
        m_progress->setRange(0, 0);
    }
    QString line = text;
    if (total > 0 && done < total)
        line += QStringLiteral(" · ") + (etaSeconds >= 0 ? tr("%1 left").arg(formatDuration(etaSeconds)) : tr("estimating time left…"));
    m_progressText->setText(line);
}

void EvaluationPanel::showResult(double perplexity, qint64 windows, qint64 seqlen, qint64 tokens, double seconds,
                                 const QString& textName)
{
    m_result->setText(QString::number(perplexity, 'f', 4));
    m_resultDetails->setText(tr("%1 windows × %2 tokens of %3 (%4 tokens in all), %5")
                                 .arg(QLocale().toString(windows))
                                 .arg(seqlen)
                                 .arg(textName, QLocale().toString(tokens))
                                 .arg(formatDuration(seconds)));
    m_progress->setRange(0, kProgressScale);
    m_progress->setValue(kProgressScale);
    m_progressText->setText(tr("Done"));
    m_status->clear();
}

void EvaluationPanel::showStatus(const QString& text)
{
    m_status->setText(text);
    m_progress->setRange(0, kProgressScale);
    m_progress->setValue(0);
    m_progress->setFormat(QString());
    m_progressText->setText(tr("Idle"));
}

void EvaluationPanel::clearResult()
{
    m_result->setText(QStringLiteral("—"));
    m_resultDetails->setText(tr("Not evaluated yet."));
    m_status->clear();
}

QString EvaluationPanel::resultText() const { return m_result->text(); }
QString EvaluationPanel::statusText() const { return m_status->text(); }

void EvaluationPanel::updateTextInfo()
{
    const QFileInfo info(textPath());
    if (textPath().isEmpty())
        m_textInfo->setText(tr("Choose a text file, or drop one on the window."));
    else if (!info.isFile())
        m_textInfo->setText(tr("File not found."));
    else
        m_textInfo->setText(QStringLiteral("%1 · %2").arg(info.fileName(), QLocale().formattedDataSize(info.size())));
    const QString help = tr("Plain UTF-8 text: the whole file is tokenized once and cut into windows.");
    m_textPath->setToolTip(textPath().isEmpty() ? help : help + QLatin1Char('\n') + textPath());
}

} // namespace sparselab::gui

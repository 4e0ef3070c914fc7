#include "export_panel.h"

#include <QAction>
#include <QComboBox>
#include <QSettings>
#include <QDir>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QStyle>
#include <QToolButton>
#include <QVBoxLayout>

namespace sparselab::gui {

ExportPanel::ExportPanel(QWidget* parent)
    : QWidget(parent)
{
    m_run = new QLabel(this);
    m_run->setWordWrap(true);
    m_run->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_outDir = new QLineEdit(this);
    m_outDir->setPlaceholderText(tr("New folder for the compressed model"));
    m_outDir->setToolTip(tr("A Hugging Face folder is written here; it must not exist yet (nothing is ever overwritten)."));
    m_outDir->setClearButtonEnabled(true);
    m_browse = new QToolButton(this);
    m_browse->setIcon(style()->standardIcon(QStyle::SP_DirOpenIcon));
    m_browse->setText(tr("…"));
    m_guard = new QLabel(this);
    m_guard->setWordWrap(true);
    QFont bold = m_guard->font();
    bold.setBold(true);
    m_guard->setFont(bold);
    m_guard->setVisible(false);
    connect(m_outDir, &QLineEdit::textChanged, this, [this] {
        updateGuard();
        Q_EMIT outDirChanged(outDir());
    });

    m_format = new QComboBox(this);
    m_format->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_format->setMinimumContentsLength(3);
    m_format->addItem(tr("Hugging Face folder"), QString());
    m_format->addItem(tr("GGUF file, F32"), QStringLiteral("f32"));
    m_format->addItem(tr("GGUF file, F16"), QStringLiteral("f16"));
    m_format->addItem(tr("GGUF file, Q8_0"), QStringLiteral("q8_0"));
    m_format->addItem(tr("GGUF file, Q4_0"), QStringLiteral("q4_0"));
    m_format->setToolTip(tr("<p>A Hugging Face folder keeps every tensor's dtype and records the run in "
                            "sparselab.json.</p><p>A GGUF file runs in llama.cpp. Q8_0/Q4_0 quantize every "
                            "matrix whose width is a multiple of 32 (others stay F16); layers quantized with a "
                            "symmetric 4-/8-bit grid with fp16 scales are packed from that grid, losslessly.</p>"));
    auto* formatLabel = new QLabel(tr("F&ormat:"), this);
    formatLabel->setBuddy(m_format);
    auto* formatRow = new QHBoxLayout;
    formatRow->setSpacing(4);
    formatRow->addWidget(formatLabel);
    formatRow->addWidget(m_format, 1);
    setGgufType(QSettings().value(QStringLiteral("export/format")).toString());
    connect(m_format, &QComboBox::currentIndexChanged, this, [this] {
        QSettings().setValue(QStringLiteral("export/format"), ggufType());
        const bool gguf = !ggufType().isEmpty();
        m_outDir->setPlaceholderText(gguf ? tr("New .gguf file") : tr("New folder for the compressed model"));
        QString out = outDir();
        if (gguf && !out.isEmpty() && !out.endsWith(QLatin1String(".gguf"), Qt::CaseInsensitive))
            setOutDir(out + QStringLiteral(".gguf"));
        else if (!gguf && out.endsWith(QLatin1String(".gguf"), Qt::CaseInsensitive))
            setOutDir(out.left(out.size() - 5));
        updateGuard();
    });
    if (!ggufType().isEmpty())
        m_outDir->setPlaceholderText(tr("New .gguf file"));

    auto* folderLabel = new QLabel(tr("O&utput:"), this);
    folderLabel->setBuddy(m_outDir);
    auto* folderRow = new QHBoxLayout;
    folderRow->setSpacing(4);
    folderRow->addWidget(folderLabel);
    folderRow->addWidget(m_outDir, 1);
    folderRow->addWidget(m_browse);

    m_export = new QPushButton(tr("Export"), this);
    m_progress = new QProgressBar(this);
    m_progress->setRange(0, 1000);
    m_progress->setValue(0);
    m_progress->setTextVisible(false);
    m_status = new QLabel(this);
    m_status->setWordWrap(true);
    m_status->setForegroundRole(QPalette::PlaceholderText);
    m_summary = new QLabel(this);
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_files = new QListWidget(this);
    m_files->setToolTip(tr("The files of the last export, with their sizes."));

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 8, 8, 8);
    layout->addWidget(m_run);
    layout->addLayout(formatRow);
    layout->addLayout(folderRow);
    layout->addWidget(m_guard);
    layout->addWidget(m_export);
    layout->addWidget(m_progress);
    layout->addWidget(m_status);
    layout->addWidget(m_summary);
    layout->addWidget(m_files, 1);
    setRun(nullptr, {});
}

void ExportPanel::setActions(QAction* exportAction, QAction* chooseFolder)
{
    auto sync = [this, exportAction] {
        m_export->setEnabled(exportAction->isEnabled());
        m_export->setToolTip(exportAction->toolTip());
        m_export->setIcon(exportAction->icon());
    };
    connect(exportAction, &QAction::changed, m_export, sync);
    connect(m_export, &QPushButton::clicked, exportAction, &QAction::trigger);
    sync();
    m_browse->setToolTip(chooseFolder->toolTip());
    connect(m_browse, &QToolButton::clicked, chooseFolder, &QAction::trigger);
}

void ExportPanel::setRun(const RunRecord* run, const QString& modelFolder)
{
    m_hasRun = run != nullptr;
    m_modelKept = run && run->modelKept;
    m_modelFolder = modelFolder;
    if (!run)
        m_run->setText(tr("No run selected: run a plan (F5), then pick it in Results."));
    else if (!run->modelKept)
        m_run->setText(tr("Run <b>%1</b>: its compressed model was released; run it again to export.").arg(run->name.toHtmlEscaped()));
    else
        m_run->setText(tr("Run <b>%1</b>: %2, linear sparsity %3 %")
                           .arg(run->name.toHtmlEscaped(), run->methodSummary().toHtmlEscaped())
                           .arg(100.0 * run->linearSparsity, 0, 'f', 1));
    updateGuard();
}

QString ExportPanel::outDir() const { return m_outDir->text().trimmed(); }

QString ExportPanel::ggufType() const { return m_format->currentData().toString(); }

void ExportPanel::setGgufType(const QString& type)
{
    const int index = m_format->findData(type);
    m_format->setCurrentIndex(index < 0 ? 0 : index);
}

void ExportPanel::setOutDir(const QString& folder) { m_outDir->setText(QDir::toNativeSeparators(folder)); }

void ExportPanel::updateGuard()
{
    // The overwrite guard, live: the same check the export itself makes first.
    const QString out = QDir::fromNativeSeparators(outDir());
    m_guardText = out.isEmpty()            ? QString()
        : ggufType().isEmpty()             ? exportTargetProblem(m_modelFolder, out)
                                           : ggufTargetProblem(out);
    m_guard->setText(m_guardText.isEmpty() ? QString() : tr("Not writable: %1").arg(m_guardText));
    m_guard->setVisible(!m_guardText.isEmpty());
    Q_EMIT readinessChanged();
}

QString ExportPanel::guardText() const { return m_guardText; }

bool ExportPanel::canExport() const { return m_hasRun && m_modelKept && !outDir().isEmpty() && m_guardText.isEmpty(); }

void ExportPanel::setRunning(bool running)
{
    m_outDir->setEnabled(!running);
    m_format->setEnabled(!running);
    m_browse->setEnabled(!running);
    if (running) {
        m_progress->setRange(0, 0);
        m_status->setText(tr("Starting…"));
    } else {
        m_progress->setRange(0, 1000);
    }
}

void ExportPanel::setProgress(qint64 done, qint64 total, const QString& text)
{
    if (total > 0) {
        m_progress->setRange(0, 1000);
        m_progress->setValue(int(std::clamp<qint64>(done * 1000 / total, 0, 1000)));
    }
    m_status->setText(text);
}

void ExportPanel::showSummary(const ExportJob::Result& r)
{
    m_progress->setRange(0, 1000);
    m_progress->setValue(1000);
    m_status->setText(tr("Done in %1.").arg(formatSeconds(r.seconds)));
    m_summary->setText(tr("Wrote <b>%1</b>: %2 files, %3, %4 layers replaced.")
                           .arg(QDir::toNativeSeparators(r.folder).toHtmlEscaped())
                           .arg(r.files)
                           .arg(formatBytes(r.bytes))
                           .arg(r.tensorsReplaced));
    m_files->clear();
    m_files->addItems(r.fileNames);
    updateGuard(); // the folder exists now
}

void ExportPanel::showStatus(const QString& text)
{
    m_progress->setRange(0, 1000);
    m_progress->setValue(0);
    m_status->setText(text);
}

void ExportPanel::clearStatus()
{
    m_progress->setRange(0, 1000);
    m_progress->setValue(0);
    m_status->clear();
    m_summary->clear();
}

QString ExportPanel::summaryText() const { return m_summary->text(); }
QString ExportPanel::statusText() const { return m_status->text(); }

} // namespace sparselab::gui

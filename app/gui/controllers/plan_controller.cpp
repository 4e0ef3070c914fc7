#include "plan_controller.h"

#include "log_view.h"
#include "main_window.h"
#include "model_summary.h"
#include "plan_model.h"
#include "plan_panel.h"
#include "recent_files.h"
#include "recipe_bridge.h"
#include "workbench.h"

#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QSettings>

namespace sparselab::gui {

namespace {
const QString kPlanKey = QStringLiteral("Plan/recipe");
const QString kExactRulesKey = QStringLiteral("Plan/exactRules");
const QString kLastRecipeKey = QStringLiteral("Plan/lastRecipeFile");
const QString kRecentRecipesKey = QStringLiteral("Session/recentRecipes");
} // namespace

PlanController::PlanController(MainWindow* window, Workbench& session, bool restoreSaved)
    : QObject(window), m_window(window), m_session(session),
      m_recent(new RecentFiles(kRecentRecipesKey, kMaxRecentRecipes, this)), m_restoreSaved(restoreSaved)
{
    m_recent->load();
    connect(m_recent, &RecentFiles::chosen, this, [this](const QString& file) { loadRecipe(file); });
    PlanPanel* panel = m_window->planPanel();
    if (m_restoreSaved) {
        m_lastRecipeFile = QSettings().value(kLastRecipeKey).toString();
        panel->setExactRules(QSettings().value(kExactRulesKey, false).toBool());
    }
    connect(panel->planModel(), &PlanModel::planChanged, this, [this] {
        if (!m_restoring)
            savePlan();
    });
    connect(panel, &PlanPanel::exactRulesChanged, this, [](bool exact) { QSettings().setValue(kExactRulesKey, exact); });
}

void PlanController::showModel(const widgets::ModelSummary& summary)
{
    PlanModel* plan = m_window->planPanel()->planModel();
    m_restoring = true;
    m_window->planPanel()->setModel(summary, engineDefaultSetting());
    const QString saved = QSettings().value(kPlanKey).toString();
    if (!saved.isEmpty() && m_restoreSaved) {
        QList<LayerSetting> settings;
        const QString error = applyRecipeJson(saved.toUtf8(), tr("saved plan"), plan->rows(), &settings);
        if (error.isEmpty())
            plan->setSettings(settings);
        else
            m_window->logView()->appendInfo(
                tr("The last plan does not fit this model (%1); starting from the defaults.").arg(error));
    }
    m_restoring = false;
    savePlan();
}

void PlanController::savePlan() const
{
    const QList<PlanRow>& rows = m_window->planPanel()->planModel()->rows();
    if (!rows.isEmpty())
        QSettings().setValue(kPlanKey, QString::fromUtf8(recipeJson(rows)));
}

void PlanController::addRecent(const QString& file)
{
    const QString path = QDir::cleanPath(QFileInfo(file).absoluteFilePath());
    m_recent->add(path);
    m_lastRecipeFile = path;
    QSettings().setValue(kLastRecipeKey, path);
}

void PlanController::loadRecipeDialog()
{
    const QString start = m_lastRecipeFile.isEmpty() ? QDir::homePath() : QFileInfo(m_lastRecipeFile).absolutePath();
    const QString file =
        QFileDialog::getOpenFileName(m_window, tr("Load Recipe"), start, tr("Recipes (*.json);;All files (*)"));
    if (!file.isEmpty())
        loadRecipe(file);
}

void PlanController::saveRecipeDialog()
{
    QString start = m_lastRecipeFile;
    if (start.isEmpty())
        start = QDir(QDir::homePath()).filePath(m_session.summary().name + QStringLiteral("-recipe.json"));
    QString file =
        QFileDialog::getSaveFileName(m_window, tr("Save Recipe"), start, tr("Recipes (*.json);;All files (*)"));
    if (file.isEmpty())
        return;
    if (QFileInfo(file).suffix().isEmpty())
        file += QStringLiteral(".json");
    saveRecipe(file);
}

bool PlanController::loadRecipe(const QString& file)
{
    if (!m_session.hasModel()) {
        m_window->reportError(tr("No model"), tr("Open a model first: a recipe is checked against its layers."));
        return false;
    }
    if (m_window->isRunning()) {
        m_window->reportError(tr("Busy"), tr("The plan cannot change while a run uses it."));
        return false;
    }
    PlanModel* plan = m_window->planPanel()->planModel();
    QList<LayerSetting> settings;
    const QString error = loadRecipeFile(file, plan->rows(), &settings);
    if (!error.isEmpty()) {
        m_window->reportError(tr("Cannot load recipe"), error);
        return false;
    }
    plan->setSettings(settings);
    addRecent(file);
    const QString message = tr("Loaded recipe %1").arg(QDir::toNativeSeparators(file));
    m_window->announce(message);
    return true;
}

bool PlanController::saveRecipe(const QString& file)
{
    if (!m_session.hasModel()) {
        m_window->reportError(tr("No model"), tr("Open a model first: the plan lists its layers."));
        return false;
    }
    PlanPanel* panel = m_window->planPanel();
    const QString error = saveRecipeFile(panel->planModel()->rows(), file,
                                         panel->exactRules() ? RecipeStyle::Exact : RecipeStyle::Compact);
    if (!error.isEmpty()) {
        m_window->reportError(tr("Cannot save recipe"), error);
        return false;
    }
    addRecent(file);
    const QString message =
        tr("Saved recipe %1 (for sparselab-cli prune --recipe)").arg(QDir::toNativeSeparators(file));
    m_window->announce(message);
    return true;
}

} // namespace sparselab::gui

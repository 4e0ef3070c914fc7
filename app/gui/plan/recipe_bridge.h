#pragma once
// The Plan view's rows ↔ the recipe JSON the CLI reads (core/pipeline/recipe.h).
//
// Saving: Compact style takes the most common setting as "defaults" and writes one rule per
// layer whose setting differs from it, naming the layer exactly (its module name, which
// contains no glob characters), with only the fields that differ. Exact style writes the
// engine's defaults and one full rule per layer. Either way, loading the file back gives
// every layer the setting it had (dense layers: dense, whatever their unused options).
// Loading: Recipe::load + Recipe::validate against the model's layers, then planFor() for
// every layer — glob rules and rule order behave exactly as in the CLI.
//
// This header does not include LibTorch (the recipe header does, through solve/solver.h);
// recipe_bridge.cpp is one of the two GUI translation units that see the engine.
// Errors are returned as one-line messages (empty string = success), never thrown.

#include "session_types.h"

#include <QByteArray>
#include <QList>
#include <QString>

namespace sparselab::pipeline { struct Recipe; }

namespace sparselab::gui {

enum class RecipeStyle {
    Compact, // defaults = the most common setting; rules only where a layer differs
    Exact,   // engine defaults; one complete rule per layer
};

// The engine's default layer setting (solve::SolverOptions{}).
[[nodiscard]] LayerSetting engineDefaultSetting();

// The plan as recipe JSON (indented, trailing newline).
[[nodiscard]] QByteArray recipeJson(const QList<PlanRow>& rows, RecipeStyle style = RecipeStyle::Compact);
// Writes the recipe atomically. Returns "" or the error.
[[nodiscard]] QString saveRecipeFile(const QList<PlanRow>& rows, const QString& file,
                                     RecipeStyle style = RecipeStyle::Compact);
// Reads a recipe file and computes every row's setting into `settings` (same order as
// rows). `rows` supply the layer names and widths. Returns "" or the error (naming the file).
[[nodiscard]] QString loadRecipeFile(const QString& file, const QList<PlanRow>& rows, QList<LayerSetting>* settings);
// The same from JSON text; `source` names it in messages.
[[nodiscard]] QString applyRecipeJson(const QByteArray& json, const QString& source, const QList<PlanRow>& rows,
                                      QList<LayerSetting>* settings);

// For the run job (engine_jobs.cpp, which has the complete type): the plan as a Recipe.
[[nodiscard]] pipeline::Recipe recipeFromPlan(const QList<PlanRow>& rows, RecipeStyle style = RecipeStyle::Compact);

} // namespace sparselab::gui

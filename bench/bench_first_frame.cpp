// bench_first_frame: the first minute in the workbench, measured (issue 19).
//
// Drives the real MainWindow offscreen on the bundled demo model with default settings
// (fresh QSettings in a test folder, so no learned phase costs and no saved layout), at
// 1366 × 768. Per session: open the demo, press Run (the F5 action), and measure
//   - the time from F5 to the first paint of the Live Solver's heat-map with a frame,
//   - the whole run, and the time spent in each phase (Tokenizing, Pruning, Perplexity
//     before/after, from the stage the Run view shows),
//   - the ETA the Run view showed when the bar first reached 10 %, 25 % and 50 %, against
//     the time the run actually still took from there;
// first cold (the dense perplexity not known yet), then again in the same session with the
// dense perplexity cached. Prints one line per run and the medians over the sessions.
//
// Usage: bench_first_frame [SESSIONS]   (default 3; QT_QPA_PLATFORM=offscreen is set here)
// Not a test: the figures depend on the machine and its load (note `uptime` beside them).
#include "job_progress.h"
#include "live_view.h"
#include "main_window.h"
#include "mask_heatmap_widget.h"
#include "session_types.h"

#include <QAction>
#include <QApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QTimer>
#include <QEvent>
#include <QSettings>
#include <QStandardPaths>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

using namespace sparselab::gui;

namespace {

struct RunFigures {
    double firstFrame = -1;            // seconds from F5 to the first painted frame
    double total = 0;                  // seconds from F5 to runFinished
    std::map<QString, double> phases;  // stage → seconds
    double etaAt[3] = {-1, -1, -1};    // ETA shown at 10 / 25 / 50 %
    double leftAt[3] = {-1, -1, -1};   // time actually left from there
};

constexpr double kMarks[3] = {0.10, 0.25, 0.50};

// Notes the first paint of the heat-map once it holds a frame.
class FirstPaint : public QObject {
public:
    QElapsedTimer* clock = nullptr;
    double seconds = -1;
    bool eventFilter(QObject* watched, QEvent* event) override
    {
        if (event->type() == QEvent::Paint && seconds < 0 && clock && clock->isValid()) {
            auto* heatmap = static_cast<sparselab::widgets::MaskHeatmapWidget*>(watched);
            if (heatmap->frame().isValid())
                seconds = double(clock->nsecsElapsed()) / 1e9;
        }
        return false;
    }
};

// Runs the event loop until `done` (checked every 5 ms) or `ms` pass. An event loop that sleeps
// between events, as the application's own does: a processEvents() loop would keep a core
// busy and slow the engine's worker down (it cost the demo run about 5× before).
bool waitFor(const std::function<bool()>& done, int ms)
{
    QElapsedTimer t;
    t.start();
    if (done())
        return true;
    QEventLoop loop;
    QTimer tick;
    QObject::connect(&tick, &QTimer::timeout, &loop, [&] {
        if (done() || t.elapsed() > ms)
            loop.quit();
    });
    tick.start(5);
    loop.exec();
    return done();
}

RunFigures runOnce(MainWindow& window)
{
    RunFigures f;
    QElapsedTimer clock;
    FirstPaint paint;
    paint.clock = &clock;
    window.liveView()->heatmap()->installEventFilter(&paint);
    struct Sample { double t, overall, eta; QString stage; };
    std::vector<Sample> samples;
    const auto progress = QObject::connect(&window, &MainWindow::runProgressed, [&](const RunProgress& p) {
        samples.push_back({double(clock.nsecsElapsed()) / 1e9, p.overall, p.etaSeconds, p.stage});
    });
    bool finished = false;
    const auto done = QObject::connect(&window, &MainWindow::runFinished, [&] { finished = true; });
    clock.start();
    window.runAction()->trigger(); // F5
    if (!waitFor([&] { return finished; }, 1'800'000))
        std::fprintf(stderr, "bench_first_frame: the run did not finish\n");
    f.total = double(clock.nsecsElapsed()) / 1e9;
    QObject::disconnect(progress);
    QObject::disconnect(done);
    window.liveView()->heatmap()->removeEventFilter(&paint);
    f.firstFrame = paint.seconds;
    for (size_t i = 0; i < samples.size(); ++i) {
        const double end = i + 1 < samples.size() ? samples[i + 1].t : f.total;
        f.phases[samples[i].stage] += end - samples[i].t;
    }
    for (int m = 0; m < 3; ++m)
        for (const Sample& s : samples)
            if (s.overall >= kMarks[m]) {
                f.etaAt[m] = s.eta;
                f.leftAt[m] = f.total - s.t;
                break;
            }
    return f;
}

double median(std::vector<double> v)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

void print(const char* what, int session, const RunFigures& f, const CostRates& r)
{
    std::printf("%-6s session %d: first frame %.2f s, run %.1f s, ETA at 10/25/50 %%: %.1f/%.1f/%.1f s vs %.1f/%.1f/%.1f s left;",
                what, session, f.firstFrame, f.total, f.etaAt[0], f.etaAt[1], f.etaAt[2], f.leftAt[0], f.leftAt[1],
                f.leftAt[2]);
    for (const auto& [stage, seconds] : f.phases)
        std::printf(" %s %.1f s;", qPrintable(stage), seconds);
    // The phase costs the run measured (what the next run's progress is weighted by).
    std::printf(" rates: eval %.3g, prune %.3g s per token-block, tokenize %.3g s per byte\n", r.evalPerTokenBlock,
                r.prunePerTokenBlock, r.tokenizePerByte);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char* argv[])
{
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    const int sessions = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("SparseLabBench"));
    QCoreApplication::setApplicationName(QStringLiteral("BenchFirstFrame"));

    std::vector<RunFigures> cold, cached;
    for (int s = 1; s <= sessions; ++s) {
        QSettings().clear(); // a new user: default settings, no learned costs
        MainWindow::Options options;
        options.restoreSettings = false;
        MainWindow window(options);
        window.setErrorHandler([](const QString& title, const QString& message) {
            std::fprintf(stderr, "bench_first_frame: %s: %s\n", qPrintable(title), qPrintable(message));
        });
        window.resize(1366, 768);
        window.show();
        window.resetLayout();
        if (!waitFor([&] { return window.hasModel() && !window.isBusy(); }, 120'000)) {
            std::fprintf(stderr, "bench_first_frame: the demo model did not load\n");
            return 1;
        }
        cold.push_back(runOnce(window));
        print("cold", s, cold.back(), window.costRates());
        cached.push_back(runOnce(window));
        print("cached", s, cached.back(), window.costRates());
    }
    const auto summary = [](const char* what, const std::vector<RunFigures>& runs) {
        std::vector<double> frame, total, eta[3], left[3];
        for (const RunFigures& f : runs) {
            frame.push_back(f.firstFrame);
            total.push_back(f.total);
            for (int m = 0; m < 3; ++m) {
                eta[m].push_back(f.etaAt[m]);
                left[m].push_back(f.leftAt[m]);
            }
        }
        std::printf("median %-6s (%zu runs): first frame %.2f s, run %.1f s, ETA at 10/25/50 %%: %.1f/%.1f/%.1f s vs "
                    "%.1f/%.1f/%.1f s left\n",
                    what, runs.size(), median(frame), median(total), median(eta[0]), median(eta[1]), median(eta[2]),
                    median(left[0]), median(left[1]), median(left[2]));
    };
    summary("cold", cold);
    summary("cached", cached);
    return 0;
}

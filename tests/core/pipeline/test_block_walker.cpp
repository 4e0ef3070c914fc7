// BlockWalker running its batches on two threads (pipeline/block_walker.h): the same bits as
// one thread, the hooks shown each linear's inputs in window order and one call at a time, and
// a failure or a cancel in any batch ends the walk with that error instead of a hang.
// The demo model (stories260K-hf, hidden 64) and windows cut from its calibration text, bundled
// data only. The tests set the threads themselves (CTest runs with OMP_NUM_THREADS=1).

#include "testsupport.h"

#include "data/calibration.h"
#include "model/causal_lm.h"
#include "pipeline/block_walker.h"
#include "pipeline/ordered_hook_calls.h"
#include "pipeline/prune_pipeline.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/engine_threads.h"
#include "util/errors.h"

#include <torch/types.h>

#include <QTest>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace sparselab;

namespace {

// 12 windows of 64 tokens: six batches of two.
const data::CalibrationWindows& windows()
{
    static const data::CalibrationWindows w = [] {
        const auto tokenizer = tokenize::loadTokenizer(testing::demoModelDir());
        data::CalibrationParams params;
        params.nsamples = 12;
        params.seqlen = 64;
        params.seed = 0;
        return data::sampleCalibrationWindows(tokenizer->encodeForModel(readTextFile(testing::demoCalibText())),
                                              params, testing::demoCalibText());
    }();
    return w;
}

constexpr int64_t kBatch = 2;

// What a walk showed its hooks: per linear, the inputs (and outputs) in the order they came,
// and the threads the hooks ran on.
struct Seen {
    std::map<std::string, std::vector<torch::Tensor>> inputs, outputs;
    std::set<std::thread::id> threads;
    int mostAtOnce = 0;
    int batchThreads = 0; // what the walker said it would use
};

// Runs every block of the model through observe then advance, recording into `seen`; returns
// the final activations. `delayFirstCall`: the first hook call sleeps, so that the other thread
// takes a batch meanwhile. The hooks run one at a time, so the test cannot see the other thread
// waiting from inside a hook; 1 s is many times the few milliseconds a batch's forward pass and
// a helper's wake-up take here, and a machine too slow for it fails the test (one thread seen),
// it does not pass it.
torch::Tensor walkAll(const model::CausalLM& model, Seen& seen, int threads, bool delayFirstCall)
{
    const KernelThreadsScope kernels(threads);
    pipeline::BlockWalker walker(model, windows(), kBatch, nullptr);
    seen.batchThreads = walker.batchThreads();
    std::atomic<int> inside{0};
    std::mutex record;
    bool first = true;
    const auto enter = [&] {
        const int now = ++inside;
        const std::lock_guard lock(record);
        seen.mostAtOnce = std::max(seen.mostAtOnce, now);
        seen.threads.insert(std::this_thread::get_id());
        if (first && delayFirstCall)
            std::this_thread::sleep_for(std::chrono::seconds(1));
        first = false;
    };
    const auto input = [&](const model::LinearLayer& layer, const torch::Tensor& x) {
        enter();
        seen.inputs[layer.name].push_back(x.clone());
        --inside;
    };
    const auto output = [&](const model::LinearLayer& layer, const torch::Tensor& y) {
        enter();
        seen.outputs[layer.name].push_back(y.clone());
        --inside;
    };
    for (int64_t b = 0; b < model.numBlocks(); ++b) {
        walker.observe(b, input, output);
        walker.advance(b);
    }
    return walker.inputs().clone();
}

bool sameTensors(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b)
{
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!torch::equal(a[i], b[i]))
            return false;
    return true;
}

// Runs `walk` on a thread of its own; one still running after two minutes has hung: fatal.
void withinLimit(const std::function<void()>& walk)
{
    std::packaged_task<void()> task(walk);
    std::future<void> done = task.get_future();
    std::thread thread(std::move(task));
    if (done.wait_for(std::chrono::minutes(2)) != std::future_status::ready) {
        thread.detach();
        qFatal("the walk did not end: a batch is still waiting for its turn");
    }
    thread.join();
    done.get();
}

// Returns once a thread is blocked in order.run() for its turn (the watchdog of withinLimit, or
// CTest's timeout, ends a test where none ever is).
void waitUntilOneWaits(pipeline::OrderedHookCalls& order)
{
    while (order.waiting() < 1)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

} // namespace

class TestBlockWalker : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase()
    {
        setEngineThreads(EngineThreads{0, 1}); // products on one thread, as for every small model
    }

    void twoThreadsGiveTheBitsOfOne()
    {
        const auto model = model::CausalLM::load(testing::demoModelDir());
        torch::NoGradGuard noGrad;
        Seen one, two;
        const torch::Tensor sequential = walkAll(*model, one, 1, false);
        const torch::Tensor parallel = walkAll(*model, two, 2, true);
        QCOMPARE(one.batchThreads, 1);
        QCOMPARE(two.batchThreads, 2);
        QVERIFY(torch::equal(sequential, parallel));
        QCOMPARE(one.threads.size(), size_t(1));
        QCOMPARE(two.threads.size(), size_t(2)); // both threads ran batches whose hooks were called
        QCOMPARE(two.mostAtOnce, 1);             // never two hook calls at once
        QCOMPARE(one.inputs.size(), size_t(5 * 7));
        for (const auto& [name, xs] : one.inputs) {
            QCOMPARE(int64_t(xs.size()), int64_t(windows().nsamples / kBatch)); // one call per batch
            QVERIFY2(sameTensors(xs, two.inputs[name]), name.c_str()); // the same inputs, in window order
        }
        QCOMPARE(one.outputs.size(), size_t(5 * 6)); // observe skips the block's last product
        for (const auto& [name, ys] : one.outputs)
            QVERIFY2(sameTensors(ys, two.outputs[name]), name.c_str());
    }

    // The turns themselves, on plain threads: batch 1's call waits for batch 0's at the same
    // position, whatever the order the threads arrive in; a failure wakes a waiting batch, which
    // then stops (without the wake-up it would wait forever: the watchdog makes that a failure).
    void orderedCallsTakeTurnsAndStopOnFailure()
    {
        pipeline::OrderedHookCalls order;
        std::vector<int> ran;
        std::thread later([&] { order.run(1, 0, [&] { ran.push_back(1); }); });
        waitUntilOneWaits(order); // batch 1 arrived first, however slow the machine
        order.run(0, 0, [&] { ran.push_back(0); });
        later.join();
        QCOMPARE(ran, (std::vector<int>{0, 1}));

        bool stopped = false;
        withinLimit([&] {
            std::thread waiting([&] {
                try {
                    order.run(1, 1, [] {}); // batch 0's call 1 never comes
                } catch (const pipeline::OrderedHookCalls::Stopped&) {
                    stopped = true;
                }
            });
            waitUntilOneWaits(order); // the failure must wake it, not find it arriving late
            order.fail(std::make_exception_ptr(InputError("batch 0 failed")));
            waiting.join();
        });
        QVERIFY(stopped);
        QVERIFY(order.failed());
        QVERIFY_THROWS_EXCEPTION(InputError, order.rethrowFailure());
        QVERIFY_THROWS_EXCEPTION(pipeline::OrderedHookCalls::Stopped, order.run(2, 0, [] {})); // late arrivals too
    }

    // A failure in one batch's hook ends the walk with that error (not a hang, whichever thread
    // waits for that batch's turn), and so does a cancel seen by a later batch.
    void aFailingBatchEndsTheWalk()
    {
        const auto model = model::CausalLM::load(testing::demoModelDir());
        std::map<std::string, int> calls; // per linear kind
        std::string error;
        int threads = 0;
        withinLimit([&] {
            torch::NoGradGuard noGrad;
            const KernelThreadsScope kernels(2);
            pipeline::BlockWalker walker(*model, windows(), kBatch, nullptr);
            threads = walker.batchThreads();
            try {
                walker.observe(0, [&](const model::LinearLayer& layer, const torch::Tensor&) {
                    if (++calls[layer.kind] == 4 && layer.kind == "self_attn.k_proj") // batch 3's
                        throw InputError("batch 3 refused at " + layer.kind);
                });
            } catch (const InputError& e) {
                error = e.what();
            }
        });
        QCOMPARE(threads, 2);
        QCOMPARE(error, std::string("batch 3 refused at self_attn.k_proj"));
        // No k_proj after the failure: batch 4's would have needed batch 3's turn. (Batch 2
        // may have been stopped before its v_proj. Whether a batch was already waiting for a
        // turn when the failure came depends on timing; orderedCallsTakeTurnsAndStopOnFailure
        // makes sure of that case.)
        QCOMPARE(calls["self_attn.k_proj"], 4);
        QVERIFY(calls["self_attn.v_proj"] <= 3);

        CancelToken cancel;
        int seen = 0;
        bool cancelled = false;
        withinLimit([&] {
            torch::NoGradGuard noGrad;
            const KernelThreadsScope kernels(2);
            pipeline::BlockWalker walker(*model, windows(), kBatch, &cancel);
            try {
                walker.advance(0, [&](const model::LinearLayer&, const torch::Tensor&) {
                    if (++seen == 7) // batch 0's last linear: later batches find the walk cancelled
                        cancel.cancel();
                });
            } catch (const CancelledError&) {
                cancelled = true;
            }
        });
        QVERIFY(cancelled);
        QVERIFY(seen < 6 * 7);
    }

    // The whole prune on two batch threads: every weight and every layer's statistics the same
    // bits as on one.
    void pruneIsTheSameOnTwoThreads()
    {
        pipeline::PruneParams params;
        params.recipe.defaults.options.method = solve::Method::SparseGpt;
        params.recipe.defaults.options.sparsity = 0.5;
        params.forwardBatch = kBatch;
        auto one = model::CausalLM::load(testing::demoModelDir());
        auto two = model::CausalLM::load(testing::demoModelDir());
        pipeline::PruneResult first, second;
        {
            const KernelThreadsScope kernels(1);
            first = pipeline::pruneModel(*one, windows(), params);
        }
        {
            const KernelThreadsScope kernels(2);
            second = pipeline::pruneModel(*two, windows(), params);
        }
        for (const auto& [name, weight] : one->parameters())
            QVERIFY2(torch::equal(weight, two->parameters().at(name)), name.c_str());
        QCOMPARE(first.layers.size(), second.layers.size());
        for (size_t i = 0; i < first.layers.size(); ++i) {
            QVERIFY(first.layers[i].stats.loss == second.layers[i].stats.loss);
            QVERIFY(first.layers[i].stats.relOutputError == second.layers[i].stats.relOutputError);
        }
    }
};

QTEST_GUILESS_MAIN(TestBlockWalker)
#include "test_block_walker.moc"

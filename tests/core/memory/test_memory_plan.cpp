// Memory planner (memory/memory_plan.h) on a 7B-shaped Llama config, every figure derived by hand:
//   d = 4096, I = 11008, 32 heads: one block's linears = 4·d² + 3·d·I = 202,375,168 weights
//   → 809,500,672 bytes float32; Hessians: six layers with cols = d (16,777,216 floats each)
//   and down_proj with cols = I (121,176,064 floats) → (6·16,777,216 + 121,176,064)·4 =
//   887,357,440 bytes; embeddings + head (untied, vocab 512): 2·512·4096·4 = 16,777,216 bytes.
// Solving phase peak (down_proj, last): its Hessian + Hinv (2·I²·4 = 969,408,512) + its dense
// copy d·I·4 = 180,355,072 → 1,149,763,584 bytes, larger than collecting (887,357,440 + the
// forward temporaries of 8 × 128 tokens: 8·128·11008·4·4 + 128²·4 + 3·2 MiB = 186,712,064 →
// 1,074,069,504). Streamed: one block of weights; in memory: all of them.
// Long windows (Qwen2.5-0.5B shape, 128 × 2048 on CUDA, streamed): collecting is the peak —
// Hessians 6·896²·4 + 4864²·4 = 113,901,568, forward 8·2048·4864·4·4 + 2048²·4 + 3·2 MiB =
// 1,298,137,088 → 1,412,038,656 (attention is tiled: no [batch, heads, T, T] tensor; the H200
// run of docs/gpu.md peaked at 5,833 MiB against 5,570 MiB planned for the whole GPU).

#include "testsupport.h"

#include "memory/memory_plan.h"

#include <QTest>

using namespace sparselab;

namespace {

model::ModelConfig llama7bShaped(int64_t blocks)
{
    model::ModelConfig c;
    c.architecture = model::Architecture::Llama;
    c.hiddenSize = 4096;
    c.intermediateSize = 11008;
    c.numLayers = blocks;
    c.numHeads = 32;
    c.numKvHeads = 32;
    c.headDim = 128;
    c.vocabSize = 512;
    c.maxPositions = 2048;
    return c;
}

int64_t item(const memory::MemoryPlan& p, const std::string& what)
{
    for (const auto& i : p.items)
        if (i.what == what)
            return i.bytes;
    return -1;
}

} // namespace

class TestMemoryPlan : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void streamedIsBoundedByOneBlock()
    {
        for (int64_t blocks : {2, 8, 80}) {
            memory::MemoryPlanInput in;
            in.config = llama7bShaped(blocks);
            in.nsamples = 8;
            in.seqlen = 128;
            in.streamed = true;
            const auto p = memory::planMemory(in);
            QCOMPARE(item(p, "weights"), int64_t(809'500'672 + 16'777'216));
            QCOMPARE(item(p, "hessians+solve"), int64_t(1'149'763'584));
            QCOMPARE(item(p, "activations"), int64_t(8) * 128 * 4096 * 4);
            QCOMPARE(item(p, "export"), int64_t(0));
            QCOMPARE(p.deviceBytes, int64_t(0));
        }
    }

    // Recovery after pruning, 2 blocks in memory, 8 × 128 tokens, batch 8, by hand:
    // per block passed through: 10·8·128·4096·4 + 4·8·128·11008·4 + 2·8·32·128²·4 =
    // 167,772,160 + 180,355,072 + 33,554,432 = 381,681,664.
    // kl: teacher log-probs 8·128·512·4 = 2,097,152; Adam state 4·2·809,500,672 =
    // 6,476,005,376; autograd 2·381,681,664 + 3·8·128·512·4 = 769,654,784; the training's
    // 7,245,660,160 less the solver's 1,149,763,584 → 6,095,896,576 + 2,097,152 = 6,097,993,728.
    // block: teacher 2·809,500,672 + 16,777,216 + 8·128·4096·4 = 1,652,555,776; one block's
    // state 3,238,002,688 + autograd 381,681,664 − 1,149,763,584 = 2,469,920,768 → 4,122,476,544.
    void recoveryAddsItsTeacherAndTraining()
    {
        memory::MemoryPlanInput in;
        in.config = llama7bShaped(2);
        in.nsamples = 8;
        in.seqlen = 128;
        const auto without = memory::planMemory(in);
        QCOMPARE(item(without, "recovery"), int64_t(-1));
        in.recoveryLoss = 1;
        const auto kl = memory::planMemory(in);
        QCOMPARE(item(kl, "recovery"), int64_t(6'097'993'728));
        QCOMPARE(kl.hostBytes, without.hostBytes + int64_t(6'097'993'728));
        in.recoveryLoss = 2;
        QCOMPARE(item(memory::planMemory(in), "recovery"), int64_t(4'122'476'544));
    }

    void longWindowsPeakWhileCollecting()
    {
        memory::MemoryPlanInput in;
        in.config.architecture = model::Architecture::Llama;
        in.config.hiddenSize = 896;
        in.config.intermediateSize = 4864;
        in.config.numLayers = 24;
        in.config.numHeads = 14;
        in.config.numKvHeads = 2;
        in.config.headDim = 64;
        in.config.vocabSize = 151936;
        in.config.tieWordEmbeddings = true;
        in.config.maxPositions = 32768;
        in.nsamples = 128;
        in.seqlen = 2048;
        in.streamed = true;
        in.cuda = true;
        const auto p = memory::planMemory(in);
        QCOMPARE(item(p, "hessians+solve"), int64_t(1'412'038'656));
        QCOMPARE(item(p, "activations"), int64_t(128) * 2048 * 896 * 4);
    }

    // BlockWalker's batches at once (memory::parallelForwardBatches): as many as the threads
    // and the batches allow while the others' temporaries stay within 256 MiB. The demo's
    // shapes (its config.json: hidden 64, MLP 172, 8 heads of 8), batch 8 × 256 tokens:
    // 8·256·172·4·4 + 256²·4 + 3·2 MiB = 12,189,696 bytes a batch, so 1 + ⌊268,435,456 /
    // 12,189,696⌋ = 23 at most. The Qwen2.5-0.5B shape above at 8 × 2048: 1,298,137,088 bytes a
    // batch, alone whatever the threads.
    void parallelBatchesStayWithinTheirAllowance()
    {
        const model::ModelConfig demo = model::ModelConfig::load(testing::demoModelDir());
        QCOMPARE(demo.hiddenSize, int64_t(64));
        QCOMPARE(demo.intermediateSize, int64_t(172));
        QCOMPARE(memory::forwardTemporaryBytes(demo, 8, 256), int64_t(12'189'696));
        QCOMPARE(memory::parallelForwardBatches(demo, 8, 256, 1000, 1), 1);
        QCOMPARE(memory::parallelForwardBatches(demo, 8, 256, 1000, 2), 2);
        QCOMPARE(memory::parallelForwardBatches(demo, 8, 256, 1000, 64), 23);
        QCOMPARE(memory::parallelForwardBatches(demo, 8, 256, 16, 64), 16); // no more than there are
        QCOMPARE(memory::parallelForwardBatches(demo, 8, 256, 1, 64), 1);
        model::ModelConfig qwen = demo;
        qwen.hiddenSize = 896;
        qwen.intermediateSize = 4864;
        qwen.numHeads = 14;
        qwen.numKvHeads = 2;
        qwen.headDim = 64;
        QCOMPARE(memory::forwardTemporaryBytes(qwen, 8, 2048), int64_t(1'298'137'088));
        QCOMPARE(memory::parallelForwardBatches(qwen, 8, 2048, 16, 16), 1);
    }

    void inMemoryGrowsWithBlocks()
    {
        memory::MemoryPlanInput in;
        in.config = llama7bShaped(8);
        in.nsamples = 8;
        in.seqlen = 128;
        const auto p = memory::planMemory(in);
        QCOMPARE(item(p, "weights"), int64_t(8) * 809'500'672 + 16'777'216);
    }

    void cudaPutsTheWorkOnTheDevice()
    {
        memory::MemoryPlanInput in;
        in.config = llama7bShaped(2);
        in.nsamples = 8;
        in.seqlen = 128;
        in.streamed = true;
        in.cuda = true;
        const auto p = memory::planMemory(in);
        QVERIFY(p.deviceBytes > 809'500'672 + 1'149'763'584);
        // Host: spill/export nothing, staging of the largest tensor (I·d floats, F16 + float32).
        QCOMPARE(item(p, "staging"), int64_t(11008) * 4096 * 6);
    }

    void refusesWhatDoesNotFit()
    {
        memory::MemoryPlanInput in;
        in.config = llama7bShaped(8);
        in.nsamples = 8;
        in.seqlen = 128;
        in.hostAvailableBytes = 2'000'000'000; // 2 GB: less than one block's float32 weights + Hessians
        const auto p = memory::planMemory(in);
        QVERIFY(!p.fits());
        QVERIFY(!p.fitsHost());
        QVERIFY(p.fitsDevice()); // unknown = not checked
        QVERIFY(p.refusal().find("host memory") != std::string::npos);
        QVERIFY(p.refusal().find("--stream") != std::string::npos);
        in.hostAvailableBytes = -1;
        QVERIFY(memory::planMemory(in).fits());
        QVERIFY(memory::planMemory(in).refusal().empty());
    }
};

QTEST_GUILESS_MAIN(TestMemoryPlan)
#include "test_memory_plan.moc"

// util/memory_policy.h: the large-tensor allocator that reuseFreedMemory() installs as
// LibTorch's CPU allocator. Large tensors start on a 2 MiB boundary (so that transparent huge
// pages can back them), hold what is written to them, and are released through every path
// LibTorch frees CPU memory by (tensor destruction, raw_deallocate); small ones still come from
// the default allocator. Whether the kernel then backs them with huge pages depends on its THP
// mode, so that is measured by the benchmark, not asserted here. Freed large blocks are kept,
// within a bound, for later allocations of about their size.

#include "util/memory_policy.h"

#include <ATen/ops/empty.h>
#include <c10/core/CPUAllocator.h>

#include <QTest>

#include <cstdint>

using namespace sparselab;

class TestMemoryPolicy : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { reuseFreedMemory(); }

    void largeTensorsAreHugePageAligned()
    {
        constexpr int64_t kFloats = int64_t(kHugePageAllocationThreshold / sizeof(float)) * 2 + 3; // 16 MiB + 12 B
        for (int round = 0; round < 3; ++round) { // allocated and freed again: no stale state
            auto t = at::empty({kFloats}, at::kFloat);
            const auto address = reinterpret_cast<uintptr_t>(t.data_ptr());
            QCOMPARE(address % (uintptr_t(2) << 20), uintptr_t(0));
            float* data = t.data_ptr<float>();
            for (int64_t i = 0; i < kFloats; ++i)
                data[i] = float(i % 7);
            // Σ (i mod 7) over i < n, by hand: 21 per full cycle of 7 plus the partial cycle.
            double expected = double(kFloats / 7) * 21.0;
            for (int64_t r = 0; r < kFloats % 7; ++r)
                expected += double(r);
            double sum = 0.0;
            for (int64_t i = 0; i < kFloats; ++i)
                sum += data[i];
            QCOMPARE(sum, expected);
        }
    }

    void rawAllocationsRoundTrip()
    {
        c10::Allocator* allocator = c10::GetCPUAllocator();
        for (size_t bytes : {size_t(64), kHugePageAllocationThreshold - 1, kHugePageAllocationThreshold,
                             size_t(40) << 20}) {
            void* p = allocator->raw_allocate(bytes);
            QVERIFY(p != nullptr);
            static_cast<unsigned char*>(p)[0] = 1;
            static_cast<unsigned char*>(p)[bytes - 1] = 2;
            QCOMPARE(int(static_cast<unsigned char*>(p)[bytes - 1]), 2);
            if (bytes >= kHugePageAllocationThreshold)
                QCOMPARE(reinterpret_cast<uintptr_t>(p) % (uintptr_t(2) << 20), uintptr_t(0));
            allocator->raw_deallocate(p);
        }
    }

    // Freed large mappings are handed to the next allocation that fits (at most 1.25 times the
    // size asked for), within the cache's bound, oldest unmapped first.
    void freedLargeBlocksAreReused()
    {
        releaseCachedLargeBlocks();
        setLargeBlockCacheLimit(size_t(40) << 20);
        constexpr int64_t k16MiB = int64_t(16) << 20;
        const void* first = nullptr;
        {
            auto t = at::empty({k16MiB}, at::kByte);
            first = t.data_ptr();
        }
        LargeBlockCacheStats before = largeBlockCacheStats();
        QCOMPARE(before.cachedBlocks, size_t(1));
        QCOMPARE(before.cachedBytes, size_t(k16MiB));
        QCOMPARE(before.limitBytes, size_t(40) << 20);
        {
            auto again = at::empty({k16MiB - 4096}, at::kByte); // fits: 16 MiB ≤ 1.25 × (16 MiB − 4 KiB)
            QCOMPARE(static_cast<const void*>(again.data_ptr()), first);
            QCOMPARE(largeBlockCacheStats().reused, before.reused + 1);
            QCOMPARE(largeBlockCacheStats().cachedBlocks, size_t(0));
            auto smaller = at::empty({int64_t(9) << 20}, at::kByte); // 16 MiB > 1.25 × 9 MiB: not this one
            QVERIFY(smaller.data_ptr() != first);
            QCOMPARE(largeBlockCacheStats().mapped, before.mapped + 1);
        }
        // Both freed: 16 + 9 MiB ≤ 40 MiB, both kept.
        QCOMPARE(largeBlockCacheStats().cachedBytes, size_t(25) << 20);
        {
            // Three 16 MiB tensors: the 9 MiB mapping cannot serve them; freed, only 40 MiB stay,
            // and the oldest go first.
            auto a = at::empty({k16MiB}, at::kByte);
            auto b = at::empty({k16MiB}, at::kByte);
            auto c = at::empty({k16MiB}, at::kByte);
        }
        const LargeBlockCacheStats bounded = largeBlockCacheStats();
        QVERIFY(bounded.cachedBytes <= (size_t(40) << 20));
        QCOMPARE(bounded.cachedBlocks, size_t(2)); // two of the 16 MiB ones; the 9 MiB one went first
        QCOMPARE(bounded.cachedBytes, size_t(32) << 20);
        releaseCachedLargeBlocks();
        QCOMPARE(largeBlockCacheStats().cachedBytes, size_t(0));
        setLargeBlockCacheLimit(0); // nothing cached
        {
            auto t = at::empty({k16MiB}, at::kByte);
        }
        QCOMPARE(largeBlockCacheStats().cachedBlocks, size_t(0));
    }

    void smallTensorsStillWork()
    {
        auto t = at::empty({256}, at::kFloat);
        float* data = t.data_ptr<float>();
        for (int i = 0; i < 256; ++i)
            data[i] = float(i);
        QCOMPARE(double(data[255]), 255.0);
    }
};

QTEST_APPLESS_MAIN(TestMemoryPolicy)
#include "test_memory_policy.moc"

// util/memory_policy.h: the large-tensor allocator that reuseFreedMemory() installs as
// LibTorch's CPU allocator. Large tensors start on a 2 MiB boundary (so that transparent huge
// pages can back them), hold what is written to them, and are released through every path
// LibTorch frees CPU memory by (tensor destruction, raw_deallocate); small ones still come from
// the default allocator. Whether the kernel then backs them with huge pages depends on its THP
// mode, so that is measured by the benchmark, not asserted here.

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

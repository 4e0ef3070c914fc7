#pragma once
// N:M selection exactly as the reference makes it, written once for the CPU column loop and
// the CUDA block kernel (core/cuda), so that both break ties identically by construction.
//
// The reference picks each group's pruned entries with torch.topk(scores, n, largest=False)
// on the CPU. ATen's CPU topk copies (value, index) pairs with the value widened to double and
// runs std::partial_sort when n·64 <= width, std::nth_element otherwise, comparing values only
// (NaN largest). Which of several equal scores it returns is therefore decided by the steps of
// libstdc++'s introselect / heap select, not by the index. The functions below are those steps
// (median-of-three pivot moved to the front, unguarded Hoare partition, insertion sort of the
// last ≤ 3 elements, heap select when the depth budget 2·⌊log2 width⌋ runs out, and
// heap select + sort_heap for partial_sort), on plain arrays, so that they run in a CUDA
// kernel too. tests/core/solve/test_topk_select.cpp checks them against the standard library on
// tie-heavy inputs; the kernel's N:M masks on exact ties (tests/data/solver/problem_c) are
// what they are for: the earlier kernel ranked ties by index and disagreed with the CPU there.
//
// Plain C++ (no LibTorch, no std containers): included by core/cuda/sparsegpt_block.cu.

#include <cstdint>

#if defined(__CUDACC__)
#define SPARSELAB_HOST_DEVICE __host__ __device__
#else
#define SPARSELAB_HOST_DEVICE
#endif

namespace sparselab::solve::topk {

struct Entry {
    double value; // the score, widened to double as ATen's topk does
    int index;    // position in the group
};

// ATen's topk comparator for largest=False: NaN is larger than everything.
SPARSELAB_HOST_DEVICE inline bool less(const Entry& x, const Entry& y)
{
    const bool xNan = x.value != x.value;
    const bool yNan = y.value != y.value;
    return (!xNan && yNan) || (x.value < y.value);
}

SPARSELAB_HOST_DEVICE inline void swapEntries(Entry* a, Entry* b)
{
    const Entry t = *a;
    *a = *b;
    *b = t;
}

SPARSELAB_HOST_DEVICE inline int floorLog2(int n)
{
    int k = 0;
    while (n > 1) {
        n >>= 1;
        ++k;
    }
    return k;
}

// ---- binary heap (max-heap under `less`), as std::__adjust_heap / __push_heap -------------

SPARSELAB_HOST_DEVICE inline void pushHeap(Entry* first, int hole, int top, Entry value)
{
    int parent = (hole - 1) / 2;
    while (hole > top && less(first[parent], value)) {
        first[hole] = first[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    first[hole] = value;
}

SPARSELAB_HOST_DEVICE inline void adjustHeap(Entry* first, int hole, int len, Entry value)
{
    const int top = hole;
    int child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (less(first[child], first[child - 1]))
            --child;
        first[hole] = first[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        first[hole] = first[child - 1];
        hole = child - 1;
    }
    pushHeap(first, hole, top, value);
}

SPARSELAB_HOST_DEVICE inline void makeHeap(Entry* first, int len)
{
    if (len < 2)
        return;
    for (int parent = (len - 2) / 2;; --parent) {
        adjustHeap(first, parent, len, first[parent]);
        if (parent == 0)
            return;
    }
}

// std::__pop_heap(first, last, result): the top goes to *result, *result's value is sifted in.
SPARSELAB_HOST_DEVICE inline void popHeap(Entry* first, int len, Entry* result)
{
    const Entry value = *result;
    *result = first[0];
    adjustHeap(first, 0, len, value);
}

// std::__heap_select(first, middle, last): the `middle` smallest end up in [0, middle), as a heap.
SPARSELAB_HOST_DEVICE inline void heapSelect(Entry* first, int middle, int last)
{
    makeHeap(first, middle);
    for (int i = middle; i < last; ++i)
        if (less(first[i], first[0]))
            popHeap(first, middle, first + i);
}

SPARSELAB_HOST_DEVICE inline void sortHeap(Entry* first, int len)
{
    while (len > 1) {
        --len;
        popHeap(first, len, first + len);
    }
}

// ---- introselect, as std::nth_element -------------------------------------------------------

SPARSELAB_HOST_DEVICE inline void moveMedianToFirst(Entry* result, Entry* a, Entry* b, Entry* c)
{
    if (less(*a, *b)) {
        if (less(*b, *c))
            swapEntries(result, b);
        else if (less(*a, *c))
            swapEntries(result, c);
        else
            swapEntries(result, a);
    } else if (less(*a, *c)) {
        swapEntries(result, a);
    } else if (less(*b, *c)) {
        swapEntries(result, c);
    } else {
        swapEntries(result, b);
    }
}

SPARSELAB_HOST_DEVICE inline Entry* unguardedPartition(Entry* first, Entry* last, const Entry* pivot)
{
    for (;;) {
        while (less(*first, *pivot))
            ++first;
        --last;
        while (less(*pivot, *last))
            --last;
        if (!(first < last))
            return first;
        swapEntries(first, last);
        ++first;
    }
}

SPARSELAB_HOST_DEVICE inline void insertionSort(Entry* first, Entry* last)
{
    if (first == last)
        return;
    for (Entry* i = first + 1; i != last; ++i) {
        const Entry value = *i;
        if (less(value, *first)) {
            for (Entry* p = i; p != first; --p)
                *p = *(p - 1);
            *first = value;
        } else {
            Entry* hole = i;
            Entry* next = i - 1;
            while (less(value, *next)) {
                *hole = *next;
                hole = next;
                --next;
            }
            *hole = value;
        }
    }
}

SPARSELAB_HOST_DEVICE inline void nthElement(Entry* first, Entry* nth, Entry* last)
{
    if (first == last || nth == last)
        return;
    int depth = floorLog2(int(last - first)) * 2;
    while (last - first > 3) {
        if (depth == 0) {
            heapSelect(first, int(nth - first) + 1, int(last - first));
            swapEntries(first, nth);
            return;
        }
        --depth;
        Entry* mid = first + (last - first) / 2;
        moveMedianToFirst(first, first + 1, mid, last - 1);
        Entry* cut = unguardedPartition(first + 1, last, first);
        if (cut <= nth)
            first = cut;
        else
            last = cut;
    }
    insertionSort(first, last);
}

// ---- the selection ----------------------------------------------------------------------------

// Sets chosen[k] = 1 for the `n` entries torch.topk(scores[0..width), n, largest=False) returns
// on the CPU, 0 for the others. `work` holds `width` entries of scratch.
SPARSELAB_HOST_DEVICE inline void selectSmallest(const float* scores, int width, int n, Entry* work,
                                                 unsigned char* chosen)
{
    for (int k = 0; k < width; ++k)
        chosen[k] = 0;
    if (n >= width) {
        for (int k = 0; k < width; ++k)
            chosen[k] = 1;
        return;
    }
    if (n <= 0)
        return;
    for (int k = 0; k < width; ++k)
        work[k] = Entry{double(scores[k]), k};
    if (n * 64 <= width) {
        heapSelect(work, n, width); // std::partial_sort = heap select + sort_heap
        sortHeap(work, n);
    } else {
        nthElement(work, work + (n - 1), work + width);
    }
    for (int k = 0; k < n; ++k)
        chosen[work[k].index] = 1;
}

} // namespace sparselab::solve::topk

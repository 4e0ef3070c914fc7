#pragma once
// Uninitialised buffers for the plain CPU solver's big arrays (a layer's weights, its Hessian,
// Hinv): from kHugePageBufferBytes on, an anonymous mapping aligned to 2 MiB and advised for
// transparent huge pages, so that first touching it faults once per 2 MiB instead of once per
// 4 KiB page — on the project's virtual machines a 4 KiB fault cost several microseconds, and a
// 2048-column solve-layer touched 21 k of them. Smaller buffers come from operator new. No
// LibTorch here (the engine's tensors get the same treatment from util/memory_policy.h).

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace sparselab::util {

inline constexpr size_t kHugePageBufferBytes = size_t(8) << 20;

class LargeBuffer {
public:
    LargeBuffer() = default;
    explicit LargeBuffer(size_t bytes);
    ~LargeBuffer();
    LargeBuffer(LargeBuffer&& other) noexcept { swap(other); }
    LargeBuffer& operator=(LargeBuffer&& other) noexcept
    {
        LargeBuffer(std::move(other)).swap(*this);
        return *this;
    }
    LargeBuffer(const LargeBuffer&) = delete;
    LargeBuffer& operator=(const LargeBuffer&) = delete;
    void swap(LargeBuffer& other) noexcept
    {
        std::swap(m_data, other.m_data);
        std::swap(m_bytes, other.m_bytes);
        std::swap(m_mapped, other.m_mapped);
    }
    [[nodiscard]] void* data() const { return m_data; }
    [[nodiscard]] size_t bytes() const { return m_bytes; }

private:
    void* m_data = nullptr;
    size_t m_bytes = 0;
    size_t m_mapped = 0; // length of the mapping (0: operator new)
};

// `count` values of a trivially copyable T, uninitialised (a mapping's are zero, operator new's
// are not).
template <typename T>
class TypedBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "TypedBuffer holds raw memory, no constructors run");

public:
    TypedBuffer() = default;
    explicit TypedBuffer(size_t count) : m_buffer(count * sizeof(T)), m_count(count) {}
    [[nodiscard]] T* data() { return static_cast<T*>(m_buffer.data()); }
    [[nodiscard]] const T* data() const { return static_cast<const T*>(m_buffer.data()); }
    [[nodiscard]] size_t size() const { return m_count; }
    [[nodiscard]] bool empty() const { return m_count == 0; }
    T& operator[](size_t i) { return data()[i]; }
    const T& operator[](size_t i) const { return data()[i]; }

private:
    LargeBuffer m_buffer;
    size_t m_count = 0;
};

using FloatBuffer = TypedBuffer<float>;
// Masks whose writer fills every entry: a 16 MiB mask costs no clearing pass of its own.
using ByteBuffer = TypedBuffer<uint8_t>;

} // namespace sparselab::util

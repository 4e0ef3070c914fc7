#pragma once
// GGUF (llama.cpp / ggml model files): reader, writer and the F16 / Q8_0 / Q4_0 codecs.
// No LibTorch, no Qt: plain byte buffers and float spans.
//
// File format, version 3 (all numbers little-endian; spec: ggml docs/gguf.md):
//   "GGUF"                          4-byte magic
//   uint32  version                 3 (2 is read too: same layout; 1 used 32-bit counts, refused)
//   uint64  n_tensors
//   uint64  n_kv
//   n_kv ×  key/value:
//             string key            string = uint64 byte length + UTF-8 bytes, no NUL
//             uint32 value type     GgufValueType below
//             value                 scalar: its little-endian bytes (bool: 1 byte, 0 or 1);
//                                   string: as above;
//                                   array: uint32 element type, uint64 count, the elements
//                                   (arrays of arrays are not allowed here)
//   n_tensors × tensor info:
//             string name           at most 64 bytes (llama.cpp: fewer than 64)
//             uint32 n_dims         0..4 (0: a scalar)
//             int64  ne[n_dims]     ne[0] is the fastest-moving dimension (a row), so a
//                                   PyTorch/HF [rows, cols] matrix is ne = [cols, rows]
//             uint32 ggml type      GgmlType below; ne[0] must be a multiple of its block size
//             uint64 offset         from the start of the data section; a multiple of the alignment
//   zero padding to the alignment   `general.alignment` (uint32, a power of two), default 32
//   data section                    each tensor's bytes, row-major, then zero padding to the
//                                   alignment (the writer pads after the last tensor too)
//
// Block layouts (32 values per block, along ne[0]):
//   Q8_0  (34 bytes): fp16 d, int8 qs[32];             value[j] = qs[j] · d
//   Q4_0  (18 bytes): fp16 d, uint8 qs[16];            value[j]      = ((qs[j] & 15) − 8) · d,
//                                                      value[j + 16] = ((qs[j] >> 4) − 8) · d
// The quantizers reproduce ggml's reference ones (quantize_row_q8_0_ref / _q4_0_ref) bit for bit:
//   Q8_0: d = max|x| / 127; q = round-half-away(x · (1/d)); d stored as fp16 (round to nearest even).
//   Q4_0: m = the value of largest magnitude (the first one on ties), d = m / −8;
//         q = min(15, trunc(x · (1/d) + 8.5)); the float d (not its fp16 rounding) scales x.
// A block of zeros gets d = 0 and codes 0 (Q8_0) / 8 (Q4_0).
//
// GPTQ grids (lossless export): a symmetric GPTQ grid with groups of 32 along the input
// dimension is exactly a Q4_0 (4-bit) or Q8_0 (8-bit) block when its scale is an fp16 value:
// GPTQ's value scale · (q − zero) with zero = 2^(bits−1) is Q4_0's (q − 8) · d, and with
// q' = q − 128 Q8_0's q' · d. packQ4_0 / packQ8_0 write such grids from the scales and codes
// directly, so dequantizing the file gives back the grid's values exactly (no re-quantization).
//
// Reader validation (every rule is an InputError "FILE: problem"): magic, version, header
// fields inside the file, counts bounded by the bytes left, strings within the file, value and
// element types known, no nested arrays, keys and tensor names unique, `general.alignment` a
// uint32 power of two, at most 4 dimensions, non-negative sizes without int64 overflow, known ggml
// type, ne[0] a multiple of the block size, offsets aligned, every tensor's bytes inside the
// data section, no two tensors overlapping. The file is memory-mapped read-only.
//
// Example:
//   io::GgufWriter w;
//   w.set("general.architecture", io::GgufValue::string("llama"));
//   w.addTensor("x", io::GgmlType::F32, {4}, bytesOf(floats));       // ne = [4]
//   w.write("out.gguf");                                              // atomic
//   auto f = io::GgufFile::open("out.gguf");
//   std::vector<float> x = f.dequantize(*f.findTensor("x"));

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparselab::io {

// ---- ggml tensor types --------------------------------------------------------------------

enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35,
};

struct GgmlTypeTraits {
    std::string_view name; // "F32", "Q4_0", ...
    int64_t blockSize = 1; // values per block
    size_t blockBytes = 4; // bytes per block
};

// Traits of a type id as stored in a file; nullopt for ids ggml does not define.
[[nodiscard]] std::optional<GgmlTypeTraits> ggmlTypeTraits(uint32_t typeId);
[[nodiscard]] std::string_view ggmlTypeName(GgmlType type);
// Bytes of `n` values (n a multiple of the block size; std::invalid_argument otherwise).
[[nodiscard]] uint64_t ggmlBytes(GgmlType type, int64_t n);
// True for the types dequantize() reads: F32, F16, BF16, Q8_0, Q4_0.
[[nodiscard]] bool ggmlTypeReadable(GgmlType type);

// ---- metadata values ----------------------------------------------------------------------

enum class GgufValueType : uint32_t {
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
};

[[nodiscard]] std::string_view ggufValueTypeName(GgufValueType type); // "UINT32", ...

// One metadata value: a scalar or a homogeneous array of scalars. Integers (and bools) are
// held as int64 (UINT64 by bit pattern), floats as double (FLOAT32 values exactly), strings
// as std::string; a scalar is held like an array of one.
class GgufValue {
public:
    GgufValue() = default;

    static GgufValue u8(uint8_t v);
    static GgufValue i8(int8_t v);
    static GgufValue u16(uint16_t v);
    static GgufValue i16(int16_t v);
    static GgufValue u32(uint32_t v);
    static GgufValue i32(int32_t v);
    static GgufValue u64(uint64_t v);
    static GgufValue i64(int64_t v);
    static GgufValue f32(float v);
    static GgufValue f64(double v);
    static GgufValue boolean(bool v);
    static GgufValue string(std::string v);
    // Arrays. Integer/bool element types take `ints`, float ones take `reals`.
    static GgufValue stringArray(std::vector<std::string> v);
    static GgufValue intArray(GgufValueType elementType, std::vector<int64_t> v);
    static GgufValue realArray(GgufValueType elementType, std::vector<double> v);

    // UINT8..FLOAT64 or ARRAY.
    [[nodiscard]] GgufValueType type() const { return m_isArray ? GgufValueType::Array : m_elementType; }
    [[nodiscard]] bool isArray() const { return m_isArray; }
    // The scalar type, or the array's element type.
    [[nodiscard]] GgufValueType elementType() const { return m_elementType; }
    // Elements in an array (1 for a scalar).
    [[nodiscard]] size_t size() const;

    // Scalar accessors; nullopt when the value is an array or of another kind.
    // asInt: any integer type (UINT64 above INT64_MAX gives nullopt). asReal: FLOAT32/64.
    [[nodiscard]] std::optional<int64_t> asInt() const;
    [[nodiscard]] std::optional<double> asReal() const;
    [[nodiscard]] std::optional<bool> asBool() const;
    [[nodiscard]] const std::string* asString() const;

    // Array contents (also a scalar's single element): integers/bools, floats, strings.
    [[nodiscard]] const std::vector<int64_t>& ints() const { return m_ints; }
    [[nodiscard]] const std::vector<double>& reals() const { return m_reals; }
    [[nodiscard]] const std::vector<std::string>& strings() const { return m_strings; }

    // "UINT32 32", "ARRAY[STRING] (512)": for messages and dumps.
    [[nodiscard]] std::string describe() const;

    friend bool operator==(const GgufValue&, const GgufValue&) = default;

private:
    GgufValueType m_elementType = GgufValueType::UInt32;
    bool m_isArray = false;
    std::vector<int64_t> m_ints;
    std::vector<double> m_reals;
    std::vector<std::string> m_strings;
};

// ---- reader --------------------------------------------------------------------------------

struct GgufTensorInfo {
    std::string name;
    GgmlType type = GgmlType::F32;
    std::vector<int64_t> ne; // GGUF order: ne[0] = row length
    uint64_t offset = 0;     // in the data section
    uint64_t nbytes = 0;
    [[nodiscard]] int64_t numel() const;
    // The same shape in PyTorch order (reversed): [rows, cols] for a matrix.
    [[nodiscard]] std::vector<int64_t> torchShape() const;
};

class MappedFile; // RAII read-only mmap, io/mapped_file.h

class GgufFile {
public:
    // Opens, maps and validates (see the header comment). InputError naming `path`.
    static GgufFile open(const std::filesystem::path& path);

    GgufFile(GgufFile&&) noexcept;
    GgufFile& operator=(GgufFile&&) noexcept;
    ~GgufFile();

    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }
    [[nodiscard]] uint32_t version() const { return m_version; }
    [[nodiscard]] uint32_t alignment() const { return m_alignment; }
    [[nodiscard]] uint64_t dataOffset() const { return m_dataOffset; } // file offset of the data section

    // Key/value pairs in file order.
    [[nodiscard]] const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return m_kv; }
    [[nodiscard]] const GgufValue* find(std::string_view key) const; // null when absent

    [[nodiscard]] const std::vector<GgufTensorInfo>& tensors() const { return m_tensors; } // file order
    [[nodiscard]] const GgufTensorInfo* findTensor(std::string_view name) const;           // null when absent
    // The tensor's raw bytes inside the mapping (valid while this object lives).
    [[nodiscard]] std::span<const std::byte> tensorData(const GgufTensorInfo& info) const;
    // A float32 copy, row-major (F32, F16, BF16, Q8_0, Q4_0); InputError naming the file for
    // other types.
    [[nodiscard]] std::vector<float> dequantize(const GgufTensorInfo& info) const;

private:
    GgufFile() = default;
    std::filesystem::path m_path;
    std::unique_ptr<MappedFile> m_map;
    uint32_t m_version = 0;
    uint32_t m_alignment = 32;
    uint64_t m_dataOffset = 0;
    std::vector<std::pair<std::string, GgufValue>> m_kv;
    std::map<std::string, size_t, std::less<>> m_kvIndex;
    std::vector<GgufTensorInfo> m_tensors;
    std::map<std::string, size_t, std::less<>> m_tensorIndex;
};

// ---- writer --------------------------------------------------------------------------------

class GgufWriter {
public:
    // Fills `dst` (exactly the tensor's byte count) when the file is written.
    using TensorProducer = std::function<void(std::span<std::byte> dst)>;

    // `alignment`: a power of two; when it is not 32 the writer also stores general.alignment.
    explicit GgufWriter(uint32_t alignment = 32);

    // Sets a key (replacing its value if present; order is that of first insertion).
    void set(const std::string& key, GgufValue value);
    [[nodiscard]] const GgufValue* find(std::string_view key) const;

    // Adds a tensor with ne in GGUF order (ne[0] = row length). std::invalid_argument for a
    // duplicate or over-long name, 0 or more than 4 dimensions, negative sizes, ne[0] not a
    // multiple of the block size, or (owned bytes) a byte count that does not match.
    void addTensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, std::vector<std::byte> data);
    void addTensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, TensorProducer produce);

    [[nodiscard]] size_t tensorCount() const { return m_tensors.size(); }

    // Writes the file atomically (temporary sibling, fsync, rename); tensors are produced one
    // at a time in insertion order, `beforeTensor(i, name)` is called before each (progress,
    // cancellation: an exception aborts and removes the temporary). InputError naming `path`
    // when it cannot be written.
    void write(const std::filesystem::path& path,
               const std::function<void(size_t index, const std::string& name)>& beforeTensor = {}) const;

private:
    struct Tensor {
        std::string name;
        GgmlType type;
        std::vector<int64_t> ne;
        uint64_t nbytes = 0;
        std::vector<std::byte> data; // owned bytes, or
        TensorProducer produce;      // produced at write time
    };
    uint32_t m_alignment;
    std::vector<std::pair<std::string, GgufValue>> m_kv;
    std::vector<Tensor> m_tensors;
};

// ---- numeric codecs ------------------------------------------------------------------------

constexpr int64_t kGgmlBlock = 32;      // values per Q8_0 / Q4_0 block
constexpr size_t kQ8_0BlockBytes = 34;  // fp16 d + 32 int8
constexpr size_t kQ4_0BlockBytes = 18;  // fp16 d + 16 bytes of nibbles

// IEEE binary16 ↔ binary32, round to nearest even, with subnormals, infinities and NaN
// (what F16C's vcvtps2ph with rounding mode 0 does).
[[nodiscard]] uint16_t fp32ToFp16(float value);
[[nodiscard]] float fp16ToFp32(uint16_t bits);
[[nodiscard]] float bf16ToFp32(uint16_t bits);

// Quantize a row of n values (n a multiple of 32) into n/32 blocks; `dst` holds exactly
// n/32 · block bytes. std::invalid_argument on size mismatches.
void quantizeRowQ8_0(std::span<const float> src, std::span<std::byte> dst);
void quantizeRowQ4_0(std::span<const float> src, std::span<std::byte> dst);
void dequantizeRowQ8_0(std::span<const std::byte> src, std::span<float> dst);
void dequantizeRowQ4_0(std::span<const std::byte> src, std::span<float> dst);

// GPTQ symmetric grids → blocks, losslessly. `scales` has one value per block of 32 codes and
// each must be exactly representable in fp16 (fp16ToFp32(fp32ToFp16(s)) == s, finite);
// `codes` are GPTQ's unsigned levels: Q4_0: q ∈ [0, 15], value (q − 8)·scale;
// Q8_0: q ∈ [0, 255], value (q − 128)·scale. std::invalid_argument otherwise.
void packQ4_0(std::span<const float> scales, std::span<const uint8_t> codes, std::span<std::byte> dst);
void packQ8_0(std::span<const float> scales, std::span<const uint8_t> codes, std::span<std::byte> dst);

} // namespace sparselab::io

#include "io/gguf.h"

#include "io/mapped_file.h"
#include "tokenize/unicode.h"

#include "util/atomic_file.h"
#include "util/errors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>


// GGUF is little-endian and the codecs reinterpret bytes in place.
static_assert(std::endian::native == std::endian::little, "the GGUF code assumes a little-endian host");

namespace sparselab::io {

namespace fs = std::filesystem;

// ---- ggml types ---------------------------------------------------------------------------

std::optional<GgmlTypeTraits> ggmlTypeTraits(uint32_t typeId)
{
    // Sizes from ggml-common.h's block structs (QK_K = 256). Every id ggml defines is known
    // here, so the reader can validate the layout of any file; only some can be dequantized.
    switch (typeId) {
    case 0: return GgmlTypeTraits{"F32", 1, 4};
    case 1: return GgmlTypeTraits{"F16", 1, 2};
    case 2: return GgmlTypeTraits{"Q4_0", 32, 18};
    case 3: return GgmlTypeTraits{"Q4_1", 32, 20};
    case 6: return GgmlTypeTraits{"Q5_0", 32, 22};
    case 7: return GgmlTypeTraits{"Q5_1", 32, 24};
    case 8: return GgmlTypeTraits{"Q8_0", 32, 34};
    case 9: return GgmlTypeTraits{"Q8_1", 32, 36};
    case 10: return GgmlTypeTraits{"Q2_K", 256, 84};
    case 11: return GgmlTypeTraits{"Q3_K", 256, 110};
    case 12: return GgmlTypeTraits{"Q4_K", 256, 144};
    case 13: return GgmlTypeTraits{"Q5_K", 256, 176};
    case 14: return GgmlTypeTraits{"Q6_K", 256, 210};
    case 15: return GgmlTypeTraits{"Q8_K", 256, 292};
    case 16: return GgmlTypeTraits{"IQ2_XXS", 256, 66};
    case 17: return GgmlTypeTraits{"IQ2_XS", 256, 74};
    case 18: return GgmlTypeTraits{"IQ3_XXS", 256, 98};
    case 19: return GgmlTypeTraits{"IQ1_S", 256, 50};
    case 20: return GgmlTypeTraits{"IQ4_NL", 32, 18};
    case 21: return GgmlTypeTraits{"IQ3_S", 256, 110};
    case 22: return GgmlTypeTraits{"IQ2_S", 256, 82};
    case 23: return GgmlTypeTraits{"IQ4_XS", 256, 136};
    case 24: return GgmlTypeTraits{"I8", 1, 1};
    case 25: return GgmlTypeTraits{"I16", 1, 2};
    case 26: return GgmlTypeTraits{"I32", 1, 4};
    case 27: return GgmlTypeTraits{"I64", 1, 8};
    case 28: return GgmlTypeTraits{"F64", 1, 8};
    case 29: return GgmlTypeTraits{"IQ1_M", 256, 56};
    case 30: return GgmlTypeTraits{"BF16", 1, 2};
    case 34: return GgmlTypeTraits{"TQ1_0", 256, 54};
    case 35: return GgmlTypeTraits{"TQ2_0", 256, 66};
    default: return std::nullopt;
    }
}

std::string_view ggmlTypeName(GgmlType type)
{
    const auto traits = ggmlTypeTraits(static_cast<uint32_t>(type));
    return traits ? traits->name : std::string_view("?");
}

uint64_t ggmlBytes(GgmlType type, int64_t n)
{
    const auto traits = ggmlTypeTraits(static_cast<uint32_t>(type));
    if (!traits || n < 0 || n % traits->blockSize != 0)
        throw std::invalid_argument("ggmlBytes: " + std::to_string(n) + " values of type "
                                    + std::string(ggmlTypeName(type)));
    return uint64_t(n / traits->blockSize) * traits->blockBytes;
}

bool ggmlTypeReadable(GgmlType type)
{
    return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 || type == GgmlType::Q8_0
           || type == GgmlType::Q4_0;
}

// ---- values -------------------------------------------------------------------------------

namespace {

bool isIntegerType(GgufValueType t)
{
    switch (t) {
    case GgufValueType::UInt8: case GgufValueType::Int8: case GgufValueType::UInt16: case GgufValueType::Int16:
    case GgufValueType::UInt32: case GgufValueType::Int32: case GgufValueType::UInt64: case GgufValueType::Int64:
    case GgufValueType::Bool:
        return true;
    default:
        return false;
    }
}

bool isRealType(GgufValueType t) { return t == GgufValueType::Float32 || t == GgufValueType::Float64; }

// Bytes of one scalar of a fixed-size type; 0 for STRING / ARRAY / unknown ids.
size_t scalarBytes(uint32_t t)
{
    switch (t) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8;
    default: return 0;
    }
}

} // namespace

std::string_view ggufValueTypeName(GgufValueType type)
{
    switch (type) {
    case GgufValueType::UInt8: return "UINT8";
    case GgufValueType::Int8: return "INT8";
    case GgufValueType::UInt16: return "UINT16";
    case GgufValueType::Int16: return "INT16";
    case GgufValueType::UInt32: return "UINT32";
    case GgufValueType::Int32: return "INT32";
    case GgufValueType::Float32: return "FLOAT32";
    case GgufValueType::Bool: return "BOOL";
    case GgufValueType::String: return "STRING";
    case GgufValueType::Array: return "ARRAY";
    case GgufValueType::UInt64: return "UINT64";
    case GgufValueType::Int64: return "INT64";
    case GgufValueType::Float64: return "FLOAT64";
    }
    return "?";
}

GgufValue GgufValue::intArray(GgufValueType elementType, std::vector<int64_t> v)
{
    if (!isIntegerType(elementType))
        throw std::invalid_argument("GgufValue::intArray: not an integer type");
    GgufValue out;
    out.m_elementType = elementType;
    out.m_isArray = true;
    out.m_ints = std::move(v);
    return out;
}

GgufValue GgufValue::realArray(GgufValueType elementType, std::vector<double> v)
{
    if (!isRealType(elementType))
        throw std::invalid_argument("GgufValue::realArray: not a float type");
    GgufValue out;
    out.m_elementType = elementType;
    out.m_isArray = true;
    out.m_reals = std::move(v);
    return out;
}

GgufValue GgufValue::stringArray(std::vector<std::string> v)
{
    GgufValue out;
    out.m_elementType = GgufValueType::String;
    out.m_isArray = true;
    out.m_strings = std::move(v);
    return out;
}

// A scalar is held as an array of one with the array flag cleared.
#define SPARSELAB_GGUF_SCALAR_INT(fn, T, vt)                                                     \
    GgufValue GgufValue::fn(T v)                                                                 \
    {                                                                                            \
        GgufValue out = intArray(GgufValueType::vt, {static_cast<int64_t>(v)});                   \
        out.m_isArray = false;                                                                   \
        return out;                                                                              \
    }
SPARSELAB_GGUF_SCALAR_INT(u8, uint8_t, UInt8)
SPARSELAB_GGUF_SCALAR_INT(i8, int8_t, Int8)
SPARSELAB_GGUF_SCALAR_INT(u16, uint16_t, UInt16)
SPARSELAB_GGUF_SCALAR_INT(i16, int16_t, Int16)
SPARSELAB_GGUF_SCALAR_INT(u32, uint32_t, UInt32)
SPARSELAB_GGUF_SCALAR_INT(i32, int32_t, Int32)
SPARSELAB_GGUF_SCALAR_INT(u64, uint64_t, UInt64)
SPARSELAB_GGUF_SCALAR_INT(i64, int64_t, Int64)
SPARSELAB_GGUF_SCALAR_INT(boolean, bool, Bool)
#undef SPARSELAB_GGUF_SCALAR_INT

GgufValue GgufValue::f32(float v)
{
    GgufValue out = realArray(GgufValueType::Float32, {double(v)});
    out.m_isArray = false;
    return out;
}

GgufValue GgufValue::f64(double v)
{
    GgufValue out = realArray(GgufValueType::Float64, {v});
    out.m_isArray = false;
    return out;
}

GgufValue GgufValue::string(std::string v)
{
    GgufValue out = stringArray({std::move(v)});
    out.m_isArray = false;
    return out;
}

size_t GgufValue::size() const
{
    if (m_elementType == GgufValueType::String)
        return m_strings.size();
    return isRealType(m_elementType) ? m_reals.size() : m_ints.size();
}

std::optional<int64_t> GgufValue::asInt() const
{
    if (m_isArray || !isIntegerType(m_elementType) || m_elementType == GgufValueType::Bool || m_ints.size() != 1)
        return std::nullopt;
    if (m_elementType == GgufValueType::UInt64 && m_ints[0] < 0)
        return std::nullopt; // above INT64_MAX
    return m_ints[0];
}

std::optional<double> GgufValue::asReal() const
{
    if (m_isArray || !isRealType(m_elementType) || m_reals.size() != 1)
        return std::nullopt;
    return m_reals[0];
}

std::optional<bool> GgufValue::asBool() const
{
    if (m_isArray || m_elementType != GgufValueType::Bool || m_ints.size() != 1)
        return std::nullopt;
    return m_ints[0] != 0;
}

const std::string* GgufValue::asString() const
{
    if (m_isArray || m_elementType != GgufValueType::String || m_strings.size() != 1)
        return nullptr;
    return &m_strings[0];
}

std::string GgufValue::describe() const
{
    if (m_isArray)
        return "ARRAY[" + std::string(ggufValueTypeName(m_elementType)) + "] (" + std::to_string(size()) + ")";
    std::string text = std::string(ggufValueTypeName(m_elementType)) + " ";
    if (m_elementType == GgufValueType::String)
        return text + "\"" + m_strings.at(0) + "\"";
    if (isRealType(m_elementType)) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.9g", m_reals.at(0));
        return text + buf;
    }
    if (m_elementType == GgufValueType::UInt64)
        return text + std::to_string(static_cast<uint64_t>(m_ints.at(0)));
    if (m_elementType == GgufValueType::Bool)
        return text + (m_ints.at(0) ? "true" : "false");
    return text + std::to_string(m_ints.at(0));
}

// ---- tensor info --------------------------------------------------------------------------

int64_t GgufTensorInfo::numel() const
{
    int64_t n = 1;
    for (int64_t d : ne)
        n *= d;
    return n;
}

std::vector<int64_t> GgufTensorInfo::torchShape() const { return {ne.rbegin(), ne.rend()}; }

// ---- reader -------------------------------------------------------------------------------

namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr size_t kMaxTensorName = 64; // GGUF spec: names are at most 64 bytes
constexpr uint32_t kMaxDims = 4;

// Bounds-checked sequential reads over the mapped header; every failure names the file.
class Cursor {
public:
    Cursor(const fs::path& path, const std::byte* data, size_t size) : m_path(path), m_data(data), m_size(size) {}

    [[nodiscard]] size_t pos() const { return m_pos; }
    [[nodiscard]] size_t remaining() const { return m_size - m_pos; }

    void need(size_t n, const std::string& what) const
    {
        if (n > remaining())
            throw inputError(m_path, "truncated: the file ends inside " + what + " (byte " + std::to_string(m_pos)
                                         + " of " + std::to_string(m_size) + ")");
    }

    template <typename T> T read(const std::string& what)
    {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, m_data + m_pos, sizeof(T));
        m_pos += sizeof(T);
        return v;
    }

    std::string readString(const std::string& what)
    {
        const uint64_t n = read<uint64_t>(what + " length");
        if (n > remaining())
            throw inputError(m_path, what + " claims " + std::to_string(n) + " bytes but only "
                                         + std::to_string(remaining()) + " remain in the file");
        std::string s(reinterpret_cast<const char*>(m_data + m_pos), size_t(n));
        m_pos += size_t(n);
        return s;
    }

private:
    const fs::path& m_path;
    const std::byte* m_data;
    size_t m_size;
    size_t m_pos = 0;
};

void readScalarInto(Cursor& c, uint32_t type, std::vector<int64_t>& ints,
                    std::vector<double>& reals, std::vector<std::string>& strings, const std::string& what)
{
    switch (type) {
    case 0: ints.push_back(c.read<uint8_t>(what)); break;
    case 1: ints.push_back(c.read<int8_t>(what)); break;
    case 2: ints.push_back(c.read<uint16_t>(what)); break;
    case 3: ints.push_back(c.read<int16_t>(what)); break;
    case 4: ints.push_back(c.read<uint32_t>(what)); break;
    case 5: ints.push_back(c.read<int32_t>(what)); break;
    case 6: reals.push_back(double(c.read<float>(what))); break;
    case 7: ints.push_back(c.read<uint8_t>(what) != 0 ? 1 : 0); break;
    case 8: strings.push_back(c.readString(what)); break;
    case 10: ints.push_back(static_cast<int64_t>(c.read<uint64_t>(what))); break;
    case 11: ints.push_back(c.read<int64_t>(what)); break;
    case 12: reals.push_back(c.read<double>(what)); break;
    default: break; // callers have validated the type
    }
}

bool knownScalarType(uint32_t t) { return t <= 12 && t != 9; }

GgufValue readValue(Cursor& c, const fs::path& path, const std::string& key)
{
    const std::string what = "the value of '" + key + "'";
    uint32_t type = c.read<uint32_t>("the type of '" + key + "'");
    bool isArray = false;
    uint64_t count = 1;
    if (type == 9) {
        isArray = true;
        type = c.read<uint32_t>("the element type of '" + key + "'");
        if (type == 9)
            throw inputError(path, "key '" + key + "': nested arrays are not supported");
        count = c.read<uint64_t>("the element count of '" + key + "'");
    }
    if (!knownScalarType(type))
        throw inputError(path, "key '" + key + "': unknown value type " + std::to_string(type));
    // Each element needs at least its fixed size (a string at least its 8-byte length), so a
    // count above remaining/min is a corrupt field: refuse before allocating anything.
    const size_t minBytes = type == 8 ? 8 : scalarBytes(type);
    if (count > c.remaining() / minBytes)
        throw inputError(path, "key '" + key + "': array of " + std::to_string(count) + " elements cannot fit in the "
                                   + std::to_string(c.remaining()) + " bytes left in the file");
    std::vector<int64_t> ints;
    std::vector<double> reals;
    std::vector<std::string> strings;
    if (type == 8)
        strings.reserve(size_t(count));
    else if (type == 6 || type == 12)
        reals.reserve(size_t(count));
    else
        ints.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i)
        readScalarInto(c, type, ints, reals, strings, what);

    const auto vt = static_cast<GgufValueType>(type);
    GgufValue value = type == 8 ? GgufValue::stringArray(std::move(strings))
                      : (type == 6 || type == 12) ? GgufValue::realArray(vt, std::move(reals))
                                                  : GgufValue::intArray(vt, std::move(ints));
    if (!isArray) {
        // Rebuild as a scalar through the public factories.
        switch (vt) {
        case GgufValueType::String: return GgufValue::string(value.strings()[0]);
        case GgufValueType::Float32: return GgufValue::f32(float(value.reals()[0]));
        case GgufValueType::Float64: return GgufValue::f64(value.reals()[0]);
        case GgufValueType::UInt8: return GgufValue::u8(uint8_t(value.ints()[0]));
        case GgufValueType::Int8: return GgufValue::i8(int8_t(value.ints()[0]));
        case GgufValueType::UInt16: return GgufValue::u16(uint16_t(value.ints()[0]));
        case GgufValueType::Int16: return GgufValue::i16(int16_t(value.ints()[0]));
        case GgufValueType::UInt32: return GgufValue::u32(uint32_t(value.ints()[0]));
        case GgufValueType::Int32: return GgufValue::i32(int32_t(value.ints()[0]));
        case GgufValueType::UInt64: return GgufValue::u64(uint64_t(value.ints()[0]));
        case GgufValueType::Int64: return GgufValue::i64(value.ints()[0]);
        case GgufValueType::Bool: return GgufValue::boolean(value.ints()[0] != 0);
        case GgufValueType::Array: break;
        }
    }
    return value;
}

uint64_t alignUp(uint64_t x, uint64_t alignment) { return (x + alignment - 1) / alignment * alignment; }

} // namespace

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const fs::path& path)
{
    GgufFile file;
    file.m_path = path;
    file.m_map = std::make_unique<MappedFile>(path);
    const std::byte* base = file.m_map->data();
    const size_t size = file.m_map->size();
    Cursor c(file.m_path, base, size);

    if (size < 4 || std::memcmp(base, "GGUF", 4) != 0)
        throw inputError(path, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
    c.read<uint32_t>("the magic");
    file.m_version = c.read<uint32_t>("the version");
    if (file.m_version != 2 && file.m_version != kGgufVersion)
        throw inputError(path, "unsupported GGUF version " + std::to_string(file.m_version) + " (2 and 3 are read)");
    const uint64_t nTensors = c.read<uint64_t>("the tensor count");
    const uint64_t nKv = c.read<uint64_t>("the key/value count");
    // Smallest possible records: a key/value is 8 (key length) + 4 (type) + 1 byte; a tensor
    // info is 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset). A count that cannot fit is
    // refused before anything is allocated for it.
    if (nKv > c.remaining() / 13)
        throw inputError(path, "truncated or corrupt: " + std::to_string(nKv) + " key/value pairs cannot fit in the "
                                   + std::to_string(c.remaining()) + " bytes left");

    file.m_kv.reserve(size_t(nKv));
    for (uint64_t i = 0; i < nKv; ++i) {
        std::string key = c.readString("key " + std::to_string(i));
        if (file.m_kvIndex.count(key))
            throw inputError(path, "duplicate key '" + key + "'");
        GgufValue value = readValue(c, path, key);
        file.m_kvIndex.emplace(key, file.m_kv.size());
        file.m_kv.emplace_back(std::move(key), std::move(value));
    }
    if (const GgufValue* a = file.find("general.alignment")) {
        const auto v = a->asInt();
        if (a->type() != GgufValueType::UInt32 || !v || *v == 0 || (*v & (*v - 1)) != 0)
            throw inputError(path, "general.alignment must be a UINT32 power of two, found " + a->describe());
        file.m_alignment = uint32_t(*v);
    }

    if (nTensors > c.remaining() / 24)
        throw inputError(path, "truncated or corrupt: " + std::to_string(nTensors) + " tensor infos cannot fit in the "
                                   + std::to_string(c.remaining()) + " bytes left");
    file.m_tensors.reserve(size_t(nTensors));
    for (uint64_t i = 0; i < nTensors; ++i) {
        GgufTensorInfo info;
        info.name = c.readString("the name of tensor " + std::to_string(i));
        const std::string label = "tensor '" + info.name + "'";
        if (info.name.size() > kMaxTensorName)
            throw inputError(path, label + ": name longer than " + std::to_string(kMaxTensorName) + " bytes");
        if (file.m_tensorIndex.count(info.name))
            throw inputError(path, "duplicate tensor name '" + info.name + "'");
        const uint32_t nDims = c.read<uint32_t>("the dimensions of " + label);
        if (nDims > kMaxDims)
            throw inputError(path, label + ": " + std::to_string(nDims) + " dimensions (at most 4)");
        int64_t numel = 1;
        for (uint32_t d = 0; d < nDims; ++d) {
            const int64_t n = c.read<int64_t>("the shape of " + label);
            if (n < 0)
                throw inputError(path, label + ": negative size " + std::to_string(n) + " in dimension " + std::to_string(d));
            if (__builtin_mul_overflow(numel, n, &numel))
                throw inputError(path, label + ": element count overflows 64 bits");
            info.ne.push_back(n);
        }
        const uint32_t typeId = c.read<uint32_t>("the type of " + label);
        const auto traits = ggmlTypeTraits(typeId);
        if (!traits)
            throw inputError(path, label + ": unknown ggml type " + std::to_string(typeId));
        info.type = static_cast<GgmlType>(typeId);
        const int64_t rowLength = info.ne.empty() ? 1 : info.ne[0]; // no dimensions: a scalar
        if (rowLength % traits->blockSize != 0)
            throw inputError(path, label + ": row length " + std::to_string(rowLength) + " is not a multiple of "
                                       + std::string(traits->name) + "'s block size "
                                       + std::to_string(traits->blockSize));
        if (__builtin_mul_overflow(uint64_t(numel / traits->blockSize), uint64_t(traits->blockBytes), &info.nbytes))
            throw inputError(path, label + ": byte size overflows 64 bits");
        info.offset = c.read<uint64_t>("the offset of " + label);
        if (info.offset % file.m_alignment != 0)
            throw inputError(path, label + ": data offset " + std::to_string(info.offset)
                                       + " is not a multiple of the alignment " + std::to_string(file.m_alignment));
        file.m_tensorIndex.emplace(info.name, file.m_tensors.size());
        file.m_tensors.push_back(std::move(info));
    }

    file.m_dataOffset = alignUp(c.pos(), file.m_alignment);
    const uint64_t dataSize = file.m_dataOffset <= size ? size - file.m_dataOffset : 0;
    if (nTensors > 0 && file.m_dataOffset > size)
        throw inputError(path, "truncated: the file ends before its data section (byte "
                                   + std::to_string(file.m_dataOffset) + " of " + std::to_string(size) + ")");
    std::vector<std::pair<uint64_t, size_t>> ranges; // (begin, tensor) of non-empty tensors
    for (size_t i = 0; i < file.m_tensors.size(); ++i) {
        const GgufTensorInfo& t = file.m_tensors[i];
        if (t.offset > dataSize || t.nbytes > dataSize - t.offset)
            throw inputError(path, "tensor '" + t.name + "': bytes [" + std::to_string(t.offset) + ", "
                                       + std::to_string(t.offset + t.nbytes)
                                       + ") lie outside the data section of " + std::to_string(dataSize) + " bytes");
        if (t.nbytes > 0)
            ranges.emplace_back(t.offset, i);
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t k = 1; k < ranges.size(); ++k) {
        const GgufTensorInfo& prev = file.m_tensors[ranges[k - 1].second];
        const GgufTensorInfo& cur = file.m_tensors[ranges[k].second];
        if (prev.offset + prev.nbytes > cur.offset)
            throw inputError(path, "tensors '" + prev.name + "' and '" + cur.name + "' overlap");
    }
    return file;
}

const GgufValue* GgufFile::find(std::string_view key) const
{
    const auto it = m_kvIndex.find(key);
    return it == m_kvIndex.end() ? nullptr : &m_kv[it->second].second;
}

const GgufTensorInfo* GgufFile::findTensor(std::string_view name) const
{
    const auto it = m_tensorIndex.find(name);
    return it == m_tensorIndex.end() ? nullptr : &m_tensors[it->second];
}

std::span<const std::byte> GgufFile::tensorData(const GgufTensorInfo& info) const
{
    return {m_map->data() + m_dataOffset + info.offset, size_t(info.nbytes)};
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& info) const
{
    const std::span<const std::byte> src = tensorData(info);
    std::vector<float> out(size_t(info.numel()));
    switch (info.type) {
    case GgmlType::F32:
        if (!src.empty())
            std::memcpy(out.data(), src.data(), src.size());
        break;
    case GgmlType::F16:
    case GgmlType::BF16:
        for (size_t i = 0; i < out.size(); ++i) {
            uint16_t bits;
            std::memcpy(&bits, src.data() + 2 * i, 2);
            out[i] = info.type == GgmlType::F16 ? fp16ToFp32(bits) : bf16ToFp32(bits);
        }
        break;
    case GgmlType::Q8_0: dequantizeRowQ8_0(src, out); break;
    case GgmlType::Q4_0: dequantizeRowQ4_0(src, out); break;
    default:
        throw inputError(m_path, "tensor '" + info.name + "' has type " + std::string(ggmlTypeName(info.type))
                                     + "; SparseLab reads F32, F16, BF16, Q8_0 and Q4_0");
    }
    return out;
}

// ---- writer -------------------------------------------------------------------------------

GgufWriter::GgufWriter(uint32_t alignment) : m_alignment(alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        throw std::invalid_argument("GgufWriter: alignment must be a power of two");
    if (alignment != 32)
        set("general.alignment", GgufValue::u32(alignment));
}

void GgufWriter::set(const std::string& key, GgufValue value)
{
    for (auto& [k, v] : m_kv)
        if (k == key) {
            v = std::move(value);
            return;
        }
    m_kv.emplace_back(key, std::move(value));
}

const GgufValue* GgufWriter::find(std::string_view key) const
{
    for (const auto& [k, v] : m_kv)
        if (k == key)
            return &v;
    return nullptr;
}

namespace {
uint64_t checkedTensorBytes(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                            const std::vector<std::string>& existing)
{
    if (name.empty() || name.size() >= kMaxTensorName)
        throw std::invalid_argument("GgufWriter: tensor name '" + name + "' must have 1 to 63 bytes");
    if (std::find(existing.begin(), existing.end(), name) != existing.end())
        throw std::invalid_argument("GgufWriter: duplicate tensor '" + name + "'");
    if (ne.empty() || ne.size() > kMaxDims)
        throw std::invalid_argument("GgufWriter: tensor '" + name + "' needs 1 to 4 dimensions");
    const auto traits = ggmlTypeTraits(static_cast<uint32_t>(type));
    if (!traits)
        throw std::invalid_argument("GgufWriter: unknown type for '" + name + "'");
    int64_t numel = 1;
    for (int64_t d : ne) {
        if (d < 0 || __builtin_mul_overflow(numel, d, &numel))
            throw std::invalid_argument("GgufWriter: bad shape for '" + name + "'");
    }
    if (ne[0] % traits->blockSize != 0)
        throw std::invalid_argument("GgufWriter: tensor '" + name + "' row length " + std::to_string(ne[0])
                                    + " is not a multiple of " + std::string(traits->name) + "'s block size");
    return ggmlBytes(type, numel);
}
} // namespace

void GgufWriter::addTensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, std::vector<std::byte> data)
{
    std::vector<std::string> names;
    for (const Tensor& t : m_tensors)
        names.push_back(t.name);
    const uint64_t nbytes = checkedTensorBytes(name, type, ne, names);
    if (data.size() != nbytes)
        throw std::invalid_argument("GgufWriter: tensor '" + name + "' has " + std::to_string(data.size())
                                    + " bytes, its shape and type need " + std::to_string(nbytes));
    m_tensors.push_back(Tensor{name, type, std::move(ne), nbytes, std::move(data), {}});
}

void GgufWriter::addTensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, TensorProducer produce)
{
    std::vector<std::string> names;
    for (const Tensor& t : m_tensors)
        names.push_back(t.name);
    const uint64_t nbytes = checkedTensorBytes(name, type, ne, names);
    if (!produce)
        throw std::invalid_argument("GgufWriter: tensor '" + name + "' has no producer");
    m_tensors.push_back(Tensor{name, type, std::move(ne), nbytes, {}, std::move(produce)});
}

namespace {

class ByteSink {
public:
    template <typename T> void put(T v)
    {
        const auto* p = reinterpret_cast<const char*>(&v);
        m_bytes.append(p, sizeof(T));
    }
    void putString(const std::string& s)
    {
        put<uint64_t>(s.size());
        m_bytes += s;
    }
    [[nodiscard]] std::string& bytes() { return m_bytes; }

private:
    std::string m_bytes;
};

void putScalar(ByteSink& out, GgufValueType t, size_t i, const GgufValue& v)
{
    switch (t) {
    case GgufValueType::UInt8: out.put<uint8_t>(uint8_t(v.ints()[i])); break;
    case GgufValueType::Int8: out.put<int8_t>(int8_t(v.ints()[i])); break;
    case GgufValueType::UInt16: out.put<uint16_t>(uint16_t(v.ints()[i])); break;
    case GgufValueType::Int16: out.put<int16_t>(int16_t(v.ints()[i])); break;
    case GgufValueType::UInt32: out.put<uint32_t>(uint32_t(v.ints()[i])); break;
    case GgufValueType::Int32: out.put<int32_t>(int32_t(v.ints()[i])); break;
    case GgufValueType::UInt64: out.put<uint64_t>(uint64_t(v.ints()[i])); break;
    case GgufValueType::Int64: out.put<int64_t>(v.ints()[i]); break;
    case GgufValueType::Bool: out.put<uint8_t>(v.ints()[i] ? 1 : 0); break;
    case GgufValueType::Float32: out.put<float>(float(v.reals()[i])); break;
    case GgufValueType::Float64: out.put<double>(v.reals()[i]); break;
    case GgufValueType::String: out.putString(v.strings()[i]); break;
    case GgufValueType::Array: throw std::invalid_argument("GgufWriter: nested array");
    }
}

} // namespace

void GgufWriter::write(const fs::path& path,
                       const std::function<void(size_t, const std::string&)>& beforeTensor) const
{
    if (const GgufValue* a = find("general.alignment"))
        if (a->type() != GgufValueType::UInt32 || a->asInt() != int64_t(m_alignment))
            throw std::invalid_argument("GgufWriter: general.alignment does not match the writer's alignment");

    // GGUF strings are UTF-8 (llama.cpp decodes them as such): a name or token that is not is
    // refused before anything is written, naming the key.
    const auto requireUtf8 = [&](const std::string& text, const std::string& what) {
        if (!tokenize::unicode::isValidUtf8(text))
            throw inputError(path, what + " is not valid UTF-8, which GGUF strings must be");
    };
    for (const auto& [key, value] : m_kv) {
        requireUtf8(key, "a metadata key");
        if (const std::string* text = value.asString())
            requireUtf8(*text, "the value of '" + key + "'");
        for (size_t i = 0; i < value.strings().size(); ++i)
            requireUtf8(value.strings()[i], "'" + key + "' element " + std::to_string(i));
    }
    for (const Tensor& t : m_tensors)
        requireUtf8(t.name, "a tensor name");

    ByteSink header;
    header.bytes().append("GGUF", 4);
    header.put<uint32_t>(kGgufVersion);
    header.put<uint64_t>(m_tensors.size());
    header.put<uint64_t>(m_kv.size());
    for (const auto& [key, value] : m_kv) {
        header.putString(key);
        header.put<uint32_t>(static_cast<uint32_t>(value.type()));
        if (value.isArray()) {
            header.put<uint32_t>(static_cast<uint32_t>(value.elementType()));
            header.put<uint64_t>(value.size());
        }
        for (size_t i = 0; i < value.size(); ++i)
            putScalar(header, value.elementType(), i, value);
    }
    uint64_t offset = 0;
    for (const Tensor& t : m_tensors) {
        header.putString(t.name);
        header.put<uint32_t>(uint32_t(t.ne.size()));
        for (int64_t d : t.ne)
            header.put<int64_t>(d);
        header.put<uint32_t>(static_cast<uint32_t>(t.type));
        header.put<uint64_t>(offset);
        offset += alignUp(t.nbytes, m_alignment);
    }
    std::string& bytes = header.bytes();
    bytes.resize(size_t(alignUp(bytes.size(), m_alignment)), '\0');

    writeFileAtomically(path, [&](const fs::path& temp) {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw inputError(path, std::string("cannot create file: ") + std::strerror(errno));
        out.write(bytes.data(), std::streamsize(bytes.size()));
        std::vector<std::byte> buffer;
        const char zeros[64] = {};
        for (size_t i = 0; i < m_tensors.size(); ++i) {
            const Tensor& t = m_tensors[i];
            if (beforeTensor)
                beforeTensor(i, t.name);
            std::span<const std::byte> data = t.data;
            if (t.produce) {
                buffer.assign(size_t(t.nbytes), std::byte{0});
                t.produce(buffer);
                data = buffer;
            }
            out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
            for (uint64_t pad = alignUp(t.nbytes, m_alignment) - t.nbytes; pad > 0;) {
                const uint64_t n = std::min<uint64_t>(pad, sizeof zeros);
                out.write(zeros, std::streamsize(n));
                pad -= n;
            }
            if (!out)
                throw inputError(path, "write failed (disk full?)");
        }
        out.flush();
        if (!out)
            throw inputError(path, "write failed (disk full?)");
    });
}

// ---- codecs -------------------------------------------------------------------------------

uint16_t fp32ToFp16(float value)
{
    const uint32_t x = std::bit_cast<uint32_t>(value);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) // infinity or NaN (NaN stays quiet, keeps its top payload bits)
        return absx == 0x7f800000u ? uint16_t(sign | 0x7c00u) : uint16_t(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));
    const uint32_t e = absx >> 23;      // biased binary32 exponent
    const uint32_t m = absx & 0x7fffffu; // binary32 fraction
    if (e >= 143)                        // |x| >= 2^16: beyond the largest half, rounds to infinity
        return uint16_t(sign | 0x7c00u);
    if (e >= 113) { // a normal half (|x| >= 2^-14): rebias, keep 10 fraction bits, round to nearest even
        uint32_t h = ((e - 112) << 10) | (m >> 13);
        const uint32_t rest = m & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
            ++h; // may carry into the exponent, up to 0x7c00 (infinity): that is correct rounding
        return uint16_t(sign | h);
    }
    if (e < 102) // |x| < 2^-25: rounds to (signed) zero
        return sign;
    // A subnormal half: units of 2^-24. The 24-bit significand shifted right by 126 - e.
    const uint32_t sig = m | 0x800000u;
    const uint32_t shift = 126 - e; // 14 .. 24
    uint32_t h = sig >> shift;
    const uint32_t rest = sig & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (h & 1u)))
        ++h; // 0x400 is the smallest normal: still the right encoding
    return uint16_t(sign | h);
}

float fp16ToFp32(uint16_t bits)
{
    const uint32_t sign = uint32_t(bits & 0x8000u) << 16;
    const uint32_t e = (bits >> 10) & 0x1fu;
    const uint32_t m = bits & 0x3ffu;
    uint32_t out;
    if (e == 0x1f) {
        out = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
        out = sign | ((e + 112) << 23) | (m << 13);
    } else if (m == 0) {
        out = sign;
    } else { // subnormal: m · 2^-24, exact in binary32
        const float f = float(m) * 0x1p-24f;
        out = sign | std::bit_cast<uint32_t>(f);
    }
    return std::bit_cast<float>(out);
}

float bf16ToFp32(uint16_t bits) { return std::bit_cast<float>(uint32_t(bits) << 16); }

namespace {

void checkBlocks(size_t values, size_t bytes, size_t blockBytes, const char* what)
{
    if (values % size_t(kGgmlBlock) != 0 || bytes != values / size_t(kGgmlBlock) * blockBytes)
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(values) + " values and "
                                    + std::to_string(bytes) + " bytes do not make whole blocks");
}

void putHalf(std::byte* dst, uint16_t h) { std::memcpy(dst, &h, 2); }

uint16_t getHalf(const std::byte* src)
{
    uint16_t h;
    std::memcpy(&h, src, 2);
    return h;
}

uint16_t exactHalf(float scale, const char* what)
{
    const uint16_t h = fp32ToFp16(scale);
    if (!std::isfinite(scale) || fp16ToFp32(h) != scale)
        throw std::invalid_argument(std::string(what) + ": scale " + std::to_string(scale)
                                    + " is not exactly representable in fp16");
    return h;
}

} // namespace

// The two quantizers follow ggml's reference code step by step in float32: the same
// operations in the same order, so the same roundings (this TU is built without FMA
// contraction: ISO C++ mode, no -march flags).
void quantizeRowQ8_0(std::span<const float> src, std::span<std::byte> dst)
{
    checkBlocks(src.size(), dst.size(), kQ8_0BlockBytes, "quantizeRowQ8_0");
    for (size_t b = 0; b < src.size() / size_t(kGgmlBlock); ++b) {
        const float* x = src.data() + b * size_t(kGgmlBlock);
        std::byte* y = dst.data() + b * kQ8_0BlockBytes;
        float amax = 0.0f;
        for (int64_t j = 0; j < kGgmlBlock; ++j) {
            const float a = std::fabs(x[j]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        putHalf(y, fp32ToFp16(d));
        for (int64_t j = 0; j < kGgmlBlock; ++j) {
            const float scaled = x[j] * id;
            y[2 + j] = std::byte(uint8_t(int8_t(std::round(scaled)))); // round half away from zero
        }
    }
}

void quantizeRowQ4_0(std::span<const float> src, std::span<std::byte> dst)
{
    checkBlocks(src.size(), dst.size(), kQ4_0BlockBytes, "quantizeRowQ4_0");
    for (size_t b = 0; b < src.size() / size_t(kGgmlBlock); ++b) {
        const float* x = src.data() + b * size_t(kGgmlBlock);
        std::byte* y = dst.data() + b * kQ4_0BlockBytes;
        // The signed value of largest magnitude (strict '<': the first one wins ties), so
        // that it maps to code 0 exactly: d = max / -8.
        float amax = 0.0f;
        float max = 0.0f;
        for (int64_t j = 0; j < kGgmlBlock; ++j) {
            const float a = std::fabs(x[j]);
            if (amax < a) {
                amax = a;
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        putHalf(y, fp32ToFp16(d));
        for (int64_t j = 0; j < kGgmlBlock / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[j + kGgmlBlock / 2] * id;
            // Truncation toward zero of a value in [0.5, 16.5], then clamp to 15.
            const int q0 = std::min(15, int(x0 + 8.5f));
            const int q1 = std::min(15, int(x1 + 8.5f));
            y[2 + j] = std::byte(uint8_t(q0 | (q1 << 4)));
        }
    }
}

void dequantizeRowQ8_0(std::span<const std::byte> src, std::span<float> dst)
{
    checkBlocks(dst.size(), src.size(), kQ8_0BlockBytes, "dequantizeRowQ8_0");
    for (size_t b = 0; b < dst.size() / size_t(kGgmlBlock); ++b) {
        const std::byte* x = src.data() + b * kQ8_0BlockBytes;
        float* y = dst.data() + b * size_t(kGgmlBlock);
        const float d = fp16ToFp32(getHalf(x));
        for (int64_t j = 0; j < kGgmlBlock; ++j)
            y[j] = float(int8_t(uint8_t(x[2 + j]))) * d;
    }
}

void dequantizeRowQ4_0(std::span<const std::byte> src, std::span<float> dst)
{
    checkBlocks(dst.size(), src.size(), kQ4_0BlockBytes, "dequantizeRowQ4_0");
    for (size_t b = 0; b < dst.size() / size_t(kGgmlBlock); ++b) {
        const std::byte* x = src.data() + b * kQ4_0BlockBytes;
        float* y = dst.data() + b * size_t(kGgmlBlock);
        const float d = fp16ToFp32(getHalf(x));
        for (int64_t j = 0; j < kGgmlBlock / 2; ++j) {
            const auto q = uint8_t(x[2 + j]);
            y[j] = float(int(q & 0x0f) - 8) * d;
            y[j + kGgmlBlock / 2] = float(int(q >> 4) - 8) * d;
        }
    }
}

void packQ4_0(std::span<const float> scales, std::span<const uint8_t> codes, std::span<std::byte> dst)
{
    checkBlocks(codes.size(), dst.size(), kQ4_0BlockBytes, "packQ4_0");
    if (scales.size() != codes.size() / size_t(kGgmlBlock))
        throw std::invalid_argument("packQ4_0: one scale per 32 codes expected");
    for (size_t b = 0; b < scales.size(); ++b) {
        const uint8_t* q = codes.data() + b * size_t(kGgmlBlock);
        std::byte* y = dst.data() + b * kQ4_0BlockBytes;
        putHalf(y, exactHalf(scales[b], "packQ4_0"));
        for (int64_t j = 0; j < kGgmlBlock / 2; ++j) {
            const uint8_t lo = q[j], hi = q[j + kGgmlBlock / 2];
            if (lo > 15 || hi > 15)
                throw std::invalid_argument("packQ4_0: code above 15");
            y[2 + j] = std::byte(uint8_t(lo | (hi << 4)));
        }
    }
}

void packQ8_0(std::span<const float> scales, std::span<const uint8_t> codes, std::span<std::byte> dst)
{
    checkBlocks(codes.size(), dst.size(), kQ8_0BlockBytes, "packQ8_0");
    if (scales.size() != codes.size() / size_t(kGgmlBlock))
        throw std::invalid_argument("packQ8_0: one scale per 32 codes expected");
    for (size_t b = 0; b < scales.size(); ++b) {
        const uint8_t* q = codes.data() + b * size_t(kGgmlBlock);
        std::byte* y = dst.data() + b * kQ8_0BlockBytes;
        putHalf(y, exactHalf(scales[b], "packQ8_0"));
        for (int64_t j = 0; j < kGgmlBlock; ++j)
            y[2 + j] = std::byte(uint8_t(int8_t(int(q[j]) - 128)));
    }
}

} // namespace sparselab::io

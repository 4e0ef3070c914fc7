#include "io/safetensors.h"

#include "io/mapped_file.h"

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>


// The format stores little-endian data and we hand out raw views of it.
static_assert(std::endian::native == std::endian::little, "safetensors views assume a little-endian host");

namespace sparselab::io {

namespace fs = std::filesystem;

namespace {

// The reference implementation refuses headers above 100 MB; a larger one is a corrupt
// length field, and refusing it keeps a bad file from making us parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

constexpr const char* kMetadataKey = "__metadata__";

std::string shapeText(const std::vector<int64_t>& shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// numel of a validated (non-negative) shape; nullopt on uint64 overflow.
std::optional<uint64_t> checkedNumel(const std::vector<int64_t>& shape)
{
    uint64_t n = 1;
    for (int64_t d : shape) {
        if (__builtin_mul_overflow(n, uint64_t(d), &n))
            return std::nullopt;
    }
    return n;
}

} // namespace

size_t dtypeSize(DType dtype)
{
    switch (dtype) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I8: return 1;
    case DType::U8: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::Bool: return 1;
    }
    return 0;
}

std::string_view dtypeName(DType dtype)
{
    switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::Bool: return "BOOL";
    }
    return "?";
}

std::optional<DType> parseDType(std::string_view name)
{
    static constexpr DType all[] = {DType::F32, DType::F16, DType::BF16, DType::I8,
                                    DType::U8,  DType::I32, DType::I64,  DType::Bool};
    for (DType d : all) {
        if (dtypeName(d) == name)
            return d;
    }
    return std::nullopt;
}

int64_t TensorInfo::numel() const
{
    int64_t n = 1;
    for (int64_t d : shape)
        n *= d;
    return n;
}

int64_t TensorView::numel() const
{
    int64_t n = 1;
    for (int64_t d : shape)
        n *= d;
    return n;
}

// ---- SafetensorsFile --------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const fs::path& path)
{
    using nlohmann::json;

    SafetensorsFile file;
    file.m_path = path;
    file.m_map = std::make_unique<MappedFile>(path);
    const std::byte* bytes = file.m_map->data();
    const uint64_t fileSize = file.m_map->size();

    if (fileSize < 8)
        throw inputError(path, "not a safetensors file: " + std::to_string(fileSize)
                                   + " bytes, too short for the 8-byte header length");
    uint64_t headerLen = 0;
    std::memcpy(&headerLen, bytes, 8);
    if (headerLen > fileSize - 8)
        throw inputError(path, "header length " + std::to_string(headerLen) + " runs past the end of the file ("
                                   + std::to_string(fileSize) + " bytes)");
    if (headerLen > kMaxHeaderBytes)
        throw inputError(path, "header length " + std::to_string(headerLen) + " exceeds the 100 MB limit");
    if (headerLen < 2)
        throw inputError(path, "header is not a JSON object");

    const char* headerBegin = reinterpret_cast<const char*>(bytes + 8);
    const char* headerEnd = headerBegin + headerLen;

    // nlohmann::json keeps the last of duplicate keys silently; a parser callback sees every
    // top-level key, so duplicate tensor names are caught instead of shadowing each other.
    std::set<std::string> seenKeys;
    std::string duplicate;
    const json::parser_callback_t onEvent = [&](int depth, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::key && depth == 1) {
            const std::string& key = parsed.get_ref<const std::string&>();
            if (!seenKeys.insert(key).second && duplicate.empty())
                duplicate = key;
        }
        return true;
    };
    requireJsonDepth(std::string_view(headerBegin, size_t(headerLen)), path, "header");
    json header;
    try {
        header = json::parse(headerBegin, headerEnd, onEvent);
    } catch (const json::exception& e) {
        throw inputError(path, std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object())
        throw inputError(path, "header is not a JSON object");
    if (!duplicate.empty())
        throw inputError(path, "tensor '" + duplicate + "' appears more than once in the header");

    const uint64_t dataSize = fileSize - 8 - headerLen;
    file.m_dataSection = bytes + 8 + headerLen;

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const json& entry = it.value();
        if (name == kMetadataKey) {
            if (!entry.is_object())
                throw inputError(path, "__metadata__ must be an object of strings");
            for (auto m = entry.begin(); m != entry.end(); ++m) {
                if (!m.value().is_string())
                    throw inputError(path, "__metadata__ entry '" + m.key() + "' is not a string");
                file.m_metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string what = "tensor '" + name + "': ";
        if (name.empty())
            throw inputError(path, "a tensor has an empty name");
        if (!entry.is_object())
            throw inputError(path, what + "entry is not an object");

        TensorInfo info;
        info.name = name;

        const auto dtypeIt = entry.find("dtype");
        if (dtypeIt == entry.end() || !dtypeIt->is_string())
            throw inputError(path, what + "missing or non-string 'dtype'");
        const auto dtype = parseDType(dtypeIt->get<std::string>());
        if (!dtype)
            throw inputError(path, what + "unknown dtype '" + dtypeIt->get<std::string>()
                                       + "' (known: F32 F16 BF16 I8 U8 I32 I64 BOOL)");
        info.dtype = *dtype;

        const auto shapeIt = entry.find("shape");
        if (shapeIt == entry.end() || !shapeIt->is_array())
            throw inputError(path, what + "missing or non-array 'shape'");
        for (const json& d : *shapeIt) {
            if (d.is_number_unsigned())
                info.shape.push_back(int64_t(d.get<uint64_t>()));
            else if (d.is_number_integer())
                info.shape.push_back(d.get<int64_t>());
            else
                throw inputError(path, what + "shape entries must be integers");
            if (info.shape.back() < 0)
                throw inputError(path, what + "negative dimension in shape " + shapeText(info.shape));
        }

        const auto offIt = entry.find("data_offsets");
        if (offIt == entry.end() || !offIt->is_array() || offIt->size() != 2
            || !(*offIt)[0].is_number_unsigned() || !(*offIt)[1].is_number_unsigned())
            throw inputError(path, what + "'data_offsets' must be two non-negative integers");
        info.begin = (*offIt)[0].get<uint64_t>();
        info.end = (*offIt)[1].get<uint64_t>();
        if (info.begin > info.end)
            throw inputError(path, what + "data_offsets [" + std::to_string(info.begin) + ", "
                                       + std::to_string(info.end) + "] are reversed");
        if (info.end > dataSize)
            throw inputError(path, what + "data_offsets [" + std::to_string(info.begin) + ", "
                                       + std::to_string(info.end) + "] run past the data section ("
                                       + std::to_string(dataSize) + " bytes)");
        const auto numel = checkedNumel(info.shape);
        uint64_t expected = 0;
        if (!numel || __builtin_mul_overflow(*numel, uint64_t(dtypeSize(info.dtype)), &expected))
            throw inputError(path, what + "shape " + shapeText(info.shape) + " is too large");
        if (expected != info.end - info.begin)
            throw inputError(path, what + "shape " + shapeText(info.shape) + " of " + std::string(dtypeName(info.dtype))
                                       + " needs " + std::to_string(expected) + " bytes but data_offsets span "
                                       + std::to_string(info.end - info.begin));
        file.m_tensors.push_back(std::move(info));
    }

    // File order is data order (JSON object key order is not preserved by the parser).
    std::sort(file.m_tensors.begin(), file.m_tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    // Sorted by begin, ranges are disjoint iff each starts at or after the previous end.
    // Empty tensors occupy no bytes and cannot overlap anything.
    const TensorInfo* previous = nullptr;
    for (const TensorInfo& t : file.m_tensors) {
        if (t.begin == t.end)
            continue;
        if (previous && t.begin < previous->end)
            throw inputError(path, "tensors '" + previous->name + "' and '" + t.name + "' overlap in the data section");
        previous = &t;
    }
    for (size_t i = 0; i < file.m_tensors.size(); ++i)
        file.m_index.emplace(file.m_tensors[i].name, i);
    return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const
{
    const auto it = m_index.find(name);
    return it == m_index.end() ? nullptr : &m_tensors[it->second];
}

TensorView SafetensorsFile::view(const TensorInfo& info) const
{
    TensorView v;
    v.dtype = info.dtype;
    v.shape = info.shape;
    v.data = m_dataSection + info.begin;
    v.nbytes = size_t(info.end - info.begin);
    return v;
}

TensorView SafetensorsFile::view(std::string_view name) const
{
    const TensorInfo* info = find(name);
    if (!info)
        throw inputError(m_path, "tensor '" + std::string(name) + "' is missing");
    return view(*info);
}

// ---- writer -----------------------------------------------------------------------------------

void writeSafetensors(const fs::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata)
{
    // ordered_json keeps tensors in the order given, which is also their data order.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        nlohmann::ordered_json meta = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata)
            meta[k] = v;
        header[kMetadataKey] = std::move(meta);
    }
    uint64_t offset = 0;
    for (const TensorToWrite& t : tensors) {
        // These are caller bugs, not bad user input.
        if (t.name.empty() || t.name == kMetadataKey)
            throw std::invalid_argument("writeSafetensors: invalid tensor name '" + t.name + "'");
        if (header.contains(t.name))
            throw std::invalid_argument("writeSafetensors: duplicate tensor name '" + t.name + "'");
        uint64_t numel = 1;
        for (int64_t d : t.shape) {
            if (d < 0)
                throw std::invalid_argument("writeSafetensors: negative dimension in '" + t.name + "'");
            numel *= uint64_t(d);
        }
        if (numel * dtypeSize(t.dtype) != t.nbytes || (t.nbytes > 0 && !t.data))
            throw std::invalid_argument("writeSafetensors: '" + t.name + "' has " + std::to_string(t.nbytes)
                                        + " bytes, its shape " + shapeText(t.shape) + " needs "
                                        + std::to_string(numel * dtypeSize(t.dtype)));
        header[t.name] = {{"dtype", dtypeName(t.dtype)},
                          {"shape", t.shape},
                          {"data_offsets", {offset, offset + t.nbytes}}};
        offset += t.nbytes;
    }
    std::string headerText = header.dump();
    // Padding to 8 bytes keeps the data section aligned for readers that cast in place.
    headerText.append((8 - headerText.size() % 8) % 8, ' ');

    writeFileAtomically(path, [&](const fs::path& temp) {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw inputError(path, std::string("cannot create file: ") + std::strerror(errno));
        const uint64_t len = headerText.size();
        out.write(reinterpret_cast<const char*>(&len), 8);
        out.write(headerText.data(), std::streamsize(headerText.size()));
        for (const TensorToWrite& t : tensors) {
            out.write(static_cast<const char*>(t.data), std::streamsize(t.nbytes));
            if (t.mappedSource)
                releaseMappedPages(t.data, t.nbytes);
        }
        out.flush();
        if (!out)
            throw inputError(path, "write failed (disk full?)");
    });
}

} // namespace sparselab::io

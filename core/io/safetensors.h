#pragma once
// safetensors reader and writer (no LibTorch, no Qt).
//
// File format (https://github.com/huggingface/safetensors):
//   bytes [0, 8)        N, little-endian uint64: length of the JSON header
//   bytes [8, 8+N)      UTF-8 JSON object: for each tensor name
//                         {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
//                       plus an optional "__metadata__": {string: string}
//   bytes [8+N, EOF)    the data section; offsets are relative to its start
// Validation (every rule raises InputError naming the file): header length within the file,
// header is a JSON object, known dtype (F32 F16 BF16 I8 U8 I32 I64 BOOL), non-negative
// integer shape, begin <= end <= data size, end - begin == numel * dtype size, tensor ranges
// do not overlap, names unique and non-empty.
//
// The file is memory-mapped read-only; views stay valid while the SafetensorsFile lives
// (it is movable, not copyable).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sparselab::io {

enum class DType { F32, F16, BF16, I8, U8, I32, I64, Bool };

[[nodiscard]] size_t dtypeSize(DType dtype);
[[nodiscard]] std::string_view dtypeName(DType dtype);          // "F32", "BF16", ...
[[nodiscard]] std::optional<DType> parseDType(std::string_view name);

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0; // offset in the data section
    uint64_t end = 0;
    [[nodiscard]] int64_t numel() const;
};

// A read-only view of one tensor's bytes inside a mapped file (little-endian, row-major).
struct TensorView {
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const std::byte* data = nullptr;
    size_t nbytes = 0;
    [[nodiscard]] int64_t numel() const;
};

class MappedFile; // RAII read-only mmap, io/mapped_file.h

class SafetensorsFile {
public:
    // Opens, maps and validates. Throws InputError naming `path` on any problem.
    static SafetensorsFile open(const std::filesystem::path& path);

    SafetensorsFile(SafetensorsFile&&) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
    ~SafetensorsFile();

    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }
    [[nodiscard]] const std::vector<TensorInfo>& tensors() const { return m_tensors; } // file order
    [[nodiscard]] const TensorInfo* find(std::string_view name) const;                 // null if absent
    [[nodiscard]] TensorView view(const TensorInfo& info) const;
    // InputError naming the file when the tensor is absent.
    [[nodiscard]] TensorView view(std::string_view name) const;
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return m_metadata; }

private:
    SafetensorsFile() = default;
    std::filesystem::path m_path;
    std::unique_ptr<MappedFile> m_map;
    const std::byte* m_dataSection = nullptr;
    std::vector<TensorInfo> m_tensors;
    std::map<std::string, size_t, std::less<>> m_index; // name -> position in m_tensors
    std::map<std::string, std::string> m_metadata;
};

// One tensor to write. `data` must hold exactly numel * dtypeSize(dtype) bytes.
struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
    size_t nbytes = 0;
    bool mappedSource = false; // data lies in a read-only file mapping: its pages are released
                               // (releaseMappedPages) once written, keeping the resident set bounded
};

// Writes a safetensors file atomically (temporary name, fsync, rename). Tensors are laid out
// in the given order, header padded with spaces to a multiple of 8 bytes.
void writeSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

} // namespace sparselab::io

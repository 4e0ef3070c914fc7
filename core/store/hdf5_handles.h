#pragma once
// Internal to core/store: RAII ownership of HDF5 ids and the small typed read/write helpers
// the workspace and the resume checkpoints share. Not a public API.
//
// Every helper throws Hdf5Failure (a plain message without the file name) on failure; the
// public functions catch it and rethrow an InputError "<file>: <message>".
// Callers hold hdf5Lock() for the whole operation (the Debian HDF5 build is not thread-safe).

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sparselab::store::h5 {

struct Hdf5Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// unique_ptr over an hid_t: the deleter's `pointer` type wraps the id.
template <herr_t (*Close)(hid_t)>
struct IdDeleter {
    struct pointer {
        hid_t id = H5I_INVALID_HID;
        pointer() = default;
        pointer(hid_t value) : id(value) {}            // NOLINT: implicit by design
        pointer(std::nullptr_t) {}                     // NOLINT
        explicit operator bool() const { return id >= 0; }
        friend bool operator==(pointer a, pointer b) { return a.id == b.id; }
        friend bool operator!=(pointer a, pointer b) { return a.id != b.id; }
    };
    void operator()(pointer p) const
    {
        if (p.id >= 0)
            Close(p.id);
    }
};

using File = std::unique_ptr<void, IdDeleter<H5Fclose>>;
using Group = std::unique_ptr<void, IdDeleter<H5Gclose>>;
using DataSet = std::unique_ptr<void, IdDeleter<H5Dclose>>;
using DataSpace = std::unique_ptr<void, IdDeleter<H5Sclose>>;
using DataType = std::unique_ptr<void, IdDeleter<H5Tclose>>;
using Attribute = std::unique_ptr<void, IdDeleter<H5Aclose>>;
using PropList = std::unique_ptr<void, IdDeleter<H5Pclose>>;
using Object = std::unique_ptr<void, IdDeleter<H5Oclose>>;

inline hid_t id(const auto& handle) { return handle.get().id; }

// The process-wide HDF5 lock; also switches off HDF5's automatic error printing once.
std::unique_lock<std::recursive_mutex> hdf5Lock();

// Files
//
// Every file SparseLab writes is *sealed*: HDF5's newest file format (superblock v3, whose
// metadata carries checksums) behind a 512-byte user block that holds the SHA-256 of all the
// bytes after it. openFileReadOnly verifies the seal before libhdf5 parses anything, so a
// byte changed anywhere in a sealed file is a clean "checksum does not match" instead of
// libhdf5 following a damaged pointer (single-byte corruptions crashed it in ~3 % of cases).
// Files written before the seal existed (HDF5 signature at offset 0) are still opened.
//
// writeSealedFile creates `path` (truncating), runs `body` on the open file, closes it (so
// every handle `body` opened must be closed when it returns) and seals it.
void writeSealedFile(const std::string& path, const std::function<void(hid_t file)>& body);
File openFileReadOnly(const std::string& path);
// (Re)writes the seal of a file that has the 512-byte user block: writeSealedFile's last step,
// and how the workspace fuzzer gets mutated HDF5 bytes past the seal to libhdf5's parser.
void sealFile(const std::string& path);
inline constexpr size_t kSealSize = 512;           // the user block holding the seal
// How a seal begins: this line, then "sha256 ", the hex digest, the byte count, zero padding.
inline constexpr std::string_view kSealMagic = "SparseLab sealed HDF5 v1\nsha256 ";

// Groups
bool exists(hid_t loc, const std::string& path);   // every component checked
Group openGroup(hid_t loc, const std::string& path);
Group createGroup(hid_t loc, const std::string& path); // intermediate groups created
enum class ChildKind { Group, Dataset, Other };
struct Child { std::string name; ChildKind kind; };
std::vector<Child> children(hid_t group);          // in name order

// Attributes
bool hasAttribute(hid_t obj, const std::string& name);
void writeAttribute(hid_t obj, const std::string& name, const std::string& value);
void writeAttribute(hid_t obj, const std::string& name, const char* value);
void writeAttribute(hid_t obj, const std::string& name, int64_t value);
void writeAttribute(hid_t obj, const std::string& name, double value);
std::string readStringAttribute(hid_t obj, const std::string& name);
int64_t readIntAttribute(hid_t obj, const std::string& name);
double readDoubleAttribute(hid_t obj, const std::string& name);
enum class ValueClass { Integer, Float, String, Other };
ValueClass attributeClass(hid_t obj, const std::string& name);
std::vector<std::string> attributeNames(hid_t obj);

// Datasets (row-major). `shape` empty = 1-D of values.size().
void writeDoubles(hid_t loc, const std::string& name, const std::vector<double>& values, std::vector<int64_t> shape = {});
void writeFloats(hid_t loc, const std::string& name, const std::vector<float>& values, std::vector<int64_t> shape = {});
void writeInts(hid_t loc, const std::string& name, const std::vector<int64_t>& values, std::vector<int64_t> shape = {});
void writeBytes(hid_t loc, const std::string& name, const std::vector<uint8_t>& values, std::vector<int64_t> shape = {});
void writeStrings(hid_t loc, const std::string& name, const std::vector<std::string>& values, std::vector<int64_t> shape = {});

std::vector<int64_t> datasetShape(hid_t loc, const std::string& name);
ValueClass datasetClass(hid_t loc, const std::string& name, size_t* elementSize = nullptr);
std::vector<double> readDoubles(hid_t loc, const std::string& name);
std::vector<float> readFloats(hid_t loc, const std::string& name);
std::vector<int64_t> readInts(hid_t loc, const std::string& name);
std::vector<uint8_t> readBytes(hid_t loc, const std::string& name);
std::vector<std::string> readStrings(hid_t loc, const std::string& name);

// Copies object `name` of `from` (recursively) to the same name in `to`.
void copyObject(hid_t from, const std::string& name, hid_t to);

// Whether `path` is a regular file that starts like an HDF5 file SparseLab could have written:
// a seal, or the HDF5 signature ("\x89HDF\r\n\x1a\n") at offset 0. Does not use the library.
bool hasHdf5Signature(const std::string& path);

} // namespace sparselab::store::h5

namespace sparselab::solve { struct LayerRecord; }

namespace sparselab::store::detail {
// The per-layer table ("layers" group of columns) shared by runs and resume checkpoints.
// readLayers: with `quantFlagColumnsRequired` false (workspace format 1) the four GPTQ flag
// columns may be absent and read as false; otherwise their absence is a malformed file.
void writeLayers(hid_t parent, const std::vector<solve::LayerRecord>& layers);
std::vector<solve::LayerRecord> readLayers(hid_t parent, bool quantFlagColumnsRequired);
} // namespace sparselab::store::detail

#include "store/hdf5_handles.h"

#include "util/sha256.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <tuple>

#include <sys/stat.h>

namespace sparselab::store::h5 {

namespace {

[[noreturn]] void fail(const std::string& what) { throw Hdf5Failure(what); }

template <typename Handle>
Handle check(hid_t value, const std::string& what)
{
    if (value < 0)
        fail(what);
    return Handle(value);
}

DataType utf8StringType()
{
    auto type = check<DataType>(H5Tcopy(H5T_C_S1), "cannot create a string type");
    H5Tset_size(id(type), H5T_VARIABLE);
    H5Tset_cset(id(type), H5T_CSET_UTF8);
    return type;
}

// Creation properties that keep up to 4096 attributes in the object header ("compact"). With
// the newest file format HDF5 would move an object's attributes to "dense" storage after 8,
// and libhdf5 1.10's H5Ocopy of dense variable-length string attributes jumps through a null
// pointer (Debian 12's 1.10.8) — which a workspace append does for every existing run.
//
// Groups (and the root, through the file-creation list) keep their links compact too: "dense"
// link storage (a fractal heap indexed by a v2 B-tree) is where fuzz_workspace made libhdf5
// 1.10.8 free an invalid pointer (H5G__dense_iterate) on re-sealed mutated bytes. Compact links
// and attributes sit in object headers, which the newest format checksums.
PropList compactAttributeCreation(hid_t propertyClass)
{
    auto list = check<PropList>(H5Pcreate(propertyClass), "cannot create a property list");
    if (H5Pset_attr_phase_change(id(list), 4096, 4096) < 0)
        fail("cannot set the attribute storage");
    if (propertyClass != H5P_DATASET_CREATE && H5Pset_link_phase_change(id(list), 65535, 65535) < 0)
        fail("cannot set the link storage");
    return list;
}

// Strings are written with a fixed length (zero-padded UTF-8), never variable-length: those
// live in HDF5 "global heaps", which carry no checksum even in the newest format, and
// libhdf5 1.10.8 hangs in H5HG_read on a damaged one (found by fuzz_workspace). Fixed-length
// text sits in the checksummed object header (attributes) or in the dataset's own bytes.
// Readers accept both kinds (files written before this are variable-length).
DataType fixedUtf8StringType(size_t length)
{
    auto type = check<DataType>(H5Tcopy(H5T_C_S1), "cannot create a string type");
    if (H5Tset_size(id(type), std::max<size_t>(length, 1)) < 0 || H5Tset_strpad(id(type), H5T_STR_NULLPAD) < 0
        || H5Tset_cset(id(type), H5T_CSET_UTF8) < 0)
        fail("cannot create a string type");
    return type;
}

DataSpace simpleSpace(const std::vector<int64_t>& shape)
{
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    return check<DataSpace>(H5Screate_simple(int(dims.size()), dims.data(), nullptr), "cannot create a dataspace");
}

std::vector<int64_t> resolveShape(std::vector<int64_t> shape, size_t count, const std::string& name)
{
    if (shape.empty())
        return {int64_t(count)};
    int64_t product = 1;
    for (int64_t d : shape) {
        if (d < 0)
            fail("dataset '" + name + "': negative dimension");
        product *= d;
    }
    if (product != int64_t(count))
        fail("dataset '" + name + "': shape does not match its " + std::to_string(count) + " values");
    return shape;
}

template <typename T>
void writeNumeric(hid_t loc, const std::string& name, const std::vector<T>& values, std::vector<int64_t> shape,
                  hid_t fileType, hid_t memType)
{
    shape = resolveShape(std::move(shape), values.size(), name);
    const auto space = simpleSpace(shape);
    const auto create = compactAttributeCreation(H5P_DATASET_CREATE);
    const auto set = check<DataSet>(H5Dcreate2(loc, name.c_str(), fileType, id(space), H5P_DEFAULT, id(create),
                                               H5P_DEFAULT),
                                    "cannot create dataset '" + name + "'");
    if (!values.empty() && H5Dwrite(id(set), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
        fail("cannot write dataset '" + name + "'");
}

DataSet openDataSet(hid_t loc, const std::string& name)
{
    if (!exists(loc, name))
        fail("missing dataset '" + name + "'");
    return check<DataSet>(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), "cannot open dataset '" + name + "'");
}

ValueClass classOf(hid_t type)
{
    switch (H5Tget_class(type)) {
    case H5T_INTEGER: return ValueClass::Integer;
    case H5T_FLOAT: return ValueClass::Float;
    case H5T_STRING: return ValueClass::String;
    default: return ValueClass::Other;
    }
}

int64_t elementCount(hid_t space)
{
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0)
        fail("cannot read a dataspace");
    return int64_t(n);
}

template <typename T>
std::vector<T> readNumeric(hid_t loc, const std::string& name, hid_t memType, ValueClass expected)
{
    const auto set = openDataSet(loc, name);
    const auto type = check<DataType>(H5Dget_type(id(set)), "cannot read the type of '" + name + "'");
    if (classOf(id(type)) != expected)
        fail("dataset '" + name + "' has the wrong type");
    const auto space = check<DataSpace>(H5Dget_space(id(set)), "cannot read the shape of '" + name + "'");
    std::vector<T> values(size_t(elementCount(id(space))));
    if (!values.empty() && H5Dread(id(set), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
        fail("cannot read dataset '" + name + "'");
    return values;
}

// Reads `count` strings of `type` (variable or fixed length) with `read(memType, buffer)`.
std::vector<std::string> readStringValues(hid_t type, size_t count,
                                          const std::function<herr_t(hid_t, void*)>& read, const std::string& what)
{
    if (classOf(type) != ValueClass::String)
        fail(what + " is not a string");
    std::vector<std::string> out;
    out.reserve(count);
    if (count == 0)
        return out;
    if (H5Tis_variable_str(type) > 0) {
        const auto memType = utf8StringType();
        std::vector<char*> pointers(count, nullptr);
        if (read(id(memType), pointers.data()) < 0)
            fail("cannot read " + what);
        for (char* p : pointers)
            out.emplace_back(p ? p : "");
        const auto space = simpleSpace({int64_t(count)});
        H5Dvlen_reclaim(id(memType), id(space), H5P_DEFAULT, pointers.data());
    } else {
        const size_t width = H5Tget_size(type);
        if (width == 0)
            fail("cannot read " + what);
        auto memType = check<DataType>(H5Tcopy(H5T_C_S1), "cannot create a string type");
        H5Tset_size(id(memType), width);
        H5Tset_strpad(id(memType), H5T_STR_NULLPAD);
        H5Tset_cset(id(memType), H5Tget_cset(type)); // HDF5 does not convert between character sets
        std::vector<char> buffer(width * count, '\0');
        if (read(id(memType), buffer.data()) < 0)
            fail("cannot read " + what);
        for (size_t i = 0; i < count; ++i) {
            const char* start = buffer.data() + i * width;
            out.emplace_back(start, strnlen(start, width));
        }
    }
    return out;
}

Attribute openAttribute(hid_t obj, const std::string& name)
{
    if (!hasAttribute(obj, name))
        fail("missing attribute '" + name + "'");
    return check<Attribute>(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "cannot open attribute '" + name + "'");
}

void writeScalarAttribute(hid_t obj, const std::string& name, hid_t fileType, hid_t memType, const void* value)
{
    if (hasAttribute(obj, name) && H5Adelete(obj, name.c_str()) < 0)
        fail("cannot replace attribute '" + name + "'");
    const auto space = check<DataSpace>(H5Screate(H5S_SCALAR), "cannot create a dataspace");
    const auto attr = check<Attribute>(H5Acreate2(obj, name.c_str(), fileType, id(space), H5P_DEFAULT, H5P_DEFAULT),
                                       "cannot create attribute '" + name + "'");
    if (H5Awrite(id(attr), memType, value) < 0)
        fail("cannot write attribute '" + name + "'");
}

} // namespace

std::unique_lock<std::recursive_mutex> hdf5Lock()
{
    static std::recursive_mutex mutex;
    std::unique_lock<std::recursive_mutex> lock(mutex);
    static const bool silenced = [] {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        return true;
    }();
    (void)silenced;
    return lock;
}

namespace {

constexpr char kHdf5Signature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};

// What a seal records of a file: the SHA-256 of every byte after the seal block, and how many.
std::string sealOf(const std::string& path)
{
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec || size < kSealSize)
        fail("cannot read the file");
    std::string text = std::string(kSealMagic) + sha256File(path, nullptr, kSealSize) + "\n"
                       + std::to_string(size - kSealSize) + "\n";
    text.resize(kSealSize, '\0');
    return text;
}

// The first bytes of `path`: the seal block and, after it, where HDF5's signature would be.
std::string readHead(const std::string& path)
{
    std::string head(kSealSize + sizeof kHdf5Signature, '\0');
    std::ifstream in(path, std::ios::binary);
    in.read(head.data(), std::streamsize(head.size()));
    head.resize(size_t(std::max<std::streamsize>(in.gcount(), 0)));
    return head;
}

bool hasSignatureAt(const std::string& head, size_t offset)
{
    return head.size() >= offset + sizeof kHdf5Signature
        && std::memcmp(head.data() + offset, kHdf5Signature, sizeof kHdf5Signature) == 0;
}

bool startsWithSeal(const std::string& head) { return std::string_view(head).starts_with(kSealMagic); }

// Files whose seal this process has verified, by identity: a resume reads each checkpoint up
// to three times (counting, reports, weights) and the workbench checks a workspace before it
// loads it, and hashing gigabytes once is enough (~190 MB/s here). SparseLab replaces files by
// renaming (a new inode), and size and nanosecond mtime are in the key: an edited file is
// verified again. Guarded by hdf5Lock(), which every caller of openFileReadOnly holds.
using FileIdentity = std::tuple<dev_t, ino_t, off_t, int64_t, int64_t>;
std::set<FileIdentity>& verifiedSeals()
{
    static std::set<FileIdentity> verified;
    return verified;
}

std::optional<FileIdentity> identityOf(const std::string& path)
{
    struct stat info{};
    if (::stat(path.c_str(), &info) != 0)
        return std::nullopt;
    return FileIdentity{info.st_dev, info.st_ino, info.st_size, int64_t(info.st_mtim.tv_sec),
                        int64_t(info.st_mtim.tv_nsec)};
}

// Throws unless the seal in the first kSealSize bytes matches the rest of the file. Legacy
// files (HDF5 signature at offset 0, no seal) pass unchecked.
void verifySeal(const std::string& path)
{
    const std::string head = readHead(path);
    if (hasSignatureAt(head, 0))
        return; // written before seals existed: only libhdf5's own checks apply
    if (!startsWithSeal(head)) {
        if (hasSignatureAt(head, kSealSize))
            fail("corrupt: its checksum block is damaged");
        return; // not ours: libhdf5 decides (and says "not an HDF5 file")
    }
    if (head.size() < kSealSize)
        fail("corrupt: truncated inside its checksum block");
    const auto identity = identityOf(path);
    if (identity && verifiedSeals().count(*identity))
        return;
    const std::string recorded = head.substr(0, kSealSize);
    const std::string actual = sealOf(path);
    if (actual != recorded) {
        const size_t hexAt = kSealMagic.size();
        if (actual.compare(hexAt, 64, recorded, hexAt, 64) != 0)
            fail("corrupt: its checksum does not match (the file was damaged, truncated or changed after "
                 "SparseLab wrote it)");
        fail("corrupt: its checksum block is damaged");
    }
    if (identity)
        verifiedSeals().insert(*identity);
}

} // namespace

void sealFile(const std::string& path)
{
    const std::string text = sealOf(path);
    std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
    if (!out || !out.write(text.data(), std::streamsize(text.size())) || !out.flush())
        fail("cannot write the checksum block");
}

void writeSealedFile(const std::string& path, const std::function<void(hid_t file)>& body)
{
    {
        const auto create = compactAttributeCreation(H5P_FILE_CREATE); // the root group's attributes too
        if (H5Pset_userblock(id(create), kSealSize) < 0)
            fail("cannot reserve the checksum block");
        const auto access = check<PropList>(H5Pcreate(H5P_FILE_ACCESS), "cannot create a property list");
        // The newest format: checksummed superblock, object headers, B-trees and heaps.
        if (H5Pset_libver_bounds(id(access), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0)
            fail("cannot select the HDF5 file format");
        // Strong close: H5Fclose below closes every object still open, so the bytes are final.
        if (H5Pset_fclose_degree(id(access), H5F_CLOSE_STRONG) < 0)
            fail("cannot set the close mode");
        auto file = check<File>(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, id(create), id(access)),
                                "cannot create the file");
        body(id(file));
        if (H5Fflush(id(file), H5F_SCOPE_GLOBAL) < 0)
            fail("cannot write (disk full?)");
        const hid_t raw = file.release().id;
        if (H5Fclose(raw) < 0)
            fail("cannot close the file (disk full?)");
    }
    sealFile(path);
}

File openFileReadOnly(const std::string& path)
{
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
        fail("not a regular file"); // libhdf5 would block on a FIFO's open
    verifySeal(path);
    const htri_t isHdf5 = H5Fis_hdf5(path.c_str());
    if (isHdf5 == 0)
        fail("not an HDF5 file");
    if (isHdf5 < 0)
        fail("cannot be read as HDF5 (truncated or corrupt)");
    return check<File>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT),
                       "cannot be opened as HDF5 (truncated or corrupt)");
}

bool exists(hid_t loc, const std::string& path)
{
    if (path == ".")
        return true;
    // H5Lexists needs every intermediate component to exist: check them one by one.
    std::string prefix;
    size_t start = 0;
    while (start <= path.size()) {
        const size_t slash = path.find('/', start);
        const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (part.empty())
            return false;
        prefix += (prefix.empty() ? "" : "/") + part;
        if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0)
            return false;
        if (H5Oexists_by_name(loc, prefix.c_str(), H5P_DEFAULT) <= 0)
            return false;
        if (slash == std::string::npos)
            break;
        start = slash + 1;
    }
    return true;
}

Group openGroup(hid_t loc, const std::string& path)
{
    if (!exists(loc, path))
        fail("missing group '" + path + "'");
    return check<Group>(H5Gopen2(loc, path.c_str(), H5P_DEFAULT), "'" + path + "' is not a group");
}

Group createGroup(hid_t loc, const std::string& path)
{
    if (exists(loc, path))
        return openGroup(loc, path);
    // Component by component, so that intermediate groups get the same creation properties.
    const auto create = compactAttributeCreation(H5P_GROUP_CREATE);
    size_t slash = path.find('/');
    for (;;) {
        const std::string prefix = path.substr(0, slash);
        if (!exists(loc, prefix)) {
            auto group = check<Group>(H5Gcreate2(loc, prefix.c_str(), H5P_DEFAULT, id(create), H5P_DEFAULT),
                                      "cannot create group '" + prefix + "'");
            if (slash == std::string::npos)
                return group;
        }
        if (slash == std::string::npos)
            return openGroup(loc, path);
        slash = path.find('/', slash + 1);
    }
}

std::vector<Child> children(hid_t group)
{
    std::vector<std::string> names;
    const auto collect = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
    };
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names) < 0)
        fail("cannot list a group");
    std::vector<Child> out;
    for (const auto& name : names) {
        const auto object = Object(H5Oopen(group, name.c_str(), H5P_DEFAULT));
        ChildKind kind = ChildKind::Other;
        if (object) {
            const H5I_type_t type = H5Iget_type(id(object));
            kind = type == H5I_GROUP ? ChildKind::Group : type == H5I_DATASET ? ChildKind::Dataset : ChildKind::Other;
        }
        out.push_back({name, kind});
    }
    return out;
}

bool hasAttribute(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

void writeAttribute(hid_t obj, const std::string& name, const std::string& value)
{
    const auto type = fixedUtf8StringType(value.size());
    writeScalarAttribute(obj, name, id(type), id(type), value.data());
}

void writeAttribute(hid_t obj, const std::string& name, const char* value)
{
    writeAttribute(obj, name, std::string(value));
}

void writeAttribute(hid_t obj, const std::string& name, int64_t value)
{
    writeScalarAttribute(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void writeAttribute(hid_t obj, const std::string& name, double value)
{
    writeScalarAttribute(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

ValueClass attributeClass(hid_t obj, const std::string& name)
{
    const auto attr = openAttribute(obj, name);
    const auto type = check<DataType>(H5Aget_type(id(attr)), "cannot read attribute '" + name + "'");
    return classOf(id(type));
}

std::string readStringAttribute(hid_t obj, const std::string& name)
{
    const auto attr = openAttribute(obj, name);
    const auto type = check<DataType>(H5Aget_type(id(attr)), "cannot read attribute '" + name + "'");
    const auto space = check<DataSpace>(H5Aget_space(id(attr)), "cannot read attribute '" + name + "'");
    if (elementCount(id(space)) != 1)
        fail("attribute '" + name + "' is not a single string");
    auto values = readStringValues(
        id(type), 1, [&](hid_t memType, void* buffer) { return H5Aread(id(attr), memType, buffer); },
        "attribute '" + name + "'");
    return values.front();
}

int64_t readIntAttribute(hid_t obj, const std::string& name)
{
    const auto attr = openAttribute(obj, name);
    const auto type = check<DataType>(H5Aget_type(id(attr)), "cannot read attribute '" + name + "'");
    const auto space = check<DataSpace>(H5Aget_space(id(attr)), "cannot read attribute '" + name + "'");
    if (classOf(id(type)) != ValueClass::Integer || elementCount(id(space)) != 1)
        fail("attribute '" + name + "' is not an integer");
    int64_t value = 0;
    if (H5Aread(id(attr), H5T_NATIVE_INT64, &value) < 0)
        fail("cannot read attribute '" + name + "'");
    return value;
}

double readDoubleAttribute(hid_t obj, const std::string& name)
{
    const auto attr = openAttribute(obj, name);
    const auto type = check<DataType>(H5Aget_type(id(attr)), "cannot read attribute '" + name + "'");
    const auto space = check<DataSpace>(H5Aget_space(id(attr)), "cannot read attribute '" + name + "'");
    const ValueClass cls = classOf(id(type));
    if ((cls != ValueClass::Float && cls != ValueClass::Integer) || elementCount(id(space)) != 1)
        fail("attribute '" + name + "' is not a number");
    double value = 0;
    if (H5Aread(id(attr), H5T_NATIVE_DOUBLE, &value) < 0)
        fail("cannot read attribute '" + name + "'");
    return value;
}

std::vector<std::string> attributeNames(hid_t obj)
{
    std::vector<std::string> names;
    const auto collect = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
    };
    hsize_t index = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &index, collect, &names) < 0)
        fail("cannot list attributes");
    return names;
}

void writeDoubles(hid_t loc, const std::string& name, const std::vector<double>& values, std::vector<int64_t> shape)
{
    writeNumeric(loc, name, values, std::move(shape), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
}

void writeFloats(hid_t loc, const std::string& name, const std::vector<float>& values, std::vector<int64_t> shape)
{
    writeNumeric(loc, name, values, std::move(shape), H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}

void writeInts(hid_t loc, const std::string& name, const std::vector<int64_t>& values, std::vector<int64_t> shape)
{
    writeNumeric(loc, name, values, std::move(shape), H5T_STD_I64LE, H5T_NATIVE_INT64);
}

void writeBytes(hid_t loc, const std::string& name, const std::vector<uint8_t>& values, std::vector<int64_t> shape)
{
    writeNumeric(loc, name, values, std::move(shape), H5T_STD_U8LE, H5T_NATIVE_UINT8);
}

void writeStrings(hid_t loc, const std::string& name, const std::vector<std::string>& values,
                  std::vector<int64_t> shape)
{
    shape = resolveShape(std::move(shape), values.size(), name);
    size_t width = 1;
    for (const auto& v : values)
        width = std::max(width, v.size());
    const auto type = fixedUtf8StringType(width);
    const auto space = simpleSpace(shape);
    const auto create = compactAttributeCreation(H5P_DATASET_CREATE);
    const auto set = check<DataSet>(H5Dcreate2(loc, name.c_str(), id(type), id(space), H5P_DEFAULT, id(create),
                                               H5P_DEFAULT),
                                    "cannot create dataset '" + name + "'");
    std::vector<char> buffer(width * values.size(), '\0');
    for (size_t i = 0; i < values.size(); ++i)
        std::memcpy(buffer.data() + i * width, values[i].data(), values[i].size());
    if (!values.empty() && H5Dwrite(id(set), id(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0)
        fail("cannot write dataset '" + name + "'");
}

std::vector<int64_t> datasetShape(hid_t loc, const std::string& name)
{
    const auto set = openDataSet(loc, name);
    const auto space = check<DataSpace>(H5Dget_space(id(set)), "cannot read the shape of '" + name + "'");
    const int rank = H5Sget_simple_extent_ndims(id(space));
    if (rank < 0)
        fail("cannot read the shape of '" + name + "'");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(id(space), dims.data(), nullptr);
    return {dims.begin(), dims.end()};
}

ValueClass datasetClass(hid_t loc, const std::string& name, size_t* elementSize)
{
    const auto set = openDataSet(loc, name);
    const auto type = check<DataType>(H5Dget_type(id(set)), "cannot read the type of '" + name + "'");
    if (elementSize)
        *elementSize = H5Tget_size(id(type));
    return classOf(id(type));
}

std::vector<double> readDoubles(hid_t loc, const std::string& name)
{
    return readNumeric<double>(loc, name, H5T_NATIVE_DOUBLE, ValueClass::Float);
}

std::vector<float> readFloats(hid_t loc, const std::string& name)
{
    return readNumeric<float>(loc, name, H5T_NATIVE_FLOAT, ValueClass::Float);
}

std::vector<int64_t> readInts(hid_t loc, const std::string& name)
{
    return readNumeric<int64_t>(loc, name, H5T_NATIVE_INT64, ValueClass::Integer);
}

std::vector<uint8_t> readBytes(hid_t loc, const std::string& name)
{
    return readNumeric<uint8_t>(loc, name, H5T_NATIVE_UINT8, ValueClass::Integer);
}

std::vector<std::string> readStrings(hid_t loc, const std::string& name)
{
    const auto set = openDataSet(loc, name);
    const auto type = check<DataType>(H5Dget_type(id(set)), "cannot read the type of '" + name + "'");
    const auto space = check<DataSpace>(H5Dget_space(id(set)), "cannot read the shape of '" + name + "'");
    return readStringValues(
        id(type), size_t(elementCount(id(space))),
        [&](hid_t memType, void* buffer) { return H5Dread(id(set), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer); },
        "dataset '" + name + "'");
}

void copyObject(hid_t from, const std::string& name, hid_t to)
{
    if (H5Ocopy(from, name.c_str(), to, name.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0)
        fail("cannot copy '" + name + "'");
}

bool hasHdf5Signature(const std::string& path)
{
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) // never open a FIFO or a device
        return false;
    const std::string head = readHead(path);
    return startsWithSeal(head) || hasSignatureAt(head, 0);
}

} // namespace sparselab::store::h5

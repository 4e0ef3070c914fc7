#include "store/resume.h"

#include "store/hdf5_handles.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <cstdio>

namespace sparselab::store {

namespace fs = std::filesystem;
using h5::id;

namespace {
constexpr const char* kResumeFormat = "sparselab-resume";
constexpr int64_t kResumeVersion = 1;
} // namespace

ResumeStore::ResumeStore(const fs::path& workspace, std::string key)
    : m_folder(checkpointFolder(workspace)), m_key(std::move(key))
{
}

ResumeStore::ResumeStore(InFolder, fs::path folder, std::string key) : m_folder(std::move(folder)), m_key(std::move(key)) {}

ResumeStore ResumeStore::inFolder(const fs::path& folder, std::string key)
{
    return ResumeStore(InFolder{}, folder, std::move(key));
}

fs::path ResumeStore::checkpointFolder(const fs::path& workspace) { return fs::path(workspace.string() + ".resume"); }

fs::path ResumeStore::blockFile(int64_t block) const
{
    char name[32];
    std::snprintf(name, sizeof name, "block_%05lld.h5", (long long)block);
    return m_folder / name;
}

bool ResumeStore::hasCheckpoints() const
{
    std::error_code ec;
    if (!fs::is_directory(m_folder, ec))
        return false;
    for (const auto& entry : fs::directory_iterator(m_folder, ec))
        if (entry.path().extension() == ".h5")
            return true;
    return false;
}

int64_t ResumeStore::finishedBlocks() const
{
    const auto lock = h5::hdf5Lock();
    int64_t k = 0;
    for (;; ++k) {
        const fs::path file = blockFile(k);
        std::error_code ec;
        if (!fs::exists(file, ec))
            break;
        try {
            const auto handle = h5::openFileReadOnly(file.string());
            const auto root = h5::openGroup(id(handle), ".");
            if (h5::readStringAttribute(id(root), "format") != kResumeFormat
                || h5::readIntAttribute(id(root), "format_version") != kResumeVersion
                || h5::readStringAttribute(id(root), "key") != m_key
                || h5::readIntAttribute(id(root), "block") != k)
                break;
        } catch (const h5::Hdf5Failure&) {
            break;
        }
    }
    return k;
}

void ResumeStore::saveBlock(const BlockCheckpoint& checkpoint) const
{
    const fs::path file = blockFile(checkpoint.block);
    std::error_code ec;
    fs::create_directories(m_folder, ec);
    if (ec)
        throw inputError(m_folder, "cannot create the resume folder: " + ec.message());
    const auto lock = h5::hdf5Lock();
    try {
        writeFileAtomically(file, [&](const fs::path& temp) {
            h5::writeSealedFile(temp.string(), [&](hid_t out) {
                const auto root = h5::openGroup(out, ".");
                h5::writeAttribute(id(root), "format", kResumeFormat);
                h5::writeAttribute(id(root), "format_version", kResumeVersion);
                h5::writeAttribute(id(root), "key", m_key);
                h5::writeAttribute(id(root), "block", checkpoint.block);
                detail::writeLayers(out, checkpoint.layers);
                const auto weights = h5::createGroup(out, "weights");
                for (const auto& w : checkpoint.weights)
                    h5::writeFloats(id(weights), w.name, w.values, {w.rows, w.cols});
            });
        });
    } catch (const h5::Hdf5Failure& e) {
        throw inputError(file, e.what());
    }
}

BlockCheckpoint ResumeStore::loadBlock(int64_t block) const
{
    const fs::path file = blockFile(block);
    const auto lock = h5::hdf5Lock();
    try {
        std::error_code ec;
        if (!fs::exists(file, ec))
            throw h5::Hdf5Failure("file not found");
        const auto handle = h5::openFileReadOnly(file.string());
        const auto root = h5::openGroup(id(handle), ".");
        if (!h5::hasAttribute(id(root), "format") || h5::readStringAttribute(id(root), "format") != kResumeFormat)
            throw h5::Hdf5Failure("not a SparseLab resume checkpoint");
        if (h5::readStringAttribute(id(root), "key") != m_key)
            throw h5::Hdf5Failure("checkpoint of different settings");
        BlockCheckpoint checkpoint;
        checkpoint.block = h5::readIntAttribute(id(root), "block");
        if (checkpoint.block != block)
            throw h5::Hdf5Failure("holds block " + std::to_string(checkpoint.block) + ", expected "
                                  + std::to_string(block));
        // Checkpoints are only resumed by the version that wrote them (the key says so).
        checkpoint.layers = detail::readLayers(id(handle), /*quantFlagColumnsRequired=*/true);
        const auto weights = h5::openGroup(id(handle), "weights");
        for (const auto& child : h5::children(id(weights))) {
            if (child.kind != h5::ChildKind::Dataset)
                continue;
            BlockCheckpoint::Weight w;
            w.name = child.name;
            const auto shape = h5::datasetShape(id(weights), child.name);
            if (shape.size() != 2)
                throw h5::Hdf5Failure("weights/" + child.name + " is not a matrix");
            w.rows = shape[0];
            w.cols = shape[1];
            w.values = h5::readFloats(id(weights), child.name);
            checkpoint.weights.push_back(std::move(w));
        }
        return checkpoint;
    } catch (const h5::Hdf5Failure& e) {
        throw inputError(file, e.what());
    }
}

void ResumeStore::clear() const
{
    std::error_code ec;
    fs::remove_all(m_folder, ec);
}

std::string resumeKey(const std::string& canonicalSettings) { return sha256Hex(canonicalSettings); }

} // namespace sparselab::store

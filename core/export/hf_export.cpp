#include "export/hf_export.h"

#include "io/checkpoint.h"
#include "model/causal_lm.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <torch/types.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>

namespace sparselab::exporting {

namespace fs = std::filesystem;

namespace {

torch::ScalarType scalarTypeOf(io::DType dtype)
{
    switch (dtype) {
    case io::DType::F32: return torch::kFloat32;
    case io::DType::F16: return torch::kFloat16;
    case io::DType::BF16: return torch::kBFloat16;
    default: break;
    }
    throw std::invalid_argument("linear weights must be floating point");
}

// A one-dimensional parameter (a norm or a bias) whose value in the model differs from the
// source file — recovery trained it — converted to the stored dtype; nullopt when unchanged
// (then the source bytes are copied as they are). Two-dimensional tensors other than the
// linears are never changed by SparseLab.
std::optional<torch::Tensor> changedVector(const model::CausalLM& model, const io::TensorInfo& info,
                                           const io::TensorView& view)
{
    if (info.shape.size() != 1)
        return std::nullopt;
    const auto it = model.parameters().find(info.name);
    if (it == model.parameters().end() || it->second.is_meta()
        || (info.dtype != io::DType::F32 && info.dtype != io::DType::F16 && info.dtype != io::DType::BF16))
        return std::nullopt;
    torch::Tensor current = it->second.detach().to(torch::kCPU).to(scalarTypeOf(info.dtype)).contiguous();
    if (size_t(current.numel()) * size_t(current.element_size()) != view.nbytes)
        return std::nullopt;
    if (std::memcmp(current.data_ptr(), view.data, view.nbytes) == 0)
        return std::nullopt;
    return current;
}

// Removes a partially written folder on scope exit unless released.
class FolderGuard {
public:
    explicit FolderGuard(fs::path path) : m_path(std::move(path)) {}
    ~FolderGuard()
    {
        if (!m_path.empty()) {
            std::error_code ignored;
            fs::remove_all(m_path, ignored);
        }
    }
    void release() { m_path.clear(); }
private:
    fs::path m_path;
};

} // namespace

void checkExportTarget(const fs::path& sourceDir, const fs::path& outDir)
{
    std::error_code ec;
    if (outDir.empty())
        throw InputError("the output folder name is empty");
    if (fs::exists(outDir, ec))
        throw inputError(outDir, "already exists; choose a new output folder (nothing is overwritten)");
    const fs::path source = fs::weakly_canonical(sourceDir, ec);
    const fs::path target = fs::weakly_canonical(outDir, ec);
    const auto rel = target.lexically_relative(source);
    if (target == source || (!rel.empty() && *rel.begin() != ".."))
        throw inputError(outDir, "is inside the input model folder; choose a folder elsewhere");
    if (!target.parent_path().empty() && !fs::is_directory(target.parent_path(), ec))
        throw inputError(outDir, "its parent folder does not exist");
    // Writable, before any work: the export is written under a temporary sibling name first, so
    // make (and remove) one now — a read-only folder or a name too long shows here, not after
    // the whole prune.
    const fs::path probe = temporarySibling(outDir);
    if (!fs::create_directory(probe, ec) || ec)
        throw inputError(outDir, "cannot be written: " + (ec ? ec.message() : std::string("the folder cannot be created")));
    fs::remove(probe, ec);
}

nlohmann::json hashModelFolder(const fs::path& folder, const CancelToken* cancel)
{
    std::map<std::string, std::string> hashes;
    for (const auto& entry : fs::directory_iterator(folder))
        if (entry.is_regular_file())
            hashes[entry.path().filename().string()] = sha256File(entry.path(), cancel);
    return hashes;
}

ExportSummary exportHuggingFaceFolder(const model::CausalLM& model, const fs::path& outDir,
                                      const nlohmann::json& provenance, const ProgressCallback& progress,
                                      const CancelToken* cancel)
{
    torch::NoGradGuard noGrad;
    checkExportTarget(model.folder(), outDir);
    const io::Checkpoint source = io::Checkpoint::open(model.folder());

    // Compressed weights by checkpoint name, on the CPU in [out, in].
    std::map<std::string, const model::LinearLayer*> linears;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b))
            linears.emplace(layer.name, &layer);

    const fs::path temp = temporarySibling(outDir);
    FolderGuard guard(temp);
    fs::create_directories(temp);

    ExportSummary summary;
    summary.folder = outDir;
    ProgressReporter reporter(progress, "export", int64_t(source.files().size()) + 1);
    int64_t step = 0;

    // Errors while writing name the would-be output, not the hidden temporary folder.
    const auto writeStep = [&](const auto& action) {
        try {
            action();
        } catch (const InputError& e) {
            std::string message = e.what();
            const std::string tempText = temp.string(), outText = outDir.string();
            for (size_t at = message.find(tempText); at != std::string::npos; at = message.find(tempText, at))
                message.replace(at, tempText.size(), outText), at += outText.size();
            throw InputError(message + "; nothing was exported");
        }
    };

    std::set<std::string> weightFiles;
    for (const auto& file : source.files()) {
        throwIfCancelled(cancel);
        reporter.report(step++, file.path().filename().string());
        weightFiles.insert(file.path().filename().string());
        std::vector<io::TensorToWrite> tensors;
        std::vector<torch::Tensor> keepAlive;
        for (const auto& info : file.tensors()) {
            const io::TensorView view = file.view(info);
            io::TensorToWrite out{info.name, info.dtype, info.shape, view.data, view.nbytes};
            out.mappedSource = true; // copied byte for byte from the mapped source
            const auto it = linears.find(info.name);
            const auto finished = model.streamed() ? model.finishedWeight(info.name) : std::nullopt;
            if (finished) {
                // Streamed model: the block's result, already in the stored dtype and layout.
                if (finished->dtype != info.dtype || finished->shape != info.shape)
                    throw std::logic_error("export: streamed result of " + info.name + " changed dtype or shape");
                out.data = finished->data;
                out.nbytes = finished->nbytes;
                ++summary.tensorsReplaced;
            } else if (const auto trained = changedVector(model, info, view)) {
                // A norm or bias that recovery trained (--recover-norms): its current values.
                out.mappedSource = false;
                out.data = trained->data_ptr();
                out.nbytes = size_t(trained->numel()) * size_t(trained->element_size());
                keepAlive.push_back(*trained);
                ++summary.tensorsReplaced;
            } else if (it != linears.end() && !it->second->weight.is_meta()) {
                out.mappedSource = false;
                torch::Tensor w = it->second->weight.detach().to(torch::kCPU);
                if (it->second->storedTransposed)
                    w = w.t();
                w = w.to(scalarTypeOf(info.dtype)).contiguous();
                if (std::vector<int64_t>(w.sizes().begin(), w.sizes().end()) != info.shape)
                    throw std::logic_error("export: shape of " + info.name + " changed");
                out.data = w.data_ptr();
                out.nbytes = size_t(w.numel()) * size_t(w.element_size());
                keepAlive.push_back(w);
                ++summary.tensorsReplaced;
            }
            tensors.push_back(out);
        }
        writeStep([&] { io::writeSafetensors(temp / file.path().filename(), tensors, file.metadata()); });
    }

    // Everything else in the folder (config, tokenizer, index …) is copied as is.
    for (const auto& entry : fs::directory_iterator(model.folder())) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file() || weightFiles.count(name) || name == "sparselab.json")
            continue;
        std::error_code copyError;
        fs::copy_file(entry.path(), temp / name, copyError);
        if (copyError)
            throw inputError(outDir / name, "cannot write: " + copyError.message() + "; nothing was exported");
    }
    writeStep([&] { writeFileAtomically(temp / "sparselab.json", provenance.dump(2) + "\n"); });

    for (const auto& entry : fs::directory_iterator(temp)) {
        ++summary.files;
        summary.bytes += int64_t(entry.file_size());
    }
    throwIfCancelled(cancel);
    // fsync of every file and the folder, then the rename: all or nothing after a crash too.
    renameFolderIntoPlace(temp, outDir);
    guard.release();
    reporter.report(step + 1, "done");
    return summary;
}

} // namespace sparselab::exporting

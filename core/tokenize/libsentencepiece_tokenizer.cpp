// tokenizer.model through libsentencepiece itself — the reference implementation, used to
// cross-check the engine's own SentencePiece BPE (sentencepiece_tokenizer.cpp) and selectable
// with SPARSELAB_SENTENCEPIECE=library.
//
// libsentencepiece is reached only through the bridge library libsparselab_spm.so, loaded
// with dlopen(RTLD_LOCAL | RTLD_DEEPBIND): Debian's libsentencepiece embeds its own protobuf,
// which collides with the protobuf LibTorch loads if both are linked into one process
// (crash before main). See spm_bridge/spm_bridge.h.

#include "tokenize/tokenizer.h"

#include "spm_bridge/spm_bridge.h"
#include "util/errors.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <type_traits>

namespace sparselab::tokenize {

namespace fs = std::filesystem;

namespace {

// The bridge's entry points, resolved once per process.
struct Bridge {
    decltype(&sparselab_spm_load) load = nullptr;
    decltype(&sparselab_spm_free) free = nullptr;
    decltype(&sparselab_spm_piece_size) pieceSize = nullptr;
    decltype(&sparselab_spm_bos_id) bosId = nullptr;
    decltype(&sparselab_spm_eos_id) eosId = nullptr;
    decltype(&sparselab_spm_encode) encode = nullptr;
    decltype(&sparselab_spm_decode) decode = nullptr;
    decltype(&sparselab_spm_id_to_piece) idToPiece = nullptr;
    decltype(&sparselab_spm_piece_to_id) pieceToId = nullptr;
    std::string error; // why the bridge is unavailable, when it is
};

std::vector<fs::path> bridgeCandidates()
{
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv("SPARSELAB_SPM_LIBRARY"))
        candidates.emplace_back(env);
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(self.parent_path() / "libsparselab_spm.so");
        candidates.push_back(self.parent_path().parent_path() / "lib" / "sparselab" / "libsparselab_spm.so");
    }
#ifdef SPARSELAB_SPM_INSTALL_PATH
    candidates.emplace_back(SPARSELAB_SPM_INSTALL_PATH);
#endif
#ifdef SPARSELAB_SPM_BUILD_PATH
    candidates.emplace_back(SPARSELAB_SPM_BUILD_PATH);
#endif
    return candidates;
}

const Bridge& bridge()
{
    static const Bridge instance = [] {
        Bridge b;
        void* handle = nullptr;
        std::string tried;
        for (const auto& path : bridgeCandidates()) {
            std::error_code ec;
            if (!fs::exists(path, ec))
                continue;
            handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
            if (handle)
                break;
            tried += std::string(" ") + ::dlerror();
        }
        if (!handle) {
            b.error = "libsentencepiece (through libsparselab_spm.so) is not available in this build" + tried;
            return b;
        }
        // Intentionally never dlclose()d: tokenizers may live until exit.
        const auto resolve = [&](auto& fn, const char* name) {
            void* symbol = ::dlsym(handle, name);
            static_assert(sizeof(symbol) == sizeof(fn));
            std::memcpy(&fn, &symbol, sizeof fn);
            if (!fn && b.error.empty())
                b.error = std::string("libsparselab_spm.so lacks ") + name;
        };
        resolve(b.load, "sparselab_spm_load");
        resolve(b.free, "sparselab_spm_free");
        resolve(b.pieceSize, "sparselab_spm_piece_size");
        resolve(b.bosId, "sparselab_spm_bos_id");
        resolve(b.eosId, "sparselab_spm_eos_id");
        resolve(b.encode, "sparselab_spm_encode");
        resolve(b.decode, "sparselab_spm_decode");
        resolve(b.idToPiece, "sparselab_spm_id_to_piece");
        resolve(b.pieceToId, "sparselab_spm_piece_to_id");
        return b;
    }();
    return instance;
}

void appendText(void* context, const char* text, size_t length)
{
    static_cast<std::string*>(context)->append(text, length);
}

struct EncodeContext {
    std::vector<int32_t> ids;
    std::string error;
};

class LibSentencePieceTokenizer final : public Tokenizer {
public:
    explicit LibSentencePieceTokenizer(const fs::path& file) : m_file(file)
    {
        std::error_code ec;
        if (!fs::is_regular_file(file, ec))
            throw inputError(file, "no such file");
        const Bridge& b = bridge();
        if (!b.error.empty())
            throw inputError(file, b.error);
        std::string error;
        m_spm = b.load(file.c_str(), appendText, &error);
        // Load() reports parse failures as a Status whose text names no file, so wrap it.
        if (!m_spm)
            throw inputError(file, "not a SentencePiece model (" + error + ")");
        m_pieces = b.pieceSize(m_spm);
        if (m_pieces <= 0)
            throw inputError(file, "SentencePiece model has no pieces");
        const int bos = b.bosId(m_spm);
        const int eos = b.eosId(m_spm);
        // Llama convention: SentencePiece models add BOS when they define one.
        setBos(bos >= 0 ? std::optional<int32_t>(bos) : std::nullopt, bos >= 0);
        setEos(eos >= 0 ? std::optional<int32_t>(eos) : std::nullopt);
    }

    ~LibSentencePieceTokenizer() override
    {
        if (m_spm)
            bridge().free(m_spm);
    }

    LibSentencePieceTokenizer(const LibSentencePieceTokenizer&) = delete;
    LibSentencePieceTokenizer& operator=(const LibSentencePieceTokenizer&) = delete;

    std::vector<int32_t> encode(std::string_view text) const override
    {
        EncodeContext context;
        const auto sink = [](void* c, const int* ids, size_t count) {
            static_cast<EncodeContext*>(c)->ids.assign(ids, ids + count);
        };
        const auto error = [](void* c, const char* t, size_t n) { static_cast<EncodeContext*>(c)->error.append(t, n); };
        if (bridge().encode(m_spm, text.data(), text.size(), sink, error, &context) != 0)
            throw std::runtime_error("SentencePiece encode failed: " + context.error);
        return std::move(context.ids);
    }

    std::string decode(std::span<const int32_t> ids) const override
    {
        std::vector<int> pieces;
        pieces.reserve(ids.size());
        for (int32_t id : ids) {
            checkId(id);
            pieces.push_back(id);
        }
        std::string text;
        std::string error;
        struct Both {
            std::string* text;
            std::string* error;
        } both{&text, &error};
        const auto onText = [](void* c, const char* t, size_t n) { static_cast<Both*>(c)->text->append(t, n); };
        const auto onError = [](void* c, const char* t, size_t n) { static_cast<Both*>(c)->error->append(t, n); };
        if (bridge().decode(m_spm, pieces.data(), pieces.size(), onText, onError, &both) != 0)
            throw std::runtime_error("SentencePiece decode failed: " + error);
        return text;
    }

    std::string tokenText(int32_t id) const override
    {
        checkId(id);
        std::string piece;
        bridge().idToPiece(m_spm, id, appendText, &piece);
        return piece;
    }

    std::optional<int32_t> tokenId(std::string_view token) const override
    {
        // PieceToId answers unk_id for unknown pieces; tell them apart by the round trip.
        const int id = bridge().pieceToId(m_spm, token.data(), token.size());
        if (id < 0 || id >= m_pieces || tokenText(id) != token)
            return std::nullopt;
        return id;
    }

    int32_t vocabSize() const override { return m_pieces; }

    std::string description() const override
    {
        return "SentencePiece via libsentencepiece (" + m_file.filename().string() + ", " + std::to_string(m_pieces)
               + " pieces)";
    }

private:
    void checkId(int32_t id) const
    {
        if (id < 0 || id >= m_pieces)
            throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of "
                                    + std::to_string(m_pieces));
    }

    fs::path m_file;
    SparselabSpm* m_spm = nullptr;
    int32_t m_pieces = 0;
};

} // namespace

std::unique_ptr<Tokenizer> loadSentencePieceModelWithLibrary(const fs::path& modelFile)
{
    return std::make_unique<LibSentencePieceTokenizer>(modelFile);
}

bool libSentencePieceAvailable()
{
    return bridge().error.empty();
}

} // namespace sparselab::tokenize

// The SentencePiece bridge (see spm_bridge.h for why it exists).

#include "spm_bridge.h"

#include <sentencepiece_processor.h>

#include <string>
#include <string_view>
#include <vector>

struct SparselabSpm {
    sentencepiece::SentencePieceProcessor processor;
};

namespace {
void report(SparselabSpmTextSink sink, void* context, const std::string& text)
{
    if (sink)
        sink(context, text.data(), text.size());
}
} // namespace

extern "C" {

SparselabSpm* sparselab_spm_load(const char* path, SparselabSpmTextSink error, void* context)
{
    auto* spm = new SparselabSpm;
    const auto status = spm->processor.Load(path);
    if (!status.ok()) {
        report(error, context, status.ToString());
        delete spm;
        return nullptr;
    }
    return spm;
}

void sparselab_spm_free(SparselabSpm* spm) { delete spm; }

int sparselab_spm_piece_size(const SparselabSpm* spm) { return spm->processor.GetPieceSize(); }
int sparselab_spm_bos_id(const SparselabSpm* spm) { return spm->processor.bos_id(); }
int sparselab_spm_eos_id(const SparselabSpm* spm) { return spm->processor.eos_id(); }

int sparselab_spm_encode(const SparselabSpm* spm, const char* text, size_t length, SparselabSpmIdSink ids,
                         SparselabSpmTextSink error, void* context)
{
    std::vector<int> out;
    const auto status = spm->processor.Encode(std::string_view(text, length), &out);
    if (!status.ok()) {
        report(error, context, status.ToString());
        return 1;
    }
    ids(context, out.data(), out.size());
    return 0;
}

int sparselab_spm_decode(const SparselabSpm* spm, const int* ids, size_t count, SparselabSpmTextSink text,
                         SparselabSpmTextSink error, void* context)
{
    std::string out;
    const auto status = spm->processor.Decode(std::vector<int>(ids, ids + count), &out);
    if (!status.ok()) {
        report(error, context, status.ToString());
        return 1;
    }
    text(context, out.data(), out.size());
    return 0;
}

void sparselab_spm_id_to_piece(const SparselabSpm* spm, int id, SparselabSpmTextSink text, void* context)
{
    const std::string piece = spm->processor.IdToPiece(id);
    text(context, piece.data(), piece.size());
}

int sparselab_spm_piece_to_id(const SparselabSpm* spm, const char* piece, size_t length)
{
    return spm->processor.PieceToId(std::string_view(piece, length));
}

} // extern "C"

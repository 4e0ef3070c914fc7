#pragma once
// C interface of the SentencePiece bridge, a small shared library (libsparselab_spm.so) that
// is the only code linking libsentencepiece.
//
// Why: Debian's libsentencepiece carries its own copy of protobuf (3.14) and exports its
// symbols, while LibTorch loads the system protobuf (3.21). Linked into one process the two
// collide during static initialisation and the program crashes before main. The engine
// therefore dlopen()s this bridge with RTLD_LOCAL | RTLD_DEEPBIND, so SentencePiece binds to
// its own protobuf and nothing leaks into the global namespace. Only plain C types cross.
//
// Results are handed to caller-provided sinks (no ownership crosses the boundary).
// All functions are thread-safe for a loaded handle (SentencePieceProcessor is const-safe).

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SparselabSpm SparselabSpm;
typedef void (*SparselabSpmIdSink)(void* context, const int* ids, size_t count);
typedef void (*SparselabSpmTextSink)(void* context, const char* text, size_t length);

// Returns NULL on failure and passes the reason to `error`.
SparselabSpm* sparselab_spm_load(const char* path, SparselabSpmTextSink error, void* context);
void sparselab_spm_free(SparselabSpm* spm);
int sparselab_spm_piece_size(const SparselabSpm* spm);
int sparselab_spm_bos_id(const SparselabSpm* spm);
int sparselab_spm_eos_id(const SparselabSpm* spm);
// 0 on success; on failure the reason goes to `error`.
int sparselab_spm_encode(const SparselabSpm* spm, const char* text, size_t length, SparselabSpmIdSink ids,
                         SparselabSpmTextSink error, void* context);
int sparselab_spm_decode(const SparselabSpm* spm, const int* ids, size_t count, SparselabSpmTextSink text,
                         SparselabSpmTextSink error, void* context);
void sparselab_spm_id_to_piece(const SparselabSpm* spm, int id, SparselabSpmTextSink text, void* context);
int sparselab_spm_piece_to_id(const SparselabSpm* spm, const char* piece, size_t length);

#ifdef __cplusplus
}
#endif

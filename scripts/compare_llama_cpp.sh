#!/usr/bin/env bash
# SparseLab's GGUF export checked against llama.cpp itself (issue 5, "must show").
#
#   scripts/compare_llama_cpp.sh LLAMA_CPP_SOURCE [LLAMA_CPP_BUILD] [WORK_DIR]
#
# LLAMA_CPP_SOURCE: a llama.cpp checkout (for convert_hf_to_gguf.py and gguf-py);
# LLAMA_CPP_BUILD: its CPU build with the targets llama-perplexity and llama-quantize
# (default SOURCE/build), e.g.
#   cmake -S SRC -B SRC/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
#         -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF
#   nice cmake --build SRC/build -j2 --target llama-perplexity llama-quantize
# Needs Debian's python3-numpy, python3-torch, python3-sentencepiece and python3-tqdm
# (convert_hf_to_gguf.py, run unmodified through scripts/llama_cpp_convert_shim.py;
# the model's safetensors is re-saved as pytorch_model.bin because Debian has no
# python3-safetensors), the shared data (SPARSELAB_SHARED_DATA_DIR, default ../shared/data
# next to the repository) and a built sparselab-cli (SPARSELAB_CLI,
# default build/app/sparselab-cli).
#
# It prints and writes WORK_DIR/results.txt:
#  (a) stories260K-hf at F32: llama-perplexity of SparseLab's export and of llama.cpp's own
#      conversion (they must be equal);
#  (b) TinyStories-656K: llama-perplexity of SparseLab's F32 export, of `llama-quantize --pure
#      ... Q4_0` of that F32 file (round to nearest for every matrix), and of SparseLab's GPTQ
#      4-bit symmetric groups of 32 with fp16 scales (calibrated on tinystories_calib.txt,
#      128 × 256 tokens, seed 0) exported as Q4_0: the linear layers losslessly from their
#      grids, the embedding/output matrix by the same round to nearest as llama-quantize, so
#      the solver is the only difference. Also with act-order + static groups, and with
#      --signed-scale (the group scaled by its largest-magnitude value, Q4_0's own grid).
# PARTS=a / PARTS=b runs one part only (default both).
# CHUNKS=N limits llama-perplexity to the first N windows (same windows for every file).
# Eval text: tinystories_eval.txt with the 543 characters TinyStories-656K's vocabulary cannot
# encode removed (its BPE has no byte tokens and llama.cpp aborts on them); -c 256.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
src="${1:?usage: $0 LLAMA_CPP_SOURCE [LLAMA_CPP_BUILD] [WORK_DIR]}"
build="${2:-$src/build}"
work="${3:-$(mktemp -d -t sparselab-vs-llama.XXXXXX)}"
cli="${SPARSELAB_CLI:-$here/build/app/sparselab-cli}"
shared="${SPARSELAB_SHARED_DATA_DIR:-$here/../shared/data}"
[ -d "$shared" ] || { echo "compare_llama_cpp: no shared data at $shared (set SPARSELAB_SHARED_DATA_DIR)" >&2; exit 2; }
py=/usr/bin/python3
ppl_bin="$build/bin/llama-perplexity"
quant_bin="$build/bin/llama-quantize"
for f in "$cli" "$ppl_bin" "$quant_bin" "$src/convert_hf_to_gguf.py"; do
    [ -e "$f" ] || { echo "error: $f not found" >&2; exit 2; }
done
mkdir -p "$work"
m260="$shared/models/stories260K-hf"
m656="$shared/models/tinystories-656k-hf"
calib="$shared/text/tinystories/tinystories_calib.txt"
[ -f "$calib" ] || calib="$shared/tokenizers/tinystories_calib.txt"
eval_text="$work/eval_clean.txt"
chunks="${CHUNKS:-100000}" # CHUNKS=N: only the first N windows (a loaded machine); default all

# The eval text without the characters the 656K vocabulary cannot encode.
"$py" - "$m656/tokenizer.json" "$shared/text/tinystories/tinystories_eval.txt" "$eval_text" <<'EOF'
import json, sys
vocab = json.load(open(sys.argv[1]))["model"]["vocab"]
single = {k for k in vocab if len(k) == 1}
text = open(sys.argv[2], encoding="utf-8").read()
keep = [c for c in text if (c == " " and "▁" in single) or c in single]
open(sys.argv[3], "w", encoding="utf-8").write("".join(keep))
print(f"eval text: {len(text)} characters, {len(text) - len(keep)} removed", file=sys.stderr)
EOF

ppl() { # model.gguf → final perplexity (over the first $chunks windows of 256 tokens)
    "$ppl_bin" -m "$1" -f "$eval_text" -c 256 --chunks "$chunks" -t "${THREADS:-2}" > "$work/$(basename "$1" .gguf).ppl.log" 2>&1
    grep -o 'Final estimate: PPL = [0-9.]*' "$work/$(basename "$1" .gguf).ppl.log" | awk '{print $5}'
}

if [[ "${PARTS:-ab}" == *a* ]]; then
# (a) stories260K-hf, F32: SparseLab's export vs llama.cpp's conversion.
"$cli" export "$m260" --gguf "$work/s260_sparselab_f32.gguf" --type f32 --quiet
rm -rf "$work/s260_bin"
mkdir -p "$work/s260_bin"
for f in "$m260"/*; do [ "$(basename "$f")" = model.safetensors ] || cp "$f" "$work/s260_bin/"; done
"$py" - "$m260/model.safetensors" "$work/s260_bin/pytorch_model.bin" <<'EOF'
import json, struct, sys
import numpy as np, torch
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
kinds = {"F32": np.float32, "F16": np.float16}
out = {}
for name, v in head.items():
    if name == "__metadata__":
        continue
    s, e = v["data_offsets"]
    out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + s:8 + n + e], dtype=kinds[v["dtype"]]).reshape(v["shape"]).copy())
torch.save(out, sys.argv[2])
EOF
PYTHONPATH="$src/gguf-py" "$py" "$here/scripts/llama_cpp_convert_shim.py" "$src/convert_hf_to_gguf.py" "$work/s260_bin" --outtype f32 \
    --outfile "$work/s260_llamacpp_f32.gguf" > "$work/convert.log" 2>&1
# Tensor by tensor (gguf-py from the checkout): same names, types and bytes?
a_same=$(PYTHONPATH="$src/gguf-py" "$py" - "$work/s260_sparselab_f32.gguf" "$work/s260_llamacpp_f32.gguf" <<'EOF'
import sys
import numpy as np
from gguf import GGUFReader
a, b = ({t.name: t for t in GGUFReader(f).tensors} for f in sys.argv[1:3])
same = set(a) == set(b) and all(a[n].tensor_type == b[n].tensor_type and np.array_equal(a[n].data, b[n].data) for n in a)
print(f"{len(a)} vs {len(b)} tensors, {'all identical' if same else 'DIFFERENT'}")
EOF
)
a_sl=$(ppl "$work/s260_sparselab_f32.gguf")
a_ll=$(ppl "$work/s260_llamacpp_f32.gguf")

fi

if [[ "${PARTS:-ab}" == *b* ]]; then
# (b) TinyStories-656K: round to nearest (llama-quantize --pure) vs GPTQ, both Q4_0.
"$cli" export "$m656" --gguf "$work/t656_f32.gguf" --type f32 --quiet
"$quant_bin" --pure "$work/t656_f32.gguf" "$work/t656_rtn_q4_0.gguf" Q4_0 > "$work/quantize.log" 2>&1
gptq() { # name, extra prune options...
    local name="$1"; shift
    rm -rf "$work/$name"
    "$cli" prune "$m656" --calib "$calib" --out "$work/$name" --nsamples 128 --seqlen 256 --seed 0 \
        --sparsity 0 --bits 4 --group 32 --sym --fp16-scale "$@" --quiet
    "$cli" export "$work/$name" --gguf "$work/$name.gguf" --type q4_0 --json > "$work/$name.export.json"
}
gptq t656_gptq_q4_0
gptq t656_gptq_act_q4_0 --act-order --static-groups
gptq t656_gptq_signed_q4_0 --signed-scale
gptq t656_gptq_signed_act_q4_0 --signed-scale --act-order --static-groups
b_f32=$(ppl "$work/t656_f32.gguf")
b_rtn=$(ppl "$work/t656_rtn_q4_0.gguf")
b_gptq=$(ppl "$work/t656_gptq_q4_0.gguf")
b_act=$(ppl "$work/t656_gptq_act_q4_0.gguf")
b_signed=$(ppl "$work/t656_gptq_signed_q4_0.gguf")
b_signed_act=$(ppl "$work/t656_gptq_signed_act_q4_0.gguf")

fi

{
    echo "llama.cpp $(cd "$src" && (git rev-parse --short HEAD 2>/dev/null || echo source)); llama-perplexity -c 256 --chunks $chunks on $eval_text"
    if [[ "${PARTS:-ab}" == *a* ]]; then
        echo "(a) stories260K-hf F32  SparseLab export: $a_sl   llama.cpp convert_hf_to_gguf.py: $a_ll   ($a_same)"
    fi
    if [[ "${PARTS:-ab}" == *b* ]]; then
        echo "(b) TinyStories-656K    F32: $b_f32"
        echo "    llama-quantize --pure Q4_0 (round to nearest): $b_rtn"
        echo "    SparseLab GPTQ 4-bit sym g32 fp16 → Q4_0: $b_gptq"
        echo "    SparseLab GPTQ act-order + static groups → Q4_0: $b_act"
        echo "    SparseLab GPTQ signed scale (Q4_0's own grid) → Q4_0: $b_signed"
        echo "    SparseLab GPTQ signed scale + act-order + static groups → Q4_0: $b_signed_act"
        echo "    export summary: $(cat "$work/t656_gptq_q4_0.export.json")"
    fi
} | tee "$work/results.txt"

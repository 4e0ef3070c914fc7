#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan + UBSan) and runs each for a given time
# on a seed corpus made from real files (the bundled demo model, tests/data, ../shared/data).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#     SECONDS_PER_TARGET  default 60
#     TARGET              safetensors gguf shard_index tokenizer_json tokenizer_model
#                         config_json recipe workspace json (default: all)
#   Environment: RUNS (run each target for this many executions instead of a time),
#   BUILD_DIR (default build-fuzz), CLI (a built sparselab-cli used to make
#   GGUF seeds; default build/app/sparselab-cli if present), NICE (default 19), MAX_LEN
#   (bytes; overrides the per-target input size limit, e.g. 90000 keeps tokenizer_json off
#   the 2 MB GPT-2 seed and ~10x faster), TIMEOUT (seconds one input may take before it is
#   a finding; default 10 — raise it at nice 19 beside builds, where a 1.7 MB GGUF that takes
#   2 s under ASan alone has taken over 15 s), LEAKS (default 1; 0 turns off libFuzzer's
#   leak check after each input — libhdf5 keeps blocks on free lists, so every workspace input
#   looks leaky and costs a LeakSanitizer scan of the whole process: 9 inputs a second against
#   105 without; then run `RUNS=1 LEAKS=1` over the grown corpus to check it for leaks),
#   INSTANCE (a name: the log becomes logs/<target>-INSTANCE.log, so that two runs of one target
#   can share its corpus on two cores, e.g. INSTANCE=a and INSTANCE=b started side by side).
# Do not pause a run (SIGSTOP) for a benchmark: libFuzzer's timeout is wall-clock, so the input
# it was on when paused is reported as a timeout when it resumes. Stop it (Ctrl-C / SIGINT, which
# prints its counts) and start it again.
#
# Each run keeps its grown corpus in $BUILD_DIR/corpus/<target>/, crash/leak/timeout inputs
# in $BUILD_DIR/findings/<target>/, and its log in $BUILD_DIR/logs/<target>.log; the summary
# line per target gives the executions and whether anything was found. Exit 1 on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors gguf shard_index tokenizer_json tokenizer_model config_json recipe workspace json)
build=${BUILD_DIR:-build-fuzz}
shared=${SPARSELAB_SHARED_DATA_DIR:-$root/../shared/data}
nice_level=${NICE:-19}

if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DSPARSELAB_FUZZ=ON -DSPARSELAB_GUI=OFF \
    -DSPARSELAB_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
nice -n "$nice_level" cmake --build "$build" -j"${JOBS:-2}" --target sparselab_fuzzers

# ---- seed corpora (copies of real files; missing ones are skipped) ---------------------------
seed() { # seed TARGET FILE...
  local dir=$build/corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do
    [[ -f $f ]] && cp -f "$f" "$dir/seed-$(echo "$f" | sed 's#[/.]#_#g' | tail -c 80)"
  done
  return 0
}
demo=resources/models/stories260K-hf
seed safetensors tests/data/solver/*.safetensors tests/data/models/*/model.safetensors \
  tests/data/models/*/golden_logits.safetensors
seed config_json $demo/config.json tests/data/models/*/config.json "$shared"/models/*/config.json
seed tokenizer_json "$shared"/models/tinystories-656k-hf/tokenizer.json "$shared"/tokenizers/gpt2/tokenizer.json
seed tokenizer_model $demo/tokenizer.model "$shared"/models/stories260K/tok512.model
seed gguf "$shared"/tokenizers/llama.cpp-vocab-tests/*.gguf
seed recipe /dev/null
seed shard_index /dev/null
cli=${CLI:-build/app/sparselab-cli}
if [[ -x $cli && ! -f $build/corpus/gguf/seed-demo-q8_0.gguf ]]; then
  for type in f32 q8_0 q4_0; do
    "$cli" export "$demo" --gguf "$build/corpus/gguf/seed-demo-$type.gguf" --type "$type" >/dev/null 2>&1 || true
  done
fi
# Recipes and shard indices: the documented examples and a real-looking index.
cat > "$build/corpus/recipe/seed-example.json" <<'JSON'
{"defaults": {"method": "sparsegpt", "sparsity": 0.5, "bits": 16},
 "layers": [{"pattern": "model.layers.*.mlp.*", "sparsity": 0.6, "bits": 4, "group": 32, "sym": true},
            {"pattern": "model.layers.0.*", "method": "dense"},
            {"pattern": "model.layers.1.*", "nm": "2:4", "blocksize": 64, "damp": 0.02, "method": "wanda"}]}
JSON
cat > "$build/corpus/shard_index/seed-index.json" <<'JSON'
{"metadata": {"total_size": 16}, "weight_map": {"model.norm.weight": "model-00001-of-00001.safetensors"}}
JSON

# Workspaces: a sealed one from a real prune and a sensitivity scan of the demo (small runs).
if [[ -x $cli && ! -f $build/corpus/workspace/seed-prune.h5 ]]; then
  mkdir -p "$build/corpus/workspace"
  seedtmp=$(mktemp -d)
  "$cli" prune "$demo" --calib resources/text/tinystories_calib.txt --nsamples 4 --seqlen 32 \
    --out "$seedtmp/out" --workspace "$build/corpus/workspace/seed-prune.h5" --quiet >/dev/null 2>&1 || true
  "$cli" sensitivity "$demo" --calib resources/text/tinystories_calib.txt --nsamples 4 --seqlen 32 \
    --sparsities 0.5 --layers 'model.layers.0.*' --out "$build/corpus/workspace/seed-scan.h5" >/dev/null 2>&1 || true
  rm -rf "$seedtmp" "$build/corpus/workspace/"*.resume
fi
# JSON: the real configs and recipes, and documents nested 255, 256 and 257 levels deep.
seed json $demo/config.json tests/data/models/*/config.json $demo/tokenizer_config.json
mkdir -p "$build/corpus/json"
for depth in 255 256 257; do
  python3 -c "import sys; d=int(sys.argv[1]); print('{\"a\": ' + '['*(d-1) + '1' + ']'*(d-1) + '}')" "$depth" \
    > "$build/corpus/json/seed-depth-$depth.json"
done

# ---- runs ----------------------------------------------------------------------------------
declare -A max_len=([safetensors]=400000 [gguf]=2000000 [tokenizer_json]=2200000 [tokenizer_model]=16384
                    [config_json]=4096 [recipe]=4096 [shard_index]=4096 [workspace]=131072 [json]=8192)
mkdir -p "$build/logs"
status=0
for t in "${targets[@]}"; do
  findings=$build/findings/$t
  mkdir -p "$findings"
  log=$build/logs/$t${INSTANCE:+-$INSTANCE}.log
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$root/fuzz/lsan.supp \
    nice -n "$nice_level" "$build/fuzz/fuzz_$t" "$build/corpus/$t" \
    $([[ -n ${RUNS:-} ]] && echo "-runs=$RUNS" || echo "-max_total_time=$seconds") \
    -timeout="${TIMEOUT:-10}" -detect_leaks="${LEAKS:-1}" -rss_limit_mb=4096 -max_len="${MAX_LEN:-${max_len[$t]}}" -artifact_prefix="$findings/" \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  # libFuzzer also keeps inputs slower than 10 s as slow-unit-*: kept for a look, not findings
  # (a timeout past TIMEOUT is one, and fails the run through rc).
  found=$(find "$findings" -type f ! -name 'slow-unit-*' | wc -l)
  slow=$(find "$findings" -type f -name 'slow-unit-*' | wc -l)
  printf 'fuzz %-16s %4ss  executions %-10s corpus %-6s findings %s (rc %s), slow inputs kept %s\n' "$t" "$seconds" \
    "$execs" "$(find "$build/corpus/$t" -type f | wc -l)" "$found" "$rc" "$slow"
  if ((rc != 0 || found > 0)); then
    status=1
    grep -m3 -E 'ERROR|SUMMARY|unexpected exception' "$log" || true
  fi
done
exit $status

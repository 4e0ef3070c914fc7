#!/usr/bin/env bash
# The GPU check (issue 14), in one script, run from the repository root on a machine with an
# NVIDIA GPU, nvcc, CMake, Ninja and a PyTorch with CUDA (its LibTorch is what we build
# against; its `transformers` makes the fidelity goldens), without network: first run
# scripts/prepare_gpu_bundle.sh on a Debian machine and carry gpu-bundle/ along (nlohmann_json
# and HDF5 headers and libraries, the reference SparseGPT code, the end-to-end text).
#
#   scripts/gpu_check.sh [PHASE...]   phases: goldens build test bench reference exitcheck e2e (default: all)
#
#   goldens   — scripts/make_hf_goldens.py: small random Llama/Mistral/Qwen2/GPT-2/OPT models
#               and transformers' logits into tests/data/models/hf-* (in the background, while
#               the build runs); packed into $OUT/hf_goldens.tar.gz;
#   build     — configure (-DSPARSELAB_GUI=OFF -DSPARSELAB_TESTS=OFF, CUDA kernels ON,
#               CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90}) in build-gpu/ and build the CLI,
#               the GPU tests and the GPU bench with all cores (ninja -k 0: every error at once);
#   test      — ctest -L gpu (kernel vs CPU column loop; solver and demo-model prune on CUDA
#               vs CPU; TF32 deviation; hf-* logits on CPU and CUDA against transformers');
#   bench     — bench_gpu_block: the OPT-175B-shaped block (hidden 12288, MLP 49152,
#               128 x 2048 tokens) with SparseLab's solver;
#   reference — bench/reference_sparsegpt_block.py: the published SparseGPT class on the same
#               block (skipped when gpu-bundle/reference is absent);
#   exitcheck — the demo model pruned by the CLI on CUDA, in memory and --stream: exit codes,
#               and cuda-gdb's backtraces of a crash;
#   e2e       — a random Qwen2.5-0.5B-shaped model (scripts/make_random_sized_model.py, made in
#               the background during the build) planned and pruned 50 % with SparseGPT on
#               CUDA, 128 x 2048 calibration, --stream: wall time, per-block times, peak GPU
#               memory (nvidia-smi, sampled every 100 ms, less the idle reading) against
#               `sparselab-cli plan`.
# Work files go to $WORK (default /tmp/gpu-check); what comes back goes to $OUT (default
# ./gpu-check-out): gpu_check.json (the last line on stdout too: every phase's outcome and
# figures), bench.json, reference.json, e2e.json, hf_goldens.tar.gz, logs.tar.gz. Each phase
# is time-limited (BUILD_TIMEOUT, TEST_TIMEOUT, BENCH_TIMEOUT, E2E_TIMEOUT seconds).
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
OUT="${OUT:-$root/gpu-check-out}"
WORK="${WORK:-/tmp/gpu-check}"
mkdir -p "$OUT" "$WORK"
phases=("$@")
[[ ${#phases[@]} -eq 0 ]] && phases=(goldens build test bench reference exitcheck e2e)
want() { local p; for p in "${phases[@]}"; do [[ "$p" == "$1" ]] && return 0; done; return 1; }
declare -A status
started=$(date +%s)
bundle="$root/gpu-bundle"
# Our binaries find libhdf5's dependencies here; Python runs without it.
withlibs() { LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
pack_logs() { tar -C "$WORK" -czf "$OUT/logs.tar.gz" --exclude='*.safetensors' --exclude=qwen* . 2>/dev/null; }

gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
sm_clock="$(nvidia-smi --query-gpu=clocks.max.sm --format=csv,noheader,nounits 2>/dev/null | head -1)"
peak="$(python3 - "$sm_clock" <<'PY' 2>/dev/null
import sys, torch
p = torch.cuda.get_device_properties(0)
lanes = 64 if (p.major, p.minor) == (8, 0) else 128   # FP32 lanes per SM: A100 64, Hopper 128
print(round(p.multi_processor_count * lanes * 2 * float(sys.argv[1]) * 1e6 / 1e12, 2))
PY
)"
peak="${peak:-0}"
nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1
python3 -c 'import torch, transformers, sys; print(sys.version); print(torch.__version__, torch.version.cuda, transformers.__version__)' \
  > "$WORK/versions.txt" 2>&1
(g++ --version; cmake --version; nvcc --version) >> "$WORK/versions.txt" 2>&1

goldens_pid="" model_pid=""
if want goldens; then
  (timeout 300 python3 scripts/make_hf_goldens.py --out tests/data/models > "$WORK/goldens.json" 2> "$WORK/goldens.log";
   echo $? > "$WORK/goldens.rc") &
  goldens_pid=$!
fi
if want e2e && [[ -f "$bundle/e2e/tokenizer.json" ]]; then
  (timeout 400 python3 scripts/make_random_sized_model.py --shape qwen2.5-0.5b \
     --tokenizer "$bundle/e2e/tokenizer.json" --out "$WORK/qwen05" > "$WORK/model.json" 2> "$WORK/model.log";
   echo $? > "$WORK/model.rc") &
  model_pid=$!
fi

if want build; then
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  nvcc_path="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  cuda_root="$(dirname "$(dirname "$nvcc_path")")"
  t0=$(date +%s)
  withlibs timeout "${BUILD_TIMEOUT:-420}" bash -c "
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSELAB_GUI=OFF -DSPARSELAB_TESTS=OFF \
      -DSPARSELAB_GPU_TESTS=ON -DSPARSELAB_CUDA_KERNELS=ON -DCMAKE_CUDA_COMPILER='$nvcc_path' -DCUDAToolkit_ROOT='$cuda_root' \
      -DCMAKE_CUDA_ARCHITECTURES='${CUDA_ARCHS:-90}' \
      -DHDF5_ROOT='$bundle/deb/usr/lib/x86_64-linux-gnu/hdf5/serial' \
      -DCMAKE_PREFIX_PATH='$torch_prefix;$bundle/deb/usr' > '$WORK/configure.log' 2>&1 &&
    ninja -C build-gpu -k 0 sparselab-cli gpu_sparsegpt_block_kernel gpu_solver_vs_cpu gpu_hf_logits \
      gpu_stream_exit bench_gpu_block > '$WORK/build.log' 2>&1"
  status[build]=$?
  status[build_seconds]=$(( $(date +%s) - t0 ))
  grep -E "LibTorch|CUDA kernels|GPU solver path|HDF5" "$WORK/configure.log" > "$WORK/configure.summary" 2>/dev/null
  grep -E "error|FAILED" "$WORK/build.log" | head -60 > "$WORK/build.errors" 2>/dev/null
  pack_logs
fi
[[ -n "$goldens_pid" ]] && wait "$goldens_pid"
if want goldens; then
  status[goldens]="$(cat "$WORK/goldens.rc" 2>/dev/null || echo none)"
  tar -czf "$OUT/hf_goldens.tar.gz" -C tests/data/models $(cd tests/data/models && ls -d hf-* 2>/dev/null) 2>/dev/null
fi

if want test; then
  t0=$(date +%s)
  withlibs timeout "${TEST_TIMEOUT:-300}" ctest --test-dir build-gpu -L gpu --output-on-failure -V > "$WORK/ctest.log" 2>&1
  status[test]=$?
  status[test_seconds]=$(( $(date +%s) - t0 ))
  pack_logs
fi

if want exitcheck; then
  # A whole CLI prune of the demo model on CUDA, in memory and streamed, with its exit code
  # (a crash at exit is a failure too). When one crashes it runs again under gdb: where it stops,
  # whether exit() was reached first, and the words on the stack (after a call through a null
  # pointer the top one is the caller's return address).
  debugger="$(command -v cuda-gdb || command -v gdb || true)"
  for mode in memory stream; do
    extra=(); [[ $mode == stream ]] && extra=(--stream)
    cmd=(build-gpu/app/sparselab-cli prune resources/models/stories260K-hf
         --calib resources/text/tinystories_calib.txt --nsamples 16 --seqlen 128 --sparsity 0.5
         --device cuda "${extra[@]}" --out "$WORK/demo-$mode" --json)
    rm -rf "$WORK/demo-$mode"
    withlibs timeout 120 "${cmd[@]}" > "$WORK/exit_$mode.json" 2> "$WORK/exit_$mode.log"
    status[exit_$mode]=$?
    if [[ ${status[exit_$mode]} -ge 128 && -n "$debugger" ]]; then
      rm -rf "$WORK/demo-$mode"
      withlibs timeout 150 "$debugger" -batch -ex "set breakpoint pending on" -ex "break exit" -ex run \
        -ex "bt 8" -ex 'info registers rip rsp' -ex 'x/16a $rsp' -ex continue \
        -ex "bt 8" -ex 'info registers rip rsp' -ex 'x/16a $rsp' -ex "info sharedlibrary" -ex "thread apply all bt 12" \
        --args "${cmd[@]}" > "$WORK/exit_${mode}_gdb.log" 2>&1
    fi
  done
fi

if want bench; then
  withlibs timeout "${BENCH_TIMEOUT:-300}" build-gpu/bench/bench_gpu_block --fp32-peak-tflops "$peak" ${BENCH_ARGS:-} \
    > "$OUT/bench.json" 2> "$WORK/bench.log"
  status[bench]=$?
fi

if want reference; then
  if [[ -f "$bundle/reference/sparsegpt.py" ]]; then
    timeout "${BENCH_TIMEOUT:-300}" python3 bench/reference_sparsegpt_block.py --reference "$bundle/reference" \
      --fp32-peak-tflops "$peak" > "$OUT/reference.json" 2> "$WORK/reference.log"
    status[reference]=$?
  else
    status[reference]=skipped
  fi
  pack_logs
fi

if want e2e; then
  [[ -n "$model_pid" ]] && wait "$model_pid"
  if [[ "$(cat "$WORK/model.rc" 2>/dev/null)" == 0 ]]; then
    model="$WORK/qwen05"
    cli=build-gpu/app/sparselab-cli
    calib=(--calib "$bundle/e2e/calib.txt" --nsamples 128 --seqlen 2048)
    withlibs "$cli" plan "$model" --nsamples 128 --seqlen 2048 --device cuda --stream --json > "$WORK/e2e_plan.json" 2> "$WORK/e2e_plan.log"
    idle="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$WORK/e2e_memory.txt" 2>/dev/null &
    smi=$!
    t0=$(date +%s.%N)
    withlibs timeout "${E2E_TIMEOUT:-300}" "$cli" prune "$model" "${calib[@]}" --sparsity 0.5 --device cuda --stream \
      --out "$WORK/qwen05-s50" --json > "$WORK/e2e_prune.json" \
      2> >(python3 -u -c 'import sys, time
t = time.time()
for line in sys.stdin:
    for part in line.replace("\r", "\n").splitlines():
        if part.strip(): print(f"{time.time() - t:9.2f} {part}", flush=True)' > "$WORK/e2e_prune.log")
    status[e2e]=$?
    wall="$(python3 -c "import time; print(round(time.time() - $t0, 2))")"
    sleep 0.3; kill "$smi" 2>/dev/null
    python3 - "$WORK" "$idle" "$wall" > "$OUT/e2e.json" <<'PY'
import json, os, sys
work, idle, wall = sys.argv[1], int(sys.argv[2] or 0), float(sys.argv[3])
def load(name):
    try:
        lines = [l for l in open(os.path.join(work, name)).read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
mem = [int(x) for x in open(os.path.join(work, "e2e_memory.txt")).read().split() if x.isdigit()]
prune = load("e2e_prune.json")
out = {"model": load("model.json"), "plan": load("e2e_plan.json"), "wall_seconds": wall,
       "gpu_memory_idle_mib": idle, "gpu_memory_peak_mib": max(mem) if mem else None,
       "gpu_memory_peak_above_idle_mib": (max(mem) - idle) if mem else None, "prune": prune}
print(json.dumps(out))
PY
  else
    status[e2e]=no-model
  fi
fi

pack_logs
python3 - "$OUT" "$WORK" "$gpu_name" "$peak" "$(( $(date +%s) - started ))" \
  "$(for k in "${!status[@]}"; do printf '%s=%s,' "$k" "${status[$k]}"; done)" <<'PY' | tee "$OUT/gpu_check.json"
import json, os, re, sys
out, work, gpu, peak, seconds, statuses = sys.argv[1:7]
result = {"gpu": gpu, "fp32_peak_tflops": float(peak or 0), "seconds": int(seconds),
          "status": dict(kv.split("=", 1) for kv in statuses.split(",") if kv)}
def load(folder, name):
    try:
        with open(os.path.join(folder, name)) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
result["sparselab"] = load(out, "bench.json")
result["reference"] = load(out, "reference.json")
s, r = result["sparselab"], result["reference"]
if s and r and s.get("solve_seconds_block") and r.get("solve_seconds_block"):
    result["solve_speedup_vs_reference"] = r["solve_seconds_block"] / s["solve_seconds_block"]
try:
    with open(os.path.join(work, "ctest.log")) as f:
        log = f.read()
    result["tests"] = re.findall(r"^(?:PASS|FAILED|SKIP) gpu_\S+.*$", log, re.M)[:40]
    result["ctest_summary"] = [l.strip() for l in log.splitlines() if re.match(r"\s*\d+/\d+ Test\s+#", l)][:40]
    result["test_lines"] = [l.strip() for l in log.splitlines()
                            if "max|dW|" in l or "transformers" in l or "FAIL" in l][:60]
except OSError:
    pass
try:
    result["build_errors"] = open(os.path.join(work, "build.errors")).read().splitlines()[:30]
except OSError:
    pass
for mode in ("memory", "stream"):
    try:
        lines = open(os.path.join(work, f"exit_{mode}_gdb.log")).read().splitlines()
        keep = ("#", "0x", "rip", "rsp", "Breakpoint", "Thread 1", "signal", "SIGSEGV", "exited")
        result[f"exit_{mode}_gdb"] = [l for l in lines if l.lstrip().startswith(keep) or "signal" in l.lower()][:80]
    except OSError:
        pass
print(json.dumps(result))
PY

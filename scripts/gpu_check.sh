#!/usr/bin/env bash
# The GPU check of issue 6, in one script, run from the repository root on a machine with an
# NVIDIA GPU, nvcc, CMake, Ninja and a PyTorch with CUDA (its LibTorch is what we build
# against), without network: first run scripts/prepare_gpu_bundle.sh on a machine with Debian
# and carry gpu-bundle/ along (nlohmann_json headers, the reference SparseGPT code).
#
#   scripts/gpu_check.sh [PHASE...]     phases: build test bench reference (default: all four)
#
#   build     — configure (-DSPARSELAB_GUI=OFF -DSPARSELAB_TESTS=OFF, CUDA kernels ON,
#               CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90}) in build-gpu/ and build the CLI,
#               the GPU tests and the GPU bench with all cores;
#   test      — ctest -L gpu (kernel vs CPU column loop; solver and demo-model prune on CUDA
#               vs CPU; TF32 deviation);
#   bench     — bench_gpu_block: the OPT-175B-shaped block (hidden 12288, MLP 49152,
#               128 x 2048 tokens) with SparseLab's solver;
#   reference — bench/reference_sparsegpt_block.py: the published SparseGPT class on the same
#               block (skipped when gpu-bundle/reference is absent).
# Logs and results go to $OUT (default ./gpu-check-out); the last line on stdout, also
# written to $OUT/gpu_check.json, is one JSON object with every phase's outcome and figures.
# Each phase is time-limited (BUILD_TIMEOUT, TEST_TIMEOUT, BENCH_TIMEOUT seconds).
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
OUT="${OUT:-$root/gpu-check-out}"
mkdir -p "$OUT"
phases=("$@")
[[ ${#phases[@]} -eq 0 ]] && phases=(build test bench reference)
want() { local p; for p in "${phases[@]}"; do [[ "$p" == "$1" ]] && return 0; done; return 1; }
declare -A status
started=$(date +%s)

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

if want build; then
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  nvcc_path="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  t0=$(date +%s)
  timeout "${BUILD_TIMEOUT:-420}" bash -c "
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSELAB_GUI=OFF -DSPARSELAB_TESTS=OFF \
      -DSPARSELAB_GPU_TESTS=ON -DSPARSELAB_CUDA_KERNELS=ON -DCMAKE_CUDA_COMPILER='$nvcc_path' \
      -DCMAKE_CUDA_ARCHITECTURES='${CUDA_ARCHS:-90}' \
      -DCMAKE_PREFIX_PATH='$torch_prefix;$root/gpu-bundle/deb/usr' > '$OUT/configure.log' 2>&1 &&
    cmake --build build-gpu -j\$(nproc) --target sparselab-cli gpu_sparsegpt_block_kernel gpu_solver_vs_cpu \
      bench_gpu_block > '$OUT/build.log' 2>&1"
  status[build]=$?
  status[build_seconds]=$(( $(date +%s) - t0 ))
  grep -E "LibTorch|CUDA kernels|GPU solver path" "$OUT/configure.log" > "$OUT/configure.summary" 2>/dev/null
fi

if want test; then
  t0=$(date +%s)
  timeout "${TEST_TIMEOUT:-300}" ctest --test-dir build-gpu -L gpu --output-on-failure -V > "$OUT/ctest.log" 2>&1
  status[test]=$?
  status[test_seconds]=$(( $(date +%s) - t0 ))
fi

if want bench; then
  timeout "${BENCH_TIMEOUT:-300}" build-gpu/bench/bench_gpu_block --fp32-peak-tflops "$peak" \
    > "$OUT/bench.json" 2> "$OUT/bench.log"
  status[bench]=$?
fi

if want reference; then
  if [[ -f gpu-bundle/reference/sparsegpt.py ]]; then
    timeout "${BENCH_TIMEOUT:-300}" python3 bench/reference_sparsegpt_block.py --reference gpu-bundle/reference \
      --fp32-peak-tflops "$peak" > "$OUT/reference.json" 2> "$OUT/reference.log"
    status[reference]=$?
  else
    status[reference]=skipped
  fi
fi

python3 - "$OUT" "$gpu_name" "$peak" "$(( $(date +%s) - started ))" \
  "$(for k in "${!status[@]}"; do printf '%s=%s,' "$k" "${status[$k]}"; done)" <<'PY' | tee "$OUT/gpu_check.json"
import json, os, re, sys
out, gpu, peak, seconds, statuses = sys.argv[1:6]
result = {"gpu": gpu, "fp32_peak_tflops": float(peak or 0), "seconds": int(seconds),
          "status": dict(kv.split("=", 1) for kv in statuses.split(",") if kv)}
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
result["sparselab"] = load("bench.json")
result["reference"] = load("reference.json")
s, r = result["sparselab"], result["reference"]
if s and r and s.get("solve_seconds_block") and r.get("solve_seconds_block"):
    result["solve_speedup_vs_reference"] = r["solve_seconds_block"] / s["solve_seconds_block"]
try:
    with open(os.path.join(out, "ctest.log")) as f:
        log = f.read()
    result["tests"] = re.findall(r"(?:PASS|FAILED|FAIL|SKIP) gpu_\S+.*$", log, re.M)[:40]
    result["test_lines"] = [l.strip() for l in log.splitlines() if "max|dW|" in l][:40]
except OSError:
    pass
print(json.dumps(result))
PY

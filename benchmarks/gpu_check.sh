#!/usr/bin/env bash
# benchmarks/gpu_check.sh — the whole GPU run in one script (target: under 8 minutes on an H100).
#
#   benchmarks/gpu_check.sh                  run everything (from anywhere; it cds to the repo root)
#   benchmarks/gpu_check.sh --pack-deps      = scripts/vendor_headers.sh (below)
#
# The GPU machine is bare: nvcc, CMake, ninja and PyTorch (its plain `python3`), without
# Debian's -dev headers. Before the run, on a machine that has them, run
# scripts/vendor_headers.sh: it copies Eigen, nlohmann-json, doctest and stb (headers and
# CMake package files) into third_party/ (git-ignored), where cmake/softbioDependencies.cmake
# finds whatever the system lacks. Carry it along (device tool: carry ["third_party"]).
# Rehearsed without those packages (a mount namespace hiding them) with BUILD_ONLY=1.
#
# Environment: OUT (results folder; default build-gpu/results), PYTHON (the interpreter with
# torch; default: /usr/bin/python3 if it has torch, else python3 on PATH), ROUNDS (alternating softbio/PyTorch
# rounds, default 2), SKIP_TUNE=1 (skip the conv kernel sweeps), BUILD_JOBS (default nproc),
# FORCE_DIRECT=1 (skip CMake, build with nvcc directly), BUILD_ONLY=1 (stop after step 2: check
# that everything builds, e.g. on a machine without a GPU), NVCC (default: nvcc on PATH, else
# /usr/local/cuda/bin/nvcc), BUILD_DIR (default build-gpu). The CUDA targets and tests are defined
# in tests/cuda/CMakeLists.txt; softbio-predict (--device cuda) in examples/CMakeLists.txt.
#
# Steps (each logged to $OUT; the summary table is printed last):
#  1. environment: nvidia-smi, nvcc, torch versions                         -> env.txt
#  2. configure + build with CMake (-DSOFTBIO_CUDA=ON, sm_90 + compute_90 PTX) -> configure.log, build.log
#     If CMake cannot configure (missing packages), build the CUDA binaries with nvcc directly.
#  3. GPU tests: kernels vs CPU references, whole networks vs the CPU backend (and the
#     Predictor with Device::Cuda, pipelined), the dev checks (the programs `ctest -L cuda`
#     runs), and softbio-predict --device cuda against --device cpu (tests/python/
#     test_predict_cli.py with SOFTBIO_REQUIRE_GPU=1); a "skipped" test means no device
#     was seen (or a Python package is missing): a failure here    -> tests.txt, test_*.log
#  4. timing, alternating in ROUNDS rounds so machine noise hits both sides alike:
#     softbio-gpu-bench (torchvision-r101 layout, random weights; 224 and 128 px, batch 1 eager
#     and CUDA graph, batch 256)  and  benchmarks/pytorch_gpu_anchor.py (torchvision resnet101,
#     fp32, TF32 off, cudnn.benchmark, eager and CUDA graph)              -> softbio_*.jsonl, torch_*.jsonl
#     and once, the input pipeline of --device cuda (backend/cuda_model.hpp): the
#     upload from pinned staging timed synchronously and overlapped       -> pipeline.jsonl
#     and once, PyTorch with tensor cores: tf32, fp16 channels_last             -> anchor_{tf32,fp16}.jsonl
#     and once, softbio's whole network in tf32, fp16 and bf16 (--precision: every conv on
#     conv2d_tf32 / conv2d_mma_f32io)                                    -> {tf32,fp16,bf16}_softbio.jsonl
#  5. conv kernel sweeps (kernels/cuda/dev/conv2d_check.cu): every ResNet-101 conv shape at
#     batch 1 and 256, all tile variants; the tensor-core kernels (tf32, tf32kn, fp16, bf16, and
#     fp16io / bf16io: the whole network's 16-bit path, conv2d_mma_f32io) the same way;
#     and the SOFTBIO_CONV128_BK=16 build                                -> conv_*.txt, conv_mma_*.txt
#  6. the table: median over rounds, PyTorch/softbio ratio (> 1: softbio faster)  -> table.txt
# Time: every step after the build runs under `timeout`, and the sweeps only while the run
# is under BUDGET_S seconds (default 450), so that a run stays under 8 minutes on an H100/H200
# (the build takes 1-2 minutes on 16 cores).
# Exit status: non-zero if a build step or a GPU test failed (timings still run when possible).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

# ---------------------------------------------------------------------------------------
if [[ ${1:-} == --pack-deps ]]; then
  exec "$ROOT/scripts/vendor_headers.sh"
fi

BUILD=${BUILD_DIR:-$ROOT/build-gpu}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
OUT=${OUT:-$BUILD/results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROUNDS=${ROUNDS:-2}
JOBS=${BUILD_JOBS:-$(nproc)}
# The Python with torch (for the PyTorch anchor and the tests' configure check): $PYTHON if
# set, else Debian's /usr/bin/python3 when it has torch (a pyenv/venv python3 earlier on PATH
# often lacks it), else python3 on PATH.
if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON
elif /usr/bin/python3 -c "import torch" > /dev/null 2>&1; then PY=/usr/bin/python3
else PY=$(command -v python3); fi
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
BUDGET_S=${BUDGET_S:-450}
STATUS=0
T0=$SECONDS
step() { echo; echo "=== [$((SECONDS - T0))s] $*"; }
fail() { echo "FAILED: $*"; STATUS=1; }

# ---- 1. environment --------------------------------------------------------------------
step "environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  "$NVCC" --version | tail -2 || true
  cmake --version | head -1
  $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cudnn', torch.backends.cudnn.version())" || true
  git -C "$ROOT" log --oneline -1 2>/dev/null || true
} 2>&1 | tee "$OUT/env.txt"

# ---- 2. build ----------------------------------------------------------------------------
step "configure + build"
VENDOR=""
if [[ -d $ROOT/third_party/include ]]; then
  VENDOR=$ROOT/third_party
  echo "third_party/ present (scripts/vendor_headers.sh): used for whatever the system lacks"
  head -1 "$VENDOR/README.txt" 2>/dev/null || true
fi
GEN=()
command -v ninja > /dev/null && GEN=(-G Ninja)
TARGETS=(softbio_cuda_emulated softbio_cuda_kernels softbio_cuda_model softbio-cuda-conv2d-check softbio-cuda-pool-check
         softbio-cuda-linear-check softbio-cuda-preprocess-check softbio-gpu-bench softbio-predict)
# Include paths for direct nvcc builds (the fallback below, and the tuning build): the
# headers (include/softbio/kernels is a symlink to kernels/), the shared test headers
# (tests/cuda: dev_common.cuh, host_helpers.hpp), Eigen, nlohmann_json, doctest and stb.
INC=(-I"$ROOT/include" -I"$ROOT/tests/cuda" -I/usr/include/eigen3)
if [[ -n $VENDOR ]]; then INC+=(-idirafter "$VENDOR/include/eigen3" -idirafter "$VENDOR/include"); fi
MODE=cmake
if [[ -z ${FORCE_DIRECT:-} ]] && cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DSOFTBIO_CUDA=ON -DSOFTBIO_BUILD_TESTS=ON \
      -DSOFTBIO_BUILD_BENCHMARKS=OFF -DSOFTBIO_BUILD_EXAMPLES=ON -DSOFTBIO_BUILD_FUZZERS=OFF -DPython3_EXECUTABLE="$PY" \
      -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" > "$OUT/configure.log" 2>&1; then
  grep -E "softbio: .*(vendored|CUDA backend)" "$OUT/configure.log" || true
  if ! cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" > "$OUT/build.log" 2>&1; then
    fail "cmake build (see build.log)"; tail -30 "$OUT/build.log"
  fi
  BIN=$BUILD/tests/cuda
  PREDICT=$BUILD/examples/softbio-predict
else
  if [[ -n ${FORCE_DIRECT:-} ]]; then
    echo "FORCE_DIRECT: building the CUDA binaries with nvcc directly."
  else
    echo "CMake configure failed (see configure.log; missing packages? run scripts/vendor_headers.sh on the dev"
    echo "machine and carry third_party/). Building the CUDA binaries with nvcc directly."
    tail -15 "$OUT/configure.log"
  fi
  MODE=direct
  BIN=$BUILD/direct
  mkdir -p "$BIN"
  NVFLAGS=(-std=c++17 -O3 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
           --expt-relaxed-constexpr -lineinfo -Xcompiler=-fopenmp "${INC[@]}")
  declare -A SRC=([softbio_cuda_kernels]=tests/cuda/test_cuda_kernels.cu [softbio_cuda_model]=tests/cuda/test_cuda_model.cu
                  [softbio-cuda-conv2d-check]=kernels/cuda/dev/conv2d_check.cu [softbio-cuda-pool-check]=kernels/cuda/dev/pool_check.cu
                  [softbio-cuda-linear-check]=kernels/cuda/dev/linear_check.cu
                  [softbio-cuda-preprocess-check]=kernels/cuda/dev/preprocess_check.cu [softbio-gpu-bench]=benchmarks/gpu_bench.cu
                  [softbio-predict]="examples/predict.cpp examples/predict_cuda.cu")
  : > "$OUT/build.log"
  pids=()
  for t in "${!SRC[@]}"; do
    srcs=()
    for f in ${SRC[$t]}; do srcs+=("$ROOT/$f"); done
    "$NVCC" "${NVFLAGS[@]}" "${srcs[@]}" -o "$BIN/$t" > "$OUT/build_$t.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "nvcc build (see build_*.log)"; done
  cat "$OUT"/build_*.log >> "$OUT/build.log"
  PREDICT=$BIN/softbio-predict
fi
echo "build mode: $MODE, binaries in $BIN"
for t in "${TARGETS[@]}"; do
  f=$BIN/$t
  [[ $t == softbio-predict ]] && f=$PREDICT
  [[ $t == softbio_cuda_emulated && $MODE == direct ]] && continue  # host-only test: CMake builds it
  if [[ -x $f ]]; then echo "built    $f"; else fail "not built: $f"; fi
done
if [[ -n ${BUILD_ONLY:-} ]]; then
  echo "BUILD_ONLY: stopping after the build; status $STATUS; $((SECONDS - T0))s"
  exit $STATUS
fi

# The tuning build (128x128 tile with BK = 16), in the background while the tests run.
TUNE_PID=""
if [[ -z ${SKIP_TUNE:-} ]]; then
  mkdir -p "$BUILD/tune"
  "$NVCC" -std=c++17 -O3 -arch=sm_90 -Xcompiler=-fopenmp -DSOFTBIO_CONV128_BK=16 "${INC[@]}" \
       "$ROOT/kernels/cuda/dev/conv2d_check.cu" -o "$BUILD/tune/conv2d_check_bk16" > "$OUT/build_tune.log" 2>&1 &
  TUNE_PID=$!
fi

# ---- 3. GPU tests ----------------------------------------------------------------------
step "GPU tests"
run_test() {  # name, command...: 0 pass, 77 skipped (= failure on a GPU machine)
  local name=$1; shift
  local t=$SECONDS
  timeout 180 "$@" > "$OUT/test_$name.log" 2>&1
  local rc=$?
  local verdict=PASS
  [[ $rc == 77 ]] && verdict="SKIPPED (no device?)"
  [[ $rc == 124 ]] && verdict="TIMEOUT (180 s)"
  [[ $rc != 0 && $rc != 77 ]] && verdict="FAIL (rc $rc)"
  printf '%-28s %-22s %4ss  %s\n' "$name" "$verdict" "$((SECONDS - t))" "$(tail -1 "$OUT/test_$name.log")"
}
{
  [[ -x $BIN/softbio_cuda_emulated ]] && run_test cuda_kernels_emulated "$BIN/softbio_cuda_emulated"
  run_test cuda_kernels_gpu "$BIN/softbio_cuda_kernels"
  run_test cuda_model_gpu "$BIN/softbio_cuda_model"
  run_test cuda_dev_conv2d_check "$BIN/softbio-cuda-conv2d-check" --batch 1 --size 128 --iters 3
  # The tensor-core convolutions (kernels/cuda/conv2d_mma.cuh) on every ResNet-101 conv shape,
  # each against the pre-rounded CPU reference and the fp32 reference (tests/cuda/mma_tolerance.hpp).
  run_test cuda_dev_conv2d_mma_check "$BIN/softbio-cuda-conv2d-check" --batch 1 --size 128 --iters 3 --precision tf32,tf32kn,fp16,bf16,fp16io,bf16io
  run_test cuda_dev_pool_check "$BIN/softbio-cuda-pool-check" --batch 8 --iters 3
  run_test cuda_dev_linear_check "$BIN/softbio-cuda-linear-check" --iters 3
  run_test cuda_dev_preprocess_check "$BIN/softbio-cuda-preprocess-check" --iters 3
  # softbio-predict --device cuda vs --device cpu (and the device error messages); the CPU
  # half of this test runs the demo ResNet-101 a few times (~20 s on 16 cores).
  SOFTBIO_REQUIRE_GPU=1 run_test cuda_predict_cli "$PY" "$ROOT/tests/python/test_predict_cli.py" --predict "$PREDICT" \
      --workdir "$BUILD/predict_cli" --image "$ROOT/data/astronaut.png"
} 2>&1 | tee "$OUT/tests.txt"
grep -qE '^cuda_[a-z0-9_]+ +(FAIL|SKIPPED|TIMEOUT)' "$OUT/tests.txt" && fail "GPU tests (see tests.txt)"
grep -h "^FAIL" "$OUT"/test_*.log | head -20

# ---- 4. timing: softbio vs PyTorch, alternating ----------------------------------------
step "timing: softbio-gpu-bench vs PyTorch, $ROUNDS alternating rounds"
MODEL=$BUILD/torchvision-r101.safetensors
for r in $(seq 1 "$ROUNDS"); do
  timeout 150 "$BIN/softbio-gpu-bench" --preset torchvision-r101 --model-cache "$MODEL" --cases 224x1,128x1,224x256,128x256 \
      --modes eager,graph --graph-max-batch 1 --iters 30 --warmup 5 > "$OUT/softbio_$r.jsonl" 2> "$OUT/softbio_$r.err" \
      || { fail "softbio-gpu-bench round $r"; tail -5 "$OUT/softbio_$r.err"; }
  timeout 150 $PY "$ROOT/benchmarks/pytorch_gpu_anchor.py" --cases 224x1,128x1,224x256,128x256 --modes eager,graph \
      --graph-max-batch 1 --iters 30 --warmup 5 > "$OUT/torch_$r.jsonl" 2> "$OUT/torch_$r.err" \
      || { echo "PyTorch anchor round $r failed"; tail -5 "$OUT/torch_$r.err"; }
  echo "round $r done at $((SECONDS - T0))s"
done
# PyTorch with tensor cores (issue 12's table): tf32 (NCHW, TF32 on) and fp16 channels_last, once.
# softbio's whole network runs tf32, fp16 and bf16 (LoadOptions::precision, timed just below);
# step 5 also times the tensor-core convolutions alone (conv_mma_*.txt), summed per forward in the table.
for prec in tf32 fp16; do
  layout=(); [[ $prec == fp16 ]] && layout=(--channels-last)
  timeout 120 $PY "$ROOT/benchmarks/pytorch_gpu_anchor.py" --cases 224x1,128x1,224x256 --modes eager,graph \
      --graph-max-batch 1 --iters 30 --warmup 5 --precision $prec "${layout[@]}" > "$OUT/anchor_$prec.jsonl" 2> "$OUT/anchor_$prec.err" \
      || { echo "PyTorch $prec anchor failed"; tail -5 "$OUT/anchor_$prec.err"; }
done
echo "PyTorch tensor-core anchors done at $((SECONDS - T0))s"
# softbio's whole ResNet-101 in tf32, fp16 and bf16 (file names outside the softbio_*.jsonl glob
# of the fp32 table): tf32 on conv2d_tf32, fp16 / bf16 on conv2d_mma_f32io (16-bit filters).
for prec in tf32 fp16 bf16; do
  cases=224x1,128x1,224x256; [[ $prec == bf16 ]] && cases=224x1,224x256
  timeout 120 "$BIN/softbio-gpu-bench" --preset torchvision-r101 --model-cache "$MODEL" --cases $cases \
      --modes eager,graph --graph-max-batch 1 --iters 30 --warmup 5 --precision $prec > "$OUT/${prec}_softbio.jsonl" \
      2> "$OUT/${prec}_softbio.err" || { fail "softbio-gpu-bench --precision $prec"; tail -5 "$OUT/${prec}_softbio.err"; }
done
echo "softbio tf32 / fp16 / bf16 timing done at $((SECONDS - T0))s"
# The --device cuda input pipeline: upload from pinned staging + forward + logits, one batch
# after the other (sync) and overlapped (pipelined), against eager (input already on the GPU).
timeout 100 "$BIN/softbio-gpu-bench" --preset torchvision-r101 --model-cache "$MODEL" --cases 224x1,224x32,224x256 \
    --modes eager,sync,pipelined --iters 20 --warmup 3 > "$OUT/pipeline.jsonl" 2> "$OUT/pipeline.err" \
    || { fail "softbio-gpu-bench pipeline"; tail -5 "$OUT/pipeline.err"; }
echo "pipeline timing done at $((SECONDS - T0))s"

# ---- 5. conv kernel sweeps (tuning data) -----------------------------------------------
if [[ -z ${SKIP_TUNE:-} ]]; then
  step "conv kernel sweeps"
  left() { echo $(( BUDGET_S - (SECONDS - T0) )); }
  if (( $(left) > 20 )); then
    timeout "$(left)" "$BIN/softbio-cuda-conv2d-check" --batch 1 --size 224 --variants --iters 20 > "$OUT/conv_b1_224.txt" 2>&1 || fail "conv sweep b1"
    tail -2 "$OUT/conv_b1_224.txt"
  fi
  if (( $(left) > 20 )); then
    timeout "$(left)" "$BIN/softbio-cuda-conv2d-check" --batch 256 --size 224 --variants --iters 5 --check-batch 1 > "$OUT/conv_b256_224.txt" 2>&1 \
      || fail "conv sweep b256"
    tail -2 "$OUT/conv_b256_224.txt"
  fi
  # Tensor cores: the same sweeps for tf32, fp16 and bf16 (planned variant checked at batch 1),
  # the kernels the whole network runs first (tf32kn, fp16io, bf16io: kept if the budget cuts the rest).
  for b in 1 256; do
    if (( $(left) > 20 )); then
      timeout "$(left)" "$BIN/softbio-cuda-conv2d-check" --batch $b --size 224 --variants --iters $(( b == 1 ? 20 : 5 )) --check-batch 1 \
          --precision tf32kn,fp16io,bf16io,tf32,fp16,bf16 > "$OUT/conv_mma_b${b}_224.txt" 2>&1 || fail "tensor-core conv sweep b$b"
      grep '^# .*all' "$OUT/conv_mma_b${b}_224.txt"
    fi
  done
  if [[ -n $TUNE_PID ]] && wait "$TUNE_PID" && (( $(left) > 20 )); then
    timeout "$(left)" "$BUILD/tune/conv2d_check_bk16" --batch 256 --size 224 --iters 5 --check-batch 1 > "$OUT/conv_b256_224_bk16.txt" 2>&1 \
      || fail "conv sweep b256 BK16"
    tail -2 "$OUT/conv_b256_224_bk16.txt"
  fi
  (( $(left) <= 20 )) && echo "(sweeps cut or skipped to stay within the time budget of ${BUDGET_S} s)"
fi

# ---- 6. the table ----------------------------------------------------------------------
step "summary"
$PY - "$OUT" <<'PY' | tee "$OUT/table.txt"
import glob, json, statistics, sys
out = sys.argv[1]
rows = {}
for impl in ("softbio", "torch"):
    for f in sorted(glob.glob(f"{out}/{impl}_*.jsonl")):
        for line in open(f):
            if line.startswith("{"):
                r = json.loads(line)
                rows.setdefault((r["size"], r["batch"], r["mode"], impl), []).append(r)
device = next((v[0]["device"] for v in rows.values()), "?")
print(f"ResNet-101 fp32 on {device}: median ms per forward (median over rounds); ratio = PyTorch / softbio (> 1: softbio faster)")
print(f"{'case':>24} | {'softbio ms':>10} | {'PyTorch ms':>10} | {'ratio':>6} | {'softbio img/s':>13} | {'PyTorch img/s':>13} | {'softbio TFLOP/s':>15}")
for size in (224, 128):
    for batch, mode in ((1, "eager"), (1, "graph"), (256, "eager")):
        sb, th = rows.get((size, batch, mode, "softbio")), rows.get((size, batch, mode, "torch"))
        med = lambda v: statistics.median(x["median_ms"] for x in v) if v else float("nan")
        s, t = med(sb), med(th)
        tf = statistics.median(x["tflops"] for x in sb) if sb else float("nan")
        name = f"{size}px batch {batch} {mode}"
        print(f"{name:>24} | {s:10.3f} | {t:10.3f} | {t / s:6.2f} | {batch * 1e3 / s:13.1f} | {batch * 1e3 / t:13.1f} | {tf:15.2f}")
pipe = {}
try:
    for line in open(f"{out}/pipeline.jsonl"):
        if line.startswith("{"):
            r = json.loads(line)
            pipe[(r["batch"], r["mode"])] = r["median_ms"]
except OSError:
    pass
if pipe:
    print()
    print("--device cuda input pipeline (224 px; ms per batch): eager = input already on the GPU; sync = upload from pinned")
    print("staging + forward + logits download, one batch after the other; pipelined = next upload overlapping the forward")
    print(f"{'batch':>6} | {'eager':>9} | {'sync':>9} | {'pipelined':>9} | {'upload hidden':>13}")
    for b in sorted({k[0] for k in pipe}):
        e, s, p = (pipe.get((b, m), float("nan")) for m in ("eager", "sync", "pipelined"))
        hidden = (s - p) / (s - e) if s > e else float("nan")
        print(f"{b:>6} | {e:9.3f} | {s:9.3f} | {p:9.3f} | {100 * hidden:12.0f}%")
    print()
# Tensor cores: PyTorch's whole network (tf32; fp16 channels_last) next to softbio's whole
# network (softbio-gpu-bench --precision tf32 / fp16 / bf16) and the sum of softbio's
# tensor-core convolutions per forward (conv2d_check: 104 convs, no pools/heads/launch gaps;
# its fp16 kernel stores 16-bit activations, the whole network's fp32 ones: a lower bound).
import re
anchor = {}
for prec in ("tf32", "fp16"):
    try:
        for line in open(f"{out}/anchor_{prec}.jsonl"):
            if line.startswith("{"):
                r = json.loads(line)
                anchor[(prec, r["size"], r["batch"], r["mode"])] = r["median_ms"]
    except OSError:
        pass
whole = {}
for prec in ("tf32", "fp16", "bf16"):
    try:
        for line in open(f"{out}/{prec}_softbio.jsonl"):
            if line.startswith("{") and "median_ms" in line:
                r = json.loads(line)
                whole[(prec, r["size"], r["batch"], r["mode"])] = r["median_ms"]
    except OSError:
        pass
convsum = {}
for b in (1, 256):
    try:
        for line in open(f"{out}/conv_mma_b{b}_224.txt"):
            m = re.match(r"# (\w+): all \d+ convolutions: ([0-9.]+) ms per forward", line)
            if m:
                convsum[(m.group(1), b)] = float(m.group(2))
    except OSError:
        pass
if anchor or convsum or whole:
    print("Tensor cores, ResNet-101 (ms per forward): PyTorch whole network vs softbio whole network and its")
    print("tensor-core convolutions only (224 px); ratio = PyTorch / softbio whole (else / convs)")
    print(f"{'case':>24} | {'PyTorch ms':>10} | {'softbio ms':>10} | {'softbio convs ms':>16} | {'ratio':>6}")
    for prec in ("tf32", "fp16"):
        for size, batch, mode in ((224, 1, "graph"), (224, 1, "eager"), (224, 256, "eager"), (128, 1, "graph")):
            t = anchor.get((prec, size, batch, mode), float("nan"))
            w = whole.get((prec, size, batch, mode), float("nan"))
            c = convsum.get((prec, batch), float("nan")) if size == 224 else float("nan")
            r = t / w if w == w else t / c
            print(f"{prec + ' ' + str(size) + 'px b' + str(batch) + ' ' + mode:>24} | {t:10.3f} | {w:10.3f} | {c:16.3f} | {r:6.2f}")
    for size, batch, mode in ((224, 1, "graph"), (224, 1, "eager"), (224, 256, "eager")):
        w = whole.get(("bf16", size, batch, mode), float("nan"))
        print(f"{'bf16 ' + str(size) + 'px b' + str(batch) + ' ' + mode:>24} | {'':>10} | {w:10.3f} | {convsum.get(('bf16', batch), float('nan')):16.3f} |")
    for prec in ("tf32kn", "fp16io", "bf16io"):  # the kernels the whole network runs (tf32, fp16, bf16)
        print(f"{prec + ' convs, batch 1/256':>24} | {'':>10} | {convsum.get((prec, 1), float('nan')):7.3f} / {convsum.get((prec, 256), float('nan')):7.3f} |")
    print()
print("earlier PyTorch figures (an H100 run of an earlier session, not kept in this repository; fp32, TF32 off, NCHW): 224 b1 eager 5.78 / graph 4.48 ms, b256 0.452 ms/img; "
      "128 b1 eager 6.03 / graph 4.61 ms, b256 0.195 ms/img")
PY
for f in "$OUT"/conv_*.txt; do [[ -f $f ]] && echo "$(basename "$f"): $(grep '^# all' "$f")"; done
echo
echo "tests: $(grep -cE '^cuda_[a-z0-9_]+ +PASS' "$OUT/tests.txt") passed, $(grep -cE '^cuda_[a-z0-9_]+ +(FAIL|SKIPPED)' "$OUT/tests.txt") failed or skipped; total $((SECONDS - T0))s; status $STATUS; results in $OUT"
exit $STATUS

#!/usr/bin/env bash
# benchmarks/gpu_check.sh — the GPU run, in one script (target: under 8 minutes on an H100).
#   1. configure + build with the CUDA backend (sm_90 + PTX),
#   2. run the GPU tests (kernels vs CPU references, whole networks vs the CPU backend),
#   3. time softbio ResNet-101 (224 and 128; batch 1 eager and CUDA graph; batch 256),
#   4. time PyTorch + cuDNN on the same card (fp32, TF32 off, cudnn.benchmark on; eager
#      and CUDA graph), and print one table with the ratios.
# Results go to $OUT (default: build-gpu/results). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build-gpu/results}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"

cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DSOFTBIO_CUDA=ON -DSOFTBIO_BUILD_BENCHMARKS=OFF \
      -DSOFTBIO_BUILD_EXAMPLES=ON -DPython3_EXECUTABLE=/usr/bin/python3 -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" \
      > "$OUT/configure.log" 2>&1
cmake --build build-gpu -j "$(nproc)" --target softbio_cuda_kernels gpu_model_check softbio_cuda_emulated \
      > "$OUT/build.log" 2>&1

# GPU tests: any skip here means no device was seen, which is a failure on a GPU machine.
(cd build-gpu && ctest -R cuda --output-on-failure) | tee "$OUT/tests.txt"
if grep -q "Skipped\|Not Run" "$OUT/tests.txt"; then echo "GPU tests were skipped: no device?"; exit 1; fi

build-gpu/tests/gpu_model_check --bench | tee "$OUT/softbio_gpu.txt"

/usr/bin/python3 - "$OUT" <<'PY' | tee "$OUT/table.txt"
import json, sys, time
out = sys.argv[1]
import torch, torchvision
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
net = torchvision.models.resnet101(weights=None).cuda().eval()

def timed(fn, iters):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for _ in range(iters):
        s.record(); fn(); e.record(); e.synchronize(); ms.append(s.elapsed_time(e))
    return sorted(ms)[len(ms) // 2]

torch_rows = {}
with torch.inference_mode():
    for size in (224, 128):
        for batch in (1, 256):
            x = torch.rand(batch, 3, size, size, device="cuda")
            for _ in range(5): net(x)
            torch.cuda.synchronize()
            torch_rows[(size, batch, False)] = timed(lambda: net(x), 50 if batch == 1 else 10)
            if batch == 1:
                g = torch.cuda.CUDAGraph()
                st = torch.cuda.Stream()
                st.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(st):
                    for _ in range(3): net(x)
                torch.cuda.current_stream().wait_stream(st)
                with torch.cuda.graph(g):
                    y = net(x)
                torch_rows[(size, batch, True)] = timed(g.replay, 50)

sb = {}
for line in open(f"{out}/softbio_gpu.txt"):
    if line.startswith("{"):
        r = json.loads(line)
        sb[(r["size"], r["batch"], r["graph"])] = r["median_ms"]
print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}")
print(f"{'case':>22} | {'softbio ms':>10} | {'PyTorch ms':>10} | {'PyTorch/softbio':>15} | {'softbio img/s':>13}")
for key in sorted(sb):
    size, batch, graph = key
    ref = torch_rows.get(key)
    name = f"{size}px batch {batch}{' graph' if graph else ''}"
    print(f"{name:>22} | {sb[key]:10.3f} | {ref if ref else float('nan'):10.3f} | "
          f"{(ref / sb[key]) if ref else float('nan'):15.2f} | {batch * 1000 / sb[key]:13.1f}")
PY
echo "results in $OUT"

#!/usr/bin/env python3
"""PyTorch GPU anchor: torchvision resnet101 on the same card as softbio-gpu-bench.

    python3 benchmarks/pytorch_gpu_anchor.py [--cases 224x1,224x256,128x1,128x256]
        [--iters 20] [--warmup 5] [--modes eager,graph] [--graph-max-batch 1] [--channels-last]
        [--precision fp32|tf32|fp16|bf16]

Settings: random weights, eval(), torch.inference_mode(), cudnn.benchmark = True, NCHW
unless --channels-last, and by --precision (issue 12's table):
  fp32 (default; the numerics softbio's default path computes in): TF32 off
       (torch.backends.cuda.matmul.allow_tf32 = False, torch.backends.cudnn.allow_tf32 =
       False, float32 matmul precision "highest");
  tf32 fp32 tensors with TF32 on (both allow_tf32 = True, matmul precision "high"): the
       tensor cores' tf32 path, like softbio's --precision tf32;
  fp16 / bf16: the model and the input converted with .half() / .bfloat16() (weights
       and activations 16-bit, cuDNN accumulates in fp32), like softbio's fp16 / bf16;
       pass --channels-last for cuDNN's fastest (NHWC) layout. The input is already on the device
(no host-to-device copy is timed). Timing: CUDA events around each call, one call at a
time, median of --iters after --warmup; "graph" captures one forward with
torch.cuda.CUDAGraph on a static input and times replays.

Prints one JSON line per (case, mode), the same fields as softbio-gpu-bench:
    {"impl": "torch", "mode": ..., "size": S, "batch": B, "median_ms": ..., "min_ms": ...,
     "ms_per_image": ..., "img_per_s": ..., "gflop_per_image": ..., "tflops": ..., "device": ...}
"""
import argparse
import json
import statistics
import sys

try:
    import torch
    import torchvision
except ImportError:
    sys.exit("pytorch_gpu_anchor.py needs torch + torchvision with CUDA")

# ResNet-101 conv + linear FLOPs per image: 2 x 7.80 GMAC at 224, 2 x 2.55 at 128 (the multiply-
# accumulates NetworkDesc::macs() counts for the torchvision-r101 preset, as softbio-gpu-bench reports).
GFLOP = {224: 15.60, 128: 5.10}


def time_events(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="224x1,224x256,128x1,128x256")
    ap.add_argument("--modes", default="eager,graph")
    ap.add_argument("--graph-max-batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "fp16", "bf16"])
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print("SKIPPED: no CUDA device for PyTorch")
        sys.exit(77)
    tf32 = args.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision, torch.float32)
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = torchvision.models.resnet101(weights=None).eval().to(device=device, dtype=dtype).to(memory_format=fmt)
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{name}, {args.precision}{' (TF32 off)' if args.precision == 'fp32' else ''}, {'NHWC' if args.channels_last else 'NCHW'}", file=sys.stderr)
    modes = [m for m in args.modes.split(",") if m]
    with torch.inference_mode():
        for case in args.cases.split(","):
            size, batch = (int(v) for v in case.split("x"))
            x = torch.rand(batch, 3, size, size, device=device, dtype=dtype).contiguous(memory_format=fmt)
            gflop = GFLOP.get(size, 15.60 * (size / 224) ** 2)
            for mode in modes:
                if mode == "eager":
                    med, mn = time_events(lambda: net(x), args.iters, args.warmup)
                elif mode == "graph":
                    if batch > args.graph_max_batch:
                        continue
                    static_x = x.clone()
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):  # warm up (cuDNN autotuning) outside the capture
                        for _ in range(3):
                            net(static_x)
                    torch.cuda.current_stream().wait_stream(side)
                    torch.cuda.synchronize()
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        static_y = net(static_x)
                    del static_y
                    med, mn = time_events(graph.replay, args.iters, args.warmup)
                else:
                    sys.exit(f"unknown mode {mode}")
                print(json.dumps({"impl": "torch", "mode": mode, "size": size, "batch": batch, "median_ms": round(med, 4),
                                  "min_ms": round(mn, 4), "ms_per_image": round(med / batch, 5),
                                  "img_per_s": round(batch / med * 1e3, 1), "gflop_per_image": gflop,
                                  "tflops": round(gflop * batch / med, 2),
                                  "layout": "NHWC" if args.channels_last else "NCHW", "precision": args.precision,
                                  "device": name}), flush=True)


if __name__ == "__main__":
    main()

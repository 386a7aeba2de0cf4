#!/usr/bin/env python3
"""End-to-end CPU comparison: softbio vs PyTorch on the same machine, in the same run.

    /usr/bin/python3 benchmarks/e2e_compare.py --softbio-bench build/benchmarks/softbio-bench \
        --model build/bench/torchvision-r101.safetensors [--rounds 5] [--threads 2]

For each case (input size, batch) it alternates R rounds of: softbio (softbio-bench,
a separate process, N timed calls after warm-up) and PyTorch (torchvision resnet101,
random weights, eval + inference_mode, fp32; eager channels_last and TorchScript
trace + freeze + optimize_for_inference), so machine noise hits both sides alike.
With --ort-dir (made by benchmarks/setup_ort.sh) ONNX Runtime's CPU provider runs in
the same rounds. It prints median ms per image for each and the ratios anchor / softbio
(> 1 means softbio is faster). The anchors are only anchors: softbio never uses them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torchvision
except ImportError:
    sys.exit("e2e_compare.py needs PyTorch + torchvision as the anchor: apt-get install python3-torch python3-torchvision "
             "(and run with /usr/bin/python3)")


def time_torch(fn, x, iters, warmup):
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--softbio-bench", required=True)
    ap.add_argument("--model", required=True, help="softbio file with the torchvision resnet101 layout")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default="224x1,224x8,128x1,128x64")
    ap.add_argument("--ort-dir", help="directory with node_modules/onnxruntime-node and resnet101.onnx")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    net = torchvision.models.resnet101(weights=None).eval()
    print(f"# torch {torch.__version__}, {args.threads} threads, {args.rounds} alternating rounds per case")
    ort = args.ort_dir and os.path.isfile(os.path.join(args.ort_dir, "resnet101.onnx"))
    env = dict(os.environ, NODE_PATH=os.path.join(args.ort_dir or ".", "node_modules"))
    ort_js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_anchor.js")
    print(f"{'case':>10} | {'softbio ms/img':>14} | {'torch eager CL':>14} | {'torch jit':>10} | {'ORT':>8} | "
          f"{'eager/softbio':>13} | {'jit/softbio':>11} | {'ORT/softbio':>11}")
    results = []
    for case in args.cases.split(","):
        size, batch = (int(v) for v in case.split("x"))
        x = torch.rand(batch, 3, size, size)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        net_cl = net.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            jit = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
        iters = max(2, args.iters if batch == 1 else 2)
        sb, eager, scripted, onnx = [], [], [], []
        for _ in range(args.rounds):
            out = subprocess.run([args.softbio_bench, "--model", args.model, "--batch", str(batch), "--size", str(size),
                                  "--iters", str(iters), "--warmup", "1", "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            sb.append(json.loads(out)["median_ms"] / batch)
            eager.append(time_torch(net_cl, x_cl, iters, 1) / batch)
            scripted.append(time_torch(jit, x, iters, 1) / batch)
            if ort:
                out = subprocess.run(["node", ort_js, os.path.join(args.ort_dir, "resnet101.onnx"), str(batch), str(size),
                                      str(iters), str(args.threads)], check=True, capture_output=True, text=True,
                                     env=env).stdout
                onnx.append(json.loads(out)["median_ms"] / batch)
        row = dict(case=case, softbio=statistics.median(sb), eager=statistics.median(eager),
                   jit=statistics.median(scripted), ort=statistics.median(onnx) if onnx else float("nan"))
        results.append(row)
        print(f"{case:>10} | {row['softbio']:14.1f} | {row['eager']:14.1f} | {row['jit']:10.1f} | {row['ort']:8.1f} | "
              f"{row['eager'] / row['softbio']:13.2f} | {row['jit'] / row['softbio']:11.2f} | "
              f"{row['ort'] / row['softbio']:11.2f}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end CPU comparison: softbio vs PyTorch and ONNX Runtime on the same machine, in the same run.

    /usr/bin/python3 benchmarks/e2e_compare.py --softbio-bench build/benchmarks/softbio-bench \
        --model build/bench/torchvision-r101.safetensors [--rounds 5] [--threads 2] \
        [--precision fp32,bf16] [--scaling] [--ort-dir build/ort] \
        [--predict build/examples/softbio-predict --image data/astronaut.jpg]

For each case (input size, batch) it alternates R rounds of: softbio (softbio-bench,
a separate process, N timed calls after warm-up; once per --precision) and PyTorch
(torchvision resnet101, random weights, eval + inference_mode, fp32; eager channels_last
and TorchScript trace + freeze + optimize_for_inference), so machine noise hits all sides
alike. With --ort-dir (made by benchmarks/setup_ort.sh) ONNX Runtime's CPU provider runs
in the same rounds; with --scaling softbio fp32 runs on 1 thread too, with --auto also with
--conv-kernel auto (Winograd for the 3x3 convs where it was measured faster). It prints median
ms per image for each and the ratios (> 1 means softbio is faster):
  ORT/softbio and jit/softbio per precision, fp32/bf16 (softbio's bf16 gain), 1thr/Nthr
then issue 9's targets, each met or missed by how much. With --predict and --image it
also measures softbio-predict's peak RSS on one image against the model file's size, and
the model's load time (softbio-bench's load_ms, warm page cache).
The anchors are only anchors: softbio never uses them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
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


# Issue 9's targets: (name, row key, at least).
TARGETS = [("fp32 softbio vs ONNX Runtime", "ort/fp32", 1.25), ("fp32 softbio vs TorchScript", "jit/fp32", 1.5),
           ("fp32 auto (Winograd) vs ONNX Runtime", "ort/auto", 1.25), ("fp32 auto vs TorchScript", "jit/auto", 1.5),
           ("bf16 vs softbio fp32", "fp32/bf16", 1.8), ("1 thread vs 2 threads (fp32)", "1thr/fp32", 1.85)]


def run_softbio(args, batch, size, iters, precision, threads, conv_kernel="packed"):
    out = subprocess.run([args.softbio_bench, "--model", args.model, "--batch", str(batch), "--size", str(size),
                          "--iters", str(iters), "--warmup", "1", "--threads", str(threads), "--precision", precision,
                          "--conv-kernel", conv_kernel], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def peak_rss_mib(cmd):
    """Peak resident set of one child process, MiB, as GNU time reports it.

    Not this process's wait4(): Linux carries the high-water mark of the address space a
    process had before exec() into its ru_maxrss, and a child of this script starts as a
    copy of it (torch loaded: over 2 GiB), so wait4 reports at least this script's own
    peak (measured: 525 MiB for a 197 MiB softbio-predict after this script held 300 MiB).
    /usr/bin/time is small, and it reports its own child's rusage."""
    if not os.path.exists("/usr/bin/time"):
        sys.exit("--predict needs GNU time (/usr/bin/time; Debian package time) to measure peak RSS")
    with tempfile.NamedTemporaryFile("r") as out:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name] + cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
        return int(out.read().split()[-1]) / 1024.0  # KiB


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--softbio-bench", required=True)
    ap.add_argument("--model", required=True, help="softbio file with the torchvision resnet101 layout")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default="224x1,224x8,128x1,128x64")
    ap.add_argument("--precision", default="fp32", help="softbio's precisions, comma-separated: fp32, bf16 (fp32 first)")
    ap.add_argument("--scaling", action="store_true", help="also run softbio fp32 on 1 thread (the 1 vs N ratio)")
    ap.add_argument("--auto", action="store_true", help="also run softbio fp32 with --conv-kernel auto (Winograd "
                                                        "where measured faster, LoadOptions::conv_kernel = Auto)")
    ap.add_argument("--ort-dir", help="directory with node_modules/onnxruntime-node and resnet101.onnx")
    ap.add_argument("--predict", help="softbio-predict, for the peak RSS on one image (with --image)")
    ap.add_argument("--image", help="the photo for --predict")
    args = ap.parse_args()
    precisions = [p for p in args.precision.split(",") if p]
    if not precisions or precisions[0] != "fp32" or any(p not in ("fp32", "bf16") for p in precisions):
        sys.exit("--precision: a list of fp32 and bf16 starting with fp32 (the ratios are against it)")

    torch.set_num_threads(args.threads)
    net = torchvision.models.resnet101(weights=None).eval()
    print(f"# torch {torch.__version__}, {args.threads} threads, {args.rounds} alternating rounds per case, "
          f"softbio precisions {','.join(precisions)}")
    ort = args.ort_dir and os.path.isfile(os.path.join(args.ort_dir, "resnet101.onnx"))
    env = dict(os.environ, NODE_PATH=os.path.join(args.ort_dir or ".", "node_modules"))
    ort_js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_anchor.js")
    cols = [f"softbio {p}" for p in precisions] + (["softbio auto"] if args.auto else []) + \
        (["softbio 1thr"] if args.scaling else []) + ["torch eager CL", "torch jit", "ORT"]
    ratio_cols = ["ort/fp32", "jit/fp32", "eager/fp32"] + (["ort/auto", "jit/auto"] if args.auto else []) + \
        (["ort/bf16", "jit/bf16", "fp32/bf16"] if "bf16" in precisions else []) + (["1thr/fp32"] if args.scaling else [])
    print("# ms per image (medians)")
    print(f"{'case':>8} | " + " | ".join(f"{c:>14}" for c in cols) + " | " + " | ".join(f"{c:>10}" for c in ratio_cols))
    results, load_ms = [], []
    for case in args.cases.split(","):
        size, batch = (int(v) for v in case.split("x"))
        x = torch.rand(batch, 3, size, size)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        net_cl = net.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            jit = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
        iters = max(2, args.iters if batch == 1 else 2)
        times = {c: [] for c in cols}
        for _ in range(args.rounds):
            for p in precisions:
                r = run_softbio(args, batch, size, iters, p, args.threads)
                times[f"softbio {p}"].append(r["median_ms"] / batch)
                if p == "fp32":
                    load_ms.append(r["load_ms"])
            if args.auto:
                times["softbio auto"].append(run_softbio(args, batch, size, iters, "fp32", args.threads,
                                                         "auto")["median_ms"] / batch)
            if args.scaling:
                times["softbio 1thr"].append(run_softbio(args, batch, size, iters, "fp32", 1)["median_ms"] / batch)
            times["torch eager CL"].append(time_torch(net_cl, x_cl, iters, 1) / batch)
            times["torch jit"].append(time_torch(jit, x, iters, 1) / batch)
            if ort:
                out = subprocess.run(["node", ort_js, os.path.join(args.ort_dir, "resnet101.onnx"), str(batch), str(size),
                                      str(iters), str(args.threads)], check=True, capture_output=True, text=True,
                                     env=env).stdout
                times["ORT"].append(json.loads(out)["median_ms"] / batch)
        med = {c: statistics.median(v) if v else float("nan") for c, v in times.items()}
        fp32 = med["softbio fp32"]
        row = dict(case=case, **{c: round(v, 3) for c, v in med.items()})
        row["ort/fp32"], row["jit/fp32"], row["eager/fp32"] = med["ORT"] / fp32, med["torch jit"] / fp32, \
            med["torch eager CL"] / fp32
        if "bf16" in precisions:
            bf16 = med["softbio bf16"]
            row["ort/bf16"], row["jit/bf16"], row["fp32/bf16"] = med["ORT"] / bf16, med["torch jit"] / bf16, fp32 / bf16
        if args.auto:
            row["ort/auto"], row["jit/auto"] = med["ORT"] / med["softbio auto"], med["torch jit"] / med["softbio auto"]
        if args.scaling:
            row["1thr/fp32"] = med["softbio 1thr"] / fp32
        results.append(row)
        print(f"{case:>8} | " + " | ".join(f"{med[c]:14.2f}" for c in cols) + " | " +
              " | ".join(f"{row[c]:10.2f}" for c in ratio_cols), flush=True)

    print("# issue 9 targets (ratio > 1: softbio faster; 'missed by' = how far below the target)")
    for name, key, goal in TARGETS:
        for row in results:
            if key in row and row[key] == row[key]:  # present and not NaN
                verdict = "met" if row[key] >= goal else f"missed by {100 * (1 - row[key] / goal):.0f}%"
                print(f"  {name:30} {row['case']:>8}: {row[key]:5.2f}x (target >= {goal}x) {verdict}")
    summary = dict(cases=results)
    if load_ms:
        summary["load_ms_median"] = statistics.median(load_ms)
        print(f"# model load (mapping, checks, BatchNorm folding, filter packing; warm page cache): median "
              f"{summary['load_ms_median']:.0f} ms over {len(load_ms)} loads (target <= 150 ms)")
    if args.predict and args.image:
        size_mib = os.path.getsize(args.model) / 2**20
        rss = peak_rss_mib([args.predict, "--model", args.model, "--threads", str(args.threads), "--no-progress",
                            args.image])
        summary.update(file_mib=size_mib, predict_peak_rss_mib=rss)
        print(f"# softbio-predict on one image: peak RSS {rss:.0f} MiB, model file {size_mib:.0f} MiB: "
              f"file + {rss - size_mib:.0f} MiB (target <= file + 60 MiB)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

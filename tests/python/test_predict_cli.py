#!/usr/bin/env python3
"""End-to-end tests of softbio-predict (the main job), run by ctest.

    /usr/bin/python3 tests/python/test_predict_cli.py --predict PATH --workdir DIR [--image data/astronaut.png]

Checks: the bundled image gets a prediction with the untrained banner; a directory
holding a truncated JPEG, a text file renamed .jpg, a zero-byte file and one valid image
gives three clear errors, one prediction and a non-zero exit code; JSON lines, CSV,
--probs, --profile and --dump work; bad usage exits 2.

--device: an unknown device is refused; `--device cuda` without a usable GPU (forced
with CUDA_VISIBLE_DEVICES="") or in a build without the CUDA backend exits 2 with a
message naming what is missing; with a GPU, `--device cuda` on several batches (the
pipelined upload) gives the CPU's labels and logits within the whole-network tolerance
rule of tests/test_model.cpp: max |cuda - cpu| <= 1e-4 * (max - min of the CPU logits)
per head (without a GPU that comparison is reported as skipped, or fails when the
environment sets SOFTBIO_REQUIRE_GPU=1, as benchmarks/gpu_check.sh does).

--precision: tf32 / fp16 on the CPU exit 2 with the reason and "; use --precision fp32";
bf16 on the CPU gives the fp32 labels (a near-tie excepted) and logits within 6e-2 of the
spread, or, without AVX512_BF16, exits 2 saying so; with a GPU, `--device cuda --precision tf32` (every convolution on
the tensor cores) gives the CPU's logits within tests/cuda/tf32_model.hpp's rule
(max |tf32 - cpu| <= 5e-3 * spread) and its labels (a CPU near-tie excepted).

Needs Pillow (to write the JPEG inputs) and numpy (to read the --dump output): without
them, exit 77 (skipped).
"""
import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import needs  # noqa: E402

needs.require("PIL", "numpy")  # else: "skipped: Pillow (PIL) not available", exit 77
from PIL import Image  # noqa: E402


def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--predict", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "..", "..", "data", "astronaut.png"))
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    env = dict(os.environ, SOFTBIO_DEMO_MODEL=os.path.join(a.workdir, "demo.safetensors"))
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    # 1. The bundled image, --no-detect's default (demo) model, table output.
    rc, out, err = run([a.predict, "--no-detect", a.image], env)
    check(rc == 0, "bundled image: exit 0")
    check(out.count("UNTRAINED WEIGHTS") == 1 and "UNTRAINED WEIGHTS" not in err,
          "untrained banner once per run (the table's first line)")
    check("astronaut.png" in out and ("male" in out) and "rank" in out, "table row with gender and age")
    rc, out, err = run([a.predict, "--no-detect", "--format", "jsonl", a.image, a.image], env)
    check(rc == 0 and err.count("UNTRAINED WEIGHTS") == 1 and "UNTRAINED" not in out,
          "jsonl: the banner once on stderr, the rows say trained: false")

    # 2. A directory with three bad files and one good one.
    d = os.path.join(a.workdir, "mixed")
    os.makedirs(d)
    img = Image.open(a.image).convert("RGB")
    img.save(os.path.join(d, "good.jpg"), quality=90)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    with open(os.path.join(d, "truncated.jpg"), "wb") as f:
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    with open(os.path.join(d, "text.jpg"), "w") as f:
        f.write("this is not an image\n" * 20)
    open(os.path.join(d, "empty.jpg"), "wb").close()
    rc, out, err = run([a.predict, "--no-detect", "--format", "jsonl", "--batch", "3", d], env)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    by_name = {os.path.basename(r["image"]): r for r in rows}
    check(rc == 1, f"mixed directory: exit code 1 (got {rc})")
    check(len(rows) == 4, f"four rows reported (got {len(rows)})")
    check(by_name.get("good.jpg", {}).get("ok") is True, "valid image predicted")
    check("gender" in by_name.get("good.jpg", {}).get("heads", {}), "prediction has a gender head")
    for name in ("truncated.jpg", "text.jpg", "empty.jpg"):
        r = by_name.get(name, {})
        check(r.get("ok") is False and name in r.get("error", ""), f"{name}: error naming the file: {r.get('error')}")
    check("truncat" in by_name.get("truncated.jpg", {}).get("error", "").lower(), "truncated JPEG reported as truncated")
    check("empty" in by_name.get("empty.jpg", {}).get("error", "").lower(), "zero-byte file reported as empty")
    check("3 of 4 inputs failed" in err, "summary on stderr")

    # 3. CSV with cumulative probabilities.
    rc, out, err = run([a.predict, "--no-detect", "--format", "csv", "--probs", a.image], env)
    rows = list(csv.DictReader(io.StringIO(out)))
    check(rc == 0 and len(rows) == 1, "csv: one row")
    if rows:
        probs = [float(p) for p in rows[0]["age_probabilities"].split()]
        check(len(probs) == 25 and all(0 <= p <= 1 for p in probs), "csv: 25 cumulative age probabilities")
        check(rows[0]["trained"] == "false", "csv: trained column says false")
        check(float(rows[0]["age_value"]) == int(rows[0]["age_label"]) + 15, "csv: age = rank + 15")

    # 4. --profile and --dump.
    dump = os.path.join(a.workdir, "dump")
    rc, out, err = run([a.predict, "--no-detect", "--profile", "--dump", dump, a.image], env)
    check(rc == 0 and "layer3.22.conv2" in out and "GFLOP/s" in out, "--profile prints a per-layer table")
    files = set(os.listdir(dump)) if os.path.isdir(dump) else set()
    check({"conv1.npy", "layer1.0.npy", "layer4.npy", "features.npy", "head.age.npy"} <= files,
          f"--dump wrote layer outputs ({len(files)} files)")
    try:
        import numpy as np
        feats = np.load(os.path.join(dump, "features.npy"))
        stage = np.load(os.path.join(dump, "layer4.npy"))
        check(feats.shape == (1, 8192) and stage.shape == (1, 2048, 4, 4), "dumped shapes are NCHW / [N, F]")
    except ImportError:
        check(False, "numpy is needed to read the dump")

    # 5. Usage errors.
    rc, _, err = run([a.predict, "--no-detect", "--format", "xml", a.image], env)
    check(rc == 2 and "--format" in err, "bad --format: exit 2 with a message")
    rc, _, err = run([a.predict, "--no-detect", "--model", os.path.join(a.workdir, "missing.safetensors"), a.image], env)
    check(rc == 3 and "missing.safetensors" in err, "missing model file: exit 3 naming the file")

    # 6. --device.
    rc, _, err = run([a.predict, "--no-detect", "--device", "tpu", a.image], env)
    check(rc == 2 and '--device must be cpu or cuda, got "tpu"' in err, f"--device tpu: exit 2 naming the choices: {err.strip()}")
    not_built = "softbio-predict: --device cuda: this program was built without softbio's CUDA backend"
    no_gpu = "softbio-predict: --device cuda: no "
    rc, out, err = run([a.predict, "--no-detect", "--device", "cuda", a.image], dict(env, CUDA_VISIBLE_DEVICES=""))
    check(rc == 2 and out == "" and (err.startswith(not_built) or err.startswith(no_gpu)) and
          err.rstrip().endswith("; use --device cpu"),
          f"--device cuda without a usable GPU: exit 2 naming what is missing: {err.strip()}")
    if err.startswith(no_gpu):
        check("CUDA device" in err, "the no-GPU message says what the CUDA runtime saw")

    # 7. --device cuda against the CPU, over several pipelined batches (3 + 3 + 1 images).
    d = os.path.join(a.workdir, "several")
    os.makedirs(d)
    for i in range(7):
        im = img.rotate(7 * i) if i % 2 else img.transpose(Image.FLIP_LEFT_RIGHT).rotate(-5 * i)
        im.save(os.path.join(d, f"face{i}.png"))
    rc, out, err = run([a.predict, "--no-detect", "--device", "cuda", "--format", "jsonl", "--batch", "3", d], env)
    if rc == 2 and (not_built in err or no_gpu in err):
        # benchmarks/gpu_check.sh sets SOFTBIO_REQUIRE_GPU=1: there, no GPU is a failure.
        check(os.environ.get("SOFTBIO_REQUIRE_GPU") != "1", f"SOFTBIO_REQUIRE_GPU=1 but --device cuda failed: {err.strip()}")
        print(f"skipped: CUDA against CPU ({err.strip()})")
    else:
        rc_cpu, out_cpu, err_cpu = run([a.predict, "--no-detect", "--format", "jsonl", "--batch", "3", d], env)
        check(rc == 0 and rc_cpu == 0, f"--device cuda and cpu on 7 images: exit 0 (got {rc}, {rc_cpu}): {err.strip()[-300:]}")
        gpu = {os.path.basename(r["image"]): r for r in map(json.loads, out.splitlines()) if r}
        cpu = {os.path.basename(r["image"]): r for r in map(json.loads, out_cpu.splitlines()) if r}
        check(sorted(gpu) == sorted(cpu) and len(cpu) == 7, f"cuda and cpu report the same 7 images ({len(gpu)}, {len(cpu)})")
        for head in ("gender", "age"):
            ref = [v for n in sorted(cpu) for v in cpu[n]["heads"][head]["logits"]]
            got = [v for n in sorted(cpu) if n in gpu for v in gpu[n]["heads"][head]["logits"]]
            spread = max(ref) - min(ref)
            worst = max((abs(g - r) for g, r in zip(got, ref)), default=float("inf")) if len(got) == len(ref) else float("inf")
            check(worst <= 1e-4 * spread, f"cuda {head} logits within 1e-4 of the CPU's spread: max|diff| {worst:.3g}, spread {spread:.3g}")
            labels = all(gpu.get(n, {}).get("heads", {}).get(head, {}).get("label") == cpu[n]["heads"][head]["label"] for n in cpu)
            check(labels, f"cuda {head} labels identical to the CPU's")

    # 8. --precision.
    for prec, device, why in (("tf32", "cpu", "precision tf32: the CPU backend computes in fp32 or bf16"),
                              ("fp16", "cpu", "precision fp16: the CPU backend computes in fp32 or bf16")):
        rc, out, err = run([a.predict, "--no-detect", "--device", device, "--precision", prec, a.image], env)
        check(rc == 2 and out == "" and why in err and err.rstrip().endswith("; use --precision fp32"),
              f"--precision {prec} on {device}: exit 2 with the reason: {err.strip()}")
    # tf32 / fp16 / bf16 on cuda against the CPU's fp32: tests/cuda/tf32_model.hpp's rules.
    # And the CPU's own bf16 (kernels/cpu/gemm_bf16.hpp, the same arithmetic as the GPU's
    # bf16, so the same rule), or its refusal where the CPU or the build lacks AVX512_BF16.
    for device, prec, rule in (("cuda", "tf32", 5e-3), ("cuda", "fp16", 5e-3), ("cuda", "bf16", 6e-2),
                               ("cpu", "bf16", 6e-2)):
        rc, out, err = run([a.predict, "--no-detect", "--device", device, "--precision", prec, "--format", "jsonl",
                            "--batch", "3", d], env)
        if device == "cpu" and rc == 2:
            check("precision bf16: the CPU backend's bf16 needs AVX512_BF16" in err and
                  err.rstrip().endswith("; use --precision fp32"), f"--precision bf16 on the CPU refused with the reason: {err.strip()}")
            print(f"skipped: --precision bf16 on the CPU against fp32 ({err.strip()})")
            continue
        if rc == 2 and (not_built in err or no_gpu in err):
            check(os.environ.get("SOFTBIO_REQUIRE_GPU") != "1", f"SOFTBIO_REQUIRE_GPU=1 but --precision {prec} failed: {err.strip()}")
            print(f"skipped: --device cuda --precision {prec} against CPU ({err.strip()})")
            continue
        rc_cpu, out_cpu, _ = run([a.predict, "--no-detect", "--format", "jsonl", "--batch", "3", d], env)
        check(rc == 0 and rc_cpu == 0, f"--precision {prec} and cpu on 7 images: exit 0 (got {rc}, {rc_cpu}): {err.strip()[-300:]}")
        gpu = {os.path.basename(r["image"]): r for r in map(json.loads, out.splitlines()) if r}
        cpu = {os.path.basename(r["image"]): r for r in map(json.loads, out_cpu.splitlines()) if r}
        check(sorted(gpu) == sorted(cpu) and len(cpu) == 7, f"{prec} and cpu report the same 7 images ({len(gpu)}, {len(cpu)})")
        for head in ("gender", "age"):
            ref = [v for n in sorted(cpu) for v in cpu[n]["heads"][head]["logits"]]
            got = [v for n in sorted(cpu) if n in gpu for v in gpu[n]["heads"][head]["logits"]]
            allowed = rule * (max(ref) - min(ref))
            worst = max((abs(g - r) for g, r in zip(got, ref)), default=float("inf")) if len(got) == len(ref) else float("inf")
            check(worst <= allowed, f"{device} {prec} {head} logits within {rule:g} of the CPU fp32 spread: max|diff| {worst:.3g}, "
                                    f"allowed {allowed:.3g} ({worst / max(allowed / rule, 1e-30):.2g} of the spread)")
            for n in cpu:
                z = cpu[n]["heads"][head]["logits"]
                top = sorted(z, reverse=True)
                margin = min(top[0] - top[1] if len(top) > 1 else float("inf"), min(abs(v) for v in z))
                same = gpu.get(n, {}).get("heads", {}).get(head, {}).get("label") == cpu[n]["heads"][head]["label"]
                check(same or margin <= 2 * allowed, f"{prec} {head} label of {n} identical to the CPU's (or a near-tie)")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

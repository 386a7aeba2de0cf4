#!/usr/bin/python3
"""Parity of softbio's image decoding and preprocessing with PIL 9.4 + torchvision 0.14.

    /usr/bin/python3 tests/python/test_preprocess_parity.py --tool build/tests/preprocess_dump --workdir DIR

For every case the C++ tool `preprocess_dump IMAGE OUT.npy --steps JSON` writes a
[1, 3, H, W] float32 tensor; the reference is

    torchvision.transforms.Compose([...])(PIL.Image.open(IMAGE).convert("RGB"))[None]

Three groups (images from make_test_images.py, written into --workdir):
  chains   8-bit RGB PNGs (the astronaut, noise, gradients, odd sizes, 1-pixel images)
           through the chains of Raschka's CelebA notebook, coral-cnn, MORPH-2, plus
           downscaling, upscaling, mixed, identity, odd crops, crops larger than the
           image and Normalize. Required: bit-exact (max |diff| = 0), or within
           --tolerance (default 0) levels of 1/255.
  decode   to_tensor only: the decoded pixels vs PIL's convert("RGB") for PNG, BMP, TGA,
           GIF variants (exact) and JPEG (stb vs libjpeg: reported, must stay within
           --jpeg-tolerance levels, default 24, and mean |diff| within 2 levels).
  broken   truncated / empty / non-image / absurd-size files: the tool must refuse each
           with exit status 1 and a message containing the expected word; what PIL does
           with the same file is reported.
Prints the max |diff| (in 1/255 levels) and the number of differing values per case; exits
non-zero if any case fails; 77 (skipped) without PyTorch, torchvision, numpy or PIL.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import needs  # noqa: E402

needs.require("torch", "torchvision", "numpy", "PIL")  # else: "skipped: PyTorch not available", exit 77
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402

import make_test_images  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def crop(h, w):
    return {"op": "center_crop", "size": [h, w]}


def resize(h, w):
    return {"op": "resize", "size": [h, w], "filter": "bilinear"}


TO_TENSOR = {"op": "to_tensor"}


def normalize(mean, std):
    return {"op": "normalize", "mean": mean, "std": std}


def to_torchvision(steps):
    ts = []
    for s in steps:
        if s["op"] == "center_crop":
            ts.append(T.CenterCrop(tuple(s["size"])))
        elif s["op"] == "resize":
            ts.append(T.Resize(tuple(s["size"]), interpolation=T.InterpolationMode.BILINEAR))
        elif s["op"] == "to_tensor":
            ts.append(T.ToTensor())
        elif s["op"] == "normalize":
            ts.append(T.Normalize(s["mean"], s["std"]))
    return T.Compose(ts)


# name -> steps
CHAINS = {
    "celeba_nb(crop178,resize128)": [crop(178, 178), resize(128, 128), TO_TENSOR],
    "coral_cnn(resize128,crop120)": [resize(128, 128), crop(120, 120), TO_TENSOR],
    "morph2(crop140,resize128,crop120)": [crop(140, 140), resize(128, 128), crop(120, 120), TO_TENSOR],
    "resize_down(61x47)": [resize(61, 47), TO_TENSOR],
    "resize_up(300x257)": [resize(300, 257), TO_TENSOR],
    "resize_mixed(40x333)": [resize(40, 333), TO_TENSOR],
    "resize_big_factor(7x5)": [resize(7, 5), TO_TENSOR],
    "crop_odd(101x77)": [crop(101, 77), TO_TENSOR],
    "crop_larger(300x300)": [crop(300, 300), TO_TENSOR],
    "crop_larger_odd(231x133),resize(64x64)": [crop(231, 133), resize(64, 64), TO_TENSOR],
    "crop_one_axis_larger(20x400)": [crop(20, 400), TO_TENSOR],
    "resize128_normalize_imagenet": [resize(128, 128), TO_TENSOR, normalize(IMAGENET_MEAN, IMAGENET_STD)],
    "identity(to_tensor)": [TO_TENSOR],
}


def run_tool(tool, image, out, steps, repeat=1):
    cmd = [tool, image, out, "--steps", json.dumps(steps)]
    if repeat > 1:
        cmd += ["--repeat", str(repeat)]
    return subprocess.run(cmd, capture_output=True, text=True)


def compare(ref, got):
    """max |diff| in levels of 1/255, number of differing values."""
    if ref.shape != got.shape:
        return None, None
    d = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    return float(d.max()) * 255.0, int((ref != got).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", required=True, help="path of the preprocess_dump executable")
    ap.add_argument("--workdir", required=True, help="folder for the generated images and tensors")
    ap.add_argument("--tolerance", type=float, default=0.0,
                    help="allowed max |diff| for lossless inputs, in levels of 1/255 (default 0: bit-exact)")
    ap.add_argument("--jpeg-tolerance", type=float, default=24.0, help="allowed max |diff| for JPEG decode, in levels")
    args = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    astronaut = os.path.join(here, "..", "..", "data", "astronaut.png")
    os.makedirs(args.workdir, exist_ok=True)
    inputs, decodes, broken = make_test_images.make_images(os.path.join(args.workdir, "images"), astronaut)
    out = os.path.join(args.workdir, "out.npy")
    print(f"PIL {Image.__version__}, torchvision {torchvision.__version__}, torch {torch.__version__}")
    failures = []
    tol = args.tolerance + 1e-6

    # ---- chains --------------------------------------------------------------------------
    print("\n== preprocessing chains (8-bit RGB PNG inputs): max |diff| in 1/255 levels, differing values ==")
    per_chain = {}
    for cname, steps in CHAINS.items():
        tf = to_torchvision(steps)
        worst, total_bad, total = 0.0, 0, 0
        for iname, path in inputs:
            r = run_tool(args.tool, path, out, steps, repeat=2)
            if r.returncode != 0:
                failures.append(f"{cname} on {iname}: tool failed: {r.stderr.strip()}")
                continue
            ref = tf(Image.open(path).convert("RGB")).numpy()[None]
            got = np.load(out)
            md, bad = compare(ref, got)
            if md is None:
                failures.append(f"{cname} on {iname}: shape {got.shape}, torchvision {ref.shape}")
                continue
            worst, total_bad, total = max(worst, md), total_bad + bad, total + ref.size
            if md > tol:
                failures.append(f"{cname} on {iname}: max |diff| {md:.3f} levels, {bad} values differ")
        per_chain[cname] = (worst, total_bad, total)
        print(f"  {cname:42s} {len(inputs):2d} images  max {worst:.3f}  differing {total_bad}/{total}")

    # ---- random sizes ------------------------------------------------------------------
    print("\n== random image sizes and chains (seeded): crop and/or resize, up and down ==")
    rng = np.random.default_rng(2024)
    worst, total_bad, total, n_cases = 0.0, 0, 0, 40
    for k in range(n_cases):
        h, w = (int(v) for v in rng.integers(1, 300, 2))
        path = os.path.join(args.workdir, "random.png")
        Image.fromarray(make_test_images.noise(h, w, 1000 + k), "RGB").save(path)
        steps = []
        if k % 3 != 1:
            steps.append(crop(*(int(v) for v in rng.integers(1, 320, 2))))
        if k % 3 != 2:
            steps.append(resize(*(int(v) for v in rng.integers(1, 12 if k % 4 == 0 else 320, 2))))
        steps.append(TO_TENSOR)
        r = run_tool(args.tool, path, out, steps)
        if r.returncode != 0:
            failures.append(f"random {h}x{w} {steps}: tool failed: {r.stderr.strip()}")
            continue
        ref = to_torchvision(steps)(Image.open(path).convert("RGB")).numpy()[None]
        md, bad = compare(ref, np.load(out))
        if md is None or md > tol:
            failures.append(f"random {h}x{w} {json.dumps(steps)}: max |diff| {md} levels, {bad} values differ")
            continue
        worst, total_bad, total = max(worst, md), total_bad + bad, total + ref.size
    print(f"  {n_cases} cases  max {worst:.3f}  differing {total_bad}/{total}")

    # ---- decode --------------------------------------------------------------------------
    print("\n== decode (to_tensor only) vs PIL convert('RGB'): max |diff| levels, mean |diff|, differing ==")
    for name, path, exact in decodes:
        r = run_tool(args.tool, path, out, [TO_TENSOR])
        if r.returncode != 0:
            failures.append(f"decode {name}: tool failed: {r.stderr.strip()}")
            print(f"  {name:32s} TOOL FAILED: {r.stderr.strip()}")
            continue
        pil = Image.open(path)
        mode = pil.mode
        ref = T.ToTensor()(pil.convert("RGB")).numpy()[None]
        got = np.load(out)
        md, bad = compare(ref, got)
        if md is None:
            failures.append(f"decode {name}: shape {got.shape}, PIL {ref.shape}")
            continue
        mean = float(np.abs(ref - got).mean()) * 255.0
        limit = tol if exact else args.jpeg_tolerance + 1e-6
        ok = md <= limit and (exact or mean <= 2.0)
        if not ok:
            failures.append(f"decode {name}: max |diff| {md:.2f} levels (mean {mean:.3f}), {bad} values differ")
        print(f"  {name:32s} PIL mode {mode:5s} {'exact' if exact else 'tol  '}  max {md:6.2f}  mean {mean:.3f}  "
              f"differing {bad}/{ref.size}{'' if ok else '   FAIL'}")

    # ---- broken --------------------------------------------------------------------------
    print("\n== files that must be refused ==")
    for name, path, expect in broken:
        r = run_tool(args.tool, path, out, [TO_TENSOR])
        try:
            Image.open(path).convert("RGB")
            pil = "PIL opens it"
        except Exception as e:  # noqa: BLE001
            pil = f"PIL: {type(e).__name__}"
        msg = r.stderr.strip()
        ok = r.returncode == 1 and expect.lower() in msg.lower() and os.path.basename(path) in msg
        if not ok:
            failures.append(f"broken {name}: exit {r.returncode}, message {msg!r} (expected to contain {expect!r} and the file name)")
        print(f"  {name:28s} exit {r.returncode}  [{pil}]  {msg}{'' if ok else '   FAIL'}")

    print()
    if failures:
        print(f"FAILED ({len(failures)}):")
        for f in failures:
            print("  " + f)
        return 1
    print("all preprocessing chains bit-exact" if args.tolerance == 0 else "all within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())

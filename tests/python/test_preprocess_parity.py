#!/usr/bin/python3
"""Parity of softbio's image decoding and preprocessing with PIL 9.4 + torchvision 0.14.

    /usr/bin/python3 tests/python/test_preprocess_parity.py --tool build/tests/preprocess_dump --workdir DIR

For every case the C++ tool `preprocess_dump IMAGE OUT.npy --steps JSON` writes a
[1, 3, H, W] float32 tensor; the reference is

    torchvision.transforms.Compose([...])(PIL.Image.open(IMAGE).convert("RGB"))[None]

Groups (images from make_test_images.py, written into --workdir):
  chains   8-bit RGB PNGs (the astronaut, noise, gradients, odd sizes, 1-pixel images)
           through the chains of Raschka's CelebA notebook, coral-cnn, MORPH-2,
           torchvision's ImageNet evaluation (Resize(256) of the shorter side ->
           CenterCrop(224) -> Normalize), plus downscaling, upscaling, mixed, identity,
           odd crops, crops larger than the image, shorter-side resizes with and without
           max_size, and Normalize. Required: bit-exact (max |diff| = 0), or within
           --tolerance (default 0) levels of 1/255. Where a shorter-side resize would
           make a side larger than 32768 (e.g. Resize(256) of a 1x300 image) or 0
           (max_size on a very long image), the tool must refuse the image instead
           (exit 1, "each side must be 1..32768"); torchvision's own size function
           (_compute_resized_output_size) says which images those are.
  shorter  non-square images of random sizes through random shorter-side resizes
           (portrait, landscape, square, with and without max_size, chained with crops):
           the output size must equal torchvision's and the values must be bit-exact.
  presets  the chains of softbio's C++ presets (model/presets.hpp, via preprocess_dump
           --preset) against the transforms their sources publish: torchvision-rN against
           torchvision.models.ResNetN_Weights.IMAGENET1K_V1.transforms() itself (Resize(256)
           of the shorter side -> CenterCrop(224) -> Normalize), celeba-rN / flagship and
           coral-afad against docs/MODELS.md 1.2 and 2.6. Bit-exact on every input image,
           non-square ones included.
  sizes    what the typed chain says (preprocess_dump --describe): the fixed output size
           (0x0 when it depends on the image; a center_crop after a shorter-side resize
           fixes it again) and the chain written back as JSON, unchanged.
  refused  resize steps the parser must refuse, each with its message.
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


def resize_shorter(n, max_size=None):
    """torchvision's Resize(n[, max_size]): the shorter side becomes n, aspect ratio kept."""
    step = {"op": "resize", "shorter_side": n, "filter": "bilinear"}
    if max_size is not None:
        step["max_size"] = max_size
    return step


TO_TENSOR = {"op": "to_tensor"}


def normalize(mean, std):
    return {"op": "normalize", "mean": mean, "std": std}


def to_torchvision(steps):
    ts = []
    for s in steps:
        if s["op"] == "center_crop":
            ts.append(T.CenterCrop(tuple(s["size"])))
        elif s["op"] == "resize" and "shorter_side" in s:
            ts.append(T.Resize(s["shorter_side"], interpolation=T.InterpolationMode.BILINEAR,
                               max_size=s.get("max_size")))
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
    "torchvision_eval(shorter256,crop224,norm)": [resize_shorter(256), crop(224, 224), TO_TENSOR,
                                                  normalize(IMAGENET_MEAN, IMAGENET_STD)],
    "torchvision_v2(shorter232,crop224)": [resize_shorter(232), crop(224, 224), TO_TENSOR],
    "shorter128(no crop: non-square output)": [resize_shorter(128), TO_TENSOR],
    "shorter300(upscaling)": [resize_shorter(300), TO_TENSOR],
    "shorter100,max_size150": [resize_shorter(100, 150), TO_TENSOR],
    "crop(90x60),shorter45,crop(40x30)": [crop(90, 60), resize_shorter(45), crop(40, 30), TO_TENSOR],
    "shorter64,max_size65,resize(50x70)": [resize_shorter(64, 65), resize(50, 70), TO_TENSOR],
}


def torchvision_refuses_or_too_big(steps, h, w):
    """None when the chain runs on an h x w image within softbio's limits; else why not.
    Sizes come from torchvision's own function, so the test does not trust the C++ one."""
    for s in steps:
        if s["op"] == "center_crop" or (s["op"] == "resize" and "size" in s):
            h, w = s["size"]
        elif s["op"] == "resize":
            h, w = torchvision.transforms.functional._compute_resized_output_size(
                (h, w), [s["shorter_side"]], s.get("max_size"))
            if min(h, w) < 1 or max(h, w) > 32768:
                return f"shorter-side resize gives {w}x{h}"
    return None


def describe(step):
    if step["op"] == "resize" and "shorter_side" in step:
        return f"shorter{step['shorter_side']}" + (f"/max{step['max_size']}" if "max_size" in step else "")
    if "size" in step:
        return f"{step['op']}{step['size'][0]}x{step['size'][1]}"
    return step["op"]


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
        refused = 0
        for iname, path in inputs:
            r = run_tool(args.tool, path, out, steps, repeat=2)
            with Image.open(path) as im:
                why_not = torchvision_refuses_or_too_big(steps, im.height, im.width)
            if why_not is not None:  # softbio must refuse this image, with the limit in the message
                refused += 1
                if r.returncode != 1 or "each side must be 1..32768" not in r.stderr:
                    failures.append(f"{cname} on {iname} ({why_not}): expected a refusal naming the limit, got exit "
                                    f"{r.returncode}: {r.stderr.strip()}")
                continue
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
        print(f"  {cname:42s} {len(inputs):2d} images  max {worst:.3f}  differing {total_bad}/{total}"
              + (f"  ({refused} refused: a side outside 1..32768)" if refused else ""))

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

    # ---- shorter-side resizes on non-square images -----------------------------------------
    print("\n== shorter-side resizes (torchvision Resize(N[, max_size])) on random non-square images ==")
    rng = np.random.default_rng(256)
    worst, total_bad, total, n_cases, shapes = 0.0, 0, 0, 60, set()
    for k in range(n_cases):
        h, w = (int(v) for v in rng.integers(2, 400, 2))
        if k % 6 == 0:
            w = h  # square: the tie short = width
        elif k % 6 in (1, 2) and h == w:
            w = h + 1
        path = os.path.join(args.workdir, "shorter.png")
        Image.fromarray(make_test_images.noise(h, w, 5000 + k), "RGB").save(path)
        n = int(rng.integers(1, 300))
        steps = [resize_shorter(n, n + int(rng.integers(1, 200)) if k % 3 == 1 else None)]
        if k % 4 == 2:
            steps.insert(0, crop(int(rng.integers(1, 400)), int(rng.integers(1, 400))))
        if k % 5 == 3:
            steps.append(crop(int(rng.integers(1, 300)), int(rng.integers(1, 300))))
        steps.append(TO_TENSOR)
        if torchvision_refuses_or_too_big(steps, h, w) is not None:
            continue
        r = run_tool(args.tool, path, out, steps)
        if r.returncode != 0:
            failures.append(f"shorter {h}x{w} {json.dumps(steps)}: tool failed: {r.stderr.strip()}")
            continue
        ref = to_torchvision(steps)(Image.open(path).convert("RGB")).numpy()[None]
        got = np.load(out)
        md, bad = compare(ref, got)
        if md is None or md > tol:
            failures.append(f"shorter {h}x{w} {json.dumps(steps)}: torchvision {ref.shape}, softbio {got.shape}, "
                            f"max |diff| {md} levels, {bad} values differ")
            continue
        shapes.add(ref.shape[2:])
        worst, total_bad, total = max(worst, md), total_bad + bad, total + ref.size
    print(f"  {n_cases} cases, {len(shapes)} distinct output sizes  max {worst:.3f}  differing {total_bad}/{total}")

    # ---- the C++ presets against their published transforms --------------------------------
    print("\n== C++ presets (model/presets.hpp) vs the transforms their sources publish ==")
    celeba_tf = T.Compose([T.CenterCrop((178, 178)), T.Resize((128, 128)), T.ToTensor()])  # MODELS.md 1.2
    coral_tf = T.Compose([T.Resize((128, 128)), T.CenterCrop((120, 120)), T.ToTensor()])   # MODELS.md 2.6
    presets = [(f"torchvision-r{n}", f"ResNet{n}_Weights.IMAGENET1K_V1.transforms()",
                getattr(torchvision.models, f"ResNet{n}_Weights").IMAGENET1K_V1.transforms())
               for n in (18, 34, 50, 101, 152)]
    presets += [(name, "CenterCrop(178) -> Resize((128,128)) -> ToTensor", celeba_tf)
                for name in ("flagship", "celeba-r18", "celeba-r101")]
    presets.append(("coral-afad", "Resize((128,128)) -> CenterCrop(120) -> ToTensor", coral_tf))
    for preset, ref_name, tf in presets:
        r = subprocess.run([args.tool, inputs[0][1], out, "--preset", preset, "--describe"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            failures.append(f"preset {preset}: tool failed: {r.stderr.strip()}")
            continue
        steps = json.loads(r.stdout)["steps"]
        worst, total_bad, total, refused = 0.0, 0, 0, 0
        for iname, path in inputs:
            r = subprocess.run([args.tool, path, out, "--preset", preset], capture_output=True, text=True)
            with Image.open(path) as im:
                if torchvision_refuses_or_too_big(steps, im.height, im.width) is not None:
                    refused += 1
                    if r.returncode != 1:
                        failures.append(f"preset {preset} on {iname}: expected a refusal, got exit {r.returncode}")
                    continue
            if r.returncode != 0:
                failures.append(f"preset {preset} on {iname}: tool failed: {r.stderr.strip()}")
                continue
            ref = tf(Image.open(path).convert("RGB")).numpy()[None]
            md, bad = compare(ref, np.load(out))
            if md is None or md > tol:
                failures.append(f"preset {preset} on {iname}: max |diff| {md} levels, {bad} values differ from {ref_name}")
                continue
            worst, total_bad, total = max(worst, md), total_bad + bad, total + ref.size
        print(f"  {preset:17s} vs {ref_name:48s} max {worst:.3f}  differing {total_bad}/{total}"
              + (f"  ({refused} refused)" if refused else ""))

    # ---- sizes the typed chain reports, and the JSON it writes back ------------------------
    print("\n== fixed output size and JSON round trip (preprocess_dump --describe) ==")
    probe = os.path.join(args.workdir, "probe_300x200.png")  # 200 wide, 300 high
    Image.fromarray(make_test_images.noise(300, 200, 77), "RGB").save(probe)
    for steps, fixed in [
            ([resize_shorter(256), crop(224, 224), TO_TENSOR, normalize(IMAGENET_MEAN, IMAGENET_STD)], [224, 224]),
            ([resize_shorter(256), TO_TENSOR], [0, 0]),                   # depends on the image
            ([resize_shorter(64, 80), TO_TENSOR], [0, 0]),
            ([crop(100, 80), resize_shorter(50), TO_TENSOR], [62, 50]),   # fixed by the crop before it
            ([crop(80, 100), resize_shorter(50, 60), TO_TENSOR], [48, 60]),  # long 62 > 60: int(60*50/62) = 48
            ([resize(128, 128), resize_shorter(120), TO_TENSOR], [120, 120]),
            ([resize_shorter(128), crop(120, 110), TO_TENSOR], [120, 110]),
            ([TO_TENSOR], [0, 0])]:
        r = subprocess.run([args.tool, probe, out, "--steps", json.dumps(steps), "--describe"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"describe {json.dumps(steps)}: tool failed: {r.stderr.strip()}")
            continue
        info = json.loads(r.stdout)
        ref = to_torchvision(steps)(Image.open(probe).convert("RGB")).numpy()
        want = {"fixed_size": fixed, "output_size": list(ref.shape[1:]), "steps": steps}
        problems = [k for k in want if info[k] != want[k]]
        print(f"  {' -> '.join(describe(s) for s in steps):58s} fixed {info['fixed_size']}  on 200x300: "
              f"{info['output_size']}{'   FAIL: ' + ', '.join(problems) if problems else ''}")
        if problems:
            failures.append(f"describe {json.dumps(steps)}: got {info}, expected {want}")

    # ---- resize steps the parser refuses ---------------------------------------------------
    print("\n== resize steps that must be refused ==")
    for step, expect in [
            ({"op": "resize", "size": [4, 4], "shorter_side": 4},
             'has both "size" and "shorter_side"'),
            ({"op": "resize", "shorter_side": 64, "max_size": 64},
             '"max_size" 64 must be greater than "shorter_side" 64 (torchvision refuses max_size <= size)'),
            ({"op": "resize", "size": [4, 4], "max_size": 9}, '"max_size" applies only with "shorter_side"'),
            ({"op": "resize", "shorter_side": 0}, '"shorter_side" must be an integer in 1..32768, found 0'),
            ({"op": "resize", "shorter_side": [256]}, '"shorter_side" must be an integer in 1..32768, found [256]'),
            ({"op": "resize", "shorter_side": 40000}, '"shorter_side" must be an integer in 1..32768'),
            ({"op": "resize", "shorter_side": 8, "max_size": 2.5}, '"max_size" must be an integer in 1..32768'),
            ({"op": "resize"}, 'missing "size": [height, width] (or "shorter_side": N)'),
            ({"op": "resize", "shorter_side": 8, "filtre": "bilinear"},
             'unknown key "filtre" (known: shorter_side, max_size, filter)'),
            ({"op": "resize", "size": [8, 8], "filtre": "bilinear"}, 'unknown key "filtre" (known: size, filter)'),
            ({"op": "resize", "shorter": 8}, 'unknown key "shorter" (known: size, shorter_side, max_size, filter)')]:
        r = run_tool(args.tool, probe, out, [step, TO_TENSOR])
        msg = r.stderr.strip()
        ok = r.returncode == 1 and "preprocess step 1 (resize): " + expect in msg
        print(f"  {json.dumps(step):58s} exit {r.returncode}  {msg}{'' if ok else '   FAIL'}")
        if not ok:
            failures.append(f"refused {json.dumps(step)}: exit {r.returncode}, {msg!r} (expected {expect!r})")
    # An image that a shorter-side resize with max_size squeezes to 0 pixels: Pillow
    # raises ValueError; softbio refuses it with the sizes.
    thin = os.path.join(args.workdir, "thin_1x400.png")
    Image.fromarray(make_test_images.noise(1, 400, 78), "RGB").save(thin)
    steps = [resize_shorter(64, 100), TO_TENSOR]
    try:
        to_torchvision(steps)(Image.open(thin).convert("RGB"))
        pil = "torchvision: no error"
    except ValueError as e:
        pil = f"torchvision: ValueError: {e}"
    r = run_tool(args.tool, thin, out, steps)
    msg = r.stderr.strip()
    expect = "resize shorter_side 64 max_size 100 turns a 400x1 image into 100x0 (width x height); each side must be 1..32768"
    ok = r.returncode == 1 and expect in msg and pil.startswith("torchvision: ValueError")
    print(f"  1x400 image, {json.dumps(steps[0])}: exit {r.returncode}  {msg}  [{pil}]{'' if ok else '   FAIL'}")
    if not ok:
        failures.append(f"thin image: exit {r.returncode}, {msg!r}, {pil} (expected {expect!r} and a ValueError)")

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

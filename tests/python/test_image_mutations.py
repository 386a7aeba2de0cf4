#!/usr/bin/env python3
"""Damaged images: whatever Pillow refuses as corrupt, softbio refuses too.

Issue 11, defect 7: stb_image decodes many damaged files as if they were whole (it pads a
short file with zeros, ignores PNG CRCs, ...), so image/decode.hpp walks each format's
structure first. This test keeps that promise honest: small images of every format and
kind softbio reads (PNG RGB/palette/16-bit grey, baseline and progressive JPEG, raw and
run-length TGA, 24/8/1-bit BMP, GIF with and without transparency) are written with Pillow,
then mutated (1 to 4 random byte changes, bit flips or truncations; a fixed seed, so every
run sees the same files), and each mutant is given to Pillow (open, load, convert("RGB"))
and to softbio (tests/tools/decode_check). A mutant that Pillow refuses and softbio decodes
fails the test, with the file kept for a look.

The other direction (softbio refuses, Pillow decodes) is reported, not failed: softbio is
stricter on purpose in a few places (PNG IDAT/IEND CRCs, a BMP whose last row misses its
padding, headers stb cannot read).

  test_image_mutations.py --tool build/tests/decode_check --workdir DIR [--per-file N] [--seed S]
"""
import argparse
import io
import os
import random
import subprocess
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import needs  # noqa: E402

needs.require("PIL")
from PIL import Image  # noqa: E402


def base_images():
    """(name, bytes) of the unmutated files: every format and kind decode.hpp handles."""
    w, h = 13, 7
    rgb = Image.new("RGB", (w, h))
    rgb.putdata([((x * 19) % 256, (y * 37) % 256, (x * y * 5) % 256) for y in range(h) for x in range(w)])
    out = []

    def save(name, im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        out.append((name, b.getvalue()))

    save("rgb.png", rgb, "PNG")
    save("palette.png", rgb.quantize(16), "PNG")
    save("gray16.png", rgb.convert("I").point(lambda v: v * 200), "PNG")
    save("baseline.jpg", rgb, "JPEG", quality=90)
    save("progressive.jpg", rgb, "JPEG", quality=90, progressive=True)
    save("raw.tga", rgb, "TGA")
    save("rle.tga", rgb, "TGA", compression="tga_rle")
    save("rgb.bmp", rgb, "BMP")
    save("p8.bmp", rgb.quantize(16), "BMP")
    save("l1.bmp", rgb.convert("1"), "BMP")
    save("p.gif", rgb.quantize(16), "GIF")
    save("transparent.gif", rgb.quantize(16), "GIF", transparency=3)
    return out


def mutate(data, rng):
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        p = rng.randrange(len(d))
        op = rng.random()
        if op < 0.6:
            d[p] = rng.randrange(256)
        elif op < 0.85:
            d[p] ^= 1 << rng.randrange(8)
        else:
            del d[p:]
        if not d:
            d = bytearray(b"\x00")
    return bytes(d)


def pillow_refuses(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decompression-bomb warnings for mutated sizes
        try:
            with Image.open(path) as im:
                im.load()
                im.convert("RGB")
            return None
        except Exception as e:  # noqa: BLE001 - anything Pillow raises is a refusal
            return f"{type(e).__name__}: {e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--per-file", type=int, default=150)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    rng = random.Random(a.seed)
    files = []
    for name, data in base_images():
        path = os.path.join(a.workdir, name)
        with open(path, "wb") as f:
            f.write(data)
        files.append(path)
        for i in range(a.per_file):
            path = os.path.join(a.workdir, f"{i:03d}-{name}")
            with open(path, "wb") as f:
                f.write(mutate(data, rng))
            files.append(path)
    run = subprocess.run([a.tool], input="\n".join(files) + "\n", capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        print(run.stdout[-2000:], run.stderr[-2000:])
        sys.exit(f"{a.tool} exited with {run.returncode}")
    softbio = {}
    for line in run.stdout.splitlines():
        status, rest = line.split(" ", 1)
        softbio[rest.split("\t")[0].rsplit(" ", 1)[0] if status == "OK" else rest.split("\t")[0]] = status
    missing = [f for f in files if f not in softbio]
    if missing:
        sys.exit(f"{a.tool} gave no answer for {len(missing)} files, e.g. {missing[0]}")
    silent, stricter, refused = [], 0, 0
    for f in files:
        pil = pillow_refuses(f)
        if pil is not None:
            refused += 1
            if softbio[f] == "OK":
                silent.append((f, pil))
        elif softbio[f] != "OK":
            stricter += 1
    originals = [f for f in files if os.path.basename(f)[0].isalpha()]
    bad_originals = [f for f in originals if softbio[f] != "OK" or pillow_refuses(f) is not None]
    print(f"{len(files)} files ({len(originals)} originals, {a.per_file} mutants each): Pillow refused {refused}, "
          f"softbio decoded {len(silent)} of those; softbio refused {stricter} that Pillow decodes (stricter, allowed)")
    if bad_originals:
        sys.exit(f"unmutated files refused: {bad_originals}")
    for f, why in silent[:20]:
        print(f"  softbio decoded {f}, which Pillow refuses ({why})")
    sys.exit(1 if silent else 0)


if __name__ == "__main__":
    main()

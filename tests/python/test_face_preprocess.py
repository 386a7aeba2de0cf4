#!/usr/bin/env python3
"""tests/python/test_face_preprocess.py — face-api's preprocessing chain in C++
(image/preprocess.hpp: to_float, pad_to_square, resize tf_bilinear, normalize) against
tests/face/faceapi_numpy.py's network_input, bit for bit, on random images.

faceapi_numpy.network_input equals the original (tfjs-wasm 4.22) bit for bit on the
reference inputs of tests/face/data (test_tfjs_converter checks that), and so does the
C++ chain (tests/test_face_nets.cpp). Those are three inputs; this widens the coverage to
random sizes 1..300 x 1..300: padding differences odd and even, on either axis,
downsampling and upsampling (the upper neighbour clamped to the last row/column),
sizes 112 / 416 / 64 / 7, both anchors, and the normalize step. No tolerance: every
float must be identical.

    test_face_preprocess.py --tool build/tests/preprocess_dump [--workdir DIR] [--cases N]

Exit 0 all identical, 1 a difference or a tool failure, 77 (skipped) without numpy or Pillow.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import needs  # noqa: E402

needs.require("numpy", "PIL")  # else: "skipped: numpy not available", exit 77
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests", "face"))
import faceapi_numpy as F  # noqa: E402

MEAN = [122.782, 117.001, 104.298]


def chain(anchor, size, normalize):
    steps = [{"op": "to_float"}, {"op": "pad_to_square", "anchor": anchor},
             {"op": "resize", "size": [size, size], "filter": "tf_bilinear"}]
    if normalize:
        steps.append({"op": "normalize", "mean": MEAN, "std": [255, 255, 255]})
    return steps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tool", required=True, help="the preprocess_dump binary")
    p.add_argument("--workdir", default="/tmp/softbio_face_preprocess")
    p.add_argument("--cases", type=int, default=40, help="random images (4 chains each)")
    args = p.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    png, out = os.path.join(args.workdir, "image.png"), os.path.join(args.workdir, "out.npy")
    rng = np.random.default_rng(2026)
    failures, runs = [], 0
    for case in range(args.cases):
        h, w = (int(v) for v in rng.integers(1, 301, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(png)
        for anchor, size, normalize in (("center", 112, True), ("top_left", 416, False), ("top_left", 64, True),
                                        ("center", 7, False)):
            r = subprocess.run([args.tool, png, out, "--steps", json.dumps(chain(anchor, size, normalize))],
                               capture_output=True, text=True)
            runs += 1
            what = f"{w}x{h} image, pad {anchor}, resize {size}{', normalize' if normalize else ''}"
            if r.returncode != 0:
                failures.append(f"{what}: tool failed: {r.stderr.strip()}")
                continue
            got = np.load(out).astype(np.float32)
            if got.size != size * size * 3:
                failures.append(f"{what}: {got.shape}, expected {size * size * 3} values")
                continue
            if got.shape[-1] != 3:  # the tool writes NCHW ([1, 3, S, S])
                got = np.transpose(got.reshape(3, size, size), (1, 2, 0))
            got = got.reshape(size, size, 3)
            want = F.network_input(img, size, centred=anchor == "center").astype(np.float32)
            if normalize:
                want = F.normalize(want, MEAN)
            differ = int(np.count_nonzero(got.view(np.uint32) != want.view(np.uint32)))
            if differ:
                failures.append(f"{what}: {differ} of {got.size} values differ, max |diff| "
                                f"{float(np.abs(got - want).max()):.3g}")
    print(f"{runs} chains on {args.cases} random images: {runs - len(failures)} identical to faceapi_numpy")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

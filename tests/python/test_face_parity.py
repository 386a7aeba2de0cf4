#!/usr/bin/env python3
"""softbio's face pipeline against the original face-api, on face-api's six demo photos.

Both sides get the same pixels: the reference (tests/face/reference/reference.js, the
original JavaScript on tfjs-wasm, installed by scripts/fetch_face_reference.sh into the
build tree) decodes each JPEG with jpeg-js and writes the raw RGB; softbio reads those
bytes (tests/tools/face_dump). Then, per photo (issue 10's parity rule):
  * the same number of faces, in the same order (detector score, best first);
  * boxes and the 68 landmarks within 0.5 px; age within 0.05 years; gender label equal and
    gender probability within 1e-3.
These bound what two float32 implementations summing in different orders may move after
exp() in the box decoding and the crops that follow; the worst differences reached are
printed (they are about 1e-4 px). Timing of the whole chain (decoding excluded, median of
3 runs after the first) is printed for both, for the record; speed is measured properly
by benchmarks/, not here.

  test_face_parity.py --tool build/tests/face_dump --reference build/face-reference
Exit 77 (skipped) without node/npm or when the npm packages cannot be had.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import needs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE_JS = os.path.join(REPO, "tests", "face", "reference", "reference.js")
TOLERANCE = {"px": 0.5, "age": 0.05, "p": 1e-3}


def skip(why):
    print(f"skipped: {why}")
    sys.exit(needs.SKIPPED)


def run(cmd, timeout=900):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def compare(name, mine, ref, worst):
    """Failures (strings) of softbio's faces `mine` against the reference's `ref`."""
    if len(mine) != len(ref):
        return [f"{name}: softbio found {len(mine)} faces, face-api {len(ref)}"]
    bad = []
    for i, (m, r) in enumerate(zip(mine, ref)):
        px = max(abs(m["box"][k] - r["box"][k]) for k in ("x", "y", "width", "height"))
        lm = max(abs(a - b) for p, q in zip(m["landmarks"], r["landmarks"]) for a, b in zip(p, q))
        age = abs(m["age"] - r["age"])
        p = abs(m["genderProbability"] - r["genderProbability"])
        worst["box"] = max(worst["box"], px)
        worst["landmarks"] = max(worst["landmarks"], lm)
        worst["age"] = max(worst["age"], age)
        worst["p"] = max(worst["p"], p)
        where = f"{name} face {i}"
        if px > TOLERANCE["px"]:
            bad.append(f"{where}: box differs by {px:.3g} px")
        if lm > TOLERANCE["px"]:
            bad.append(f"{where}: landmarks differ by {lm:.3g} px")
        if age > TOLERANCE["age"]:
            bad.append(f"{where}: age {m['age']:.4f} vs {r['age']:.4f}")
        if m["gender"] != r["gender"] or p > TOLERANCE["p"]:
            bad.append(f"{where}: gender {m['gender']} {m['genderProbability']:.5f} vs "
                       f"{r['gender']} {r['genderProbability']:.5f}")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True, help="tests/tools/face_dump")
    ap.add_argument("--reference", required=True, help="folder for the npm packages (node_modules)")
    ap.add_argument("--models", default=os.path.join(REPO, "data", "models"))
    a = ap.parse_args()
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            skip(f"{tool} not found (Debian: apt-get install nodejs npm)")
    fetch = subprocess.run([os.path.join(REPO, "scripts", "fetch_face_reference.sh"), a.reference],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    if fetch.returncode != 0:
        skip(f"face-api reference packages unavailable: {fetch.stdout.strip().splitlines()[-1:]}")
    demo = os.path.join(a.reference, "node_modules", "@vladmandic", "face-api", "demo")
    work = tempfile.mkdtemp(prefix="softbio-face-parity-")
    failures, worst, total = [], {"box": 0.0, "landmarks": 0.0, "age": 0.0, "p": 0.0}, 0
    try:
        for i in range(1, 7):
            name = f"sample{i}.jpg"
            rgb = os.path.join(work, f"sample{i}.rgb")
            size = json.loads(run(["node", REFERENCE_JS, "decode", "--modules", a.reference,
                                   os.path.join(demo, name), rgb]))
            dims = ["--rgb", rgb, "--width", str(size["width"]), "--height", str(size["height"])]
            ref = json.loads(run(["node", REFERENCE_JS, "pipeline", "--modules", a.reference, "--time", "3"] + dims))
            mine = json.loads(run([a.tool, "--models", a.models, "--time", "3"] + dims))
            total += len(ref["faces"])
            failures += compare(name, mine["faces"], ref["faces"], worst)
            print(f"{name} {size['width']}x{size['height']}: {len(mine['faces'])} faces (face-api {len(ref['faces'])}); "
                  f"chain {mine['ms']:.1f} ms vs face-api {ref['ms']['median']:.1f} ms (x{ref['ms']['median'] / mine['ms']:.1f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{total} faces on 6 photos; worst: box {worst['box']:.3g} px, landmarks {worst['landmarks']:.3g} px, "
          f"age {worst['age']:.3g} years, gender probability {worst['p']:.3g}")
    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

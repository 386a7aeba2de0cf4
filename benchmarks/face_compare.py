#!/usr/bin/env python3
"""The face pipeline, softbio against the original face-api, in the same run.

For each of face-api's six demo photos (1920 px wide, 1-5 faces; in the npm package,
fetched by scripts/fetch_face_reference.sh) it times, median of N runs after a warm-up:
  * the whole chain (detector at 416 -> landmarks -> age/gender), decoding excluded:
    softbio (tests/tools/face_dump on the raw pixels jpeg-js decoded) and the original
    (tests/face/reference/reference.js pipeline, tfjs 4.22 with the wasm backend: the
    fastest backend this machine can run without native code);
  * decoding the JPEG: softbio's decoder (stb_image behind decode.hpp's checks) and the
    original's (jpeg-js, as the reference uses it);
and prints one table with the ratios. Threads: softbio's --threads (default 2), the wasm
backend single-threaded as shipped.

  /usr/bin/python3 benchmarks/face_compare.py --face-dump build/tests/face_dump \\
      --reference build/face-reference [--runs 5] [--threads 2]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_JS = os.path.join(REPO, "tests", "face", "reference", "reference.js")

JPEG_DECODE_JS = r"""
const path = require('path');
const fs = require('fs');
const jpeg = require(path.resolve(process.argv[1], 'node_modules', 'jpeg-js'));
const buf = fs.readFileSync(process.argv[2]);
const runs = Number(process.argv[3]);
jpeg.decode(buf, { formatAsRGBA: false });
const ms = [];
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  jpeg.decode(buf, { formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
  ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
ms.sort((a, b) => a - b);
process.stdout.write(JSON.stringify({ median: ms[Math.floor(runs / 2)] }));
"""


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--face-dump", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    subprocess.run([os.path.join(REPO, "scripts", "fetch_face_reference.sh"), a.reference], check=True,
                   stdout=subprocess.DEVNULL)
    demo = os.path.join(a.reference, "node_modules", "@vladmandic", "face-api", "demo")
    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_model()}, {os.cpu_count()} cores; softbio --threads {a.threads}; "
          f"median of {a.runs} runs after a warm-up; ms per photo")
    print(f"| photo | faces | softbio chain | face-api chain | ratio | softbio decode | jpeg-js decode | "
          f"softbio chain+decode | face-api chain+decode | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="softbio-face-bench-") as work:
        ratios, ratios_all = [], []
        for i in range(1, 7):
            jpg = os.path.join(demo, f"sample{i}.jpg")
            rgb = os.path.join(work, "photo.rgb")
            size = json.loads(run(["node", REFERENCE_JS, "decode", "--modules", a.reference, jpg, rgb]))
            dims = ["--rgb", rgb, "--width", str(size["width"]), "--height", str(size["height"])]
            ref = json.loads(run(["node", REFERENCE_JS, "pipeline", "--modules", a.reference,
                                  "--time", str(a.runs)] + dims))
            mine = json.loads(run([a.face_dump, "--models", os.path.join(REPO, "data", "models"), "--threads",
                                   str(a.threads), "--time", str(a.runs)] + dims))
            mine_decode = json.loads(run([a.face_dump, "--models", os.path.join(REPO, "data", "models"), "--threads",
                                          str(a.threads), "--time", str(a.runs), "--image", jpg]))["decode_ms"]
            js_decode = json.loads(run(["node", "-e", JPEG_DECODE_JS, a.reference, jpg, str(a.runs)]))["median"]
            r_chain = ref["ms"]["median"] / mine["ms"]
            r_all = (ref["ms"]["median"] + js_decode) / (mine["ms"] + mine_decode)
            ratios.append(r_chain)
            ratios_all.append(r_all)
            print(f"| sample{i}.jpg {size['width']}x{size['height']} | {len(mine['faces'])} | {mine['ms']:.1f} | "
                  f"{ref['ms']['median']:.1f} | {r_chain:.1f}x | {mine_decode:.1f} | {js_decode:.1f} | "
                  f"{mine['ms'] + mine_decode:.1f} | {ref['ms']['median'] + js_decode:.1f} | {r_all:.1f}x |")
        print(f"\nsoftbio faster by: chain {min(ratios):.1f}x to {max(ratios):.1f}x (median "
              f"{statistics.median(ratios):.1f}x); with decoding {min(ratios_all):.1f}x to {max(ratios_all):.1f}x "
              f"(median {statistics.median(ratios_all):.1f}x)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""softbio-predict's default mode: faces found in photos and analysed (issue 10).

  test_face_cli.py --predict build/examples/softbio-predict

Checks, on data/astronaut.png and images made here with Pillow:
  * table, jsonl and csv: one face, the same box as the original face-api gave on the same
    pixels (tests/face/data/astronaut_pipeline.json) within 0.5 px, its gender, its age
    within 0.05 years; no UNTRAINED banner (the networks are trained);
  * --annotate DIR: DIR/astronaut.png has the box drawn (green) on the detected box's
    edges and the rest of the photo unchanged far from the face;
  * a photo without a face: "no face found", exit status 0; a mosaic of 50 faces at
    --input-size 1024: 50 faces; an unreadable file among good ones: exit 1, the others
    still reported;
  * options of the other mode are refused with exit 2 and a message naming them.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import needs  # noqa: E402

needs.require("PIL")
from PIL import Image  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASTRONAUT = os.path.join(REPO, "data", "astronaut.png")
PREDICT = None


def predict(*args):
    return subprocess.run([PREDICT, "--no-progress"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=600)


def reference():
    with open(os.path.join(REPO, "tests", "face", "data", "astronaut_pipeline.json")) as f:
        return json.load(f)["faces"]


class FaceMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="softbio-face-cli-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_jsonl_matches_the_original(self):
        run = predict("--format", "jsonl", ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertNotIn("UNTRAINED", run.stdout + run.stderr)
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        ref = reference()
        self.assertEqual(len(rows), len(ref))
        for row, r in zip(rows, ref):
            self.assertTrue(row["ok"])
            for k in ("x", "y", "width", "height"):
                self.assertAlmostEqual(row["box"][k], r["box"][k], delta=0.5)
            self.assertEqual(row["gender"], r["gender"])
            self.assertAlmostEqual(row["gender_probability"], r["genderProbability"], delta=1e-3)
            self.assertAlmostEqual(row["age"], r["age"], delta=0.05)
            self.assertEqual(len(row["landmarks"]), 68)
            for p, q in zip(row["landmarks"], r["landmarks"]):
                self.assertAlmostEqual(p[0], q[0], delta=0.5)
                self.assertAlmostEqual(p[1], q[1], delta=0.5)

    def test_table_and_csv(self):
        run = predict(ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        lines = run.stdout.splitlines()
        self.assertEqual(len(lines), 2, run.stdout)
        self.assertTrue(lines[0].startswith("image"))
        gender = reference()[0]["gender"]
        self.assertIn(f" {gender} ", lines[1])
        run = predict("--format", "csv", ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        header, row = run.stdout.splitlines()
        cells = dict(zip(header.split(","), row.split(",")))
        self.assertEqual(cells["ok"], "true")
        self.assertEqual(cells["gender"], gender)
        self.assertAlmostEqual(float(cells["age"]), reference()[0]["age"], delta=0.05)

    def test_annotate_draws_the_box(self):
        out = os.path.join(self.tmp.name, "annotated")
        run = predict("--format", "jsonl", "--annotate", out, ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        box = json.loads(run.stdout.splitlines()[0])["box"]
        drawn = Image.open(os.path.join(out, "astronaut.png")).convert("RGB")
        original = Image.open(ASTRONAUT).convert("RGB")
        self.assertEqual(drawn.size, original.size)
        x0, y0 = round(box["x"]), round(box["y"])
        x1, y1 = round(box["x"] + box["width"]) - 1, round(box["y"] + box["height"]) - 1
        green = (0, 220, 0)
        for y in range(y0 + 12, y1, 5):  # the left and right edges (the label covers the top)
            self.assertEqual(drawn.getpixel((x0, y)), green, (x0, y))
            self.assertEqual(drawn.getpixel((x1, y)), green, (x1, y))
        for x in range(x0, x1, 5):
            self.assertEqual(drawn.getpixel((x, y1)), green, (x, y1))
        self.assertEqual(drawn.getpixel((5, 500)), original.getpixel((5, 500)))  # far from the face: untouched

    def test_no_face_many_faces_and_a_bad_file(self):
        flat = os.path.join(self.tmp.name, "flat.png")
        Image.new("RGB", (200, 150), (120, 120, 120)).save(flat)
        run = predict(flat)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("no face found", run.stdout)
        run = predict("--format", "jsonl", flat)
        self.assertEqual(json.loads(run.stdout), {"image": flat, "ok": True, "faces": 0, "ms": json.loads(run.stdout)["ms"]})
        # 50 copies of the astronaut's face, 128 px each, in a 10 x 5 mosaic: at the default
        # 416 px the faces are too small for the detector; at 1024 px every one is found
        face = Image.open(ASTRONAUT).convert("RGB").crop((130, 40, 320, 240)).resize((128, 128))
        mosaic = Image.new("RGB", (1280, 640))
        for y in range(5):
            for x in range(10):
                mosaic.paste(face, (x * 128, y * 128))
        many = os.path.join(self.tmp.name, "fifty.png")
        mosaic.save(many)
        run = predict("--format", "jsonl", "--input-size", "1024", many)
        self.assertEqual(run.returncode, 0, run.stderr)
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        self.assertEqual(len(rows), 50)
        centres = sorted((int((r["box"]["y"] + r["box"]["height"] / 2) // 128), int((r["box"]["x"] + r["box"]["width"] / 2) // 128))
                         for r in rows)
        self.assertEqual(centres, sorted((y, x) for y in range(5) for x in range(10)))  # one face per tile
        broken = os.path.join(self.tmp.name, "broken.png")
        with open(broken, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
        run = predict("--format", "jsonl", ASTRONAUT, broken, flat)
        self.assertEqual(run.returncode, 1)
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        self.assertEqual([r["ok"] for r in rows], [True, False, True])
        self.assertIn("broken.png", rows[1]["error"])

    def test_options_of_the_other_mode(self):
        for args, flag in ((["--device", "cuda"], "--device cuda"), (["--profile"], "--profile"),
                           (["--no-detect", "--annotate", self.tmp.name], "--annotate"),
                           (["--input-size", "100"], "--input-size"), (["--score-threshold", "1.5"], "--score-threshold")):
            run = predict(*args, ASTRONAUT)
            self.assertEqual(run.returncode, 2, (args, run.stderr))
            self.assertIn(flag, run.stderr)
        run = predict("--models", os.path.join(self.tmp.name, "nothere"), ASTRONAUT)
        self.assertEqual(run.returncode, 3)
        self.assertIn("nothere/faceapi_tiny_face_detector.safetensors", run.stderr)


def main():
    global PREDICT
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--predict", required=True)
    a, rest = ap.parse_known_args()
    PREDICT = a.predict
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()

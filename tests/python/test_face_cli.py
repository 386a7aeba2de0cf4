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
  * options of the other mode are refused with exit 2 and a message naming them;
  * your own model behind the detector (--model FILE whose metadata declares its face
    crop): one row per face with the model's heads, the UNTRAINED banner once; --crops
    writes what the model saw, and that crop equals an independent numpy reimplementation
    of CelebA's alignment (least squares by np.linalg.lstsq, Keys bicubic, edges repeated)
    from the landmarks the same run printed (rule: no channel differs by more than 1, the
    rounding of the printed landmarks to 0.01 px; a half-pixel convention error moves
    edges by tens of levels); softbio-make-model writes the same face_crop numbers as the
    converter; a mix of models with and without a crop is refused.
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
MAKE_MODEL = None


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


def softbio_metadata(path):
    """The metadata document of a softbio file (safetensors header, __metadata__.softbio)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(json.loads(f.read(n))["__metadata__"]["softbio"])


def celeba_crop_reference(photo, landmarks, crop):
    """CelebA's alignment written again with numpy, from docs/FORMAT.md 2.7 alone."""
    import numpy as np
    lm = np.asarray(landmarks, dtype=np.float64)
    src = [lm[36:42].mean(0), lm[42:48].mean(0), (lm[48] + lm[54]) / 2]
    dst = crop["targets"]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    back = np.linalg.inv(np.array([[a, -b, tx], [b, a, ty], [0, 0, 1]]))
    img = np.asarray(photo, dtype=np.float64)
    H, W = img.shape[:2]
    h, w = crop["size"]
    cx, cy = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    X = back[0, 0] * cx + back[0, 1] * cy + back[0, 2] - 0.5  # fractional pixel index
    Y = back[1, 0] * cx + back[1, 1] * cy + back[1, 2] - 0.5
    X0, Y0 = np.floor(X), np.floor(Y)

    def keys(t, a=-0.5):
        t = np.abs(t)
        return np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                        np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0))
    acc = np.zeros((h, w, 3))
    for j in range(-1, 3):
        for i in range(-1, 3):
            yi = np.clip(Y0 + j, 0, H - 1).astype(int)
            xi = np.clip(X0 + i, 0, W - 1).astype(int)
            acc += (keys(X - X0 - i) * keys(Y - Y0 - j))[..., None] * img[yi, xi]
    return np.clip(np.floor(acc + 0.5), 0, 255)


class UserModelsBehindTheDetector(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="softbio-face-models-")
        cls.celeba = os.path.join(cls.tmp.name, "r18_celeba.safetensors")
        cls.cacd = os.path.join(cls.tmp.name, "r18_cacd.safetensors")
        cls.plain = os.path.join(cls.tmp.name, "r18_plain.safetensors")
        for path, crop in ((cls.celeba, ["--face-crop", "celeba"]), (cls.cacd, ["--face-crop", "cacd"]), (cls.plain, [])):
            subprocess.run([MAKE_MODEL, "--preset", "celeba-r18", "--out", path] + crop, check=True,
                           stdout=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_same_crop_numbers_as_the_converter(self):
        sys.path.insert(0, REPO)
        from weights_converter import layouts
        self.assertEqual(softbio_metadata(self.celeba)["face_crop"], layouts.FACE_CROPS["celeba"])
        self.assertEqual(softbio_metadata(self.cacd)["face_crop"], layouts.FACE_CROPS["cacd"])
        self.assertNotIn("face_crop", softbio_metadata(self.plain))

    def test_rows_heads_and_the_crop_the_model_saw(self):
        needs.require("numpy")
        import numpy as np
        crops = os.path.join(self.tmp.name, "crops")
        run = predict("--model", self.celeba, "--crops", crops, "--format", "jsonl", ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stderr.count("UNTRAINED WEIGHTS"), 1)
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        self.assertEqual(len(rows), len(reference()))
        row = rows[0]
        self.assertFalse(row["trained"])
        self.assertEqual(list(row["heads"]), ["gender"])
        self.assertIn(row["heads"]["gender"]["class"], ("female", "male"))
        self.assertNotIn("age", row)  # face-api's age/gender network did not run
        for k in ("x", "y", "width", "height"):
            self.assertAlmostEqual(row["box"][k], reference()[0]["box"][k], delta=0.5)
        saw = Image.open(os.path.join(crops, "astronaut-0.png")).convert("RGB")
        self.assertEqual(saw.size, (178, 218))
        ref = celeba_crop_reference(Image.open(ASTRONAUT).convert("RGB"), row["landmarks"],
                                    softbio_metadata(self.celeba)["face_crop"])
        diff = np.abs(np.asarray(saw, dtype=np.float64) - ref)
        self.assertLessEqual(diff.max(), 1.0, f"{(diff > 1).sum()} channels differ by more than 1")
        # table and csv carry the model's heads; the box crop model runs too
        run = predict("--model", self.celeba, "--model", self.cacd, "--format", "csv", ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        header, line = run.stdout.splitlines()
        cells = dict(zip(header.split(","), line.split(",")))
        self.assertEqual(len(header.split(",")), len(line.split(",")))
        self.assertIn(cells["gender_label"], ("female", "male"))
        self.assertIn(cells["gender#2_label"], ("female", "male"))
        self.assertEqual(cells["trained"], "false")
        run = predict("--model", self.celeba, ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertTrue(run.stdout.startswith("*** UNTRAINED WEIGHTS"))
        self.assertEqual(run.stdout.count("UNTRAINED"), 1)

    def test_no_face_csv_and_modes(self):
        flat = os.path.join(self.tmp.name, "flat.png")
        Image.new("RGB", (200, 150), (120, 120, 120)).save(flat)
        run = predict("--model", self.celeba, "--format", "csv", flat)
        self.assertEqual(run.returncode, 0, run.stderr)
        header, line = run.stdout.splitlines()
        self.assertEqual(len(header.split(",")), len(line.split(",")), run.stdout)
        self.assertTrue(line.endswith("no face found"))
        # A model without a crop takes whole images; mixing the two kinds is refused.
        run = predict("--model", self.plain, "--format", "jsonl", ASTRONAUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertNotIn("face", json.loads(run.stdout.splitlines()[0]))
        run = predict("--model", self.plain, "--model", self.celeba, ASTRONAUT)
        self.assertEqual(run.returncode, 2)
        self.assertIn("r18_plain.safetensors declares no face crop", run.stderr)
        run = predict("--model", self.plain, "--annotate", self.tmp.name, ASTRONAUT)
        self.assertEqual(run.returncode, 2)
        self.assertIn("--annotate belongs to the face pipeline", run.stderr)
        run = predict("--model", self.celeba, "--no-detect", "--format", "jsonl", ASTRONAUT)  # whole image
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertNotIn("face", json.loads(run.stdout.splitlines()[0]))
        run = predict("--crops", self.tmp.name, ASTRONAUT)
        self.assertEqual(run.returncode, 2)
        self.assertIn("--crops", run.stderr)


def main():
    global PREDICT, MAKE_MODEL
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--predict", required=True)
    ap.add_argument("--make-model", required=True)
    a, rest = ap.parse_known_args()
    PREDICT = a.predict
    MAKE_MODEL = a.make_model
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Bad input, end to end: every way a model file, an image or a command line can be
wrong gives one exact, clear message from softbio-predict and the documented exit
status, never a crash, a hang or a silent wrong answer.

Each case builds its input from a valid model made by softbio-make-model (or from the
bundled photo), runs softbio-predict in a scratch folder (so messages carry short
relative names) and compares the last line of stderr, or the image's row, with the
exact expected text. `--markdown` prints the table of docs/RELIABILITY.md instead.

Needs only the Python standard library.

usage: test_bad_inputs.py --predict P --make-model M --image astronaut.png --workdir DIR [--markdown]
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

MODEL_EXIT, IMAGE_EXIT, USAGE_EXIT = 3, 1, 2


def safetensors_parts(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_safetensors(path, header, data):
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


class Cases:
    def __init__(self, good_model, image):
        self.header, self.data = safetensors_parts(good_model)
        self.meta = json.loads(self.header["__metadata__"]["softbio"])
        self.image = image
        self.model_cases, self.image_cases, self.usage_cases = [], [], []

    # ---- model files -------------------------------------------------------------------
    def model(self, what, name, expected, header=None, meta=None, data=None, raw=None):
        """A bad model file `name`: raw bytes, or the good file with parts replaced."""
        if raw is not None:
            open(name, "wb").write(raw)
        else:
            h = json.loads(json.dumps(self.header if header is None else header))
            if meta is not None:
                h["__metadata__"] = {"softbio": meta if isinstance(meta, str) else json.dumps(meta)}
            write_safetensors(name, h, self.data if data is None else data)
        self.model_cases.append((what, name, expected))

    def meta_with(self, **changes):
        """The good metadata with keys changed; a__b means meta[a][b]; None deletes."""
        m = json.loads(json.dumps(self.meta))
        for key, value in changes.items():
            parts, cur = key.split("__"), m
            for p in parts[:-1]:
                cur = cur[p]
            if value is None:
                cur.pop(parts[-1])
            else:
                cur[parts[-1]] = value
        return m

    def header_with(self, tensor, **changes):
        h = json.loads(json.dumps(self.header))
        h[tensor].update(changes)
        return h

    def data_with(self, tensor, index, value):
        d = bytearray(self.data)
        start = self.header[tensor]["data_offsets"][0] + 4 * index
        d[start:start + 4] = struct.pack("<f", value)
        return bytes(d)

    # ---- images and usage ----------------------------------------------------------------
    def image_case(self, what, name, expected, model="good.st"):
        self.image_cases.append((what, name, expected, model))

    def usage(self, what, args, expected):
        self.usage_cases.append((what, args, expected))


def build_cases(c):
    t = c.header
    m = c.model
    m("empty file", "empty.st", "empty.st: file is 0 bytes, too short for a safetensors header (truncated?)", raw=b"")
    good = open("good.st", "rb").read()
    m("file cut inside the header", "cut_header.st",
      f"cut_header.st: header length {struct.unpack('<Q', good[:8])[0]} exceeds the file size 100 (truncated or not a safetensors file)",
      raw=good[:100])
    m("header length beyond the file", "hlen.st",
      "hlen.st: header length 1099511627776 exceeds the file size 200 (truncated or not a safetensors file)",
      raw=struct.pack("<Q", 1 << 40) + good[8:200])
    m("header is not JSON", "hjson.st",
      "hjson.st: header is not valid JSON: [json.exception.parse_error.101] parse error at line 1, column 2: "
      "syntax error while parsing object key - invalid literal; last read: '{a'; expected string literal",
      raw=struct.pack("<Q", 5) + b"{abc}")
    m("NUL byte in the header", "nul.st", "nul.st: header holds a NUL byte at offset 8 (JSON text never does)",
      raw=struct.pack("<Q", 12) + b'{"a": 1}\0   ')
    deep = b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    m("header nested 3000 levels deep", "deep.st", "deep.st: header nests deeper than 32 levels",
      raw=struct.pack("<Q", len(deep)) + deep)
    no_meta = {k: v for k, v in t.items() if k != "__metadata__"}
    m("no softbio metadata", "nometa.st",
      "nometa.st: no softbio metadata (__metadata__.softbio is missing): not a softbio model file? "
      "Convert PyTorch checkpoints with weights_converter/convert.py", header=no_meta)
    m("metadata is not JSON", "metajson.st",
      "metajson.st: metadata is not valid JSON: [json.exception.parse_error.101] parse error at line 1, column 3: "
      "syntax error while parsing object key - invalid literal; last read: '{no'; expected string literal",
      meta="{not json")
    m("metadata nested 5000 levels deep", "metadeep.st", "metadeep.st: metadata nests deeper than 32 levels",
      meta='{"format_version": ' + "[" * 5000 + "]" * 5000 + "}")
    w = c.meta_with
    m("format version 2", "v2.st", "v2.st: unsupported format version 2, this build reads 1", meta=w(format_version=2))
    m("format version 2^32 + 1 (1 if narrowed)", "v32.st", "v32.st: unsupported format version 4294967297, this build reads 1",
      meta=w(format_version=4294967297))
    m("unknown network family", "family.st",
      'family.st: metadata model.family: unknown architecture "vgg" (this build knows: resnet, faceapi_tiny_face_detector, faceapi_landmark68, faceapi_age_gender)', meta=w(model__family="vgg"))
    m("unknown block type", "block.st", 'block.st: metadata model.block: expected one of {basic, bottleneck}, found "dense"',
      meta=w(model__block="dense"))
    m("block count 2^32 + 2", "layers32.st",
      "layers32.st: metadata model.layers: expected 4 block counts in 1..256, found [4294967298,2,2,2]",
      meta=w(model__layers=[4294967298, 2, 2, 2]))
    m("three block counts", "layers3.st", "layers3.st: metadata model.layers: expected 4 block counts, found [2,2,2]",
      meta=w(model__layers=[2, 2, 2]))
    m("input size 16384 (memory amplification)", "huge_input.st",
      "huge_input.st: metadata model.input_size: expected [height, width] of integers in 1..4096, found [16384,16384]",
      meta=w(model__input_size=[16384, 16384]))
    m("input size missing", "noinput.st", "noinput.st: metadata model.input_size: missing", meta=w(model__input_size=None))
    m("negative BatchNorm eps", "eps.st", "eps.st: metadata model.bn_eps: expected a small positive number, found -1",
      meta=w(model__bn_eps=-1))
    m("9 input channels", "channels.st", "channels.st: metadata model.in_channels: expected an integer in 1..4, found 9",
      meta=w(model__in_channels=9))
    m("a nested array where a number belongs", "nested.st",
      "nested.st: metadata model.base_width: expected an integer in 1..1024, found an array of 1 elements",
      meta=w(model__base_width=[[1]]))
    m("pool padding above half the kernel", "pool.st",
      "pool.st: metadata model.pool.padding: padding must be at most half the kernel (PyTorch's rule)",
      meta=w(model__pool={"type": "avg", "kernel": 2, "stride": 1, "padding": 2}))
    m("unknown head type", "headtype.st",
      'headtype.st: metadata heads[0].type: expected one of {softmax, coral, corn, orcnn, logits}, found "ordinal"',
      meta=w(heads=[{"name": "gender", "type": "ordinal", "num_classes": 2}]))
    m("head name with a space", "headname.st", 'headname.st: metadata heads[0].name: "gen der" must match [A-Za-z0-9_]+',
      meta=w(heads=[{"name": "gen der", "type": "softmax", "classes": ["f", "m"]}]))
    m("two heads with one name", "dup.st", 'dup.st: metadata heads[1].name: duplicate head name "g"',
      meta=w(heads=[{"name": "g", "type": "softmax", "classes": ["f", "m"]}] * 2))
    m("no heads", "noheads.st", "noheads.st: metadata heads: expected a non-empty array of heads", meta=w(heads=[]))
    m('"trained": "yes"', "trained.st", 'trained.st: metadata trained: expected true or false, found "yes"', meta=w(trained="yes"))
    steps = lambda *s: {"steps": list(s)}
    m("unknown preprocessing op", "preop.st",
      'preop.st: metadata: preprocess step 1 (rotate): unknown op "rotate" (known: center_crop, resize, to_tensor, normalize, to_float, pad_to_square)',
      meta=w(preprocess=steps({"op": "rotate"}, {"op": "to_tensor"})))
    m("preprocessing size differs from the input size", "presize.st",
      "presize.st: metadata preprocess: the chain produces 100x100 images but model.input_size is 128x128",
      meta=w(preprocess=steps({"op": "resize", "size": [100, 100]}, {"op": "to_tensor"})))
    m("normalize with a zero std", "std0.st",
      'std0.st: metadata: preprocess step 3 (normalize): "std" has a zero (channel 0): division by zero',
      meta=w(preprocess=steps({"op": "resize", "size": [128, 128]}, {"op": "to_tensor"},
                              {"op": "normalize", "mean": [0, 0, 0], "std": [0, 1, 1]})))
    m("misspelt preprocessing option", "filtre.st",
      'filtre.st: metadata: preprocess step 1 (resize): unknown key "filtre" (known: size, filter)',
      meta=w(preprocess=steps({"op": "resize", "size": [128, 128], "filtre": "bilinear"}, {"op": "to_tensor"})))
    m("preprocessing without to_tensor", "notensor.st",
      "notensor.st: metadata: preprocess: the chain must end with to_tensor (optionally followed by normalize); it ends with resize",
      meta=w(preprocess=steps({"op": "resize", "size": [128, 128]})))
    m("a tensor missing", "missing.st", "missing.st: tensor bn1.bias is missing (expected [64] F32)",
      header={k: v for k, v in t.items() if k != "bn1.bias"})
    extra = json.loads(json.dumps(t))
    extra["extra.weight"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    m("an unexpected tensor", "extra.st",
      "extra.st: unexpected tensor extra.weight [0] (not part of the architecture the metadata describes)", header=extra)
    m("F16 instead of F32", "f16.st", "f16.st: tensor conv1.weight: data_offsets span 37632 bytes but shape [64,3,7,7] F16 needs 18816",
      header=c.header_with("conv1.weight", dtype="F16"))
    m("a shape that disagrees with the bytes", "shape.st",
      "shape.st: tensor conv1.weight: data_offsets span 37632 bytes but shape [64,3,7,8] F32 needs 43008",
      header=c.header_with("conv1.weight", shape=[64, 3, 7, 8]))
    m("reversed data offsets", "reversed.st", "reversed.st: tensor conv1.weight: data_offsets [10,5] are reversed",
      header=c.header_with("conv1.weight", data_offsets=[10, 5]))
    start = t["conv1.weight"]["data_offsets"][0]
    m("two tensors on the same bytes", "overlap.st", "overlap.st: two tensors' data ranges overlap",
      header=c.header_with("bn1.weight", data_offsets=[start, start + 256]))
    m("element count that overflows 64 bits", "overflow.st",
      "overflow.st: tensor conv1.weight: shape [4611686018427387904,1] holds more elements than the file has bytes",
      header=c.header_with("conv1.weight", shape=[4611686018427387904, 1]))
    m("unknown dtype", "q4.st", "q4.st: tensor conv1.weight: unknown dtype Q4", header=c.header_with("conv1.weight", dtype="Q4"))
    m("file cut inside the data", "cut_data.st",
      f"cut_data.st: tensor head.gender.bias: data_offsets end {t['head.gender.bias']['data_offsets'][1]} lies outside the file "
      f"(data section is {(len(good) // 2) - 8 - struct.unpack('<Q', good[:8])[0]} bytes; truncated file?)",
      raw=good[:len(good) // 2])
    m("a negative BatchNorm variance", "var.st",
      "var.st: tensor bn1.running_var[0] = -0.5 is negative: a variance never is (corrupt file?)",
      data=c.data_with("bn1.running_var", 0, -0.5))
    m("a NaN weight", "nan.st", "nan.st: tensor layer1.0.conv1.weight holds a non-finite value (NaN or Inf) at index 2",
      data=c.data_with("layer1.0.conv1.weight", 2, float("nan")))
    d = c.data_with("bn1.weight", 3, 1e38)
    c.data, saved = d, c.data
    m("a BatchNorm scale beyond fp32", "bnscale.st",
      "bnscale.st: conv1 (conv1, bn1): BatchNorm channel 3: scale gamma / sqrt(running_var + eps) = 3.16228e+40 "
      "or its bias is not a finite fp32 number", data=c.data_with("bn1.running_var", 3, 0.0))
    c.data = saved
    os.mkfifo("pipe.st")
    c.model_cases.append(("a named pipe (would block)", "pipe.st", "pipe.st: not a regular file (a named pipe (FIFO))"))
    c.model_cases.append(("/dev/zero (would be read forever)", "/dev/zero", "/dev/zero: not a regular file (a character device)"))
    os.mkdir("folder.st")
    c.model_cases.append(("a directory", "folder.st", "folder.st: not a regular file (a directory)"))
    os.symlink("loop_b.st", "loop_a.st")
    os.symlink("loop_a.st", "loop_b.st")
    c.model_cases.append(("a loop of symbolic links", "loop_a.st",
                          "loop_a.st: cannot open (Too many levels of symbolic links: a loop of symbolic links)"))
    c.model_cases.append(("no such file", "nothere.st", "nothere.st: cannot open (No such file or directory)"))

    # Images (the model is fine): the row for the image says what is wrong.
    open("hello.jpg", "wb").write(b"hello")
    c.image_case("text named .jpg", "hello.jpg",
                 'hello.jpg: not a supported image: expected JPEG, PNG, BMP, GIF or TGA, found first bytes 68 65 6c 6c 6f ("hello") '
                 "and only 5 bytes (the name ends in .jpg but the data is not JPEG)")
    open("empty.png", "wb").close()
    c.image_case("empty image file", "empty.png", "empty.png: empty file (0 bytes); expected a JPEG, PNG, BMP, GIF or TGA image")
    photo = open(c.image, "rb").read()
    open("cut.png", "wb").write(photo[:3000])
    c.image_case("PNG cut short", "cut.png", "cut.png: truncated PNG file: the iCCP chunk is cut off (the file ends before IEND)")
    bad_crc = bytearray(photo)
    bad_crc[40] ^= 0xFF
    open("crc.png", "wb").write(bytes(bad_crc))
    c.image_case("PNG with a corrupt chunk", "crc.png", "crc.png: PNG chunk iCC\\xaf at byte 33 is corrupt (CRC mismatch)")
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    open("huge.png", "wb").write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) +
                                 png_chunk(b"IEND", b""))
    c.image_case("40000x40000 PNG header (decompression bomb)", "huge.png",
                 "huge.png: PNG image is 40000x40000 pixels; softbio accepts at most 32768 pixels per side and 100 megapixels in total")
    os.mkfifo("pipe.png")
    c.image_case("a named pipe as image", "pipe.png", "pipe.png: is a named pipe (FIFO), not a regular file")
    os.mkdir("no_images")
    c.image_case("a folder without images", "no_images",
                 "no_images: no image files (.jpg .jpeg .png .bmp .tga .gif) in this directory")
    os.symlink("img_loop_b.png", "img_loop_a.png")
    os.symlink("img_loop_a.png", "img_loop_b.png")
    c.image_case("an image path in a symlink loop", "img_loop_a.png", "img_loop_a.png: Too many levels of symbolic links")

    # A legal model whose chain keeps the image's size, given a photo of another size:
    # that image fails, the run goes on (it used to abort the whole process).
    write_safetensors("keep_size.st", dict(t, __metadata__={"softbio": json.dumps(
        c.meta_with(preprocess={"steps": [{"op": "to_tensor"}]}))}), c.data)
    c.image_case("an image of another size for a chain without resize", "photo.png",
                 "image of 512x512 pixels preprocesses to 512x512, but the model takes 128x128", model="keep_size.st")
    # Finite weights that overflow fp32 at run time: a failed image, not "female nan".
    d = bytearray(c.data)
    for name, info in t.items():
        if name != "__metadata__" and len(info["shape"]) == 4:
            b, e = info["data_offsets"]
            d[b:e] = struct.pack("<f", 1e30) * ((e - b) // 4)
    write_safetensors("overflow_run.st", t, bytes(d))
    c.image_case("weights that overflow fp32 at run time", "photo.png",
                 "head gender: non-finite logits (NaN or infinity): the model's weights or this input overflow fp32; "
                 "no prediction", model="overflow_run.st")

    # Command-line mistakes.
    c.usage("--threads 100000", ["--threads", "100000", "photo.png"], '--threads expects an integer in 1..256, got "100000"')
    c.usage("--batch 0", ["--batch", "0", "photo.png"], '--batch expects an integer in 1..1024, got "0"')
    c.usage("--format xml", ["--format", "xml", "photo.png"], '--format must be table, jsonl or csv, got "xml"')
    c.usage("unknown option", ["--frobnicate", "photo.png"], "unknown option --frobnicate")
    c.usage("no images", [], "no images given")
    c.usage("--device tpu", ["--device", "tpu", "photo.png"], '--device must be cpu or cuda, got "tpu"')


def run(predict, args):
    r = subprocess.run([predict] + args, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--predict", required=True)
    ap.add_argument("--make-model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    predict, image, make_model = os.path.abspath(a.predict), os.path.abspath(a.image), os.path.abspath(a.make_model)
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    os.chdir(a.workdir)
    subprocess.run([make_model, "--preset", "celeba-r18", "--out", "good.st"], check=True,
                   capture_output=True)
    shutil.copy(image, "photo.png")
    c = Cases("good.st", image)
    build_cases(c)

    rows, failures = [], 0
    def check(kind, what, expected_status, status, got, expected, where):
        nonlocal failures
        ok = status == expected_status and got == expected
        if not ok:
            failures += 1
            print(f"FAIL {kind}: {what}\n  status {status} (expected {expected_status})\n  got      {got!r}\n  expected {expected!r}",
                  file=sys.stderr)
        rows.append((kind, what, expected, where))

    for what, name, expected in c.model_cases:
        status, _, err = run(predict, ["--model", name, "photo.png"])
        got = err.strip().splitlines()[-1].removeprefix("softbio-predict: ") if err.strip() else ""
        check("model file", what, MODEL_EXIT, status, got, expected, "softbio-predict --model FILE photo.png (exit 3)")
    for what, name, expected, model in c.image_cases:
        status, out, _ = run(predict, ["--model", model, "--format", "jsonl", name])
        got = ""
        for line in out.splitlines():
            row = json.loads(line)
            if not row["ok"]:
                got = row["error"]
        check("image", what, IMAGE_EXIT, status, got, expected, "softbio-predict IMAGE (the row's error, exit 1)")
    for what, args, expected in c.usage_cases:
        status, _, err = run(predict, ["--model", "good.st"] + args)
        lines = [l for l in err.strip().splitlines() if l.startswith("softbio-predict: ")]
        got = lines[0].removeprefix("softbio-predict: ") if lines else ""
        check("command line", what, USAGE_EXIT, status, got, expected, "softbio-predict ARGS (exit 2)")

    if a.markdown:
        print("| # | input | what softbio says |")
        print("|---|---|---|")
        for i, (kind, what, expected, _) in enumerate(rows, 1):
            cell = expected.replace("|", "\\|")
            print(f"| {i} | {kind}: {what} | `{cell}` |")
    print(f"{len(rows) - failures} of {len(rows)} bad inputs give their exact message", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

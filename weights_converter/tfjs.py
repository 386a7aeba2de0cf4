#!/usr/bin/env python3
# weights_converter/tfjs.py — softbio-convert --tfjs: TensorFlow.js weights (face-api) -> softbio files.
#
#   python3 -m weights_converter.tfjs MODEL-weights_manifest.json [-o OUT.safetensors]
#   python3 -m weights_converter.convert --tfjs MODEL-weights_manifest.json [-o OUT.safetensors]
#
# Reads a TF.js weights manifest and its .bin shards (numpy only; tfjs is never needed),
# decodes every tensor exactly as tfjs 4.22's io.decodeWeights does, recognises which
# face-api network it is from the tensor names and shapes, and writes the softbio
# safetensors file of docs/FACE_MODELS.md §10 (the container of docs/FORMAT.md §1).
#
# Decoding (tfjs-core io_utils.decodeWeight):
#   * the shards of one manifest group are concatenated in `paths` order; the group's
#     tensors follow one another in manifest order, without padding; every group starts
#     at byte 0 of its own shards;
#   * a float32 tensor without `quantization` is little-endian float32;
#   * quantization uint8 / uint16: value = q * scale + min evaluated in float64 (JavaScript
#     numbers) and stored in a Float32Array (rounded to nearest float32), with the tensor's
#     own scale and min; uint16 is little-endian;
#   * quantization float16: IEEE half -> float32 (exact).
# softbio files hold float32 only, so other dtypes (int32, bool, string, complex64) are
# refused, as are manifests whose shards are missing or whose sizes do not add up.
#
# The tensors keep the manifest's names ("conv0/filters", "dense1/conv2/pointwise_filter",
# "fc/age/weights", ...), its order and TensorFlow's layouts (conv filters [kh, kw, cin,
# cout], depthwise [kh, kw, c, 1], fully connected [in, out]); the metadata says so
# ("tensor_layout": "tfjs"). The output is a pure function of the input files: converting
# twice gives the same bytes.
import argparse
import collections
import hashlib
import importlib
import json
import math
import os
import sys

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUMPY_MISSING = "softbio-convert needs numpy: apt-get install python3-numpy (or: pip install numpy)"

# Bytes per stored value, by the dtype named in `quantization.dtype` or (unquantized) `dtype`
# (tfjs's DTYPE_VALUE_SIZE_MAP).
STORED_BYTES = {"float32": 4, "int32": 4, "uint16": 2, "uint8": 1, "bool": 1, "complex64": 8, "float16": 2}
QUANTIZATIONS = ("uint8", "uint16", "float16")


class TfjsError(Exception):
    """A TF.js manifest or shard is malformed, or is not a network softbio knows."""


# ---------------------------------------------------------------------------------------
# The three face-api networks: expected tensors (manifest names, TF shapes) and metadata.

def _sep(prefix, cin, cout):
    """A depthwise-separable conv: depthwise 3x3, pointwise 1x1, one bias."""
    return [(f"{prefix}/depthwise_filter", [3, 3, cin, 1]), (f"{prefix}/pointwise_filter", [1, 1, cin, cout]),
            (f"{prefix}/bias", [cout])]


def _conv(prefix, k, cin, cout):
    return [(f"{prefix}/filters", [k, k, cin, cout]), (f"{prefix}/bias", [cout])]


def tiny_face_detector_tensors():
    t = _conv("conv0", 3, 3, 16)
    channels = [16, 32, 64, 128, 256, 512]
    for i in range(1, 6):
        t += _sep(f"conv{i}", channels[i - 1], channels[i])
    return t + _conv("conv8", 1, 512, 25)


def landmark68_tensors():
    t = []
    cin = 3
    for b, c in enumerate([32, 64, 128, 256]):
        t += _conv(f"dense{b}/conv0", 3, cin, c) if b == 0 else _sep(f"dense{b}/conv0", cin, c)
        for j in (1, 2, 3):
            t += _sep(f"dense{b}/conv{j}", c, c)
        cin = c
    return t + [("fc/weights", [256, 136]), ("fc/bias", [136])]


def age_gender_tensors():
    def reduction(prefix, cin, cout):
        return _sep(f"{prefix}/separable_conv0", cin, cout) + _sep(f"{prefix}/separable_conv1", cout, cout) + \
            _conv(f"{prefix}/expansion_conv", 1, cin, cout)
    t = _conv("entry_flow/conv_in", 3, 3, 32)
    t += reduction("entry_flow/reduction_block_0", 32, 64)
    t += reduction("entry_flow/reduction_block_1", 64, 128)
    for m in (0, 1):
        for j in (0, 1, 2):
            t += _sep(f"middle_flow/main_block_{m}/separable_conv{j}", 128, 128)
    t += reduction("exit_flow/reduction_block", 128, 256)
    t += _sep("exit_flow/separable_conv", 256, 512)
    return t + [("fc/age/weights", [512, 1]), ("fc/age/bias", [1]),
                ("fc/gender/weights", [512, 2]), ("fc/gender/bias", [2])]


# The preprocessing of each network, as steps applied to 8-bit RGB pixels (an image for
# the detector, a face crop for the others). New ops, not torchvision's (FORMAT.md §2.4):
#   to_float        uint8 -> float32, values unchanged (0..255)
#   pad_to_square   zeros; anchor "top_left": all padding right/bottom; "center": of the
#                   difference d the right/bottom side gets Math.round(d/2) (halves up),
#                   the left/top the rest
#   resize          filter "tf_bilinear": tf.image.resizeBilinear, alignCorners false,
#                   halfPixelCenters false, no antialiasing, float output (no rounding);
#                   skipped when the size already matches
#   normalize       (x - mean_c) / std_c in float32 (a subtraction, then a division)
FACE_MEAN = [122.782, 117.001, 104.298]
DETECTOR_MEAN = [117.001, 114.697, 97.404]
ANCHORS = [[1.603231, 2.094468], [6.041143, 7.080126], [2.882459, 3.518061], [4.266906, 5.178857],
           [9.041765, 10.66308]]


def _steps(anchor, size, mean):
    return [{"op": "to_float"},
            {"op": "pad_to_square", "anchor": anchor},
            {"op": "resize", "size": [size, size], "filter": "tf_bilinear"},
            {"op": "normalize", "mean": list(mean), "std": [255.0, 255.0, 255.0]}]


FAMILIES = collections.OrderedDict([
    ("faceapi_tiny_face_detector", {
        "manifest": "tiny_face_detector_model",
        "tensors": tiny_face_detector_tensors,
        "description": "face-api tiny face detector (YOLOv2-style, depthwise-separable convs): boxes and scores",
        "model": {
            "input_size": [416, 416], "input_multiple": 32, "in_channels": 3, "leaky_relu_alpha": 0.1,
            "anchors": ANCHORS, "boxes_per_cell": 5, "box_encoding": ["tx", "ty", "tw", "th", "to"],
            "score_threshold": 0.5, "iou_threshold": 0.4,
        },
        "preprocess": {"steps": _steps("top_left", 416, DETECTOR_MEAN)},
        "outputs": [{"name": "grid", "shape": ["S/32", "S/32", 25],
                     "meaning": "per cell and anchor a (channels 5a..5a+4): tx, ty, tw, th, to; "
                                "centre = (col + sigmoid(tx), row + sigmoid(ty)) / grid, size = exp(tw, th) * anchor / "
                                "grid, score = sigmoid(to); corrected for the right/bottom padding; greedy NMS"}],
    }),
    ("faceapi_landmark68", {
        "manifest": "face_landmark_68_model",
        "tensors": landmark68_tensors,
        "description": "face-api 68-point face landmark network (4 dense blocks of separable convs, fc 256 -> 136)",
        "model": {"input_size": [112, 112], "in_channels": 3, "crop": "detection_box", "points": 68},
        "preprocess": {"steps": _steps("center", 112, FACE_MEAN)},
        "outputs": [{"name": "landmarks", "shape": [136],
                     "meaning": "x0, y0, x1, y1, ... relative to the padded 112-px input (no activation); "
                                "p = (out * 112 - pad) / scaled, then times the crop size plus the box corner"}],
    }),
    ("faceapi_age_gender", {
        "manifest": "age_gender_model",
        "tensors": age_gender_tensors,
        "description": "face-api age/gender network (Xception-style): age regression, gender softmax",
        "model": {"input_size": [112, 112], "in_channels": 3, "crop": "aligned_rect"},
        "preprocess": {"steps": _steps("center", 112, FACE_MEAN)},
        "outputs": [{"name": "age", "type": "regression", "unit": "years", "weight": "fc/age/weights",
                     "bias": "fc/age/bias"},
                    {"name": "gender", "type": "softmax", "classes": ["male", "female"],
                     "weight": "fc/gender/weights", "bias": "fc/gender/bias",
                     "meaning": "index 0 = P(male); label male when P(male) > 0.5; reported probability is that "
                                "of the label"}],
    }),
])


def family_by_manifest_name(name):
    for family, spec in FAMILIES.items():
        if spec["manifest"] == name:
            return family
    return None


# ---------------------------------------------------------------------------------------
# Reading and decoding.

def _finite_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_manifest(path):
    """Parse and check a weights manifest: a list of groups {paths: [str], weights: [entry]}.
    Returns the list (entries as parsed)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise TfjsError(f"cannot read the manifest: {e.strerror}: {path}") from None
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TfjsError(f"{path}: malformed JSON ({e})") from None
    if isinstance(manifest, dict) and "weightsManifest" in manifest:  # a model.json: its manifest part
        manifest = manifest["weightsManifest"]
    if not isinstance(manifest, list) or not manifest:
        raise TfjsError(f"{path}: a weights manifest is a non-empty JSON list of groups")
    names = set()
    for g, group in enumerate(manifest):
        where = f"{path}: group {g}"
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) or \
                not isinstance(group.get("weights"), list):
            raise TfjsError(f"{where}: needs 'paths' (list of shard files) and 'weights' (list of tensors)")
        if not group["paths"] or not all(isinstance(p, str) and p for p in group["paths"]):
            raise TfjsError(f"{where}: 'paths' must list at least one shard file name")
        for entry in group["weights"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                raise TfjsError(f"{where}: every weight needs a 'name' string, got {entry!r:.120}")
            name = entry["name"]
            if name in names:
                raise TfjsError(f"{where}: tensor {name} appears twice")
            names.add(name)
            shape = entry.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                      for d in shape):
                raise TfjsError(f"{where}: tensor {name}: malformed shape {shape!r}")
            dtype = entry.get("dtype")
            if dtype not in STORED_BYTES and dtype != "string":
                raise TfjsError(f"{where}: tensor {name}: unknown dtype {dtype!r} (tfjs knows "
                                f"{', '.join(sorted(list(STORED_BYTES) + ['string']))})")
            if dtype != "float32":
                raise TfjsError(f"{where}: tensor {name}: dtype {dtype} is not supported (softbio files hold "
                                f"float32: float32 tensors, raw or quantized as {', '.join(QUANTIZATIONS)})")
            if "quantization" in entry:
                q = entry["quantization"]
                if not isinstance(q, dict) or q.get("dtype") not in QUANTIZATIONS:
                    qd = q.get("dtype") if isinstance(q, dict) else q
                    raise TfjsError(f"{where}: tensor {name}: unknown quantization dtype {qd!r} "
                                    f"(tfjs supports {', '.join(QUANTIZATIONS)})")
                if q["dtype"] in ("uint8", "uint16"):
                    if not _finite_number(q.get("scale")) or not _finite_number(q.get("min")):
                        raise TfjsError(f"{where}: tensor {name}: {q['dtype']} quantization needs finite numbers "
                                        f"'scale' and 'min', got scale={q.get('scale')!r}, min={q.get('min')!r}")
    return manifest


def stored_dtype(entry):
    return entry["quantization"]["dtype"] if "quantization" in entry else entry["dtype"]


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def decode_tensor(entry, data):
    """One manifest entry's bytes -> float32 numpy array of its shape, as tfjs decodes it."""
    import numpy as np
    shape = entry["shape"]
    q = entry.get("quantization")
    if q is None:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    elif q["dtype"] == "float16":
        values = np.frombuffer(data, dtype="<f2").astype(np.float32)
    else:
        stored = np.frombuffer(data, dtype="u1" if q["dtype"] == "uint8" else "<u2")
        # JavaScript: v * scale + min in float64, then stored in a Float32Array.
        values = (stored.astype(np.float64) * float(q["scale"]) + float(q["min"])).astype(np.float32)
    return values.reshape(shape)


def read_weights(manifest_path):
    """Read a manifest and its shards. Returns (OrderedDict name -> float32 array in manifest
    order, manifest, list of (relative path, bytes) of the files read, manifest first)."""
    manifest = read_manifest(manifest_path)
    base = os.path.dirname(os.path.abspath(manifest_path))
    with open(manifest_path, "rb") as f:
        files = [(os.path.basename(manifest_path), f.read())]
    tensors = collections.OrderedDict()
    for g, group in enumerate(manifest):
        blob = bytearray()
        for shard in group["paths"]:
            full = os.path.join(base, shard)
            try:
                with open(full, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise TfjsError(f"{manifest_path}: group {g}: shard {shard} cannot be read ({e.strerror}: "
                                f"{full})") from None
            files.append((shard, data))
            blob += data
        need = sum(_size(e["shape"]) * STORED_BYTES[stored_dtype(e)] for e in group["weights"])
        if len(blob) != need:
            raise TfjsError(f"{manifest_path}: group {g}: the shards {', '.join(group['paths'])} hold {len(blob)} "
                            f"bytes, the manifest's {len(group['weights'])} tensors need {need} (size mismatch: "
                            f"wrong or truncated shard, or a manifest of another model)")
        offset = 0
        view = memoryview(bytes(blob))
        for entry in group["weights"]:
            n = _size(entry["shape"]) * STORED_BYTES[stored_dtype(entry)]
            tensors[entry["name"]] = decode_tensor(entry, view[offset:offset + n])
            offset += n
    return tensors, manifest, files


def recognise(tensors, path=""):
    """Which face-api network these tensors are: the family whose expected (name, shape)
    list they match exactly. Raises TfjsError naming the differences otherwise."""
    have = collections.OrderedDict((n, list(a.shape)) for n, a in tensors.items())
    best = None
    for family, spec in FAMILIES.items():
        want = collections.OrderedDict(spec["tensors"]())
        missing = [n for n in want if n not in have]
        unexpected = [n for n in have if n not in want]
        if not missing and not unexpected:
            for n, shape in want.items():
                if have[n] != shape:
                    raise TfjsError(f"{path}: {family}: tensor {n}: expected shape {shape}, the manifest has "
                                    f"{have[n]}")
            return family
        score = len(set(want) & set(have))
        if best is None or score > best[0]:
            best = (score, family, missing, unexpected)
    _, family, missing, unexpected = best
    details = []
    if missing:
        details.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        details.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    raise TfjsError(f"{path}: not one of the face-api networks softbio knows "
                    f"({', '.join(s['manifest'] for s in FAMILIES.values())}); closest is {family}: "
                    f"{'; '.join(details)}")


# ---------------------------------------------------------------------------------------
# Provenance and the metadata document.

def find_package(manifest_path):
    """The npm package holding the manifest (package.json in its folder or the one above,
    as in face-api's model/ folder): (name, version, license, copyright line) or None."""
    here = os.path.dirname(os.path.abspath(manifest_path))
    for folder in (here, os.path.dirname(here)):
        pj = os.path.join(folder, "package.json")
        if not os.path.isfile(pj):
            continue
        try:
            with open(pj, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict) or not isinstance(info.get("name"), str):
            continue
        copyright_line = None
        for lic in ("LICENSE", "LICENSE.md", "LICENSE.txt"):
            try:
                with open(os.path.join(folder, lic), encoding="utf-8") as f:
                    for line in f:
                        if line.strip().lower().startswith("copyright"):
                            copyright_line = line.strip()
                            break
            except OSError:
                continue
            break
        return (info["name"], str(info.get("version", "")), str(info.get("license", "")), copyright_line,
                os.path.relpath(os.path.abspath(manifest_path), folder).replace(os.sep, "/"))
    return None


def build_document(family, manifest, files, manifest_path, package=None, license_=None, copyright_line=None):
    """The softbio metadata document (docs/FACE_MODELS.md §10) for a converted network."""
    from weights_converter import __version__
    spec = FAMILIES[family]
    found = find_package(manifest_path)
    relpath = os.path.basename(manifest_path)
    if found:
        name, version, lic, copy_found, relpath = found
        package = package or f"{name}@{version}"
        license_ = license_ or lic
        copyright_line = copyright_line or copy_found
    if not package or "@" not in package.lstrip("@"):
        raise TfjsError(f"{manifest_path}: no package.json next to the model folder says where these weights come "
                        f"from; pass --package NAME@VERSION and --license SPDX-ID")
    if not license_:
        raise TfjsError(f"{manifest_path}: the licence of {package} is unknown; pass --license SPDX-ID")
    pkg_name, _, pkg_version = package.rpartition("@")
    quantization = collections.OrderedDict()
    for group in manifest:
        for e in group["weights"]:
            q = e.get("quantization")
            quantization[e["name"]] = dict(q) if q else {"dtype": e["dtype"]}
    doc = collections.OrderedDict()
    doc["format_version"] = 1
    model = collections.OrderedDict([("family", family), ("tensor_layout", "tfjs")])
    model.update(spec["model"])
    doc["model"] = model
    doc["outputs"] = spec["outputs"]
    doc["preprocess"] = spec["preprocess"]
    doc["trained"] = True
    doc["description"] = spec["description"]
    doc["source"] = f"softbio-convert {__version__} (weights_converter/tfjs.py) from {pkg_name} {pkg_version} {relpath}"
    doc["origin"] = collections.OrderedDict([
        ("package", pkg_name), ("version", pkg_version), ("license", license_),
        ("copyright", copyright_line or ""),
        ("homepage", "https://github.com/vladmandic/face-api" if pkg_name == "@vladmandic/face-api" else ""),
        ("files", collections.OrderedDict((p, hashlib.sha256(b).hexdigest()) for p, b in files)),
        ("decoding", "tfjs 4.22 io.decodeWeights: uint8/uint16 q * scale + min in float64, stored as float32"),
        ("tfjs_quantization", quantization),
    ])
    return doc


def convert(manifest_path, output, package=None, license_=None, copyright_line=None, dry_run=False):
    """Convert one manifest (output None: faceapi_<network>.safetensors in the current
    folder). Returns (family, tensors, document, output path, size or None)."""
    from weights_converter import safetensors_io
    tensors, manifest, files = read_weights(manifest_path)
    family = recognise(tensors, manifest_path)
    doc = build_document(family, manifest, files, manifest_path, package, license_, copyright_line)
    output = output or f"{family}.safetensors"
    size = None
    if not dry_run:
        size = safetensors_io.write_softbio_file(output, list(tensors.items()), doc)
    return family, tensors, doc, output, size


def build_parser():
    from weights_converter import __version__
    p = argparse.ArgumentParser(
        prog="softbio-convert --tfjs",
        description="Convert TensorFlow.js weights of a face-api network (tiny_face_detector_model, "
                    "face_landmark_68_model, age_gender_model) into a softbio model file: tensors decoded "
                    "exactly as tfjs does (uint8 -> q*scale+min, float32), the manifest's names and "
                    "TensorFlow layouts, metadata naming the network, its preprocessing, outputs, source, "
                    "version and licence (docs/FACE_MODELS.md §10). numpy only.",
        epilog="Exit status: 0 written, 1 conversion refused (message on stderr), 2 usage error or numpy missing.")
    p.add_argument("manifest", help="the *-weights_manifest.json file; its shards are read from the same folder")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: faceapi_<network>.safetensors in the current folder)")
    p.add_argument("--package", metavar="NAME@VERSION",
                   help="where the weights come from (default: the package.json beside the model folder, e.g. "
                        "@vladmandic/face-api@1.7.15)")
    p.add_argument("--license", metavar="SPDX", help="licence of the weights (default: the package.json's)")
    p.add_argument("--dry-run", action="store_true", help="decode, recognise and print the summary; write nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--version", action="version", version=f"softbio-convert {__version__}")
    return p


def main(argv=None):
    try:
        importlib.import_module("numpy")  # the only dependency: checked first, for a clear message
    except ImportError:
        sys.stderr.write(NUMPY_MISSING + "\n")
        return 2
    from weights_converter import safetensors_io
    args = build_parser().parse_args(argv)
    try:
        family, tensors, doc, output, size = convert(args.manifest, args.output, args.package, args.license,
                                                     dry_run=args.dry_run)
    except (TfjsError, safetensors_io.SafetensorsError) as e:
        sys.stderr.write(f"softbio-convert: error: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"softbio-convert: error: {e}\n")
        return 1
    if not args.quiet:
        params = sum(int(a.size) for a in tensors.values())
        o = doc["origin"]
        print(f"softbio-convert --tfjs: {args.manifest}\n"
              f"  network      {family}: {doc['description']}\n"
              f"  parameters   {params:,} in {len(tensors)} tensors (float32, TF layouts, manifest names)\n"
              f"  input        {doc['model']['input_size'][0]} x {doc['model']['input_size'][1]}\n"
              f"  source       {o['package']} {o['version']} ({o['license']})\n"
              + (f"  wrote        {output} ({size / 2**20:.2f} MiB)" if size is not None
                 else "  (dry run: nothing written)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

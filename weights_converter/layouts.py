# weights_converter/layouts.py — recognise a ResNet checkpoint and describe it for softbio.
#
# Input: a state_dict (tensor names -> numpy arrays, as torch_reader or safetensors_io
# produce it) plus the user's options. Output: a Conversion, i.e. the softbio metadata
# document (docs/FORMAT.md section 2) and the tensors under softbio's names, in order.
#
# What the weights tell (docs/MODELS.md has the facts behind each rule):
#   * block type       layer1.0.conv3.weight exists -> bottleneck, else basic
#   * blocks per stage the largest block index in layer1..layer4
#   * input channels,  conv1.weight [base_width, in_channels, 7, 7]
#     base width
#   * the heads        fc.weight [1,F] + linear_1_bias [K-1]       coral-cnn CORAL
#                      <p>.coral_weights.weight [1,F] + <p>.coral_bias [K-1]
#                                                                   coral-pytorch CoralLayer
#                      <p>.weight [C,F] + <p>.bias [C]              a linear layer: softmax
#                                                                   (gender, CE), logits
#                                                                   (ImageNet), CORN, OR-CNN
#   * the pooling      F = C4 * (pooled height) * (pooled width), C4 = channels of layer4:
#                      F = C4     -> one value per channel: AdaptiveAvgPool (torchvision) or
#                                    AvgPool2d(4) on a 4x4 map (coral-cnn 2020, CORN, 120 px)
#                      F = 4 * C4 -> a 2x2 pooled map: AvgPool2d(7, 1, 2) on a 4x4 map
#                                    (Raschka's CelebA notebooks at 128 px, coral-cnn 2019)
# What they do not tell, and comes from flags, presets or documented defaults:
#   * which conv of a bottleneck strides (--stride-in; default conv2 = "v1.5", as
#     torchvision and the notebooks); a whole pickled model records it and is believed
#   * the input size, the preprocessing chain, class names, the age offset (--preset,
#     --input-size, --preprocess, --normalize, --classes, --label-offset)
#   * what a linear head means when its output count does not say it (--head-type):
#     C outputs may be a C-class softmax, CORN with K = C+1 or OR-CNN with K = C/2+1.
# Input size and preprocessing without a preset: a layout that the tensors (and the head
# type) identify as a published model gets the chain it was published with
# (published_pipeline: coral-cnn, CORN, Raschka's notebooks, torchvision's ImageNet
# classifiers); any other checkpoint is refused with the presets and flags to choose
# from, rather than given a guessed chain. A preset that contradicts the tensors (its
# head type or class count, or an input size other than the layout's published one) is
# refused, naming both.
import collections
import re

import numpy as np

from weights_converter import resnet_depths

FORMAT_VERSION = 1
HEAD_TYPES = ("softmax", "coral", "corn", "orcnn", "logits")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class LayoutError(Exception):
    """The checkpoint's tensors do not form a network softbio can describe, or the
    options contradict them. The message says what was found and what was expected."""


# ----------------------------------------------------------------------------------
# Dataset presets (docs/MODELS.md sections 1.2, 2.5, 2.6)
# ----------------------------------------------------------------------------------

def _crop(n):
    return {"op": "center_crop", "size": [n, n]}


def _resize(n):
    return {"op": "resize", "size": [n, n], "filter": "bilinear"}


def _resize_shorter(n, max_size=None):
    """torchvision's Resize(n): the shorter side becomes n, the aspect ratio is kept."""
    step = {"op": "resize", "shorter_side": n, "filter": "bilinear"}
    if max_size is not None:
        step["max_size"] = max_size
    return step


_TO_TENSOR = {"op": "to_tensor"}
_NORMALIZE_IMAGENET = {"op": "normalize", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}

Preset = collections.namedtuple("Preset", "description input_size steps head_name classes num_classes label_offset")

PRESETS = collections.OrderedDict([
    ("celeba", Preset("CelebA gender (Raschka's notebooks): CenterCrop 178 -> Resize 128 -> ToTensor, "
                      "classes female/male", (128, 128), [_crop(178), _resize(128), _TO_TENSOR],
                      "gender", ["female", "male"], None, None)),
    ("afad", Preset("AFAD age (coral-cnn): K=26, ages 15-40, Resize 128 -> CenterCrop 120 -> ToTensor",
                    (120, 120), [_resize(128), _crop(120), _TO_TENSOR], "age", None, 26, 15)),
    ("morph2", Preset("MORPH-2 age (coral-cnn): K=55, ages 16-70, CenterCrop 140 -> Resize 128 -> "
                      "CenterCrop 120 -> ToTensor", (120, 120), [_crop(140), _resize(128), _crop(120), _TO_TENSOR],
                      "age", None, 55, 16)),
    ("cacd", Preset("CACD age (coral-cnn): K=49, ages 14-62, Resize 128 -> CenterCrop 120 -> ToTensor",
                    (120, 120), [_resize(128), _crop(120), _TO_TENSOR], "age", None, 49, 14)),
    ("utkface", Preset("UTKFace age (coral-cnn 2019): K=40, ages 21-60, Resize 128 -> CenterCrop 120 -> "
                       "ToTensor", (120, 120), [_resize(128), _crop(120), _TO_TENSOR], "age", None, 40, 21)),
    ("torchvision", Preset("torchvision's ImageNet evaluation transform (IMAGENET1K_V1 weights, docs/MODELS.md "
                           "4.4): Resize 256 (shorter side) -> CenterCrop 224 -> ToTensor -> Normalize ImageNet; "
                           "says nothing about the heads", (224, 224),
                           [_resize_shorter(256), _crop(224), _TO_TENSOR, _NORMALIZE_IMAGENET],
                           None, None, None, None)),
])
AGE_PRESETS = ("afad", "morph2", "cacd", "utkface")

# How a model's training faces were cut from photos (docs/FORMAT.md 2.7, docs/FACE_MODELS.md
# §9): softbio's face pipeline cuts each detected face the same way before the model's
# preprocessing. The same numbers as softbio::named_face_crop (core/face_crop_spec.hpp);
# tests/python/test_face_cli.py checks that the two agree. Coordinates are continuous
# (pixel (r, c) covers [c, c+1) x [r, r+1)): CelebA's MATLAB targets (70.745, 112),
# (108.237, 112), (89.432, 153.514) are 1-based pixel centres, minus 0.5 here.
FACE_CROPS = collections.OrderedDict([
    ("celeba", collections.OrderedDict([
        ("method", "similarity"), ("size", [218, 178]), ("filter", "bicubic"),
        ("points", ["left_eye", "right_eye", "mouth_center"]),
        ("targets", [[70.245, 111.5], [107.737, 111.5], [88.932, 153.014]]),
        ("rotation", True), ("name", "celeba")])),
    ("cacd", collections.OrderedDict([
        ("method", "box"), ("size", [120, 120]), ("filter", "bilinear"),
        ("margin", 0.15), ("shift", 0.05), ("name", "cacd")])),
])
# The crop each dataset preset declares. AFAD, MORPH-2 and UTKFace publish no geometry a
# detector's output can reproduce (AFAD ships crops; MORPH-2 aligns to a mean shape that
# was not published; UTKFace's crops come from its own aligner): none by default, so
# such a model takes whole face images until --face-crop says how to cut them.
PRESET_FACE_CROPS = {"celeba": "celeba", "cacd": "cacd"}


# ----------------------------------------------------------------------------------
# Options (one attribute per command-line flag; None = not given)
# ----------------------------------------------------------------------------------

class HeadSpec:
    """One --head NAME[=PREFIX][,type=T][,num_classes=K][,offset=X][,classes=a/b/c]."""

    KEYS = ("type", "num_classes", "offset", "classes")

    def __init__(self, name, prefix, type=None, num_classes=None, offset=None, classes=None):
        self.name, self.prefix, self.type = name, prefix, type
        self.num_classes, self.offset, self.classes = num_classes, offset, classes

    @classmethod
    def parse(cls, text):
        first, *rest = [p.strip() for p in text.split(",")]
        name, _, prefix = first.partition("=")
        spec = cls(name, prefix or name)
        for item in rest:
            key, eq, value = item.partition("=")
            key = {"k": "num_classes", "label_offset": "offset"}.get(key, key)
            if not eq or key not in cls.KEYS:
                raise LayoutError(f"--head {text}: cannot parse {item!r} (expected one of "
                                  f"{', '.join(k + '=...' for k in cls.KEYS)})")
            try:
                if key == "type":
                    if value not in HEAD_TYPES:
                        raise ValueError
                    spec.type = value
                elif key == "num_classes":
                    spec.num_classes = int(value)
                elif key == "offset":
                    spec.offset = _number(value)
                else:
                    spec.classes = value.split("/")
            except ValueError:
                raise LayoutError(f"--head {text}: bad value {value!r} for {key}") from None
        return spec


def _number(text):
    value = float(text)
    return int(value) if value.is_integer() else value


class Options:
    """What the user said (command-line flags). See convert.py --help for each one."""

    def __init__(self, **kw):
        self.preset = kw.pop("preset", None)
        self.input_size = kw.pop("input_size", None)      # (H, W)
        self.stride_in = kw.pop("stride_in", None)        # "conv1" | "conv2"
        self.pool = kw.pop("pool", None)                  # {"type": ...} as in FORMAT.md
        self.head_type = kw.pop("head_type", None)
        self.num_classes = kw.pop("num_classes", None)
        self.label_offset = kw.pop("label_offset", None)
        self.classes = kw.pop("classes", None)            # list of str
        self.head_name = kw.pop("head_name", None)
        self.heads = kw.pop("heads", None) or []          # list of HeadSpec
        self.bn_eps = kw.pop("bn_eps", None)
        self.preprocess = kw.pop("preprocess", None)      # list of step dicts
        self.normalize = kw.pop("normalize", None)        # "imagenet" | "none" | (mean, std)
        self.trained = kw.pop("trained", True)
        self.description = kw.pop("description", None)
        self.source = kw.pop("source", None)
        self.face_crop = kw.pop("face_crop", None)        # None (the preset's), "none", or a FACE_CROPS-style dict
        if kw:
            raise TypeError(f"unknown options: {', '.join(kw)}")
        if self.preset is not None and self.preset not in PRESETS:
            raise LayoutError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")


def defaults_from_document(opts, doc):
    """Re-converting a softbio file: every setting the user did not give on the command
    line is taken from the file's own metadata document (docs/FORMAT.md section 2)."""
    m = doc.get("model", {})
    if opts.input_size is None and "input_size" in m:
        opts.input_size = tuple(m["input_size"])
    if opts.stride_in is None and m.get("block") == "bottleneck":
        opts.stride_in = m.get("stride_in")
    if opts.pool is None:
        opts.pool = m.get("pool")
    if opts.bn_eps is None:
        opts.bn_eps = m.get("bn_eps")
    if opts.preprocess is None and opts.preset is None and "preprocess" in doc:
        opts.preprocess = [dict(s) for s in doc["preprocess"]["steps"]]
        if opts.normalize is None:
            opts.normalize = "none"  # a normalize step is already in the chain
    if not opts.heads and opts.head_type is None:
        for h in doc.get("heads", []):
            opts.heads.append(HeadSpec(h["name"], "head." + h["name"], h.get("type"),
                                       h.get("num_classes") if h.get("type") != "logits" else None,
                                       h.get("label_offset"), h.get("classes")))
    if opts.description is None:
        opts.description = doc.get("description")
    if opts.face_crop is None and opts.preset is None:
        opts.face_crop = doc.get("face_crop", "none")


# ----------------------------------------------------------------------------------
# Parsing helpers for flag values (used by convert.py)
# ----------------------------------------------------------------------------------

def parse_size(text):
    """'128' -> (128, 128); '218x178' -> (218, 178)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise LayoutError(f"bad size {text!r}: expected N or HxW") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise LayoutError(f"bad size {text!r}: expected N or HxW with positive integers")
    return tuple(values)


def parse_pool(text):
    """'adaptive' or 'avg:K,S,P' (AvgPool2d(kernel K, stride S, padding P))."""
    if text in ("adaptive", "adaptive_avg"):
        return {"type": "adaptive_avg"}
    m = re.fullmatch(r"avg:(\d+),(\d+),(\d+)", text)
    if not m:
        raise LayoutError(f"bad --pool {text!r}: expected 'adaptive' or 'avg:K,S,P' (e.g. avg:7,1,2)")
    k, s, p = (int(g) for g in m.groups())
    if k < 1 or s < 1 or 2 * p > k:
        raise LayoutError(f"bad --pool {text!r}: need kernel >= 1, stride >= 1, padding <= kernel/2")
    return {"type": "avg", "kernel": k, "stride": s, "padding": p}


def parse_preprocess(text):
    """'center_crop:178,resize:128,to_tensor' -> FORMAT.md steps (normalize: --normalize).
    resize:N is Resize((N, N)); resize_shorter:N[:max=M] is torchvision's Resize(N[, max_size=M])."""
    steps = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        op, _, arg = item.partition(":")
        if op == "resize_shorter":
            m = re.fullmatch(r"(\d+)(?::max(?:_size)?=(\d+))?", arg)
            if not m or int(m.group(1)) < 1:
                raise LayoutError(f"--preprocess: {item!r}: expected resize_shorter:N or resize_shorter:N:max=M "
                                  f"(torchvision's Resize(N[, max_size=M]): the shorter side becomes N)")
            n, max_size = int(m.group(1)), (int(m.group(2)) if m.group(2) else None)
            if max_size is not None and max_size <= n:
                raise LayoutError(f"--preprocess: {item!r}: max {max_size} must be greater than {n} (torchvision "
                                  f"refuses max_size <= size)")
            steps.append(_resize_shorter(n, max_size))
        elif op in ("center_crop", "resize"):
            if not arg:
                raise LayoutError(f"--preprocess: {op} needs a size, e.g. {op}:128 or {op}:218x178")
            step = {"op": op, "size": list(parse_size(arg))}
            if op == "resize":
                step["filter"] = "bilinear"
            steps.append(step)
        elif op == "to_tensor" and not arg:
            steps.append({"op": "to_tensor"})
        else:
            raise LayoutError(f"--preprocess: unknown step {item!r} (known: center_crop:SIZE, resize:SIZE, "
                              f"resize_shorter:N[:max=M], to_tensor; normalization is --normalize)")
    return steps


def parse_face_crop(text):
    """--face-crop: a name of FACE_CROPS, "none", or a JSON object as in docs/FORMAT.md 2.7
    (checked fully when softbio loads the file; here only its shape)."""
    import json
    if text == "none" or text in FACE_CROPS:
        return text
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text, object_pairs_hook=collections.OrderedDict)
        except ValueError as e:
            raise LayoutError(f"--face-crop: not valid JSON ({e})")
        size = value.get("size") if isinstance(value, dict) else None
        if (value.get("method") not in ("similarity", "box") or not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, int) and v > 0 for v in size)):
            raise LayoutError("--face-crop: a JSON crop needs \"method\" (similarity or box) and \"size\" "
                              "[height, width] (docs/FORMAT.md 2.7)")
        return value
    raise LayoutError(f"--face-crop: expected {', '.join(FACE_CROPS)}, none or a JSON object, got {text!r}")


def parse_normalize(text):
    """'imagenet', 'none' or 'M,M,M/S,S,S'."""
    if text in ("imagenet", "none"):
        return text
    try:
        mean, std = text.split("/")
        mean = [float(v) for v in mean.split(",")]
        std = [float(v) for v in std.split(",")]
    except ValueError:
        raise LayoutError(f"bad --normalize {text!r}: expected imagenet, none or M,M,M/S,S,S") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise LayoutError(f"bad --normalize {text!r}: need 3 means and 3 positive stds")
    return (mean, std)


# ----------------------------------------------------------------------------------
# Backbone
# ----------------------------------------------------------------------------------

class Backbone:
    def __init__(self, block, layers, in_channels, base_width):
        self.block, self.layers = block, layers
        self.in_channels, self.base_width = in_channels, base_width
        self.expansion = 4 if block == "bottleneck" else 1

    @property
    def c4(self):
        return 8 * self.base_width * self.expansion

    def name(self):
        depth = sum(self.layers) * (3 if self.block == "bottleneck" else 2) + 2
        return resnet_depths.known_name(self.block, self.layers) or f"ResNet (custom, depth {depth})"

    def describe(self):
        return (f"{self.name()}: {self.block} blocks {list(self.layers)}, {self.in_channels} input channel"
                f"{'s' if self.in_channels != 1 else ''}, base width {self.base_width}")

    def expected_tensors(self):
        """Every backbone tensor as (name, shape), in torchvision's state_dict order
        (docs/FORMAT.md section 3)."""
        out = []

        def conv(name, co, ci, k):
            out.append((name + ".weight", (co, ci, k, k)))

        def bn(name, c):
            out.extend((f"{name}.{p}", (c,)) for p in ("weight", "bias", "running_mean", "running_var"))

        w = self.base_width
        conv("conv1", w, self.in_channels, 7)
        bn("bn1", w)
        in_c = w
        for s in range(4):
            planes = w << s
            out_c = planes * self.expansion
            stride = 1 if s == 0 else 2
            for b in range(self.layers[s]):
                p = f"layer{s + 1}.{b}"
                if self.block == "basic":
                    conv(p + ".conv1", planes, in_c, 3)
                    bn(p + ".bn1", planes)
                    conv(p + ".conv2", planes, planes, 3)
                    bn(p + ".bn2", planes)
                else:
                    conv(p + ".conv1", planes, in_c, 1)
                    bn(p + ".bn1", planes)
                    conv(p + ".conv2", planes, planes, 3)
                    bn(p + ".bn2", planes)
                    conv(p + ".conv3", out_c, planes, 1)
                    bn(p + ".bn3", out_c)
                if b == 0 and (stride != 1 or in_c != out_c):
                    conv(p + ".downsample.0", out_c, in_c, 1)
                    bn(p + ".downsample.1", out_c)
                in_c = out_c
        return out


_BACKBONE_KEY = re.compile(r"^(conv1|bn1|layer[1-4])\.")


def shape_str(shape):
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def detect_backbone(tensors):
    """Block type, stage lengths, input channels and width from the tensor names."""
    if "conv1.weight" not in tensors:
        sample = ", ".join(list(tensors)[:8])
        hint = ""
        prefixed = sorted({k[:-len("conv1.weight")] for k in tensors
                           if k.endswith(".conv1.weight") and not re.search(r"layer\d\.\d+\.conv1\.weight$", k)})
        if prefixed:
            hint = f" The backbone seems to sit under {prefixed[0]!r}: pass --strip-prefix {prefixed[0]}."
        raise LayoutError("not a torchvision-style ResNet: there is no tensor conv1.weight "
                          f"(expected conv1.weight [64,3,7,7], bn1.*, layer1.0.conv1.weight, ...; found {sample}"
                          f"{', ...' if len(tensors) > 8 else ''}).{hint}")
    w = tensors["conv1.weight"]
    if w.ndim != 4 or w.shape[2:] != (7, 7):
        raise LayoutError(f"tensor conv1.weight: expected [base_width,in_channels,7,7] (the ResNet stem), "
                          f"checkpoint has {shape_str(w.shape)}")
    base_width, in_channels = int(w.shape[0]), int(w.shape[1])
    layers = []
    for s in range(1, 5):
        blocks = {int(m.group(1)) for k in tensors for m in [re.match(rf"layer{s}\.(\d+)\.", k)] if m}
        if not blocks:
            raise LayoutError(f"no tensors for stage layer{s} (expected layer{s}.0.conv1.weight, ...): "
                              f"not a 4-stage ResNet")
        layers.append(max(blocks) + 1)
    if "layer1.0.conv3.weight" in tensors:
        block = "bottleneck"
    elif "layer1.0.conv2.weight" in tensors:
        block = "basic"
    else:
        raise LayoutError("cannot tell the block type: layer1.0 has neither conv3 (bottleneck) nor conv2 "
                          "(basic block)")
    return Backbone(block, layers, in_channels, base_width)


# ----------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------

class Candidate:
    """Tensors that look like one output head."""

    def __init__(self, prefix, kind, weight_key, bias_key, weight, bias):
        self.prefix, self.kind = prefix, kind   # "coral-cnn" | "coral-pytorch" | "coral-softbio" | "linear"
        self.weight_key, self.bias_key = weight_key, bias_key
        self.weight, self.bias = weight, bias

    @property
    def outputs(self):
        return int(self.weight.shape[0])

    @property
    def in_features(self):
        return int(self.weight.shape[1])

    def describe(self):
        return f"{self.weight_key} {shape_str(self.weight.shape)} + {self.bias_key} {shape_str(self.bias.shape)}"


def find_head_candidates(rest):
    """Group the non-backbone tensors into heads; returns (candidates, unclaimed names)."""
    claimed = set()
    found = collections.OrderedDict()
    if "linear_1_bias" in rest and "fc.weight" in rest and "fc.bias" not in rest:
        found["fc"] = Candidate("fc", "coral-cnn", "fc.weight", "linear_1_bias", rest["fc.weight"],
                                rest["linear_1_bias"])
        claimed |= {"fc.weight", "linear_1_bias"}
    for key in rest:
        if key.endswith(".coral_weights.weight"):
            p = key[:-len(".coral_weights.weight")]
            if p + ".coral_bias" in rest:
                found[p] = Candidate(p, "coral-pytorch", key, p + ".coral_bias", rest[key], rest[p + ".coral_bias"])
                claimed |= {key, p + ".coral_bias"}
    for key in rest:
        if key in claimed or not key.endswith(".weight"):
            continue
        p = key[:-len(".weight")]
        if p + ".bias" in rest and p + ".bias" not in claimed and rest[key].ndim == 2:
            w, b = rest[key], rest[p + ".bias"]
            # softbio's own CORAL tensors (re-converting a softbio file): [1,F] + [K-1]
            kind = "coral-softbio" if p.startswith("head.") and w.shape[0] == 1 and b.shape != (1,) else "linear"
            found[p] = Candidate(p, kind, key, p + ".bias", w, b)
            claimed |= {key, p + ".bias"}
    for c in found.values():
        bias_len = c.bias.shape[0] if c.bias.ndim == 1 else -1
        if c.weight.ndim != 2 or c.bias.ndim != 1:
            raise LayoutError(f"head {c.prefix}: {c.describe()} is not a linear layer ([out,in] weight, [out] bias)")
        if c.kind == "linear" and bias_len != c.outputs:
            raise LayoutError(f"head {c.prefix}: {c.describe()}: the bias length differs from the weight's rows")
        if c.kind != "linear" and c.outputs != 1:
            raise LayoutError(f"CORAL head {c.prefix}: {c.weight_key} must be [1,F] (one shared weight vector), "
                              f"checkpoint has {shape_str(c.weight.shape)}")
    unclaimed = [k for k in rest if k not in claimed]
    return found, unclaimed


class Head:
    """A resolved head: its metadata entry and its two tensors."""

    def __init__(self, name, type, candidate, num_classes=None, classes=None, label_offset=None, why=""):
        self.name, self.type, self.candidate = name, type, candidate
        self.num_classes, self.classes, self.label_offset = num_classes, classes, label_offset
        self.why = why  # how the type was decided, for the summary

    def metadata(self):
        entry = collections.OrderedDict([("name", self.name), ("type", self.type)])
        if self.type in ("coral", "corn", "orcnn"):
            entry["num_classes"] = self.num_classes
            entry["label_offset"] = self.label_offset if self.label_offset is not None else 0
        elif self.type == "softmax":
            entry["num_classes"] = self.num_classes
            entry["classes"] = self.classes
            if self.label_offset is not None:
                entry["label_offset"] = self.label_offset
        else:  # logits
            entry["num_classes"] = self.num_classes
        return entry

    def describe(self):
        c = self.candidate
        if self.type == "softmax":
            text = f"softmax over {self.num_classes} classes ({', '.join(self.classes[:6])}" \
                   f"{', ...' if len(self.classes) > 6 else ''})"
        elif self.type == "logits":
            text = f"raw logits, {self.num_classes} outputs, label = argmax"
        else:
            text = f"{self.type}, K={self.num_classes} ranks"
        if self.label_offset is not None:
            text += f", value = label + {self.label_offset}"
        return f"{self.name}: {text} (from {c.describe()}{'; ' + self.why if self.why else ''})"


def _resolve_head(name, c, spec_type, k, classes, offset, k_source):
    """Decide type and class count of one candidate (see the module comment). k_source
    says where K came from, for messages ("preset afad", "--num-classes")."""
    C = c.outputs
    if c.kind in ("coral-cnn", "coral-pytorch", "coral-softbio"):
        if spec_type not in (None, "coral"):
            raise LayoutError(f"head {name}: {c.describe()} is a CORAL head (one weight row plus K-1 biases); "
                              f"--head-type {spec_type} does not fit it")
        K = int(c.bias.shape[0]) + 1
        if k is not None and k != K:
            raise LayoutError(f"head {name}: {c.describe()} has K-1 = {K - 1} biases, so K = {K}, but "
                              f"{k_source} says K = {k}")
        why = {"coral-cnn": "coral-cnn linear_1_bias", "coral-pytorch": "coral-pytorch CoralLayer",
               "coral-softbio": "softbio CORAL head"}[c.kind]
        return Head(name, "coral", c, K, None, offset, why)
    # A plain linear layer: the output count alone does not say what it is.
    head_type, why = spec_type, "type given" if spec_type else ""
    if head_type is None and k is not None:
        options = {"softmax": k, "corn": k - 1, "orcnn": 2 * (k - 1)}
        fits = [t for t, n in options.items() if n == C]
        if len(fits) == 1:
            head_type, why = fits[0], f"{C} outputs with K = {k}"
        else:
            raise LayoutError(
                f"head {name}: {c.describe()} has {C} outputs; with K = {k} classes expected {k} (softmax / "
                f"cross-entropy), {k - 1} (CORN) or {2 * (k - 1)} (OR-CNN) (K from {k_source})"
                + (" -- ambiguous at K = 2, pass --head-type" if len(fits) > 1 else ""))
    if head_type is None and classes is not None:
        head_type, why = "softmax", "--classes given"
    if head_type is None and C == 1000:
        head_type, why = "logits", "1000 outputs: ImageNet classifier"
    if head_type is None:
        raise LayoutError(
            f"head {name}: {c.describe()} is a plain linear layer with {C} outputs, which could be a {C}-class "
            f"softmax (e.g. gender, or the cross-entropy age baseline), CORN with K = {C + 1} ranks"
            + (f" or OR-CNN with K = {C // 2 + 1}" if C % 2 == 0 else "")
            + ". The tensors cannot tell: pass --head-type softmax|corn|orcnn|logits (multi-head: type=... in "
              "--head), or a --preset / --num-classes that fixes K")
    if head_type == "coral":
        raise LayoutError(f"head {name}: --head-type coral needs a CORAL layout (fc.weight [1,F] + linear_1_bias, "
                          f"or coral_weights + coral_bias); found {c.describe()}")
    if head_type == "corn":
        K = C + 1
    elif head_type == "orcnn":
        if C % 2:
            raise LayoutError(f"head {name}: an OR-CNN head has 2(K-1) outputs, an even number; {c.describe()}")
        K = C // 2 + 1
    else:
        K = C
    if k is not None and k != K:
        raise LayoutError(f"head {name}: a {head_type} head with {C} outputs has K = {K}, but "
                          f"{k_source} says K = {k}")
    if head_type == "softmax":
        if classes is None:
            classes = [str(i) for i in range(C)]
        if len(classes) != C:
            raise LayoutError(f"head {name}: {len(classes)} class names given for {C} outputs")
    elif classes is not None:
        raise LayoutError(f"head {name}: class names only apply to softmax heads, not {head_type}")
    if head_type == "logits" and offset is not None:
        raise LayoutError(f"head {name}: a logits head has no label offset")
    return Head(name, head_type, c, K, classes, offset, why)


# ----------------------------------------------------------------------------------
# Pooling, input size, preprocessing
# ----------------------------------------------------------------------------------

def spatial_after_stages(x):
    """Side length of layer4's output for an input side x (stem /4, three /2 stages)."""
    x = (x + 6 - 7) // 2 + 1
    x = (x + 2 - 3) // 2 + 1
    for _ in range(3):
        x = (x + 2 - 3) // 2 + 1
    return x


def feature_width(c4, pool, size):
    if pool["type"] == "adaptive_avg":
        return c4
    outs = []
    for x in size:
        s = spatial_after_stages(x)
        if s + 2 * pool["padding"] < pool["kernel"]:
            return None
        outs.append((s + 2 * pool["padding"] - pool["kernel"]) // pool["stride"] + 1)
    return c4 * outs[0] * outs[1]


def pool_str(pool):
    if pool["type"] == "adaptive_avg":
        return "AdaptiveAvgPool2d(1)"
    return f"AvgPool2d({pool['kernel']}, stride {pool['stride']}, padding {pool['padding']})"


AVG4 = {"type": "avg", "kernel": 4, "stride": 4, "padding": 0}
AVG712 = {"type": "avg", "kernel": 7, "stride": 1, "padding": 2}

Published = collections.namedtuple("Published", "layout size steps why")


def published_pipeline(backbone, heads, pool, F):
    """The input size and preprocessing a layout was published with, when the tensors
    (plus the resolved head type) identify the publication; None otherwise. Facts:
    docs/MODELS.md 1.2 (notebooks), 2.6 (coral-cnn), 3.3 (CORN), 4.4 (torchvision)."""
    if len(heads) != 1:
        return None
    h = heads[0]
    r34 = backbone.block == "basic" and list(backbone.layers) == [3, 4, 6, 3] and backbone.base_width == 64
    pool_2020 = pool == AVG4 and F == backbone.c4          # AvgPool2d(4) on the 4x4 map: 1x1
    pool_2019 = pool == AVG712 and F == 4 * backbone.c4    # AvgPool2d(7,1,2) on the 4x4 map: 2x2
    coral_cnn_head = (h.candidate.kind == "coral-cnn" or h.type == "orcnn"
                      or (h.type == "softmax" and h.label_offset is not None))
    if r34 and (pool_2020 or pool_2019) and coral_cnn_head:
        year = "2020" if pool_2020 else "2019"
        return Published(f"coral-cnn {year}", (120, 120), [_resize(128), _crop(120), _TO_TENSOR],
                         "coral-cnn's published evaluation chain (docs/MODELS.md 2.6; MORPH-2's own evaluation "
                         "crops 140 first: --preset morph2)")
    if r34 and pool_2020 and h.type == "corn":
        return Published("CORN", (120, 120), [_crop(140), _resize(128), _crop(120), _TO_TENSOR],
                         "corn-ordinal-neuralnet's published evaluation chain (docs/MODELS.md 3.3)")
    notebook = tuple(backbone.layers) in {d.layers for d in resnet_depths.NOTEBOOK.values()
                                          if d.block == backbone.block}
    if notebook and pool_2019 and h.type == "softmax" and h.num_classes == 2 and h.label_offset is None:
        return Published("Raschka CelebA notebook", (128, 128), [_crop(178), _resize(128), _TO_TENSOR],
                         "the CelebA notebooks' chain (docs/MODELS.md 1.2)")
    torchvision = resnet_depths.Depth(backbone.block, tuple(backbone.layers)) in resnet_depths.TORCHVISION.values()
    if torchvision and backbone.in_channels == 3 and pool == {"type": "adaptive_avg"} and h.type == "logits" \
            and h.num_classes == 1000:
        return Published("torchvision ImageNet classifier", (224, 224),
                         [_resize_shorter(256), _crop(224), _TO_TENSOR, dict(_NORMALIZE_IMAGENET)],
                         "torchvision's published evaluation transform of the IMAGENET1K_V1 weights (docs/MODELS.md "
                         "4.4); the IMAGENET1K_V2 weights of resnet50/101/152 resize to 232: --preprocess "
                         "resize_shorter:232,center_crop:224,to_tensor --normalize imagenet")
    return None


def _size_str(size):
    return f"{size[0]}x{size[1]}"


def choices_text():
    """The presets and flags that settle input size and preprocessing (for refusals)."""
    lines = [f"  --preset {name:11s} {_size_str(p.input_size)}: {describe_steps(p.steps)}"
             for name, p in PRESETS.items()]
    lines.append("  or --preprocess STEPS [--input-size N|HxW] [--normalize imagenet|M,M,M/S,S,S], e.g. --preprocess "
                 "resize_shorter:256,center_crop:224,to_tensor (steps: center_crop:SIZE, resize:SIZE, "
                 "resize_shorter:N[:max=M], to_tensor)")
    return "\n".join(lines)


def _preset_head_conflict(preset_name, preset, c, head_type, num_classes, classes):
    """Why the head `c` (with the type / class flags given for it) cannot be the head the
    preset describes; None when it fits. Only presets that name classes describe a head
    type (celeba: a 2-class softmax); the age presets' K is checked in _resolve_head."""
    if not preset.classes:
        return None
    n = len(preset.classes)
    wanted = (f"a {n}-class softmax head '{preset.head_name}' ({'/'.join(preset.classes)}) on "
              f"{_size_str(preset.input_size)} inputs")
    if c.kind != "linear":
        K = int(c.bias.shape[0]) + 1
        found = (f"is a CORAL head with K = {K} ranks ({c.describe()}), an ordinal age model (for those: --preset "
                 f"{', '.join(AGE_PRESETS[:-1])} or {AGE_PRESETS[-1]})")
    elif c.outputs != n:
        found = f"has {c.outputs} outputs ({c.describe()}), not {n}"
    elif head_type not in (None, "softmax"):
        found = f"is read as a {head_type} head (--head-type / type=)"
    elif num_classes not in (None, n):
        found = f"is given K = {num_classes} (--num-classes / num_classes=)"
    elif classes is not None and len(classes) != n:
        found = f"is given {len(classes)} class names"
    else:
        return None
    return f"preset {preset_name} describes {wanted}, but the checkpoint's head {found}"


def _preset_conflict_message(conflict, preset_name, preset, published):
    """The refusal for a preset whose head contradicts the checkpoint: what the preset
    says, what the tensors say, the published layout they match, and the way out."""
    text = conflict
    if published is not None:
        text += (f"; the tensors match the {published.layout} layout, published at {_size_str(published.size)} with "
                 f"{describe_steps(published.steps)} (drop --preset {preset_name} to get that)")
    flags = ",".join(_step_flag(st) for st in preset.steps if st["op"] != "normalize")
    return (text + f". To use only the preset's preprocessing, pass --preprocess {flags} --input-size "
            f"{preset.input_size[0]} instead of --preset")


def _step_flag(step):
    """A FORMAT.md step as written in --preprocess."""
    if step["op"] == "resize" and "shorter_side" in step:
        return f"resize_shorter:{step['shorter_side']}" + (f":max={step['max_size']}" if step.get("max_size") else "")
    if step["op"] in ("center_crop", "resize"):
        h, w = step["size"]
        return f"{step['op']}:{h if h == w else f'{h}x{w}'}"
    return step["op"]


def shorter_side_size(h, w, n, max_size=None):
    """Output (H, W) of torchvision 0.14's Resize(n, max_size) on an h x w image
    (_compute_resized_output_size; docs/FORMAT.md 2.4)."""
    short, long_ = (w, h) if w <= h else (h, w)
    new_short, new_long = n, int(n * long_ / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


def _steps_output_size(steps):
    """The chain's output size whatever the image, or None when it depends on the image."""
    size = None
    for step in steps:
        if step["op"] == "center_crop" or (step["op"] == "resize" and "size" in step):
            size = tuple(step["size"])
        elif step["op"] == "resize" and size is not None:
            size = shorter_side_size(size[0], size[1], step["shorter_side"], step.get("max_size"))
    return size


def describe_steps(steps):
    parts = []
    for st in steps:
        if st["op"] == "resize" and "shorter_side" in st:
            parts.append(f"resize shorter side {st['shorter_side']}"
                         + (f" (max {st['max_size']})" if st.get("max_size") else ""))
        elif st["op"] in ("center_crop", "resize"):
            parts.append(f"{st['op']} {st['size'][0]}x{st['size'][1]}")
        elif st["op"] == "normalize":
            parts.append(f"normalize mean {'/'.join(f'{v:g}' for v in st['mean'])} std "
                         f"{'/'.join(f'{v:g}' for v in st['std'])}")
        else:
            parts.append(st["op"])
    return " -> ".join(parts)


# ----------------------------------------------------------------------------------
# The whole conversion
# ----------------------------------------------------------------------------------

class Conversion:
    """The result: metadata document, tensors in file order, and a human summary."""

    def __init__(self):
        self.document = None
        self.tensors = []          # [(name, float32 array)]
        self.layout = ""           # short id, e.g. "coral-cnn-2020"
        self.layout_description = ""
        self.backbone = None
        self.heads = []
        self.notes = []
        self.parameters = 0
        self.running_stats = 0


def _check_tensors(backbone, tensors):
    """Compare the backbone tensors with what the architecture needs; one error listing
    every missing, mis-shaped and unexpected backbone tensor."""
    problems = []
    expected = backbone.expected_tensors()
    names = {n for n, _ in expected}
    for name, shape in expected:
        if name not in tensors:
            problems.append(f"missing tensor {name} {shape_str(shape)}")
        elif tuple(tensors[name].shape) != shape:
            problems.append(f"tensor {name}: expected {shape_str(shape)}, checkpoint has "
                            f"{shape_str(tensors[name].shape)}")
    for name, value in tensors.items():
        if _BACKBONE_KEY.match(name) and name not in names:
            problems.append(f"unexpected tensor {name} {shape_str(value.shape)} (not part of a {backbone.name()} "
                            f"{backbone.block} backbone)")
    if problems:
        shown = problems[:25]
        more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
        raise LayoutError(f"checkpoint does not match {backbone.describe()}:\n  " + "\n  ".join(shown) + more)
    return expected


def build(state_tensors, options, module_hints=None):
    """Recognise the network in `state_tensors` (name -> numpy array) and build the
    softbio metadata and tensor list. Raises LayoutError with a readable message."""
    opts = options
    preset = PRESETS[opts.preset] if opts.preset else None
    conv = Conversion()

    # 1. Dtypes; BatchNorm's step counter is not a weight.
    tensors = collections.OrderedDict()
    dropped = 0
    converted = collections.Counter()
    for name, value in state_tensors.items():
        if name.endswith("num_batches_tracked"):
            dropped += 1
            continue
        if not isinstance(value, np.ndarray):
            raise LayoutError(f"tensor {name}: not an array ({type(value).__name__})")
        if value.dtype.kind != "f":
            raise LayoutError(f"tensor {name}: dtype {value.dtype} is not floating point; softbio weights are F32")
        if value.dtype != np.float32:
            converted[str(value.dtype)] += 1
            value = value.astype(np.float32)
        tensors[name] = value
    if dropped:
        conv.notes.append(f"{dropped} num_batches_tracked counters dropped")
    for dtype, n in converted.items():
        conv.notes.append(f"{n} tensors converted from {dtype} to float32")

    # 2. Backbone.
    backbone = detect_backbone(tensors)
    conv.backbone = backbone
    expected = _check_tensors(backbone, tensors)
    names = {n for n, _ in expected}
    rest = collections.OrderedDict((k, v) for k, v in tensors.items() if k not in names)

    # 3. Heads.
    candidates, unclaimed = find_head_candidates(rest)
    if unclaimed:
        shown = ", ".join(f"{k} {shape_str(rest[k].shape)}" for k in unclaimed[:10])
        raise LayoutError(f"unexpected tensor{'s' if len(unclaimed) > 1 else ''} {shown}"
                          f"{' ...' if len(unclaimed) > 10 else ''}: not part of the {backbone.name()} backbone "
                          f"and not a head (a head is <name>.weight [out,F] + <name>.bias [out], or a CORAL "
                          f"layer). Drop them with --ignore PATTERN if they are not needed")
    if not candidates:
        raise LayoutError(f"no output head found: expected fc.weight [C,F] + fc.bias [C], fc.weight [1,F] + "
                          f"linear_1_bias [K-1], or <name>.coral_weights.weight + <name>.coral_bias besides the "
                          f"{backbone.name()} backbone")
    k_default = opts.num_classes if opts.num_classes is not None else (preset.num_classes if preset else None)
    offset_default = opts.label_offset if opts.label_offset is not None else (preset.label_offset if preset else None)
    heads = []
    conflict = None  # a preset head that contradicts the checkpoint's (see _preset_head_conflict)
    if opts.heads:
        for spec in opts.heads:
            if spec.prefix not in candidates:
                raise LayoutError(f"--head {spec.name}={spec.prefix}: no head with that prefix; the checkpoint's "
                                  f"heads are: " + "; ".join(f"{p} ({c.describe()})" for p, c in candidates.items()))
            c = candidates[spec.prefix]
            if preset is not None and spec.name == preset.head_name:
                conflict = _preset_head_conflict(opts.preset, preset, c, spec.type, spec.num_classes, spec.classes)
                if conflict:
                    raise LayoutError(f"--head {spec.name}={spec.prefix}: "
                                      + _preset_conflict_message(conflict, opts.preset, preset, None))
            classes = spec.classes
            if classes is None and preset is not None and preset.classes and c.kind == "linear" \
                    and c.outputs == len(preset.classes) and spec.type in (None, "softmax"):
                classes = preset.classes
            k = spec.num_classes
            offset = spec.offset
            if c.kind != "linear" or spec.type in ("corn", "orcnn"):  # ordinal: preset K/offset apply
                k = k if k is not None else k_default
                offset = offset if offset is not None else offset_default
            k_source = ("num_classes= in --head" if spec.num_classes is not None else
                        "--num-classes" if opts.num_classes is not None else f"preset {opts.preset}")
            heads.append(_resolve_head(spec.name, c, spec.type, k, classes, offset, k_source))
        unused = [p for p in candidates if p not in {s.prefix for s in opts.heads}]
        if unused:
            raise LayoutError("the checkpoint has head tensors that no --head names: " + "; ".join(
                f"{p} ({candidates[p].describe()})" for p in unused) + ". Add --head NAME=PREFIX for each, "
                "or drop them with --ignore 'PREFIX.*'")
    else:
        if len(candidates) > 1:
            raise LayoutError("the checkpoint has several heads: " + "; ".join(
                f"{p} ({c.describe()})" for p, c in candidates.items())
                + ". Name each with --head NAME=PREFIX[,type=...,num_classes=...,offset=...,classes=a/b]")
        c = next(iter(candidates.values()))
        if preset is not None:
            conflict = _preset_head_conflict(opts.preset, preset, c, opts.head_type, opts.num_classes, opts.classes)
            if conflict and c.kind == "linear":  # (a CORAL head resolves: refused below, with its layout)
                raise LayoutError(_preset_conflict_message(conflict, opts.preset, preset, None))
        classes = opts.classes
        if classes is None and preset is not None and preset.classes and c.kind == "linear" \
                and c.outputs == len(preset.classes) and opts.head_type in (None, "softmax"):
            classes = preset.classes
        if preset is not None and preset.classes and c.kind == "linear" and opts.head_type is None \
                and c.outputs == len(preset.classes):
            head_type = "softmax"
        else:
            head_type = opts.head_type
        if opts.head_name:
            name = opts.head_name
        elif preset is not None and preset.head_name:
            name = preset.head_name
        elif c.kind == "linear" and c.outputs == 1000 and head_type in (None, "logits"):
            name = "imagenet"
        elif c.prefix.startswith("head.") and c.prefix.count(".") == 1:
            name = c.prefix[len("head."):]   # re-converting a softbio file
        else:
            name = "output"
        heads.append(_resolve_head(name, c, head_type, k_default, classes, offset_default,
                                   "--num-classes" if opts.num_classes is not None else f"preset {opts.preset}"))
    seen = set()
    for h in heads:
        if not re.fullmatch(r"[A-Za-z0-9_]+", h.name):
            raise LayoutError(f"head name {h.name!r} must match [A-Za-z0-9_]+")
        if h.name in seen:
            raise LayoutError(f"head name {h.name!r} is used twice")
        seen.add(h.name)
    widths = {h.candidate.in_features for h in heads}
    if len(widths) != 1:
        raise LayoutError("the heads read feature vectors of different widths: " + "; ".join(
            f"{h.name}: {h.candidate.in_features}" for h in heads))
    F = widths.pop()
    conv.heads = heads

    # 4. Stride convention, BatchNorm epsilon (from flags, else from a whole pickled model).
    hints = module_hints or {}
    stride_in, stride_why = opts.stride_in, "--stride-in" if opts.stride_in else None
    if stride_in is None and backbone.block == "bottleneck" and "layer2.0.conv1" in hints:
        s1 = hints["layer2.0.conv1"][1].get("stride")
        stride_in = "conv1" if s1 in ((2, 2), 2) else "conv2"
        stride_why = "read from the pickled model's conv strides"
    if backbone.block == "basic":
        if stride_in == "conv2":
            raise LayoutError("--stride-in conv2 applies to bottleneck blocks; a basic block always strides its "
                              "first 3x3 conv (conv1)")
        stride_in, stride_why = "conv1", "basic block"
    elif stride_in is None:
        stride_in, stride_why = "conv2", "default, as torchvision v1.5 and the notebooks; --stride-in conv1 for v1"
    bn_eps = opts.bn_eps
    if bn_eps is None:
        eps_values = {attrs.get("eps") for cls, attrs in hints.values() if cls.endswith("BatchNorm2d")}
        eps_values.discard(None)
        if len(eps_values) == 1:
            bn_eps = float(eps_values.pop())
        elif len(eps_values) > 1:
            raise LayoutError(f"the pickled model's BatchNorm layers use different eps values {sorted(eps_values)}; "
                              f"softbio supports one")
        else:
            bn_eps = 1e-5

    # 5. Pooling and input size from the feature width F (see the module comment).
    ordinal = (any(h.type in ("coral", "corn", "orcnn") or h.label_offset is not None for h in heads)
               or opts.preset in AGE_PRESETS)
    pool, pool_why = opts.pool, "--pool" if opts.pool else None
    if pool is None and "avgpool" in hints:
        cls, attrs = hints["avgpool"]
        if cls.endswith("AdaptiveAvgPool2d") and attrs.get("output_size") in (1, (1, 1)):
            pool = {"type": "adaptive_avg"}
        elif cls.endswith("AdaptiveAvgPool2d") or not cls.endswith(".AvgPool2d"):
            raise LayoutError(f"the pickled model pools with {cls}({attrs.get('output_size', '')}); softbio supports "
                              f"AdaptiveAvgPool2d(1) and AvgPool2d(kernel, stride, padding)")
        else:
            k, s, p = (attrs.get(a) for a in ("kernel_size", "stride", "padding"))
            k, s, p = (v[0] if isinstance(v, tuple) else v for v in (k, s, p))
            if attrs.get("ceil_mode") or attrs.get("count_include_pad") is False or None in (k, s, p):
                raise LayoutError(f"the pickled model's avgpool ({attrs}) uses settings softbio does not support "
                                  f"(ceil_mode=False and count_include_pad=True are required)")
            pool = {"type": "avg", "kernel": int(k), "stride": int(s), "padding": int(p)}
        if pool is not None:
            pool_why = "read from the pickled model's avgpool"
    ratio = F / backbone.c4
    if pool is None:
        if ratio == 1:
            if ordinal or "linear_1_bias" in rest:
                pool = {"type": "avg", "kernel": 4, "stride": 4, "padding": 0}
                pool_why = "F = C4 in an ordinal model: coral-cnn 2020 / CORN"
            else:
                pool = {"type": "adaptive_avg"}
                pool_why = "F = C4: torchvision's global average pool"
        elif ratio == 4:
            pool = {"type": "avg", "kernel": 7, "stride": 1, "padding": 2}
            pool_why = "F = 4 x C4: a 2x2 pooled map, as Raschka's notebooks and coral-cnn 2019"
        else:
            raise LayoutError(f"the heads read F = {F} features but layer4 has C4 = {backbone.c4} channels "
                              f"(F/C4 = {ratio:g}); expected F = C4 (global average pool) or F = 4 x C4 "
                              f"(AvgPool2d(7,1,2) at 128 px). Pass --pool avg:K,S,P and --input-size")
    # Input size: a flag, else the preset (which must not contradict a published
    # layout), else the layout's published size, else the output of --preprocess.
    published = published_pipeline(backbone, heads, pool, F)
    layout_text = f"{backbone.name()}, {_layout_name(backbone, heads, pool, rest)[1]}"
    if conflict:
        raise LayoutError(_preset_conflict_message(conflict, opts.preset, preset, published))
    if opts.input_size:
        size, size_why = tuple(opts.input_size), "--input-size"
    elif preset is not None:
        size, size_why = tuple(preset.input_size), f"preset {opts.preset}"
        if published is not None and size != published.size:
            raise LayoutError(
                f"preset {opts.preset} sets the input to {_size_str(size)}, but the checkpoint is a {published.layout} "
                f"model ({layout_text}), published at "
                f"{_size_str(published.size)} with {describe_steps(published.steps)} ({published.why}). Drop "
                f"--preset {opts.preset} to get that, or choose a preset with a {_size_str(published.size)} input")
    elif published is not None:
        size, size_why = published.size, f"the {published.layout} layout's published input size"
    elif opts.preprocess is not None and _steps_output_size(opts.preprocess) is not None:
        size, size_why = _steps_output_size(opts.preprocess), "the output size of --preprocess"
    else:
        raise LayoutError(
            f"cannot tell the input size and preprocessing of this checkpoint ({layout_text}): it is not a layout "
            f"published with one preprocessing chain (docs/MODELS.md), and softbio will not guess one. "
            f"Choose:\n{choices_text()}")
    got = feature_width(backbone.c4, pool, size)
    if got != F:
        maps = spatial_after_stages(size[0]), spatial_after_stages(size[1])
        raise LayoutError(f"the heads read F = {F} features, but {pool_str(pool)} on the {maps[0]}x{maps[1]} layer4 "
                          f"map of a {size[0]}x{size[1]} input gives "
                          f"{'no output' if got is None else f'{got} = {backbone.c4} x {got // backbone.c4}'}; "
                          f"check --input-size / --pool / --preset ({pool_why}; input size: {size_why})")

    # 6. Preprocessing: --preprocess, else the preset's, else the published chain of the
    # layout (only at its published input size).
    if opts.preprocess is not None:
        steps, steps_why = [dict(s) for s in opts.preprocess], "--preprocess"
    elif preset is not None:
        steps, steps_why = [dict(s) for s in preset.steps], f"preset {opts.preset}"
    elif published is not None and size == published.size:
        steps, steps_why = [dict(s) for s in published.steps], published.why
    else:
        raise LayoutError(
            f"--input-size {_size_str(size)}: the {published.layout} layout ({layout_text}) was published at "
            f"{_size_str(published.size)} with {describe_steps(published.steps)}; its preprocessing at "
            f"{_size_str(size)} is not known, and softbio will not guess it. Pass --preprocess (and --normalize), "
            f"or drop --input-size. Choose:\n{choices_text()}")
    normalize = opts.normalize
    if normalize is not None and steps_why != "--preprocess":
        steps = [st for st in steps if st["op"] != "normalize"]  # the flag replaces the chain's own
    if normalize == "imagenet":
        steps = [st for st in steps if st["op"] != "normalize"]
        steps.append(dict(_NORMALIZE_IMAGENET))
    elif isinstance(normalize, tuple):
        steps = [st for st in steps if st["op"] != "normalize"]
        steps.append({"op": "normalize", "mean": normalize[0], "std": normalize[1]})
    ops = [s["op"] for s in steps]
    if "to_tensor" not in ops or ops[ops.index("to_tensor") + 1:] not in ([], ["normalize"]) \
            or ops.count("to_tensor") != 1:
        raise LayoutError(f"preprocessing {describe_steps(steps)}: must end with to_tensor, optionally followed by "
                          f"normalize")
    out_size = _steps_output_size(steps)
    if out_size != tuple(size):
        raise LayoutError(f"preprocessing {describe_steps(steps)} produces "
                          f"{'images whose size depends on the input image' if out_size is None else '%dx%d' % out_size}"
                          f", but the network input is {size[0]}x{size[1]} ({size_why})")

    # 7. Layout name (for the summary and the tests).
    conv.layout, conv.layout_description = _layout_name(backbone, heads, pool, rest)

    # 8. Tensors in file order, and the metadata document.
    for name, _ in expected:
        conv.tensors.append((name, np.ascontiguousarray(tensors[name])))
    for h in heads:
        c = h.candidate
        conv.tensors.append((f"head.{h.name}.weight", np.ascontiguousarray(c.weight)))
        conv.tensors.append((f"head.{h.name}.bias", np.ascontiguousarray(c.bias)))
    for name, value in conv.tensors:
        if name.endswith(("running_mean", "running_var")):
            conv.running_stats += value.size
        else:
            conv.parameters += value.size
        if name.endswith("running_var") and np.any(value < 0):
            raise LayoutError(f"tensor {name}: a variance cannot be negative (min {value.min():g})")
    model = collections.OrderedDict([
        ("family", "resnet"), ("block", backbone.block), ("layers", list(backbone.layers)),
        ("stride_in", stride_in), ("in_channels", backbone.in_channels), ("base_width", backbone.base_width),
        ("bn_eps", bn_eps), ("input_size", list(size)), ("pool", pool)])
    doc = collections.OrderedDict([
        ("format_version", FORMAT_VERSION), ("model", model), ("heads", [h.metadata() for h in heads]),
        ("preprocess", {"steps": steps}), ("trained", bool(opts.trained))])
    doc["description"] = opts.description or (f"{backbone.name()} ({conv.layout_description}), heads: "
                                              + ", ".join(f"{h.name} ({h.type})" for h in heads))
    if opts.source:
        doc["source"] = opts.source
    face_crop = opts.face_crop
    if face_crop is None:
        face_crop = PRESET_FACE_CROPS.get(opts.preset, "none")
    if isinstance(face_crop, str) and face_crop != "none":
        face_crop = FACE_CROPS[face_crop]
    if face_crop != "none":
        doc["face_crop"] = face_crop
    conv.document = doc
    conv.stride_why, conv.pool_why, conv.size_why, conv.steps_why = stride_why, pool_why, size_why, steps_why
    conv.feature_width = F
    return conv


def _layout_name(backbone, heads, pool, rest):
    avg712 = pool == {"type": "avg", "kernel": 7, "stride": 1, "padding": 2}
    if len(heads) > 1:
        return "multi-head", f"one backbone, {len(heads)} heads"
    h = heads[0]
    kind = h.candidate.kind
    if kind == "coral-cnn":
        year = "2019" if avg712 else "2020"
        return f"coral-cnn-{year}", (f"coral-cnn CORAL ({year} code: {pool_str(pool)}, "
                                     f"fc.weight [1,{h.candidate.in_features}] + linear_1_bias)")
    if kind == "coral-pytorch":
        return "coral-pytorch", f"coral-pytorch CoralLayer head '{h.candidate.prefix}'"
    if h.type == "corn":
        return "corn", "CORN (plain fc with K-1 conditional outputs)"
    if h.type == "orcnn":
        return "orcnn", "coral-cnn OR-CNN baseline (Niu et al.), 2(K-1) outputs"
    if h.type == "softmax" and h.label_offset is not None:
        return "ce-baseline", "coral-cnn cross-entropy (CE) age baseline"
    if h.type == "logits" and pool["type"] == "adaptive_avg":
        return "torchvision", "torchvision ResNet (global average pool, fc logits)"
    if avg712:
        return "raschka-notebook", "Raschka notebook ResNet (AvgPool2d(7,1,2), fc over the 2x2 pooled map)"
    return "resnet", "ResNet with a linear head"

#!/usr/bin/env python3
# tests/face/faceapi_numpy.py — face-api's three networks and its pipeline in plain numpy, from softbio's files.
#
# An executable form of docs/FACE_MODELS.md §2-§6, written from those notes (not from
# face-api's code), reading the converted files in data/models/ (tensor names and TF
# layouts of §10). It is a second, readable implementation to check the C++ one against
# layer by layer, and tests/python/test_tfjs_converter.py runs it against the committed
# reference outputs (tests/face/data) to show that the files plus the notes reproduce the
# original. float32 throughout, like tfjs; only the summation order differs.
#
#   /usr/bin/python3 tests/face/faceapi_numpy.py --rgb FILE --width W --height H [--models data/models]
#       prints the pipeline's faces as JSON, in the reference.js pipeline format.
#   /usr/bin/python3 tests/face/faceapi_numpy.py --image data/astronaut.png     (decoded with Pillow)
#   /usr/bin/python3 tests/face/faceapi_numpy.py --net landmark68 \
#       --input tests/face/data/astronaut_face0_landmark68_input.npy [--dump-layers DIR]
#       one network alone; prints every stage's shape and range, writes them as .npy.
import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from weights_converter import safetensors_io  # noqa: E402

F32 = np.float32


def load(path):
    """(tensors by manifest name, metadata document) of a converted face-api file."""
    tensors, metadata = safetensors_io.read_safetensors(path)
    return tensors, json.loads(metadata["softbio"])


# ------------------------------------------------------------------------- ops (§2)
def same_padding(n, k, s):
    """TensorFlow 'same': (out, before, after); the odd pixel goes after."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def _pad(x, k, s, padding, value=0.0):
    if padding == "valid":
        return x
    _, top, bottom = same_padding(x.shape[0], k, s)
    _, left, right = same_padding(x.shape[1], k, s)
    return np.pad(x, ((top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(x, k, s):
    """Yield (i, j, view) of x's k x k windows' element (i, j), for stride s, 'valid'."""
    oh = (x.shape[0] - k) // s + 1
    ow = (x.shape[1] - k) // s + 1
    for i in range(k):
        for j in range(k):
            yield i, j, x[i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s, :]


def conv2d(x, w, stride=1, padding="same"):
    """x [H, W, cin], w [kh, kw, cin, cout] (HWIO) -> [Ho, Wo, cout]."""
    k = w.shape[0]
    x = _pad(x, k, stride, padding)
    out = None
    for i, j, v in _windows(x, k, stride):
        term = v @ w[i, j]
        out = term if out is None else out + term
    return out.astype(F32)


def depthwise(x, w, stride=1, padding="same"):
    """x [H, W, c], w [kh, kw, c, 1] -> [Ho, Wo, c]."""
    k = w.shape[0]
    x = _pad(x, k, stride, padding)
    out = None
    for i, j, v in _windows(x, k, stride):
        term = v * w[i, j, :, 0]
        out = term if out is None else out + term
    return out.astype(F32)


def separable(x, t, prefix, stride=1, padding="same"):
    """depthwise 3x3 then pointwise 1x1, plus bias (tf.separableConv2d + add)."""
    y = depthwise(x, t[prefix + "/depthwise_filter"], stride, padding)
    return (y @ t[prefix + "/pointwise_filter"][0, 0] + t[prefix + "/bias"]).astype(F32)


def maxpool(x, k, s):
    """'same' max pooling, padding with -inf."""
    x = _pad(x, k, s, "same", value=-np.inf)
    out = None
    for _, _, v in _windows(x, k, s):
        out = v if out is None else np.maximum(out, v)
    return out


def avgpool_valid(x, k, s):
    out = None
    for _, _, v in _windows(x, k, s):
        out = v if out is None else out + v
    return (out / F32(k * k)).astype(F32)


def relu(x):
    return np.maximum(x, F32(0))


def leaky(x):
    m = (x * F32(0.1)).astype(F32)
    return relu(x - m) + m


def normalize(pixels, mean):
    """(x - mean) / 255 in float32, a subtraction then a division (§3, §4)."""
    return ((pixels.astype(F32) - np.asarray(mean, F32)) / F32(255)).astype(F32)


def resize_bilinear(img, size):
    """tf.image.resizeBilinear, alignCorners = halfPixelCenters = false, no antialias (§2),
    in float32 as tfjs-backend-wasm computes it (bit for bit): ratio = f32(in) / f32(out),
    source = f32(dst) * ratio, frac = source - floor, the three lerps in float32."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img.astype(F32)

    def axis(n_in):
        ratio = F32(n_in) / F32(size)
        src = (np.arange(size).astype(F32) * ratio).astype(F32)
        lo = np.maximum(0, np.floor(src)).astype(np.int64)
        hi = np.minimum(n_in - 1, np.ceil(src)).astype(np.int64)
        return lo, hi, (src - lo.astype(F32)).astype(F32)
    r0, r1, fy = axis(h)
    c0, c1, fx = axis(w)
    img = img.astype(F32)
    fx = fx[None, :, None]
    top = img[r0][:, c0] + (img[r0][:, c1] - img[r0][:, c0]) * fx
    bottom = img[r1][:, c0] + (img[r1][:, c1] - img[r1][:, c0]) * fx
    return (top + (bottom - top) * fy[:, None, None]).astype(F32)


def pad_to_square(img, centred):
    """Zeros; top-left anchored (detector) or centred with Math.round(d/2) after (§3, §4)."""
    h, w = img.shape[:2]
    if h == w:
        return img
    d = abs(h - w)
    after = math.floor(d / 2 + 0.5)  # JavaScript Math.round: halves up
    before = d - after if centred else 0
    after = after if centred else d
    if h > w:
        return np.pad(img, ((0, 0), (before, after), (0, 0)))
    return np.pad(img, ((before, after), (0, 0), (0, 0)))


def network_input(img, size, centred):
    """The pixel-domain input face-api builds: pad to a square, resize (float32)."""
    return resize_bilinear(pad_to_square(img.astype(F32), centred), size)


# ------------------------------------------------------------------------- networks
def _no_trace(name, x):
    pass


def tiny_face_detector(t, pixels, mean, trace=_no_trace):
    """§3: pixels [S, S, 3] (0..255) -> raw grid [S/32, S/32, 25]. trace(name, array) sees
    every stage: input (normalised), conv0 .. conv5 (after leaky), pool0 .. pool5, conv8."""
    x = normalize(pixels, mean)
    trace("input", x)
    x = leaky(conv2d(x, t["conv0/filters"], 1, "valid") + t["conv0/bias"])
    trace("conv0", x)
    x = maxpool(x, 2, 2)
    trace("pool0", x)
    for i in range(1, 6):
        x = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        x = leaky(separable(x, t, f"conv{i}", 1, "valid"))
        trace(f"conv{i}", x)
        x = maxpool(x, 2, 2 if i < 5 else 1)
        trace(f"pool{i}", x)
    x = (conv2d(x, t["conv8/filters"], 1, "valid") + t["conv8/bias"]).astype(F32)
    trace("conv8", x)
    return x


def landmark68(t, pixels, mean, trace=_no_trace):
    """§6: pixels [112, 112, 3] -> raw fc output [136]. Traced: input, dense<b>/conv<j>
    (each conv's output; conv0 after its relu), dense<b> (block output), pool, fc."""
    x = normalize(pixels, mean)
    trace("input", x)
    for b in range(4):
        p = f"dense{b}"
        if b == 0:
            out1 = relu(conv2d(x, t[p + "/conv0/filters"], 2) + t[p + "/conv0/bias"])
        else:
            out1 = relu(separable(x, t, p + "/conv0", 2))
        out2 = separable(out1, t, p + "/conv1")
        out3 = separable(relu(out1 + out2), t, p + "/conv2")
        out4 = separable(relu(out1 + (out2 + out3)), t, p + "/conv3")
        x = relu(out1 + (out2 + (out3 + out4)))
        for j, o in enumerate((out1, out2, out3, out4)):
            trace(f"{p}/conv{j}", o)
        trace(p, x)
    x = avgpool_valid(x, 7, 2).reshape(-1)
    trace("pool", x)
    x = (x @ t["fc/weights"] + t["fc/bias"]).astype(F32)
    trace("fc", x)
    return x


def age_gender(t, pixels, mean, trace=_no_trace):
    """§5: pixels [112, 112, 3] -> (age [1], gender logits [2]). Traced: input,
    entry_flow/conv_in, each block by its tensor prefix, exit_flow/separable_conv (after
    relu), pool, fc/age, fc/gender."""
    x = normalize(pixels, mean)
    trace("input", x)
    x = relu(conv2d(x, t["entry_flow/conv_in/filters"], 2) + t["entry_flow/conv_in/bias"])
    trace("entry_flow/conv_in", x)

    def reduction(x, p, activate=True):
        y = relu(x) if activate else x
        y = separable(y, t, p + "/separable_conv0")
        y = separable(relu(y), t, p + "/separable_conv1")
        y = maxpool(y, 3, 2)
        return y + conv2d(x, t[p + "/expansion_conv/filters"], 2) + t[p + "/expansion_conv/bias"]
    x = reduction(x, "entry_flow/reduction_block_0", activate=False)
    trace("entry_flow/reduction_block_0", x)
    x = reduction(x, "entry_flow/reduction_block_1")
    trace("entry_flow/reduction_block_1", x)
    for m in range(2):
        p = f"middle_flow/main_block_{m}"
        y = separable(relu(x), t, p + "/separable_conv0")
        y = separable(relu(y), t, p + "/separable_conv1")
        y = separable(relu(y), t, p + "/separable_conv2")
        x = y + x
        trace(p, x)
    x = reduction(x, "exit_flow/reduction_block")
    trace("exit_flow/reduction_block", x)
    x = relu(separable(x, t, "exit_flow/separable_conv"))
    trace("exit_flow/separable_conv", x)
    x = avgpool_valid(x, 7, 2).reshape(-1)
    trace("pool", x)
    age = (x @ t["fc/age/weights"] + t["fc/age/bias"]).astype(F32)
    logits = (x @ t["fc/gender/weights"] + t["fc/gender/bias"]).astype(F32)
    trace("fc/age", age)
    trace("fc/gender", logits)
    return age, logits


def _mean(doc):
    return [s for s in doc["preprocess"]["steps"] if s["op"] == "normalize"][0]["mean"]


# ------------------------------------------------------------------------- pipeline
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-float(v)))


def _iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def detect(det, img, size=416, threshold=None):
    """§3: boxes [x, y, w, h] in image pixels and scores, after NMS."""
    t, doc = det
    m = doc["model"]
    threshold = m["score_threshold"] if threshold is None else threshold
    h, w = img.shape[:2]
    grid = tiny_face_detector(t, network_input(img, size, centred=False), _mean(doc))
    g = grid.shape[0]
    scale = size / max(w, h)
    rw, rh = math.floor(w * scale + 0.5), math.floor(h * scale + 0.5)
    cx, cy = max(rw, rh) / rw, max(rw, rh) / rh
    boxes, scores = [], []
    for row in range(g):
        for col in range(g):
            for a, (aw, ah) in enumerate(m["anchors"]):
                tx, ty, tw, th, to = (float(v) for v in grid[row, col, 5 * a:5 * a + 5])
                score = _sigmoid(to)
                if score <= threshold:
                    continue
                bx = (col + _sigmoid(tx)) / g * cx
                by = (row + _sigmoid(ty)) / g * cy
                bw = math.exp(tw) * aw / g * cx
                bh = math.exp(th) * ah / g * cy
                boxes.append((bx - bw / 2, by - bh / 2, bw, bh))
                scores.append(score)
    order = sorted(range(len(scores)), key=lambda i: scores[i])  # stable, ascending
    keep = []
    while order:
        best = order.pop()
        keep.append(best)
        order = [i for i in order if _iou(boxes[best], boxes[i]) <= m["iou_threshold"]]
    return [((boxes[i][0] * w, boxes[i][1] * h, boxes[i][2] * w, boxes[i][3] * h), scores[i]) for i in keep]


def crop(img, box):
    """§4: clip to the image, floor, cut; None when empty."""
    h, w = img.shape[:2]
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    cw = min(box[0] + box[2] - x0, w - x0)
    ch = min(box[1] + box[3] - y0, h - y0)
    x0, y0, cw, ch = (math.floor(v) for v in (x0, y0, cw, ch))
    if cw <= 0 or ch <= 0:
        return None
    return img[y0:y0 + ch, x0:x0 + cw]


def landmarks_of(lm, img, box):
    """§6: 68 (x, y) image points for a detection box."""
    t, doc = lm
    face = crop(img, box)
    out = landmark68(t, network_input(face, 112, centred=True), _mean(doc)).astype(np.float64)
    ch, cw = face.shape[:2]
    s = 112 / max(cw, ch)
    sw, sh = cw * s, ch * s
    padx = abs(sw - sh) / 2 if sw < sh else 0.0
    pady = abs(sw - sh) / 2 if sh < sw else 0.0
    xs = (out[0::2] * 112 - padx) / sw * cw + box[0]
    ys = (out[1::2] * 112 - pady) / sh * ch + box[1]
    return np.stack([xs, ys], 1)


def aligned_rect(points):
    """§4: the landmarks' bounding box (maxima start at 0), widened by 20%."""
    x0, y0 = float(points[:, 0].min()), float(points[:, 1].min())
    x1, y1 = max(0.0, float(points[:, 0].max())), max(0.0, float(points[:, 1].max()))
    w, h = x1 - x0, y1 - y0
    return (x0 - 0.1 * w, y0 - 0.1 * h, w * 1.2, h * 1.2)


def pipeline(models, img, size=416):
    det, lm, ag = models
    faces = []
    for box, score in detect(det, img, size):
        if crop(img, box) is None:
            continue
        pts = landmarks_of(lm, img, box)
        rect = aligned_rect(pts)
        face = crop(img, rect)
        age, logits = age_gender(ag[0], network_input(face, 112, centred=True), _mean(ag[1]))
        z = logits.astype(np.float64)
        p_male = float(np.exp(z[0] - z.max()) / np.exp(z - z.max()).sum())
        male = p_male > 0.5
        faces.append({"box": dict(zip(("x", "y", "width", "height"), box)), "score": score,
                      "landmarks": pts.tolist(), "aligned_rect": dict(zip(("x", "y", "width", "height"), rect)),
                      "age": float(age[0]), "gender": "male" if male else "female",
                      "genderProbability": p_male if male else 1 - p_male})
    return faces


def load_models(folder=os.path.join(REPO, "data", "models")):
    return tuple(load(os.path.join(folder, f"faceapi_{n}.safetensors"))
                 for n in ("tiny_face_detector", "landmark68", "age_gender"))


def main():
    p = argparse.ArgumentParser(description="face-api's pipeline in numpy on softbio's converted files")
    p.add_argument("--models", default=os.path.join(REPO, "data", "models"))
    p.add_argument("--image", help="an image file, decoded with Pillow (RGB)")
    p.add_argument("--rgb", help="raw RGB bytes (H x W x 3), e.g. from reference.js decode")
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--input-size", type=int, default=416)
    p.add_argument("--net", choices=["tiny_face_detector", "landmark68", "age_gender"],
                   help="run one network alone on --input X.npy (pixel domain [1, S, S, 3], as in tests/face/data)")
    p.add_argument("--input", help="with --net: the input .npy")
    p.add_argument("--dump-layers", metavar="DIR",
                   help="with --net: write every traced stage as DIR/<name with / as _>.npy (batch axis added)")
    args = p.parse_args()
    if args.net:
        if not args.input:
            p.error("--net needs --input X.npy")
        det, lm, ag = load_models(args.models)
        pixels = np.load(args.input)
        pixels = pixels[0] if pixels.ndim == 4 else pixels
        stages = []

        def trace(name, x):
            stages.append((name, x))
            if args.dump_layers:
                os.makedirs(args.dump_layers, exist_ok=True)
                np.save(os.path.join(args.dump_layers, name.replace("/", "_") + ".npy"), np.asarray(x, F32)[None])
        t, doc = {"tiny_face_detector": det, "landmark68": lm, "age_gender": ag}[args.net]
        {"tiny_face_detector": tiny_face_detector, "landmark68": landmark68, "age_gender": age_gender}[args.net](
            t, pixels, _mean(doc), trace)
        for name, x in stages:
            print(f"{name:40s} {str(list(x.shape)):18s} min {float(x.min()):+.6g} max {float(x.max()):+.6g}")
        return
    if args.image:
        from PIL import Image
        img = np.asarray(Image.open(args.image).convert("RGB"))
    elif args.rgb and args.width and args.height:
        img = np.fromfile(args.rgb, np.uint8).reshape(args.height, args.width, 3)
    else:
        p.error("--image FILE or --rgb FILE --width W --height H")
    faces = pipeline(load_models(args.models), img, args.input_size)
    print(json.dumps({"image": {"width": img.shape[1], "height": img.shape[0]}, "faces": faces}))


if __name__ == "__main__":
    main()

# weights_converter/parity.py — run softbio-dump and PyTorch on the same input; compare per stage.
#
# Shared by compare.py (users whose outputs disagree) and tests/python/test_parity.py.
#
#   run_softbio_dump(tool, model, x, workdir)  -> {"stem": ..., "layer1".."layer4",
#                                                  "features", "head.<n>.logits", "head.<n>.label"}
#   capture_torch(model, x, heads)              -> the same keys from a PyTorch model, via
#                                                  forward hooks on maxpool, layer1..4, avgpool
#   compare(reference, candidate, heads)        -> rows of the difference table + verdict
#
# The comparison rule (one rule for every tensor, so a table reads the same everywhere):
#   spread = standard deviation of the reference tensor (tests: over all their inputs);
#   error  = max |softbio - reference| over all elements;
#   pass   if error <= limit * spread, with
#     limit = RTOL = 1e-4        for the head logits (the network's output);
#     limit = RTOL_STAGE = 1e-3  for the internal activations: stem, layer1..4, features.
# Why: fp32 carries ~7 significant digits and softbio sums in a different order than
# PyTorch (and folds BatchNorm into the convolutions), so the two differ by rounding.
# Measured on the calibrated parity models (tests/python/calibrate.py), PyTorch's own
# fp32 result is up to ~1e-4 of the spread away from its fp64 result in layer3/layer4 of
# the deepest nets (36 blocks in one stage, each adding rounding), ~5e-5 on the pooled
# features, and <1e-5 on the logits; softbio is as far from fp64 as PyTorch is. So 1e-4
# on the logits (the target) and 1e-3 inside the network keep a margin of >= 5x over
# rounding, while a real bug (a wrong stride, pool, padding, eps, a swapped or transposed
# tensor) changes outputs by 1e-2..1 of the spread. Labels (argmax, CORAL / CORN / OR-CNN
# ranks) must be identical. The stage rows say where a mismatch starts.
import os
import subprocess

import numpy as np

RTOL = 1e-4
RTOL_STAGE = 1e-3
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "features")


class DumpError(Exception):
    """softbio-dump failed or wrote something unexpected."""


def run_softbio_dump(tool, model_path, x, workdir, tag="run", heads=(), extra_args=()):
    """Run `tool --model M --input X.npy --out DIR` on x (float32 NCHW) and read what it wrote."""
    out_dir = os.path.join(workdir, f"softbio-{tag}")
    os.makedirs(out_dir, exist_ok=True)
    for stale in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, stale))
    x_path = os.path.join(workdir, f"input-{tag}.npy")
    np.save(x_path, np.ascontiguousarray(x, dtype=np.float32))
    cmd = [tool, "--model", model_path, "--input", x_path, "--out", out_dir] + list(extra_args)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise DumpError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr.strip()}")
    result = {}
    names = list(STAGES) + [f"head.{h}.{kind}" for h in heads for kind in ("logits", "label")]
    for name in names:
        path = os.path.join(out_dir, name + ".npy")
        if not os.path.exists(path):
            raise DumpError(f"{tool} did not write {name}.npy (wrote: {sorted(os.listdir(out_dir))})")
        result[name] = np.load(path)
    return result


def capture_torch(model, x, heads_from_features=None, decode=None):
    """PyTorch's outputs for input x (numpy NCHW float32): the stem (after maxpool), each
    stage and the flattened pooled features, captured with forward hooks on the modules
    named maxpool, layer1..layer4 and avgpool (torchvision's names). With
    heads_from_features(features tensor) -> {name: logits [N, outputs]} and
    decode(name, logits) -> labels [N], also "head.<name>.logits" and "head.<name>.label"."""
    import torch
    captured = {}
    hooks = [model.maxpool.register_forward_hook(lambda m, i, o: captured.__setitem__("stem", o))]
    for s in range(1, 5):
        hooks.append(getattr(model, f"layer{s}").register_forward_hook(
            lambda m, i, o, s=s: captured.__setitem__(f"layer{s}", o)))
    hooks.append(model.avgpool.register_forward_hook(lambda m, i, o: captured.__setitem__("features", o.flatten(1))))
    model.eval()
    try:
        with torch.no_grad():
            model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    result = {k: v.detach().float().numpy().copy() for k, v in captured.items()}
    if heads_from_features is not None:
        add_head_outputs(result, heads_from_features, decode)
    return result


def add_head_outputs(result, heads_from_features, decode):
    """Apply the heads to result["features"] and add their logits and decoded labels."""
    import torch
    with torch.no_grad():
        logits = heads_from_features(torch.from_numpy(result["features"]))
        for name, z in logits.items():
            result[f"head.{name}.logits"] = z.detach().float().numpy().copy()
            result[f"head.{name}.label"] = decode(name, z).detach().numpy().astype(np.float32)
    return result


def limit_for(name, rtol=RTOL, rtol_stage=RTOL_STAGE):
    """The relative limit that applies to an output (see the rule above)."""
    return rtol if name.startswith("head.") else rtol_stage


def compare(reference, candidate, heads, rtol=RTOL, scales=None, rtol_stage=RTOL_STAGE):
    """Rows (name, shape, max|diff|, scale, ratio, status) in network order, whether
    everything passed, and the first output that did not. `heads` lists head names;
    stages missing on either side are skipped. `scales` (name -> spread) overrides the
    spread of the reference tensor itself, e.g. with the spread over several batches: a
    batch-1, two-class logit vector has no meaningful spread of its own."""
    rows = []
    ok = True
    first_bad = None
    names = [s for s in STAGES if s in reference and s in candidate]
    names += [f"head.{h}.logits" for h in heads]
    for name in names:
        r = np.asarray(reference[name], dtype=np.float64)
        c = np.asarray(candidate[name], dtype=np.float64)
        if r.shape != c.shape:
            rows.append((name, f"{list(r.shape)} vs {list(c.shape)}", float("nan"), float("nan"), float("nan"),
                         float("nan"), "SHAPE"))
            ok = False
            first_bad = first_bad or name
            continue
        err = float(np.max(np.abs(r - c))) if r.size else 0.0
        if scales and name in scales:
            scale = float(scales[name])
        else:
            scale = float(np.std(r)) if r.size > 1 else float(np.abs(r).max(initial=0.0))
        ratio = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        limit = limit_for(name, rtol, rtol_stage)
        passed = bool(np.isfinite(c).all()) and ratio <= limit
        rows.append((name, str(list(r.shape)), err, scale, ratio, limit, "ok" if passed else "FAIL"))
        if not passed:
            ok = False
            first_bad = first_bad or name
    for h in heads:
        name = f"head.{h}.label"
        r = np.asarray(reference[name]).astype(np.int64)
        c = np.asarray(candidate[name]).astype(np.int64)
        same = r.shape == c.shape and bool(np.all(r == c))
        rows.append((name, f"torch {r.tolist()} softbio {c.tolist()}", float("nan"), float("nan"), float("nan"),
                     float("nan"), "ok" if same else "FAIL"))
        if not same:
            ok = False
            first_bad = first_bad or name
    return rows, ok, first_bad


def format_table(rows, title=None):
    """The per-stage difference table as text."""
    lines = []
    if title:
        lines.append(title)
    lines.append(f"  {'output':22s} {'shape':20s} {'max|diff|':>10s} {'spread':>10s} {'diff/spread':>11s} "
                 f"{'limit':>6s}")
    for name, shape, err, scale, ratio, limit, status in rows:
        if np.isnan(err):
            lines.append(f"  {name:22s} {shape:66s} {status}")
        else:
            lines.append(f"  {name:22s} {shape:20s} {err:10.3e} {scale:10.3e} {ratio:11.3e} {limit:6.0e}  {status}")
    return "\n".join(lines)

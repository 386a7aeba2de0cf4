# tests/python/calibrate.py — give random-weight models outputs that make parity tests able to fail.
#
# A freshly initialised ResNet is a poor test subject: BatchNorm's running statistics
# are 0/1 while the activations are not, so activations drift to huge or tiny values;
# heads then produce logits that are almost the same for every input, labels that never
# change, and a comparison that would pass even if softbio mixed up two images. So:
#
#   1. perturb every BatchNorm's affine parameters (gamma in [0.5, 1.5], beta ~ N(0, 0.25))
#      so that a wrong or missing gamma/beta shows; the last BatchNorm of every residual
#      branch gets a small gamma in [0.1, 0.3] (beta ~ N(0, 0.1)), as trained ResNets have.
#      With gamma ~ 1 there, a random deep ResNet is close to chaotic: fp32 rounding grows
#      by ~4e-5 of the activations' spread per block, so PyTorch's own fp32 result differs
#      from its fp64 result by 2e-3 at ResNet-101's layer4 and 1e-4 on the logits, and no
#      fixed tolerance could separate rounding from bugs. With small branch gammas that
#      noise floor drops to ~8e-5 at layer4 and ~1e-5 on the logits, while a bug inside a
#      branch still moves the outputs by >= 10% of their spread;
#   2. set the running statistics from the data: reset them, use momentum=None (a plain
#      cumulative average) and run one batch of inputs in train mode, so every BatchNorm
#      sees normalised, O(1) activations in eval mode;
#   3. set each head from the features of that batch (weights mostly along how the inputs'
#      features differ, see scale_head: a random direction would amplify the features'
#      rounding ~100x into the logits) and scale it: logits get about unit spread around
#      zero (softmax / logits heads: each class centred, so argmax changes with the input);
#      CORAL biases straddle the mean score (descending, +-1.5 spreads), CORN's conditional
#      logits sit near +2.5 so the cumulative product crosses 0.5 mid-range, OR-CNN pairs
#      are centred like CORAL;
#   4. draw a head's weights again if two inputs land closer than `min_separation` along
#      it (the test could not tell them apart); move biases a little where an input lies
#      within `min_margin` of a decision boundary, so that float rounding can never flip a
#      label (a flipped label is then a real bug); make the labels vary across the inputs.
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_inputs(n, channels, size, seed):
    """n varied images [n, C, H, W] in [0, 1]: noise, smooth blobs, stripes, blocks, each
    with its own brightness and contrast, so features differ clearly between inputs."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            x = torch.rand(channels, h, w, generator=g)
        elif kind == 1:
            low = torch.rand(1, channels, 6, 6, generator=g)
            x = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0]
        elif kind == 2:
            yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
            freq = 2 + 10 * torch.rand(channels, 2, generator=g)
            phase = 6.3 * torch.rand(channels, generator=g)
            x = torch.stack([0.5 + 0.5 * torch.sin(freq[c, 0] * 6.3 * yy + freq[c, 1] * 6.3 * xx + phase[c])
                             for c in range(channels)])
        else:
            low = torch.rand(1, channels, 4, 4, generator=g)
            x = F.interpolate(low, size=(h, w), mode="nearest")[0] + 0.1 * torch.rand(channels, h, w, generator=g)
        lo, hi = sorted(torch.rand(2, generator=g).tolist())
        x = lo * 0.5 + (x - x.min()) / (x.max() - x.min() + 1e-6) * (0.5 + 0.5 * hi)
        out.append(x.clamp(0, 1))
    return torch.stack(out).float()


def batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def branch_output_batchnorms(model):
    """The last BatchNorm of each residual branch: bn3 of a bottleneck, bn2 of a basic block."""
    found = set()
    for m in model.modules():
        if m is not model and all(hasattr(m, a) for a in ("conv1", "bn1", "conv2", "bn2")):
            found.add(getattr(m, "bn3", None) or m.bn2)
    return found


@torch.no_grad()
def set_batchnorm_statistics(model, x, seed):
    g = torch.Generator().manual_seed(seed)
    branch_ends = branch_output_batchnorms(model)
    for bn in batchnorms(model):
        if bn in branch_ends:
            bn.weight.copy_(0.1 + 0.2 * torch.rand(bn.weight.shape, generator=g))
            bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=g))
        else:
            bn.weight.copy_(0.5 + torch.rand(bn.weight.shape, generator=g))
            bn.bias.copy_(0.25 * torch.randn(bn.bias.shape, generator=g))
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    model.train()
    model(x)
    model.eval()
    for bn in batchnorms(model):
        bn.momentum = 0.1


@torch.no_grad()
def pooled_features(model, x):
    """The flattened output of model.avgpool (the heads' input), in eval mode."""
    captured = []
    handle = model.avgpool.register_forward_hook(lambda m, i, o: captured.append(o.flatten(1)))
    try:
        model(x)
    finally:
        handle.remove()
    return captured[0].double()


def head_logits(head_type, weight, bias, f):
    """Logits of a head from features (float64); CORAL: one score plus K-1 biases."""
    z = f @ weight.double().t()
    return z + bias.double()  # coral: [N,1] + [K-1] broadcasts to [N, K-1]


def decision_margins(head_type, z):
    """Per-input distance to the nearest decision boundary, in logit units: [N]."""
    if head_type in ("softmax", "logits"):
        top = torch.topk(z, 2, dim=1).values
        return top[:, 0] - top[:, 1]
    if head_type == "coral":
        return z.abs().min(dim=1).values
    if head_type == "orcnn":
        d = z[:, 1::2] - z[:, 0::2]
        return d.abs().min(dim=1).values
    if head_type == "corn":
        s = torch.cumsum(F.logsigmoid(z), dim=1) - math.log(0.5)
        return s.abs().min(dim=1).values
    raise ValueError(head_type)


def decode(head_type, z):
    from reference_models import decode as published
    return published(head_type, z)


@torch.no_grad()
def scale_head(head, model, f, g):
    """Step 3 of the module comment for one head."""
    W, b = head.weight(model), head.bias(model)
    # Pooled features are averages of ReLU outputs: all positive, with a large common part,
    # and the inputs' features differ from each other by far less than their size. A random
    # weight row sees the common part in full (the bias must cancel it) and only ~1/sqrt(F)
    # of the differences, so the logits would amplify the features' float rounding ~100x.
    # So each row is mostly a random mix of the inputs' feature differences, plus a random
    # part (20% of its norm) orthogonal to the mean feature vector, so that every feature
    # still counts and a wrong feature anywhere still shows.
    W64 = W.double()
    mean_dir = f.mean(dim=0)
    mean_dir = mean_dir / mean_dir.norm().clamp_min(1e-12)
    W64 = W64 - (W64 @ mean_dir)[:, None] * mean_dir[None, :]
    diffs = f - f.mean(dim=0, keepdim=True)                      # [N, F]
    aligned = torch.randn(W64.shape[0], f.shape[0], generator=g, dtype=torch.float64) @ diffs
    unit = lambda m: m / m.norm(dim=1, keepdim=True).clamp_min(1e-30)  # noqa: E731
    W.copy_((unit(aligned) + 0.2 * unit(W64)).float())
    z = f @ W.double().t()                       # [N, rows], no bias
    centred = z - z.mean(dim=0, keepdim=True)
    if head.type in ("softmax", "logits"):
        s = 1.0 / max(centred.std().item(), 1e-12)
        W.mul_(s)
        b.copy_(-(z.mean(dim=0) * s).float())
    elif head.type == "coral":
        s = 1.0 / max(centred.std().item(), 1e-12)
        W.mul_(s)
        k1 = b.numel()
        b.copy_((-z.mean() * s + torch.linspace(1.5, -1.5, k1, dtype=torch.float64)).float())
    elif head.type == "corn":
        s = 1.0 / centred.std(dim=0).clamp_min(1e-12)            # each conditional logit: unit spread
        W.mul_(s[:, None].float())
        b.copy_((-z.mean(dim=0) * s + 2.5).float())
    elif head.type == "orcnn":
        d = z[:, 1::2] - z[:, 0::2]
        s = 1.0 / (d - d.mean(dim=0)).std(dim=0).clamp_min(1e-12)
        W.mul_(s.repeat_interleave(2)[:, None].float())
        k1 = d.shape[1]
        target = torch.linspace(1.5, -1.5, k1, dtype=torch.float64)
        new_b = torch.zeros(2 * k1, dtype=torch.float64)
        new_b[1::2] = -d.mean(dim=0) * s + target               # p_k = sigmoid(z_2k+1 - z_2k)
        b.copy_(new_b.float())
    else:
        raise ValueError(head.type)


@torch.no_grad()
def separate_decisions(head, model, f_test, min_margin, max_steps=200):
    """Step 4: nudge biases until every test input is >= min_margin from a boundary and
    the labels are not all equal. Returns the final margins and labels."""
    W, b = head.weight(model), head.bias(model)
    for _ in range(max_steps):
        z = head_logits(head.type, W, b, f_test)
        labels = decode(head.type, z)
        margins = decision_margins(head.type, z)
        if bool((labels == labels[0]).all()) and len(labels) > 1:
            _make_labels_vary(head.type, z, b, labels)
            continue
        worst = int(torch.argmin(margins))
        if margins[worst] >= min_margin:
            return margins, labels
        _widen(head.type, z[worst], b, min_margin)
    raise RuntimeError(f"calibration of head {head.name} did not converge")


def _widen(head_type, z, b, m):
    step = 3 * m
    if head_type in ("softmax", "logits"):
        b[int(torch.argmax(z))] += step
    elif head_type == "coral":
        k = int(torch.argmin(z.abs()))
        b[k] += step if z[k] >= 0 else -step
    elif head_type == "orcnn":
        d = z[1::2] - z[0::2]
        k = int(torch.argmin(d.abs()))
        b[2 * k + 1] += step if d[k] >= 0 else -step
    elif head_type == "corn":
        s = torch.cumsum(F.logsigmoid(z), dim=0) - math.log(0.5)
        k = int(torch.argmin(s.abs()))
        b[k] += 4 * step if s[k] >= 0 else -4 * step


def _make_labels_vary(head_type, z, b, labels):
    if head_type in ("softmax", "logits"):
        # Lift, for the input closest to a boundary, its runner-up class above its winner.
        top = torch.topk(z, 2, dim=1)
        gap = top.values[:, 0] - top.values[:, 1]
        i = int(torch.argmin(gap))
        b[int(top.indices[i, 1])] += float(gap[i]) + 0.3
    elif head_type in ("coral", "orcnn", "corn"):
        # All inputs got the same rank: shift the thresholds towards the middle.
        shift = -0.5 if int(labels[0]) > (b.numel() // (2 if head_type == "orcnn" else 1)) // 2 else 0.5
        if head_type == "orcnn":
            b[1::2] += shift
        else:
            b += shift


def calibrate_heads(model, case, f, seed, min_margin=1e-2, min_separation=0.25):
    """Steps 3-4 of the module comment, from the pooled features f [N, F] of the inputs
    the test compares. Returns {head name: (margins, labels)} on them."""
    f = f.double()
    report = {}
    g = torch.Generator().manual_seed(seed + 7)
    for head in case.heads:
        for attempt in range(50):
            scale_head(head, model, f, g)
            if min_pairwise_difference(head, model, f) >= min_separation:
                break
            # Two inputs landed close together along this head's direction: draw new weights.
            with torch.no_grad():
                w = head.weight(model)
                w.copy_(torch.randn(w.shape, generator=g))
        report[head.name] = separate_decisions(head, model, f, min_margin)
    return report


def calibrate(model, case, x, seed, **kw):
    """Steps 1-4 on the inputs x that the test will compare (the statistics come from the
    same images: a test needs no unseen data, only outputs that vary)."""
    set_batchnorm_statistics(model, x, seed)
    return calibrate_heads(model, case, pooled_features(model, x), seed, **kw)


@torch.no_grad()
def min_pairwise_difference(head, model, f):
    """min over input pairs of max |z_i - z_j|: how well the head tells the inputs apart."""
    z = head_logits(head.type, head.weight(model), head.bias(model), f)
    n = z.shape[0]
    return min(float((z[i] - z[j]).abs().max()) for i in range(n) for j in range(i + 1, n))

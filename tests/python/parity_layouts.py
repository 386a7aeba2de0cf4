# tests/python/parity_layouts.py — the checkpoint layouts the parity and converter tests cover.
#
# One LayoutCase per name printed by `test_parity.py --list-layouts`: how to build the
# PyTorch model (reference_models.py or torchvision), where its head parameters live,
# how its users save it (the save styles vary across cases so that every reader path is
# exercised: plain state_dict, DataParallel, checkpoint dicts, whole pickled models, the
# legacy pre-1.6 format), which converter flags they would pass, and what the converter
# must recognise.
#
# Importing this module needs only the standard library (`test_parity.py --list-layouts`
# runs at configure time, where PyTorch may be missing): torch, torchvision, numpy and
# reference_models are imported when a model is built or saved.
import collections
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from weights_converter.resnet_depths import BOTTLENECK as BB, notebook_depth, torchvision_depth  # noqa: E402


def _R():
    import reference_models
    return reference_models


HeadRef = collections.namedtuple("HeadRef", "name type num_classes weight bias")


def _attr(path):
    def get(model):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj
    return get


def linear_head(name, type_, k, prefix="fc"):
    return HeadRef(name, type_, k, _attr(prefix + ".weight"), _attr(prefix + ".bias"))


class LayoutCase:
    def __init__(self, name, description, build, heads, input_size, save, convert_args, expect,
                 in_channels=3, logits=None, head_fn=None):
        self.name, self.description = name, description
        self.build = build                  # () -> torch model
        self.heads = heads                  # [HeadRef]
        self.input_size = input_size        # (H, W), the model's native input
        self.in_channels = in_channels
        self.save = save                    # see save_checkpoint
        self.convert_args = convert_args    # converter flags the model's users would pass
        self.expect = expect                # what the converter must write into the metadata
        self._logits = logits or (lambda out: {heads[0].name: out[0]})
        self._head_fn = head_fn or (lambda model, features: model.head(features))

    @property
    def seed(self):
        return zlib.crc32(self.name.encode()) & 0x7FFFFFFF

    def head_logits(self, output):
        """Model output -> {head name: logits [N, outputs]} (OR-CNN pairs flattened)."""
        return {k: v.reshape(v.shape[0], -1) for k, v in self._logits(output).items()}

    def logits_from_features(self, model, features):
        """The model's own head(s) applied to pooled features [N, F]: what forward() returns
        after the trunk, as {head name: logits [N, outputs]}."""
        return self.head_logits(self._head_fn(model, features))


def save_checkpoint(model, style, path):
    """Save `model` as its users would. Styles (joined with '+'):
    state_dict, dataparallel (state_dict of nn.DataParallel(model)), whole (torch.save of
    the module), whole_dataparallel, ckpt:KEY (a training checkpoint dict with the
    state_dict under KEY), legacy (the pre-1.6 non-zip format)."""
    parts = style.split("+")
    import numpy as np
    import torch
    import torch.nn as nn
    legacy = "legacy" in parts
    kind = parts[0]
    if kind == "state_dict":
        obj = model.state_dict()
    elif kind == "dataparallel":
        obj = nn.DataParallel(model).state_dict()
    elif kind == "whole":
        obj = model
    elif kind == "whole_dataparallel":
        obj = nn.DataParallel(model)
    elif kind.startswith("ckpt:"):
        opt = torch.optim.Adam(model.parameters(), lr=5e-4)
        obj = {"epoch": 37, kind[5:]: model.state_dict(), "optimizer_state_dict": opt.state_dict(),
               "best_valid_mae": np.float64(3.47), "train_loss": torch.tensor(0.25), "args": {"lr": 5e-4}}
    else:
        raise ValueError(style)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


def _avg(k, s, p):
    return {"type": "avg", "kernel": k, "stride": s, "padding": p}


ADAPTIVE = {"type": "adaptive_avg"}
AVG712 = _avg(7, 1, 2)
AVG4 = _avg(4, 4, 0)


def _notebook(name, depth, save, grayscale=False, desc=""):
    block, layers = notebook_depth(depth)
    return LayoutCase(
        name, desc or f"Raschka CelebA notebook ResNet {layers} ({block}), saved as {save}",
        lambda: _R().NotebookResNet(*_R().notebook_spec(depth), num_classes=2, grayscale=grayscale),
        [linear_head("gender", "softmax", 2)], (128, 128), save, ["--preset", "celeba"],
        {"layout": "raschka-notebook", "block": block, "layers": layers, "pool": AVG712,
         "stride_in": "conv1" if block == "basic" else "conv2", "in_channels": 1 if grayscale else 3,
         "input_size": [128, 128], "heads": [("gender", "softmax", 2)]},
        in_channels=1 if grayscale else 3)


def _coral_cnn(name, generation, head, k, preset, save, extra_args=()):
    if head == "coral":
        heads = [HeadRef("age", "coral", k, _attr("fc.weight"), _attr("linear_1_bias"))]
        layout = f"coral-cnn-{generation}"
    elif head == "ce":
        heads = [linear_head("age", "softmax", k)]
        layout = "ce-baseline"
    else:
        heads = [linear_head("age", "orcnn", k)]
        layout = "orcnn"
    return LayoutCase(
        name, f"coral-cnn ResNet-34 {head.upper()} ({generation} code), K={k}, saved as {save}",
        lambda: _R().CoralCnnResNet34(k, generation, head), heads, (120, 120), save,
        ["--preset", preset] + list(extra_args),
        {"layout": layout, "block": "basic", "layers": torchvision_depth(34)[1],
         "pool": AVG712 if generation == 2019 else AVG4,
         "stride_in": "conv1", "in_channels": 3, "input_size": [120, 120], "heads": [("age", heads[0].type, k)]})


def _torchvision_resnet(depth):
    import torchvision
    return getattr(torchvision.models, f"resnet{depth}")(weights=None)


def _torchvision(depth, save):
    block, layers = torchvision_depth(depth)
    return LayoutCase(
        f"torchvision-r{depth}", f"torchvision resnet{depth}(weights=None), saved as {save}",
        lambda: _torchvision_resnet(depth),
        [linear_head("imagenet", "logits", 1000)], (224, 224), save, [],
        {"layout": "torchvision", "block": block, "layers": layers, "pool": ADAPTIVE,
         "stride_in": "conv1" if block == "basic" else "conv2", "in_channels": 3, "input_size": [224, 224],
         "heads": [("imagenet", "logits", 1000)]},
        # torchvision's forward ends with: x = avgpool(x); x = flatten(x, 1); x = fc(x)
        logits=lambda out: {"imagenet": out}, head_fn=lambda model, features: model.fc(features))


CASES = [
    _notebook("raschka-r18-celeba", 18, "dataparallel"),
    _notebook("raschka-r18-gray", 18, "state_dict+legacy", grayscale=True,
              desc="Raschka notebook ResNet-18 with GRAYSCALE=True (1 input channel), legacy torch.save format"),
    _notebook("raschka-r34-celeba", 34, "ckpt:model_state_dict"),
    _notebook("raschka-r50-celeba", 50, "whole"),
    _notebook("raschka-r101-celeba", 101, "state_dict"),
    _notebook("raschka-r152-celeba", 152, "ckpt:state_dict+legacy"),
    _coral_cnn("coral-cnn-2019-utkface", 2019, "coral", 40, "utkface", "state_dict"),
    _coral_cnn("coral-cnn-2020-afad", 2020, "coral", 26, "afad", "state_dict"),
    _coral_cnn("coral-cnn-2020-morph2", 2020, "coral", 55, "morph2", "whole"),
    _coral_cnn("coral-cnn-ce-cacd", 2020, "ce", 49, "cacd", "ckpt:model", ["--head-type", "softmax"]),
    _coral_cnn("coral-cnn-orcnn-afad", 2020, "orcnn", 26, "afad", "state_dict+legacy"),
    LayoutCase(
        "coral-pytorch-r34-cacd", "ResNet-34 with a coral-pytorch CoralLayer head, K=49, whole DataParallel model",
        lambda: _R().CoralPytorchResNet34(49),
        [HeadRef("age", "coral", 49, _attr("fc.coral_weights.weight"), _attr("fc.coral_bias"))],
        (120, 120), "whole_dataparallel", ["--preset", "cacd"],
        {"layout": "coral-pytorch", "block": "basic", "layers": torchvision_depth(34)[1], "pool": AVG4,
         "stride_in": "conv1", "in_channels": 3, "input_size": [120, 120], "heads": [("age", "coral", 49)]}),
    LayoutCase(
        "corn-r34-morph2", "CORN ResNet-34 (fc with K-1 = 54 outputs), checkpoint dict under 'state_dict'",
        lambda: _R().CornResNet34(55), [linear_head("age", "corn", 55)], (120, 120), "ckpt:state_dict",
        ["--preset", "morph2", "--head-type", "corn"],
        {"layout": "corn", "block": "basic", "layers": torchvision_depth(34)[1], "pool": AVG4, "stride_in": "conv1",
         "in_channels": 3, "input_size": [120, 120], "heads": [("age", "corn", 55)]}),
    _torchvision(18, "state_dict"),
    _torchvision(34, "dataparallel"),
    _torchvision(50, "ckpt:model"),
    _torchvision(101, "state_dict"),
    _torchvision(152, "whole"),
    LayoutCase(
        "resnet50-v1", "ResNet-50 v1 (stride on the first 1x1 conv), torchvision layout, --stride-in conv1",
        lambda: _R().TorchvisionStyleResNet(*_R().torchvision_spec(50), 1000, stride_in="conv1"),
        [linear_head("imagenet", "logits", 1000)], (224, 224), "ckpt:model_state_dict", ["--stride-in", "conv1"],
        {"layout": "torchvision", "block": BB, "layers": torchvision_depth(50)[1], "pool": ADAPTIVE,
         "stride_in": "conv1", "in_channels": 3, "input_size": [224, 224], "heads": [("imagenet", "logits", 1000)]},
        logits=lambda out: {"imagenet": out}),
    LayoutCase(
        "multihead-r101", "ResNet-101 backbone with a gender softmax head and a CORAL age head (K=26)",
        lambda: _R().MultiHeadResNet101(26),
        [linear_head("gender", "softmax", 2, "fc_gender"),
         HeadRef("age", "coral", 26, _attr("fc_age.coral_weights.weight"), _attr("fc_age.coral_bias"))],
        (128, 128), "dataparallel",
        ["--preset", "celeba", "--head", "gender=fc_gender,type=softmax,classes=female/male",
         "--head", "age=fc_age,type=coral,num_classes=26,offset=15"],
        {"layout": "multi-head", "block": BB, "layers": notebook_depth(101)[1], "pool": AVG712, "stride_in": "conv2",
         "in_channels": 3, "input_size": [128, 128], "heads": [("gender", "softmax", 2), ("age", "coral", 26)]},
        logits=lambda out: dict(out)),
]

BY_NAME = collections.OrderedDict((c.name, c) for c in CASES)

# weights_converter/torch_resnet.py — a PyTorch ResNet built from a softbio file's metadata.
#
# compare.py runs this as the reference forward pass: it reads the same file softbio
# reads, builds the network its metadata describes (docs/FORMAT.md section 2) out of plain
# torch.nn layers with torchvision's module names, loads the tensors and applies the heads'
# decoding rules. Any difference to softbio-dump's outputs is then softbio's computation,
# not the weights. (Whether the metadata describes the original model correctly, e.g. the
# stride convention or the pooling, is what compare.py --torch-model and the parity tests
# check against the original model classes.) Needs torch; imported only by compare.py.
import torch
import torch.nn as nn
import torch.nn.functional as F

from weights_converter import safetensors_io


def _bn(c, eps):
    return nn.BatchNorm2d(c, eps=eps)


class Block(nn.Module):
    """A basic or bottleneck block; `stride_in` picks the strided conv of a bottleneck."""

    def __init__(self, kind, inplanes, planes, stride, stride_in, eps):
        super().__init__()
        self.kind = kind
        if kind == "basic":
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = _bn(planes, eps)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = _bn(planes, eps)
            out = planes
        else:
            s1, s2 = (stride, 1) if stride_in == "conv1" else (1, stride)
            self.conv1 = nn.Conv2d(inplanes, planes, 1, s1, bias=False)
            self.bn1 = _bn(planes, eps)
            self.conv2 = nn.Conv2d(planes, planes, 3, s2, 1, bias=False)
            self.bn2 = _bn(planes, eps)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = _bn(planes * 4, eps)
            out = planes * 4
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), _bn(out, eps))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        if self.kind == "basic":
            y = self.bn2(self.conv2(y))
        else:
            y = F.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
        return F.relu(y + identity)


class Head(nn.Module):
    """logits = W f + b; CORAL: one score w.f plus K-1 biases."""

    def __init__(self, spec, features):
        super().__init__()
        self.spec = spec
        k = spec.get("num_classes")
        rows = {"coral": 1, "corn": (k or 0) - 1, "orcnn": 2 * ((k or 0) - 1)}.get(spec["type"], k)
        nbias = k - 1 if spec["type"] == "coral" else rows
        self.weight = nn.Parameter(torch.zeros(rows, features))
        self.bias = nn.Parameter(torch.zeros(nbias))

    def forward(self, f):
        return f @ self.weight.t() + self.bias

    def decode(self, z):
        """Labels [N] by the rule of docs/FORMAT.md section 2.3."""
        t = self.spec["type"]
        if t in ("softmax", "logits"):
            return torch.argmax(z, dim=1)
        if t == "coral":
            p = torch.sigmoid(z)
        elif t == "corn":
            p = torch.cumprod(torch.sigmoid(z), dim=1)
        else:  # orcnn: pairs (z_2k, z_2k+1), p_k = softmax(pair)[1]
            p = F.softmax(z.view(z.shape[0], -1, 2), dim=2)[:, :, 1]
        return (p > 0.5).sum(dim=1)


class SoftbioResNet(nn.Module):
    """The network a softbio metadata document describes."""

    def __init__(self, doc):
        super().__init__()
        m = doc["model"]
        eps = m["bn_eps"]
        block = m["block"]
        stride_in = m.get("stride_in", "conv2" if block == "bottleneck" else "conv1")
        w = m["base_width"]
        self.conv1 = nn.Conv2d(m["in_channels"], w, 7, 2, 3, bias=False)
        self.bn1 = _bn(w, eps)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = w
        expansion = 4 if block == "bottleneck" else 1
        for s, n in enumerate(m["layers"]):
            planes = w << s
            blocks = []
            for b in range(n):
                blocks.append(Block(block, inplanes, planes, 2 if (s > 0 and b == 0) else 1, stride_in, eps))
                inplanes = planes * expansion
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        pool = m["pool"]
        if pool["type"] == "adaptive_avg":
            self.avgpool = nn.AdaptiveAvgPool2d(1)
        else:
            self.avgpool = nn.AvgPool2d(pool["kernel"], pool["stride"], pool["padding"])
        with torch.no_grad():
            h, wd = m["input_size"]
            features = self.trunk(torch.zeros(1, m["in_channels"], h, wd)).shape[1]
        self.heads = nn.ModuleDict({spec["name"]: Head(spec, features) for spec in doc["heads"]})

    def trunk(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def head_logits(self, features):
        return {name: head(features) for name, head in self.heads.items()}

    def decode(self, name, z):
        return self.heads[name].decode(z)

    def forward(self, x):
        return self.head_logits(self.trunk(x))


def load_softbio_file(path):
    """(model in eval mode, metadata document) for a softbio safetensors file."""
    tensors, metadata = safetensors_io.read_safetensors(path)
    if "softbio" not in metadata:
        raise ValueError(f"{path}: no softbio metadata")
    import json
    doc = json.loads(metadata["softbio"])
    model = SoftbioResNet(doc)
    state = {}
    for name, value in tensors.items():
        key = name
        if name.startswith("head."):
            key = "heads." + name[len("head."):]
        state[key] = torch.from_numpy(value.astype("float32"))
    own = model.state_dict()
    for k in own:
        if k.endswith("num_batches_tracked"):
            state[k] = own[k]
    model.load_state_dict(state, strict=True)
    return model.eval(), doc

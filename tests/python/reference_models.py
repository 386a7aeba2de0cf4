# tests/python/reference_models.py — PyTorch definitions of the networks softbio reproduces.
#
# Written from the facts in docs/MODELS.md (not copied from the original repositories):
#   * NotebookResNet      Raschka's CelebA notebook ResNet-18/34/50/101/152 (section 1.3):
#                         torchvision-named modules, Bottleneck with the stride on conv2
#                         ("v1.5"), AvgPool2d(7, 1, 2), fc over the flattened 2x2 map,
#                         forward returns (logits, probas)
#   * CoralCnnResNet34    coral-cnn ResNet-34 (section 2): 2019 code (AvgPool2d(7,1,2), fc
#                         [1,2048]) and 2020 code (AvgPool2d(4), fc [1,512]); heads CORAL
#                         (fc without bias + linear_1_bias), CE and OR-CNN
#   * CoralLayer          coral-pytorch's layer (section 3.1): coral_weights + coral_bias
#   * CoralPytorchResNet34, CornResNet34   ResNet-34 with a CoralLayer / a CORN fc (3.3)
#   * MultiHeadResNet101  one notebook-style R101 backbone, a gender softmax head and a
#                         CORAL age head (an inference from the code patterns, 6.)
#   * TorchvisionStyleResNet   torchvision's layout with a choice of stride convention,
#                         used for the original-paper "v1" bottleneck (stride on conv1)
# torchvision's own resnet18..152 are used as they are (torchvision.models).
#
# Every model registers its modules in the published order (conv1, bn1, relu, maxpool,
# layer1..4, avgpool, fc), so its state_dict keys and order match the original code, and
# computes forward(x) = head(features(x)): the tests run the trunk once and apply the
# head to the captured features after calibrating it.
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from weights_converter import resnet_depths  # noqa: E402  (the depth table: block type, blocks per stage)


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs; the stage stride on the first (every published variant)."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, stride_in="conv1"):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4). stride_in='conv2': stride on the 3x3 (torchvision v1.5 and
    the notebooks); 'conv1': stride on the first 1x1 (the original paper, v1)."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, stride_in="conv2"):
        super().__init__()
        s1, s2 = (stride, 1) if stride_in == "conv1" else (1, stride)
        self.conv1 = conv1x1(inplanes, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s2)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {resnet_depths.BASIC: BasicBlock, resnet_depths.BOTTLENECK: Bottleneck}


def torchvision_spec(depth):
    """(block class, [blocks per stage]) of torchvision's resnet<depth>."""
    block, layers = resnet_depths.torchvision_depth(depth)
    return BLOCKS[block], layers


def notebook_spec(depth):
    """(block class, [blocks per stage]) of Raschka's CelebA notebook ResNet-<depth>."""
    block, layers = resnet_depths.notebook_depth(depth)
    return BLOCKS[block], layers


class _Trunk(nn.Module):
    """Stem and four stages with torchvision's module names. Subclasses add avgpool and
    the head(s) after calling _build_trunk, keeping the published registration order."""

    def _build_trunk(self, block, layers, in_channels=3, stride_in=None):
        self.inplanes = 64
        self._stride_in = stride_in or ("conv2" if block is Bottleneck else "conv1")
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, stride_in=self._stride_in)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, stride_in=self._stride_in) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return x.view(x.size(0), -1)


class NotebookResNet(_Trunk):
    """Raschka's CelebA gender ResNet (docs/MODELS.md 1.3): AvgPool2d(7,1,2) and
    fc = Linear(2048 * expansion, num_classes); returns (logits, probas)."""

    def __init__(self, block, layers, num_classes=2, grayscale=False):
        super().__init__()
        self._build_trunk(block, layers, in_channels=1 if grayscale else 3)
        self.avgpool = nn.AvgPool2d(7, stride=1, padding=2)
        self.fc = nn.Linear(2048 * block.expansion, num_classes)

    def head(self, features):
        logits = self.fc(features)
        return logits, F.softmax(logits, dim=1)

    def forward(self, x):
        return self.head(self.features(x))


class CoralCnnResNet34(_Trunk):
    """coral-cnn's ResNet-34 (docs/MODELS.md 2.1-2.3).

    generation 2019: AvgPool2d(7, 1, 2), 2048 features at 120 px;
    generation 2020: AvgPool2d(4), 512 features.
    head 'coral': fc = Linear(F, 1, bias=False) plus the parameter linear_1_bias [K-1]
                  (registered on the network itself, so it is the first state_dict key);
         'ce':    fc = Linear(F, K), softmax;
         'orcnn': fc = Linear(F, 2(K-1)), logits viewed as [N, K-1, 2], softmax per pair."""

    def __init__(self, num_classes, generation=2020, head="coral"):
        super().__init__()
        self.num_classes, self.head_type = num_classes, head
        self._build_trunk(*torchvision_spec(34))
        if generation == 2019:
            self.avgpool = nn.AvgPool2d(7, stride=1, padding=2)
            features = 2048
        else:
            self.avgpool = nn.AvgPool2d(4)
            features = 512
        if head == "coral":
            self.fc = nn.Linear(features, 1, bias=False)
            self.linear_1_bias = nn.Parameter(torch.zeros(num_classes - 1).float())
        elif head == "ce":
            self.fc = nn.Linear(features, num_classes)
        elif head == "orcnn":
            self.fc = nn.Linear(features, (num_classes - 1) * 2)
        else:
            raise ValueError(head)

    def head(self, features):
        logits = self.fc(features)
        if self.head_type == "coral":
            logits = logits + self.linear_1_bias
            return logits, torch.sigmoid(logits)
        if self.head_type == "ce":
            return logits, F.softmax(logits, dim=1)
        logits = logits.view(-1, self.num_classes - 1, 2)
        return logits, F.softmax(logits, dim=2)[:, :, 1]

    def forward(self, x):
        return self.head(self.features(x))


class CoralLayer(nn.Module):
    """coral-pytorch's CoralLayer (docs/MODELS.md 3.1): one shared weight vector and
    K-1 biases; logits = coral_weights(x) + coral_bias."""

    def __init__(self, size_in, num_classes, preinit_bias=True):
        super().__init__()
        self.coral_weights = nn.Linear(size_in, 1, bias=False)
        if preinit_bias:
            init = torch.arange(num_classes - 1, 0, -1).float() / (num_classes - 1)
        else:
            init = torch.zeros(num_classes - 1).float()
        self.coral_bias = nn.Parameter(init)

    def forward(self, x):
        return self.coral_weights(x) + self.coral_bias


class CoralPytorchResNet34(_Trunk):
    """ResNet-34 at 120 px with AvgPool2d(4) and a coral-pytorch CoralLayer named fc."""

    def __init__(self, num_classes):
        super().__init__()
        self._build_trunk(*torchvision_spec(34))
        self.avgpool = nn.AvgPool2d(4)
        self.fc = CoralLayer(512, num_classes)

    def head(self, features):
        logits = self.fc(features)
        return logits, torch.sigmoid(logits)

    def forward(self, x):
        return self.head(self.features(x))


class CornResNet34(_Trunk):
    """corn-ordinal-neuralnet's ResNet-34 (docs/MODELS.md 3.3): AvgPool2d(4) and a plain
    fc with K-1 outputs; returns (logits, sigmoid(logits)), cumprod only when decoding."""

    def __init__(self, num_classes):
        super().__init__()
        self._build_trunk(*torchvision_spec(34))
        self.avgpool = nn.AvgPool2d(4)
        self.fc = nn.Linear(512, num_classes - 1)

    def head(self, features):
        logits = self.fc(features)
        return logits, torch.sigmoid(logits)

    def forward(self, x):
        return self.head(self.features(x))


class MultiHeadResNet101(_Trunk):
    """A notebook-style ResNet-101 (128 px, AvgPool2d(7,1,2), 8192 features) with two
    heads: gender (Linear 8192 -> 2) and age (a CoralLayer with K ranks)."""

    def __init__(self, age_classes=26):
        super().__init__()
        self._build_trunk(*notebook_spec(101))
        self.avgpool = nn.AvgPool2d(7, stride=1, padding=2)
        self.fc_gender = nn.Linear(8192, 2)
        self.fc_age = CoralLayer(8192, age_classes)

    def head(self, features):
        return {"gender": self.fc_gender(features), "age": self.fc_age(features)}

    def forward(self, x):
        return self.head(self.features(x))


class TorchvisionStyleResNet(_Trunk):
    """torchvision's ResNet layout (AdaptiveAvgPool2d, fc 512*expansion -> classes) with
    a selectable bottleneck stride convention: stride_in='conv1' is the original paper's
    ResNet v1 that Caffe/MXNet-era weights use."""

    def __init__(self, block, layers, num_classes=1000, stride_in="conv1"):
        super().__init__()
        self._build_trunk(block, layers, stride_in=stride_in)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def head(self, features):
        return self.fc(features)

    def forward(self, x):
        return self.head(self.features(x))


# ----------------------------------------------------------------------------------
# Decoding, as the papers' code does it (docs/MODELS.md 2.4, 3.2)
# ----------------------------------------------------------------------------------

def decode(head_type, logits):
    """Labels [N] from logits [N, outputs] (OR-CNN: flattened pairs)."""
    if head_type in ("softmax", "logits"):
        return torch.argmax(logits, dim=1)
    if head_type == "coral":
        return (torch.sigmoid(logits) > 0.5).sum(dim=1)
    if head_type == "corn":
        return (torch.cumprod(torch.sigmoid(logits), dim=1) > 0.5).sum(dim=1)
    if head_type == "orcnn":
        pairs = logits.view(logits.size(0), -1, 2)
        return (F.softmax(pairs, dim=2)[:, :, 1] > 0.5).sum(dim=1)
    raise ValueError(head_type)

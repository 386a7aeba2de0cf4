# weights_converter/resnet_depths.py — the ResNet depth table: block type and blocks per stage.
#
# The one place the Python side writes it (docs/MODELS.md section 0.2, "Blocks per
# stage"): layouts.py names the backbone it recognises from it, and the tests build their
# PyTorch reference models from it. Standard library only, so that anything may import
# it (the test list is read at configure time by an interpreter that may lack numpy).
#
#   depth  block        blocks per stage
#   18     basic        [2, 2, 2, 2]       torchvision and Raschka's notebook
#   34     basic        [3, 4, 6, 3]       torchvision, Raschka's notebook, coral-cnn, CORN
#   50     bottleneck   [3, 4, 6, 3]       torchvision and Raschka's notebook
#   101    bottleneck   [3, 4, 23, 3]      torchvision and Raschka's notebook
#   152    bottleneck   [3, 8, 36, 3]      torchvision
#   152    bottleneck   [3, 4, 36, 3]      Raschka's cnn-resnet152-celeba notebook (stage 2
#                                          shorter than torchvision's: the state_dicts differ)
import collections

BASIC = "basic"
BOTTLENECK = "bottleneck"

Depth = collections.namedtuple("Depth", "block layers")

# torchvision's (and the original paper's) depths.
TORCHVISION = {
    18: Depth(BASIC, (2, 2, 2, 2)),
    34: Depth(BASIC, (3, 4, 6, 3)),
    50: Depth(BOTTLENECK, (3, 4, 6, 3)),
    101: Depth(BOTTLENECK, (3, 4, 23, 3)),
    152: Depth(BOTTLENECK, (3, 8, 36, 3)),
}

# Raschka's CelebA notebooks: torchvision's, except ResNet-152.
NOTEBOOK = dict(TORCHVISION)
NOTEBOOK[152] = Depth(BOTTLENECK, (3, 4, 36, 3))

_NAMES = collections.OrderedDict((d, f"ResNet-{n}") for n, d in TORCHVISION.items())
_NAMES.setdefault(NOTEBOOK[152], "ResNet-152 (Raschka notebook variant)")


def torchvision_depth(depth):
    """(block, [blocks per stage]) of torchvision's resnet<depth>."""
    d = TORCHVISION[depth]
    return d.block, list(d.layers)


def notebook_depth(depth):
    """(block, [blocks per stage]) of Raschka's CelebA notebook ResNet-<depth>."""
    d = NOTEBOOK[depth]
    return d.block, list(d.layers)


def known_name(block, layers):
    """'ResNet-50' etc. for a depth in the table, None otherwise."""
    return _NAMES.get(Depth(block, tuple(layers)))

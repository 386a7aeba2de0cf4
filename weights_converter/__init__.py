# weights_converter — turn PyTorch ResNet checkpoints into softbio model files.
#
# The package is a command-line tool first (convert.py, compare.py) and a small library
# second. Modules, in the order data flows through them:
#
#   torch_reader.py     read .pt/.pth checkpoints WITHOUT importing torch, through a
#                       restricted unpickler that rebuilds tensors and nothing else
#   safetensors_io.py   read and write safetensors files (softbio's container)
#   resnet_depths.py    the ResNet depth table (block type, blocks per stage), standard
#                       library only: layouts.py and the tests' reference models use it
#   layouts.py          recognise the architecture from tensor names and shapes, apply
#                       the flags and presets the weights cannot tell, build the metadata
#   convert.py          the `softbio-convert` command line
#   compare.py          the `softbio-compare` command line: PyTorch vs softbio, per stage
#   torch_resnet.py     (compare.py only, needs torch) a PyTorch ResNet built from the
#                       softbio metadata, used as the reference forward pass
#   parity.py           (compare.py and the parity tests) running softbio-dump and
#                       printing per-stage difference tables
#
# Only numpy is required for conversion; torch is needed by compare.py and the tests.

__version__ = "0.1.0"

#!/usr/bin/env python3
# tests/fuzz/make_checkpoint_seeds.py — writes the committed PyTorch checkpoints that
# tests/python/test_unpickler_mutations.py mutates (tests/fuzz/corpus/checkpoints), with
# the real torch.save so that every byte is what users' files hold:
#
#     /usr/bin/python3 tests/fuzz/make_checkpoint_seeds.py tests/fuzz/corpus/checkpoints
#
#   state_dict_zip.pt     a state_dict (conv, BatchNorm with num_batches_tracked, linear),
#                         zip format (torch >= 1.6, the default)
#   state_dict_legacy.pt  the same in the legacy format (_use_new_zipfile_serialization=False)
#   whole_model.pt        a whole pickled nn.Sequential (classes the reader never imports,
#                         Parameters rebuilt through _rebuild_parameter)
#   training.pt           a training checkpoint dict: epoch, numpy scalar, nested dicts,
#                         float16, bfloat16, a non-contiguous view sharing a storage
# Tiny (1-3 KB each); the numbers do not matter, the structure does.
import collections
import os
import sys

import numpy as np
import torch


def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(collections.OrderedDict([
        ("conv", torch.nn.Conv2d(1, 2, 2, bias=False)),
        ("bn", torch.nn.BatchNorm2d(2)),
        ("fc", torch.nn.Linear(2, 3)),
    ]))


def main(out):
    os.makedirs(out, exist_ok=True)
    model = net()
    sd = model.state_dict()
    torch.save(sd, os.path.join(out, "state_dict_zip.pt"))
    torch.save(sd, os.path.join(out, "state_dict_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(model, os.path.join(out, "whole_model.pt"))
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    torch.save({
        "epoch": 3,
        "best_acc": np.float64(0.875),
        "state_dict": {"fc.weight": sd["fc.weight"], "fc.bias": sd["fc.bias"]},
        "extra": {"half": torch.ones(2, dtype=torch.float16), "bf16": torch.full((2,), 0.5, dtype=torch.bfloat16),
                  "view": base.t(), "base": base, "steps": torch.tensor([1, 2], dtype=torch.int64)},
        "args": {"lr": 0.1, "tags": ("a", "b"), "flags": {1, 2}},
    }, os.path.join(out, "training.pt"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_checkpoint_seeds.py OUT_DIR")
    main(sys.argv[1])

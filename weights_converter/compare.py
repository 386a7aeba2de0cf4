#!/usr/bin/env python3
# weights_converter/compare.py — softbio-compare: where do softbio's outputs depart from PyTorch's?
#
#   softbio-compare CHECKPOINT [conversion flags as for softbio-convert] --dump-tool PATH
#                   [--input X.npy | --input face.jpg | --random N] [--torch-model MODULE:FACTORY]
#   python3 weights_converter/compare.py ...         (the same, without installing)
#
# For users whose softbio results disagree with their PyTorch model. It converts the
# checkpoint (or takes a .safetensors softbio file as it is), runs PyTorch and
# softbio-dump on the same input and prints the per-stage difference table of
# weights_converter/parity.py: stem (after maxpool), layer1..layer4, pooled features,
# each head's logits and labels; the first row over its limit is where they part.
#
# The PyTorch side is, by default, torch_resnet.py: the network the softbio metadata
# describes, in plain torch.nn, with the converted tensors. That isolates softbio's
# arithmetic. With --torch-model the user's own model class is built and loaded with
# the original checkpoint instead, which also tests the conversion (stride convention,
# pooling, head mapping). Needs torch (the converter itself does not).
import argparse
import importlib
import os
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TORCH_MISSING = ("softbio-compare needs PyTorch to run the reference model: apt-get install python3-torch "
                 "(or: pip install torch). softbio-convert itself does not need it.")


def build_parser():
    from weights_converter import convert
    p = argparse.ArgumentParser(
        prog="softbio-compare",
        description="Run a checkpoint in PyTorch and in softbio (softbio-dump) on the same input and print "
                    "where their outputs differ, stage by stage.",
        epilog="Exit status: 0 all outputs within the limits, 1 a difference over its limit (or a failure), "
               "2 usage error or torch/numpy missing. The limits: " + _rule_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .pt/.pth checkpoint (converted first, with the flags below) or a softbio "
                                      ".safetensors file")
    p.add_argument("--dump-tool", required=True, metavar="PATH",
                   help="the softbio-dump executable (built with the C++ tests: build/tests/softbio-dump)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="FILE",
                     help="the input: a .npy float32 [N,C,H,W] or [C,H,W] tensor exactly as the model sees it, a "
                          ".npy uint8 [H,W,3] image, or an image file (PNG, JPEG, ...); images go through the "
                          "model's preprocessing chain (Pillow)")
    src.add_argument("--random", type=int, default=2, metavar="N",
                     help="without --input: N random inputs, uniform in [0,1] (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--torch-model", metavar="MODULE:FACTORY",
                   help="build the reference from your own model class: MODULE is an importable module name or a "
                        "path to a .py file, FACTORY a callable returning the model (e.g. mynet.py:resnet34); the "
                        "original checkpoint is loaded into it. It needs modules named conv1, bn1, maxpool, "
                        "layer1..layer4 and avgpool, as torchvision's ResNet")
    p.add_argument("--workdir", metavar="DIR",
                   help="keep the converted file, the input .npy and softbio-dump's outputs here (default: a "
                        "temporary directory, removed afterwards)")
    p.add_argument("--threads", type=int, default=2, help="threads for PyTorch (default 2)")
    convert.add_conversion_arguments(p)
    return p


def _rule_text():
    from weights_converter.parity import RTOL, RTOL_STAGE
    return (f"max|softbio - torch| <= {RTOL:g} x spread (std) for head logits, {RTOL_STAGE:g} x spread for the "
            f"stages and features; labels identical.")


# ----------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------

def preprocess_image(image, steps):
    """Apply a softbio preprocessing chain (docs/FORMAT.md 2.4) with Pillow, as torchvision
    does on a PIL image; returns float32 [C, H, W]."""
    import numpy as np
    from PIL import Image
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    img = img.convert("RGB")
    out = None
    for step in steps:
        op = step["op"]
        if op == "center_crop":
            h, w = step["size"]
            W, H = img.size
            if W < w or H < h:  # torchvision pads with zeros first
                pad = Image.new("RGB", (max(W, w), max(H, h)))
                pad.paste(img, ((max(W, w) - W) // 2, (max(H, h) - H) // 2))
                img = pad
                W, H = img.size
            top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
            img = img.crop((left, top, left + w, top + h))
        elif op == "resize":
            if "shorter_side" in step:  # torchvision's Resize(n[, max_size]): aspect ratio kept
                from weights_converter.layouts import shorter_side_size
                h, w = shorter_side_size(img.size[1], img.size[0], step["shorter_side"], step.get("max_size"))
            else:
                h, w = step["size"]
            if (w, h) != img.size:  # torchvision returns an image of the right size unchanged
                img = img.resize((w, h), Image.BILINEAR)
        elif op == "to_tensor":
            out = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        elif op == "normalize":
            mean = np.asarray(step["mean"], np.float32)[:, None, None]
            std = np.asarray(step["std"], np.float32)[:, None, None]
            out = (out - mean) / std
        else:
            raise ValueError(f"unknown preprocessing step {op!r}")
    return out.astype(np.float32)


def load_input(args, doc):
    import numpy as np
    m = doc["model"]
    c, (h, w) = m["in_channels"], m["input_size"]
    if not args.input:
        rng = np.random.default_rng(args.seed)
        return rng.random((args.random, c, h, w), dtype=np.float32), f"{args.random} random inputs in [0,1]"
    if args.input.endswith(".npy"):
        x = np.load(args.input)
        if x.dtype == np.uint8 and x.ndim == 3 and x.shape[-1] in (1, 3, 4):
            return preprocess_image(x, doc["preprocess"]["steps"])[None], f"image {args.input}, preprocessed"
        x = x.astype(np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != (c, h, w):
            raise ValueError(f"{args.input}: expected float32 [N,{c},{h},{w}], found {list(x.shape)} {x.dtype}")
        return x, f"tensor {args.input}"
    from PIL import Image
    with Image.open(args.input) as img:
        x = preprocess_image(img, doc["preprocess"]["steps"])[None]
    return x, f"image {args.input}, preprocessed ({len(doc['preprocess']['steps'])} steps)"


# ----------------------------------------------------------------------------------
# The user's own model (--torch-model)
# ----------------------------------------------------------------------------------

def build_user_model(spec, checkpoint, args):
    import importlib
    import importlib.util
    import torch
    from weights_converter import convert
    module_name, _, factory = spec.rpartition(":")
    if not module_name or not factory:
        raise ValueError(f"--torch-model {spec}: expected MODULE:FACTORY")
    if module_name.endswith(".py"):
        loader = importlib.util.spec_from_file_location("softbio_user_model", module_name)
        module = importlib.util.module_from_spec(loader)
        sys.path.insert(0, os.path.dirname(os.path.abspath(module_name)))
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    model = getattr(module, factory)()
    state = convert.read_tensors(checkpoint, args)
    tensors = {k: torch.from_numpy(v.copy()) for k, v in state.tensors.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"--torch-model: the checkpoint does not fit the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return model.eval()


def user_head_logits(output, head_names):
    """Map the user's forward() output to {head: logits [N, outputs]}: a tensor or the
    first element of a tuple for one head; a dict by head name for several."""
    import torch
    if isinstance(output, dict):
        return {n: output[n].reshape(output[n].shape[0], -1) for n in head_names if n in output}
    if isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, torch.Tensor) and len(head_names) == 1:
        return {head_names[0]: output.reshape(output.shape[0], -1)}
    return {}


# ----------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------

def run(args, workdir):
    import numpy as np
    import torch
    from weights_converter import convert, parity, safetensors_io, torch_resnet

    torch.set_num_threads(args.threads)
    doc = None
    if args.checkpoint.endswith(".safetensors"):
        doc = safetensors_io.read_softbio_metadata(args.checkpoint)
    if doc is not None:
        model_file = args.checkpoint
        print(f"softbio file {model_file}")
    else:
        model_file = os.path.join(workdir, "converted.safetensors")
        args.output, args.dry_run = model_file, False
        conversion, notes, _, size = convert.convert_file(args)
        print(convert.summary(conversion, notes, args.checkpoint, model_file, size))
        doc = conversion.document
    x, what = load_input(args, doc)
    print(f"input: {what}, shape {list(x.shape)}")

    reference, ref_doc = torch_resnet.load_softbio_file(model_file)
    head_names = [h["name"] for h in doc["heads"]]
    if args.torch_model:
        user = build_user_model(args.torch_model, args.checkpoint, args)
        print(f"reference: your model {args.torch_model} with the original checkpoint")
        result = parity.capture_torch(user, x)
        with torch.no_grad():
            logits = user_head_logits(user(torch.from_numpy(x)), head_names)
        for name, z in logits.items():
            result[f"head.{name}.logits"] = z.float().numpy()
            result[f"head.{name}.label"] = reference.decode(name, z).numpy().astype(np.float32)
        compared_heads = [n for n in head_names if n in logits]
        if len(compared_heads) < len(head_names):
            print(f"  (logits of heads {sorted(set(head_names) - set(compared_heads))} could not be read from "
                  f"your model's output; only the stages and features are compared for them)")
    else:
        print("reference: PyTorch built from the file's metadata (torch_resnet.py) with the converted tensors")
        result = parity.capture_torch(reference, x, reference.head_logits, reference.decode)
        compared_heads = head_names
    got = parity.run_softbio_dump(args.dump_tool, model_file, x, workdir, "compare", heads=head_names)
    rows, ok, first_bad = parity.compare(result, got, compared_heads)
    print(parity.format_table(rows, title="softbio vs PyTorch (max|diff| over the batch; spread = std of PyTorch's "
                                          "tensor):"))
    if ok:
        print("all outputs agree within the limits: " + _rule_text())
        return 0
    print(f"MISMATCH: softbio departs from PyTorch at {first_bad} (the rows above it agree). " + _rule_text())
    return 1


def main(argv=None):
    try:
        importlib.import_module("numpy")
    except ImportError:
        from weights_converter.convert import NUMPY_MISSING
        sys.stderr.write(NUMPY_MISSING.replace("softbio-convert", "softbio-compare") + "\n")
        return 2
    args = build_parser().parse_args(argv)
    try:
        importlib.import_module("torch")
    except ImportError:
        sys.stderr.write(TORCH_MISSING + "\n")
        return 2
    from weights_converter import layouts, parity, safetensors_io, torch_reader
    try:
        if args.workdir:
            os.makedirs(args.workdir, exist_ok=True)
            return run(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix="softbio-compare-") as workdir:
            return run(args, workdir)
    except (torch_reader.CheckpointError, layouts.LayoutError, safetensors_io.SafetensorsError,
            parity.DumpError, ValueError, OSError) as e:
        sys.stderr.write(f"softbio-compare: error: {e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())

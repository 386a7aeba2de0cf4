#!/usr/bin/env python3
# weights_converter/convert.py — softbio-convert: PyTorch ResNet checkpoint -> softbio model file.
#
#   softbio-convert CHECKPOINT [-o OUT.safetensors] [--preset celeba|afad|morph2|cacd|utkface|torchvision] [...]
#   python3 weights_converter/convert.py ...          (the same, without installing)
#   softbio-convert --tfjs MODEL-weights_manifest.json  (face-api's TF.js networks: tfjs.py)
#
# Reads the checkpoint with the restricted unpickler of torch_reader.py (torch is never
# imported and nothing in the file is executed), recognises the architecture with
# layouts.py, writes the safetensors file of docs/FORMAT.md with safetensors_io.py and
# prints a one-screen summary. Every flag is documented in --help (build_parser below).
import argparse
import importlib
import json
import os
import sys

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUMPY_MISSING = "softbio-convert needs numpy: apt-get install python3-numpy (or: pip install numpy)"

HEAD_HELP = """\
Multi-head checkpoints: name every head, once per head, as
  --head NAME[=PREFIX][,type=T][,num_classes=K][,offset=X][,classes=a/b/...]
NAME is the head's name in the softbio file ([A-Za-z0-9_]+); PREFIX is the tensor-name
prefix of the head in the checkpoint (default NAME): PREFIX.weight + PREFIX.bias for a
linear layer, PREFIX.coral_weights.weight + PREFIX.coral_bias for a CoralLayer, 'fc' for
coral-cnn's fc.weight + linear_1_bias. Example, a ResNet-101 with a gender and an age head:
  --preset celeba --head gender=fc_gender,type=softmax,classes=female/male \\
                  --head age=fc_age,type=coral,offset=15
"""

EPILOG = """\
Recognised layouts (see docs/MODELS.md): Raschka's CelebA notebook ResNet-18/34/50/101/152
(AvgPool2d(7,1,2), fc 2048/8192 -> 2); coral-cnn ResNet-34 CORAL 2019 (fc.weight [1,2048])
and 2020 (AvgPool2d(4), fc.weight [1,512]) with linear_1_bias, and its cross-entropy and
OR-CNN baselines; coral-pytorch CoralLayer heads; CORN heads (fc with K-1 outputs);
torchvision resnet18/34/50/101/152; multi-head models (see --head).

What the tensors cannot tell comes from flags, else these defaults:
  stride convention   conv2 (torchvision v1.5, Raschka notebooks); whole pickled models
                      record their strides and are believed
  pooling             from F (head input width) and C4 (layer4 channels): F = 4 x C4 ->
                      AvgPool2d(7,1,2); F = C4 -> AvgPool2d(4) for ordinal/age models,
                      else AdaptiveAvgPool (torchvision)
  input size and      the preset's (refused when it contradicts the checkpoint: a preset
  preprocessing       head type or class count the head does not have, or an input size
                      other than the layout's published one); else, for a layout published
                      with one chain, that chain at its size: coral-cnn (CORAL, CE, OR-CNN
                      on ResNet-34) 120, Resize 128 -> CenterCrop 120; CORN 120, CenterCrop
                      140 -> Resize 128 -> CenterCrop 120; Raschka's notebooks (2-class
                      softmax, AvgPool2d(7,1,2)) 128, CenterCrop 178 -> Resize 128;
                      torchvision 1000-class logits 224, Resize 256 (shorter side) ->
                      CenterCrop 224 -> Normalize; else refused with the choices (no guess)
  head type           coral for CORAL layouts; for a linear head: --head-type, else
                      inferred from K (--preset/--num-classes: K outputs = softmax, K-1 =
                      corn, 2(K-1) = orcnn), else logits for 1000 outputs, else an error
  a softbio file      given as input (re-conversion, e.g. to change the preprocessing or
                      mark it --untrained): its own metadata is the default for every flag

Presets:
""" + "\n".join(f"  {name:12s} {p}" for name, p in [
    ("celeba", "CenterCrop 178 -> Resize 128 -> ToTensor; input 128; head 'gender', classes female/male"),
    ("afad", "K=26, label_offset 15; Resize 128 -> CenterCrop 120 -> ToTensor; input 120; head 'age'"),
    ("morph2", "K=55, label_offset 16; CenterCrop 140 -> Resize 128 -> CenterCrop 120 -> ToTensor; input 120"),
    ("cacd", "K=49, label_offset 14; Resize 128 -> CenterCrop 120 -> ToTensor; input 120; head 'age'"),
    ("utkface", "K=40, label_offset 21; Resize 128 -> CenterCrop 120 -> ToTensor; input 120; head 'age'"),
    ("torchvision", "Resize 256 (shorter side, aspect kept) -> CenterCrop 224 -> ToTensor -> Normalize ImageNet; "
                    "input 224; no head settings (e.g. a fine-tuned torchvision ResNet)"),
]) + "\n\n" + HEAD_HELP + """
TensorFlow.js weights of face-api's networks (tiny face detector, 68 landmarks, age/gender):
  softbio-convert --tfjs MODEL-weights_manifest.json [-o OUT]    (--tfjs --help: its flags)

Exit status: 0 written, 1 conversion refused (message on stderr), 2 usage error or numpy missing.
"""


def add_conversion_arguments(p):
    """The flags that describe a checkpoint (shared with compare.py)."""
    g = p.add_argument_group("what the checkpoint is")
    g.add_argument("--preset", choices=["celeba", "afad", "morph2", "cacd", "utkface", "torchvision"],
                   help="dataset preset: input size, preprocessing, class names / K and age offset (see below)")
    g.add_argument("--input-size", metavar="N|HxW",
                   help="network input size after preprocessing (default: the preset's, else the layout's "
                        "published size, else the output size of --preprocess)")
    g.add_argument("--stride-in", choices=["conv1", "conv2"],
                   help="which conv of a bottleneck block carries the stage stride: conv2 = torchvision 'v1.5' and "
                        "Raschka's notebooks (default), conv1 = the original paper's 'v1'. Basic blocks: conv1")
    g.add_argument("--pool", metavar="adaptive|avg:K,S,P",
                   help="pooling before the heads: 'adaptive' (AdaptiveAvgPool2d(1)) or 'avg:K,S,P' "
                        "(AvgPool2d(K, S, P)); default: inferred from the head's input width")
    g.add_argument("--bn-eps", type=float, metavar="EPS",
                   help="BatchNorm epsilon (default 1e-5, or what a whole pickled model records)")
    g = p.add_argument_group("single-head checkpoints")
    g.add_argument("--head-type", choices=["softmax", "coral", "corn", "orcnn", "logits"],
                   help="what the fc layer computes, when its output count does not say it: softmax (gender, "
                        "cross-entropy age baseline), corn (K-1 outputs), orcnn (2(K-1) outputs), logits (raw, "
                        "e.g. ImageNet); CORAL layouts are recognised by their tensors")
    g.add_argument("--num-classes", type=int, metavar="K",
                   help="number of classes / age ranks K (default: the preset's, else from the tensors)")
    g.add_argument("--label-offset", type=float, metavar="X",
                   help="value = label + X, e.g. the youngest age of the dataset (default: the preset's; "
                        "ordinal heads 0)")
    g.add_argument("--classes", metavar="A,B,...",
                   help="comma-separated class names of a softmax head (default: the preset's, else 0..C-1)")
    g.add_argument("--head-name", metavar="NAME",
                   help="name of the head in the softbio file (default: the preset's 'gender'/'age', 'imagenet' for "
                        "1000-class logits, else 'output')")
    g = p.add_argument_group("multi-head checkpoints")
    g.add_argument("--head", action="append", metavar="SPEC", default=[],
                   help="NAME[=PREFIX][,type=T][,num_classes=K][,offset=X][,classes=a/b]; once per head (see below)")
    g = p.add_argument_group("finding the tensors")
    g.add_argument("--checkpoint-key", metavar="KEY",
                   help="dict key (dotted for nesting) under which the checkpoint keeps the state_dict (default: "
                        "the state_dict itself, or 'state_dict', 'model_state_dict', 'model')")
    g.add_argument("--strip-prefix", action="append", metavar="PREFIX", default=[],
                   help="remove PREFIX from tensor names that start with it (e.g. 'backbone.'); 'module.' "
                        "(DataParallel) is always stripped when every name has it")
    g.add_argument("--ignore", action="append", metavar="GLOB", default=[],
                   help="drop tensors whose name matches GLOB (e.g. 'aux_head.*'); repeatable")
    g = p.add_argument_group("preprocessing")
    g.add_argument("--preprocess", metavar="STEPS",
                   help="comma-separated steps applied to the decoded RGB image, e.g. "
                        "'center_crop:178,resize:128,to_tensor' (sizes N or HxW; resize:N is Resize((N,N))) or "
                        "'resize_shorter:256,center_crop:224,to_tensor' (resize_shorter:N[:max=M] is torchvision's "
                        "Resize(N[, max_size=M]): the shorter side becomes N, the aspect ratio is kept); default: "
                        "the preset's, else the layout's published chain")
    g.add_argument("--normalize", metavar="imagenet|none|M,M,M/S,S,S",
                   help="Normalize(mean, std) after to_tensor, replacing the chain's own (default: none, except "
                        "torchvision ImageNet classifiers and --preset torchvision: imagenet)")
    g = p.add_argument_group("metadata")
    g.add_argument("--untrained", action="store_true",
                   help="mark the weights as not learned (trained: false; softbio then prints a banner with every "
                        "prediction); default: trained")
    g.add_argument("--description", metavar="TEXT", help="free text stored in the file and shown to users")
    g.add_argument("--face-crop", metavar="celeba|cacd|none|JSON",
                   help="how the model's training faces were cut (metadata face_crop, docs/FORMAT.md 2.7): "
                        "softbio-predict then runs the model on every detected face, cut that way. celeba: "
                        "CelebA's eye-and-mouth alignment, 178x218; cacd: coral-cnn's CACD box crop, 120x120; "
                        "none: the model takes whole face images. Default: the preset's (celeba, cacd), else none")


def build_parser():
    from weights_converter import __version__
    import textwrap
    p = argparse.ArgumentParser(
        prog="softbio-convert",
        description=textwrap.fill(
            "Convert a PyTorch ResNet checkpoint (.pt/.pth from torch.save: a state_dict, a training checkpoint "
            "dict, a whole pickled model; or a .safetensors file) into a softbio model file (docs/FORMAT.md). "
            "torch is not needed and never imported; the checkpoint is read with a restricted unpickler that "
            "refuses anything that could run code.", 90),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="the checkpoint: .pt/.pth (zip or legacy torch.save format) or .safetensors")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: the checkpoint's name with the suffix .safetensors; refused if that "
                        "is the input itself)")
    p.add_argument("--dry-run", action="store_true", help="recognise and print the summary, write nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--version", action="version", version=f"softbio-convert {__version__}")
    add_conversion_arguments(p)
    return p


def options_from_args(args, source=None):
    """argparse namespace -> layouts.Options (raises LayoutError for malformed values)."""
    from weights_converter import layouts as L
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    return L.Options(
        preset=args.preset,
        input_size=L.parse_size(args.input_size) if args.input_size else None,
        stride_in=args.stride_in,
        pool=L.parse_pool(args.pool) if args.pool else None,
        head_type=args.head_type, num_classes=args.num_classes,
        label_offset=(L._number(str(args.label_offset)) if args.label_offset is not None else None),
        classes=classes, head_name=args.head_name,
        heads=[L.HeadSpec.parse(h) for h in args.head],
        bn_eps=args.bn_eps,
        preprocess=L.parse_preprocess(args.preprocess) if args.preprocess else None,
        normalize=L.parse_normalize(args.normalize) if args.normalize else None,
        trained=not args.untrained, description=args.description, source=source,
        face_crop=L.parse_face_crop(args.face_crop) if args.face_crop else None)


def read_tensors(path, args):
    """Load any supported input; returns a torch_reader.StateDict (with .softbio_document
    set when the input is already a softbio file)."""
    from weights_converter import safetensors_io, torch_reader
    if torch_reader.file_kind(path) == "safetensors":
        tensors, metadata = safetensors_io.read_safetensors(path)
        sd = torch_reader.extract_state_dict(tensors, key=None, strip_prefixes=args.strip_prefix,
                                             ignore=args.ignore)
        sd.softbio_document = json.loads(metadata["softbio"]) if "softbio" in metadata else None
        sd.notes.insert(0, "safetensors input" + (" (a softbio file: its metadata is the default for every flag)"
                                                   if sd.softbio_document else ""))
        return sd
    obj = torch_reader.load_checkpoint(path)
    sd = torch_reader.extract_state_dict(obj, key=args.checkpoint_key, strip_prefixes=args.strip_prefix,
                                         ignore=args.ignore)
    sd.softbio_document = None
    kind = torch_reader.file_kind(path)
    sd.notes.insert(0, {"zip": "torch.save zip format (torch >= 1.6)",
                        "legacy": "legacy torch.save format (torch < 1.6)"}.get(kind, kind))
    return sd


def convert_file(args):
    """Do the whole conversion for parsed arguments; returns (Conversion, notes, output path, bytes)."""
    from weights_converter import __version__, layouts, safetensors_io
    source = f"softbio-convert {__version__} from {os.path.basename(args.checkpoint)}"
    options = options_from_args(args, source)
    state = read_tensors(args.checkpoint, args)
    if state.softbio_document:
        layouts.defaults_from_document(options, state.softbio_document)
    conversion = layouts.build(state.tensors, options, state.module_hints)
    output = args.output or os.path.splitext(args.checkpoint)[0] + ".safetensors"
    if os.path.abspath(output) == os.path.abspath(args.checkpoint):
        raise layouts.LayoutError(f"the output {output} would overwrite the input; pass -o OUT")
    size = None
    if not args.dry_run:
        size = safetensors_io.write_softbio_file(output, conversion.tensors, conversion.document)
    return conversion, state.notes + conversion.notes, output, size


def summary(conversion, notes, checkpoint, output, size, width=100):
    """The one-screen report printed after a conversion (wrapped to `width` columns)."""
    import textwrap
    from weights_converter.layouts import describe_steps, pool_str
    c = conversion
    doc = c.document
    m = doc["model"]
    fields = [
        ("read", "; ".join(notes) if notes else "state_dict"),
        ("layout", f"{c.layout}: {c.layout_description}"),
        ("architecture", f"{c.backbone.describe()}; stride in {m['stride_in']} ({c.stride_why}); "
                         f"BatchNorm eps {m['bn_eps']:g}"),
        ("input", f"{m['in_channels']} x {m['input_size'][0]} x {m['input_size'][1]} ({c.size_why})"),
        ("pooling", f"{pool_str(m['pool'])} -> {c.feature_width} features ({c.pool_why})"),
        ("parameters", f"{c.parameters:,} (+ {c.running_stats:,} BatchNorm running statistics) in "
                       f"{len(c.tensors)} tensors"),
    ]
    for i, h in enumerate(c.heads):
        fields.append(("heads" if i == 0 else "", h.describe()))
    fields.append(("preprocess", f"{describe_steps(doc['preprocess']['steps'])} ({c.steps_why})"))
    crop = doc.get("face_crop")
    fields.append(("face crop", "none: takes whole face images (softbio-predict --no-detect behaviour)" if crop is None
                   else f"{crop.get('name', crop['method'])}: {crop['size'][1]}x{crop['size'][0]} {crop['method']} crop "
                        f"of each detected face"))
    fields.append(("trained", "yes" if doc["trained"] else "NO (--untrained: predictions carry a banner)"))
    if size is None:
        fields.append(("", "(dry run: nothing written)"))
    else:
        fields.append(("wrote", f"{output} ({size / 2**20:.1f} MiB)"))
    lines = [f"softbio-convert: {checkpoint}"]
    for label, text in fields:
        lines += textwrap.wrap(text, width, initial_indent=f"  {label:12s} ", subsequent_indent=" " * 17,
                               break_on_hyphens=False)
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--tfjs" in argv:  # TensorFlow.js weights (face-api networks): weights_converter/tfjs.py
        argv.remove("--tfjs")
        from weights_converter import tfjs
        return tfjs.main(argv)
    try:
        importlib.import_module("numpy")  # the only dependency: checked first, for a clear message
    except ImportError:
        sys.stderr.write(NUMPY_MISSING + "\n")
        return 2
    from weights_converter import layouts, safetensors_io, torch_reader
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        conversion, notes, output, size = convert_file(args)
    except (torch_reader.CheckpointError, layouts.LayoutError, safetensors_io.SafetensorsError) as e:
        sys.stderr.write(f"softbio-convert: error: {args.checkpoint}: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"softbio-convert: error: {e}\n")
        return 1
    if not args.quiet:
        print(summary(conversion, notes, args.checkpoint, output, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())

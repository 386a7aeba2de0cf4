#!/usr/bin/env python3
# tests/python/test_converter.py — unit tests of weights_converter (no C++ needed).
#
#   /usr/bin/python3 tests/python/test_converter.py [-v]
#
# What is covered:
#   * the restricted unpickler refuses pickles that would run code (os.system,
#     builtins.eval, subprocess.Popen, calls of unknown classes, ...), as raw pickles and
#     inside a crafted torch.save zip, naming the offending global, and runs nothing;
#     whole pickled models load without importing their classes;
#   * torch.save formats (zip and legacy), dtypes, strided tensors, checkpoint-dict
#     wrappers, DataParallel prefixes, safetensors input;
#   * error messages for missing, unexpected and mis-shaped tensors and for ambiguous heads;
#   * layout detection for every parity layout (parity_layouts.py), parameter counts
#     against docs/MODELS.md, presets, multi-head flags, stride and pool read from whole
#     pickled models;
#   * input size and preprocessing (issue 11): torchvision's Resize(N) of the shorter side
#     (sizes against torchvision's own function, the torchvision layout's chain, the
#     torchvision preset, --preprocess resize_shorter, compare.py's Pillow chain); presets
#     that contradict the tensors refused (celeba on a CORAL model, input sizes other
#     than the published one); published chains used without a preset (coral-cnn, CORN,
#     notebooks), and no guessed chain elsewhere;
#   * the output file: alignment, metadata, tensor names, F32 only, --untrained;
#   * the command line: --help documents every flag, exit codes, the numpy-missing message.
# Tests that need torch (to write real checkpoints) are skipped where torch is missing;
# without numpy the whole script is skipped (exit 77: tests/python/needs.py).
import collections
import importlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import needs  # noqa: E402

needs.require("numpy")  # else: "skipped: numpy not available", exit 77
import numpy as np  # noqa: E402

from weights_converter import convert, layouts, safetensors_io, torch_reader  # noqa: E402

try:
    import torch
    import torchvision
    torch.set_num_threads(2)
    HAVE_TORCH = True
except ImportError:  # pragma: no cover - the suite runs with Debian's python3-torch
    HAVE_TORCH = False

CONVERT = os.path.join(REPO, "weights_converter", "convert.py")
needs_torch = unittest.skipUnless(HAVE_TORCH, "needs torch to write checkpoints")


def run_cli(*args, python=sys.executable):
    return subprocess.run([python, CONVERT] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def numpy_state(module):
    return collections.OrderedDict((k, v.detach().numpy().copy()) for k, v in module.state_dict().items())


_cache = {}


def resnet18_state():
    """torchvision resnet18's state_dict as numpy (built once)."""
    if "r18" not in _cache:
        torch.manual_seed(0)
        _cache["r18"] = numpy_state(torchvision.models.resnet18(weights=None))
    return collections.OrderedDict((k, v.copy()) for k, v in _cache["r18"].items())


def options(*argv):
    """layouts.Options from command-line flags, exactly as convert.py parses them."""
    args = convert.build_parser().parse_args(["unused.pt"] + list(argv))
    return convert.options_from_args(args)


# ----------------------------------------------------------------------------------
# Hand-made pickles
# ----------------------------------------------------------------------------------

def global_call_pickle(module, name, argument):
    """Protocol-2 pickle of `module.name(argument)` (GLOBAL + REDUCE), written opcode by
    opcode so that the test never needs the callable itself."""
    arg = argument.encode("utf-8")
    return (b"\x80\x02" + b"c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"X" + struct.pack("<I", len(arg)) + arg + b"\x85" + b"R" + b".")


def torch_zip(pickle_bytes, storages=None, prefix="archive"):
    """A zip laid out like torch.save's: <prefix>/data.pkl, data/<key>, version."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pickle_bytes)
        for key, raw in (storages or {}).items():
            z.writestr(f"{prefix}/data/{key}", raw)
        z.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="softbio-converter-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p


# ----------------------------------------------------------------------------------
# 1. The restricted unpickler
# ----------------------------------------------------------------------------------

class RestrictedUnpicklerTest(TempDirTest):
    def marker(self):
        return self.path("pwned")

    def assert_refused(self, path, offending):
        with self.assertRaises(torch_reader.UnsafeCheckpointError) as ctx:
            torch_reader.load_checkpoint(path)
        self.assertIn(offending, str(ctx.exception))
        self.assertFalse(os.path.exists(self.marker()), "the pickle's command ran")
        return str(ctx.exception)

    def test_os_system_raw_pickle(self):
        p = self.write("evil.pt", global_call_pickle("os", "system", f"touch {self.marker()}"))
        self.assert_refused(p, "os.system")

    def test_posix_system_from_pickle_dumps(self):
        command = f"touch {self.marker()}"

        class Evil:
            def __reduce__(self):
                return (os.system, (command,))
        p = self.write("evil.pt", pickle.dumps(Evil(), protocol=2))
        self.assert_refused(p, "system")  # posix.system on Linux

    def test_os_system_inside_a_torch_zip(self):
        data = global_call_pickle("os", "system", f"touch {self.marker()}")
        p = self.write("evil.pt", torch_zip(data))
        self.assert_refused(p, "os.system")

    def test_builtins_eval_and_exec(self):
        for module in ("builtins", "__builtin__"):
            for name in ("eval", "exec", "getattr", "__import__", "open"):
                p = self.write("evil.pt", torch_zip(global_call_pickle(module, name, "1")))
                message = self.assert_refused(p, f"builtins.{name}")
                self.assertIn("could run code", message)

    def test_subprocess(self):
        p = self.write("evil.pt", torch_zip(global_call_pickle("subprocess", "Popen", f"touch {self.marker()}")))
        self.assert_refused(p, "subprocess.Popen")

    def test_protocol0_raw_pickle(self):
        p = self.write("evil.pkl", f"cos\nsystem\n(S'touch {self.marker()}'\ntR.".encode())
        self.assert_refused(p, "os.system")

    def test_calling_an_unknown_class_is_refused(self):
        # An unknown global becomes an inert placeholder; *calling* it (REDUCE) is refused.
        p = self.write("evil.pt", torch_zip(global_call_pickle("some_package.tools", "run_me", "x")))
        message = self.assert_refused(p, "some_package.tools.run_me")
        self.assertIn("calls", message)

    def test_rebuild_from_type_only_calls_rebuilders(self):
        # torch._tensor._rebuild_from_type_v2(func, type, args, state) with a func of the
        # file's choosing (an unknown global) must not be called.
        payload = (b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n"
                   b"(cunknown_mod\nhelper\nctorch\nTensor\nX\x01\x00\x00\x00a\x85Nt"  # (func, type, ('a',), None)
                   b"R.")
        p = self.write("evil.pt", torch_zip(payload))
        self.assert_refused(p, "unknown_mod.helper")

    def test_copyreg_reconstructor_cannot_build_real_classes(self):
        payload = (b"\x80\x02ccopy_reg\n_reconstructor\n(c__builtin__\nobject\nc__builtin__\nobject\nNtR.")
        p = self.write("evil.pt", torch_zip(payload))
        with self.assertRaises(torch_reader.UnsafeCheckpointError):
            torch_reader.load_checkpoint(p)

    def test_placeholders_never_import(self):
        # A whole pickled module whose class lives in a module that cannot be imported:
        # loading must still work, because nothing is imported.
        state = {"_parameters": collections.OrderedDict(), "_buffers": collections.OrderedDict(),
                 "_modules": collections.OrderedDict()}
        data = (b"\x80\x02cnot_a_real_module.sub\nNet\n)\x81" + pickle.dumps(state, protocol=2)[2:-1] + b"b.")
        p = self.write("model.pt", torch_zip(data))
        obj = torch_reader.load_checkpoint(p)
        self.assertIsInstance(obj, torch_reader.PickledObject)
        self.assertEqual(obj.softbio_global, "not_a_real_module.sub.Net")
        self.assertNotIn("not_a_real_module", sys.modules)

    def test_torchscript_and_garbage_are_reported(self):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("m/constants.pkl", b"")
            z.writestr("m/code/__torch__.py", b"")
        p = self.write("ts.pt", buf.getvalue())
        with self.assertRaisesRegex(torch_reader.CheckpointError, "TorchScript"):
            torch_reader.load_checkpoint(p)
        p = self.write("junk.pt", b"this is not a checkpoint at all")
        with self.assertRaises(torch_reader.CheckpointError):
            torch_reader.load_checkpoint(p)

    def test_out_of_bounds_tensor_is_refused(self):
        # A FloatStorage of 2 elements viewed as 10 elements.
        payload = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                   b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\n\x85K\x01\x85\x89ccollections\n"
                   b"OrderedDict\n)RtR.")
        p = self.write("oob.pt", torch_zip(payload, {"0": b"\0" * 8}))
        with self.assertRaisesRegex(torch_reader.CheckpointError, "reads element 9"):
            torch_reader.load_checkpoint(p)

    def test_cli_reports_the_global_and_exits_1(self):
        p = self.write("evil.pt", torch_zip(global_call_pickle("os", "system", f"touch {self.marker()}")))
        proc = run_cli(p, "-o", self.path("out.safetensors"))
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("os.system", proc.stderr)
        self.assertFalse(os.path.exists(self.marker()))
        self.assertFalse(os.path.exists(self.path("out.safetensors")))


# ----------------------------------------------------------------------------------
# 2. Reading real torch.save files
# ----------------------------------------------------------------------------------

@needs_torch
class TorchFormatsTest(TempDirTest):
    def load_state(self, obj, **save_kw):
        p = self.path("ckpt.pt")
        torch.save(obj, p, **save_kw)
        return torch_reader.extract_state_dict(torch_reader.load_checkpoint(p))

    def test_zip_and_legacy_state_dict(self):
        model = torchvision.models.resnet18(weights=None)
        expected = model.state_dict()
        for legacy in (False, True):
            sd = self.load_state(expected, _use_new_zipfile_serialization=not legacy)
            self.assertEqual(list(sd.tensors), list(expected))
            for k, v in expected.items():
                np.testing.assert_array_equal(sd.tensors[k], v.numpy(), err_msg=k)

    def test_dtypes_and_strides(self):
        t = {"transposed": torch.arange(12.).reshape(3, 4).t(), "half": torch.randn(5).half(),
             "bf16": torch.randn(5).bfloat16(), "slice": torch.arange(10.)[2:7], "double": torch.randn(3).double(),
             "scalar": torch.tensor(1.5), "empty": torch.zeros(0, 4), "int": torch.arange(3)}
        for legacy in (False, True):
            p = self.path("t.pt")
            torch.save(t, p, _use_new_zipfile_serialization=not legacy)
            got = torch_reader.load_checkpoint(p)
            for k, v in t.items():
                np.testing.assert_array_equal(got[k], v.float().numpy() if k == "bf16" else v.numpy(), err_msg=k)

    def test_checkpoint_wrappers(self):
        sd = torchvision.models.resnet18(weights=None).state_dict()
        for key in ("state_dict", "model_state_dict", "model"):
            got = self.load_state({"epoch": 3, key: sd, "optimizer": {"lr": 0.1}, "acc": np.float64(0.97)})
            self.assertEqual(list(got.tensors), list(sd), key)
            self.assertIn(f"under key '{key}'", " ".join(got.notes))
        nested = self.load_state({"model": {"state_dict": sd}})
        self.assertEqual(list(nested.tensors), list(sd))

    def test_unknown_wrapper_and_checkpoint_key(self):
        sd = torchvision.models.resnet18(weights=None).state_dict()
        p = self.path("ckpt.pt")
        torch.save({"weights_ema": sd, "step": 5}, p)
        obj = torch_reader.load_checkpoint(p)
        with self.assertRaises(torch_reader.CheckpointError) as ctx:
            torch_reader.extract_state_dict(obj)
        self.assertIn("'weights_ema'", str(ctx.exception))
        self.assertIn("--checkpoint-key", str(ctx.exception))
        got = torch_reader.extract_state_dict(obj, key="weights_ema")
        self.assertEqual(list(got.tensors), list(sd))

    def test_dataparallel_prefix(self):
        model = torchvision.models.resnet18(weights=None)
        for obj in (torch.nn.DataParallel(model).state_dict(), torch.nn.DataParallel(model)):
            got = self.load_state(obj)
            self.assertEqual(list(got.tensors), list(model.state_dict()))
            self.assertTrue(any("module." in n for n in got.notes))

    def test_whole_model_is_read_without_importing_its_class(self):
        import reference_models as R
        model = R.CoralCnnResNet34(26, 2020, "coral")
        p = self.path("whole.pt")
        torch.save(model, p)
        with open(p, "rb") as f:
            self.assertIn(b"reference_models", f.read())
        del sys.modules["reference_models"]
        try:
            got = torch_reader.extract_state_dict(torch_reader.load_checkpoint(p))
            self.assertNotIn("reference_models", sys.modules)
        finally:
            importlib.import_module("reference_models")  # restore it for the other tests
        self.assertEqual(list(got.tensors), list(model.state_dict()))
        self.assertEqual(list(got.tensors)[0], "linear_1_bias")  # own parameters first

    def test_strip_prefix(self):
        sd = {("backbone." + k if not k.startswith("fc.") else k): v for k, v in resnet18_state().items()}
        got = torch_reader.extract_state_dict(collections.OrderedDict(sd), strip_prefixes=["backbone."])
        self.assertIn("conv1.weight", got.tensors)
        self.assertIn("fc.weight", got.tensors)
        with self.assertRaises(torch_reader.CheckpointError):
            torch_reader.extract_state_dict(collections.OrderedDict(sd), strip_prefixes=["nothing."])


# ----------------------------------------------------------------------------------
# 3. Layout recognition and its error messages
# ----------------------------------------------------------------------------------

@needs_torch
class LayoutErrorsTest(unittest.TestCase):
    def build(self, state, *argv):
        return layouts.build(state, options(*argv))

    def assert_error(self, state, *fragments, argv=()):
        with self.assertRaises(layouts.LayoutError) as ctx:
            self.build(state, *argv)
        for fragment in fragments:
            self.assertIn(fragment, str(ctx.exception))
        return str(ctx.exception)

    def test_missing_tensor(self):
        s = resnet18_state()
        del s["layer3.1.bn2.running_var"]
        self.assert_error(s, "missing tensor layer3.1.bn2.running_var [256]", "ResNet-18")

    def test_misshaped_tensor(self):
        s = resnet18_state()
        s["layer3.1.conv2.weight"] = np.zeros((256, 256, 1, 1), np.float32)
        self.assert_error(s, "tensor layer3.1.conv2.weight: expected [256,256,3,3], checkpoint has [256,256,1,1]")

    def test_unexpected_tensors(self):
        s = resnet18_state()
        s["layer2.0.se.fc.weight"] = np.zeros((8, 128), np.float32)
        self.assert_error(s, "unexpected tensor layer2.0.se.fc.weight [8,128]")
        s = resnet18_state()
        s["projection"] = np.zeros((3,), np.float32)
        self.assert_error(s, "unexpected tensor projection [3]", "--ignore")

    def test_ignore_flag_drops_tensors(self):
        s = resnet18_state()
        s["aux.weight"] = np.zeros((3, 512), np.float32)
        s["aux.bias"] = np.zeros((3,), np.float32)
        self.assert_error(s, "several heads", "fc (fc.weight [1000,512]", "aux (aux.weight [3,512]")
        got = torch_reader.extract_state_dict(s, ignore=["aux.*"])
        self.assertEqual(self.build(got.tensors).layout, "torchvision")

    def test_not_a_resnet(self):
        self.assert_error({"encoder.weight": np.zeros((3, 3), np.float32)}, "no tensor conv1.weight")
        s = {"net.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}
        self.assert_error(s, "--strip-prefix net.")

    def test_num_batches_tracked_dropped_and_integer_tensors_refused(self):
        s = resnet18_state()
        self.assertTrue(any(k.endswith("num_batches_tracked") for k in s))
        c = self.build(s)
        self.assertFalse(any("num_batches_tracked" in n for n, _ in c.tensors))
        self.assertIn("20 num_batches_tracked counters dropped", c.notes)
        s["layer1.0.bn1.weight"] = s["layer1.0.bn1.weight"].astype(np.int64)
        self.assert_error(s, "tensor layer1.0.bn1.weight: dtype int64")

    def test_fp16_is_widened(self):
        s = collections.OrderedDict((k, v.astype(np.float16) if v.dtype == np.float32 else v)
                                    for k, v in resnet18_state().items())
        c = self.build(s)
        self.assertTrue(all(v.dtype == np.float32 for _, v in c.tensors))
        self.assertTrue(any("float16" in n for n in c.notes))

    def test_ambiguous_linear_head_needs_head_type(self):
        import reference_models as R
        s = numpy_state(R.CornResNet34(26))
        message = self.assert_error(s, "--head-type", "CORN with K = 26", "25-class softmax")
        self.assertIn("cannot tell", message)
        # With the flag, or with K from a preset, it is resolved.
        self.assertEqual(self.build(s, "--head-type", "corn", "--input-size", "120", "--pool", "avg:4,4,0")
                         .heads[0].type, "corn")
        self.assertEqual(self.build(s, "--preset", "afad").heads[0].type, "corn")
        self.assertEqual(self.build(s, "--preset", "afad", "--head-type", "softmax", "--num-classes", "25")
                         .heads[0].type, "softmax")
        self.assert_error(s, "with K = 55 classes expected 55", "54 (CORN)", argv=("--preset", "morph2"))

    def test_wrong_input_size_for_the_pool(self):
        import reference_models as R
        s = numpy_state(R.NotebookResNet(*R.notebook_spec(18)))
        self.assert_error(s, "F = 2048", "7x7 layer4", argv=("--preset", "celeba", "--input-size", "224",
                                                              "--preprocess", "resize:224,to_tensor"))

    def test_preprocess_must_match_input(self):
        s = resnet18_state()
        self.assert_error(s, "produces 128x128", "network input is 224x224",
                          argv=("--preprocess", "resize:128,to_tensor"))
        self.assert_error(s, "must end with to_tensor", argv=("--preprocess", "to_tensor,resize:224"))

    def test_multi_head_flags(self):
        import reference_models as R
        s = numpy_state(R.MultiHeadResNet101(26))
        self.assert_error(s, "several heads", "fc_gender", "fc_age", "--head NAME=PREFIX", argv=("--preset", "celeba"))
        self.assert_error(s, "no head with that prefix", argv=("--preset", "celeba", "--head", "gender=nope"))
        self.assert_error(s, "no --head names", "fc_age", argv=("--preset", "celeba", "--head",
                                                                 "gender=fc_gender,type=softmax"))
        c = self.build(s, "--preset", "celeba", "--head", "gender=fc_gender", "--head", "age=fc_age,offset=15")
        heads = c.document["heads"]
        self.assertEqual(heads[0], {"name": "gender", "type": "softmax", "num_classes": 2,
                                    "classes": ["female", "male"]})
        self.assertEqual(heads[1], {"name": "age", "type": "coral", "num_classes": 26, "label_offset": 15})
        names = [n for n, _ in c.tensors]
        self.assertEqual(names[-4:], ["head.gender.weight", "head.gender.bias", "head.age.weight", "head.age.bias"])
        shapes = dict(c.tensors)
        self.assertEqual(shapes["head.age.weight"].shape, (1, 8192))
        self.assertEqual(shapes["head.age.bias"].shape, (25,))

    def test_face_crop_declared_by_preset_or_flag(self):
        # CelebA's alignment and CACD's box come with their presets; the other age presets
        # publish no geometry a detector can reproduce, so they declare none unless told.
        s = resnet18_state()
        s["fc.weight"], s["fc.bias"] = np.zeros((2, 512), np.float32), np.zeros(2, np.float32)
        doc = self.build(s, "--preset", "celeba").document
        self.assertEqual(doc["face_crop"], layouts.FACE_CROPS["celeba"])
        self.assertEqual(doc["face_crop"]["targets"][0], [70.245, 111.5])  # MATLAB (70.745, 112) - 0.5
        self.assertNotIn("face_crop", self.build(s, "--preset", "celeba", "--face-crop", "none").document)
        self.assertEqual(self.build(s, "--preset", "celeba", "--face-crop", "cacd").document["face_crop"]["method"], "box")
        custom = '{"method": "box", "size": [100, 100], "margin": 0.2, "shift": 0}'
        self.assertEqual(self.build(s, "--preset", "celeba", "--face-crop", custom).document["face_crop"]["margin"], 0.2)
        s["fc.weight"], s["fc.bias"] = np.zeros((25, 512), np.float32), np.zeros(25, np.float32)
        self.assertNotIn("face_crop", self.build(s, "--preset", "afad").document)
        self.assertEqual(self.build(s, "--preset", "afad", "--face-crop", "celeba").document["face_crop"]["name"], "celeba")
        for bad, why in (("dlib", "expected celeba, cacd, none or a JSON object"), ("{nope", "not valid JSON"),
                         ('{"method": "warp", "size": [1, 1]}', "needs \"method\""),
                         ('{"method": "box", "size": 5}', "[height, width]")):
            with self.assertRaises(layouts.LayoutError, msg=bad) as ctx:
                options("--face-crop", bad)
            self.assertIn(why, str(ctx.exception))

    def test_bad_flag_values(self):
        for argv in (("--pool", "max"), ("--input-size", "abc"), ("--head", "g=fc,colour=red"),
                     ("--normalize", "1,2/3"), ("--preprocess", "blur:3")):
            with self.assertRaises(layouts.LayoutError, msg=argv):
                options(*argv)


@needs_torch
class LayoutDetectionTest(unittest.TestCase):
    """Every parity layout is recognised from its state_dict and the flags its users pass."""

    def test_every_parity_layout(self):
        import parity_layouts
        for case in parity_layouts.CASES:
            with self.subTest(layout=case.name):
                torch.manual_seed(0)
                state = numpy_state(case.build())
                c = layouts.build(state, options(*case.convert_args))
                m = c.document["model"]
                e = case.expect
                self.assertEqual(c.layout, e["layout"])
                for key in ("block", "layers", "pool", "stride_in", "in_channels", "input_size"):
                    self.assertEqual(m[key], e[key], key)
                self.assertEqual([(h["name"], h["type"], h["num_classes"]) for h in c.document["heads"]],
                                 [tuple(h) for h in e["heads"]])

    def test_parameter_counts_match_models_md(self):
        import reference_models as R
        torch.manual_seed(0)
        nb101 = layouts.build(numpy_state(R.NotebookResNet(*R.notebook_spec(101))), options("--preset", "celeba"))
        self.assertEqual(nb101.parameters, 42516546)          # docs/MODELS.md 1.6
        self.assertEqual(nb101.backbone.name(), "ResNet-101")
        tv101 = layouts.build(numpy_state(torchvision.models.resnet101(weights=None)), options())
        self.assertEqual(tv101.parameters, 44549160)          # docs/MODELS.md 1.6
        self.assertEqual(len(tv101.tensors), 522)            # 626 keys - 104 num_batches_tracked

    def test_whole_model_hints(self):
        # A pickled whole model records conv strides and its pooling: a v1 ResNet-50 is
        # recognised as stride-on-conv1 without --stride-in.
        import reference_models as R
        model = R.TorchvisionStyleResNet(*R.torchvision_spec(50), 1000, stride_in="conv1")
        tmp = tempfile.mkdtemp()
        try:
            p = os.path.join(tmp, "whole.pt")
            torch.save(model, p)
            sd = torch_reader.extract_state_dict(torch_reader.load_checkpoint(p))
            c = layouts.build(sd.tensors, options(), sd.module_hints)
            self.assertEqual(c.document["model"]["stride_in"], "conv1")
            self.assertIn("pickled model", c.stride_why)
            self.assertEqual(c.document["model"]["pool"], {"type": "adaptive_avg"})
            torch.save(R.CoralCnnResNet34(26, 2019, "coral"), p)
            sd = torch_reader.extract_state_dict(torch_reader.load_checkpoint(p))
            c = layouts.build(sd.tensors, options("--preset", "utkface", "--num-classes", "26"), sd.module_hints)
            self.assertEqual(c.document["model"]["pool"], {"type": "avg", "kernel": 7, "stride": 1, "padding": 2})
            self.assertIn("pickled model", c.pool_why)
        finally:
            shutil.rmtree(tmp)


# ----------------------------------------------------------------------------------
# 3b. Input size and preprocessing (issue 11, items 9-11): torchvision's Resize(N)
#     keeps the aspect ratio; presets that contradict the tensors are refused; a
#     layout's published chain is used, and nothing is guessed where there is none.
# ----------------------------------------------------------------------------------

CORAL_CNN_CHAIN = [{"op": "resize", "size": [128, 128], "filter": "bilinear"},
                   {"op": "center_crop", "size": [120, 120]}, {"op": "to_tensor"}]
TORCHVISION_CHAIN = [{"op": "resize", "shorter_side": 256, "filter": "bilinear"},
                     {"op": "center_crop", "size": [224, 224]}, {"op": "to_tensor"},
                     {"op": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]


def finetuned_resnet18_state(outputs=2):
    """torchvision resnet18 with its fc replaced (a fine-tuned classifier): no published chain."""
    if f"r18fc{outputs}" not in _cache:
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None)
        model.fc = torch.nn.Linear(512, outputs)
        _cache[f"r18fc{outputs}"] = numpy_state(model)
    return collections.OrderedDict((k, v.copy()) for k, v in _cache[f"r18fc{outputs}"].items())


@needs_torch
class ShorterSideResizeTest(unittest.TestCase):
    """Item 9: Resize(256) of torchvision is the shorter side, not a 256x256 square."""

    def test_size_rule_is_torchvision_s(self):
        from torchvision.transforms.functional import _compute_resized_output_size as tv_size
        sizes = [(333, 257), (257, 333), (300, 200), (200, 300), (256, 256), (1, 1000), (1000, 1), (218, 178),
                 (178, 218), (7, 3), (3, 7), (100, 101), (101, 100), (4001, 3)]
        for h, w in sizes:
            for n, max_size in ((256, None), (232, None), (224, 300), (64, 65), (1, None), (5, 400)):
                with self.subTest(h=h, w=w, n=n, max_size=max_size):
                    self.assertEqual(layouts.shorter_side_size(h, w, n, max_size), tuple(tv_size((h, w), [n], max_size)))
        self.assertEqual(layouts.shorter_side_size(257, 333, 256), (256, 331))  # FORMAT.md 2.4's example

    def test_torchvision_layout_gets_the_published_eval_transform(self):
        c = layouts.build(resnet18_state(), options())
        self.assertEqual(c.document["preprocess"]["steps"], TORCHVISION_CHAIN)
        self.assertEqual(c.document["model"]["input_size"], [224, 224])
        self.assertIn("IMAGENET1K_V1", c.steps_why)
        self.assertIn("232", c.steps_why)  # where the V2 weights differ
        # The same chain as torchvision's own transform object for these weights.
        t = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
        self.assertEqual((t.resize_size, t.crop_size, t.mean, t.std), ([256], [224], IMAGENET_MEAN, IMAGENET_STD))

    def test_torchvision_preset_for_a_finetuned_network(self):
        c = layouts.build(finetuned_resnet18_state(), options("--preset", "torchvision", "--head-type", "softmax",
                                                              "--classes", "cat,dog"))
        self.assertEqual(c.document["preprocess"]["steps"], TORCHVISION_CHAIN)
        self.assertEqual(c.document["heads"][0]["classes"], ["cat", "dog"])
        c = layouts.build(finetuned_resnet18_state(), options("--preset", "torchvision", "--head-type", "softmax",
                                                              "--normalize", "none"))
        self.assertEqual(c.document["preprocess"]["steps"], TORCHVISION_CHAIN[:3])
        c = layouts.build(finetuned_resnet18_state(), options("--preset", "torchvision", "--head-type", "softmax",
                                                              "--normalize", "0.5,0.5,0.5/0.25,0.25,0.25"))
        self.assertEqual(c.document["preprocess"]["steps"][3:],
                         [{"op": "normalize", "mean": [0.5] * 3, "std": [0.25] * 3}])

    def test_preprocess_flag_and_description(self):
        steps = layouts.parse_preprocess("resize_shorter:232,center_crop:224,to_tensor")
        self.assertEqual(steps[0], {"op": "resize", "shorter_side": 232, "filter": "bilinear"})
        self.assertEqual(layouts.parse_preprocess("resize_shorter:64:max=100")[0],
                         {"op": "resize", "shorter_side": 64, "max_size": 100, "filter": "bilinear"})
        self.assertEqual(layouts.parse_preprocess("resize:256")[0]["size"], [256, 256])  # Resize((256, 256))
        for bad, fragment in (("resize_shorter:abc", "expected resize_shorter:N"), ("resize_shorter:", "expected"),
                              ("resize_shorter:64:max=64", "max 64 must be greater than 64"),
                              ("resize_shorter:0", "expected")):
            with self.assertRaises(layouts.LayoutError, msg=bad) as ctx:
                layouts.parse_preprocess(bad)
            self.assertIn(fragment, str(ctx.exception))
        self.assertEqual(layouts.describe_steps(TORCHVISION_CHAIN[:2] + [layouts.parse_preprocess(
            "resize_shorter:64:max=100")[0]]), "resize shorter side 256 -> center_crop 224x224 -> resize shorter side "
                                               "64 (max 100)")
        c = layouts.build(resnet18_state(), options("--preprocess", "resize_shorter:232,center_crop:224,to_tensor",
                                                    "--normalize", "imagenet"))
        self.assertEqual(c.document["preprocess"]["steps"][0]["shorter_side"], 232)
        self.assertEqual(c.document["preprocess"]["steps"][-1]["op"], "normalize")

    def test_a_chain_whose_size_depends_on_the_image_is_refused(self):
        with self.assertRaises(layouts.LayoutError) as ctx:
            layouts.build(resnet18_state(), options("--preprocess", "resize_shorter:224,to_tensor"))
        self.assertIn("produces images whose size depends on the input image, but the network input is 224x224",
                      str(ctx.exception))
        # A shorter-side resize after a fixed size has a fixed output again: 100x80 -> 62x50.
        self.assertEqual(layouts._steps_output_size(layouts.parse_preprocess(
            "center_crop:100x80,resize_shorter:50,to_tensor")), (62, 50))

    def test_cli_writes_and_reconverts_the_chain(self):
        tmp = tempfile.mkdtemp()
        try:
            p, first, again = (os.path.join(tmp, n) for n in ("r18.pt", "first.st", "again.st"))
            torch.save(torchvision.models.resnet18(weights=None).state_dict(), p)
            proc = run_cli(p, "-o", first)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("resize shorter side 256 -> center_crop 224x224 -> to_tensor -> normalize", proc.stdout)
            self.assertEqual(safetensors_io.read_softbio_metadata(first)["preprocess"]["steps"], TORCHVISION_CHAIN)
            proc = run_cli(first, "-o", again)  # a softbio file's own chain is kept
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(safetensors_io.read_softbio_metadata(again)["preprocess"]["steps"], TORCHVISION_CHAIN)
        finally:
            shutil.rmtree(tmp)

    def test_compare_preprocesses_as_torchvision(self):
        from PIL import Image
        from weights_converter import compare
        rng = np.random.default_rng(3)
        img = Image.fromarray(rng.integers(0, 256, (257, 333, 3), dtype=np.uint8), "RGB")
        T = torchvision.transforms
        ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        np.testing.assert_array_equal(compare.preprocess_image(img, TORCHVISION_CHAIN), ref(img).numpy())
        ref = T.Compose([T.Resize(100, max_size=120), T.ToTensor()])
        got = compare.preprocess_image(img, [layouts.parse_preprocess("resize_shorter:100:max=120")[0],
                                             {"op": "to_tensor"}])
        np.testing.assert_array_equal(got, ref(img).numpy())


IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@needs_torch
class PresetContradictionTest(unittest.TestCase):
    """Item 10: a preset whose head type or input size contradicts the tensors is refused,
    naming both."""

    def refused(self, state, *argv):
        with self.assertRaises(layouts.LayoutError) as ctx:
            layouts.build(state, options(*argv))
        return str(ctx.exception)

    def test_celeba_on_a_coral_cnn_checkpoint(self):
        import reference_models as R
        torch.manual_seed(0)
        msg = self.refused(numpy_state(R.CoralCnnResNet34(26, 2020, "coral")), "--preset", "celeba")
        for fragment in ("preset celeba describes a 2-class softmax head 'gender' (female/male) on 128x128 inputs",
                         "CORAL head with K = 26 ranks (fc.weight [1,512] + linear_1_bias [25])",
                         "--preset afad, morph2, cacd or utkface",
                         "coral-cnn 2020 layout, published at 120x120 with resize 128x128 -> center_crop 120x120",
                         "--preprocess center_crop:178,resize:128,to_tensor --input-size 128"):
            self.assertIn(fragment, msg)
        msg = self.refused(numpy_state(R.CoralPytorchResNet34(49)), "--preset", "celeba")
        self.assertIn("CORAL head with K = 49 ranks (fc.coral_weights.weight [1,512] + fc.coral_bias [48])", msg)

    def test_celeba_on_heads_that_are_not_a_two_class_softmax(self):
        import reference_models as R
        self.assertIn("has 1000 outputs (fc.weight [1000,512] + fc.bias [1000]), not 2",
                      self.refused(resnet18_state(), "--preset", "celeba"))
        notebook = numpy_state(R.NotebookResNet(*R.notebook_spec(18)))
        self.assertIn("is read as a corn head", self.refused(notebook, "--preset", "celeba", "--head-type", "corn"))
        self.assertIn("is given K = 3", self.refused(notebook, "--preset", "celeba", "--num-classes", "3"))
        # Multi-head: the head named like the preset's is checked.
        multi = numpy_state(R.MultiHeadResNet101(26))
        msg = self.refused(multi, "--preset", "celeba", "--head", "gender=fc_age", "--head", "age=fc_gender")
        self.assertIn("--head gender=fc_age: preset celeba describes a 2-class softmax head", msg)
        self.assertIn("CORAL head with K = 26 ranks", msg)
        # ... and the right assignment still converts.
        c = layouts.build(multi, options("--preset", "celeba", "--head", "gender=fc_gender",
                                         "--head", "age=fc_age,offset=15"))
        self.assertEqual([h["type"] for h in c.document["heads"]], ["softmax", "coral"])

    def test_input_size_other_than_the_published_one(self):
        import reference_models as R
        torch.manual_seed(0)
        coral = numpy_state(R.CoralCnnResNet34(26, 2020, "coral"))
        msg = self.refused(coral, "--preset", "torchvision")
        for fragment in ("preset torchvision sets the input to 224x224", "coral-cnn 2020 model",
                         "fc.weight [1,512] + linear_1_bias", "published at 120x120"):
            self.assertIn(fragment, msg)
        # The pooled feature width: an AvgPool2d(7,1,2) notebook net has F = 4 x C4 only at 97..128 px.
        notebook = numpy_state(R.NotebookResNet(*R.notebook_spec(18)))
        msg = self.refused(notebook, "--preset", "torchvision", "--head-type", "softmax")
        self.assertIn("Raschka CelebA notebook model", msg)
        self.assertIn("published at 128x128", msg)
        three = numpy_state(R.NotebookResNet(*R.notebook_spec(18), num_classes=3))  # not a published layout
        msg = self.refused(three, "--preset", "torchvision", "--head-type", "softmax")
        self.assertIn("the heads read F = 2048 features, but AvgPool2d(7, stride 1, padding 2) on the 7x7 layer4 map", msg)
        self.assertIn("input size: preset torchvision", msg)
        # The age presets' K is the tensors' K.
        self.assertIn("K = 26, but preset morph2 says K = 55", self.refused(coral, "--preset", "morph2"))
        self.assertIn("(K from preset afad)", self.refused(resnet18_state(), "--preset", "afad"))

    def test_cli_refuses_with_exit_1(self):
        import reference_models as R
        tmp = tempfile.mkdtemp()
        try:
            p = os.path.join(tmp, "best_model.pt")
            torch.save(R.CoralCnnResNet34(26, 2020, "coral").state_dict(), p)
            proc = run_cli(p, "--preset", "celeba", "-o", os.path.join(tmp, "x.st"))
            self.assertEqual(proc.returncode, 1, proc.stdout)
            self.assertIn("preset celeba describes a 2-class softmax head 'gender'", proc.stderr)
            self.assertFalse(os.path.exists(os.path.join(tmp, "x.st")))
        finally:
            shutil.rmtree(tmp)


@needs_torch
class PublishedPipelineTest(unittest.TestCase):
    """Item 11: without a preset, a layout that determines its published preprocessing
    gets it; any other checkpoint is refused with the choices."""

    def build(self, state, *argv):
        return layouts.build(state, options(*argv))

    def test_coral_cnn_without_a_preset(self):
        import reference_models as R
        torch.manual_seed(0)
        for generation, k in ((2020, 26), (2019, 40)):
            with self.subTest(generation=generation):
                c = self.build(numpy_state(R.CoralCnnResNet34(k, generation, "coral")))
                self.assertEqual(c.layout, f"coral-cnn-{generation}")
                self.assertEqual(c.document["model"]["input_size"], [120, 120])
                self.assertEqual(c.document["preprocess"]["steps"], CORAL_CNN_CHAIN)
                self.assertIn("docs/MODELS.md 2.6", c.steps_why)
        c = self.build(numpy_state(R.CoralCnnResNet34(26, 2020, "orcnn")), "--head-type", "orcnn")
        self.assertEqual(c.document["preprocess"]["steps"], CORAL_CNN_CHAIN)
        # A preset still decides (MORPH-2's own evaluation chain crops 140 first).
        c = self.build(numpy_state(R.CoralCnnResNet34(55, 2020, "coral")), "--preset", "morph2")
        self.assertEqual(c.document["preprocess"]["steps"][0], {"op": "center_crop", "size": [140, 140]})

    def test_corn_and_notebook_without_a_preset(self):
        import reference_models as R
        torch.manual_seed(0)
        c = self.build(numpy_state(R.CornResNet34(26)), "--head-type", "corn")
        self.assertEqual(c.document["preprocess"]["steps"],
                         [{"op": "center_crop", "size": [140, 140]}, {"op": "resize", "size": [128, 128],
                          "filter": "bilinear"}, {"op": "center_crop", "size": [120, 120]}, {"op": "to_tensor"}])
        c = self.build(numpy_state(R.NotebookResNet(*R.notebook_spec(18))), "--head-type", "softmax")
        self.assertEqual(c.document["model"]["input_size"], [128, 128])
        self.assertEqual(c.document["preprocess"]["steps"], [
            {"op": "center_crop", "size": [178, 178]}, {"op": "resize", "size": [128, 128], "filter": "bilinear"},
            {"op": "to_tensor"}])

    def test_no_published_chain_is_refused_with_the_choices(self):
        import reference_models as R
        torch.manual_seed(0)
        for state, argv, what in ((numpy_state(R.CoralPytorchResNet34(49)), (), "coral-pytorch CoralLayer head 'fc'"),
                                  (finetuned_resnet18_state(), ("--head-type", "softmax"), "ResNet with a linear head"),
                                  (numpy_state(R.MultiHeadResNet101(26)),
                                   ("--head", "gender=fc_gender,type=softmax", "--head", "age=fc_age"), "2 heads")):
            with self.subTest(what=what):
                with self.assertRaises(layouts.LayoutError) as ctx:
                    self.build(state, *argv)
                msg = str(ctx.exception)
                self.assertIn("cannot tell the input size and preprocessing of this checkpoint", msg)
                self.assertIn(what, msg)
                for preset in layouts.PRESETS:
                    self.assertIn(f"--preset {preset}", msg)
                self.assertIn("--preprocess STEPS", msg)
        # Flags settle it: --preprocess alone gives the input size.
        c = self.build(numpy_state(R.CoralPytorchResNet34(49)), "--preprocess", "resize:128,center_crop:120,to_tensor")
        self.assertEqual(c.document["model"]["input_size"], [120, 120])

    def test_input_size_without_its_preprocessing_is_refused(self):
        import reference_models as R
        torch.manual_seed(0)
        for state, size, published in ((numpy_state(R.CoralCnnResNet34(26, 2020, "coral")), "128", "120x120"),
                                       (resnet18_state(), "160", "224x224")):
            with self.assertRaises(layouts.LayoutError) as ctx:
                self.build(state, "--input-size", size)
            msg = str(ctx.exception)
            self.assertIn(f"--input-size {size}x{size}", msg)
            self.assertIn(f"was published at {published}", msg)
            self.assertIn("will not guess", msg)
        c = self.build(resnet18_state(), "--input-size", "160", "--preprocess",
                       "resize_shorter:182,center_crop:160,to_tensor", "--normalize", "imagenet")
        self.assertEqual(c.document["model"]["input_size"], [160, 160])


# ----------------------------------------------------------------------------------
# 4. Output file and command line
# ----------------------------------------------------------------------------------

class SafetensorsWriterTest(TempDirTest):
    def test_alignment_and_round_trip(self):
        tensors = [("a", np.arange(3, dtype=np.float32)), ("b", np.ones((5, 7), np.float32)),
                   ("c", np.zeros((0,), np.float32)), ("d", np.full((2, 2), -1.5, np.float32))]
        p = self.path("t.safetensors")
        size = safetensors_io.write_softbio_file(p, tensors, {"format_version": 1})
        self.assertEqual(size, os.path.getsize(p))
        with open(p, "rb") as f:
            blob = f.read()
        (n,) = struct.unpack("<Q", blob[:8])
        self.assertEqual((8 + n) % 64, 0)
        header = json.loads(blob[8:8 + n])
        self.assertEqual(list(header)[0], "__metadata__")
        self.assertEqual(set(header["__metadata__"]), {"softbio"})
        self.assertIsInstance(header["__metadata__"]["softbio"], str)
        for name, array in tensors:
            entry = header[name]
            self.assertEqual(entry["dtype"], "F32")
            self.assertEqual(entry["data_offsets"][0] % 64, 0)
            self.assertEqual(entry["data_offsets"][1] - entry["data_offsets"][0], array.nbytes)
        back, meta = safetensors_io.read_safetensors(p)
        for name, array in tensors:
            np.testing.assert_array_equal(back[name], array)
        self.assertEqual(json.loads(meta["softbio"]), {"format_version": 1})

    def test_refuses_non_f32_and_non_finite(self):
        with self.assertRaisesRegex(safetensors_io.SafetensorsError, "float32 only"):
            safetensors_io.write_safetensors(self.path("x"), [("a", np.zeros(3, np.float64))])
        with self.assertRaisesRegex(safetensors_io.SafetensorsError, "tensor a: holds a non-finite value"):
            safetensors_io.write_safetensors(self.path("x"), [("a", np.array([1, np.nan], np.float32))])

    def test_reader_rejects_corrupt_files(self):
        p = self.path("t.safetensors")
        safetensors_io.write_safetensors(p, [("a", np.ones(16, np.float32))])
        with open(p, "rb") as f:
            blob = f.read()
        self.write("trunc.safetensors", blob[:-8])
        with self.assertRaises(safetensors_io.SafetensorsError):
            safetensors_io.read_safetensors(self.path("trunc.safetensors"))


@needs_torch
class CommandLineTest(TempDirTest):
    def save_coral(self, **kw):
        import reference_models as R
        torch.manual_seed(1)
        model = R.CoralCnnResNet34(26, 2020, "coral")
        p = self.path("best_model.pt")
        torch.save(model.state_dict(), p, **kw)
        return model, p

    def test_convert_coral_cnn(self):
        model, p = self.save_coral()
        proc = run_cli(p, "--preset", "afad")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = self.path("best_model.safetensors")
        for fragment in ("coral-cnn-2020", "ResNet-34", "parameters   21,285,", "age: coral, K=26",
                         "value = label + 15", "resize 128x128 -> center_crop 120x120 -> to_tensor", "wrote"):
            self.assertIn(fragment, proc.stdout)
        self.assertLessEqual(len(proc.stdout.splitlines()), 24)  # one screen
        tensors, meta = safetensors_io.read_safetensors(out)
        doc = json.loads(meta["softbio"])
        self.assertEqual(doc["format_version"], 1)
        self.assertIs(doc["trained"], True)
        self.assertEqual(doc["model"]["pool"], {"type": "avg", "kernel": 4, "stride": 4, "padding": 0})
        self.assertEqual(doc["heads"], [{"name": "age", "type": "coral", "num_classes": 26, "label_offset": 15}])
        self.assertEqual(doc["preprocess"]["steps"], [
            {"op": "resize", "size": [128, 128], "filter": "bilinear"},
            {"op": "center_crop", "size": [120, 120]}, {"op": "to_tensor"}])
        sd = model.state_dict()
        np.testing.assert_array_equal(tensors["head.age.weight"], sd["fc.weight"].numpy())
        np.testing.assert_array_equal(tensors["head.age.bias"], sd["linear_1_bias"].numpy())
        np.testing.assert_array_equal(tensors["layer3.4.conv2.weight"], sd["layer3.4.conv2.weight"].numpy())
        self.assertNotIn("fc.weight", tensors)
        self.assertEqual(list(tensors)[:2], ["conv1.weight", "bn1.weight"])

    def test_untrained_dry_run_and_output_guard(self):
        _, p = self.save_coral()
        proc = run_cli(p, "--preset", "afad", "--untrained", "-o", self.path("u.safetensors"), "-q")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertIs(safetensors_io.read_softbio_metadata(self.path("u.safetensors"))["trained"], False)
        proc = run_cli(p, "--preset", "afad", "--dry-run", "-o", self.path("d.safetensors"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse(os.path.exists(self.path("d.safetensors")))
        self.assertIn("dry run", proc.stdout)

    def test_safetensors_input_and_reconversion(self):
        _, p = self.save_coral()
        first = self.path("first.safetensors")
        self.assertEqual(run_cli(p, "--preset", "afad", "-o", first).returncode, 0)
        # A softbio file converts again; its metadata is the default for every flag.
        proc = run_cli(first, "-o", self.path("again.st"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        a, meta_a = safetensors_io.read_safetensors(first)
        b, meta_b = safetensors_io.read_safetensors(self.path("again.st"))
        self.assertEqual(list(a), list(b))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        doc_a, doc_b = json.loads(meta_a["softbio"]), json.loads(meta_b["softbio"])
        for doc in (doc_a, doc_b):
            doc.pop("source", None)
        self.assertEqual(doc_a, doc_b)
        # ... and flags still override it.
        proc = run_cli(first, "--untrained", "-o", self.path("u.st"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIs(safetensors_io.read_softbio_metadata(self.path("u.st"))["trained"], False)
        # A plain safetensors state_dict (no metadata) is an input like any other.
        plain = self.path("plain.safetensors")
        import reference_models as R
        sd = R.CoralCnnResNet34(26, 2020, "coral").state_dict()
        safetensors_io.write_safetensors(plain, [(k, v.numpy()) for k, v in sd.items() if v.dtype == torch.float32])
        proc = run_cli(plain, "--preset", "afad", "-o", self.path("p.st"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("coral-cnn-2020", proc.stdout)

    def test_legacy_format_via_cli(self):
        _, p = self.save_coral(_use_new_zipfile_serialization=False)
        proc = run_cli(p, "--preset", "afad", "-o", self.path("l.safetensors"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("legacy torch.save format", proc.stdout)

    def test_errors_exit_1_with_the_tensor_name(self):
        import reference_models as R
        sd = R.CoralCnnResNet34(26, 2020, "coral").state_dict()
        sd["layer3.4.conv2.weight"] = torch.zeros(256, 256, 1, 1)
        p = self.path("bad.pt")
        torch.save(sd, p)
        proc = run_cli(p, "--preset", "afad")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("tensor layer3.4.conv2.weight: expected [256,256,3,3], checkpoint has [256,256,1,1]",
                      proc.stderr)


class HelpAndEnvironmentTest(TempDirTest):
    def test_help_documents_every_flag(self):
        proc = run_cli("--help")
        self.assertEqual(proc.returncode, 0)
        parser = convert.build_parser()
        for action in parser._actions:
            for flag in action.option_strings:
                self.assertIn(flag, proc.stdout, f"{flag} missing from --help")
            if action.option_strings and action.dest != "help":
                self.assertTrue(action.help and len(action.help) > 10, f"{action.option_strings} has no help text")
        for preset in layouts.PRESETS:
            self.assertIn(preset, proc.stdout)
        for words in ("Exit status", "--head NAME[=PREFIX]", "stride convention", "Recognised layouts"):
            self.assertIn(words, proc.stdout)

    def test_usage_error_exits_2(self):
        self.assertEqual(run_cli().returncode, 2)
        self.assertEqual(run_cli("x.pt", "--preset", "imagenet").returncode, 2)

    def test_numpy_missing_message(self):
        # Simulated: numpy made unimportable before convert.py runs.
        code = ("import sys, runpy; sys.modules['numpy'] = None; "
                f"sys.argv = [{CONVERT!r}, 'x.pt']; runpy.run_path({CONVERT!r}, run_name='__main__')")
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("softbio-convert needs numpy: apt-get install python3-numpy", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)

    def test_numpy_missing_with_a_python_without_numpy(self):
        # The real thing, where this machine has such an interpreter (e.g. a bare pyenv build).
        for python in ("/root/.pyenv/shims/python3", shutil.which("python3")):
            if not python or not os.path.exists(python) or os.path.realpath(python) == os.path.realpath(sys.executable):
                continue
            probe = subprocess.run([python, "-c", "import numpy"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if probe.returncode == 0:
                continue
            proc = run_cli("x.pt", python=python)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn("softbio-convert needs numpy", proc.stderr)
            self.assertNotIn("Traceback", proc.stderr)
            return
        self.skipTest("no python3 without numpy on this machine")

    def test_compare_says_when_torch_is_missing(self):
        compare = os.path.join(REPO, "weights_converter", "compare.py")
        code = ("import sys, runpy; sys.modules['torch'] = None; "
                f"sys.argv = [{compare!r}, 'x.pt', '--dump-tool', 'softbio-dump']; "
                f"runpy.run_path({compare!r}, run_name='__main__')")
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("softbio-compare needs PyTorch", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        proc = subprocess.run([sys.executable, compare, "--help"], stdout=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 0)
        for flag in ("--dump-tool", "--input", "--random", "--torch-model", "--preset", "--head"):
            self.assertIn(flag, proc.stdout)

    def test_no_torch_import_on_the_conversion_path(self):
        if not HAVE_TORCH:
            self.skipTest("needs torch to write a checkpoint")
        p = self.path("r18.pt")
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), p)
        code = ("import sys, runpy\n"
                "class Block:\n"
                "    def find_spec(self, name, path=None, target=None):\n"
                "        if name == 'torch' or name.startswith('torch.'): raise ImportError('torch is blocked')\n"
                "sys.meta_path.insert(0, Block())\n"
                f"sys.argv = [{CONVERT!r}, {p!r}, '-o', {self.path('o.st')!r}]\n"
                f"runpy.run_path({CONVERT!r}, run_name='__main__')\n")
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.exists(self.path("o.st")))

    def test_every_module_starts_with_a_header_comment(self):
        folder = os.path.join(REPO, "weights_converter")
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    lines = [line for line in f.read().splitlines() if not line.startswith("#!")]
                self.assertTrue(lines[0].startswith(f"# weights_converter/{name}") or
                                lines[0].startswith("# weights_converter"), name)

    def test_pyproject_declares_the_console_script(self):
        path = os.path.join(REPO, "weights_converter", "pyproject.toml")
        with open(path) as f:
            text = f.read()
        self.assertIn('softbio-convert = "weights_converter.convert:main"', text)
        try:
            import tomllib
        except ImportError:
            return
        with open(path, "rb") as f:
            data = tomllib.load(f)
        self.assertEqual(data["project"]["scripts"]["softbio-convert"], "weights_converter.convert:main")


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
# tests/python/test_unpickler_mutations.py — the converter's checkpoint reader against
# mutated PyTorch checkpoints (hypothesis), ctest label converter.
#
#   /usr/bin/python3 tests/python/test_unpickler_mutations.py [-v]
#   SOFTBIO_HYPOTHESIS_EXAMPLES=5000 SOFTBIO_HYPOTHESIS_RANDOM=1 ... (a longer, random run)
#
# Seeds: the real torch.save files in tests/fuzz/corpus/checkpoints (zip and legacy
# formats, a whole pickled model, a training checkpoint with float16/bfloat16 tensors,
# numpy scalars and a strided view; written by tests/fuzz/make_checkpoint_seeds.py).
# Mutations, drawn by hypothesis:
#   * bytes of the whole file: flips, overwrites with interesting values, insertions,
#     deletions, truncation, duplicated ranges;
#   * one zip member's bytes (the archive rebuilt with valid CRCs, so the pickle or the
#     storage behind the zip layer sees the damage);
#   * the zip structure: members dropped, renamed, duplicated or added (TorchScript
#     records, a byteorder record), members compressed (deflate, bzip2, lzma);
#   * the pickles, opcode by opcode: deleted, duplicated, swapped, replaced by other
#     opcodes, integer and string arguments replaced (sizes, strides, offsets, element
#     counts, storage keys, dtype names, dict keys);
#   * globals replaced by ones that could run code (os.system, builtins.eval,
#     subprocess.Popen, ...) or by unknown ones.
# Every mutant is fed to torch_reader.load_checkpoint and, when it loads, to
# extract_state_dict. The oracle:
#   * each either succeeds or raises torch_reader.CheckpointError (UnsafeCheckpointError
#     is a subclass); any other exception fails the test (hypothesis then shows the
#     smallest mutation that does it);
#   * a global from a module that can run code is refused with UnsafeCheckpointError;
#   * nothing is executed or imported: a sys.addaudithook hook records, while the reader
#     runs, process creation (os.system, subprocess.Popen, os.exec*, os.spawn*, fork),
#     exec/compile, module imports, files opened for writing, sockets, ctypes; any such
#     event fails the test;
#   * no hang: a watchdog (faulthandler) ends the process with a traceback when one
#     mutant takes longer than SOFTBIO_HYPOTHESIS_HANG_SECONDS (default 60);
#   * no memory blow-up kills the process: the address space is limited to 4 GiB, so a
#     mutant that asks for more must end in MemoryError, which the reader reports as a
#     CheckpointError.
# Runs are derandomized (the same examples every time: a CI failure reproduces) unless
# SOFTBIO_HYPOTHESIS_RANDOM=1. Needs numpy and hypothesis (python3-hypothesis); without
# them: "skipped: hypothesis not available" (exit 77, tests/python/needs.py). Does not
# need PyTorch.
import collections
import faulthandler
import glob
import io
import os
import pickletools
import struct
import sys
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import needs  # noqa: E402

needs.require("numpy", "hypothesis")  # else: "skipped: ... not available", exit 77

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from weights_converter import torch_reader  # noqa: E402

# Modules the reader or zipfile may load lazily are loaded now, so that an import seen
# while the reader runs is one the checkpoint caused.
import bz2  # noqa: E402,F401
import lzma  # noqa: E402,F401
import zlib  # noqa: E402,F401
import encodings.ascii  # noqa: E402,F401
import encodings.cp437  # noqa: E402,F401  (zipfile: member names without the UTF-8 flag)
import encodings.latin_1  # noqa: E402,F401
import encodings.utf_8  # noqa: E402,F401
import numpy  # noqa: E402
import numpy.core.multiarray  # noqa: E402,F401
import encodings  # noqa: E402

SEED_DIR = os.path.join(REPO, "tests", "fuzz", "corpus", "checkpoints")
SEED_PATHS = sorted(glob.glob(os.path.join(SEED_DIR, "*.pt")))
SEEDS = {os.path.basename(p): open(p, "rb").read() for p in SEED_PATHS}
ZIP_SEEDS = sorted(n for n, b in SEEDS.items() if b[:4] == b"PK\x03\x04")
LEGACY_SEEDS = sorted(n for n, b in SEEDS.items() if b[:1] == b"\x80")

EXAMPLES = int(os.environ.get("SOFTBIO_HYPOTHESIS_EXAMPLES", "500"))
RANDOM = os.environ.get("SOFTBIO_HYPOTHESIS_RANDOM") == "1"
HANG_SECONDS = float(os.environ.get("SOFTBIO_HYPOTHESIS_HANG_SECONDS", "60"))

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], print_blob=True)


# ----------------------------------------------------------------------------------
# The oracle
# ----------------------------------------------------------------------------------

# Audit events that mean the checkpoint made something happen (sys.addaudithook).
_FORBIDDEN_EVENTS = ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill",
                     "os.killpg", "subprocess.Popen", "pty.spawn", "exec", "compile", "import", "ctypes.",
                     "socket.", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
                     "os.truncate", "os.chmod", "os.chown", "os.putenv", "os.unsetenv", "shutil.",
                     "webbrowser.open", "builtins.input", "code.__new__", "function.__new__", "sys.settrace",
                     "sys.setprofile", "os.startfile", "os.listdir", "os.scandir", "glob.glob")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class _Audit:
    """Records forbidden audit events while armed (hooks cannot be removed: it stays
    installed, idle, for the rest of the process)."""

    def __init__(self):
        self.armed = False
        self.events = []
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if not self.armed:
            return
        if event == "import":
            name = str(args[0]) if args else ""
            # numpy loading one of its own modules, or a codec: not the checkpoint's doing.
            if name.startswith(("numpy", "encodings")):
                return
            self.events.append(f"import {name}")
            return
        if event == "open":
            mode = args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 else 0
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                     (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes:
                self.events.append(f"open {args[0]!r} for writing ({mode!r}, flags {flags})")
            return
        if event == "exec" and args and _loads_allowed_module(args[0]):
            return  # the body of a module an allowed import loads
        if event.startswith(_FORBIDDEN_EVENTS):
            self.events.append(f"{event} {args!r:.200}")


_ALLOWED_MODULE_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (numpy, encodings))


def _loads_allowed_module(code):
    filename = getattr(code, "co_filename", "")
    return getattr(code, "co_name", "") == "<module>" and filename.startswith(_ALLOWED_MODULE_DIRS)


AUDIT = _Audit()

WORKDIR = tempfile.mkdtemp(prefix="softbio-unpickler-")
MUTANT = os.path.join(WORKDIR, "mutant.pt")


def feed(blob):
    """Give `blob` to the reader as a checkpoint file. Returns "read" (a state dict came
    out), "no state dict" (loaded, but extract_state_dict refused it), or the
    CheckpointError class it was refused with. Any other exception propagates."""
    with open(MUTANT, "wb") as f:
        f.write(blob)
    AUDIT.events = []
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    AUDIT.armed = True
    stage = "load_checkpoint"
    try:
        try:
            obj = torch_reader.load_checkpoint(MUTANT)
        except torch_reader.CheckpointError as e:
            return type(e)
        stage = "extract_state_dict"
        try:
            torch_reader.extract_state_dict(obj)
        except torch_reader.CheckpointError:
            return "no state dict"
        return "read"
    except Exception as e:
        raise AssertionError(f"{type(e).__name__} escaped from torch_reader.{stage}: {e}") from e
    finally:
        AUDIT.armed = False
        faulthandler.cancel_dump_traceback_later()
        if AUDIT.events:
            raise AssertionError("the checkpoint made the reader do something: " + "; ".join(AUDIT.events))


# ----------------------------------------------------------------------------------
# Mutation helpers
# ----------------------------------------------------------------------------------

INTERESTING_BYTES = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                     b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff" * 8, b"\x00" * 8, b".", b"R", b"(", b"c",
                     b"\x80\x02", b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"]

byte_mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.sampled_from(INTERESTING_BYTES)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.integers(1, 64)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("duplicate"), st.floats(0, 1, exclude_max=True), st.integers(1, 64)),
)


def mutate_bytes(data, mutations):
    b = bytearray(data)
    for kind, where, arg in mutations:
        if not b and kind != "insert":
            continue
        at = min(int(where * len(b)), max(len(b) - 1, 0))
        if kind == "flip":
            b[at] ^= 1 << arg
        elif kind == "set":
            b[at:at + len(arg)] = arg
        elif kind == "insert":
            at = int(where * len(b))
            b[at:at] = arg
        elif kind == "delete":
            del b[at:at + arg]
        elif kind == "truncate":
            del b[int(where * len(b)):]
        elif kind == "duplicate":
            b[at:at] = b[at:at + arg]
    return bytes(b)


def read_members(blob):
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(members, compression=None):
    """A fresh archive (valid CRCs); `compression`: {name: zipfile.ZIP_*} for some members."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = (compression or {}).get(name, zipfile.ZIP_STORED)
            z.writestr(info, data)
    return out.getvalue()


def pickle_spans(data, start=0):
    """The opcodes of the pickle starting at `start`: [(opcode, arg, begin, end)] and the
    offset after its STOP."""
    ops = []
    stream = io.BytesIO(data)
    stream.seek(start)
    items = list(pickletools.genops(stream))
    for i, (op, arg, pos) in enumerate(items):
        end = items[i + 1][2] if i + 1 < len(items) else stream.tell()
        ops.append((op, arg, pos, end))
    return ops, stream.tell()


# Opcodes a mutation may put in place of another (raw encodings; protocol 2).
REPLACEMENT_OPS = [b"}", b"]", b")", b"N", b"\x88", b"\x89", b"K\xff", b"K\x00", b"J\xff\xff\xff\xff",
                   b"J\xff\xff\xff\x7f", b"\x8a\x09" + b"\xff" * 8 + b"\x7f", b"\x8a\x01\x80", b"R", b"b", b"0",
                   b"2", b"1", b"q\x00", b"h\x00", b"h\xff", b"(", b"t", b"u", b"s", b"e", b"a", b"\x81", b"\x85",
                   b"\x86", b"\x87", b".", b"Q", b"G\x7f\xf0\x00\x00\x00\x00\x00\x00", b"X\x00\x00\x00\x00",
                   b"X\xff\xff\xff\x7f", b"\x8c\x05hello", b"C\x03abc", b"cbuiltins\nset\n",
                   b"ccollections\nOrderedDict\n", b"ctorch\nFloatStorage\n", b"ctorch._utils\n_rebuild_tensor_v2\n"]

INTERESTING_INTS = [0, 1, -1, 2, 3, 255, 256, 65535, 2 ** 31 - 1, 2 ** 31, -2 ** 31, 2 ** 32, 2 ** 62,
                    2 ** 63 - 1, 2 ** 63, 2 ** 64, -2 ** 63, 10 ** 30]
INTERESTING_STRINGS = ["", "0", "1", "99", "cpu", "cuda:0", "FloatStorage", "HalfStorage", "state_dict", "model",
                       "module.", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
                       "weight", "storage", "module", "../../../etc/passwd", "data.pkl", "\x00", "é", "x" * 300]


def encode_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -2 ** 31 <= v < 2 ** 31:
        return b"J" + struct.pack("<i", v)
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def encode_str(s):
    raw = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


op_mutation = st.one_of(
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.just(None)),
    st.tuples(st.just("duplicate"), st.floats(0, 1, exclude_max=True), st.just(None)),
    st.tuples(st.just("swap"), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("replace"), st.floats(0, 1, exclude_max=True), st.sampled_from(REPLACEMENT_OPS)),
    st.tuples(st.just("int"), st.floats(0, 1, exclude_max=True),
              st.one_of(st.sampled_from(INTERESTING_INTS), st.integers(-2 ** 70, 2 ** 70))),
    st.tuples(st.just("str"), st.floats(0, 1, exclude_max=True),
              st.one_of(st.sampled_from(INTERESTING_STRINGS), st.text(max_size=12))),
)

INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}
STR_OPS = {"BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING"}


def mutate_pickle(data, start, mutations):
    """`data` with the pickle at `start` mutated opcode by opcode (the bytes after it kept)."""
    ops, end = pickle_spans(data, start)
    pieces = [data[b:e] for _, _, b, e in ops]
    names = [op.name for op, _, _, _ in ops]
    for kind, where, arg in mutations:
        if not pieces:
            break
        i = int(where * len(pieces))
        if kind == "delete":
            del pieces[i], names[i]
        elif kind == "duplicate":
            pieces.insert(i, pieces[i])
            names.insert(i, names[i])
        elif kind == "swap":
            j = int(arg * len(pieces))
            pieces[i], pieces[j] = pieces[j], pieces[i]
            names[i], names[j] = names[j], names[i]
        elif kind == "replace":
            pieces[i] = arg
            names[i] = "?"
        elif kind in ("int", "str"):
            wanted = INT_OPS if kind == "int" else STR_OPS
            hits = [k for k, n in enumerate(names) if n in wanted]
            if hits:
                k = hits[i % len(hits)]
                pieces[k] = encode_int(arg) if kind == "int" else encode_str(arg)
    return data[:start] + b"".join(pieces) + data[end:]


def pickle_starts(blob):
    """Offsets of the pickles in a legacy file (magic, protocol, sys info, object, keys)."""
    starts, at = [], 0
    while at < len(blob) and len(starts) < 5:
        starts.append(at)
        try:
            _, at = pickle_spans(blob, at)
        except Exception:  # pickletools on the storage bytes after the last pickle
            break
    return starts


DANGEROUS = [("os", "system"), ("posix", "system"), ("nt", "system"), ("builtins", "eval"), ("builtins", "exec"),
             ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "open"), ("__builtin__", "eval"),
             ("subprocess", "Popen"), ("subprocess", "check_output"), ("sys", "exit"), ("importlib", "import_module"),
             ("runpy", "run_path"), ("pickle", "loads"), ("_pickle", "loads"), ("marshal", "loads"),
             ("ctypes", "CDLL"), ("types", "FunctionType"), ("functools", "partial"), ("operator", "attrgetter"),
             ("io", "open"), ("shutil", "rmtree"), ("socket", "create_connection"), ("pty", "spawn"),
             ("torch.hub", "load"), ("torch.jit", "load"), ("torch.serialization", "load"), ("torch._C", "_jit"),
             ("torch.package", "PackageImporter"), ("os.path", "join"), ("code", "interact")]
HARMLESS_UNKNOWN = [("evil", "run"), ("numpy.testing._private.utils", "runstring"), ("numpy", "load"),
                    ("torch", "load"), ("collections", "namedtuple"), ("copyreg", "__newobj__"),
                    ("pydoc", "locate"), ("torch._utils", "_rebuild_qtensor"), ("torch.nn", "Module")]


def replace_global(data, start, which, module, name):
    """`data` with the which-th GLOBAL of the pickle at `start` naming module.name."""
    ops, end = pickle_spans(data, start)
    globals_ = [k for k, (op, _, _, _) in enumerate(ops) if op.name == "GLOBAL"]
    if not globals_:
        return None
    k = globals_[which % len(globals_)]
    pieces = [data[b:e] for _, _, b, e in ops]
    pieces[k] = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    return data[:start] + b"".join(pieces) + data[end:]


def object_pickle(name):
    """(blob, start of the pickle holding the saved object, rebuild(new_pickle_blob)) for
    a seed: the zip's data.pkl, or the legacy file's fourth pickle."""
    blob = SEEDS[name]
    if name in ZIP_SEEDS:
        members = read_members(blob)
        k = next(i for i, (n, _) in enumerate(members) if n.endswith("/data.pkl"))

        def rebuild(pkl):
            return write_zip(members[:k] + [(members[k][0], pkl)] + members[k + 1:])
        return members[k][1], 0, rebuild
    return blob, pickle_starts(blob)[3], lambda b: b


# ----------------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------------

class SeedsTest(unittest.TestCase):
    def test_seeds_are_there_and_read(self):
        self.assertGreaterEqual(len(ZIP_SEEDS), 3, SEED_DIR)
        self.assertGreaterEqual(len(LEGACY_SEEDS), 1, SEED_DIR)
        for name, blob in SEEDS.items():
            self.assertEqual(feed(blob), "read", name)

    def test_rebuilt_zip_still_reads(self):
        # The rebuilding the mutations use changes nothing by itself.
        for name in ZIP_SEEDS:
            self.assertEqual(feed(write_zip(read_members(SEEDS[name]))), "read", name)
            blob, start, rebuild = object_pickle(name)
            self.assertEqual(feed(rebuild(mutate_pickle(blob, start, []))), "read", name)

    def test_the_audit_hook_sees_what_it_must(self):
        AUDIT.events = []
        AUDIT.armed = True
        try:
            compile("1", "<probe>", "eval")
        finally:
            AUDIT.armed = False
        self.assertTrue(any(e.startswith("compile") for e in AUDIT.events), AUDIT.events)
        AUDIT.events = []


class FoundEscapesTest(unittest.TestCase):
    """Each kind of exception the mutations once got out of torch_reader (other than
    CheckpointError), rebuilt by hand so that it is tested on every run, not only when the
    random search happens on it again."""

    def test_opcode_length_over_2_63(self):  # OverflowError from the unpickler
        blob = b"\x80\x04\x8d" + (2**63 + 5).to_bytes(8, "little") + b"abc."  # BINUNICODE8
        self.assertEqual(feed(blob), torch_reader.CheckpointError)

    def test_zip_member_before_the_file_start(self):  # OSError(EINVAL) from zipfile's seek
        members = read_members(SEEDS[ZIP_SEEDS[0]])
        blob = bytearray(write_zip(members))
        at = 0
        while (at := blob.find(b"PK\x01\x02", at)) >= 0:  # every member's local header offset
            struct.pack_into("<I", blob, at + 42, 0xFFFFFF00)
            at += 4
        self.assertEqual(feed(bytes(blob)), torch_reader.CheckpointError)

    def test_zip_member_encrypted_or_unknown_compression(self):  # NotImplementedError, zipfile
        for offset, value in ((8, 0x0001), (10, 99)):  # flag bit 0 (encrypted); method 99
            blob = bytearray(write_zip(read_members(SEEDS[ZIP_SEEDS[0]])))
            at = 0
            while (at := blob.find(b"PK\x01\x02", at)) >= 0:  # every central directory entry
                struct.pack_into("<H", blob, at + offset, value)
                at += 4
            self.assertEqual(feed(bytes(blob)), torch_reader.CheckpointError, (offset, value))

    def test_module_attributes_of_the_wrong_type(self):  # AttributeError, TypeError
        def module_pickle(attr, value_ops):
            # Linear.__new__(); its __dict__ {attr: value}; the reader never imports torch
            return (b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81}X" + struct.pack("<I", len(attr)) +
                    attr.encode() + value_ops + b"sb.")
        for attr in ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"):
            for value_ops in (b"K\x05", b"]K\x07a"):  # 5, [7]
                with self.subTest(attr=attr, value=value_ops):
                    blob = module_pickle(attr, value_ops)
                    if attr != "_parameters":  # a module is recognised by its _parameters
                        blob = module_pickle("_parameters", b"}")[:-2] + b"X" + struct.pack("<I", len(attr)) + \
                            attr.encode() + value_ops + b"sb."
                    self.assertEqual(feed(blob), "no state dict")


class MutationTest(unittest.TestCase):
    @SETTINGS
    @given(st.sampled_from(sorted(SEEDS)), st.lists(byte_mutation, min_size=1, max_size=8))
    def test_file_bytes(self, name, mutations):
        feed(mutate_bytes(SEEDS[name], mutations))

    @SETTINGS
    @given(st.sampled_from(ZIP_SEEDS), st.integers(0, 100), st.lists(byte_mutation, min_size=1, max_size=6))
    def test_zip_member_bytes(self, name, which, mutations):
        members = read_members(SEEDS[name])
        k = which % len(members)
        if which < 50:  # half the time the pickle itself
            k = next(i for i, (n, _) in enumerate(members) if n.endswith("/data.pkl"))
        members[k] = (members[k][0], mutate_bytes(members[k][1], mutations))
        feed(write_zip(members))

    @SETTINGS
    @given(st.sampled_from(ZIP_SEEDS),
           st.lists(st.tuples(st.sampled_from(["drop", "rename", "duplicate", "add", "compress", "truncate_storage"]),
                              st.integers(0, 1000), st.sampled_from(
                                  ["archive/constants.pkl", "archive/code/x.py", "x/data.pkl", "data.pkl",
                                   "{p}byteorder", "{p}data/99", "{p}version", "{p}data/0", "{p}data.pkl",
                                   "../{p}data.pkl", "{p}data/0/../0"])),
                    min_size=1, max_size=4),
           st.sampled_from([b"little", b"big", b"middle", b"\xff\xfe", b""]))
    def test_zip_structure(self, name, edits, byteorder):
        members = read_members(SEEDS[name])
        prefix = next(n for n, _ in members if n.endswith("/data.pkl"))[:-len("data.pkl")]
        compression = {}
        for kind, which, new_name in edits:
            if not members:
                break
            k = which % len(members)
            new_name = new_name.format(p=prefix)
            if kind == "drop":
                del members[k]
            elif kind == "rename":
                members[k] = (new_name, members[k][1])
            elif kind == "duplicate":
                members.append(members[k])
            elif kind == "add":
                members.append((new_name, byteorder if new_name.endswith("byteorder") else b"\x80\x02K\x01."))
            elif kind == "compress":
                compression[members[k][0]] = [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA][which % 3]
            elif kind == "truncate_storage":
                storages = [i for i, (n, _) in enumerate(members) if "/data/" in n]
                if storages:
                    s = storages[which % len(storages)]
                    members[s] = (members[s][0], members[s][1][:which % max(len(members[s][1]), 1)])
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about duplicate names
            blob = write_zip(members, compression)
        feed(blob)

    @SETTINGS
    @given(st.sampled_from(sorted(SEEDS)), st.lists(op_mutation, min_size=1, max_size=5))
    def test_pickle_opcodes(self, name, mutations):
        blob, start, rebuild = object_pickle(name)
        feed(rebuild(mutate_pickle(blob, start, mutations)))

    @SETTINGS
    @given(st.sampled_from(LEGACY_SEEDS), st.integers(0, 4), st.lists(op_mutation, min_size=1, max_size=4))
    def test_legacy_header_pickles(self, name, which, mutations):
        blob = SEEDS[name]
        starts = pickle_starts(blob)
        feed(mutate_pickle(blob, starts[which % len(starts)], mutations))

    @SETTINGS
    @given(st.sampled_from(sorted(SEEDS)), st.integers(0, 50), st.sampled_from(DANGEROUS))
    def test_dangerous_globals_are_refused(self, name, which, target):
        blob, start, rebuild = object_pickle(name)
        mutant = replace_global(blob, start, which, *target)
        if mutant is None:
            return
        result = feed(rebuild(mutant))
        self.assertTrue(isinstance(result, type) and issubclass(result, torch_reader.UnsafeCheckpointError),
                        f"{target[0]}.{target[1]} in place of global {which} of {name}: {result}")

    @SETTINGS
    @given(st.sampled_from(sorted(SEEDS)), st.integers(0, 50), st.sampled_from(HARMLESS_UNKNOWN),
           st.lists(op_mutation, max_size=3))
    def test_unknown_globals(self, name, which, target, mutations):
        blob, start, rebuild = object_pickle(name)
        mutant = replace_global(blob, start, which, *target)
        if mutant is None:
            return
        feed(rebuild(mutate_pickle(mutant, start, mutations)))


def main():
    import resource
    # A mutant asking for more memory than this gets MemoryError (reported by the reader
    # as a CheckpointError) instead of the whole machine's memory.
    limit = 4 << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        run = unittest.main(verbosity=2 if "-v" in sys.argv else 1, exit=False)
    finally:
        import shutil
        shutil.rmtree(WORKDIR, ignore_errors=True)
    sys.exit(0 if run.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()

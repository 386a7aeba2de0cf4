# weights_converter/torch_reader.py — read PyTorch checkpoints without importing torch.
#
# A .pt/.pth file written by torch.save is a pickle. Unpickling normally *imports and
# calls* whatever the file names, so loading an untrusted checkpoint with pickle (or with
# torch.load) can run arbitrary code. This module never does that. It unpickles with a
# restricted unpickler that:
#
#   * resolves only a short list of globals to harmless implementations of our own:
#     the tensor rebuilders (torch._utils._rebuild_tensor_v2 and friends), the storage
#     types (torch.FloatStorage, torch.storage.UntypedStorage, ...), OrderedDict, set,
#     a few numpy scalar/array constructors and copyreg/_codecs helpers that only build
#     plain data;
#   * refuses outright any global from a module that can run code (os, subprocess,
#     builtins other than set/frozenset/..., sys, importlib, ...), naming it;
#   * maps every other global (typically the classes of a whole pickled model, e.g.
#     torchvision.models.resnet.ResNet or the user's own Net) to an inert placeholder
#     class. Creating a placeholder instance (pickle's NEWOBJ) only stores the pickled
#     attributes; *calling* a placeholder (pickle's REDUCE, i.e. "run this function") is
#     refused with an error naming the global. Nothing from the checkpoint is imported.
#
# Tensors come back as numpy arrays. Storages are read from the zip archive (torch >= 1.6)
# or from the data that follows the pickles in the legacy format (torch < 1.6).
#
# Entry points: load_checkpoint(path) returns the unpickled object (dicts, lists,
# numpy arrays, placeholders); extract_state_dict(obj) finds the name -> array mapping in
# it (a state_dict, a training checkpoint dict wrapping one, or a whole pickled model).
import collections
import fnmatch
import io
import os
import pickle
import struct
import zipfile

import numpy as np


class CheckpointError(Exception):
    """The checkpoint cannot be read (corrupt, unsupported or unexpected content)."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint tries to import or call something that could run code."""


# ----------------------------------------------------------------------------------
# Storages and tensors
# ----------------------------------------------------------------------------------

# torch storage class name -> (numpy dtype string, bytes per element). "bf16" has no
# numpy type: it is read as uint16 and widened to float32 (exact).
_STORAGE_DTYPES = {
    "FloatStorage": ("<f4", 4),
    "DoubleStorage": ("<f8", 8),
    "HalfStorage": ("<f2", 2),
    "BFloat16Storage": ("bf16", 2),
    "LongStorage": ("<i8", 8),
    "IntStorage": ("<i4", 4),
    "ShortStorage": ("<i2", 2),
    "CharStorage": ("i1", 1),
    "ByteStorage": ("u1", 1),
    "BoolStorage": ("?", 1),
    "ComplexFloatStorage": ("<c8", 8),
    "ComplexDoubleStorage": ("<c16", 16),
    "UntypedStorage": ("u1", 1),
}


class StorageType:
    """Stands for a torch storage class such as torch.FloatStorage (no torch involved)."""

    def __init__(self, name):
        self.name = name
        self.dtype, self.itemsize = _STORAGE_DTYPES[name]

    def __repr__(self):
        return "torch." + self.name


class Storage:
    """The flat data of one torch storage, as a 1-D numpy array."""

    def __init__(self, storage_type, raw, key):
        self.type = storage_type
        self.key = key
        self.raw = raw  # bytes (the whole storage)

    def elements(self, byteorder):
        if len(self.raw) % self.type.itemsize:
            raise CheckpointError(f"storage {self.key}: {len(self.raw)} bytes is not a whole number of "
                                  f"{self.type.name} elements")
        dtype = "<u2" if self.type.dtype == "bf16" else self.type.dtype
        dt = np.dtype(dtype)
        if byteorder == "big":
            dt = dt.newbyteorder(">")
        return np.frombuffer(self.raw, dtype=dt)


def _strided_copy(storage, offset, size, stride, byteorder):
    """The tensor torch would build as storage[offset] viewed with size/stride, as a
    numpy array (a read-only view of the storage when contiguous, else a copy)."""
    if not isinstance(storage, Storage):
        raise CheckpointError(f"tensor rebuild got {type(storage).__name__} where a storage was expected")
    try:
        offset = int(offset)
        size = tuple(int(s) for s in size)
        stride = tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise CheckpointError("tensor rebuild got a malformed size or stride") from None
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CheckpointError(f"tensor with size {size}, stride {stride}, offset {offset} is malformed")
    data = storage.elements(byteorder)
    if 0 in size:
        out = np.zeros(size, dtype=data.dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= data.size:
            raise CheckpointError(f"tensor of size {list(size)} reads element {last} of storage {storage.key}, "
                                  f"which holds only {data.size} (corrupt or truncated checkpoint)")
        contiguous = all(s == int(np.prod(size[i + 1:], dtype=np.int64)) for i, s in enumerate(stride) if size[i] > 1)
        if contiguous:  # the usual case: a read-only view of the storage bytes, no copy
            out = data[offset:offset + int(np.prod(size, dtype=np.int64))].reshape(size)
        else:
            view = np.lib.stride_tricks.as_strided(data[offset:], shape=size,
                                                   strides=tuple(s * data.itemsize for s in stride), writeable=False)
            out = np.array(view)  # contiguous copy
    out = out.astype(out.dtype.newbyteorder("<"), copy=False) if out.dtype.byteorder == ">" else out
    if storage.type.dtype == "bf16":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


# ----------------------------------------------------------------------------------
# Placeholders for classes we do not import
# ----------------------------------------------------------------------------------

class _PlaceholderMeta(type):
    """Metaclass of placeholder classes: calling one is what pickle's REDUCE does to run
    a function or construct through __init__, so it is refused."""

    def __call__(cls, *args, **kwargs):
        raise UnsafeCheckpointError(
            f"checkpoint calls {cls.softbio_global}{_short_args(args)}: refused (a checkpoint may only rebuild "
            f"tensors; calling other functions could run arbitrary code). If you trust the file, load it with "
            f"torch and save only its state_dict: torch.save(model.state_dict(), 'weights.pt')")


class PickledObject(metaclass=_PlaceholderMeta):
    """An instance of a class that the checkpoint names but we never import.

    pickle creates it with cls.__new__ (NEWOBJ) and fills it with __setstate__ (BUILD);
    both only store data. `state` is what the object pickled (for a torch.nn.Module, its
    __dict__ with _parameters, _buffers and _modules)."""

    softbio_global = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["newargs"] = args
        obj.__dict__["state"] = None
        obj.__dict__["items"] = collections.OrderedDict()
        obj.__dict__["list_items"] = []
        return obj

    def __setstate__(self, state):
        self.__dict__["state"] = state

    # A pickled dict or list subclass is filled with SETITEMS / APPENDS.
    def __setitem__(self, key, value):
        self.__dict__["items"][key] = value

    def append(self, value):
        self.__dict__["list_items"].append(value)

    def extend(self, values):
        self.__dict__["list_items"].extend(values)

    def __repr__(self):
        return f"<{self.softbio_global} (not imported)>"


def _short_args(args):
    text = repr(args)
    return text if len(text) < 80 else text[:77] + "...)"


_placeholder_cache = {}


def _placeholder_class(qualified):
    cls = _placeholder_cache.get(qualified)
    if cls is None:
        cls = _PlaceholderMeta(qualified.rsplit(".", 1)[-1], (PickledObject,),
                               {"softbio_global": qualified, "__module__": "softbio.placeholder"})
        _placeholder_cache[qualified] = cls
    return cls


# ----------------------------------------------------------------------------------
# The restricted unpickler
# ----------------------------------------------------------------------------------

# Modules whose globals are refused by name, even before anything calls them.
_FORBIDDEN_MODULES = {
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy", "pty",
    "code", "codeop", "pickle", "_pickle", "marshal", "ctypes", "types", "functools", "operator",
    "io", "_io", "tempfile", "webbrowser", "multiprocessing", "threading", "_thread", "signal",
    "asyncio", "pdb", "bdb", "platform", "commands", "popen2", "shlex", "glob", "pathlib",
    "inspect", "gc", "weakref", "urllib", "http", "ftplib", "smtplib", "telnetlib", "zipimport",
    "pkgutil", "site", "sysconfig", "distutils", "setuptools", "pip", "ensurepip", "venv", "timeit",
    "trace", "cProfile", "profile", "torch.hub", "torch.jit", "torch._C", "torch.ops", "torch._ops",
    "torch.package", "torch.serialization", "torch.utils.cpp_extension",
}

# Plain-data builtins a pickle may legitimately construct (pickle protocol 2 writes a
# set as REDUCE(set, [items])). Everything else in builtins is refused.
_SAFE_BUILTINS = {"set": set, "frozenset": frozenset, "complex": complex, "slice": slice, "object": object}


def _forbidden(module):
    return any(module == m or module.startswith(m + ".") for m in _FORBIDDEN_MODULES)


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that rebuilds tensors and plain data and never imports or runs
    anything the checkpoint names (see the module comment)."""

    def __init__(self, file, load_storage, byteorder="little", dry_run=False):
        super().__init__(file)
        self._load_storage = load_storage  # (StorageType, key, numel) -> Storage
        self._byteorder = byteorder
        self._dry_run = dry_run  # True: note the storages, build no tensors (legacy format pass 1)
        self._rebuilders = {
            "torch._utils._rebuild_tensor": self._rebuild_tensor,
            "torch._utils._rebuild_tensor_v2": self._rebuild_tensor_v2,
            "torch._utils._rebuild_tensor_v3": self._rebuild_tensor_v3,
            "torch._utils._rebuild_parameter": self._rebuild_parameter,
            "torch._utils._rebuild_parameter_with_state": self._rebuild_parameter,
            "torch._tensor._rebuild_from_type": self._rebuild_from_type,
            "torch._tensor._rebuild_from_type_v2": self._rebuild_from_type,
        }

    # --- tensor rebuilders (our own implementations, same signatures as torch's) ---
    def _rebuild_tensor(self, storage, storage_offset, size, stride):
        if self._dry_run:
            return None
        return _strided_copy(storage, storage_offset, size, stride, self._byteorder)

    def _rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad=False,
                           backward_hooks=None, metadata=None):
        return self._rebuild_tensor(storage, storage_offset, size, stride)

    def _rebuild_tensor_v3(self, storage, storage_offset, size, stride, requires_grad=False,
                           backward_hooks=None, dtype=None, metadata=None):
        return self._rebuild_tensor(storage, storage_offset, size, stride)

    def _rebuild_parameter(self, data, requires_grad=False, backward_hooks=None, state=None):
        if self._dry_run:
            return None
        if not isinstance(data, np.ndarray):
            raise CheckpointError("a Parameter was rebuilt from something that is not a tensor")
        return data

    def _rebuild_from_type(self, func, new_type, args, state=None):
        # torch wraps tensor subclasses (Parameter, ...) as (rebuild func, type, args, state).
        # The function must be one of our rebuilders, never something the file chose.
        if not any(func is r for r in self._rebuilders.values()):
            name = getattr(func, "softbio_global", None) or repr(func)
            raise UnsafeCheckpointError(f"checkpoint asks torch's _rebuild_from_type to call {name}: refused "
                                        f"(only tensor rebuilders may be called)")
        return func(*args)

    # --- pickle hooks ---
    def find_class(self, module, name):
        # pickle protocol 2 (torch's default) writes Python 2 module names.
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
        qualified = f"{module}.{name}"
        if qualified in self._rebuilders:
            return self._rebuilders[qualified]
        if module in ("torch", "torch.storage", "torch.cuda") and name in _STORAGE_DTYPES:
            return StorageType(name)
        if module == "torch._utils" and name.startswith("_rebuild"):
            raise CheckpointError(f"checkpoint holds a tensor kind this reader does not support ({qualified}: "
                                  f"quantized, sparse or device-specific tensors); save dense float tensors")
        if qualified == "collections.OrderedDict":
            return collections.OrderedDict
        if qualified == "collections.defaultdict":
            return _safe_defaultdict
        if module == "builtins":
            if name in _SAFE_BUILTINS:
                return _SAFE_BUILTINS[name]
            raise UnsafeCheckpointError(f"checkpoint refers to {qualified}, which could run code: refused")
        if qualified == "copyreg._reconstructor":
            return _safe_reconstructor
        if qualified == "_codecs.encode":
            return _safe_codecs_encode
        if qualified in ("torch.Size",):
            return tuple
        if qualified == "torch.device":
            return _safe_device
        if qualified in _NUMPY_SAFE:
            return _NUMPY_SAFE[qualified]()
        if _forbidden(module):
            raise UnsafeCheckpointError(f"checkpoint refers to {qualified}, which could run code: refused")
        return _placeholder_class(qualified)

    def persistent_load(self, pid):
        # zip format:    ('storage', storage_type, key, location, numel)
        # legacy format: ('storage', storage_type, key, location, numel, view_metadata)
        #                ('module', class, source_file, source) for whole-model pickles
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module" and len(pid) == 4:
            return pid[1]  # the (placeholder) class of a pickled module; source is ignored
        if kind != "storage" or len(pid) not in (5, 6):
            raise CheckpointError(f"unexpected persistent id {pid[:2]!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, StorageType):
            raise CheckpointError(f"storage of unknown type {storage_type!r}")
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        if not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"storage {key}: malformed element count {numel!r}")
        storage = self._load_storage(storage_type, key, numel)
        view = pid[5] if len(pid) == 6 else None
        if view is not None:  # legacy storage views: (view_key, offset, size) in elements
            _view_key, offset, size = view
            n = storage.type.itemsize
            storage = Storage(storage.type, storage.raw[offset * n:(offset + size) * n], f"{key}[view]")
        return storage


def _safe_defaultdict(*args):
    # defaultdict(factory) would call the factory on a missing key; keep the data only.
    return collections.OrderedDict()


def _safe_reconstructor(cls, base, state):
    # copyreg._reconstructor(cls, object, None) is how pickle protocols 0/1 create an
    # instance without __init__. Allow it only for our inert placeholders.
    if isinstance(cls, type) and issubclass(cls, PickledObject) and base is object and state is None:
        return cls.__new__(cls)
    raise UnsafeCheckpointError(f"checkpoint asks copyreg._reconstructor to build {cls!r} from {base!r}: refused")


def _safe_codecs_encode(text, encoding="utf-8", errors="strict"):
    # pickle protocol 2 stores bytes as _codecs.encode(str, 'latin1').
    if isinstance(text, str) and encoding in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        return text.encode(encoding, errors if errors in ("strict",) else "strict")
    raise UnsafeCheckpointError("checkpoint calls _codecs.encode with unexpected arguments: refused")


def _safe_device(*args):
    return ":".join(str(a) for a in args)


def _numpy_scalar():
    import numpy.core.multiarray as ma
    return ma.scalar


def _numpy_reconstruct():
    import numpy.core.multiarray as ma
    return ma._reconstruct


# numpy values in training checkpoints ('best_acc': np.float64(...)). These constructors
# build plain numeric data from bytes and never import or call anything else.
_NUMPY_SAFE = {
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy._core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy.dtype": lambda: np.dtype,
    "numpy.ndarray": lambda: np.ndarray,
}


# ----------------------------------------------------------------------------------
# File formats
# ----------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


def file_kind(path):
    """'zip', 'legacy', 'safetensors', 'tar' or 'unknown', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:2] == b"\x80\x02" or head[:2] == b"\x80\x01" or head[:1] == b"\x80":
        return "legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "unknown"


def _load_zip(path):
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: not a readable zip archive ({e})") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
                raise CheckpointError(f"{path}: this is a TorchScript archive (torch.jit.save); convert the "
                                      f"model's state_dict instead: torch.save(model.state_dict(), 'weights.pt')")
            raise CheckpointError(f"{path}: zip archive without a data.pkl record; not a torch.save file? "
                                  f"(records: {', '.join(names[:8])})")
        if len(pickles) > 1:
            raise CheckpointError(f"{path}: zip archive with several data.pkl records: {pickles}")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointError(f"{path}: unknown byteorder record {byteorder!r}")
        if any(n.startswith(prefix + "constants") for n in names) and prefix + "code/" in "".join(names):
            raise CheckpointError(f"{path}: this is a TorchScript archive (torch.jit.save); convert the "
                                  f"model's state_dict instead")
        cache = {}

        def load_storage(storage_type, key, numel):
            if key not in cache:
                record = f"{prefix}data/{key}"
                try:
                    info = archive.getinfo(record)
                except KeyError:
                    raise CheckpointError(f"{path}: storage record {record} is missing (truncated file?)") from None
                expected = int(numel) * storage_type.itemsize
                if info.file_size < expected:
                    raise CheckpointError(f"{path}: storage {key} has {info.file_size} bytes, expected {expected}")
                with archive.open(info) as f:
                    raw = f.read(expected)  # never more than the pickle declared (no zip bombs)
                if len(raw) != expected:
                    raise CheckpointError(f"{path}: storage {key} is truncated")
                cache[key] = Storage(storage_type, raw, key)
            return cache[key]

        data = archive.read(pickles[0])
        return RestrictedUnpickler(io.BytesIO(data), load_storage, byteorder).load()


def _load_legacy(path, blob):
    """torch.save before 1.6 (or _use_new_zipfile_serialization=False): a magic-number
    pickle, a protocol-version pickle, a sys-info pickle, the object pickle, the list of
    storage keys, then each storage as <int64 element count><raw bytes> in that order.

    The object pickle refers to storages whose bytes come only after it, so it is read
    twice: a dry run that notes each storage's type and finds where the pickle ends,
    then, once the storage bytes are read, the real pass that builds the tensors."""
    stream = io.BytesIO(blob)

    def plain_pickle(what):
        try:
            return RestrictedUnpickler(stream, _no_storage).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot read the {what} of a legacy torch.save file ({e})") from None

    plain_pickle("magic number")  # checked by the caller
    if plain_pickle("protocol version") != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported legacy torch.save protocol version")
    sys_info = plain_pickle("system information")
    byteorder = "little" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else "big"

    types = {}  # storage key -> StorageType

    def note_storage(storage_type, key, numel):
        types[key] = storage_type
        return Storage(storage_type, b"", key)

    start = stream.tell()
    RestrictedUnpickler(stream, note_storage, byteorder, dry_run=True).load()
    keys = plain_pickle("storage key list")
    if not isinstance(keys, list):
        raise CheckpointError(f"{path}: malformed legacy storage key list")
    storages = {}
    for key in keys:
        key = str(key)
        if key not in types:
            raise CheckpointError(f"{path}: storage {key} is listed but never used")
        header = stream.read(8)
        if len(header) != 8:
            raise CheckpointError(f"{path}: truncated before storage {key}")
        (count,) = struct.unpack("<q" if byteorder == "little" else ">q", header)
        nbytes = count * types[key].itemsize
        raw = stream.read(nbytes) if count >= 0 else b""
        if count < 0 or len(raw) != nbytes:
            raise CheckpointError(f"{path}: storage {key} is truncated ({len(raw)} of {nbytes} bytes)")
        storages[key] = Storage(types[key], raw, key)

    def load_storage(storage_type, key, numel):
        if key not in storages:
            raise CheckpointError(f"{path}: storage {key} is used but its data is missing")
        return storages[key]

    stream.seek(start)
    return RestrictedUnpickler(stream, load_storage, byteorder).load()


def _no_storage(*_):
    raise CheckpointError("unexpected tensor data in a header pickle")


def load_checkpoint(path):
    """Unpickle a torch.save file (zip or legacy format) with the restricted unpickler.

    Returns the saved object with tensors as numpy arrays and unknown classes as
    PickledObject placeholders. Raises UnsafeCheckpointError for anything that would
    run code, CheckpointError for unreadable files. A bare pickle (not written by
    torch.save) is read with the same restrictions; it can hold no tensors."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    kind = file_kind(path)
    try:
        if kind == "zip":
            return _load_zip(path)
        if kind == "legacy":
            with open(path, "rb") as f:
                blob = f.read()
            first = RestrictedUnpickler(io.BytesIO(blob), _no_storage).load()
            if isinstance(first, int) and first == _LEGACY_MAGIC:
                return _load_legacy(path, blob)
            return first  # a bare pickle: the whole file was that one object
        if kind == "tar":
            raise CheckpointError(f"{path}: this is the tar-based torch.save format of PyTorch < 0.4, which is "
                                  f"not supported; load it with an old torch and save it again")
        # Perhaps a pickle of protocol 0/1 (no PROTO opcode): same restricted unpickler.
        with open(path, "rb") as f:
            try:
                return RestrictedUnpickler(f, _no_storage).load()
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError):
                pass
    except PermissionError as e:
        raise CheckpointError(f"{path}: cannot read the file ({e.strerror})") from None
    # What a damaged file makes the unpickler, zipfile and numpy raise (found by
    # tests/python/test_unpickler_mutations.py): besides the obvious ones, OverflowError
    # (an opcode length over 2^63, a huge integer where numpy wants a C int), OSError
    # (zipfile seeking to a negative offset), NotImplementedError (a zip member flagged
    # encrypted or compressed with an unknown method), RuntimeError and SystemError
    # (numpy's scalar and dtype __setstate__ given malformed state).
    except (pickle.UnpicklingError, EOFError, struct.error, AttributeError, IndexError, TypeError, ValueError,
            KeyError, RecursionError, MemoryError, zipfile.BadZipFile, OverflowError, OSError,
            NotImplementedError, RuntimeError, SystemError) as e:
        raise CheckpointError(f"{path}: malformed checkpoint ({type(e).__name__}: {e})") from None
    raise CheckpointError(f"{path}: unknown file format (expected a torch.save .pt/.pth file or safetensors)")


# ----------------------------------------------------------------------------------
# Finding the state dict in what was saved
# ----------------------------------------------------------------------------------

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def _is_module(obj):
    return isinstance(obj, PickledObject) and isinstance(obj.state, dict) and "_parameters" in obj.state


def _module_tensors(module, prefix, out, hints):
    """Walk a pickled torch.nn.Module like Module.state_dict(): own parameters, own
    persistent buffers, then children. Also record a few attributes (stride, pool
    settings, BatchNorm eps) that tell what the tensors alone cannot."""
    state = module.state
    where = f"module {prefix.rstrip('.') or '(root)'} of the pickled model"
    # A damaged or hostile pickle can put anything in these attributes: check the types
    # torch.nn.Module gives them before walking them.
    for kind in ("_parameters", "_buffers", "_modules"):
        value = state.get(kind)
        if value is not None and not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
            raise CheckpointError(f"{where}: {kind} is a {type(value).__name__}, expected a dict of names")
    non_persistent = state.get("_non_persistent_buffers_set")
    if non_persistent is not None and not (isinstance(non_persistent, (set, frozenset, list, tuple))
                                           and all(isinstance(k, str) for k in non_persistent)):
        raise CheckpointError(f"{where}: _non_persistent_buffers_set is a {type(non_persistent).__name__}, "
                              f"expected a set of names")
    skip = set(non_persistent or ())
    for kind in ("_parameters", "_buffers"):
        for name, value in (state.get(kind) or {}).items():
            if value is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(value, np.ndarray):
                raise CheckpointError(f"module {prefix}{name} holds {type(value).__name__}, not a tensor")
            out[prefix + name] = value
    attrs = {k: v for k, v in state.items()
             if k in ("stride", "kernel_size", "padding", "eps", "output_size", "ceil_mode", "count_include_pad")}
    hints[prefix.rstrip(".")] = (type(module).softbio_global, attrs)
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not _is_module(child):
            raise CheckpointError(f"submodule {prefix}{name} of the pickled model is not a module")
        _module_tensors(child, f"{prefix}{name}.", out, hints)


class StateDict:
    """Tensors by name (insertion order kept) plus how they were found."""

    def __init__(self, tensors, notes, module_hints=None):
        self.tensors = tensors            # OrderedDict name -> np.ndarray
        self.notes = notes                # list of human-readable notes for the summary
        self.module_hints = module_hints  # whole models: {module path: (class, attrs)}


def extract_state_dict(obj, key=None, strip_prefixes=(), ignore=()):
    """Find the name -> tensor mapping in an unpickled checkpoint.

    Accepts a state_dict, a training checkpoint dict that wraps one under 'state_dict',
    'model_state_dict' or 'model' (or under `key`, dotted for nesting), or a whole
    pickled model. Strips DataParallel's 'module.' prefix (and any of `strip_prefixes`)
    and drops tensors matching the glob patterns in `ignore`."""
    notes = []
    hints = None
    where = "the checkpoint"
    if key:
        for part in key.split("."):
            if not isinstance(obj, dict) or part not in obj:
                found = ", ".join(map(repr, list(obj)[:12])) if isinstance(obj, dict) else type(obj).__name__
                raise CheckpointError(f"--checkpoint-key {key}: no entry {part!r} (found: {found})")
            obj = obj[part]
        notes.append(f"state_dict taken from key '{key}'")
    for _ in range(4):  # unwrap nested wrappers such as {'model': {'state_dict': ...}}
        if _is_module(obj):
            break
        if isinstance(obj, dict) and obj and all(isinstance(v, np.ndarray) for v in obj.values()):
            break
        if isinstance(obj, dict):
            wrapper = next((k for k in WRAPPER_KEYS if k in obj), None)
            if wrapper is None:
                raise CheckpointError(_describe_unknown_dict(obj, where))
            notes.append(f"state_dict found under key '{wrapper}'")
            where = f"checkpoint['{wrapper}']"
            obj = obj[wrapper]
            continue
        break
    if _is_module(obj):
        tensors = collections.OrderedDict()
        hints = {}
        try:
            _module_tensors(obj, "", tensors, hints)
        except RecursionError:
            raise CheckpointError("the pickled model nests its submodules too deeply to walk") from None
        notes.append(f"whole pickled model ({obj.softbio_global}, not imported)")
    elif isinstance(obj, dict) and obj and all(isinstance(v, np.ndarray) for v in obj.values()):
        tensors = collections.OrderedDict((str(k), v) for k, v in obj.items())
    elif isinstance(obj, dict):
        raise CheckpointError(_describe_unknown_dict(obj, where))
    else:
        raise CheckpointError(f"{where} holds a {type(obj).__name__}, not a state_dict, a checkpoint dict "
                              f"or a pickled model")

    def rename(mapping, prefix):
        return collections.OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v)
                                       for k, v in mapping.items())

    # DataParallel: every name starts with 'module.' (twice if wrapped twice).
    stripped = 0
    while tensors and all(k.startswith("module.") for k in tensors):
        tensors = rename(tensors, "module.")
        hints = rename(hints, "module.") if hints is not None else None
        stripped += 1
    if stripped:
        notes.append("'module.' prefix stripped (DataParallel)")
    for prefix in strip_prefixes:  # the user's: stripped wherever present
        if not any(k.startswith(prefix) for k in tensors):
            raise CheckpointError(f"--strip-prefix {prefix}: no tensor name starts with it "
                                  f"(e.g. {next(iter(tensors), '<none>')})")
        renamed = rename(tensors, prefix)
        if len(renamed) != len(tensors):
            raise CheckpointError(f"--strip-prefix {prefix}: stripping it makes two tensor names equal")
        tensors = renamed
        hints = rename(hints, prefix) if hints is not None else None
        notes.append(f"'{prefix}' prefix stripped")
    if ignore:
        dropped = [k for k in tensors if any(fnmatch.fnmatchcase(k, pat) for pat in ignore)]
        for k in dropped:
            del tensors[k]
        notes.append(f"{len(dropped)} tensors dropped by --ignore")
    return StateDict(tensors, notes, hints)


def _describe_unknown_dict(obj, where):
    parts = []
    for k, v in list(obj.items())[:12]:
        kind = f"tensor {list(v.shape)}" if isinstance(v, np.ndarray) else type(v).__name__
        parts.append(f"{k!r}: {kind}")
    more = f", ... ({len(obj)} entries)" if len(obj) > 12 else ""
    return (f"{where} is a dict but neither a state_dict (name -> tensor) nor a checkpoint wrapping one under "
            f"{', '.join(repr(k) for k in WRAPPER_KEYS)}; found {{{', '.join(parts)}{more}}}. "
            f"Pass --checkpoint-key KEY to say where the state_dict is")

# weights_converter/safetensors_io.py — read and write safetensors files with numpy.
#
# Layout (docs/FORMAT.md section 1):
#     u64 little-endian N | N bytes of JSON header | tensor data, back to back
# The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
# (offsets relative to the start of the data); "__metadata__" maps strings to strings.
#
# The writer follows softbio's extra rules: F32 only, the data section and every tensor
# start on a 64-byte boundary (the header is right-padded with spaces, tensors are
# separated by zero bytes), so the C++ reader can mmap the file and use tensors in place.
# The reader accepts any valid safetensors file (the converter's "safetensors input")
# and checks every range before it touches tensor bytes.
import collections
import json
import struct

import numpy as np

ALIGN = 64

# safetensors dtype -> numpy dtype (BF16 is read as uint16 and widened to float32).
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}


class SafetensorsError(Exception):
    """A safetensors file is malformed, or tensors cannot be written as softbio requires."""


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def write_safetensors(path, tensors, metadata=None):
    """Write `tensors` (a sequence of (name, array) pairs, in file order) as F32.

    `metadata` is a dict of str -> str stored as "__metadata__". Arrays must already be
    float32; they are written little-endian, row-major. Returns the file size in bytes."""
    header = collections.OrderedDict()
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("__metadata__ keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, array in tensors:
        if name == "__metadata__" or name in header:
            raise SafetensorsError(f"tensor name {name!r} is reserved or repeated")
        array = np.asarray(array)
        if array.dtype != np.float32:
            raise SafetensorsError(f"tensor {name}: dtype {array.dtype}, softbio files hold float32 only")
        if not np.all(np.isfinite(array)):
            bad = int(np.flatnonzero(~np.isfinite(array.ravel()))[0])
            raise SafetensorsError(f"tensor {name}: holds a non-finite value (NaN or Inf) at flat index {bad}")
        data = np.ascontiguousarray(array, dtype="<f4")
        begin = _align(offset)
        header[name] = {"dtype": "F32", "shape": [int(d) for d in array.shape],
                        "data_offsets": [begin, begin + data.nbytes]}
        blobs.append((begin, data))
        offset = begin + data.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (_align(8 + len(text)) - 8 - len(text))  # data section starts 64-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        position = 0
        for begin, data in blobs:
            f.write(b"\0" * (begin - position))
            f.write(memoryview(data.reshape(-1)).cast("B"))  # the array's bytes, no copy
            position = begin + data.nbytes
    return 8 + len(text) + position


def read_safetensors(path):
    """Read a safetensors file: returns (OrderedDict name -> numpy array, metadata dict).

    Tensors keep their file order. BF16 is widened to float32; other dtypes keep theirs."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: {len(blob)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise SafetensorsError(f"{path}: header length {n} exceeds the file size {len(blob)}")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError(f"{path}: malformed JSON header ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    data = memoryview(blob)[8 + n:]
    tensors = collections.OrderedDict()
    ranges = []
    for name, entry in header.items():
        where = f"{path}: tensor {name}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise SafetensorsError(f"{where}: entry needs dtype, shape and data_offsets")
        dtype = entry["dtype"]
        if dtype not in _NUMPY:
            raise SafetensorsError(f"{where}: unsupported dtype {dtype!r}")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError(f"{where}: malformed shape {shape!r}")
        offsets = entry["data_offsets"]
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= len(data)):
            raise SafetensorsError(f"{where}: data_offsets {offsets!r} do not lie inside the "
                                   f"{len(data)}-byte data section")
        np_dtype = np.dtype(_NUMPY[dtype])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if offsets[1] - offsets[0] != count * np_dtype.itemsize:
            raise SafetensorsError(f"{where}: data_offsets span {offsets[1] - offsets[0]} bytes, shape {shape} "
                                   f"{dtype} needs {count * np_dtype.itemsize}")
        array = np.frombuffer(data[offsets[0]:offsets[1]], dtype=np_dtype).reshape(shape).copy()
        if dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
        ranges.append((offsets[0], offsets[1], name))
    ranges.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(ranges, ranges[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: tensors {n0} and {n1} overlap")
    return tensors, dict(metadata)


def write_softbio_file(path, tensors, document):
    """Write a softbio model file: F32 tensors plus the metadata document (a dict,
    docs/FORMAT.md section 2) serialised as the string __metadata__["softbio"]."""
    return write_safetensors(path, tensors, {"softbio": json.dumps(document, separators=(",", ":"))})


def read_header(path):
    """Only the JSON header of a safetensors file, as a dict (tensor entries and
    "__metadata__"), without reading tensor data."""
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise SafetensorsError(f"{path}: too short for a safetensors header")
        (n,) = struct.unpack("<Q", prefix)
        if n > 100 * 2**20:
            raise SafetensorsError(f"{path}: header length {n} is implausibly large")
        text = f.read(n)
    if len(text) != n:
        raise SafetensorsError(f"{path}: header length {n} exceeds the file size")
    try:
        return json.loads(text.decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError(f"{path}: malformed JSON header ({e})") from None


def read_softbio_metadata(path):
    """The parsed softbio metadata document of a file, or None if it has none."""
    metadata = read_header(path).get("__metadata__") or {}
    if "softbio" not in metadata:
        return None
    return json.loads(metadata["softbio"])

"""safetensors_file.py - strict reader and simple writer of the safetensors format.

    u64 little-endian N | N bytes of JSON header | data
The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
(offsets relative to the start of the data), plus an optional "__metadata__" object of
strings. Everything is validated before a tensor is handed out: header length, JSON
shape, known dtypes, non-negative integer shapes, offsets inside the file, sizes equal to
prod(shape) * dtype size, no two tensors overlapping, no duplicate names.
"""

import json
import os
import struct

from tensor_data import DTYPE_SIZES, FormatError, Tensor, contiguous_strides, numel_of

SAFETENSORS_DTYPES = {
    "F32": "f32", "F16": "f16", "BF16": "bf16", "F64": "f64",
    "I64": "i64", "I32": "i32", "I16": "i16", "I8": "i8",
    "U8": "u8", "U16": "u16", "U32": "u32", "U64": "u64", "BOOL": "bool",
    "F8_E4M3": "f8_e4m3", "F8_E5M2": "f8_e5m2",
}
MAX_HEADER_BYTES = 100 << 20


class FileRegion:
    """The storage of one safetensors tensor: n_bytes at an absolute file offset."""
    byteorder = "little"

    def __init__(self, f, start, dtype, numel, label):
        self.f = f
        self.start = start
        self.dtype = dtype
        self.numel = numel
        self.label = label

    def read(self, byte_start, n_bytes):
        self.f.seek(self.start + byte_start)
        data = self.f.read(n_bytes)
        if len(data) != n_bytes:
            raise FormatError("%s: truncated tensor data" % self.label)
        return data


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted(k for k in set(keys) if keys.count(k) > 1)[0]
        raise FormatError("duplicate key %r" % dup)
    return dict(pairs)


def read_safetensors(path):
    """Returns ({name: Tensor}, metadata dict, open file). The file must stay open while
    tensors are read; the caller closes it."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise FormatError("%s: %s" % (path, e.strerror or e))
    try:
        return _parse(path, f) + (f,)
    except BaseException:
        f.close()
        raise


def _parse(path, f):
    def bad(msg):
        return FormatError("%s: invalid safetensors file: %s" % (path, msg))

    file_size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) != 8:
        raise bad("shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", head)
    if header_len < 2 or header_len > MAX_HEADER_BYTES or 8 + header_len > file_size:
        raise bad("header length %d does not fit the file (%d bytes)" % (header_len, file_size))
    raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except FormatError as e:
        raise bad("header: %s" % e)
    except (UnicodeDecodeError, ValueError) as e:
        raise bad("header is not valid JSON: %s" % e)
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map strings to strings")

    data_start = 8 + header_len
    data_size = file_size - data_start
    tensors = {}
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise bad("entry %r must have exactly dtype, shape and data_offsets" % name)
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise bad("tensor %r has unknown dtype %r" % (name, entry["dtype"]))
        shape = entry["shape"]
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise bad("tensor %r has invalid shape %r" % (name, shape))
        offsets = entry["data_offsets"]
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise bad("tensor %r has invalid data_offsets %r" % (name, offsets))
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise bad("tensor %r data_offsets [%d, %d] outside the %d data bytes" % (name, begin, end, data_size))
        numel = numel_of(shape)
        if end - begin != numel * DTYPE_SIZES[dtype]:
            raise bad("tensor %r is %d bytes but shape %s of %s needs %d"
                      % (name, end - begin, shape, entry["dtype"], numel * DTYPE_SIZES[dtype]))
        spans.append((begin, end, name))
        region = FileRegion(f, data_start + begin, dtype, numel, "%s: tensor %s" % (path, name))
        tensors[name] = Tensor(region, 0, shape, contiguous_strides(shape))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise bad("tensors %r and %r overlap" % (n0, n1))
    return tensors, metadata


class SafetensorsWriter:
    """Streams a safetensors file of f32 tensors: SafetensorsWriter(path, [(name, shape)]),
    then add() each tensor's little-endian bytes in that order, then close()."""

    def __init__(self, path, entries, metadata=None):
        header = {}
        offset = 0
        self.sizes = []
        for name, shape in entries:
            size = numel_of(shape) * 4
            header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
            self.sizes.append(size)
            offset += size
        if metadata:
            header["__metadata__"] = metadata
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * ((-len(raw)) % 8)  # keep the data 8-byte aligned, as the reference writer does
        self.f = open(path, "wb")
        self.f.write(struct.pack("<Q", len(raw)) + raw)
        self.next = 0

    def add(self, data):
        assert len(data) == self.sizes[self.next]
        self.f.write(data)
        self.next += 1

    def close(self):
        assert self.next == len(self.sizes), "not every tensor was written"
        self.f.close()


def write_safetensors(path, tensors, metadata=None):
    """Write {name: (shape, f32 little-endian bytes)} as a safetensors file."""
    writer = SafetensorsWriter(path, [(name, shape) for name, (shape, _) in tensors.items()], metadata)
    for shape, data in tensors.values():
        writer.add(data)
    writer.close()

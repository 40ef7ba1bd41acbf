"""tensor_data.py - lazy tensors read from checkpoint files, turned into float32 in bulk.

A checkpoint tensor is a view into a storage (a zip entry of a torch archive, or a byte
range of a safetensors file): dtype, shape, element strides and a storage offset. Nothing
is read until to_f32() is called; it reads only the byte range the view covers and returns
an array('f') of numel values in C (row-major) order, holding native floats.

Every conversion runs in C through the standard library, never one Python statement per
element: f32 with array.frombytes (+ byteswap for a foreign byte order), f16 with byte
tables (see f16_to_f32_le), bf16 by moving bytes with extended-slice assignment (a bf16 is
the high half of an f32), f64 through array('d'). Strided views are gathered one row at a time with
extended slices.
"""

import itertools
import struct
import sys
from array import array

# dtype name -> bytes per element. Only the float types can be converted to f32; the
# others are known so that their tensors can be skipped or named in errors.
DTYPE_SIZES = {
    "f32": 4, "f16": 2, "bf16": 2, "f64": 8,
    "i64": 8, "i32": 4, "i16": 2, "i8": 1, "u8": 1, "u16": 2, "u32": 4, "u64": 8,
    "bool": 1, "f8_e4m3": 1, "f8_e5m2": 1,
}
FLOAT_DTYPES = ("f32", "f16", "bf16", "f64")


class FormatError(Exception):
    """A checkpoint is malformed or not supported (message names the file and the problem)."""


def numel_of(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def contiguous_strides(shape):
    strides = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    return tuple(strides)


class Tensor:
    """A view [shape] with element strides into a storage, starting at element `offset`.

    The storage provides .dtype, .numel, .byteorder ('little'/'big'), .label (for errors)
    and .read(byte_start, n_bytes) -> bytes.
    """
    __slots__ = ("storage", "offset", "shape", "strides")

    def __init__(self, storage, offset, shape, strides):
        self.storage = storage
        self.offset = offset
        self.shape = tuple(shape)
        self.strides = tuple(strides)

    def __setstate__(self, state):  # a pickle BUILD on a tensor is never legitimate
        raise FormatError("pickle tries to set the state of a tensor")

    @property
    def dtype(self):
        return self.storage.dtype

    @property
    def numel(self):
        return numel_of(self.shape)

    def is_contiguous(self):
        return all(s == c for s, c, d in zip(self.strides, contiguous_strides(self.shape), self.shape)
                   if d > 1)

    def extent(self):
        """Elements of the storage the view spans, from its offset (0 for an empty view)."""
        if self.numel == 0:
            return 0
        return 1 + sum((d - 1) * s for d, s in zip(self.shape, self.strides))

    def to_f32(self):
        """The tensor's values as array('f'), numel long, row-major."""
        dtype = self.storage.dtype
        if dtype not in FLOAT_DTYPES:
            raise FormatError("%s: dtype %s cannot be converted to float32" % (self.storage.label, dtype))
        size = DTYPE_SIZES[dtype]
        n_span = self.extent()
        raw = self.storage.read(self.offset * size, n_span * size)
        values = bytes_to_f32(raw, dtype, self.storage.byteorder)
        if self.is_contiguous():
            return values
        return gather(values, self.shape, self.strides)


def bytes_to_f32(raw, dtype, byteorder="little"):
    """Packed `dtype` elements in `byteorder` -> array('f') of native floats."""
    foreign = byteorder != sys.byteorder
    if dtype == "f32":
        out = array("f")
        out.frombytes(raw)
        if foreign:
            out.byteswap()
        return out
    if dtype == "f16":
        return bytes_to_f32(f16_to_f32_le(raw, byteorder), "f32", "little")
    if dtype == "bf16":
        # bf16 is the upper 16 bits of an f32: build little-endian f32 bytes [0, 0, lo, hi].
        n = len(raw) // 2
        f32_le = bytearray(4 * n)
        if byteorder == "little":
            f32_le[2::4] = raw[0::2]
            f32_le[3::4] = raw[1::2]
        else:
            f32_le[2::4] = raw[1::2]
            f32_le[3::4] = raw[0::2]
        return bytes_to_f32(f32_le, "f32", "little")
    if dtype == "f64":
        wide = array("d")
        wide.frombytes(raw)
        if foreign:
            wide.byteswap()
        return array("f", wide)
    raise FormatError("dtype %s cannot be converted to float32" % dtype)


def _f16_tables():
    """Byte tables for f16 -> f32. An f16 is s eeeee mmmmmmmmmm (high byte: s, e, m9 m8;
    low byte: m7..m0); the f32 is s EEEEEEEE m..m 0000000000000 with E = e + 112 (0 stays 0,
    31 becomes 255). Written out in little-endian f32 bytes:
        byte 0 = 0
        byte 1 = low << 5                       (m2..m0, then zeros)
        byte 2 = low >> 3 | (high & 3) << 5 | (E & 1) << 7
        byte 3 = sign | E >> 1
    so every output byte is a table lookup of one input byte, or the OR of two."""
    def wide_exponent(high):
        e = (high >> 2) & 0x1F
        return 0 if e == 0 else 255 if e == 31 else e + 112
    byte1 = bytes((x << 5) & 0xFF for x in range(256))
    byte2_low = bytes(x >> 3 for x in range(256))
    byte2_high = bytes(((h & 3) << 5) | ((wide_exponent(h) & 1) << 7) for h in range(256))
    byte3 = bytes((h & 0x80) | (wide_exponent(h) >> 1) for h in range(256))
    exponent_zero = bytes(0xFF if (h >> 2) & 0x1F == 0 else 0 for h in range(256))
    nonzero_high_mantissa = bytes(1 if h & 3 else 0 for h in range(256))
    nonzero = bytes([0] + [1] * 255)
    return byte1, byte2_low, byte2_high, byte3, exponent_zero, nonzero_high_mantissa, nonzero


_F16 = _f16_tables()


def f16_to_f32_le(raw, byteorder="little"):
    """Packed f16 -> packed little-endian f32 bytes, exactly (subnormals, infinities, NaN).
    Byte tables (bytes.translate), extended-slice stores and bitwise ORs of whole buffers
    as big integers: all in C. Only subnormal inputs (exponent 0, mantissa not 0), which
    the tables cannot normalise, are fixed one by one with struct."""
    byte1, byte2_low, byte2_high, byte3, exponent_zero, nonzero_high_mantissa, nonzero = _F16
    n = len(raw) // 2
    low, high = (raw[0::2], raw[1::2]) if byteorder == "little" else (raw[1::2], raw[0::2])
    as_int = lambda b: int.from_bytes(b, "little")  # noqa: E731
    out = bytearray(4 * n)
    out[1::4] = low.translate(byte1)
    out[2::4] = (as_int(low.translate(byte2_low)) | as_int(high.translate(byte2_high))).to_bytes(n, "little")
    out[3::4] = high.translate(byte3)
    subnormal = as_int(high.translate(exponent_zero)) & (
        as_int(high.translate(nonzero_high_mantissa)) | as_int(low.translate(nonzero)))
    if subnormal:
        flags = subnormal.to_bytes(n, "little")
        order = "<" if byteorder == "little" else ">"
        i = flags.find(1)
        while i >= 0:
            out[4 * i:4 * i + 4] = struct.pack("<f", struct.unpack_from(order + "e", raw, 2 * i)[0])
            i = flags.find(1, i + 1)
    return out


def gather(values, shape, strides):
    """Copy the strided view (shape, element strides, offset 0) of `values` into a new
    row-major array('f'). One extended-slice copy per line along the longest axis."""
    n = numel_of(shape)
    out = array("f", bytes(4 * n))
    if n == 0:
        return out
    out_strides = contiguous_strides(shape)
    inner = max(range(len(shape)), key=lambda k: (shape[k], k))
    n_inner, src_step, dst_step = shape[inner], strides[inner], out_strides[inner]
    outer_axes = [k for k in range(len(shape)) if k != inner]
    for index in itertools.product(*(range(shape[k]) for k in outer_axes)):
        src = sum(i * strides[k] for i, k in zip(index, outer_axes))
        dst = sum(i * out_strides[k] for i, k in zip(index, outer_axes))
        if src_step == 0:
            line = array("f", [values[src]]) * n_inner
        else:
            line = values[src:src + (n_inner - 1) * src_step + 1:src_step]
        out[dst:dst + (n_inner - 1) * dst_step + 1:dst_step] = line
    return out


def transpose_2d(values, n_rows, n_cols):
    """values [n_rows, n_cols] row-major -> its transpose [n_cols, n_rows]."""
    return gather(values, (n_cols, n_rows), (1, n_cols))


def f32_le_bytes(values):
    """array('f') -> its little-endian bytes (what every output file stores)."""
    if sys.byteorder == "little":
        return values.tobytes()
    swapped = array("f", values)
    swapped.byteswap()
    return swapped.tobytes()

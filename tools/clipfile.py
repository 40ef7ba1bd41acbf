"""clipfile.py - write the .clip weight file (docs/FORMAT.md, version 2).

    header (80 bytes) | config | tokenizer | tensor directory | padding | tensor data
The linear layers' weights (PANELS below) are stored packed: panels of 16 output
features interleaved along k, the order the C kernels stream them in (kernels/gemm.h);
every other tensor row-major.
All integers little-endian; every tensor's data starts at a multiple of 64 bytes. The
whole layout is computed from names and shapes first, so tensors are then produced and
written one at a time: memory holds one tensor, never the model. Checksums (Adler-32 of
each tensor, and of everything from byte 16 up to the data) are known only once the data
has been written, so the directory and the header are written again at the end.
"""

import array
import re
import struct
import sys
import zlib

from tensor_data import FormatError, f32_le_bytes, numel_of

MAGIC = b"CLIPC\x00\x00\x01"
VERSION = 2
ALIGN = 64
HEADER_SIZE = 80
DTYPE_F32 = 0
LAYOUT_PANELS16 = 0x100          # dtype bits 8-15: the layout (1 = panels of 16 rows)
PANEL = 16
# The tensors stored in panels: every matrix the C code multiplies by (docs/FORMAT.md).
PANELS = re.compile(r"^(vision\.patch_embed\.weight|vision\.proj|text\.proj|"
                    r"(vision|text)\.blocks\.\d+\.(attn\.qkv|attn\.out|mlp\.fc1|mlp\.fc2)\.weight)$")


def packed_numel(shape):
    """Values of a [n, k] matrix in panels: n rounded up to whole panels of 16."""
    n, k = shape
    return (n + PANEL - 1) // PANEL * PANEL * k


def pack_panels(values, n, k):
    """Row-major [n, k] -> panels: panel j holds rows 16j..16j+15 as a [k][16] array (row
    16j + c's value p at p * 16 + c), the last panel padded with zero rows."""
    out = array.array("f", bytes(4 * packed_numel((n, k))))
    for row in range(n):
        base = row // PANEL * PANEL * k + row % PANEL
        out[base:base + PANEL * k:PANEL] = values[row * k:(row + 1) * k]
    return out


def unpack_panels(values, n, k):
    out = array.array("f", bytes(4 * n * k))
    for row in range(n):
        base = row // PANEL * PANEL * k + row % PANEL
        out[row * k:(row + 1) * k] = values[base:base + PANEL * k:PANEL]
    return out
T_U32, T_F32, T_STR, T_F32_ARRAY = 1, 2, 3, 4


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def config_section(entries):
    """entries: [(key, type, value)] in file order."""
    out = [struct.pack("<I", len(entries))]
    for key, kind, value in entries:
        out.append(_str(key) + struct.pack("<I", kind))
        if kind == T_U32:
            out.append(struct.pack("<I", value))
        elif kind == T_F32:
            out.append(struct.pack("<f", value))
        elif kind == T_STR:
            out.append(_str(value))
        elif kind == T_F32_ARRAY:
            out.append(struct.pack("<I%df" % len(value), len(value), *value))
        else:
            raise ValueError(kind)
    return b"".join(out)


def tokenizer_section(vocab):
    out = [struct.pack("<IIII", len(vocab.tokens), len(vocab.merges), vocab.sot_id, vocab.eot_id)]
    out.extend(_str(t) for t in vocab.tokens)
    flat = [i for merge in vocab.merges for i in merge]
    out.append(struct.pack("<%dI" % len(flat), *flat))
    return b"".join(out)


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


class BlockWriter:
    """Passes bytes on to the file object f (positioned at 0) in whole blocks of BLOCK
    bytes, so every write the kernel sees covers an aligned 2 MiB of the file (the last one
    excepted). A file system that caches files in large folios (xfs; ext4 in recent Linux;
    this project's VM: Linux 6.18, ext4) then keeps each block as one 2 MiB folio, which
    clip_run maps with one page-table entry: written in smaller pieces, a ViT-B/32's vision
    tower stayed in 4 KB pages, and a process that embeds an image at 2 threads took 15-18 ms
    longer to map and unmap them (bench/pagecache_bench.py, Zen 4). finish() writes
    the last, partial block; nothing may be written after it."""
    BLOCK = 2 << 20

    def __init__(self, f):
        self.f = f
        self.pending = bytearray()      # less than BLOCK bytes, the start of the next block

    def write(self, data):
        with memoryview(data) as view:
            view = view.cast("B")
            if self.pending:            # complete the block begun earlier
                take = min(len(view), self.BLOCK - len(self.pending))
                self.pending += view[:take]
                view = view[take:]
                if len(self.pending) < self.BLOCK:
                    return
                self.f.write(self.pending)
                self.pending = bytearray()
            whole = len(view) // self.BLOCK * self.BLOCK
            for start in range(0, whole, self.BLOCK):   # straight from data, no copy
                self.f.write(view[start:start + self.BLOCK])
            self.pending += view[whole:]

    def finish(self):
        self.f.write(self.pending)
        self.pending = bytearray()


def write_clip(f, config_entries, vocab, tensors, version=VERSION):
    """Write a .clip file to the binary file object f (positioned at 0), in 2 MiB blocks
    (BlockWriter).

    tensors: [(name, shape, produce)] where produce() returns array('f') of numel values,
    row-major; the tensors named by PANELS are packed here (version 2; version 1 stores
    every tensor row-major). Returns the bytes written."""
    def panels(name, shape):
        return version >= 2 and len(shape) == 2 and PANELS.match(name) is not None

    config = config_section(config_entries)
    tokenizer = tokenizer_section(vocab)

    config_offset = HEADER_SIZE
    tokenizer_offset = config_offset + len(config)
    directory_offset = tokenizer_offset + len(tokenizer)
    directory_size = 4 + sum(4 + len(name.encode("utf-8")) + 8 + 8 * len(shape) + 20
                             for name, shape, _ in tensors)
    data_offset = _align(directory_offset + directory_size)

    placements = []  # (offset, size) of each tensor's data
    cursor = data_offset
    for name, shape, _ in tensors:
        cursor = _align(cursor)
        size = (packed_numel(shape) if panels(name, shape) else numel_of(shape)) * 4
        placements.append((cursor, size))
        cursor += size
    data_size = cursor - data_offset

    for name, shape, _ in tensors:
        if not 1 <= len(shape) <= 4:
            raise FormatError("tensor %s has %d dimensions (the format allows 1 to 4)" % (name, len(shape)))

    def directory(checksums):
        entries = [struct.pack("<I", len(tensors))]
        for (name, shape, _), (offset, size), checksum in zip(tensors, placements, checksums):
            dtype = DTYPE_F32 | (LAYOUT_PANELS16 if panels(name, shape) else 0)
            entries.append(_str(name) + struct.pack("<II", dtype, len(shape))
                           + struct.pack("<%dQ" % len(shape), *shape)
                           + struct.pack("<QQI", offset, size, checksum))
        entries = b"".join(entries)
        assert len(entries) == directory_size
        return entries

    def header(checksum):
        h = MAGIC + struct.pack("<II", version, checksum) + struct.pack(
            "<8Q", config_offset, len(config), tokenizer_offset, len(tokenizer),
            directory_offset, directory_size, data_offset, data_size)
        assert len(h) == HEADER_SIZE
        return h

    # First pass: the layout with zero checksums, then the data, one tensor at a time.
    padding = b"\0" * (data_offset - directory_offset - directory_size)
    out = BlockWriter(f)
    out.write(header(0) + config + tokenizer + directory([0] * len(tensors)) + padding)
    position = data_offset
    checksums = []
    for (name, shape, produce), (offset, size) in zip(tensors, placements):
        values = produce()
        if len(values) != numel_of(shape):
            raise FormatError("tensor %s: produced %d values for shape %s" % (name, len(values), list(shape)))
        if panels(name, shape):
            values = pack_panels(values, *shape)
        out.write(b"\0" * (offset - position))
        data = f32_le_bytes(values)
        checksums.append(zlib.adler32(data))
        out.write(data)
        position = offset + size
    out.finish()
    # Second pass: the directory with the checksums, and the header's checksum over it all.
    covered = header(0)[16:] + config + tokenizer + directory(checksums) + padding
    f.seek(0)
    f.write(header(zlib.adler32(covered)) + covered[HEADER_SIZE - 16:])
    f.seek(position)
    return position


class ClipFile:
    """A .clip file read back (tools only: compare_torch.py rebuilds the PyTorch model from
    it). config: {key: value}; tokens: [str], merges: [(left, right)] as strings;
    tensors: {name: (shape, offset, size, packed)}; read(name) -> (shape, array('f')),
    row-major whatever the stored layout."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:8] != MAGIC or struct.unpack_from("<I", d, 8)[0] not in (1, VERSION):
            raise FormatError("%s: not a version 1 or %d .clip file" % (path, VERSION))
        offs = struct.unpack_from("<8Q", d, 16)
        self.config = self._config(offs[0])
        self.tokens, self.merges, self.sot_id, self.eot_id = self._tokenizer(offs[2])
        self.tensors = self._directory(offs[4])

    def _str(self, pos):
        n = struct.unpack_from("<I", self.data, pos)[0]
        return self.data[pos + 4:pos + 4 + n].decode("utf-8"), pos + 4 + n

    def _config(self, pos):
        (n,), pos = struct.unpack_from("<I", self.data, pos), pos + 4
        out = {}
        for _ in range(n):
            key, pos = self._str(pos)
            kind = struct.unpack_from("<I", self.data, pos)[0]
            pos += 4
            if kind == T_U32:
                out[key], pos = struct.unpack_from("<I", self.data, pos)[0], pos + 4
            elif kind == T_F32:
                out[key], pos = struct.unpack_from("<f", self.data, pos)[0], pos + 4
            elif kind == T_STR:
                out[key], pos = self._str(pos)
            elif kind == T_F32_ARRAY:
                count = struct.unpack_from("<I", self.data, pos)[0]
                out[key] = list(struct.unpack_from("<%df" % count, self.data, pos + 4))
                pos += 4 + 4 * count
            else:
                raise FormatError("%s: config key %s has unknown type %d" % (self.path, key, kind))
        return out

    def _tokenizer(self, pos):
        n_vocab, n_merges, sot, eot = struct.unpack_from("<4I", self.data, pos)
        pos += 16
        tokens = []
        for _ in range(n_vocab):
            t, pos = self._str(pos)
            tokens.append(t)
        flat = struct.unpack_from("<%dI" % (3 * n_merges), self.data, pos)
        merges = [(tokens[flat[3 * i]], tokens[flat[3 * i + 1]]) for i in range(n_merges)]
        return tokens, merges, sot, eot

    def _directory(self, pos):
        (n,), pos = struct.unpack_from("<I", self.data, pos), pos + 4
        out = {}
        for _ in range(n):
            name, pos = self._str(pos)
            dtype, n_dims = struct.unpack_from("<II", self.data, pos)
            shape = list(struct.unpack_from("<%dQ" % n_dims, self.data, pos + 8))
            pos += 8 + 8 * n_dims
            offset, size, _checksum = struct.unpack_from("<QQI", self.data, pos)
            pos += 20
            if dtype not in (DTYPE_F32, DTYPE_F32 | LAYOUT_PANELS16):
                raise FormatError("%s: tensor %s has dtype %#x (only f32 is read here)" % (self.path, name, dtype))
            out[name] = (shape, offset, size, dtype == DTYPE_F32 | LAYOUT_PANELS16)
        return out

    def read(self, name):
        shape, offset, size, packed = self.tensors[name]
        values = array.array("f")
        values.frombytes(self.data[offset:offset + size])
        if sys.byteorder == "big":
            values.byteswap()
        if packed:
            values = unpack_panels(values, *shape)
        return shape, values

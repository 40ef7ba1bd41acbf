"""An independent, deliberately plain CLIP forward pass in pure Python (no numpy).

It reads a .clip file with its own minimal reader written from docs/FORMAT.md and runs
the OpenAI architecture (clip/model.py) in double precision, so the C implementation can
be checked on model shapes for which no golden outputs exist. Slow, but fine for the
small random models the tests make.
"""
import array
import math
import struct
import sys


class ClipFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.raw = f.read()
        raw = self.raw
        assert raw[:8] == b"CLIPC\x00\x00\x01", "bad magic"
        (self.version,) = struct.unpack_from("<I", raw, 8)
        cfg_off, cfg_size, tok_off, tok_size, dir_off, dir_size, data_off, data_size = \
            struct.unpack_from("<8Q", raw, 16)
        self.config = self._config(cfg_off)
        self.tensors = self._directory(dir_off)
        self.cache = {}

    def _str(self, pos):
        (n,) = struct.unpack_from("<I", self.raw, pos)
        return self.raw[pos + 4:pos + 4 + n].decode("utf-8"), pos + 4 + n

    def _config(self, pos):
        (n,) = struct.unpack_from("<I", self.raw, pos)
        pos += 4
        cfg = {}
        for _ in range(n):
            key, pos = self._str(pos)
            (kind,) = struct.unpack_from("<I", self.raw, pos)
            pos += 4
            if kind == 1:
                (cfg[key],) = struct.unpack_from("<I", self.raw, pos)
                pos += 4
            elif kind == 2:
                (cfg[key],) = struct.unpack_from("<f", self.raw, pos)
                pos += 4
            elif kind == 3:
                cfg[key], pos = self._str(pos)
            elif kind == 4:
                (count,) = struct.unpack_from("<I", self.raw, pos)
                cfg[key] = list(struct.unpack_from("<%df" % count, self.raw, pos + 4))
                pos += 4 + 4 * count
            else:
                raise ValueError("unknown config type %d" % kind)
        return cfg

    def _directory(self, pos):
        (n,) = struct.unpack_from("<I", self.raw, pos)
        pos += 4
        tensors = {}
        for _ in range(n):
            name, pos = self._str(pos)
            dtype, n_dims = struct.unpack_from("<II", self.raw, pos)
            pos += 8
            dims = list(struct.unpack_from("<%dQ" % n_dims, self.raw, pos))
            pos += 8 * n_dims
            offset, size, checksum = struct.unpack_from("<QQI", self.raw, pos)
            pos += 20
            # f32 row-major, or in panels of 16 rows of f32, f16, q8_0 or q4_0 (layout 1),
            # or of bf16 with k in pairs (layout 2)
            assert dtype == 0 or (dtype >> 8 == 1 and (dtype & 0xFF) in (0, 1, 8, 9)) or dtype == 0x202, (name, dtype)
            tensors[name] = (dims, offset, size, dtype >> 8 != 0, dtype & 0xFF)
        return tensors

    def get(self, name):
        """Returns a tensor as a list of rows (2-D) or a flat list (1-D). A quantized matrix
        (q8_0, q4_0) comes back as a Weight that asks linear() to quantize its input as the
        C kernels do, a bf16 one to round its input to bf16 (docs/FORMAT.md, kernels/quant.h)."""
        dims, offset, size, panels, etype = self.tensors[name]
        if etype:
            if name not in self.cache:
                rows = DEQUANT[etype](self.raw[offset:offset + size], dims[0], dims[1])
                self.cache[name] = Weight(rows, {8: "int8", 9: "int8", 2: "bf16"}.get(etype))
            return self.cache[name]
        a = array.array("f")
        a.frombytes(self.raw[offset:offset + size])
        if sys.byteorder == "big":
            a.byteswap()
        flat = a.tolist()
        if panels:  # docs/FORMAT.md: row r's value p is at (r // 16) * 16 k + p * 16 + r % 16
            n, k = dims
            flat = [flat[(r // 16) * 16 * k + p * 16 + r % 16] for r in range(n) for p in range(k)]
            size = n * k * 4
        if len(dims) == 1:
            return flat
        cols = size // 4 // dims[0]
        return [flat[r * cols:(r + 1) * cols] for r in range(dims[0])]

    def row(self, name, r):
        dims, offset, size, panels, etype = self.tensors[name]
        if panels and etype:   # one row of a quantized table (the token embedding)
            return DEQUANT[etype](self.raw[offset:offset + size], dims[0], dims[1], [r])[0]
        if panels:
            return self.get(name)[r]
        cols = size // 4 // dims[0]
        return list(struct.unpack_from("<%df" % cols, self.raw, offset + 4 * r * cols))


# ---- The element types beyond f32, read from docs/FORMAT.md ("Element types in panels") ----
class Weight(list):
    """Rows of a dequantized matrix; quantize_input: what the kernels do to the input first
    ("int8": quantize per block and multiply int8 by int8; "bf16": round to bf16; None)."""

    def __init__(self, rows, quantize_input):
        super().__init__(rows)
        self.quantize_input = quantize_input


def _f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _half_panels(raw, n, k, convert, which=None):
    panel_bytes = (32 * k + 63) // 64 * 64
    rows = []
    for r in (range(n) if which is None else which):
        base = (r // 16) * panel_bytes + 2 * (r % 16)
        rows.append([convert(raw, base + 32 * p) for p in range(k)])
    return rows


def _f16(raw, n, k, which=None):
    return _half_panels(raw, n, k, lambda b, o: struct.unpack_from("<e", b, o)[0], which)


def _bf16(raw, n, k, which=None):
    # panels [ceil(k / 2)][16][2]: row r's value p at (r // 16) * panel + (p // 2) * 64 + (r % 16) * 4 + (p % 2) * 2
    panel_bytes = (32 * k + 63) // 64 * 64
    rows = []
    for r in (range(n) if which is None else which):
        base = (r // 16) * panel_bytes + 4 * (r % 16)
        rows.append([struct.unpack("<f", b"\0\0" + raw[base + 64 * (p // 2) + 2 * (p % 2):][:2])[0] for p in range(k)])
    return rows


def _blocks(raw, n, k, block_bytes, value, which=None):
    """q8_0 / q4_0: per panel ceil(k / 32) blocks, each opening with 16 f16 scales."""
    n_blocks = (k + 31) // 32
    rows = []
    for r in (range(n) if which is None else which):
        f, row = r % 16, []
        for p in range(k):
            b, g, c = p // 32, (p % 32) // 4, p % 4
            block = (r // 16) * n_blocks * block_bytes + b * block_bytes
            (d,) = struct.unpack_from("<e", raw, block + 2 * f)
            row.append(d * value(raw, block + 32, g, f, c))
        rows.append(row)
    return rows


def _q8_0(raw, n, k, which=None):
    return _blocks(raw, n, k, 544, lambda b, o, g, f, c: struct.unpack_from("<b", b, o + g * 64 + f * 4 + c)[0], which)


def _q4_0(raw, n, k, which=None):
    def value(b, o, g, f, c):
        byte = b[o + (g // 2) * 64 + f * 4 + c]
        return (byte >> 4 if g % 2 else byte & 15) - 8
    return _blocks(raw, n, k, 288, value, which)


DEQUANT = {1: _f16, 2: _bf16, 8: _q8_0, 9: _q4_0}


def quantize_row(row):
    """An activation row as the int8 products see it: per block of 32, scale max|x| / 127
    and values round-half-even(x * (127 / max|x|)), in float32 arithmetic."""
    out = []
    for b in range(0, len(row), 32):
        block = [_f32(v) for v in row[b:b + 32]]
        amax = max(abs(v) for v in block)
        if amax == 0:
            out += [0.0] * len(block)
            continue
        inv, d = _f32(127.0 / amax), _f32(amax / 127.0)
        out += [d * round(_f32(v * inv)) for v in block]
    return out


def round_bf16(v):
    """An activation as the bf16 products see it: as float32, a subnormal becomes zero, then
    the top 16 bits rounded to nearest even (the low 16 bits above 0x8000, or equal with
    the kept part odd, round up)."""
    (u,) = struct.unpack("<I", struct.pack("<f", _f32(v)))
    if u & 0x7f800000 == 0:
        return 0.0
    low, keep = u & 0xffff, u & 0xffff0000
    if low > 0x8000 or (low == 0x8000 and keep & 0x10000):
        keep += 0x10000
    return struct.unpack("<f", struct.pack("<I", keep))[0]


def linear(x, w, b=None):
    """x: rows [n, d_in]; w: [d_out, d_in]; y = x w^T + b."""
    mode = getattr(w, "quantize_input", None)
    if mode == "int8":
        x = [quantize_row(row) for row in x]
    elif mode == "bf16":
        x = [[round_bf16(v) for v in row] for row in x]
    out = []
    for row in x:
        y = [sum(a * c for a, c in zip(row, wr)) for wr in w]
        if b is not None:
            y = [v + bb for v, bb in zip(y, b)]
        out.append(y)
    return out


def layernorm(x, g, b, eps):
    out = []
    for row in x:
        mean = sum(row) / len(row)
        var = sum((v - mean) ** 2 for v in row) / len(row)
        inv = 1.0 / math.sqrt(var + eps)
        out.append([(v - mean) * inv * gg + bb for v, gg, bb in zip(row, g, b)])
    return out


def act(x, kind):
    if kind == "quick_gelu":
        return [[v / (1.0 + math.exp(-1.702 * v)) if v > -300 else 0.0 for v in row] for row in x]
    return [[0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in row] for row in x]


def attention(qkv, d, heads, causal):
    n = len(qkv)
    hd = d // heads
    out = [[0.0] * d for _ in range(n)]
    for h in range(heads):
        q = [r[h * hd:(h + 1) * hd] for r in qkv]
        k = [r[d + h * hd:d + (h + 1) * hd] for r in qkv]
        v = [r[2 * d + h * hd:2 * d + (h + 1) * hd] for r in qkv]
        for i in range(n):
            keys = range(i + 1) if causal else range(n)
            s = [sum(a * b for a, b in zip(q[i], k[j])) / math.sqrt(hd) for j in keys]
            m = max(s)
            e = [math.exp(x - m) for x in s]
            z = sum(e)
            for jj, j in enumerate(keys):
                p = e[jj] / z
                for c in range(hd):
                    out[i][h * hd + c] += p * v[j][c]
    return out


def tower(f, prefix, x, layers, d, heads, kind, eps, causal):
    for i in range(layers):
        p = "%s.blocks.%d." % (prefix, i)
        h = layernorm(x, f.get(p + "ln1.weight"), f.get(p + "ln1.bias"), eps)
        a = attention(linear(h, f.get(p + "attn.qkv.weight"), f.get(p + "attn.qkv.bias")), d, heads, causal)
        a = linear(a, f.get(p + "attn.out.weight"), f.get(p + "attn.out.bias"))
        x = [[u + v for u, v in zip(r, s)] for r, s in zip(x, a)]
        h = layernorm(x, f.get(p + "ln2.weight"), f.get(p + "ln2.bias"), eps)
        m = act(linear(h, f.get(p + "mlp.fc1.weight"), f.get(p + "mlp.fc1.bias")), kind)
        m = linear(m, f.get(p + "mlp.fc2.weight"), f.get(p + "mlp.fc2.bias"))
        x = [[u + v for u, v in zip(r, s)] for r, s in zip(x, m)]
    return x


def encode_image(f, pixels):
    """pixels: flat [3, S, S] list -> embedding [D] (not normalized)."""
    c = f.config
    s, p, d = c["image_size"], c["patch_size"], c["vision_width"]
    grid = s // p
    patches = []
    for py in range(grid):
        for px in range(grid):
            patches.append([pixels[(ch * s + py * p + ky) * s + px * p + kx]
                            for ch in range(3) for ky in range(p) for kx in range(p)])
    x = [f.get("vision.class_embed")] + linear(patches, f.get("vision.patch_embed.weight"))
    pos = f.get("vision.pos_embed")
    x = [[u + v for u, v in zip(r, q)] for r, q in zip(x, pos)]
    x = layernorm(x, f.get("vision.ln_pre.weight"), f.get("vision.ln_pre.bias"), c["ln_eps"])
    x = tower(f, "vision", x, c["vision_layers"], d, c["vision_heads"], c["activation"], c["ln_eps"], False)
    cls = layernorm(x[:1], f.get("vision.ln_post.weight"), f.get("vision.ln_post.bias"), c["ln_eps"])
    return linear(cls, f.get("vision.proj"))[0]


def encode_text(f, ids):
    """ids: the context-length list -> embedding [D] (not normalized), pooled at argmax."""
    c = f.config
    d = c["text_width"]
    x = [[u + v for u, v in zip(f.row("text.token_embed", t), f.row("text.pos_embed", i))]
         for i, t in enumerate(ids)]
    x = tower(f, "text", x, c["text_layers"], d, c["text_heads"], c["activation"], c["ln_eps"], True)
    eot = ids.index(max(ids))
    h = layernorm([x[eot]], f.get("text.ln_final.weight"), f.get("text.ln_final.bias"), c["ln_eps"])
    return linear(h, f.get("text.proj"))[0]

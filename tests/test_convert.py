"""test_convert.py - tools/convert.py against the reference data and hostile inputs.

The .clip outputs are parsed by a minimal reader written here from docs/FORMAT.md (not the
converter's code) and checked against golden-tiny's own files: config.json,
open_clip_config.json, vocab.json, merges.txt and the tensors of model.safetensors (read
by a small safetensors reader written here, mapped by a table written here). Both layouts
of golden-tiny and of a random model of other shapes (tools/make_random_model.py) must give
byte-identical tensors. Malicious pickles must be refused without running anything;
malformed safetensors and truncated archives must be refused cleanly, leaving no output.
With PyTorch available at /usr/bin/python3 (optional), torch-written checkpoints are
converted too: TorchScript (fp16), bf16 wrapped OpenCLIP checkpoints, strided views,
float64 and nn.Parameter values, and the legacy format is refused.

Run from the repo root: python3 -m unittest tests.test_convert (or discover).
"""

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
import zlib
from array import array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "clip")
GOLDEN = os.path.join(SHARED, "golden-tiny")
BPE_GZ = os.path.join(SHARED, "bpe_simple_vocab_16e6.txt.gz")
CONVERT = os.path.join(ROOT, "tools", "convert.py")
MAKE_RANDOM = os.path.join(ROOT, "tools", "make_random_model.py")
TORCH_PYTHON = "/usr/bin/python3"


def run_convert(*args):
    return subprocess.run([sys.executable, CONVERT] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


# --- an independent reader of the .clip format (docs/FORMAT.md) ---------------------------

class Cursor:
    def __init__(self, data, start, end):
        self.data, self.pos, self.end = data, start, end

    def take(self, n):
        assert self.pos + n <= self.end, "read past the end of a section"
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def f32(self):
        return struct.unpack("<f", self.take(4))[0]

    def str(self):
        return self.take(self.u32()).decode("utf-8")


def read_clip(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == bytes([0x43, 0x4C, 0x49, 0x50, 0x43, 0, 0, 1]), "bad magic"
    version, header_checksum = struct.unpack_from("<II", data, 8)
    assert version == 2
    fields = struct.unpack_from("<8Q", data, 16)
    assert header_checksum == zlib.adler32(data[16:fields[6]]), "header checksum"
    sections = [(fields[i], fields[i + 1]) for i in range(0, 8, 2)]  # config, tokenizer, dir, data
    end = 80
    for offset, size in sections:  # in order, inside the file, not overlapping
        assert offset >= end and offset + size <= len(data), (offset, size, len(data))
        end = offset + size
    assert sections[3][0] % 64 == 0

    c = Cursor(data, *_span(sections[0]))
    config = {}
    for _ in range(c.u32()):
        key, kind = c.str(), c.u32()
        assert key not in config, "duplicate config key " + key
        if kind == 1:
            config[key] = c.u32()
        elif kind == 2:
            config[key] = c.f32()
        elif kind == 3:
            config[key] = c.str()
        elif kind == 4:
            config[key] = [c.f32() for _ in range(c.u32())]
        else:
            raise AssertionError("unknown config type %d" % kind)
    assert c.pos == c.end, "config section has trailing bytes"

    c = Cursor(data, *_span(sections[1]))
    n_vocab, n_merges, sot, eot = c.u32(), c.u32(), c.u32(), c.u32()
    tokens = [c.str() for _ in range(n_vocab)]
    merges = [(c.u32(), c.u32(), c.u32()) for _ in range(n_merges)]
    assert c.pos == c.end, "tokenizer section has trailing bytes"

    c = Cursor(data, *_span(sections[2]))
    tensors = {}
    spans = []
    data_start, data_end = _span(sections[3])
    for _ in range(c.u32()):
        name, dtype, n_dims = c.str(), c.u32(), c.u32()
        assert dtype in (0, 0x100) and 1 <= n_dims <= 4, (name, dtype, n_dims)
        assert (dtype == 0x100) == (name in PANEL_TENSORS or ".blocks." in name and name.endswith(PANEL_SUFFIXES)), name
        dims = [c.u64() for _ in range(n_dims)]
        offset, size, checksum = c.u64(), c.u64(), c.u32()
        assert checksum == zlib.adler32(data[offset:offset + size]), "checksum of " + name
        numel = 1
        for d in dims:
            numel *= d
        if dtype == 0x100:  # panels of 16 rows: the last one padded with zero rows
            numel = (dims[0] + 15) // 16 * 16 * dims[1]
        assert size == numel * 4 and offset % 64 == 0, name
        assert data_start <= offset and offset + size <= data_end, name
        assert name not in tensors, "duplicate tensor " + name
        raw = data[offset:offset + size]
        if dtype == 0x100:
            raw = unpack_panels_plain(raw, dims[0], dims[1])
        tensors[name] = (dims, raw)
        spans.append((offset, offset + size))
    assert c.pos == c.end, "directory has trailing bytes"
    spans.sort()
    for (b0, e0), (b1, e1) in zip(spans, spans[1:]):
        assert b1 >= e0, "tensors overlap"
    return {"config": config, "tokens": tokens, "merges": merges, "sot": sot, "eot": eot, "tensors": tensors}


PANEL_TENSORS = ("vision.patch_embed.weight", "vision.proj", "text.proj")
PANEL_SUFFIXES = (".attn.qkv.weight", ".attn.out.weight", ".mlp.fc1.weight", ".mlp.fc2.weight")


def unpack_panels_plain(raw, n, k):
    """docs/FORMAT.md's panels back to row-major bytes: row r's value p is float
    (r // 16) * 16 k + p * 16 + r % 16; the padding rows must be zero."""
    values = array("f")
    values.frombytes(raw)
    out = array("f", [0.0]) * (n * k)
    for r in range(n):
        base = r // 16 * 16 * k + r % 16
        out[r * k:(r + 1) * k] = values[base:base + 16 * k:16]
    for r in range(n, (n + 15) // 16 * 16):
        base = r // 16 * 16 * k + r % 16
        assert not any(values[base:base + 16 * k:16]), "padding rows are not zero"
    return out.tobytes()


def _span(section):
    return section[0], section[0] + section[1]


# --- an independent safetensors reader and the HF -> .clip name table ----------------------

def read_safetensors_plain(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32"
        b, e = entry["data_offsets"]
        out[name] = (entry["shape"], data[8 + n + b:8 + n + e])
    return out


def transpose_bytes(raw, rows, cols):
    values = array("f")
    values.frombytes(raw)
    out = array("f", [0.0]) * (rows * cols)
    for r in range(rows):  # small tensors only: a plain loop is the clearest reference
        out[r::rows] = values[r * cols:(r + 1) * cols]
    return out.tobytes()


def expected_from_hf(st, n_vision_layers, n_text_layers):
    """Our tensor name -> bytes, from HF tensors, following docs/FORMAT.md's table."""
    exp = {}
    conv_shape, conv = st["vision_model.embeddings.patch_embedding.weight"]
    exp["vision.patch_embed.weight"] = ([conv_shape[0], conv_shape[1] * conv_shape[2] * conv_shape[3]], conv)
    simple = {
        "vision.class_embed": "vision_model.embeddings.class_embedding",
        "vision.pos_embed": "vision_model.embeddings.position_embedding.weight",
        "vision.ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "vision.ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "vision.ln_post.weight": "vision_model.post_layernorm.weight",
        "vision.ln_post.bias": "vision_model.post_layernorm.bias",
        "vision.proj": "visual_projection.weight",
        "text.token_embed": "text_model.embeddings.token_embedding.weight",
        "text.pos_embed": "text_model.embeddings.position_embedding.weight",
        "text.ln_final.weight": "text_model.final_layer_norm.weight",
        "text.ln_final.bias": "text_model.final_layer_norm.bias",
        "text.proj": "text_projection.weight",
    }
    for ours, hf in simple.items():
        exp[ours] = st[hf]
    for tower, hf_tower, n_layers in (("vision", "vision_model", n_vision_layers), ("text", "text_model", n_text_layers)):
        for i in range(n_layers):
            o, h = "%s.blocks.%d." % (tower, i), "%s.encoder.layers.%d." % (hf_tower, i)
            for ours, hf in (("ln1", "layer_norm1"), ("ln2", "layer_norm2"), ("attn.out", "self_attn.out_proj"),
                             ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
                for p in ("weight", "bias"):
                    exp[o + ours + "." + p] = st[h + hf + "." + p]
            for p in ("weight", "bias"):
                parts = [st[h + "self_attn.%s_proj.%s" % (c, p)] for c in "qkv"]
                shape = [3 * parts[0][0][0]] + parts[0][0][1:]
                exp[o + "attn.qkv." + p] = (shape, b"".join(raw for _, raw in parts))
    return {k: (list(s), raw) for k, (s, raw) in exp.items()}


# --- hostile pickles --------------------------------------------------------------------

def zip_with_pickle(path, pkl, extra=None):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", b"3\n")
        for name, data in (extra or {}).items():
            z.writestr(name, data)


class _Reduce:
    """Pickles as a call of `func(*args)` on load (the attack under test)."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def tensor_record_pickle(hooks_replacement):
    """A state dict with one real-looking tensor whose backward_hooks argument is replaced
    by an attacker's object (pickle bytes spliced in)."""
    good = (b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n("
            b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
            b"K\x00(K\x04tK\x01\x85\x89")
    return good + hooks_replacement + b"tRu."


sys.path.insert(0, os.path.join(ROOT, "tools"))
import tensor_data  # noqa: E402


class ElementConversions(unittest.TestCase):
    """The bulk dtype conversions and strided gathers against per-element Python."""

    def test_f16_every_bit_pattern(self):
        for order, fmt in (("little", "<"), ("big", ">")):
            raw = struct.pack("%s65536H" % fmt, *range(65536))
            got = struct.unpack("<65536f", bytes(tensor_data.f16_to_f32_le(raw, order)))
            want = struct.unpack("%s65536e" % fmt, raw)
            for bits, g, w in zip(range(65536), got, want):
                if w != w:
                    self.assertTrue(g != g, hex(bits))
                else:
                    self.assertEqual(struct.pack("<f", g), struct.pack("<f", w), hex(bits))

    def test_bf16_every_bit_pattern(self):
        raw = struct.pack("<65536H", *range(65536))
        got = tensor_data.bytes_to_f32(raw, "bf16", "little").tobytes()
        want = b"".join(struct.pack("=I", bits << 16) for bits in range(65536))
        self.assertEqual(got, want)
        got_be = tensor_data.bytes_to_f32(struct.pack(">65536H", *range(65536)), "bf16", "big").tobytes()
        self.assertEqual(got_be, want)

    def test_f64_and_foreign_f32(self):
        values = [0.0, -1.5, 3.25, 1e-3, -7e5]
        got = tensor_data.bytes_to_f32(struct.pack(">5d", *values), "f64", "big")
        self.assertEqual(got.tolist(), [struct.unpack("<f", struct.pack("<f", v))[0] for v in values])
        got = tensor_data.bytes_to_f32(struct.pack(">5f", *values), "f32", "big")
        self.assertEqual(got.tobytes(), struct.pack("=5f", *values))

    def test_gather_matches_index_arithmetic(self):
        import itertools
        import random
        rng = random.Random(1)
        for _ in range(40):
            shape = [rng.randint(1, 4) for _ in range(rng.randint(1, 4))]
            strides = [rng.choice([0, 1, 2, 3, 5, 7, 11]) for _ in shape]
            span = 1 + sum((d - 1) * st for d, st in zip(shape, strides))
            values = array("f", [float(i) for i in range(span)])
            got = tensor_data.gather(values, shape, strides).tolist()
            want = [float(sum(i * st for i, st in zip(index, strides)))
                    for index in itertools.product(*(range(d) for d in shape))]
            self.assertEqual(got, want, (shape, strides))


class GoldenTiny(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert os.path.isdir(GOLDEN), "missing reference data %s (is ../shared present?)" % GOLDEN
        cls.tmp = tempfile.mkdtemp(prefix="test_convert_")
        cls.openai_path = os.path.join(cls.tmp, "openai.clip")
        cls.hf_path = os.path.join(cls.tmp, "hf.clip")
        cls.openai_run = run_convert(os.path.join(GOLDEN, "openai.pt"), "-o", cls.openai_path, "-v",
                                     "--config", os.path.join(GOLDEN, "open_clip_config.json"),
                                     "--vocab", BPE_GZ)
        cls.hf_run = run_convert(GOLDEN, "-o", cls.hf_path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.openai_run.returncode, 0, self.openai_run.stderr)
        self.assertEqual(self.hf_run.returncode, 0, self.hf_run.stderr)
        self.a = read_clip(self.openai_path)
        self.b = read_clip(self.hf_path)

    def test_layouts_identical(self):
        self.assertEqual(list(self.a["tensors"]), list(self.b["tensors"]))
        for name in self.a["tensors"]:
            self.assertEqual(self.a["tensors"][name], self.b["tensors"][name], name)
        for key in ("tokens", "merges", "sot", "eot"):
            self.assertEqual(self.a[key], self.b[key], key)
        ca, cb = dict(self.a["config"]), dict(self.b["config"])
        self.assertEqual(ca.pop("name"), "openai.pt")
        self.assertEqual(cb.pop("name"), "golden-tiny")
        self.assertEqual(ca, cb)

    def test_config_matches_reference_configs(self):
        with open(os.path.join(GOLDEN, "config.json")) as f:
            hf = json.load(f)
        with open(os.path.join(GOLDEN, "open_clip_config.json")) as f:
            oc = json.load(f)
        v, t = hf["vision_config"], hf["text_config"]
        for clip in (self.a, self.b):
            c = clip["config"]
            self.assertEqual(c["image_size"], v["image_size"])
            self.assertEqual(c["image_size"], oc["vision_cfg"]["image_size"])
            self.assertEqual(c["patch_size"], v["patch_size"])
            self.assertEqual(c["vision_width"], v["hidden_size"])
            self.assertEqual(c["vision_layers"], v["num_hidden_layers"])
            self.assertEqual(c["vision_heads"], v["num_attention_heads"])
            self.assertEqual(c["vision_heads"], oc["vision_cfg"]["width"] // oc["vision_cfg"]["head_width"])
            self.assertEqual(c["vision_mlp"], v["intermediate_size"])
            self.assertEqual(c["text_vocab"], t["vocab_size"])
            self.assertEqual(c["text_context"], t["max_position_embeddings"])
            self.assertEqual(c["text_width"], t["hidden_size"])
            self.assertEqual(c["text_layers"], t["num_hidden_layers"])
            self.assertEqual(c["text_heads"], t["num_attention_heads"])
            self.assertEqual(c["text_heads"], oc["text_cfg"]["heads"])  # 2, not width // 64
            self.assertEqual(c["text_mlp"], t["intermediate_size"])
            self.assertEqual(c["embed_dim"], hf["projection_dim"])
            self.assertEqual(c["embed_dim"], oc["embed_dim"])
            self.assertEqual(c["activation"], v["hidden_act"])
            self.assertEqual(c["ln_eps"], struct.unpack("<f", struct.pack("<f", v["layer_norm_eps"]))[0])
            f32 = lambda xs: [struct.unpack("<f", struct.pack("<f", x))[0] for x in xs]  # noqa: E731
            self.assertEqual(c["image_mean"], f32([0.48145466, 0.4578275, 0.40821073]))
            self.assertEqual(c["image_std"], f32([0.26862954, 0.26130258, 0.27577711]))
            st = read_safetensors_plain(os.path.join(GOLDEN, "model.safetensors"))
            self.assertEqual(struct.pack("<f", c["logit_scale"]), st["logit_scale"][1])

    def test_tokenizer_matches_vocab_json_and_merges_txt(self):
        with open(os.path.join(GOLDEN, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        by_id = {i: tok for tok, i in vocab.items()}
        with open(os.path.join(GOLDEN, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().rstrip("\n").split("\n")[1:]
        for clip in (self.a, self.b):
            tokens = clip["tokens"]
            self.assertEqual(len(tokens), len(vocab))
            self.assertEqual(tokens, [by_id[i] for i in range(len(vocab))])
            self.assertEqual(tokens[clip["sot"]], "<|startoftext|>")
            self.assertEqual(tokens[clip["eot"]], "<|endoftext|>")
            self.assertEqual(len(clip["merges"]), len(lines))
            self.assertEqual(len(lines), 49408 - 2 * 256 - 2)
            for (left, right, merged), line in zip(clip["merges"], lines):
                self.assertEqual("%s %s" % (tokens[left], tokens[right]), line)
                self.assertEqual(tokens[merged], tokens[left] + tokens[right])

    def test_tensors_match_safetensors(self):
        st = read_safetensors_plain(os.path.join(GOLDEN, "model.safetensors"))
        c = self.a["config"]
        expected = expected_from_hf(st, c["vision_layers"], c["text_layers"])
        self.assertEqual(sorted(expected), sorted(self.a["tensors"]))
        for name, (shape, raw) in expected.items():
            self.assertEqual(self.a["tensors"][name], (shape, raw), name)

    def test_stdout_reports(self):
        out = self.openai_run.stdout
        self.assertIn("read 62 tensors", out)
        self.assertIn("visual.transformer.resblocks.1.mlp.c_proj.weight", out)  # -v lists names
        n_params = sum(len(raw) // 4 for _, raw in self.a["tensors"].values()) + 1
        self.assertIn("%d parameters" % n_params, out)
        self.assertIn(self.openai_path, out)
        self.assertNotIn("resblocks.1.mlp", self.hf_run.stdout)  # only with -v

    def test_openai_layout_without_config_uses_reference_heads(self):
        out = os.path.join(self.tmp, "noconfig.clip")
        src_dir = os.path.join(self.tmp, "noconfig")
        os.makedirs(src_dir, exist_ok=True)
        shutil.copy(os.path.join(GOLDEN, "openai.pt"), src_dir)
        r = run_convert(os.path.join(src_dir, "openai.pt"), "-o", out, "--vocab", BPE_GZ)
        self.assertEqual(r.returncode, 0, r.stderr)
        c = read_clip(out)["config"]
        self.assertEqual((c["vision_heads"], c["text_heads"], c["activation"]), (128 // 64, 64 // 64, "quick_gelu"))


class HostileInputs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test_convert_bad_")
        self.marker = os.path.join(self.tmp, "MARKER")
        self.out = os.path.join(self.tmp, "out.clip")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_refused(self, src, *words, extra_args=()):
        with open(self.out, "wb") as f:
            f.write(b"previous contents")
        r = run_convert(src, "-o", self.out, "--vocab", BPE_GZ, *extra_args)
        self.assertNotEqual(r.returncode, 0)
        lines = r.stderr.strip().split("\n")
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("convert.py: error: "), r.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertFalse(os.path.exists(self.marker), "the pickle ran code")
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), b"previous contents")
        leftovers = sorted(set(os.listdir(self.tmp)) - {"out.clip", os.path.basename(src)})
        self.assertEqual([n for n in leftovers if ".tmp" in n], [])  # .out.clip.tmp.XXXXXXXX
        return lines[0]

    def malicious(self, pkl, name="evil.pt"):
        path = os.path.join(self.tmp, name)
        zip_with_pickle(path, pkl, {"archive/data/0": b"\0" * 16})
        return path

    def test_os_system_global_reduce(self):
        pkl = b"cos\nsystem\n(X" + struct.pack("<I", len("touch " + self.marker)) \
            + ("touch " + self.marker).encode() + b"tR."
        self.assert_refused(self.malicious(pkl), "refusing to load", "os.system")

    def test_builtins_eval(self):
        code = "__import__('os').system('touch %s')" % self.marker
        pkl = pickle.dumps(_Reduce(eval, (code,)), protocol=2)
        self.assert_refused(self.malicious(pkl), "refusing to load", "builtins.eval")

    def test_subprocess_popen_stack_global(self):
        pkl = pickle.dumps(_Reduce(subprocess.Popen, (["touch", self.marker],)), protocol=4)
        self.assert_refused(self.malicious(pkl), "refusing to load", "subprocess.Popen")

    def test_posix_system(self):
        if not hasattr(os, "system") or os.system.__module__ != "posix":
            self.skipTest("os.system is not posix.system here")
        pkl = pickle.dumps(_Reduce(os.system, ("touch " + self.marker,)), protocol=2)
        self.assert_refused(self.malicious(pkl), "refusing to load", "posix.system")

    def test_reduce_nested_in_state_dict(self):
        evil = _Reduce(os.system, ("touch " + self.marker,))
        pkl = pickle.dumps({"state_dict": {"a": [1, {"b": (2, evil)}]}, "epoch": 3}, protocol=2)
        self.assert_refused(self.malicious(pkl), "refusing to load", "system")

    def test_reduce_inside_tensor_record(self):
        evil = pickle.dumps(_Reduce(os.system, ("touch " + self.marker,)), protocol=2)[2:-1]  # no PROTO/STOP
        pkl = tensor_record_pickle(evil)
        self.assert_refused(self.malicious(pkl), "refusing to load", "system")

    def test_inst_opcode(self):
        pkl = b"(S'touch " + self.marker.encode() + b"'\nios\nsystem\n."
        self.assert_refused(self.malicious(pkl), "refusing to load", "os.system")

    def test_garbage_pickle(self):
        self.assert_refused(self.malicious(b"\x80\x02}q\x00(X\x01\x00\x00\x00a"), "data.pkl")

    def test_truncated_pt(self):
        with open(os.path.join(GOLDEN, "openai.pt"), "rb") as f:
            data = f.read()
        for size in (len(data) // 2, 100, 0):
            path = os.path.join(self.tmp, "trunc.pt")
            with open(path, "wb") as f:
                f.write(data[:size])
            self.assert_refused(path, "trunc.pt")

    def test_storage_shorter_than_tensor(self):
        path = os.path.join(self.tmp, "short.pt")
        zip_with_pickle(path, tensor_record_pickle(b"ccollections\nOrderedDict\n)R"), {"archive/data/0": b"\0" * 8})
        self.assert_refused(path, "less than")

    def test_view_past_storage(self):
        pkl = tensor_record_pickle(b"ccollections\nOrderedDict\n)R").replace(b"K\x00(K\x04t", b"K\x02(K\x04t")
        path = os.path.join(self.tmp, "view.pt")
        zip_with_pickle(path, pkl, {"archive/data/0": b"\0" * 16})
        self.assert_refused(path, "runs past")

    def write_safetensors(self, header, data, header_len=None):
        raw = json.dumps(header).encode() if isinstance(header, dict) else header
        path = os.path.join(self.tmp, "bad.safetensors")
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data)
        return path

    def test_safetensors_overlapping(self):
        h = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
             "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
        self.assert_refused(self.write_safetensors(h, b"\0" * 24), "overlap")

    def test_safetensors_offsets_past_end(self):
        h = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
        self.assert_refused(self.write_safetensors(h, b"\0" * 12), "outside")

    def test_safetensors_shape_mismatch(self):
        h = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}
        self.assert_refused(self.write_safetensors(h, b"\0" * 16), "shape")

    def test_safetensors_bad_header_length(self):
        h = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
        self.assert_refused(self.write_safetensors(h, b"\0" * 4, header_len=1 << 40), "header length")
        self.assert_refused(self.write_safetensors(h, b"\0" * 4, header_len=len(h) + 100), "header length")
        self.assert_refused(self.write_safetensors(h, b"\0" * 4, header_len=len(h) - 3), "JSON")

    def test_safetensors_bad_entries(self):
        for header, word in (
                (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                 b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', "duplicate"),
                ({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, "dtype"),
                ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "shape"),
                ([1, 2], "object")):
            raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
            self.assert_refused(self.write_safetensors(raw, b"\0" * 4), word)

    def test_resnet_refused(self):
        from torchzip import write_state_dict
        path = os.path.join(self.tmp, "rn50.pt")
        write_state_dict(path, {"visual.conv1.weight": ([4, 3, 3, 3], b"\0" * 432),
                                "visual.layer1.0.conv1.weight": ([4, 4, 1, 1], b"\0" * 64)})
        self.assert_refused(path, "ResNet")


class RandomModel(unittest.TestCase):
    """A model of other shapes (tools/make_random_model.py), in both layouts."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_convert_rand_")
        cls.src = os.path.join(cls.tmp, "rand")
        cls.make = subprocess.run([sys.executable, MAKE_RANDOM, cls.src, "--preset", "small", "--seed", "7",
                                   "--merges", BPE_GZ, "--gelu", "--text-heads", "6"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.make.returncode, 0, self.make.stderr)

    def convert_both(self):
        a, b = os.path.join(self.tmp, "a.clip"), os.path.join(self.tmp, "b.clip")
        ra = run_convert(os.path.join(self.src, "openai.pt"), "-o", a)
        rb = run_convert(self.src, "-o", b)
        self.assertEqual(ra.returncode, 0, ra.stderr)
        self.assertEqual(rb.returncode, 0, rb.stderr)
        return read_clip(a), read_clip(b)

    def test_layouts_identical_and_match_configs(self):
        a, b = self.convert_both()
        self.assertEqual(a["tensors"], b["tensors"])
        self.assertEqual((a["tokens"], a["merges"]), (b["tokens"], b["merges"]))
        with open(os.path.join(self.src, "config.json")) as f:
            hf = json.load(f)
        with open(os.path.join(self.src, "open_clip_config.json")) as f:
            oc = json.load(f)
        for clip in (a, b):
            c = clip["config"]
            self.assertEqual(c["vision_heads"], oc["vision_cfg"]["width"] // oc["vision_cfg"]["head_width"])
            self.assertEqual(c["vision_heads"], hf["vision_config"]["num_attention_heads"])
            self.assertEqual(c["text_heads"], 6)
            self.assertEqual(c["activation"], "gelu")
            self.assertEqual(c["text_vocab"], 1000)
            self.assertEqual(c["image_size"] // c["patch_size"], 6)
        st = read_safetensors_plain(os.path.join(self.src, "model.safetensors"))
        expected = expected_from_hf(st, a["config"]["vision_layers"], a["config"]["text_layers"])
        self.assertEqual(expected, a["tensors"])

    def test_small_vocabulary_tokens(self):
        a, _ = self.convert_both()
        tokens = a["tokens"]
        self.assertEqual(len(tokens), 1000)
        self.assertEqual(len(a["merges"]), 1000 - 514)
        self.assertEqual(tokens[-2:], ["<|startoftext|>", "<|endoftext|>"])
        # The first 512 tokens are the 256 byte symbols, then the same with '</w>'.
        self.assertEqual(tokens[256:512], [t + "</w>" for t in tokens[:256]])
        self.assertEqual(len(set(tokens[:256])), 256)
        self.assertEqual(tokens[:94], [chr(c) for c in range(ord("!"), ord("~") + 1)])
        # Merge i makes token 512 + i, as in the reference's construction.
        for i, (left, right, merged) in enumerate(a["merges"]):
            self.assertEqual(merged, 512 + i)
            self.assertEqual(tokens[merged], tokens[left] + tokens[right])

    def test_hf_pytorch_model_bin(self):
        """An HF directory with pytorch_model.bin (a torch zip of HF names) instead of safetensors."""
        from torchzip import write_state_dict
        hf_dir = os.path.join(self.tmp, "hf_bin")
        os.makedirs(hf_dir, exist_ok=True)
        for name in ("config.json", "vocab.json", "merges.txt"):
            shutil.copy(os.path.join(self.src, name), hf_dir)
        st = read_safetensors_plain(os.path.join(self.src, "model.safetensors"))
        write_state_dict(os.path.join(hf_dir, "pytorch_model.bin"), {k: (tuple(s), raw) for k, (s, raw) in st.items()})
        out = os.path.join(self.tmp, "bin.clip")
        r = run_convert(hf_dir, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = read_clip(out)
        a, _ = self.convert_both()
        self.assertEqual(got["tensors"], a["tensors"])
        self.assertEqual(got["config"]["text_heads"], 6)

    def test_missing_tensor_and_inconsistent_config(self):
        bad = os.path.join(self.tmp, "bad")
        shutil.copytree(self.src, bad)
        with open(os.path.join(bad, "open_clip_config.json")) as f:
            cfg = json.load(f)
        cfg["text_cfg"]["width"] += 8
        with open(os.path.join(bad, "open_clip_config.json"), "w") as f:
            json.dump(cfg, f)
        r = run_convert(os.path.join(bad, "openai.pt"), "-o", os.path.join(bad, "x.clip"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("text_cfg.width", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(bad, "x.clip")))
        # Drop one tensor from the safetensors file.
        with open(os.path.join(bad, "model.safetensors"), "rb") as f:
            data = f.read()
        (n,) = struct.unpack_from("<Q", data, 0)
        header = json.loads(data[8:8 + n])
        del header["text_model.encoder.layers.1.mlp.fc2.bias"]
        raw = json.dumps(header).encode()
        with open(os.path.join(bad, "model.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
        r = run_convert(bad, "-o", os.path.join(bad, "x.clip"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("text_model.encoder.layers.1.mlp.fc2.bias is missing", r.stderr)


TORCH_SCRIPT = r'''
import collections, sys, torch, torch.nn as nn
golden, out = sys.argv[1], sys.argv[2]
sd = torch.load(golden)

class Block(nn.Module):
    def __init__(self, w, mask):
        super().__init__()
        self.attn = nn.MultiheadAttention(w, 2)
        self.ln_1 = nn.LayerNorm(w)
        self.mlp = nn.Sequential(collections.OrderedDict([("c_fc", nn.Linear(w, 4 * w)), ("c_proj", nn.Linear(4 * w, w))]))
        self.ln_2 = nn.LayerNorm(w)
        self.attn_mask = mask
    def forward(self, x):
        return x + self.mlp(self.ln_2(x + self.attn(self.ln_1(x), self.ln_1(x), self.ln_1(x), need_weights=False, attn_mask=self.attn_mask)[0]))

class Tower(nn.Module):
    def __init__(self, w, n, mask):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(w, mask) for _ in range(n)])
    def forward(self, x):
        return self.resblocks(x)

class Visual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 128, 16, 16, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(128))
        self.positional_embedding = nn.Parameter(torch.zeros(17, 128))
        self.ln_pre = nn.LayerNorm(128)
        self.transformer = Tower(128, 2, None)
        self.ln_post = nn.LayerNorm(128)
        self.proj = nn.Parameter(torch.zeros(128, 64))
    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(2, 0, 1)
        return self.ln_post(self.transformer(self.ln_pre(x + self.positional_embedding[1:, None]))) @ self.proj

class CLIP(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = Visual()
        self.transformer = Tower(64, 2, torch.full((77, 77), float("-inf")).triu(1))
        self.token_embedding = nn.Embedding(49408, 64)
        self.positional_embedding = nn.Parameter(torch.zeros(77, 64))
        self.ln_final = nn.LayerNorm(64)
        self.text_projection = nn.Parameter(torch.zeros(64, 64))
        self.logit_scale = nn.Parameter(torch.zeros([]))
    def forward(self, image, text):
        t = self.ln_final(self.transformer(self.token_embedding(text).permute(1, 0, 2) + self.positional_embedding[:, None]))
        return self.visual(image).sum() + (t @ self.text_projection).sum() * self.logit_scale.exp()

model = CLIP()
model.load_state_dict(sd)
model.eval()
ts = torch.jit.trace(model.half().float(), (torch.zeros(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.long)))
ts.half().save(out + "/ts_fp16.pt")
torch.save({k: v.half().float() for k, v in sd.items()}, out + "/ref_fp16.pt")

bf16 = {"module." + k: v.bfloat16() for k, v in sd.items()}
torch.save({"epoch": 3, "name": "x", "state_dict": bf16}, out + "/bf16.pt")
torch.save({k: v.bfloat16().float() for k, v in sd.items()}, out + "/ref_bf16.pt")

def strided(v):
    if v.dim() == 2:
        return v.t().contiguous().t()          # column-major storage
    if v.dim() == 1:
        return torch.cat([torch.zeros(5), v])[5:]  # storage offset 5
    if v.dim() == 4:
        return v.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    return v
torch.save({k: strided(v) for k, v in sd.items()}, out + "/strided.pt")
torch.save({k: v.double() for k, v in sd.items()}, out + "/f64.pt")
torch.save({k: nn.Parameter(v) for k, v in sd.items()}, out + "/params.pt")
torch.save(sd, out + "/legacy.pt", _use_new_zipfile_serialization=False)
'''


def torch_available():
    if not os.path.exists(TORCH_PYTHON):
        return False
    r = subprocess.run([TORCH_PYTHON, "-c", "import torch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


@unittest.skipUnless(torch_available(), "PyTorch at /usr/bin/python3 not available")
class TorchWritten(unittest.TestCase):
    """Checkpoints written by PyTorch itself (an optional reference)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_convert_torch_")
        r = subprocess.run([TORCH_PYTHON, "-c", TORCH_SCRIPT, os.path.join(GOLDEN, "openai.pt"), cls.tmp],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        assert r.returncode == 0, r.stderr
        shutil.copy(os.path.join(GOLDEN, "open_clip_config.json"), cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def converted(self, name):
        out = os.path.join(self.tmp, name + ".clip")
        r = run_convert(os.path.join(self.tmp, name), "-o", out, "--vocab", BPE_GZ)
        self.assertEqual(r.returncode, 0, r.stderr)
        return read_clip(out), r.stdout

    def assert_same_tensors(self, name, reference):
        got, _ = self.converted(name)
        ref, _ = self.converted(reference)
        self.assertEqual(sorted(got["tensors"]), sorted(ref["tensors"]))
        for k in ref["tensors"]:
            self.assertEqual(got["tensors"][k], ref["tensors"][k], k)
        self.assertEqual(got["config"]["logit_scale"], ref["config"]["logit_scale"])
        self.assertEqual(got["config"]["text_heads"], 2)

    def test_torchscript_fp16(self):
        self.assert_same_tensors("ts_fp16.pt", "ref_fp16.pt")
        _, stdout = self.converted("ts_fp16.pt")
        self.assertIn("TorchScript", stdout)

    def test_bf16_wrapped_state_dict(self):
        self.assert_same_tensors("bf16.pt", "ref_bf16.pt")

    def test_strided_f64_and_parameters(self):
        golden = os.path.join(self.tmp, "golden.pt")
        shutil.copy(os.path.join(GOLDEN, "openai.pt"), golden)
        for name in ("strided.pt", "f64.pt", "params.pt"):
            self.assert_same_tensors(name, "golden.pt")

    def test_legacy_format_refused(self):
        r = run_convert(os.path.join(self.tmp, "legacy.pt"), "-o", os.path.join(self.tmp, "legacy.clip"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("legacy", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "legacy.clip")))


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""convert.py - convert a CLIP checkpoint into the .clip weight file (docs/FORMAT.md).

    python3 tools/convert.py SRC -o OUT.clip [--vocab BPE_FILE] [--config CONFIG.json]
                             [--name NAME] [-v]

SRC is one of
  * an OpenAI / OpenCLIP checkpoint: a torch.save zip of the state dict (visual.conv1.weight,
    transformer.resblocks.0.attn.in_proj_weight, ...), possibly wrapped as {"state_dict": ...}
    with "module." prefixes, or OpenAI's released TorchScript archive; or the same names in
    a .safetensors file. Head counts are not stored in these: they come from an OpenCLIP
    model config (--config, or open_clip_config.json next to SRC) or, without one, from the
    reference's rule heads = width // 64, with QuickGELU.
  * a Hugging Face CLIPModel directory (config.json + model.safetensors or pytorch_model.bin,
    vocab.json, merges.txt), or a weights file inside one.
The tokenizer comes from --vocab (a CLIP merges file, gzip or plain; or a vocab.json with
merges.txt beside it) or from the files next to SRC.

Tensors are streamed: each is read, converted to float32 and written before the next, and
the output appears (os.replace of a temporary file) only when everything succeeded; a device
or FIFO output is written in place, "-o -" writes to standard output.
Python 3.8+ standard library only; nothing in a checkpoint is ever executed.
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import stat
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpe_vocab  # noqa: E402
import clipfile  # noqa: E402
import safetensors_file  # noqa: E402
import torchzip  # noqa: E402
from tensor_data import FormatError, numel_of, transpose_2d  # noqa: E402

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_LN_EPS = 1e-5
MAX_NAME_BYTES = 127  # clip_config.name is char[128]

# Tensors a checkpoint may carry that inference does not use.
IGNORED = re.compile(r"(^|\.)(attn_mask|position_ids)$|^(input_resolution|context_length|vocab_size)$")


class ConvertError(Exception):
    pass


# --- finding and opening the weights ------------------------------------------------------

class Checkpoint:
    """The tensors of SRC by name, which naming they use ("openai" or "hf"), and where
    sidecar files (configs, tokenizer) are looked for."""

    def __init__(self, path):
        self.path = path
        self.dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        self.tensors = {}
        self.kinds = []
        self.handles = []  # open archives/files the lazy tensors read from
        self.files = []    # every file the tensors come from (shards included)

    def close(self):
        for h in self.handles:
            h.close()
        self.handles = []


HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json",
              "pytorch_model.bin", "pytorch_model.bin.index.json")
OPENCLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def weights_file_of_dir(path):
    names = set(os.listdir(path))
    if "config.json" in names:
        for name in HF_WEIGHTS:
            if name in names:
                return os.path.join(path, name)
    for name in OPENCLIP_WEIGHTS:
        if name in names:
            return os.path.join(path, name)
    candidates = sorted(n for n in names if n.endswith((".pt", ".pth", ".bin", ".safetensors")))
    if len(candidates) == 1:
        return os.path.join(path, candidates[0])
    raise ConvertError("%s: cannot tell which file holds the weights (expected config.json with "
                       "model.safetensors or pytorch_model.bin, or a single .pt/.safetensors file; found %s)"
                       % (path, ", ".join(candidates) or "none"))


def open_checkpoint(src):
    if not os.path.exists(src):
        raise ConvertError("%s: no such file or directory" % src)
    ckpt = Checkpoint(src)
    weights = weights_file_of_dir(src) if os.path.isdir(src) else src
    ckpt.weights = weights
    try:
        if weights.endswith(".index.json"):
            ckpt.files.append(weights)
            _load_sharded(ckpt, weights)
        else:
            _load_file(ckpt, weights)
    except BaseException:
        ckpt.close()
        raise
    return ckpt


def _load_file(ckpt, path):
    ckpt.files.append(path)
    if path.endswith(".safetensors"):
        tensors, _, handle = safetensors_file.read_safetensors(path)
        kind = "safetensors"
    else:
        tensors, kind, handle = torchzip.read_checkpoint(path)
        kind = "TorchScript archive" if kind == "torchscript" else "torch zip"
    ckpt.handles.append(handle)
    for name, t in tensors.items():
        if name in ckpt.tensors:
            raise ConvertError("%s: tensor %s appears in more than one shard" % (path, name))
        ckpt.tensors[name] = t
    if kind not in ckpt.kinds:
        ckpt.kinds.append(kind)


def _load_sharded(ckpt, index_path):
    try:
        with open(index_path, "rb") as f:
            weight_map = json.loads(f.read().decode("utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConvertError("%s: not a valid shard index: %s" % (index_path, e))
    for shard in shards:
        if not isinstance(shard, str) or os.path.basename(shard) != shard:
            raise ConvertError("%s: invalid shard file name %r" % (index_path, shard))
        _load_file(ckpt, os.path.join(os.path.dirname(index_path), shard))


def detect_naming(ckpt):
    names = ckpt.tensors
    if any(n.startswith(("visual.layer1.", "visual.attnpool.")) for n in names):
        raise ConvertError("%s: ResNet image towers are not supported (only ViT)" % ckpt.weights)
    if any(n.startswith("visual.trunk.") for n in names):
        raise ConvertError("%s: timm image towers are not supported (only CLIP's own ViT)" % ckpt.weights)
    if "visual.conv1.weight" in names:
        if any(n.startswith("text.") for n in names):
            raise ConvertError("%s: OpenCLIP custom text towers are not supported" % ckpt.weights)
        return "openai"
    if any(n.startswith(("vision_model.", "text_model.")) for n in names):
        return "hf"
    raise ConvertError("%s: not a CLIP ViT checkpoint (found neither visual.conv1.weight, as in "
                       "OpenAI/OpenCLIP, nor vision_model.* tensors, as in Hugging Face; %d tensors)"
                       % (ckpt.weights, len(names)))


# --- picking source tensors ---------------------------------------------------------------

class Picker:
    """Hands out source tensors by name, checking shapes and recording what was used."""

    def __init__(self, ckpt):
        self.ckpt = ckpt
        self.used = []

    def get(self, name, shape=None, ndim=None):
        t = self.ckpt.tensors.get(name)
        if t is None:
            raise ConvertError("%s: tensor %s is missing" % (self.ckpt.weights, name))
        if ndim is not None and len(t.shape) != ndim:
            raise ConvertError("%s: %s has shape %s, expected %d dimensions"
                               % (self.ckpt.weights, name, list(t.shape), ndim))
        if shape is not None and (len(t.shape) != len(shape)
                                  or any(e is not None and e != d for e, d in zip(shape, t.shape))):
            expected = ["?" if e is None else e for e in shape]
            raise ConvertError("%s: %s has shape %s, expected [%s]" % (
                self.ckpt.weights, name, list(t.shape), ", ".join(map(str, expected))))
        if t.dtype not in ("f32", "f16", "bf16", "f64"):
            raise ConvertError("%s: %s has dtype %s; only float tensors can be converted"
                               % (self.ckpt.weights, name, t.dtype))
        if name not in self.used:
            self.used.append(name)
        return t

    def scalar(self, name):
        t = self.get(name)
        if t.numel != 1:
            raise ConvertError("%s: %s has shape %s, expected a scalar" % (self.ckpt.weights, name, list(t.shape)))
        return float(t.to_f32()[0])

    def count_layers(self, prefix):
        """Blocks named prefix + '<i>.': their indices must be exactly 0..L-1."""
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        indices = set()
        for name in self.ckpt.tensors:
            m = pattern.match(name)
            if m:
                indices.add(int(m.group(1)))
        if not indices:
            raise ConvertError("%s: no tensors named %s<i>.*" % (self.ckpt.weights, prefix))
        if indices != set(range(len(indices))):
            raise ConvertError("%s: the blocks %s<i> are not numbered 0..%d" % (self.ckpt.weights, prefix, len(indices) - 1))
        return len(indices)

    def check_all_used(self):
        unused = [n for n in self.ckpt.tensors if n not in set(self.used) and not IGNORED.search(n)]
        if unused:
            more = " (+%d more)" % (len(unused) - 5) if len(unused) > 5 else ""
            raise ConvertError("%s: unsupported architecture: unexpected tensors %s%s"
                               % (self.ckpt.weights, ", ".join(unused[:5]), more))


def as_is(t):
    return t.to_f32


def transposed(t):
    rows, cols = t.shape
    return lambda: transpose_2d(t.to_f32(), rows, cols)


def concatenated(*ts):
    def produce():
        out = ts[0].to_f32()
        for t in ts[1:]:
            out.extend(t.to_f32())
        return out
    return produce


# --- OpenAI / OpenCLIP naming ------------------------------------------------------------

def patch_geometry(p, conv_name, pos_name):
    """The patch embedding [W, 3, P, P] and the position embedding [grid^2 + 1, W] give the
    vision width, the patch size and the grid (both layouts store them the same way)."""
    conv = p.get(conv_name, ndim=4)
    vision_width, channels, patch, patch_w = conv.shape
    if channels != 3 or patch != patch_w:
        raise ConvertError("%s: %s has shape %s, expected [W, 3, P, P]"
                           % (p.ckpt.weights, conv_name, list(conv.shape)))
    vpos = p.get(pos_name, (None, vision_width))
    grid = math.isqrt(vpos.shape[0] - 1) if vpos.shape[0] > 1 else 0
    if grid < 1 or grid * grid != vpos.shape[0] - 1:
        raise ConvertError("%s: %s has %d rows; expected a square grid + 1"
                           % (p.ckpt.weights, pos_name, vpos.shape[0]))
    return conv, vpos, vision_width, patch, grid


def map_openai(p):
    """Source tensors in OpenAI layout -> (shape facts, [(our name, shape, produce)])."""
    conv, vpos, vision_width, patch, grid = patch_geometry(
        p, "visual.conv1.weight", "visual.positional_embedding")
    vproj = p.get("visual.proj", (vision_width, None))
    embed_dim = vproj.shape[1]
    tok = p.get("token_embedding.weight", ndim=2)
    text_vocab, text_width = tok.shape
    tpos = p.get("positional_embedding", (None, text_width))
    tproj = p.get("text_projection", (text_width, embed_dim))
    facts = {
        "image_size": patch * grid, "patch_size": patch, "vision_width": vision_width,
        "vision_layers": p.count_layers("visual.transformer.resblocks."),
        "vision_mlp": p.get("visual.transformer.resblocks.0.mlp.c_fc.weight", (None, vision_width)).shape[0],
        "text_vocab": text_vocab, "text_context": tpos.shape[0], "text_width": text_width,
        "text_layers": p.count_layers("transformer.resblocks."),
        "text_mlp": p.get("transformer.resblocks.0.mlp.c_fc.weight", (None, text_width)).shape[0],
        "embed_dim": embed_dim,
        "logit_scale": p.scalar("logit_scale"),
    }
    W = vision_width
    out = [("vision.patch_embed.weight", [W, 3 * patch * patch], as_is(conv)),
           ("vision.class_embed", [W], as_is(p.get("visual.class_embedding", (W,)))),
           ("vision.pos_embed", list(vpos.shape), as_is(vpos)),
           ("vision.ln_pre.weight", [W], as_is(p.get("visual.ln_pre.weight", (W,)))),
           ("vision.ln_pre.bias", [W], as_is(p.get("visual.ln_pre.bias", (W,))))]
    out += _openai_blocks(p, "visual.transformer.resblocks.", "vision", facts["vision_layers"], W, facts["vision_mlp"])
    out += [("vision.ln_post.weight", [W], as_is(p.get("visual.ln_post.weight", (W,)))),
            ("vision.ln_post.bias", [W], as_is(p.get("visual.ln_post.bias", (W,)))),
            ("vision.proj", [embed_dim, W], transposed(vproj))]
    W = text_width
    out += [("text.token_embed", [text_vocab, W], as_is(tok)),
            ("text.pos_embed", list(tpos.shape), as_is(tpos))]
    out += _openai_blocks(p, "transformer.resblocks.", "text", facts["text_layers"], W, facts["text_mlp"])
    out += [("text.ln_final.weight", [W], as_is(p.get("ln_final.weight", (W,)))),
            ("text.ln_final.bias", [W], as_is(p.get("ln_final.bias", (W,)))),
            ("text.proj", [embed_dim, W], transposed(tproj))]
    return facts, out


def _openai_blocks(p, prefix, tower, n_layers, W, M):
    out = []
    for i in range(n_layers):
        src, dst = "%s%d." % (prefix, i), "%s.blocks.%d." % (tower, i)
        for s, d, shape in (("ln_1.weight", "ln1.weight", [W]), ("ln_1.bias", "ln1.bias", [W]),
                            ("attn.in_proj_weight", "attn.qkv.weight", [3 * W, W]),
                            ("attn.in_proj_bias", "attn.qkv.bias", [3 * W]),
                            ("attn.out_proj.weight", "attn.out.weight", [W, W]),
                            ("attn.out_proj.bias", "attn.out.bias", [W]),
                            ("ln_2.weight", "ln2.weight", [W]), ("ln_2.bias", "ln2.bias", [W]),
                            ("mlp.c_fc.weight", "mlp.fc1.weight", [M, W]), ("mlp.c_fc.bias", "mlp.fc1.bias", [M]),
                            ("mlp.c_proj.weight", "mlp.fc2.weight", [W, M]), ("mlp.c_proj.bias", "mlp.fc2.bias", [W])):
            out.append((dst + d, shape, as_is(p.get(src + s, shape))))
    return out


def openclip_settings(cfg_path, facts):
    """Heads, activation and preprocessing from an OpenCLIP model config, checked against
    the shapes found in the checkpoint."""
    cfg = load_json(cfg_path)
    model = cfg.get("model_cfg", cfg) if isinstance(cfg.get("model_cfg"), dict) else cfg
    vision = model.get("vision_cfg") or {}
    text = model.get("text_cfg") or {}
    if not isinstance(vision, dict) or not isinstance(text, dict):
        raise ConvertError("%s: vision_cfg and text_cfg must be objects" % cfg_path)
    for section, key, ok in (
            (vision, "timm_model_name", lambda v: not v), (vision, "attentional_pool", lambda v: not v),
            (vision, "no_ln_pre", lambda v: not v), (vision, "final_ln_after_pool", lambda v: not v),
            (vision, "input_patchnorm", lambda v: not v), (vision, "ls_init_value", lambda v: v is None),
            (vision, "pool_type", lambda v: v in (None, "tok")),
            (vision, "pos_embed_type", lambda v: v in (None, "learnable")),
            (text, "hf_model_name", lambda v: not v), (text, "proj_bias", lambda v: not v),
            (text, "pool_type", lambda v: v in (None, "argmax")), (text, "embed_cls", lambda v: not v),
            (text, "no_causal_mask", lambda v: not v), (text, "ls_init_value", lambda v: v is None),
            (text, "proj_type", lambda v: v in (None, "linear") and not text.get("proj_bias"))):
        if key in section and not ok(section[key]):
            raise ConvertError("%s: %s = %r is not supported" % (cfg_path, key, section[key]))

    def side(value):
        if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
            return value[0]
        return value

    for section, key, fact, label in (
            (model, "embed_dim", "embed_dim", "embed_dim"),
            (vision, "image_size", "image_size", "vision_cfg.image_size"),
            (vision, "patch_size", "patch_size", "vision_cfg.patch_size"),
            (vision, "width", "vision_width", "vision_cfg.width"),
            (vision, "layers", "vision_layers", "vision_cfg.layers"),
            (text, "context_length", "text_context", "text_cfg.context_length"),
            (text, "vocab_size", "text_vocab", "text_cfg.vocab_size"),
            (text, "width", "text_width", "text_cfg.width"),
            (text, "layers", "text_layers", "text_cfg.layers")):
        if key in section and side(section[key]) != facts[fact]:
            raise ConvertError("%s says %s = %r, but the checkpoint has %d"
                               % (cfg_path, label, section[key], facts[fact]))
    head_width = vision.get("head_width", 64)
    text_heads = text.get("heads", 8)
    if not isinstance(head_width, int) or head_width <= 0 or facts["vision_width"] % head_width:
        raise ConvertError("%s: vision_cfg.head_width = %r does not divide the width %d"
                           % (cfg_path, head_width, facts["vision_width"]))
    settings = {"vision_heads": facts["vision_width"] // head_width, "text_heads": text_heads,
                "activation": "quick_gelu" if model.get("quick_gelu") else "gelu"}
    preprocess = cfg.get("preprocess_cfg") or {}
    if isinstance(preprocess, dict):
        if "mean" in preprocess:
            settings["image_mean"] = preprocess["mean"]
        if "std" in preprocess:
            settings["image_std"] = preprocess["std"]
    return settings


# --- Hugging Face naming -----------------------------------------------------------------

HF_TEXT_DEFAULTS = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
                    "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
                    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
HF_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "image_size": 224, "patch_size": 32,
                      "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}


def map_hf(p):
    """Source tensors in Hugging Face layout -> (shape facts, [(our name, shape, produce)])."""
    conv, vpos, vision_width, patch, grid = patch_geometry(
        p, "vision_model.embeddings.patch_embedding.weight",
        "vision_model.embeddings.position_embedding.weight")
    vproj = p.get("visual_projection.weight", (None, vision_width))
    embed_dim = vproj.shape[0]
    tok = p.get("text_model.embeddings.token_embedding.weight", ndim=2)
    text_vocab, text_width = tok.shape
    tpos = p.get("text_model.embeddings.position_embedding.weight", (None, text_width))
    tproj = p.get("text_projection.weight", (embed_dim, text_width))
    vprefix, tprefix = "vision_model.encoder.layers.", "text_model.encoder.layers."
    facts = {
        "image_size": patch * grid, "patch_size": patch, "vision_width": vision_width,
        "vision_layers": p.count_layers(vprefix),
        "vision_mlp": p.get(vprefix + "0.mlp.fc1.weight", (None, vision_width)).shape[0],
        "text_vocab": text_vocab, "text_context": tpos.shape[0], "text_width": text_width,
        "text_layers": p.count_layers(tprefix),
        "text_mlp": p.get(tprefix + "0.mlp.fc1.weight", (None, text_width)).shape[0],
        "embed_dim": embed_dim,
        "logit_scale": p.scalar("logit_scale"),
    }
    W = vision_width
    out = [("vision.patch_embed.weight", [W, 3 * patch * patch], as_is(conv)),
           ("vision.class_embed", [W], as_is(p.get("vision_model.embeddings.class_embedding", (W,)))),
           ("vision.pos_embed", list(vpos.shape), as_is(vpos)),
           ("vision.ln_pre.weight", [W], as_is(p.get("vision_model.pre_layrnorm.weight", (W,)))),
           ("vision.ln_pre.bias", [W], as_is(p.get("vision_model.pre_layrnorm.bias", (W,))))]
    out += _hf_blocks(p, vprefix, "vision", facts["vision_layers"], W, facts["vision_mlp"])
    out += [("vision.ln_post.weight", [W], as_is(p.get("vision_model.post_layernorm.weight", (W,)))),
            ("vision.ln_post.bias", [W], as_is(p.get("vision_model.post_layernorm.bias", (W,)))),
            ("vision.proj", [embed_dim, W], as_is(vproj))]
    W = text_width
    out += [("text.token_embed", [text_vocab, W], as_is(tok)),
            ("text.pos_embed", list(tpos.shape), as_is(tpos))]
    out += _hf_blocks(p, tprefix, "text", facts["text_layers"], W, facts["text_mlp"])
    out += [("text.ln_final.weight", [W], as_is(p.get("text_model.final_layer_norm.weight", (W,)))),
            ("text.ln_final.bias", [W], as_is(p.get("text_model.final_layer_norm.bias", (W,)))),
            ("text.proj", [embed_dim, W], as_is(tproj))]
    return facts, out


def _hf_blocks(p, prefix, tower, n_layers, W, M):
    out = []
    for i in range(n_layers):
        src, dst = "%s%d." % (prefix, i), "%s.blocks.%d." % (tower, i)
        qkv_w = [p.get(src + "self_attn.%s_proj.weight" % c, (W, W)) for c in "qkv"]
        qkv_b = [p.get(src + "self_attn.%s_proj.bias" % c, (W,)) for c in "qkv"]
        for s, d, shape in (("layer_norm1.weight", "ln1.weight", [W]), ("layer_norm1.bias", "ln1.bias", [W]),
                            (None, "attn.qkv.weight", [3 * W, W]), (None, "attn.qkv.bias", [3 * W]),
                            ("self_attn.out_proj.weight", "attn.out.weight", [W, W]),
                            ("self_attn.out_proj.bias", "attn.out.bias", [W]),
                            ("layer_norm2.weight", "ln2.weight", [W]), ("layer_norm2.bias", "ln2.bias", [W]),
                            ("mlp.fc1.weight", "mlp.fc1.weight", [M, W]), ("mlp.fc1.bias", "mlp.fc1.bias", [M]),
                            ("mlp.fc2.weight", "mlp.fc2.weight", [W, M]), ("mlp.fc2.bias", "mlp.fc2.bias", [W])):
            if s is None:
                produce = concatenated(*(qkv_w if d.endswith("weight") else qkv_b))
            else:
                produce = as_is(p.get(src + s, shape))
            out.append((dst + d, shape, produce))
    return out


def hf_settings(cfg_path, facts):
    cfg = load_json(cfg_path)
    if cfg.get("model_type", "clip") != "clip":
        raise ConvertError("%s: model_type %r is not supported (only clip)" % (cfg_path, cfg.get("model_type")))

    def section(name):
        merged = dict(cfg.get(name) or {})
        merged.update(cfg.get(name + "_dict") or {})  # older configs keep overrides here
        return merged

    text = dict(HF_TEXT_DEFAULTS, **section("text_config"))
    vision = dict(HF_VISION_DEFAULTS, **section("vision_config"))
    for sect, key, fact, label in (
            (vision, "hidden_size", "vision_width", "vision_config.hidden_size"),
            (vision, "intermediate_size", "vision_mlp", "vision_config.intermediate_size"),
            (vision, "num_hidden_layers", "vision_layers", "vision_config.num_hidden_layers"),
            (vision, "image_size", "image_size", "vision_config.image_size"),
            (vision, "patch_size", "patch_size", "vision_config.patch_size"),
            (text, "hidden_size", "text_width", "text_config.hidden_size"),
            (text, "intermediate_size", "text_mlp", "text_config.intermediate_size"),
            (text, "num_hidden_layers", "text_layers", "text_config.num_hidden_layers"),
            (text, "max_position_embeddings", "text_context", "text_config.max_position_embeddings"),
            (text, "vocab_size", "text_vocab", "text_config.vocab_size"),
            (cfg, "projection_dim", "embed_dim", "projection_dim")):
        if key in sect and sect[key] != facts[fact]:
            raise ConvertError("%s says %s = %r, but the checkpoint has %d"
                               % (cfg_path, label, sect[key], facts[fact]))
    if vision["hidden_act"] != text["hidden_act"] or vision["hidden_act"] not in ("quick_gelu", "gelu"):
        raise ConvertError("%s: hidden_act %r / %r is not supported (quick_gelu or gelu, the same in both towers)"
                           % (cfg_path, vision["hidden_act"], text["hidden_act"]))
    if vision["layer_norm_eps"] != text["layer_norm_eps"]:
        raise ConvertError("%s: the towers use different layer_norm_eps (%r, %r)"
                           % (cfg_path, vision["layer_norm_eps"], text["layer_norm_eps"]))
    settings = {"vision_heads": vision["num_attention_heads"], "text_heads": text["num_attention_heads"],
                "activation": vision["hidden_act"], "ln_eps": vision["layer_norm_eps"]}
    pre_path = os.path.join(os.path.dirname(cfg_path), "preprocessor_config.json")
    if os.path.exists(pre_path):
        pre = load_json(pre_path)
        if "image_mean" in pre:
            settings["image_mean"] = pre["image_mean"]
        if "image_std" in pre:
            settings["image_std"] = pre["image_std"]
    return settings


def load_json(path):
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise ConvertError("%s: %s" % (path, e.strerror or e))
    except ValueError as e:
        raise ConvertError("%s: not valid JSON: %s" % (path, e))
    if not isinstance(value, dict):
        raise ConvertError("%s: expected a JSON object" % path)
    return value


# --- putting it together -----------------------------------------------------------------

def find_tokenizer(args, ckpt, n_vocab):
    if args.vocab:
        if args.vocab.endswith(".json"):
            merges = os.path.join(os.path.dirname(os.path.abspath(args.vocab)), "merges.txt")
            return bpe_vocab.vocab_from_hf(args.vocab, merges, n_vocab)
        return bpe_vocab.vocab_from_merges_file(args.vocab, n_vocab)
    beside = lambda name: os.path.join(ckpt.dir, name)  # noqa: E731
    if os.path.exists(beside("vocab.json")) and os.path.exists(beside("merges.txt")):
        return bpe_vocab.vocab_from_hf(beside("vocab.json"), beside("merges.txt"), n_vocab)
    for name in ("bpe_simple_vocab_16e6.txt.gz", "merges.txt"):
        if os.path.exists(beside(name)):
            return bpe_vocab.vocab_from_merges_file(beside(name), n_vocab)
    raise ConvertError("no tokenizer next to %s (vocab.json + merges.txt, bpe_simple_vocab_16e6.txt.gz "
                       "or merges.txt); pass --vocab" % ckpt.path)


def settle_config(args, ckpt, naming, facts):
    """The complete config: shapes from the tensors, the rest from the sidecar config."""
    config = dict(facts)
    if naming == "openai":
        cfg_path = args.config or os.path.join(ckpt.dir, "open_clip_config.json")
        if args.config or os.path.exists(cfg_path):
            config.update(openclip_settings(cfg_path, facts))
            config["config_source"] = cfg_path
        else:  # OpenAI's build_model convention
            config.update({"vision_heads": facts["vision_width"] // 64, "text_heads": facts["text_width"] // 64,
                           "activation": "quick_gelu", "config_source": "OpenAI defaults (heads = width // 64)"})
    else:
        cfg_path = args.config or os.path.join(ckpt.dir, "config.json")
        if not os.path.exists(cfg_path):
            raise ConvertError("%s: Hugging Face weights need their config.json (head counts); pass --config"
                               % ckpt.weights)
        config.update(hf_settings(cfg_path, facts))
        config["config_source"] = cfg_path
    config.setdefault("ln_eps", DEFAULT_LN_EPS)
    config.setdefault("image_mean", CLIP_MEAN)
    config.setdefault("image_std", CLIP_STD)
    for tower in ("vision", "text"):
        heads, width = config[tower + "_heads"], config[tower + "_width"]
        if not isinstance(heads, int) or isinstance(heads, bool) or heads <= 0 or width % heads:
            raise ConvertError("%s heads = %r do not divide the width %d" % (tower, heads, width))
    for key in ("image_mean", "image_std"):
        v = config[key]
        if (not isinstance(v, (list, tuple)) or len(v) != 3
                or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
                or (key == "image_std" and min(v) <= 0)):
            raise ConvertError("%s must be 3 finite numbers (std > 0), got %r" % (key, v))
    if not isinstance(config["ln_eps"], (int, float)) or not 0 < config["ln_eps"] < 1:
        raise ConvertError("ln_eps %r is not a small positive number" % (config["ln_eps"],))
    if not math.isfinite(config["logit_scale"]):
        raise ConvertError("logit_scale is %r" % config["logit_scale"])
    if config["image_size"] % config["patch_size"]:
        raise ConvertError("image size %d is not a multiple of the patch size %d"
                           % (config["image_size"], config["patch_size"]))
    return config


def model_name(args):
    if args.name is not None:
        name = args.name
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ConvertError("--name is longer than %d bytes" % MAX_NAME_BYTES)
        return name
    name = os.path.basename(os.path.normpath(os.path.abspath(args.src)))
    while len(name.encode("utf-8")) > MAX_NAME_BYTES:
        name = name[:-1]
    return name


def config_entries(config, name):
    U, F, S, A = clipfile.T_U32, clipfile.T_F32, clipfile.T_STR, clipfile.T_F32_ARRAY
    entries = [(k, U, config[k]) for k in (
        "image_size", "patch_size", "vision_width", "vision_layers", "vision_heads", "vision_mlp",
        "text_vocab", "text_context", "text_width", "text_layers", "text_heads", "text_mlp", "embed_dim")]
    entries += [("activation", S, config["activation"]), ("ln_eps", F, float(config["ln_eps"])),
                ("image_mean", A, [float(x) for x in config["image_mean"]]),
                ("image_std", A, [float(x) for x in config["image_std"]]),
                ("logit_scale", F, config["logit_scale"]), ("name", S, name)]
    return entries


say_to = None  # None: stdout; stderr when the output itself goes to stdout (-o -)


def say(text):
    """Progress output; a closed stdout (| head) must not abort the conversion."""
    try:
        print(text, file=say_to or sys.stdout)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def describe(config):
    c = config
    return ("vision: %dx%d image, patch %d, width %d, %d layers, %d heads, mlp %d\n"
            "text:   vocab %d, context %d, width %d, %d layers, %d heads, mlp %d\n"
            "joint:  embed %d, %s, ln_eps %g, logit_scale %.6g\n"
            "image mean %s, std %s\n"
            "settings from %s" % (
                c["image_size"], c["image_size"], c["patch_size"], c["vision_width"], c["vision_layers"],
                c["vision_heads"], c["vision_mlp"], c["text_vocab"], c["text_context"], c["text_width"],
                c["text_layers"], c["text_heads"], c["text_mlp"], c["embed_dim"], c["activation"],
                c["ln_eps"], c["logit_scale"], list(c["image_mean"]), list(c["image_std"]), c["config_source"]))


def refuse_input_as_output(output, inputs):
    """An output that is one of the inputs (the checkpoint, a shard, the config, the
    vocabulary; also through a link or a hard link) would be destroyed while it is read."""
    if output == "-":
        return
    for path in inputs:
        try:
            if path and os.path.samefile(output, path):
                raise ConvertError("%s: the output is an input of this conversion (%s); choose another "
                                   "output path" % (output, path))
        except OSError:  # either does not exist (yet): no conflict
            pass


class output_file:
    """Where OUT goes decides how it is written (the same rules as clip_run's io/atomic.c):
      * a regular file or a new path: a hidden temp file beside it, renamed over it when
        complete, with the old file's permissions. An interrupted or failed run leaves a
        previous OUT intact (SIGKILL may leave the .OUT.tmp.XXXXXXXX behind).
      * a symbolic link is followed: the file it names is replaced, the link stays a link.
      * a device or FIFO (/dev/null, a named pipe): written in place, never renamed over.
      * "-": standard output (refused when it is a terminal; progress goes to stderr).
    The writer seeks back to fill in checksums, which a pipe cannot do: a stream or device
    gets the file through an unnamed spool file once it is complete."""

    def __init__(self, path):
        self.path, self.tmp_path, self.f, self.stream = path, None, None, None

    def _spool(self, stream):
        self.stream = stream
        self.f = tempfile.TemporaryFile()
        return self.f

    def __enter__(self):
        if self.path == "-":
            if sys.stdout.isatty():
                raise ConvertError("-o -: standard output is a terminal; redirect it to a file or a pipe")
            sys.stdout.flush()
            return self._spool(sys.stdout.buffer)
        # os.stat follows links as open() will, /proc's magic ones included (/dev/stdout ->
        # /proc/self/fd/1 -> a pipe has no path of its own): only a regular file or a new
        # path needs the real name (realpath also follows a dangling link to its end).
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise ConvertError("%s: is a directory" % self.path)
        if st is not None and stat.S_ISSOCK(st.st_mode):
            raise ConvertError("%s: is a socket; cannot write an output file to it" % self.path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            return self._spool(open(self.path, "wb"))  # device or FIFO: in place
        target = os.path.realpath(self.path)
        out_dir = os.path.dirname(target)
        if not os.path.isdir(out_dir):
            raise ConvertError("%s: the output directory %s does not exist" % (self.path, out_dir))
        # The temp file is registered for the signal handler (_on_signal removes it) while the
        # signals wait, so none finds a file that exists but is not yet known. Removal cannot
        # be left to exception handling alone: a signal that was pending during mkstemp is
        # raised at the unblock, which may be outside any try that knows the file.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_SIGNALS)
        try:
            fd, self.tmp_path = tempfile.mkstemp(dir=out_dir, prefix="." + os.path.basename(target) + ".tmp.")
            _temp_in_progress[0] = self.tmp_path
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.target = target
        try:
            if st is not None:
                try:
                    os.chown(self.tmp_path, st.st_uid, st.st_gid)  # as root: keep the owner too
                except OSError:
                    pass
                os.chmod(self.tmp_path, stat.S_IMODE(st.st_mode))
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.tmp_path, 0o666 & ~umask)
            self.f = os.fdopen(fd, "wb")
        except BaseException:   # e.g. a failed chmod: __exit__ will not run
            os.close(fd)
            self._discard()
            raise
        return self.f

    def _discard(self):
        # Unlink, then unregister: a signal between the two finds the file gone already.
        try:
            os.unlink(self.tmp_path)
        except OSError:
            pass
        _temp_in_progress[0] = None
        self.tmp_path = None

    def __exit__(self, kind, value, tb):
        if self.stream is not None:  # stdout or in place: copy the finished spool
            try:
                if kind is None:
                    self.f.seek(0)
                    shutil.copyfileobj(self.f, self.stream, clipfile.BlockWriter.BLOCK)
                    self.stream.flush()
            finally:
                self.f.close()
                if self.stream is not sys.stdout.buffer:
                    self.stream.close()
            return False
        try:
            if kind is None:
                self.f.flush()
                os.fsync(self.f.fileno())
            self.f.close()
            if kind is None:
                os.replace(self.tmp_path, self.target)
                _temp_in_progress[0] = None  # a late signal's unlink would now find nothing
                self.tmp_path = None
        finally:
            if self.tmp_path is not None:
                self._discard()
        return False


def convert(args):
    global say_to
    try:   # "-", or another name of the same stream (/dev/stdout, /proc/self/fd/1)
        to_stdout = args.output == "-" or os.path.samestat(os.stat(args.output), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):
        to_stdout = False
    if to_stdout:
        say_to = sys.stderr  # stdout carries the file
    refuse_input_as_output(args.output, [args.src, args.vocab, args.config])
    ckpt = open_checkpoint(args.src)
    try:
        naming = detect_naming(ckpt)
        picker = Picker(ckpt)
        facts, outputs = (map_openai if naming == "openai" else map_hf)(picker)
        picker.check_all_used()
        config = settle_config(args, ckpt, naming, facts)
        vocab = find_tokenizer(args, ckpt, config["text_vocab"])
        bpe_vocab.check_vocab(vocab)
        name = model_name(args)
        refuse_input_as_output(args.output, ckpt.files + [config["config_source"]] + vocab.files)

        layout = "OpenAI/OpenCLIP names" if naming == "openai" else "Hugging Face names"
        say("read %d tensors from %s (%s, %s)" % (len(picker.used), ckpt.weights, "+".join(ckpt.kinds), layout))
        if args.verbose:
            used = set(picker.used)
            for n in (n for n in ckpt.tensors if n in used):
                t = ckpt.tensors[n]
                say("  %-60s %-16s %s" % (n, list(t.shape), t.dtype))
        say(describe(config))
        say("tokenizer: %d tokens, %d merges, sot %d, eot %d, from %s"
              % (len(vocab.tokens), len(vocab.merges), vocab.sot_id, vocab.eot_id, vocab.source))
        n_params = sum(numel_of(shape) for _, shape, _ in outputs) + 1  # + logit_scale
        say("model: %d parameters, %.1f MB as float32" % (n_params, n_params * 4 / 1e6))

        with output_file(args.output) as f:
            size = clipfile.write_clip(f, config_entries(config, name), vocab, outputs,
                                      version=args.format_version)
        say("wrote %s (%d bytes, name %r)" % (args.output, size, name))
    finally:
        ckpt.close()


# The temp file of the write in progress ([path] or [None]), for _on_signal.
_temp_in_progress = [None]
CLEANUP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Terminated(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, turned into an exception so that the run ends through
    main()'s one error line, after _on_signal has removed the temp file."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    path = _temp_in_progress[0]
    if path is not None:
        _temp_in_progress[0] = None
        try:
            os.unlink(path)
        except OSError:
            pass
    raise Terminated(signum)


def main(argv=None):
    for signum in CLEANUP_SIGNALS:  # a signal the parent set to be ignored (nohup) stays so
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, _on_signal)
    parser = argparse.ArgumentParser(prog="convert.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="checkpoint file (.pt/.bin/.safetensors) or Hugging Face directory")
    parser.add_argument("-o", "--output", required=True,
                        help="the .clip file to write ('-': standard output; a device or FIFO is written in place)")
    parser.add_argument("--vocab", help="BPE merges file (CLIP format, .gz or text) or a vocab.json")
    parser.add_argument("--config", help="OpenCLIP model config (OpenAI naming) or config.json (Hugging Face)")
    parser.add_argument("--name", help="free-text model name stored in the file (default: SRC's file name)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every tensor read")
    parser.add_argument("--format-version", type=int, choices=(1, 2), default=2,
                        help="2 (default): linear weights in panels, used in place; 1: every tensor "
                             "row-major, for older readers (packed at load by clip_run)")
    args = parser.parse_args(argv)
    try:
        convert(args)
        sys.stdout.flush()
    except BrokenPipeError:  # stdout closed early (| head): the conversion itself went fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (ConvertError, FormatError) as e:
        print("convert.py: error: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        where = e.filename if e.filename else args.output
        print("convert.py: error: %s: %s" % (where, e.strerror or e), file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print("convert.py: error: interrupted (%s); %s was not written"
              % (signal.Signals(signum).name, args.output), file=sys.stderr)
        return 128 + signum
    return 0


if __name__ == "__main__":
    sys.exit(main())

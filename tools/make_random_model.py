#!/usr/bin/env python3
"""make_random_model.py - a random-weight CLIP ViT in both checkpoint layouts, without torch.

    python3 tools/make_random_model.py OUT_DIR [--preset small|b32|l14] [--seed N]
        [--merges BPE_FILE] [--vocab-size V] [--image-size S] [--patch P]
        [--vision-width W] [--vision-layers L] [--vision-heads H]
        [--text-width W] [--text-layers L] [--text-heads H] [--context C]
        [--embed-dim D] [--mlp-ratio R] [--gelu]

writes into OUT_DIR the same weights twice:
  openai.pt + open_clip_config.json        OpenAI/OpenCLIP state dict (torch.save zip)
  model.safetensors + config.json          Hugging Face CLIPModel layout
  vocab.json + merges.txt                  the tokenizer (CLIP's construction from the merges file)
so the converter and the runtime can be tested on shapes other than golden-tiny's, and
benchmarked at real sizes (b32: ViT-B/32, 151M parameters; l14: ViT-L/14).

Weights are deterministic in the seed and generated in bulk: random bits from
random.getrandbits, turned into floats by rewriting each float's top byte (sign and
exponent) through a translation table, so no Python code runs per value. Magnitudes are
spread over a few binades below a per-kind bound (0.03 for weights, 1 for LayerNorm gains).
"""

import argparse
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpe_vocab  # noqa: E402
from safetensors_file import SafetensorsWriter  # noqa: E402
from tensor_data import FormatError, bytes_to_f32, f32_le_bytes, numel_of, transpose_2d  # noqa: E402
from torchzip import StateDictWriter  # noqa: E402

PRESETS = {
    # A small model with shapes unlike golden-tiny's (odd layer counts, head dims 32 and 12,
    # a 6x6 grid, a short context, a vocabulary of 1000 tokens).
    "small": dict(image_size=48, patch=8, vision_width=96, vision_layers=3, vision_heads=3,
                  text_width=48, text_layers=2, text_heads=4, context=77, embed_dim=40, vocab_size=1000),
    "b32": dict(image_size=224, patch=32, vision_width=768, vision_layers=12, vision_heads=12,
                text_width=512, text_layers=12, text_heads=8, context=77, embed_dim=512, vocab_size=49408),
    "l14": dict(image_size=224, patch=14, vision_width=1024, vision_layers=24, vision_heads=16,
                text_width=768, text_layers=12, text_heads=12, context=77, embed_dim=768, vocab_size=49408),
}
DEFAULT_MERGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "clip",
                              "bpe_simple_vocab_16e6.txt.gz")

# Bounds of the random values per kind: (top binade exponent, binades spread, positive only).
KINDS = {"weight": (-5, 5, False), "embed": (-5, 5, False), "bias": (-7, 4, False), "gain": (1, 0, True)}


def _top_byte_table(top_exp, spread, positive):
    """Maps a random byte to a float's top byte (sign + 7 high exponent bits). The byte's low
    7 bits pick how many double-binades below the top the value lands: each one further
    down is half as likely. The exponent's low bit stays random (in the next byte)."""
    high = (127 + top_exp - 2) // 2  # values below 2 ** (2 * high - 125)
    table = bytearray(256)
    for x in range(256):
        r = x & 0x7F
        down = 7 - r.bit_length()  # leading zeros of a 7-bit number: P(k) = 2^-(k+1)
        table[x] = (0 if positive else x & 0x80) | (high - min(down, spread))
    return bytes(table)


def random_f32(rng, n, kind):
    """n float32 values as little-endian bytes."""
    if n == 0:
        return b""
    raw = bytearray(rng.getrandbits(32 * n).to_bytes(4 * n, "little"))
    raw[3::4] = raw[3::4].translate(_top_byte_table(*KINDS[kind]))
    return bytes(raw)


def tensor_plan(c):
    """[(OpenAI name, shape, kind, [(HF name, how)])], how: 'same', 'T' or (row start, row end)."""
    Wv, Wt, D, P = c["vision_width"], c["text_width"], c["embed_dim"], c["patch"]
    Mv, Mt = int(Wv * c["mlp_ratio"]), int(Wt * c["mlp_ratio"])
    grid = c["image_size"] // P
    plan = [
        ("visual.conv1.weight", [Wv, 3, P, P], "weight", [("vision_model.embeddings.patch_embedding.weight", "same")]),
        ("visual.class_embedding", [Wv], "embed", [("vision_model.embeddings.class_embedding", "same")]),
        ("visual.positional_embedding", [grid * grid + 1, Wv], "embed",
         [("vision_model.embeddings.position_embedding.weight", "same")]),
        ("visual.ln_pre.weight", [Wv], "gain", [("vision_model.pre_layrnorm.weight", "same")]),
        ("visual.ln_pre.bias", [Wv], "bias", [("vision_model.pre_layrnorm.bias", "same")]),
    ]
    plan += _block_plan("visual.transformer.resblocks.", "vision_model.encoder.layers.", c["vision_layers"], Wv, Mv)
    plan += [
        ("visual.ln_post.weight", [Wv], "gain", [("vision_model.post_layernorm.weight", "same")]),
        ("visual.ln_post.bias", [Wv], "bias", [("vision_model.post_layernorm.bias", "same")]),
        ("visual.proj", [Wv, D], "weight", [("visual_projection.weight", "T")]),
        ("token_embedding.weight", [c["vocab_size"], Wt], "embed",
         [("text_model.embeddings.token_embedding.weight", "same")]),
        ("positional_embedding", [c["context"], Wt], "embed",
         [("text_model.embeddings.position_embedding.weight", "same")]),
    ]
    plan += _block_plan("transformer.resblocks.", "text_model.encoder.layers.", c["text_layers"], Wt, Mt)
    plan += [
        ("ln_final.weight", [Wt], "gain", [("text_model.final_layer_norm.weight", "same")]),
        ("ln_final.bias", [Wt], "bias", [("text_model.final_layer_norm.bias", "same")]),
        ("text_projection", [Wt, D], "weight", [("text_projection.weight", "T")]),
        ("logit_scale", [], "logit_scale", [("logit_scale", "same")]),
    ]
    return plan


def _block_plan(openai_prefix, hf_prefix, n_layers, W, M):
    plan = []
    for i in range(n_layers):
        o, h = "%s%d." % (openai_prefix, i), "%s%d." % (hf_prefix, i)
        plan += [
            (o + "ln_1.weight", [W], "gain", [(h + "layer_norm1.weight", "same")]),
            (o + "ln_1.bias", [W], "bias", [(h + "layer_norm1.bias", "same")]),
            (o + "attn.in_proj_weight", [3 * W, W], "weight",
             [(h + "self_attn.%s_proj.weight" % c, (k * W, (k + 1) * W)) for k, c in enumerate("qkv")]),
            (o + "attn.in_proj_bias", [3 * W], "bias",
             [(h + "self_attn.%s_proj.bias" % c, (k * W, (k + 1) * W)) for k, c in enumerate("qkv")]),
            (o + "attn.out_proj.weight", [W, W], "weight", [(h + "self_attn.out_proj.weight", "same")]),
            (o + "attn.out_proj.bias", [W], "bias", [(h + "self_attn.out_proj.bias", "same")]),
            (o + "ln_2.weight", [W], "gain", [(h + "layer_norm2.weight", "same")]),
            (o + "ln_2.bias", [W], "bias", [(h + "layer_norm2.bias", "same")]),
            (o + "mlp.c_fc.weight", [M, W], "weight", [(h + "mlp.fc1.weight", "same")]),
            (o + "mlp.c_fc.bias", [M], "bias", [(h + "mlp.fc1.bias", "same")]),
            (o + "mlp.c_proj.weight", [W, M], "weight", [(h + "mlp.fc2.weight", "same")]),
            (o + "mlp.c_proj.bias", [W], "bias", [(h + "mlp.fc2.bias", "same")]),
        ]
    return plan


def _hf_shape(shape, how):
    if how == "same":
        return list(shape)
    if how == "T":
        return [shape[1], shape[0]]
    start, end = how
    return [end - start] + list(shape[1:])


def _hf_piece(data, shape, how):
    if how == "same":
        return data
    if how == "T":
        return f32_le_bytes(transpose_2d(bytes_to_f32(data, "f32"), shape[0], shape[1]))
    start, end = how
    row_bytes = 4 * numel_of(shape[1:])
    return data[start * row_bytes:end * row_bytes]


def write_configs(out_dir, c):
    Wv, Wt = c["vision_width"], c["text_width"]
    act = "gelu" if c["gelu"] else "quick_gelu"
    openclip = {
        "embed_dim": c["embed_dim"], "quick_gelu": not c["gelu"],
        "vision_cfg": {"image_size": c["image_size"], "layers": c["vision_layers"], "width": Wv,
                       "head_width": Wv // c["vision_heads"], "patch_size": c["patch"], "mlp_ratio": c["mlp_ratio"]},
        "text_cfg": {"context_length": c["context"], "vocab_size": c["vocab_size"], "width": Wt,
                     "heads": c["text_heads"], "layers": c["text_layers"], "mlp_ratio": c["mlp_ratio"]},
    }
    hf = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": c["embed_dim"],
        "logit_scale_init_value": 2.6592, "torch_dtype": "float32",
        "text_config": {"model_type": "clip_text_model", "vocab_size": c["vocab_size"], "hidden_size": Wt,
                        "intermediate_size": int(Wt * c["mlp_ratio"]), "num_hidden_layers": c["text_layers"],
                        "num_attention_heads": c["text_heads"], "max_position_embeddings": c["context"],
                        "hidden_act": act, "layer_norm_eps": 1e-5, "projection_dim": c["embed_dim"],
                        "bos_token_id": c["vocab_size"] - 2, "eos_token_id": c["vocab_size"] - 1},
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": Wv,
                          "intermediate_size": int(Wv * c["mlp_ratio"]), "num_hidden_layers": c["vision_layers"],
                          "num_attention_heads": c["vision_heads"], "num_channels": 3,
                          "image_size": c["image_size"], "patch_size": c["patch"], "hidden_act": act,
                          "layer_norm_eps": 1e-5, "projection_dim": c["embed_dim"]},
    }
    for name, value in (("open_clip_config.json", openclip), ("config.json", hf)):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(value, f, indent=1)
            f.write("\n")


def write_tokenizer(out_dir, merges_path, vocab_size):
    vocab = bpe_vocab.vocab_from_merges_file(merges_path, vocab_size)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab.tokens)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for left, right, _ in vocab.merges:
            f.write("%s %s\n" % (vocab.tokens[left], vocab.tokens[right]))


def make_model(out_dir, c, seed=0):
    if c["image_size"] % c["patch"]:
        raise ValueError("image size must be a multiple of the patch size")
    for tower in ("vision", "text"):
        if c[tower + "_width"] % c[tower + "_heads"]:
            raise ValueError("%s heads must divide the width" % tower)
    os.makedirs(out_dir, exist_ok=True)
    write_tokenizer(out_dir, c["merges"], c["vocab_size"])
    write_configs(out_dir, c)
    plan = tensor_plan(c)
    rng = random.Random(seed)
    pt = StateDictWriter(os.path.join(out_dir, "openai.pt"), [(name, shape) for name, shape, _, _ in plan])
    st = SafetensorsWriter(os.path.join(out_dir, "model.safetensors"),
                           [(hf, _hf_shape(shape, how)) for _, shape, _, pieces in plan for hf, how in pieces])
    n_params = 0
    for name, shape, kind, pieces in plan:
        n = numel_of(shape)
        if kind == "logit_scale":
            data = struct.pack("<f", 4.6052)  # log(100), CLIP's trained value
        else:
            data = random_f32(rng, n, kind)
        pt.add(data)
        for _, how in pieces:
            st.add(_hf_piece(data, shape, how))
        n_params += n
    pt.close()
    st.close()
    return n_params


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make_random_model.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--merges", default=DEFAULT_MERGES, help="BPE merges file (CLIP format)")
    for key in ("vocab_size", "image_size", "patch", "vision_width", "vision_layers", "vision_heads",
                "text_width", "text_layers", "text_heads", "context", "embed_dim"):
        parser.add_argument("--" + key.replace("_", "-"), type=int, dest=key)
    parser.add_argument("--mlp-ratio", type=float, default=4.0)
    parser.add_argument("--gelu", action="store_true", help="exact GELU instead of QuickGELU")
    args = parser.parse_args(argv)
    c = dict(PRESETS[args.preset])
    for key in list(c):
        if getattr(args, key) is not None:
            c[key] = getattr(args, key)
    c.update(merges=args.merges, mlp_ratio=args.mlp_ratio, gelu=args.gelu)
    try:
        n_params = make_model(args.out_dir, c, args.seed)
    except (ValueError, OSError, FormatError) as e:
        print("make_random_model.py: error: %s" % e, file=sys.stderr)
        return 1
    print("wrote %s: %d parameters (openai.pt, model.safetensors, configs, vocab.json, merges.txt)"
          % (args.out_dir, n_params))
    return 0


if __name__ == "__main__":
    sys.exit(main())

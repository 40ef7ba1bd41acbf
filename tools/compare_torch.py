#!/usr/bin/env python3
"""compare_torch.py - the demo model in PyTorch vs. clip_run on the same images.

    python3 tools/compare_torch.py [--model weights/demo.clip] [--ckpt build-demo]
                                   [--clip-run ./clip_run] [--drawings 10]

Images: the bundled samples (tests/data/demo, labels.tsv) and freshly drawn "ordinary
drawings" (PIL ImageDraw shapes at other sizes on plain and textured backgrounds, written as
PNG files to a temporary directory). Both sides classify every image against the 32
"colour shape" labels with the template "a photo of a {}.". Prints the top-1 accuracy of
each and how often their top-1 labels agree (target >= 99.5%); exits 1 below that.
Skips cleanly (exit 0) when PyTorch, numpy or PIL is missing. The PyTorch model is
train_demo.py's CLIP (OpenAI's architecture) with the weights and BPE merges read back from
the .clip file itself (tools/clipfile.py), or, with --ckpt, from the directory
tools/train_demo.py writes (demo.pt, open_clip_config.json, merges.txt).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))


# .clip block tensor names -> OpenAI's (tools/convert.py maps the other way)
BLOCK_NAMES = {"ln1.weight": "ln_1.weight", "ln1.bias": "ln_1.bias",
               "attn.qkv.weight": "attn.in_proj_weight", "attn.qkv.bias": "attn.in_proj_bias",
               "attn.out.weight": "attn.out_proj.weight", "attn.out.bias": "attn.out_proj.bias",
               "ln2.weight": "ln_2.weight", "ln2.bias": "ln_2.bias",
               "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
               "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias"}
TOP_NAMES = {"vision.class_embed": "visual.class_embedding",
             "vision.pos_embed": "visual.positional_embedding",
             "vision.ln_pre.weight": "visual.ln_pre.weight", "vision.ln_pre.bias": "visual.ln_pre.bias",
             "vision.ln_post.weight": "visual.ln_post.weight", "vision.ln_post.bias": "visual.ln_post.bias",
             "text.token_embed": "token_embedding.weight", "text.pos_embed": "positional_embedding",
             "text.ln_final.weight": "ln_final.weight", "text.ln_final.bias": "ln_final.bias"}


def model_from_clip(path, torch, train_demo, train_bpe):
    """train_demo.CLIP and its tokenizer, rebuilt from a .clip file's config, tensors and
    merges: the PyTorch side then runs exactly the weights clip_run runs."""
    import clipfile
    f = clipfile.ClipFile(path)
    c = f.config
    if c["activation"] != "quick_gelu" or c["vision_mlp"] != 4 * c["vision_width"] \
            or c["text_mlp"] != 4 * c["text_width"]:
        sys.exit("compare_torch: %s is not a train_demo.py architecture (QuickGELU, MLP 4x width)" % path)
    cfg = {"embed_dim": c["embed_dim"], "quick_gelu": True,
           "vision_cfg": {"image_size": c["image_size"], "layers": c["vision_layers"],
                          "width": c["vision_width"], "patch_size": c["patch_size"],
                          "head_width": c["vision_width"] // c["vision_heads"]},
           "text_cfg": {"context_length": c["text_context"], "vocab_size": c["text_vocab"],
                        "width": c["text_width"], "heads": c["text_heads"], "layers": c["text_layers"]}}
    model = train_demo.CLIP(cfg)
    state = {"logit_scale": torch.tensor(c["logit_scale"])}
    for name in f.tensors:
        shape, values = f.read(name)
        t = torch.tensor(values, dtype=torch.float32).reshape(shape)
        tower, _, rest = name.partition(".")
        if rest.startswith("blocks."):
            _, i, sub = rest.split(".", 2)
            prefix = "visual.transformer.resblocks." if tower == "vision" else "transformer.resblocks."
            state[prefix + i + "." + BLOCK_NAMES[sub]] = t
        elif name == "vision.patch_embed.weight":
            p = c["patch_size"]
            state["visual.conv1.weight"] = t.reshape(-1, 3, p, p)
        elif name == "vision.proj":
            state["visual.proj"] = t.T.contiguous()
        elif name == "text.proj":
            state["text_projection"] = t.T.contiguous()
        else:
            state[TOP_NAMES[name]] = t
    model.load_state_dict(state)
    tok = train_bpe.Tokenizer(f.merges)
    if tok.vocab != f.tokens:
        sys.exit("compare_torch: %s: its vocabulary is not the one its merges make" % path)
    return model, tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", help="train_demo.py's output directory (default: read the .clip file)")
    ap.add_argument("--model", default=os.path.join(ROOT, "weights", "demo.clip"))
    ap.add_argument("--clip-run", default=os.environ.get("CLIP_RUN", os.path.join(ROOT, "clip_run")))
    ap.add_argument("--drawings", type=int, default=10, help="ordinary drawings per class")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
        from PIL import Image
    except ImportError as e:
        print("compare_torch: skipped (%s)" % e)
        return 0
    import demo_world as world
    import train_bpe
    import train_demo

    if not os.access(args.clip_run, os.X_OK):
        print("compare_torch: %s is not an executable (build it, or pass --clip-run)" % args.clip_run)
        return 1
    torch.set_num_threads(2)
    if args.ckpt:
        with open(os.path.join(args.ckpt, "open_clip_config.json")) as f:
            cfg = json.load(f)
        model = train_demo.CLIP(cfg)
        model.load_state_dict(torch.load(os.path.join(args.ckpt, "demo.pt")))
        tok = train_bpe.Tokenizer(train_bpe.read_merges(os.path.join(args.ckpt, "merges.txt")))
    else:
        model, tok = model_from_clip(args.model, torch, train_demo, train_bpe)
    model.eval()
    labels = ["%s %s" % cs for cs in world.CLASSES]

    demo = os.path.join(ROOT, "tests", "data", "demo")
    with open(os.path.join(demo, "labels.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    sets = {"bundled samples": [(os.path.join(demo, r[0]), r[1] + " " + r[2]) for r in rows]}
    tmp = tempfile.TemporaryDirectory(prefix="clip-compare-")
    rng = np.random.default_rng(args.seed)
    drawn = []
    for k in range(args.drawings):
        for color, shape in world.CLASSES:
            path = os.path.join(tmp.name, "%s_%s_%03d.png" % (color, shape, k))
            world.draw_ordinary(rng, color, shape).save(path)
            drawn.append((path, color + " " + shape))
    sets["ordinary drawings"] = drawn

    with torch.no_grad():
        ids = torch.tensor([tok.encode("a photo of a %s." % l, model.context_length) for l in labels])
        text = F.normalize(model.encode_text(ids), dim=-1)
    status = 0
    for name, items in sets.items():
        with torch.no_grad():
            pixels = torch.from_numpy(np.stack([world.preprocess(Image.open(p)) for p, _ in items]))
            image = F.normalize(model.encode_image(pixels), dim=-1)
            torch_top = [labels[i] for i in (image @ text.T).argmax(1).tolist()]
        cmd = [args.clip_run, "classify", args.model] + [p for p, _ in items]
        for l in labels:
            cmd += ["-l", l]
        proc = subprocess.run(cmd + ["--json", "--top", "1"], stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print("compare_torch: clip_run failed (exit %d)" % proc.returncode)
            return 1
        c_top = [json.loads(line)["results"][0]["label"] for line in proc.stdout.splitlines() if line]
        truth = [t for _, t in items]
        n = len(items)
        agree = sum(a == b for a, b in zip(torch_top, c_top)) / n
        print("%-18s %4d images  top-1 torch %.1f%%  clip_run %.1f%%  agreement %.2f%%" % (
            name, n, 100 * sum(a == t for a, t in zip(torch_top, truth)) / n,
            100 * sum(a == t for a, t in zip(c_top, truth)) / n, 100 * agree))
        if agree < 0.995:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

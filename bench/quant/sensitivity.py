#!/usr/bin/env python3
"""sensitivity.py - how much each group of weights' 4-bit error costs the embeddings.

    python3 bench/quant/sensitivity.py MODEL.clip [--type q4_0] [--groups PREFIX...]

Quantizes MODEL (f32) with every matrix in --type (`clip_run quantize --plain`), then again
with one group of tensors kept f32 (`--keep`), and prints per group: the file size, and
1 - cosine to the f32 embeddings (mean and worst over the images and texts of accuracy.py)
for images and texts. A group whose kept run lowers 1 - cosine a lot for few bytes is one
the q4_0 policy keeps in q8_0 (tools/cmd_quantize.c, q4_keeps_q8; q8_0's own error is
~300x smaller in variance than q4_0's, so f32 stands in for it here). The groups: each
kind of matrix across all blocks, each block, the patch and token embeddings and the
final projections, per tower. Errors of separate groups add up nearly linearly, which is
what makes choosing groups one at a time work.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import accuracy  # noqa: E402


def groups(layers):
    out = [("none", [])]
    for tower in ("vision", "text"):
        out += [("%s.%s" % (tower, kind), ["%s.blocks.*.%s.weight" % (tower, kind)])
                for kind in ("attn.qkv", "attn.out", "mlp.fc1", "mlp.fc2")]
        out += [("%s.block%d" % (tower, i), ["%s.blocks.%d.*" % (tower, i)]) for i in range(layers)]
    out += [("vision.patch_embed", ["vision.patch_embed.weight"]), ("vision.proj", ["vision.proj"]),
            ("text.proj", ["text.proj"]), ("text.token_embed", ["text.token_embed"])]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--type", default="q4_0")
    ap.add_argument("--clip-run", default=os.path.join(ROOT, "clip_run"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench-quant"))
    ap.add_argument("--layers", type=int, default=12, help="blocks per tower (for the per-block groups)")
    ap.add_argument("--groups", nargs="*", help="only the groups whose names start with these")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    tmp, out = os.path.join(args.work, "s.npy"), os.path.join(args.work, "sensitivity.clip")
    base = {k: accuracy.embed(args.clip_run, args.model, k, tmp) for k in ("image", "text")}
    print("| kept f32 | file / f32 | image 1-cos mean | worst | text 1-cos mean | worst |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, keeps in groups(args.layers):
        if args.groups and not any(label.startswith(g) for g in args.groups):
            continue
        cmd = [args.clip_run, "quantize", args.model, out, "--type", args.type, "--plain"]
        for g in keeps:
            cmd += ["--keep", g]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        row = "| %s | %.4f |" % (label, os.path.getsize(out) / os.path.getsize(args.model))
        for kind in ("image", "text"):
            cs = [accuracy.cosine(a, b) for a, b in zip(accuracy.embed(args.clip_run, out, kind, tmp), base[kind])]
            row += " %.6f | %.6f |" % (1 - sum(cs) / len(cs), 1 - min(cs))
        print(row, flush=True)
    os.remove(out)


if __name__ == "__main__":
    main()

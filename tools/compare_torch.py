#!/usr/bin/env python3
"""compare_torch.py - the demo model in PyTorch vs. clip_run on the same images.

    python3 tools/compare_torch.py [--ckpt build-demo] [--model weights/demo.clip]
                                   [--clip-run ./clip_run] [--drawings 10]

Images: the bundled samples (tests/data/demo, labels.tsv) and freshly drawn "ordinary
drawings" (PIL ImageDraw shapes at other sizes on plain and textured backgrounds, written as
PNG files to a temporary directory). Both sides classify every image against the 32
"colour shape" labels with the template "a photo of a {}.". Prints the top-1 accuracy of
each and how often their top-1 labels agree (target >= 99.5%); exits 1 below that.
Skips cleanly (exit 0) when PyTorch, numpy or PIL is missing. The checkpoint directory is
what tools/train_demo.py writes: demo.pt, open_clip_config.json, merges.txt.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build-demo"))
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
    with open(os.path.join(args.ckpt, "open_clip_config.json")) as f:
        cfg = json.load(f)
    model = train_demo.CLIP(cfg)
    model.load_state_dict(torch.load(os.path.join(args.ckpt, "demo.pt")))
    model.eval()
    tok = train_bpe.Tokenizer(train_bpe.read_merges(os.path.join(args.ckpt, "merges.txt")))
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

#!/usr/bin/env python3
"""accuracy.py - size, quantize time and embedding accuracy of every weight type on a ViT-B/32.

    python3 bench/quant/accuracy.py [--clip-run ./clip_run] [--work build/bench-quant] [--out FILE.md]

Makes two ViT-B/32-shaped models (tools/make_random_model.py for the shapes,
bench/quant/reference_init.py for the values; needs python3-torch): OpenAI's initialization,
and the same with the noise golden-tiny's weights carry (--perturb: nonzero biases, LayerNorm
parameters away from 1 and 0, larger matrices). Converts each, quantizes it to f16, bf16,
q8_0 and q4_0 with `clip_run quantize`, and compares each type's raw embeddings with the
f32 model's: cosine on images of ../shared/clip/images and on texts. q8_0 and q4_0 are
measured as quantize makes them (GPTQ on its built-in calibration inputs, which share
nothing with these images and texts) and with --no-calibrate (round to nearest).
Writes a markdown table with the date, the commit and the CPU (to --out, and stdout).
"""
import argparse
import datetime
import math
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import Npy  # noqa: E402

IMAGES = ["astronaut_444.jpg", "coins_gray.jpg", "hubble_rgba.png", "brick_la.png", "ihc.gif"]
TEXTS = ["a photo of a dog.", "a diagram", "an astronaut riding a horse on the moon, highly detailed digital painting",
         "red circle", "the quick brown fox jumps over the lazy dog " * 3, "x",
         "two cats sleeping on a sofa near a window"]
TYPES = ["f16", "bf16", "q8_0", "q4_0", "q8_0 --no-calibrate", "q4_0 --no-calibrate"]


def cpu_name():
    fields = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if ":" in line:
                k, v = (s.strip() for s in line.split(":", 1))
                fields.setdefault(k, v)
    return "%s (family %s, model %s)" % (fields.get("model name", platform.machine()),
                                         fields.get("cpu family", "?"), fields.get("model", "?"))


def embed(clip_run, model, kind, out):
    if kind == "image":
        inputs = [os.path.join(ROOT, "..", "shared", "clip", "images", i) for i in IMAGES]
    else:
        inputs = ["--"] + TEXTS  # texts last, after the options
    subprocess.run([clip_run, "embed-%s" % kind, model, "-o", out, "--raw"] + inputs,
                   check=True, stderr=subprocess.DEVNULL)
    a = Npy(out)
    return [a.row(i) for i in range(a.shape[0])]


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def make_model(work, perturb):
    """A ViT-B/32 with OpenAI's initialization (perturbed: plus golden-tiny's noise), converted."""
    f32 = os.path.join(work, "b32-perturbed.clip" if perturb else "b32.clip")
    if os.path.exists(f32):
        return f32
    shapes = os.path.join(work, "shapes")
    if not os.path.exists(os.path.join(shapes, "openai.pt")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_random_model.py"), shapes, "--preset", "b32",
                        "--merges", os.path.join(ROOT, "..", "shared", "clip", "bpe_simple_vocab_16e6.txt.gz")],
                       check=True)
    init = os.path.join(work, "init.pt")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "quant", "reference_init.py"),
                    os.path.join(shapes, "openai.pt"), init] + (["--perturb"] if perturb else []), check=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert.py"), init, "--config",
                    os.path.join(shapes, "open_clip_config.json"), "--vocab", os.path.join(shapes, "merges.txt"),
                    "-o", f32], check=True, stdout=subprocess.DEVNULL)
    os.remove(init)
    return f32


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip-run", default=os.path.join(ROOT, "clip_run"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench-quant"))
    ap.add_argument("--out")
    args = ap.parse_args()
    clip_run = os.path.abspath(args.clip_run)
    os.makedirs(args.work, exist_ok=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["Quantized ViT-B/32s (bench/quant/reference_init.py: OpenAI's initialization, and the same perturbed "
             "as golden-tiny's weights are), %s, commit %s, %s."
             % (datetime.date.today().isoformat(), commit, cpu_name()),
             "Cosine of raw embeddings to the f32 model's: %d images, %d texts (min / mean)." % (len(IMAGES), len(TEXTS)),
             "", "| weights | type | file / f32 | quantize (2 threads) | image cosine min / mean | text cosine min / mean |",
             "| --- | --- | --- | --- | --- | --- |"]
    tmp = os.path.join(args.work, "e.npy")
    for perturb in (False, True):
        f32 = make_model(args.work, perturb)
        base = {k: embed(clip_run, f32, k, tmp) for k in ("image", "text")}
        f32_size = os.path.getsize(f32)
        for t in TYPES:
            out = os.path.join(args.work, "b32-%s.clip" % t.split()[0])
            t0 = time.time()
            subprocess.run([clip_run, "quantize", f32, out, "--type"] + t.split() + ["-t", "2"], check=True,
                           stderr=subprocess.DEVNULL)
            seconds = time.time() - t0
            row = "| %s | %s | %.3fx | %.1f s |" % ("perturbed" if perturb else "OpenAI init", t,
                                                    os.path.getsize(out) / f32_size, seconds)
            for kind in ("image", "text"):
                cs = [cosine(a, b) for a, b in zip(embed(clip_run, out, kind, tmp), base[kind])]
                row += " %.6f / %.6f |" % (min(cs), sum(cs) / len(cs))
            lines.append(row)
            print(row, flush=True)
            os.remove(out)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""run_bench.py - tokens per second of the C tokenizer and of the Python reference.

Builds bench/tokenizer/tok_bench.c (with the tokenizer sources, -O2), generates a mixed-
language caption corpus (standard library only, fixed seed), times the C tokenizer on all
of it and the Python reference (tests/tokenizer_ref.py: simple_tokenizer.py semantics,
needs the `regex` module; uses ftfy when installed) on a part of it, in the same run, and
prints both rates and their ratio (target: C >= 20x Python).

Usage: bench/tokenizer/run_bench.py [--lines 50000] [--python-lines 10000] [--build DIR]
"""
import argparse
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MERGES = os.path.join(ROOT, "..", "shared", "clip", "golden-tiny", "merges.txt")

WORDS = {
    "en": "a photo of the dog cat man woman car street house tree sunset beach mountain "
          "city night portrait painting drawing close-up view beautiful old young red blue "
          "green yellow small large standing sitting running with on in at near under".split(),
    "de": "ein Foto von der Hund Katze Straße Häuser Bäume Sonnenuntergang über schöne "
          "großen kleinen Mädchen Brücke".split(),
    "fr": "une photo d'un chien chat à côté de la rivière été hôtel forêt élégante "
          "château garçon".split(),
    "es": "una foto de un perro gato niño montaña ciudad señor año corazón pequeño".split(),
    "ru": "фотография собаки кошки на улице красивый большой город ночью дерево".split(),
    "el": "φωτογραφία ενός σκύλου γάτας στην παραλία ΗΛΙΟΒΑΣΙΛΕΜΑ ΟΔΟΣ".split(),
    "zh": "一张 狗 的 照片 城市 夜景 美丽 的 山 和 湖".split(),
    "ja": "犬の写真 東京 夜景 美しい 桜の木 カメラ".split(),
    "ko": "강아지 사진 서울 야경 아름다운 산".split(),
    "ar": "صورة كلب قطة في الشارع مدينة جميلة".split(),
    "hi": "कुत्ते की तस्वीर शहर रात सुंदर पहाड़".split(),
}
EXTRAS = ["😀", "👍🏽", "❤️", "🇯🇵", "&amp;", "&quot;", "#sunset", "@user", "2024", "4K",
          "HDR", "!!!", "...", "—", "“quoted”", "it's", "we'll", "100%", "x2", "ﬁne"]


def make_corpus(n_lines, seed=1):
    rng = random.Random(seed)
    langs = list(WORDS)
    lines = []
    for _ in range(n_lines):
        lang = rng.choice(langs)
        words = [rng.choice(WORDS[lang]) for _ in range(rng.randrange(4, 18))]
        for _ in range(rng.randrange(0, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(EXTRAS))
        text = " ".join(words)
        if rng.random() < 0.3:
            text = text.capitalize()
        lines.append(text)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=50000)
    ap.add_argument("--python-lines", type=int, default=10000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench-tokenizer"))
    args = ap.parse_args()
    if not os.path.exists(MERGES):
        sys.exit(f"missing reference data {MERGES}")
    os.makedirs(args.build, exist_ok=True)
    exe = os.path.join(args.build, "tok_bench")
    tokdir = os.path.join(ROOT, "tokenizer")
    srcs = [os.path.join(HERE, "tok_bench.c"), os.path.join(ROOT, "io", "error.c")]
    srcs += sorted(os.path.join(tokdir, f) for f in os.listdir(tokdir) if f.endswith(".c"))
    subprocess.run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-o", exe] + srcs, check=True)

    lines = make_corpus(args.lines)
    corpus = os.path.join(args.build, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    out = subprocess.run([exe, MERGES, corpus], check=True, capture_output=True,
                         text=True).stdout.split()
    stats = dict(zip(out[::2], out[1::2]))
    c_rate = float(stats["tokens_per_s"])
    print(f"C tokenizer:      {int(stats['lines']):7d} lines {int(stats['tokens']):9d} tokens "
          f"{float(stats['seconds']):8.3f} s  {c_rate:12.0f} tokens/s")

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        import tokenizer_ref
    except ImportError:
        print("Python reference: skipped (the regex module is not installed)")
        return
    ref = tokenizer_ref.SimpleTokenizer(MERGES)
    part = lines[:args.python_lines]
    t0 = time.perf_counter()
    n_tokens = sum(len(ref.tokenize(t)) - 2 for t in part)
    seconds = time.perf_counter() - t0
    py_rate = n_tokens / seconds
    fixer = "ftfy " + tokenizer_ref._ftfy.__version__ if tokenizer_ref._ftfy else "stdlib ftfy restatement"
    print(f"Python reference: {len(part):7d} lines {n_tokens:9d} tokens {seconds:8.3f} s  "
          f"{py_rate:12.0f} tokens/s  ({fixer})")
    ratio = c_rate / py_rate
    print(f"ratio C / Python: {ratio:.1f}x (target >= 20x: {'met' if ratio >= 20 else 'NOT met'})")


if __name__ == "__main__":
    main()

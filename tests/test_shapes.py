"""Other model shapes: nothing in clip.c may be hard-coded to one model.

Two random CLIPs with shapes unlike golden-tiny (other widths, head sizes, layer counts,
patch and image sizes, MLP ratios, context length, vocabulary size, GELU flavour) are
made by tools/make_random_model.py in both checkpoint layouts and converted. Checks:
- both layouts convert to identical tensors;
- clip_run's image and text embeddings match tests/reference_clip.py, an independent
  pure-Python forward pass in double precision, within 1e-4 relative;
- the tokenizer with the model's own (smaller) vocabulary matches a plain Python BPE
  written here from the reference algorithm (ASCII captions).
"""
import os
import random
import re
import struct
import subprocess
import sys
import unittest

import reference_clip
from harness import ROOT, Npy, convert, rel_l2, run, shared, tmpdir

SHAPES = {
    "gelu-odd": ["--seed", "5", "--vocab-size", "2000", "--image-size", "48", "--patch", "12",
                 "--vision-width", "96", "--vision-heads", "3", "--vision-layers", "3",
                 "--text-width", "48", "--text-heads", "3", "--text-layers", "2", "--context", "77",
                 "--embed-dim", "40", "--mlp-ratio", "2.5", "--gelu"],
    "quick-short-context": ["--seed", "9", "--vocab-size", "1200", "--image-size", "40", "--patch", "8",
                            "--vision-width", "64", "--vision-heads", "4", "--vision-layers", "1",
                            "--text-width", "80", "--text-heads", "5", "--text-layers", "3",
                            "--context", "24", "--embed-dim", "24", "--mlp-ratio", "3"],
}

CAPTIONS = ["a photo of a cat", "two dogs playing in the snow, 1999!", "it's a bird's nest",
            "the quick brown fox jumps over the lazy dog " * 6]


def write_npy_f32(path, shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % \
             "".join("%d, " % d for d in shape).rstrip(" ")
    pad = (64 - (10 + len(header) + 1) % 64) % 64
    header = header + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % len(values), *values))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class PlainBpe:
    """CLIP's BPE for lower-case ASCII text, straight from the algorithm's definition."""

    def __init__(self, merges_path, vocab_size):
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().split("\n")[1:]
        merges = [tuple(l.split()) for l in lines[:vocab_size - 514]]
        b2u = bytes_to_unicode()
        vocab = list(b2u.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.b2u = b2u

    def bpe(self, word):
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
            rank, at = min(pairs)  # the lowest-ranked pair, leftmost first
            if rank == 1 << 30:
                break
            first, second = symbols[at], symbols[at + 1]
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def encode(self, text, context):
        text = re.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for token in re.findall(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+", text):
            word = "".join(self.b2u[b] for b in token.encode("utf-8"))
            ids += [self.encoder[s] for s in self.bpe(word)]
        ids = [self.encoder["<|startoftext|>"]] + ids + [self.encoder["<|endoftext|>"]]
        if len(ids) > context:
            ids = ids[:context]
            ids[-1] = self.encoder["<|endoftext|>"]
        return ids + [0] * (context - len(ids))


class OtherShapes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir()
        cls.models = {}
        merges = shared("golden-tiny", "merges.txt")
        for name, args in SHAPES.items():
            d = os.path.join(cls.tmp.name, name)
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_random_model.py"), d,
                            "--merges", merges] + args, check=True, stdout=subprocess.DEVNULL)
            a = convert(os.path.join(d, "openai.pt"), os.path.join(d, "openai.clip"))
            b = convert(d, os.path.join(d, "hf.clip"))
            vocab = int(args[args.index("--vocab-size") + 1])
            cls.models[name] = (a, b, os.path.join(d, "merges.txt"), vocab)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_layouts_identical_tensors(self):
        for name, (a, b, _, _) in self.models.items():
            fa, fb = reference_clip.ClipFile(a), reference_clip.ClipFile(b)
            self.assertEqual(sorted(fa.tensors), sorted(fb.tensors), name)
            for t in fa.tensors:
                da, oa, sa, _ = fa.tensors[t]
                db, ob, sb, _ = fb.tensors[t]
                self.assertEqual(da, db, t)
                self.assertEqual(fa.raw[oa:oa + sa], fb.raw[ob:ob + sb], "%s: %s" % (name, t))
            cfg_a = dict(fa.config, name=None)
            cfg_b = dict(fb.config, name=None)
            self.assertEqual(cfg_a, cfg_b, name)

    def test_image_embeddings_match_reference(self):
        rng = random.Random(3)
        for name, (a, b, _, _) in self.models.items():
            ref = reference_clip.ClipFile(a)
            size = ref.config["image_size"]
            for k in range(2):
                pixels = [rng.uniform(-1.8, 2.1) for _ in range(3 * size * size)]
                pre = os.path.join(self.tmp.name, "%s-%d.npy" % (name, k))
                write_npy_f32(pre, (3, size, size), pixels)
                want = reference_clip.encode_image(ref, pixels)
                for model in (a, b):
                    out = os.path.join(self.tmp.name, "img.npy")
                    run("embed-image", model, pre, "--raw", "-o", out)
                    got = Npy(out)
                    self.assertEqual(got.shape, (1, ref.config["embed_dim"]))
                    self.assertLess(rel_l2(got.data, want), 1e-4, name)

    def test_image_files_at_other_sizes(self):
        for name, (a, _, _, _) in self.models.items():
            size = reference_clip.ClipFile(a).config["image_size"]
            out = os.path.join(self.tmp.name, "pre.npy")
            for image in ("astronaut_444.jpg", "brick_la.png", "strip_900x3.png", "one_pixel.png"):
                run("preprocess", a, shared("images", image), "-o", out)
                self.assertEqual(Npy(out).shape, (3, size, size))

    def test_text_embeddings_match_reference(self):
        for name, (a, b, merges, vocab) in self.models.items():
            ref = reference_clip.ClipFile(a)
            context = ref.config["text_context"]
            bpe = PlainBpe(merges, vocab)
            lines = run("tokenize", a, "--", *CAPTIONS).stdout.decode().splitlines()
            for caption, line in zip(CAPTIONS, lines):
                ids = [int(x) for x in line.split()]
                self.assertEqual(ids, bpe.encode(caption, context), "%s: %r" % (name, caption))
            for caption, line in zip(CAPTIONS[:2] + CAPTIONS[3:], lines[:2] + lines[3:]):
                ids = [int(x) for x in line.split()]
                want = reference_clip.encode_text(ref, ids)
                for model in (a, b):
                    out = os.path.join(self.tmp.name, "txt.npy")
                    run("embed-text", model, "--raw", "-o", out, "--", caption)
                    self.assertLess(rel_l2(Npy(out).data, want), 1e-4, "%s: %r" % (name, caption))


if __name__ == "__main__":
    unittest.main()

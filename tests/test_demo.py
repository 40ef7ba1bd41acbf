"""The bundled demo model (weights/demo.clip) classifies the bundled sample scenes.

tests/data/demo/ holds sample images made by tools/train_demo.py with a seed other than the
training one: every colour x shape class, including the combinations held out of training
(labels.tsv, column held_out). clip_run classifies each against all 32 "colour shape" labels
with its default template; the labels in labels.tsv are what the renderer drew, so they are
an independent ground truth. Also checks the BPE trainer (tools/train_bpe.py) against the
reference tokenizer's ids in ../shared and on a corpus whose merges are known by hand.
"""
import collections
import gzip
import json
import os
import subprocess
import sys
import unittest

from harness import CLIP_RUN, ROOT, run, shared

sys.path.insert(0, os.path.join(ROOT, "tools"))
import train_bpe  # noqa: E402

DEMO = os.path.join(ROOT, "tests", "data", "demo")
MODEL = os.path.join(ROOT, "weights", "demo.clip")
COLORS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star"]
LABELS = ["%s %s" % (c, s) for c in COLORS for s in SHAPES]


def read_samples():
    with open(os.path.join(DEMO, "labels.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    head = rows[0]
    return [dict(zip(head, r)) for r in rows[1:]]


class DemoModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert os.path.exists(MODEL), "missing %s (the bundled demo model)" % MODEL
        cls.samples = read_samples()
        args = ["classify", MODEL] + [os.path.join(DEMO, s["file"]) for s in cls.samples]
        for label in LABELS:
            args += ["-l", label]
        out = run(*args, "--json").stdout.decode().splitlines()
        cls.results = [json.loads(line) for line in out if line.strip()]

    def test_samples_cover_all_classes(self):
        seen = collections.Counter("%s %s" % (s["color"], s["shape"]) for s in self.samples)
        self.assertEqual(set(seen), set(LABELS))
        self.assertGreaterEqual(len(self.samples), 200, "too few samples for a 90% bound")
        self.assertTrue(any(s["held_out"] == "1" for s in self.samples))
        self.assertTrue(os.path.exists(os.path.join(DEMO, "red_circle.png")))

    def test_one_result_per_image_in_order(self):
        self.assertEqual(len(self.results), len(self.samples))
        for r, s in zip(self.results, self.samples):
            self.assertTrue(r["image"].endswith(s["file"]), (r["image"], s["file"]))
            self.assertEqual(len(r["results"]), len(LABELS))
            probs = [x["prob"] for x in r["results"]]
            self.assertEqual(probs, sorted(probs, reverse=True))
            self.assertAlmostEqual(sum(probs), 1.0, delta=1e-3)

    def test_zero_shot_accuracy(self):
        per_class = collections.defaultdict(lambda: [0, 0])
        held = [0, 0]
        for r, s in zip(self.results, self.samples):
            truth = "%s %s" % (s["color"], s["shape"])
            ok = r["results"][0]["label"] == truth
            per_class[truth][0] += ok
            per_class[truth][1] += 1
            if s["held_out"] == "1":
                held[0] += ok
                held[1] += 1
        total = sum(c for c, _ in per_class.values()) / sum(n for _, n in per_class.values())
        lines = ["%-16s %d/%d" % (k, c, n) for k, (c, n) in sorted(per_class.items())]
        sys.stderr.write("\ndemo.clip top-1: %.1f%% overall, %.1f%% on held-out combinations "
                         "(%d images)\n  %s\n" % (100 * total, 100 * held[0] / held[1], held[1],
                                                 "\n  ".join(lines)))
        # Issue 3 asks for >= 90% top-1 over all samples, the held-out combinations
        # included; the bundled model reaches 92.4% (95.6% on the combinations seen in
        # training, 61.9% on the held-out ones; weights/README.md). Any numeric regression
        # in the C pipeline (tokenizer, preprocessing, either tower) costs accuracy.
        seen = (sum(c for c, _ in per_class.values()) - held[0]) / (len(self.results) - held[1])
        self.assertGreaterEqual(total, 0.90, "top-1 accuracy over all samples (issue 3's bar)")
        self.assertGreaterEqual(seen, 0.93, "top-1 on the colour-shape combinations seen in training")
        self.assertGreaterEqual(held[0] / held[1], 0.50, "top-1 on the held-out combinations")


def python_with_torch():
    """An interpreter with PyTorch, numpy and PIL (Debian's python3-torch lives in
    /usr/bin/python3's path), or None."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and os.path.exists(exe) and subprocess.run(
                [exe, "-c", "import torch, numpy, PIL"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            return exe
    return None


class TorchAgreement(unittest.TestCase):
    def test_clip_run_agrees_with_pytorch(self):
        """tools/compare_torch.py: the PyTorch model rebuilt from weights/demo.clip and clip_run
        give the same top-1 label on >= 99.5% of the samples and of fresh drawings."""
        exe = python_with_torch()
        if exe is None:
            self.skipTest("PyTorch, numpy or PIL is not importable by /usr/bin/python3; needs Debian packages "
                          "python3-torch python3-numpy python3-pil")
        proc = subprocess.run([exe, os.path.join(ROOT, "tools", "compare_torch.py"), "--clip-run",
                               CLIP_RUN, "--drawings", "4"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=1200)
        sys.stderr.write("\n" + proc.stdout)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("agreement", proc.stdout)


class BpeTrainer(unittest.TestCase):
    def test_tokenizer_matches_reference_ids(self):
        """train_bpe.Tokenizer with OpenAI's merges gives the reference ids (ASCII texts)."""
        with gzip.open(shared("bpe_simple_vocab_16e6.txt.gz"), "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        tok = train_bpe.Tokenizer([tuple(m.split()) for m in lines[1:48895]])
        self.assertEqual(len(tok.vocab), 49408)
        with open(shared("golden-tiny", "tokens.json"), encoding="utf-8") as f:
            texts = [t for t in json.load(f)["texts"] if t["text"].isascii()]
        self.assertGreater(len(texts), 20)
        for t in texts:
            self.assertEqual(tok.encode(t["text"], 77), t["tokens"], repr(t["text"]))

    def test_learned_merges(self):
        # "aaab</w>" x3 and "ab</w>" x1: pairs (a, a) 6, (a, b</w>) 4 -> first merge a a;
        # then "aa a b</w>" x3: (aa, a) 3, (a, b</w>) 4 -> a b</w>; then (aa, ab</w>) 3.
        merges = train_bpe.learn_merges(["aaab aaab aaab ab"], 10)
        self.assertEqual(merges, [("a", "a"), ("a", "b</w>"), ("aa", "ab</w>")])
        tok = train_bpe.Tokenizer(merges)
        self.assertEqual(len(tok.vocab), 512 + 3 + 2)
        ids = tok.encode("AAAB ab  zz", 8)
        self.assertEqual(ids[:3], [tok.sot, tok.ids["aaab</w>"], tok.ids["ab</w>"]])
        # an unknown word falls back to byte symbols
        self.assertEqual(ids[3:6], [tok.ids["z"], tok.ids["z</w>"], tok.eot])

    def test_merges_file_format(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "merges.txt")
            train_bpe.write_merges([("r", "e"), ("re", "d</w>")], path)
            with open(path, encoding="utf-8") as f:
                self.assertEqual(f.read(), "#version: 0.2\nr e\nre d</w>\n")
            self.assertEqual(train_bpe.read_merges(path), [("r", "e"), ("re", "d</w>")])


if __name__ == "__main__":
    unittest.main()

"""clip_run as a user meets it: help, flags, JSON output, and every kind of bad input.

Bad input must give exactly one line on stderr starting "clip_run: error:", a non-zero
exit, no crash (signals show as negative return codes) and no output file left behind.
"""
import json
import os
import shutil
import unittest

from harness import Npy, golden_model, run, shared, tmpdir

COMMANDS = ["info", "tokenize", "preprocess", "embed-image", "embed-text", "classify", "score", "trace"]


class Cli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = golden_model("openai")
        cls.tmp = tmpdir()
        cls.image = shared("images", "hubble_rgba.png")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def assert_error(self, *args, stdin=None, code=None):
        proc = run(*args, stdin=stdin, check=False)
        self.assertGreater(proc.returncode, 0, "expected a failure exit (not a crash) for %r" % (args,))
        if code is not None:
            self.assertEqual(proc.returncode, code)
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        self.assertEqual(len(err), 1, "expected one error line, got %r" % err)
        self.assertTrue(err[0].startswith("clip_run: error: "), err[0])
        return err[0]

    # ---- help and version ----
    def test_help_everywhere(self):
        self.assertIn("usage", run("--help").stdout.decode())
        for cmd in COMMANDS:
            out = run(cmd, "--help").stdout.decode()
            self.assertIn(cmd, out)
        self.assertRegex(run("--version").stdout.decode(), r"clip_run \d+\.\d+")

    def test_info(self):
        out = run("info", self.model).stdout.decode()
        self.assertIn("width 128, 2 layers, 2 heads", out)
        self.assertIn("width 64, 2 layers, 2 heads", out)
        self.assertIn("kernels:", out)

    # ---- usage errors ----
    def test_unknown_flag(self):
        msg = self.assert_error("embed-text", self.model, "x", "-o", self.path("x.npy"), "--bogus", code=2)
        self.assertIn("--bogus", msg)
        self.assert_error("frobnicate", code=2)

    def test_empty_text_list(self):
        self.assert_error("embed-text", self.model, "-o", self.path("e.npy"), code=2)
        empty = self.path("empty.txt")
        open(empty, "w").close()
        self.assert_error("tokenize", self.model, "-f", empty, code=2)
        self.assertFalse(os.path.exists(self.path("e.npy")))

    def test_missing_values(self):
        self.assert_error("embed-image", self.model, self.image, code=2)          # no -o
        self.assert_error("embed-image", self.model, self.image, "-o", code=2)
        self.assert_error("classify", self.model, self.image, code=2)             # no labels
        self.assert_error("classify", self.model, self.image, "-l", "x", "--template", "no hole", code=2)
        self.assert_error("embed-text", self.model, "x", "-o", self.path("t.npy"), "-t", "zero", code=2)

    def test_double_dash_allows_dash_text(self):
        out = run("tokenize", self.model, "--", "-rf", "--help").stdout.decode().splitlines()
        self.assertEqual(len(out), 2)
        self.assertEqual(out[0].split()[0], "49406")

    # ---- bad files ----
    def test_missing_and_non_image(self):
        msg = self.assert_error("embed-image", self.model, self.path("nope.png"), "-o", self.path("o.npy"))
        self.assertIn("nope.png", msg)
        junk = self.path("junk.jpg")
        with open(junk, "wb") as f:
            f.write(b"this is not an image at all" * 10)
        self.assertIn("junk.jpg", self.assert_error("score", self.model, junk, "a cat"))
        self.assertFalse(os.path.exists(self.path("o.npy")))

    def test_missing_model(self):
        self.assertIn("no-model.clip", self.assert_error("info", self.path("no-model.clip")))

    def test_corrupt_models(self):
        with open(self.model, "rb") as f:
            good = f.read()
        cases = {
            "empty": b"",
            "header-only": good[:80],
            "half": good[:len(good) // 2],
            "one-short": good[:-1],
            "bad-magic": b"XLIP" + good[4:],
            "bad-version": good[:8] + b"\x63\x00\x00\x00" + good[12:],
            "config-offset": good[:16] + (10 ** 12).to_bytes(8, "little") + good[24:],
            "data-size": good[:72] + (len(good) * 2).to_bytes(8, "little") + good[80:],
            "text-file": b"hello\n" * 100,
        }
        for name, data in cases.items():
            path = self.path("corrupt-%s.clip" % name)
            with open(path, "wb") as f:
                f.write(data)
            msg = self.assert_error("embed-text", path, "a cat", "-o", self.path("c.npy"))
            self.assertIn(path, msg, name)

    def test_bad_npy_input(self):
        bad = self.path("bad.npy")
        with open(bad, "wb") as f:
            f.write(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}")
        self.assert_error("embed-image", self.model, bad, "-o", self.path("b.npy"))
        run("preprocess", self.model, self.image, "-o", self.path("ok.npy"))
        run("embed-image", self.model, self.path("ok.npy"), "-o", self.path("fromnpy.npy"))

    # ---- outputs ----
    def test_failed_run_keeps_previous_output(self):
        out = self.path("keep.npy")
        run("embed-text", self.model, "a cat", "-o", out)
        with open(out, "rb") as f:
            before = f.read()
        self.assert_error("embed-image", self.model, self.image, self.path("missing.png"), "-o", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), before)
        leftovers = [n for n in os.listdir(self.tmp.name) if ".tmp." in n]
        self.assertEqual(leftovers, [])

    def test_output_permissions_like_any_new_file(self):
        out = self.path("mode.npy")
        run("embed-text", self.model, "a cat", "-o", out)
        mask = os.umask(0)
        os.umask(mask)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o666 & ~mask)

    def test_classify_json(self):
        labels = ["cat", "dog", "rocket"]
        args = ["classify", self.model, self.image, shared("images", "ihc.gif"), "--json"]
        for label in labels:
            args += ["-l", label]
        lines = run(*args, "--top", "2").stdout.decode().splitlines()
        self.assertEqual(len(lines), 2)
        for line in lines:
            obj = json.loads(line)
            self.assertEqual(len(obj["results"]), 2)
            probs = [r["prob"] for r in obj["results"]]
            self.assertEqual(probs, sorted(probs, reverse=True))
            self.assertTrue(set(r["label"] for r in obj["results"]) <= set(labels))
        # without --top: every label, probabilities summing to 1
        full = json.loads(run(*args).stdout.decode().splitlines()[0])
        self.assertEqual(sorted(r["label"] for r in full["results"]), sorted(labels))
        self.assertAlmostEqual(sum(r["prob"] for r in full["results"]), 1.0, places=4)

    def test_score_matches_reference_logits(self):
        """score against OpenAI's logits_per_image (golden-tiny: exp(logit_scale) x cosine of
        each image and the first 8 strings). hubble_rgba.png is a PNG, whose preprocessing is
        exact, so the whole chain from the file must land within the golden tolerance."""
        with open(shared("golden-tiny", "manifest.json"), encoding="utf-8") as f:
            images = [im["file"] for im in json.load(f)["images"]]
        with open(shared("golden-tiny", "tokens.json"), encoding="utf-8") as f:
            texts = [t["text"] for t in json.load(f)["texts"][:8]]
        row = images.index("hubble_rgba.png")
        golden = Npy(shared("golden-tiny", "logits_per_image.npy")).row(row)
        scale = 101.6302490234375   # exp(logit_scale), manifest.json weights.logit_scale_exp
        for j, text in enumerate(texts):
            obj = json.loads(run("score", self.model, self.image, "--json", "--", text).stdout)
            self.assertEqual(obj["text"], text)
            self.assertAlmostEqual(obj["logit"], golden[j], delta=1e-3, msg="text %r" % text)
            self.assertAlmostEqual(obj["cosine"] * scale, obj["logit"], delta=1e-4)

    def test_score_and_tokenize_json(self):
        tok = json.loads(run("tokenize", self.model, "--json", "caf\u00e9").stdout.decode().splitlines()[0])
        self.assertEqual(tok["text"], "caf\u00e9")
        self.assertEqual(len(tok["ids"]), 77)

    def test_texts_from_stdin(self):
        out = run("tokenize", self.model, "-f", "-", stdin=b"a cat\na dog\n").stdout.decode().splitlines()
        self.assertEqual(len(out), 2)

    def test_threads_do_not_change_results(self):
        a, b = self.path("t1.npy"), self.path("t2.npy")
        run("embed-image", self.model, self.image, "-t", "1", "-o", a)
        run("embed-image", self.model, self.image, "-t", "2", "-o", b)
        from harness import Npy, rel_l2
        self.assertLess(rel_l2(Npy(a).data, Npy(b).data), 1e-5)


if __name__ == "__main__":
    unittest.main()

"""Threads, batches and matmul backends change nothing but speed (clip_run end to end).

On golden-tiny, embeddings from -t 2 / -t 3, --batch 3 and --gemm openblas must agree
with the single-thread, one-at-a-time embeddings within 1e-5 relative L2, and those must
match the reference's golden embeddings (so the comparison is not between two equally
wrong answers). Texts of very different lengths share a batch.
"""
import json
import os
import unittest

from harness import Npy, golden_model, rel_l2, run, shared, tmpdir


class ThreadsAndBatches(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = golden_model("openai")
        with open(shared("golden-tiny", "manifest.json")) as f:
            images = [im["file"] for im in json.load(f)["images"]]
        cls.pres = [shared("golden-tiny", "pre", os.path.splitext(f)[0] + ".npy") for f in images]
        with open(shared("golden-tiny", "tokens.json"), encoding="utf-8") as f:
            cls.texts = [t["text"] for t in json.load(f)["texts"]]
        cls.tmp = tmpdir()
        cls.texts_path = os.path.join(cls.tmp.name, "texts.bin")
        with open(cls.texts_path, "wb") as f:
            f.write(b"\0".join(t.encode("utf-8", "surrogatepass") for t in cls.texts))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def embed(self, kind, *options):
        out = os.path.join(self.tmp.name, "%s%s.npy" % (kind, "_".join(options).replace("-", "")))
        if kind == "image":
            run("embed-image", self.model, *self.pres, "-o", out, "--raw", *options)
        else:
            run("embed-text", self.model, "-f", self.texts_path, "-0", "-o", out, "--raw", *options)
        return Npy(out)

    def check_same(self, kind, n):
        base = self.embed(kind, "-t", "1", "--batch", "1")
        self.assertEqual(base.shape[0], n)
        for options in (["-t", "2"], ["-t", "3"], ["-t", "1", "--batch", "3"], ["-t", "2", "--batch", "3"],
                        ["-t", "2", "--batch", "64"], ["-t", "1", "--gemm", "openblas"],
                        ["-t", "2", "--batch", "3", "--gemm", "openblas"]):
            got = self.embed(kind, *options)
            self.assertEqual(got.shape, base.shape, options)
            for i in range(n):
                err = rel_l2(got.row(i), base.row(i))
                self.assertLessEqual(err, 1e-5, "%s %d with %s: rel L2 %.3g" % (kind, i, " ".join(options), err))
        return base

    def test_images(self):
        base = self.check_same("image", len(self.pres))
        want = Npy(shared("golden-tiny", "image_embeds.npy"))
        for i in range(len(self.pres)):
            self.assertLessEqual(rel_l2(base.row(i), want.row(i)), 1e-4, "image %d vs golden" % i)

    def test_texts(self):
        base = self.check_same("text", len(self.texts))
        want = Npy(shared("golden-tiny", "text_embeds.npy"))
        for i in range(len(self.texts)):
            self.assertLessEqual(rel_l2(base.row(i), want.row(i)), 1e-4, "text %d vs golden" % i)

    def test_info_names_the_matmul(self):
        native = run("info", self.model, "-t", "2").stdout.decode()
        self.assertRegex(native, r"matmul:\s+(avx512|avx2|neon|scalar)\S* .*2 threads")
        blas = run("info", self.model, "--gemm", "openblas").stdout.decode()
        self.assertRegex(blas, r"matmul:\s+openblas")
        bad = run("embed-image", self.model, self.pres[0], "-o", os.path.join(self.tmp.name, "x.npy"),
                  "--gemm", "cublas", check=False)
        self.assertEqual(bad.returncode, 2)
        self.assertIn(b"--gemm", bad.stderr)


if __name__ == "__main__":
    unittest.main()

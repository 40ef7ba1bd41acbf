"""clip_run trace against OpenAI's per-layer activations (golden-tiny/debug/).

`clip_run trace MODEL IMAGE --dump DIR` (and `--text TEXT`) writes every stage of one
forward pass as DIR/STAGE.npy. For image 0 and text 0 of golden-tiny's manifest, every array
in debug/ must be among them and match within 1e-4 relative (L2) on the rows clip.c
computes: a text's positions up to its end token (causality makes them identical to the
reference's), and for the last block of a tower, which computes the kept token alone past
attention, that row (the class token, the end token). A mismatch names the first stage in
forward order that diverges, so a broken layer is found by name, not only by a wrong
embedding. The image goes in as golden pre/<image>.npy, the reference's own preprocessing,
so only the model is compared (JPEG decoders differ by a level here and there).
"""
import json
import os
import re
import unittest

from harness import GOLDEN, Npy, golden_model, rel_l2, run, shared, tmpdir

TOLERANCE = 1e-4


def forward_order(names, tower):
    """debug/ names of one tower in the order the forward pass produces them."""
    def key(name):
        m = re.match(r"(vision|text)_after_block(\d+)$", name)
        if m:
            return (2, int(m.group(2)))
        for rank, pattern in enumerate([r"_patch_embeds$|^text_input_embeds$", r"_after_ln_pre$", None,
                                        r"_after_ln_post_cls$|_after_ln_final$", r"^(image|text)_embed$"]):
            if pattern and re.search(pattern, name):
                return (rank, 0)
        raise AssertionError("unknown debug/ stage %s" % name)
    mine = [n for n in names if n.startswith(tower) or n == ("image_embed" if tower == "vision" else "text_embed")]
    return sorted(mine, key=key)


class PerLayerGolden(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = golden_model("openai")
        with open(shared("golden-tiny", "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        cls.debug = [os.path.basename(e["file"])[:-4] for e in manifest["debug"]["files"]]
        cls.image = manifest["images"][0]
        with open(shared("golden-tiny", "tokens.json"), encoding="utf-8") as f:
            cls.text = json.load(f)["texts"][0]
        cls.tmp = tmpdir()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def trace(self, name, *args):
        out = os.path.join(self.tmp.name, name)
        proc = run("trace", self.model, *args, "--dump", out)
        return out, proc.stdout.decode()

    def compare(self, tower, dump, kept_row):
        """Every debug/ array of the tower, in forward order; fails naming the first divergent."""
        report = []
        for name in forward_order(self.debug, tower):
            ours_path = os.path.join(dump, name + ".npy")
            self.assertTrue(os.path.exists(ours_path), "trace --dump wrote no %s.npy" % name)
            ours, ref = Npy(ours_path), Npy(os.path.join(GOLDEN, "debug", name + ".npy"))
            width = ref.shape[-1]
            self.assertEqual(ours.shape[-1], width, name)
            n_ours, n_ref = len(ours.data) // width, len(ref.data) // width
            if n_ours == 1 and n_ref > 1:     # the last block / final LayerNorm: the kept row
                rows = [(0, kept_row)]
            else:                             # a prefix of the reference's rows
                self.assertLessEqual(n_ours, n_ref, name)
                rows = [(r, r) for r in range(n_ours)]
            a = [v for r, _ in rows for v in ours.data[r * width:(r + 1) * width]]
            b = [v for _, r in rows for v in ref.data[r * width:(r + 1) * width]]
            err = rel_l2(a, b)
            report.append("%s %.1e" % (name, err))
            if not err <= TOLERANCE:
                self.fail("first divergent stage: %s (relative L2 %.3g over %d rows > %g); before it: %s"
                          % (name, err, len(rows), TOLERANCE, ", ".join(report[:-1]) or "none"))
        return report

    def test_image_every_layer(self):
        pre = shared("golden-tiny", self.image["pre"])
        dump, out = self.trace("image", pre)
        report = self.compare("vision", dump, kept_row=0)
        self.assertEqual(len(report), 6, report)   # patches, ln_pre, 2 blocks, ln_post, embed
        # the printout has every stage in order, one line each
        stages = [line.split()[0] for line in out.splitlines()]
        self.assertEqual(stages[:5], ["vision_pixels", "vision_patches", "vision_patch_embeds",
                                      "vision_input_embeds", "vision_after_ln_pre"])
        block = ["ln1", "qkv", "attn", "after_attn", "ln2", "mlp"]
        for layer in (0, 1):
            at = stages.index("vision_block%d_ln1" % layer)
            self.assertEqual(stages[at:at + 7], ["vision_block%d_%s" % (layer, s) for s in block]
                             + ["vision_after_block%d" % layer])
        self.assertEqual(stages[-2:], ["vision_after_ln_post_cls", "image_embed"])

    def test_text_every_layer(self):
        dump, out = self.trace("text", "--text", self.text["text"])
        eot = self.text["eot_index"]
        report = self.compare("text", dump, kept_row=eot)
        self.assertEqual(len(report), 5, report)   # input embeds, 2 blocks, ln_final, embed
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("text_tokens"))
        self.assertEqual([int(t) for t in lines[0].split()[2:] if t.isdigit()], self.text["tokens"][:eot + 1])
        self.assertEqual(lines[1].split()[:2], ["text_end_token", str(eot)])
        tokens = Npy(os.path.join(dump, "text_tokens.npy"))
        self.assertEqual([int(v) for v in tokens.data], self.text["tokens"])
        self.assertEqual(Npy(os.path.join(dump, "text_input_embeds.npy")).shape, (eot + 1, 64))

    def test_usage_errors(self):
        proc = run("trace", self.model, check=False)
        self.assertEqual(proc.returncode, 2)
        proc = run("trace", self.model, "x.png", "--text", "a cat", check=False)
        self.assertEqual(proc.returncode, 2)
        err = proc.stderr.decode().strip().splitlines()
        self.assertEqual(len(err), 1)
        self.assertTrue(err[0].startswith("clip_run: error: "), err)


if __name__ == "__main__":
    unittest.main()

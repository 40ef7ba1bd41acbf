"""Where an output goes (-o) for clip_run and tools/convert.py, and what must never happen to it.

A regular file (or a new path) is replaced atomically through a temp file; a device or a
FIFO is written in place (renaming over /dev/null as root replaces the device node itself);
a symbolic link stays a link and its target is replaced; "-o -" writes to standard output;
an output that names one of the command's own inputs is refused before any work.

Every device here is made with mknod in a temporary directory: the real /dev is never
touched. mknod needs root (CI runs as root); without it those cases are skipped, named.
"""
import hashlib
import os
import pty
import shutil
import stat
import subprocess
import sys
import threading
import unittest

from harness import CLIP_RUN, ROOT, Npy, golden_model, run, shared, tmpdir

CONVERT = os.path.join(ROOT, "tools", "convert.py")
TEXT = "a photo of a dog."


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_fifo(path, sink):
    """Open the FIFO for reading (this unblocks the writer) and collect every byte."""
    with open(path, "rb") as f:
        sink.append(f.read())


class Outputs:
    """The cases shared by both programs; a subclass says how to write an output to PATH."""

    def setUp(self):
        self.tmp = tmpdir()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def leftovers(self):
        return [n for n in os.listdir(self.dir) if ".tmp." in n]

    def reference_bytes(self):
        out = self.path("reference.out")
        self.write_to(out)
        with open(out, "rb") as f:
            data = f.read()
        os.unlink(out)
        return data

    def test_char_device_stays_a_device(self):
        if os.geteuid() != 0:
            self.skipTest("mknod needs root")
        dev = self.path("null")
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
        before = os.stat(dev)
        self.write_to(dev)
        after = os.lstat(dev)
        self.assertTrue(stat.S_ISCHR(after.st_mode), "the device node was replaced")
        self.assertEqual((after.st_ino, after.st_rdev), (before.st_ino, before.st_rdev))
        self.assertEqual(self.leftovers(), [])

    def test_fifo_reader_gets_the_output(self):
        expected = self.reference_bytes()
        fifo = self.path("pipe")
        os.mkfifo(fifo)
        got = []
        # A daemon: if the FIFO were wrongly replaced, its reader would wait forever.
        reader = threading.Thread(target=read_fifo, args=(fifo, got), daemon=True)
        reader.start()
        try:
            self.write_to(fifo)
        finally:
            reader.join(timeout=10)  # the writer is done: the reader has everything
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced")
        self.assertEqual(got, [expected])
        self.assertEqual(self.leftovers(), [])

    def test_symlink_stays_a_link_and_its_target_is_replaced(self):
        expected = self.reference_bytes()
        target = self.path("target.out")
        with open(target, "wb") as f:
            f.write(b"old contents")
        os.chmod(target, 0o600)
        link = self.path("link.out")
        os.symlink("target.out", link)  # relative, as people make them
        old_inode = os.stat(target).st_ino
        self.write_to(link)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.readlink(link), "target.out")
        with open(target, "rb") as f:
            self.assertEqual(f.read(), expected)
        self.assertNotEqual(os.stat(target).st_ino, old_inode, "not replaced through a new file")
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o600, "permissions not kept")
        self.assertEqual(self.leftovers(), [])

    def test_dangling_symlink_creates_its_target(self):
        expected = self.reference_bytes()
        os.mkdir(self.path("sub"))
        link = self.path("link.out")
        os.symlink(os.path.join("sub", "new.out"), link)
        self.write_to(link)
        self.assertTrue(os.path.islink(link))
        with open(self.path(os.path.join("sub", "new.out")), "rb") as f:
            self.assertEqual(f.read(), expected)

    def test_stdout(self):
        expected = self.reference_bytes()
        got = self.write_to("-", cwd=self.dir)
        self.assertEqual(got, expected)
        self.assertFalse(os.path.exists(self.path("-")), "a file named '-' was created")

    def test_dev_stdout(self):
        """-o /dev/stdout: a link (to /proc/self/fd/1) whose end is a pipe or a file; the link
        stays, the pipe gets the output, and a redirected file gets it complete."""
        expected = self.reference_bytes()
        before = os.lstat("/dev/stdout")
        got = self.write_to("/dev/stdout", cwd=self.dir)            # stdout is a pipe here
        self.assertEqual(got, expected)
        redirected = self.path("redirected.out")
        with open(redirected, "wb") as f:
            proc = subprocess.run(self.command("/dev/stdout"), stdout=f, stderr=subprocess.PIPE,
                                  cwd=self.dir, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(redirected, "rb") as f:
            self.assertEqual(f.read(), expected)
        after = os.lstat("/dev/stdout")
        self.assertTrue(stat.S_ISLNK(after.st_mode), "/dev/stdout is no longer a link")
        self.assertEqual((after.st_ino, after.st_dev), (before.st_ino, before.st_dev))
        self.assertEqual(self.leftovers(), [])

    def test_stdout_refused_on_a_terminal(self):
        controller, terminal = pty.openpty()
        try:
            proc = subprocess.run(self.command("-"), stdout=terminal, stderr=subprocess.PIPE,
                                  cwd=self.dir, timeout=600)
        finally:
            os.close(terminal)
            os.close(controller)
        self.assertNotEqual(proc.returncode, 0)
        self.assertGreater(proc.returncode, 0, "crashed")
        self.assertIn(b"terminal", proc.stderr)
        self.assertFalse(os.path.exists(self.path("-")))

    def test_directory_refused(self):
        os.mkdir(self.path("d"))
        proc = subprocess.run(self.command(self.path("d")), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=600)
        self.assertGreater(proc.returncode, 0)
        self.assertIn(b"directory", proc.stderr)
        self.assertTrue(os.path.isdir(self.path("d")))

    def assert_refused(self, output, inputs, extra=()):
        """-o OUTPUT where OUTPUT is (a link to) one of `inputs`: refused, nothing changes."""
        proc = self.refused(self.command(output, *extra), inputs)
        self.assertIn(os.path.basename(output), proc.stderr.decode(errors="replace"))

    def refused(self, argv, inputs):
        """argv fails before any work: its inputs are unchanged and no file appears or
        vanishes. Returns the finished process."""
        before = {p: digest(p) for p in inputs}
        names = sorted(os.listdir(self.dir))
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        self.assertGreater(proc.returncode, 0, "expected a refusal, got exit %d" % proc.returncode)
        for p in inputs:
            self.assertEqual(digest(p), before[p], "%s changed" % p)
        self.assertEqual(sorted(os.listdir(self.dir)), names, "files appeared or vanished")
        return proc


class ClipRunOutputs(Outputs, unittest.TestCase):
    """clip_run embed-text / embed-image / preprocess -o ..."""

    @classmethod
    def setUpClass(cls):
        cls.golden = golden_model("openai")

    def command(self, output, *extra):
        return [CLIP_RUN, "embed-text", self.golden, TEXT, "-o", output] + list(extra)

    def write_to(self, output, cwd=None):
        proc = subprocess.run(self.command(output), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              cwd=cwd, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        return proc.stdout

    def test_stdout_is_a_valid_npy(self):
        out = self.write_to("-", cwd=self.dir)  # a broken build would write a file named '-' there
        npy_path = self.path("from_stdout.npy")
        with open(npy_path, "wb") as f:
            f.write(out)
        a = Npy(npy_path)
        self.assertEqual(a.dtype, "<f4")
        self.assertEqual(len(a.shape), 2)
        self.assertEqual(a.shape[0], 1)
        self.assertAlmostEqual(sum(x * x for x in a.data), 1.0, places=4)

    def copies(self):
        """A model, an image and a text list of our own, so links to them can be made."""
        model = self.path("m.clip")
        shutil.copyfile(self.golden, model)
        image = self.path("img.png")
        shutil.copyfile(shared("images", "hubble_rgba.png"), image)
        texts = self.path("texts.txt")
        with open(texts, "w") as f:
            f.write("a dog\na cat\n")
        return model, image, texts

    def test_output_naming_the_model_is_refused(self):
        model, image, texts = self.copies()
        os.symlink("m.clip", self.path("soft.clip"))
        os.link(model, self.path("hard.clip"))
        for out in (model, self.path("soft.clip"), self.path("hard.clip"),
                    os.path.join(self.dir, ".", "m.clip")):
            for cmd in (["embed-text", model, TEXT], ["embed-image", model, image], ["preprocess", model, image]):
                self.assert_refused_cmd(cmd + ["-o", out], [model, image])

    def test_output_naming_an_image_is_refused(self):
        model, image, texts = self.copies()
        os.symlink("img.png", self.path("soft.png"))
        os.link(image, self.path("hard.png"))
        second = self.path("second.png")
        shutil.copyfile(image, second)
        for out in (image, self.path("soft.png"), self.path("hard.png")):
            self.assert_refused_cmd(["embed-image", model, second, image, "-o", out], [model, image, second])
            self.assert_refused_cmd(["preprocess", model, image, "-o", out], [model, image])

    def test_output_naming_the_text_file_is_refused(self):
        model, image, texts = self.copies()
        os.symlink("texts.txt", self.path("soft.txt"))
        os.link(texts, self.path("hard.txt"))
        for out in (texts, self.path("soft.txt"), self.path("hard.txt")):
            self.assert_refused_cmd(["embed-text", model, "-f", texts, "-o", out], [model, texts])

    def test_a_text_that_looks_like_a_file_is_not_an_input(self):
        # embed-text's positional arguments are texts: a text equal to the output's name is fine
        model, image, texts = self.copies()
        out = self.path("out.npy")
        with open(out, "wb") as f:
            f.write(b"previous")
        run("embed-text", model, out, "-o", out)
        self.assertEqual(Npy(out).shape, (1, Npy(out).shape[1]))

    def assert_refused_cmd(self, argv, inputs):
        """clip_run's refusal: exit 2 (a wrong command line), one error line."""
        proc = self.refused([CLIP_RUN] + argv, inputs)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        self.assertEqual(len(err), 1, err)
        self.assertTrue(err[0].startswith("clip_run: error: "), err[0])
        self.assertIn("overwritten", err[0])


class ConvertOutputs(Outputs, unittest.TestCase):
    """tools/convert.py SRC -o ..."""

    @classmethod
    def setUpClass(cls):
        cls.src = shared("golden-tiny")

    def command(self, output, *extra):
        return [sys.executable, CONVERT, self.src, "-o", output] + list(extra)

    def write_to(self, output, cwd=None):
        proc = subprocess.run(self.command(output), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              cwd=cwd, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        return proc.stdout

    def test_stdout_carries_only_the_file(self):
        out = self.write_to("-")
        self.assertEqual(out[:5], b"CLIPC")  # progress went to stderr, not into the file
        model = self.path("from_stdout.clip")
        with open(model, "wb") as f:
            f.write(out)
        self.assertIn("width 128", run("info", model).stdout.decode())

    def test_output_naming_an_input_is_refused(self):
        # A private copy of the Hugging Face directory and of the OpenAI checkpoint + sidecars.
        hf = self.path("hf")
        shutil.copytree(self.src, hf, ignore=shutil.ignore_patterns("debug", "pre", "pixels_u8", "*.npy"))
        pt = os.path.join(hf, "openai.pt")
        cfg = os.path.join(hf, "open_clip_config.json")
        vocab = self.path("bpe.txt.gz")
        shutil.copyfile(shared("bpe_simple_vocab_16e6.txt.gz"), vocab)
        os.symlink("hf/model.safetensors", self.path("soft.safetensors"))
        os.link(os.path.join(hf, "config.json"), self.path("hard.json"))
        os.symlink("bpe.txt.gz", self.path("soft.gz"))
        os.link(pt, self.path("hard.pt"))
        hf_inputs = [os.path.join(hf, n) for n in ("model.safetensors", "config.json", "vocab.json", "merges.txt")]
        # the Hugging Face directory: its weights, config and tokenizer files, also through links
        self.src = hf
        for out in hf_inputs + [self.path("soft.safetensors"), self.path("hard.json")]:
            self.assert_refused(out, hf_inputs)
        # an OpenAI checkpoint with --config and --vocab
        self.src = pt
        openai_inputs = [pt, cfg, vocab]
        for out in (pt, self.path("hard.pt"), cfg, vocab, self.path("soft.gz")):
            self.assert_refused(out, openai_inputs, extra=("--config", cfg, "--vocab", vocab))


if __name__ == "__main__":
    unittest.main()

"""Hostile inputs and interrupted writes, end to end through clip_run and convert.py.

  * a short mutation campaign (tests/mutate.py): damaged models, images, .npy files and
    texts must each end in exit 0 or a one-line error, never a crash, sanitizer report or
    hang (the suite runs this file again with the sanitized clip_run);
  * a model whose config is consistent with its tensors but asks for an absurd amount of
    work (65537 patch tokens in a 1 MB file) is refused at load, instead of running for hours;
  * killing clip_run or convert.py while they write (SIGINT, SIGTERM, SIGKILL, at several
    moments) leaves a previous output file byte-identical and never a truncated one; after
    a catchable signal no temp file remains either, after SIGKILL at most the hidden
    ".NAME.tmp.XXXXXX".
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mutate  # noqa: E402
from harness import CLIP_RUN, ROOT, golden_model, shared  # noqa: E402

MAKE_RANDOM = os.path.join(ROOT, "tools", "make_random_model.py")
CONVERT = os.path.join(ROOT, "tools", "convert.py")
TEMP_NAME = re.compile(r"^\.(.+)\.tmp\.[A-Za-z0-9_]{6,}$")


def random_model(out_dir, *args):
    subprocess.run([sys.executable, MAKE_RANDOM, out_dir, "--merges", shared("bpe_simple_vocab_16e6.txt.gz"),
                    "--vocab-size", "520"] + list(args), check=True, stdout=subprocess.DEVNULL)
    return out_dir


def convert(src, out):
    subprocess.run([sys.executable, CONVERT, os.path.join(src, "openai.pt"), "--config",
                    os.path.join(src, "open_clip_config.json"), "--vocab", os.path.join(src, "merges.txt"),
                    "-o", out], check=True, stdout=subprocess.DEVNULL)
    return out


class MutationCampaign(unittest.TestCase):
    def test_short_campaign(self):
        failures = mutate.campaign(CLIP_RUN, golden_model(), cases=160, seed=2024, timeout=120,
                                   keep=os.path.join(tempfile.gettempdir(), "clip-mutate-failures"),
                                   log=lambda s: None)
        self.assertEqual(failures, [], "\n".join(failures))


class AbsurdConfig(unittest.TestCase):
    def test_huge_token_count_refused_quickly(self):
        with tempfile.TemporaryDirectory(prefix="clip-absurd-") as tmp:
            # 1024 / 4 = 256 x 256 patches: 65537 tokens, width 2, 4 layers. Every tensor is
            # present and consistent; attention alone would be 1.4e11 multiply-adds.
            src = random_model(os.path.join(tmp, "src"), "--image-size", "1024", "--patch", "4",
                               "--vision-width", "2", "--vision-heads", "1", "--vision-layers", "4",
                               "--text-width", "8", "--text-heads", "2", "--text-layers", "1",
                               "--context", "8", "--embed-dim", "4")
            model = convert(src, os.path.join(tmp, "absurd.clip"))
            start = time.monotonic()
            proc = subprocess.run([CLIP_RUN, "embed-image", model, os.path.join(mutate.SEEDS, "image", "rgb.png"),
                                   "-o", os.path.join(tmp, "out.npy")], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertIn(model, proc.stderr)
            self.assertIn("multiply-adds", proc.stderr)
            self.assertLess(time.monotonic() - start, 30)
            self.assertFalse(os.path.exists(os.path.join(tmp, "out.npy")))


    def test_huge_image_size_refused(self):
        with tempfile.TemporaryDirectory(prefix="clip-absurd-") as tmp:
            # 4096 px images in patches of 512: only 64 patches, but preprocessing alone
            # would need 3 x 4096² floats several times over (~600 MB) for a 7 MB file.
            src = random_model(os.path.join(tmp, "src"), "--image-size", "4096", "--patch", "512",
                               "--vision-width", "2", "--vision-heads", "1", "--vision-layers", "1",
                               "--text-width", "8", "--text-heads", "2", "--text-layers", "1",
                               "--context", "8", "--embed-dim", "4")
            model = convert(src, os.path.join(tmp, "absurd.clip"))
            proc = subprocess.run([CLIP_RUN, "info", model], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=120)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertIn(model, proc.stderr)
            self.assertIn("MB of activations", proc.stderr)


def leftovers(directory, name):
    """Files in directory other than `name`: (temp files of name, anything else)."""
    temps, others = [], []
    for f in os.listdir(directory):
        if f == name:
            continue
        m = TEMP_NAME.match(f)
        (temps if m and m.group(1) == name else others).append(f)
    return temps, others


class InterruptedWrites(unittest.TestCase):
    """The previous output must survive any kill; see the module docstring."""

    def kill_during(self, argv, out, sig, delay, env=None):
        """Start argv, send sig `delay` seconds after its temp file appears (or after start,
        if it never appears), and wait. Returns (exit code, whether the temp file was seen)."""
        directory, name = os.path.dirname(out), os.path.basename(out)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        seen, start = False, time.monotonic()
        while proc.poll() is None and time.monotonic() - start < 60:
            if leftovers(directory, name)[0]:
                seen = True
                break
            time.sleep(0.0005)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(sig)
        proc.stderr.read()
        proc.stderr.close()
        return proc.wait(timeout=120), seen

    def check_outcome(self, out, previous, rc, sig, expect_shape):
        directory, name = os.path.dirname(out), os.path.basename(out)
        with open(out, "rb") as f:
            now = f.read()
        if now != previous:
            # Replaced: the run got as far as the rename (a signal may still arrive after it,
            # e.g. during exit), so the new file must be complete.
            self.assertEqual(mutate.npy_shape(out), expect_shape,
                             "output replaced by an incomplete file (exit %d)" % rc)
        temps, others = leftovers(directory, name)
        self.assertEqual(others, [])
        if sig != signal.SIGKILL or rc == 0:
            self.assertEqual(temps, [], "temp file left after %s (exit %d)" % (signal.Signals(sig).name, rc))

    def test_kill_clip_run(self):
        model = golden_model()
        with tempfile.TemporaryDirectory(prefix="clip-kill-") as tmp:
            texts = os.path.join(tmp, "texts.txt")
            with open(texts, "w") as f:
                f.write("".join("a photo of a number %d, seen %s\n" % (i, "from far away " * (i % 5))
                                for i in range(600)))
            out_dir = os.path.join(tmp, "out")
            os.mkdir(out_dir)
            out = os.path.join(out_dir, "embeds.npy")
            subprocess.run([CLIP_RUN, "embed-text", model, "previous", "-o", out], check=True)
            with open(out, "rb") as f:
                previous = f.read()
            argv = [CLIP_RUN, "embed-text", model, "-f", texts, "-o", out]
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
                for delay in (0.0, 0.001, 0.01):
                    rc, seen = self.kill_during(argv, out, sig, delay)
                    if rc != 0:
                        self.assertEqual(rc, -sig, "clip_run should die of the signal")
                    self.check_outcome(out, previous, rc, sig, (600, 64))
                    with open(out, "rb") as f:
                        previous = f.read()
                    for t in leftovers(out_dir, "embeds.npy")[0]:
                        os.unlink(os.path.join(out_dir, t))

    def test_kill_convert(self):
        with tempfile.TemporaryDirectory(prefix="clip-kill-convert-") as tmp:
            # About 25 MB of weights: the converter writes for a while.
            src = random_model(os.path.join(tmp, "src"), "--image-size", "64", "--patch", "8",
                               "--vision-width", "256", "--vision-heads", "4", "--vision-layers", "6",
                               "--text-width", "128", "--text-heads", "2", "--text-layers", "2",
                               "--context", "16", "--embed-dim", "32")
            out_dir = os.path.join(tmp, "out")
            os.mkdir(out_dir)
            out = os.path.join(out_dir, "model.clip")
            with open(out, "wb") as f:
                f.write(b"the previous output, which must survive")
            previous = b"the previous output, which must survive"
            argv = [sys.executable, CONVERT, os.path.join(src, "openai.pt"), "--config",
                    os.path.join(src, "open_clip_config.json"), "--vocab", os.path.join(src, "merges.txt"),
                    "-o", out]
            for sig, delay in ((signal.SIGTERM, 0.0), (signal.SIGTERM, 0.2), (signal.SIGINT, 0.05),
                               (signal.SIGKILL, 0.0), (signal.SIGKILL, 0.2)):
                rc, seen = self.kill_during(argv, out, sig, delay)
                with open(out, "rb") as f:
                    now = f.read()
                if rc == 0:  # finished before the signal: a complete, loadable model
                    subprocess.run([CLIP_RUN, "info", out], check=True, stdout=subprocess.DEVNULL)
                    previous = now
                else:
                    self.assertEqual(now, previous, "%s at +%g s replaced the output" % (sig.name, delay))
                    self.assertIn(rc, (-signal.SIGKILL, -sig, 128 + sig), "exit %d after %s" % (rc, sig.name))
                temps, others = leftovers(out_dir, "model.clip")
                self.assertEqual(others, [])
                if sig != signal.SIGKILL:
                    self.assertEqual(temps, [], "temp file left after %s" % sig.name)
                for t in temps:
                    os.unlink(os.path.join(out_dir, t))

    # A signal that arrives while convert.py creates its temp file waits (blocked) and is
    # raised the moment the signals are unblocked; the kills above hit that microsecond
    # only by luck (a CI run did once, and left the temp file). Here it is made to happen
    # every time: mkstemp sends the signal to its own process, while it is still blocked.
    PENDING_AT_CREATION = """if True:
        import os, signal, sys, tempfile
        sys.path.insert(0, sys.argv[1])
        import convert
        real_mkstemp, sig = tempfile.mkstemp, getattr(signal, sys.argv[2])
        def mkstemp_then_signal(*args, **kwargs):
            made = real_mkstemp(*args, **kwargs)
            os.kill(os.getpid(), sig)
            return made
        convert.tempfile.mkstemp = mkstemp_then_signal
        sys.exit(convert.main(sys.argv[3:]))
    """

    def test_convert_signal_pending_at_temp_creation(self):
        with tempfile.TemporaryDirectory(prefix="clip-kill-convert-") as out_dir:
            out = os.path.join(out_dir, "model.clip")
            with open(out, "wb") as f:
                f.write(b"the previous output")
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                run = subprocess.run([sys.executable, "-c", self.PENDING_AT_CREATION, os.path.join(ROOT, "tools"),
                                      sig.name, shared("golden-tiny", "openai.pt"), "--config",
                                      shared("golden-tiny", "open_clip_config.json"), "--vocab",
                                      shared("bpe_simple_vocab_16e6.txt.gz"), "-o", out],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                self.assertEqual(run.returncode, 128 + sig, run.stderr)
                self.assertIn("interrupted (%s)" % sig.name, run.stderr)
                self.assertEqual(run.stderr.count("\n"), 1, run.stderr)
                with open(out, "rb") as f:
                    self.assertEqual(f.read(), b"the previous output")
                self.assertEqual(leftovers(out_dir, "model.clip"), ([], []), "after %s" % sig.name)


if __name__ == "__main__":
    unittest.main()

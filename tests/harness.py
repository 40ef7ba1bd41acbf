"""Shared helpers of the Python tests: paths, running clip_run, reading .npy files.

Reference data lives in ../shared/clip (relative to the repo root, where `make test`
runs); when it is missing the tests fail, they never skip.
"""
import array
import ast
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "clip")
GOLDEN = os.path.join(SHARED, "golden-tiny")
CLIP_RUN = os.path.abspath(os.path.join(ROOT, os.environ.get("CLIP_RUN", "clip_run")))
MODELS = os.path.abspath(os.path.join(ROOT, os.environ.get("CLIP_TEST_MODELS", "build/test-models")))


def shared(*parts):
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        raise AssertionError("missing reference data %s (is ../shared present?)" % path)
    return path


def run(*args, stdin=None, check=True):
    """Run clip_run with args; returns CompletedProcess (text mode, bytes-safe)."""
    proc = subprocess.run([CLIP_RUN] + [str(a) for a in args], input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError("clip_run %s failed (%d): %s" % (
            " ".join(map(str, args))[:300], proc.returncode, proc.stderr.decode(errors="replace")))
    return proc


def convert(src, out, *extra):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert.py"), src, "-o", out] + list(extra),
                   check=True, stdout=subprocess.DEVNULL)
    return out


def golden_model(layout="openai"):
    """The golden-tiny model converted by tests/run_tests.sh (or now, if run alone)."""
    path = os.path.join(MODELS, "golden-%s.clip" % layout)
    if not os.path.exists(path):
        os.makedirs(MODELS, exist_ok=True)
        if layout == "openai":
            convert(shared("golden-tiny", "openai.pt"), path, "--config",
                    shared("golden-tiny", "open_clip_config.json"), "--vocab",
                    shared("bpe_simple_vocab_16e6.txt.gz"))
        else:
            convert(shared("golden-tiny"), path)
    return path


class Npy:
    """A .npy array read with the standard library: .shape and flat .data (a list)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        assert raw[:6] == b"\x93NUMPY", path + ": not a .npy file"
        major = raw[6]
        if major == 1:
            hlen, start = int.from_bytes(raw[8:10], "little"), 10
        else:
            hlen, start = int.from_bytes(raw[8:12], "little"), 12
        header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
        assert not header["fortran_order"]
        self.shape = tuple(header["shape"])
        code = {"<f4": "f", "<f8": "d", "|u1": "B", "<i4": "i", "<i8": "q"}[header["descr"]]
        self.dtype = header["descr"]
        a = array.array(code)
        a.frombytes(raw[start + hlen:start + hlen + a.itemsize * math.prod(self.shape)])
        if sys.byteorder == "big":
            a.byteswap()
        self.data = a.tolist()

    def row(self, i):
        n = math.prod(self.shape[1:])
        return self.data[i * n:(i + 1) * n]


def rel_l2(a, b):
    num = sum((x - y) ** 2 for x, y in zip(a, b))
    den = sum(y * y for y in b)
    return math.sqrt(num / den) if den else math.sqrt(num)


def cosine(a, b):
    ab = sum(x * y for x, y in zip(a, b))
    return ab / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def tmpdir():
    return tempfile.TemporaryDirectory(prefix="clip-test-")

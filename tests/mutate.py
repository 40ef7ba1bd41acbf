#!/usr/bin/env python3
"""mutate.py - a mutation campaign: damaged models, images, .npy files and texts through clip_run.

    python3 tests/mutate.py [--clip-run PATH] [--cases N] [--seed S] [--timeout SECONDS]
                            [--kinds clip,image,npy,text] [--jobs J] [--keep DIR]

Each case takes a valid input, damages it (truncation, bit flips, spliced ranges, fields
overwritten with boundary values, repeated or deleted chunks), runs one clip_run command on
it and checks what a hostile input may and may not do:
  * exit 0 (the damage was harmless) or exit 1 (2 for a usage error such as a text file
    without any text) with one line "clip_run: error: ..." on stderr that names the
    damaged file (models, images, .npy) or says what is wrong;
  * never a signal, a sanitizer report (the suite's sanitizer builds exit 86 on one), a
    hang (--timeout, default 60 s), or an exit 0 with an output file that is not a
    complete .npy of the expected shape.
Failing inputs are kept in --keep (default build/mutate-failures) with the command line.
Inputs: the tiny seed models of tests/fuzz/corpus/weightfile (fast to run, so thousands of
cases are cheap) and the golden-tiny model, the image seeds of tests/fuzz/corpus/image plus ../shared/clip/images, and
the golden-tiny model converted by the suite ($CLIP_TEST_MODELS/golden-openai.clip) for the
image and text cases. The campaign is deterministic in --seed. tests/test_mutate.py runs a
short campaign inside the test suite; run this script for a long one, e.g. against the
sanitized build:  python3 tests/mutate.py --clip-run build/asan/clip_run --cases 5000
"""
import argparse
import concurrent.futures
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED_IMAGES = os.path.join(ROOT, "..", "shared", "clip", "images")
SEEDS = os.path.join(HERE, "fuzz", "corpus")
SANITIZER_EXIT = 86
SANITIZER_WORDS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
                   "MemorySanitizer", "ThreadSanitizer")
BOUNDARY_U32 = (0, 1, 2, 3, 4, 7, 8, 63, 64, 65, 127, 128, 255, 256, 4095, 4096, 65535, 65536,
                0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


# --- damage ----------------------------------------------------------------------------------
def mutate(data, rng, hot=None):
    """One to three random kinds of damage. hot: (start, end) of the bytes that matter most
    (a .clip's header and sections before the tensor data), hit more often."""
    data = bytearray(data)

    def pos():
        if hot and rng.random() < 0.8:
            return rng.randrange(hot[0], max(hot[0] + 1, min(hot[1], len(data))))
        return rng.randrange(max(1, len(data)))

    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not data:
            data = bytearray(b"\0")
        kind = rng.randrange(7)
        if kind == 0:  # truncate
            del data[rng.randrange(len(data)):]
        elif kind == 1:  # flip bits
            for _ in range(rng.choice((1, 1, 2, 4, 16))):
                data[pos() % len(data)] ^= 1 << rng.randrange(8)
        elif kind == 2:  # overwrite a little-endian u32 with a boundary value
            at = pos() % max(1, len(data) - 4)
            data[at:at + 4] = struct.pack("<I", rng.choice(BOUNDARY_U32))
        elif kind == 3:  # overwrite a big-endian u16/u32 (image headers are big-endian too)
            at = pos() % max(1, len(data) - 4)
            v = rng.choice(BOUNDARY_U32)
            data[at:at + 4] = struct.pack(">I", v) if rng.random() < 0.5 else struct.pack(">HH", v & 0xFFFF, v & 0xFFFF)
        elif kind == 4:  # splice: copy a range from elsewhere in the file over this position
            n = rng.randrange(1, 64)
            src, dst = rng.randrange(len(data)), pos() % len(data)
            data[dst:dst + n] = data[src:src + n]
        elif kind == 5:  # delete or repeat a chunk
            at, n = pos() % len(data), rng.randrange(1, 32)
            if rng.random() < 0.5:
                del data[at:at + n]
            else:
                data[at:at] = data[at:at + n]
        else:  # random bytes
            at = pos() % len(data)
            data[at:at + 8] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    return bytes(data)


def clip_hot_range(data):
    """Header through the tensor directory (everything but tensor data) of a .clip file."""
    if len(data) >= 80:
        data_offset = struct.unpack_from("<Q", data, 64)[0]
        return (0, min(data_offset, len(data)))
    return None


def random_text(rng):
    pieces = [b"a photo of a cat", b"&amp;", b"&#x1F600;", b"<|endoftext|>", b"don't", "caf\u00e9".encode(),
              "\u732b".encode(), b"\xff\xfe", b"\xc3", b"\x00", b"\t\n", b"  ", b"123456789", b"!!??",
              "\u00e2\u20ac\u2122".encode(), b"x" * 300, "\U0001F431".encode()]
    n = rng.randrange(0, 40)
    return b"".join(rng.choice(pieces) if rng.random() < 0.7 else bytes([rng.randrange(256)]) for _ in range(n))


# --- running clip_run ---------------------------------------------------------------------------
def npy_shape(path):
    """The shape of a float32 .npy written by clip_run, or None if it is not complete."""
    try:
        raw = read(path)
    except OSError:
        return None
    if raw[:6] != b"\x93NUMPY" or raw[6] != 1:
        return None
    hlen = int.from_bytes(raw[8:10], "little")
    header = raw[10:10 + hlen].decode("latin1")
    if "'<f4'" not in header or "'shape': (" not in header:
        return None
    shape = tuple(int(x) for x in header.split("'shape': (")[1].split(")")[0].split(",") if x.strip())
    n = 1
    for d in shape:
        n *= d
    return shape if len(raw) == 10 + hlen + 4 * n else None


class Campaign:
    def __init__(self, clip_run, golden, timeout, keep, work):
        self.clip_run, self.golden, self.timeout, self.keep, self.work = clip_run, golden, timeout, keep, work
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:exitcode=%d" % SANITIZER_EXIT)
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=%d" % SANITIZER_EXIT)
        self.env.setdefault("OPENBLAS_NUM_THREADS", "1")

    def check(self, case, args, damaged, out=None, expect_shape=None, name_in_error=None):
        """Run clip_run args; returns None if the outcome is acceptable, else the reason."""
        if out and os.path.exists(out):
            os.unlink(out)
        try:
            threads = ["-t", "1"] if args[0] in THREADED else []  # before any "--"
            proc = subprocess.run([self.clip_run] + args[:2] + threads + args[2:],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.timeout,
                                  env=self.env)
        except subprocess.TimeoutExpired:
            return self.failed(case, args, damaged, "hang: no exit within %d s" % self.timeout, "")
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode < 0:
            return self.failed(case, args, damaged, "killed by signal %d" % -proc.returncode, err)
        if proc.returncode == SANITIZER_EXIT or any(w in err for w in SANITIZER_WORDS):
            return self.failed(case, args, damaged, "sanitizer report", err)
        if proc.returncode == 0:
            if out and expect_shape and npy_shape(out) != expect_shape:
                return self.failed(case, args, damaged, "exit 0 but %s is not a [%s] .npy" % (out, expect_shape), err)
            return None
        if proc.returncode not in (1, 2):  # 2: a usage error, e.g. a text file with no text
            return self.failed(case, args, damaged, "exit %d (expected 0, 1 or 2)" % proc.returncode, err)
        lines = err.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("clip_run: error: ") or len(lines[0]) < 25:
            return self.failed(case, args, damaged, "failure without a one-line message", err)
        if name_in_error and name_in_error not in lines[0]:
            return self.failed(case, args, damaged, "message does not name %s" % name_in_error, err)
        if out and os.path.exists(out):
            return self.failed(case, args, damaged, "failed run left %s behind" % out, err)
        return None

    def failed(self, case, args, damaged, why, err):
        os.makedirs(self.keep, exist_ok=True)
        kept = os.path.join(self.keep, "case-%05d-%s" % (case, os.path.basename(damaged)))
        shutil.copyfile(damaged, kept)
        with open(kept + ".txt", "w") as f:
            f.write("%s\n%s %s\n\n%s" % (why, self.clip_run, " ".join(args), err[-4000:]))
        return "case %d: %s: %s (%s)" % (case, why, " ".join(args[:2]), kept)


THREADED = ("embed-image", "embed-text", "classify", "score")  # commands that take -t N


def run_case(c, kind, case, rng, inputs):
    d = os.path.join(c.work, "case-%05d" % case)
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, "out.npy")
    try:
        if kind == "clip":
            src = rng.choice(inputs["models"])
            data = read(src)
            path = os.path.join(d, "damaged.clip")
            write(path, mutate(data, rng, clip_hot_range(data)))
            image = rng.choice(inputs["images"])
            cmd = rng.choice(("info", "embed-image", "embed-text", "score", "classify", "tokenize"))
            if cmd == "info":
                return c.check(case, ["info", path], path, name_in_error=path)
            if cmd == "tokenize":
                return c.check(case, ["tokenize", path, "a photo of a cat"], path, name_in_error=path)
            if cmd == "embed-image":
                return c.check(case, ["embed-image", path, image, "-o", out], path, out)
            if cmd == "embed-text":
                return c.check(case, ["embed-text", path, "a photo", "of a dog", "-o", out], path, out)
            if cmd == "score":
                return c.check(case, ["score", path, image, "a photo of an astronaut"], path)
            return c.check(case, ["classify", path, image, "-l", "cat", "-l", "dog"], path)
        if kind == "image":
            src = rng.choice(inputs["images"])
            path = os.path.join(d, "damaged" + os.path.splitext(src)[1])
            write(path, mutate(read(src), rng, (0, 64)))
            if rng.random() < 0.5:
                return c.check(case, ["preprocess", c.golden, path, "-o", out], path, out,
                               (3, inputs["size"], inputs["size"]), name_in_error=path)
            return c.check(case, ["embed-image", c.golden, path, "-o", out], path, out,
                           (1, inputs["dim"]), name_in_error=path)
        if kind == "npy":
            path = os.path.join(d, "damaged.npy")
            write(path, mutate(inputs["npy"], rng, (0, 128)))
            return c.check(case, ["embed-image", c.golden, path, "-o", out], path, out, (1, inputs["dim"]),
                           name_in_error=path)
        # text: a file of damaged texts, newline- or NUL-separated, or token ids
        path = os.path.join(d, "texts.txt")
        texts = [random_text(rng) for _ in range(rng.randrange(1, 6))]
        null = rng.random() < 0.3
        blob = (b"\0" if null else b"\n").join(texts)
        if rng.random() < 0.3:
            blob = mutate(blob, rng)
        write(path, blob)
        args = ["-f", path] + (["-0"] if null else [])
        if rng.random() < 0.5:
            return c.check(case, ["tokenize", c.golden] + args, path)
        if rng.random() < 0.2:
            ids = " ".join(str(rng.choice((0, 1, 320, 49406, 49407, 49408, -1, 1 << 40))) for _ in range(rng.randrange(0, 90)))
            return c.check(case, ["embed-text", c.golden, "--ids", "-o", out, "--", ids], path, out)
        return c.check(case, ["embed-text", c.golden] + args + ["-o", out], path, out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def golden_facts(clip_run, golden):
    """image_size and embed_dim of the golden model, from `clip_run info`."""
    info = subprocess.run([clip_run, "info", golden], stdout=subprocess.PIPE, check=True,
                          universal_newlines=True).stdout
    size = int(info.split("image:")[1].split("x")[0])
    dim = int(info.split("embedding:")[1].split(",")[0])
    return size, dim


def campaign(clip_run, golden, cases, seed=0, timeout=60, kinds=("clip", "image", "npy", "text"), jobs=1,
             keep=None, log=print):
    """Runs `cases` cases; returns the list of failure descriptions."""
    keep = keep or os.path.join(ROOT, "build", "mutate-failures")
    work = tempfile.mkdtemp(prefix="clip-mutate-")
    try:
        size, dim = golden_facts(clip_run, golden)
        models = sorted(os.path.join(SEEDS, "weightfile", f) for f in os.listdir(os.path.join(SEEDS, "weightfile")))
        models.append(golden)  # a real vocabulary and real shapes, 16 MB
        images = sorted(os.path.join(SEEDS, "image", f) for f in os.listdir(os.path.join(SEEDS, "image")))
        if os.path.isdir(SHARED_IMAGES):
            images += sorted(os.path.join(SHARED_IMAGES, f) for f in os.listdir(SHARED_IMAGES)
                             if not f.endswith(".rgb") and os.path.getsize(os.path.join(SHARED_IMAGES, f)) < (1 << 20))
        pixels = os.path.join(work, "pixels.npy")
        subprocess.run([clip_run, "preprocess", golden, images[0], "-o", pixels], check=True,
                       stdout=subprocess.DEVNULL)
        inputs = {"models": models, "images": images, "npy": read(pixels), "size": size, "dim": dim}
        c = Campaign(clip_run, golden, timeout, keep, work)
        master = random.Random(seed)
        plan = [(master.choice(kinds), i, random.Random(master.getrandbits(64))) for i in range(cases)]
        failures = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for i, result in enumerate(pool.map(lambda p: run_case(c, p[0], p[1], p[2], inputs), plan)):
                if result:
                    failures.append(result)
                    log("FAIL " + result)
                if (i + 1) % 500 == 0:
                    log("%d cases, %d failures" % (i + 1, len(failures)))
        return failures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip-run", default=os.path.join(ROOT, "clip_run"))
    p.add_argument("--model", default=os.path.join(os.environ.get("CLIP_TEST_MODELS", os.path.join(ROOT, "build", "test-models")),
                                                   "golden-openai.clip"), help="the golden-tiny .clip (image and text cases)")
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--kinds", default="clip,image,npy,text")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--keep", default=None, help="where failing inputs are kept (build/mutate-failures)")
    a = p.parse_args()
    failures = campaign(os.path.abspath(a.clip_run), a.model, a.cases, a.seed, a.timeout, tuple(a.kinds.split(",")),
                        a.jobs, a.keep)
    print("%d cases, %d failures" % (a.cases, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""prepare.py - the benchmark's model and inputs, made on demand into bench/out/.

    python3 bench/prepare.py [--clip-run ./clip_run] [--out bench/out]

Writes (each step skipped when its stamp says the result is current):
  b32/openai.pt, b32/open_clip_config.json   a ViT-B/32-shaped CLIP with random weights
                                             (tools/make_random_model.py --preset b32)
  vit-b-32-random.clip                       the same weights through tools/convert.py
  inputs/photo_K.jpg                         8 procedural "photos", 640x480 JPEG quality 90
                                             (PIL of this Python or of /usr/bin/python3);
                                             without PIL, binary PPM (inputs.json says which)
  inputs/image_K.npy                         their clip_run preprocess output, float32 [3, 224, 224]
  inputs.json                                paths, texts and their token ids (clip_run tokenize)

The BPE merges come from ../shared/clip (bpe_simple_vocab_16e6.txt.gz, or golden-tiny's
merges.txt); they are read at bench time only and never copied into the repository.
Standard library only (PIL is optional, for the JPEG).
"""
import argparse
import hashlib
import json
import mmap
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "clip")
MERGES_CANDIDATES = [os.path.join(SHARED, "bpe_simple_vocab_16e6.txt.gz"),
                     os.path.join(SHARED, "golden-tiny", "merges.txt")]
# The generator and everything it imports: a change to any of them makes a new model.
MODEL_SOURCES = ["make_random_model.py", "bpe_vocab.py", "safetensors_file.py", "tensor_data.py",
                 "torchzip.py", "convert.py", "clipfile.py"]
MODEL_NAME = "vit-b-32-random"
N_IMAGES = 8
PHOTO_W, PHOTO_H = 640, 480
SHORT_TEXT = "a photo of a dog."
BATCH_TEXTS = ["a photo of a %s." % w for w in
               ("dog", "cat", "car", "bird", "tree", "house", "boat", "person")]
# Common words that CLIP's BPE keeps whole, so a prefix of n words is n tokens.
LONG_WORDS = ("a photo of a small brown dog playing in the green park with a red ball near the old "
              "wooden bench while two children watch from the path and a man reads his book under "
              "a tall tree on a warm summer day with white clouds in the blue sky and birds flying "
              "over the quiet lake where a boat rests by the shore next to the house on the hill "
              "and the sun sets behind the mountains far away in the evening light").split()


def log(msg):
    print("prepare: " + msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if result.returncode != 0:
        raise SystemExit("prepare: %s failed (exit %d):\n%s" % (" ".join(cmd[:3]), result.returncode,
                                                                result.stderr.strip()))
    return result.stdout


def file_digest(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def stamp_ok(stamp_path, key, outputs):
    """A step is current when its stamp holds the same key and all outputs exist."""
    if not all(os.path.exists(p) for p in outputs):
        return False
    try:
        with open(stamp_path) as f:
            return f.read().strip() == key
    except OSError:
        return False


def write_stamp(stamp_path, key):
    with open(stamp_path, "w") as f:
        f.write(key + "\n")


# ---- The model ---------------------------------------------------------------------------
def recache_huge(path):
    """Evict the model file from the page cache and read it back through a MADV_HUGEPAGE
    mapping, as clip.c's own loader maps it. Pages read that way are cached in 2 MB folios,
    which every later process maps with one entry per 2 MB. convert.py and clip_run quantize
    leave their output cached the same way (they write whole 2 MiB blocks); a file written
    by other tools (cp, an older convert.py) stays partly in 4 KB pages, whose page faults
    and unmapping cost a 2-thread clip_run process 15-18 ms (bench/pagecache_bench.py).
    This makes the state the same on every bench run, whatever happened to the file before."""
    if not (hasattr(os, "posix_fadvise") and hasattr(mmap, "MADV_HUGEPAGE")):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)                          # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
            m.madvise(mmap.MADV_HUGEPAGE)
            for offset in range(0, len(m), 4096):
                m[offset]
    finally:
        os.close(fd)


def make_model(out):
    merges = next((p for p in MERGES_CANDIDATES if os.path.exists(p)), None)
    if merges is None:
        raise SystemExit("prepare: no BPE merges file; expected one of " + ", ".join(MERGES_CANDIDATES))
    src_dir = os.path.join(out, "b32")
    model = os.path.join(out, MODEL_NAME + ".clip")
    key = "model v1 " + file_digest([os.path.join(ROOT, "tools", s) for s in MODEL_SOURCES]) + " " + \
        os.path.basename(merges)
    stamp = os.path.join(out, "model.stamp")
    outputs = [model, os.path.join(src_dir, "openai.pt"), os.path.join(src_dir, "open_clip_config.json")]
    if stamp_ok(stamp, key, outputs):
        recache_huge(model)
        return model, src_dir, merges
    log("making the ViT-B/32 random-weight model (about 1.2 GB written, 20 s)")
    run([sys.executable, os.path.join(ROOT, "tools", "make_random_model.py"), src_dir,
         "--preset", "b32", "--seed", "0", "--merges", merges])
    run([sys.executable, os.path.join(ROOT, "tools", "convert.py"), os.path.join(src_dir, "openai.pt"),
         "--config", os.path.join(src_dir, "open_clip_config.json"), "--vocab", merges,
         "--name", MODEL_NAME, "-o", model])
    # The Hugging Face copy is not used by any benchmark: free its 600 MB.
    for name in ("model.safetensors",):
        try:
            os.remove(os.path.join(src_dir, name))
        except OSError:
            pass
    write_stamp(stamp, key)
    recache_huge(model)
    return model, src_dir, merges


# ---- The images --------------------------------------------------------------------------
def photo_pixels(seed):
    """RGB bytes [PHOTO_H, PHOTO_W, 3] of a landscape-like scene: a sky gradient, a sun, hills,
    a few houses and per-pixel noise (sensor grain), so JPEG sees photo-like detail."""
    rng = random.Random(seed)
    sun_x, sun_y, sun_r = rng.randrange(80, 560), rng.randrange(40, 160), rng.randrange(20, 50)
    horizon = [int(300 + 40 * rng.random() + 30 * ((x / PHOTO_W - 0.5) ** 2) * 4) for x in range(PHOTO_W)]
    houses = [(rng.randrange(0, 600), rng.randrange(40, 90), rng.randrange(30, 70),
               (rng.randrange(120, 230), rng.randrange(40, 120), rng.randrange(30, 90))) for _ in range(5)]
    rows = []
    for y in range(PHOTO_H):
        grain = rng.randbytes(PHOTO_W * 3)
        row = bytearray(PHOTO_W * 3)
        sky = (int(90 + 100 * y / PHOTO_H), int(140 + 80 * y / PHOTO_H), 235)
        for x in range(PHOTO_W):
            if y < horizon[x]:
                if (x - sun_x) ** 2 + (y - sun_y) ** 2 < sun_r * sun_r:
                    c = (255, 236, 160)
                else:
                    c = sky
            else:
                depth = y - horizon[x]
                c = (40 + depth // 4, 110 + (depth * 3) // 8 % 60, 40)
            for hx, hw, hh, hc in houses:
                if hx <= x < hx + hw and horizon[x] - hh <= y < horizon[x] + 5:
                    c = hc
            n = 3 * x
            row[n] = min(255, max(0, c[0] + (grain[n] & 31) - 16))
            row[n + 1] = min(255, max(0, c[1] + (grain[n + 1] & 31) - 16))
            row[n + 2] = min(255, max(0, c[2] + (grain[n + 2] & 31) - 16))
        rows.append(bytes(row))
    return b"".join(rows)


def pil_python():
    """A Python that can import PIL: this one, else Debian's /usr/bin/python3, else None."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(exe) and subprocess.run([exe, "-c", "import PIL"], stderr=subprocess.DEVNULL).returncode == 0:
            return exe
    return None


def draw_photos(in_dir, ext):
    """Writes photo_K.jpg (JPEG quality 90, PIL) or photo_K.ppm (binary PPM, stdlib)."""
    for k in range(N_IMAGES):
        pixels = photo_pixels(1000 + k)
        path = os.path.join(in_dir, "photo_%d%s" % (k, ext))
        if ext == ".jpg":
            from PIL import Image
            Image.frombytes("RGB", (PHOTO_W, PHOTO_H), pixels).save(path, quality=90)
        else:
            with open(path, "wb") as f:
                f.write(b"P6\n%d %d\n255\n" % (PHOTO_W, PHOTO_H) + pixels)


def make_images(out, clip_run, model):
    """The photos are slow to draw in pure Python, so they are stamped; their preprocessed
    arrays are cheap and remade every run, following the current clip_run."""
    in_dir = os.path.join(out, "inputs")
    os.makedirs(in_dir, exist_ok=True)
    python = pil_python()
    ext = ".jpg" if python else ".ppm"
    key = "photos v1 %dx%d %s %s" % (PHOTO_W, PHOTO_H, ext, file_digest([os.path.abspath(__file__)]))
    photos = [os.path.join(in_dir, "photo_%d%s" % (k, ext)) for k in range(N_IMAGES)]
    stamp = os.path.join(out, "photos.stamp")
    if not stamp_ok(stamp, key, photos):
        log("drawing %d %dx%d photos (%s)" % (N_IMAGES, PHOTO_W, PHOTO_H,
                                              "JPEG via PIL" if python else "PPM: no Python with PIL"))
        run([python or sys.executable, os.path.abspath(__file__), "--draw-photos", in_dir, ext])
        write_stamp(stamp, key)
    arrays = [os.path.join(in_dir, "image_%d.npy" % k) for k in range(N_IMAGES)]
    for photo, array in zip(photos, arrays):
        run([clip_run, "preprocess", model, photo, "-o", array])
    return photos, arrays


# ---- The texts ---------------------------------------------------------------------------
def tokenize(clip_run, model, texts):
    lines = run([clip_run, "tokenize", model, "--json", "--"] + list(texts)).splitlines()
    return [json.loads(line)["ids"] for line in lines if line.strip()]


def n_tokens(ids):
    return sum(1 for i in ids if i != 0)


def long_text(clip_run, model, context):
    """The shortest prefix of LONG_WORDS that fills the context exactly (start + 75 + end),
    checked not to be truncated: one word fewer must be one token fewer."""
    prefixes = [" ".join(LONG_WORDS[:n]) + "." for n in range(1, len(LONG_WORDS) + 1)]
    counts = [n_tokens(ids) for ids in tokenize(clip_run, model, prefixes)]
    for n, count in enumerate(counts):
        if count == context:
            if n == 0 or counts[n - 1] != context - 1:
                break
            return prefixes[n]
    raise SystemExit("prepare: cannot build a text of exactly %d tokens from LONG_WORDS" % context)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip-run", default=os.environ.get("CLIP_RUN", os.path.join(ROOT, "clip_run")))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--draw-photos", nargs=2, metavar=("DIR", "EXT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.draw_photos:
        draw_photos(*args.draw_photos)
        return 0
    clip_run = os.path.abspath(args.clip_run)
    os.makedirs(args.out, exist_ok=True)

    model, src_dir, merges = make_model(args.out)
    photos, arrays = make_images(args.out, clip_run, model)
    context = len(tokenize(clip_run, model, ["x"])[0])
    long = long_text(clip_run, model, context)
    texts = {"short": SHORT_TEXT, "long": long, "batch": BATCH_TEXTS}
    ids = tokenize(clip_run, model, [SHORT_TEXT, long] + BATCH_TEXTS)
    manifest = {
        "model": model, "model_bytes": os.path.getsize(model),
        "checkpoint": os.path.join(src_dir, "openai.pt"),
        "config": os.path.join(src_dir, "open_clip_config.json"),
        "merges": os.path.abspath(merges),
        "photos": photos, "photo_size": [PHOTO_W, PHOTO_H],
        "photo_format": "JPEG quality 90 (PIL)" if photos[0].endswith(".jpg") else "binary PPM (no PIL)",
        "arrays": arrays, "texts": texts,
        "ids": {"short": ids[0], "long": ids[1], "batch": ids[2:]},
        "context": context,
    }
    path = os.path.join(args.out, "inputs.json")
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(path + ".tmp", path)
    log("ready: %s (%d bytes), %d photos, long text of %d tokens" %
        (model, manifest["model_bytes"], len(photos), n_tokens(ids[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

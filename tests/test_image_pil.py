"""io/image.c against Pillow itself, at crop sizes other than the goldens' 64.

Pillow (9.4, from /usr/bin/python3) is the reference: a script run there writes synthetic
images of random sizes in every PIL mode CLIP meets (L, LA, RGB, RGBA, P with and without
transparency, 1) as PNG, BMP, GIF and PGM/PPM (also 16-bit and odd maxval), and for every
image and size n computes CLIP's Resize(n, BICUBIC) -> CenterCrop(n) -> convert("RGB") the
way torchvision does it on a PIL image. A tiny C program built from io/image.c produces the
same crops; they must be identical for lossless formats and within 4 levels for JPEG.
The test skips when /usr/bin/python3 has no Pillow.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import ROOT, shared

PIL_PYTHON = "/usr/bin/python3"
SIZES = [1, 7, 32, 33, 48, 96, 224]
SHARED_IMAGES = [
    "astronaut_444.jpg", "coffee_exif_orient6.jpg", "coins_gray.jpg", "hubble_rgba.png",
    "brick_la.png", "retina_palette_trns.png", "ihc.gif", "astronaut_crop.bmp",
    "coffee_thumb_45x31.png", "one_pixel.png", "strip_900x3.png",
]
JPEG_TOLERANCE = 4

# Prints the crops of io/image.c: argv = n, then image paths; raw [n, n, 3] bytes per image.
HELPER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "io/image.h"
#include "model/clip.h"
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    unsigned char *rgb = malloc((size_t)n * n * 3);
    for (int i = 2; i < argc; i++) {
        if (image_load_crop(argv[i], n, rgb) != CLIP_OK) {
            fprintf(stderr, "%s\n", clip_last_error());
            return 2;
        }
        fwrite(rgb, 1, (size_t)n * n * 3, stdout);
    }
    free(rgb);
    return 0;
}
"""

# Runs under Pillow: argv = out_dir, manifest path, sizes (JSON), shared image paths...
REFERENCE_PY = r'''
import json, os, random, struct, sys, zlib
from PIL import Image

out_dir, manifest_path, sizes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rng = random.Random(20240229)

def clip_crop(path, n):
    """torchvision Resize(n) + CenterCrop(n) on a PIL image, then convert("RGB")."""
    im = Image.open(path)
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n, int(n * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.BICUBIC)
    left, top = int(round((new_w - n) / 2.0)), int(round((new_h - n) / 2.0))
    return im.crop((left, top, left + n, top + n)).convert("RGB").tobytes()

def content(w, h, bands):
    """Smooth ramps, sharp edges and noise, so resizing both rings and clips."""
    data = bytearray()
    fx, fy = rng.uniform(0.5, 3), rng.uniform(0.5, 3)
    for y in range(h):
        for x in range(w):
            for b in range(bands):
                v = (x * fx + y * fy * (b + 1)) % 256
                if (x // 5 + y // 7 + b) % 3 == 0:
                    v = 255 - v
                v += rng.randint(-40, 40)
                data.append(max(0, min(255, int(v))))
    return bytes(data)

def random_size():
    kind = rng.random()
    if kind < 0.15:
        return rng.randint(1, 4), rng.randint(1, 200)
    if kind < 0.3:
        return rng.randint(100, 400), rng.randint(1, 5)
    return rng.randint(5, 260), rng.randint(5, 260)

def make(mode, w, h):
    if mode == "P":
        im = Image.frombytes("P", (w, h), bytes(rng.randrange(rng.randint(2, 256)) for _ in range(w * h)))
        im.putpalette(bytes(rng.randrange(256) for _ in range(768)))
        return im
    if mode == "1":
        return Image.frombytes("L", (w, h), content(w, h, 1)).convert("1")
    im = Image.frombytes(mode, (w, h), content(w, h, len(mode)))
    if mode in ("LA", "RGBA"):
        # alpha with fully transparent, fully opaque and partial areas
        alpha = bytes(0 if (x + y) % 11 < 3 else 255 if (x * y) % 7 < 3 else rng.randrange(256)
                      for y in range(h) for x in range(w))
        im.putalpha(Image.frombytes("L", (w, h), alpha))
    return im

def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

def png16_rgb(path, w, h):
    """16-bit RGB PNG (Pillow cannot write one): Pillow reads it as RGB, high bytes."""
    raw = b"".join(b"\0" + bytes(rng.randrange(256) for _ in range(w * 6)) for _ in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))

def pnm(path, magic, w, h, maxval, bands):
    """PGM/PPM with any maxval (Pillow writes only 255 and 65535)."""
    values = [rng.randint(0, maxval) for _ in range(w * h * bands)]
    fmt = ">%dH" % len(values) if maxval > 255 else "%dB" % len(values)
    with open(path, "wb") as f:
        f.write(b"%s\n# comment\n%d %d\n%d\n" % (magic, w, h, maxval) + struct.pack(fmt, *values))

images = []
def add(path, kind):
    images.append({"path": path, "kind": kind})

for i, mode in enumerate(["L", "LA", "RGB", "RGBA", "P", "1"] * 4):
    w, h = random_size()
    im = make(mode, w, h)
    base = os.path.join(out_dir, "syn%02d_%s_%dx%d" % (i, mode, w, h))
    if i % 2 and mode in ("P", "L"):  # tRNS chunk: Pillow's convert("RGB") ignores it
        im.save(base + ".png", transparency=rng.randrange(256))
    elif i % 2 and mode == "RGB":
        im.save(base + ".png", transparency=tuple(im.getpixel((0, 0))))
    else:
        im.save(base + ".png")
    add(base + ".png", "exact")
    if mode in ("L", "RGB", "RGBA", "P", "1"):
        im.save(base + ".bmp")
        add(base + ".bmp", "exact")
    if mode in ("L", "P"):
        if mode == "P" and i % 2:
            im.save(base + ".gif", transparency=rng.randrange(256))
        else:
            im.save(base + ".gif")
        add(base + ".gif", "exact")
    if mode in ("L", "RGB"):
        im.save(base + (".pgm" if mode == "L" else ".ppm"))
        add(base + (".pgm" if mode == "L" else ".ppm"), "exact")
        im.save(base + ".jpg", quality=90)
        add(base + ".jpg", "jpeg")

for i in range(3):
    w, h = random_size()
    path = os.path.join(out_dir, "png16_%d.png" % i)
    png16_rgb(path, w, h)
    add(path, "exact")
for i, maxval in enumerate([1, 100, 254, 1000, 65535]):
    w, h = random_size()
    path = os.path.join(out_dir, "odd_maxval_%d.ppm" % i)
    pnm(path, b"P6", w, h, maxval, 3)
    add(path, "exact")
    if maxval <= 255:
        path = os.path.join(out_dir, "odd_maxval_%d.pgm" % i)
        pnm(path, b"P5", w, h, maxval, 1)
        add(path, "exact")

for path in sys.argv[4:]:
    add(path, "jpeg" if path.endswith(".jpg") else "exact")

for k, image in enumerate(images):  # reference crops go to out_dir, never next to the inputs
    image["mode"] = Image.open(image["path"]).mode
    image["ref"] = {}
    for n in sizes:
        image["ref"][str(n)] = os.path.join(out_dir, "ref_%d_%d.rgb" % (k, n))
        with open(image["ref"][str(n)], "wb") as f:
            f.write(clip_crop(image["path"], n))
with open(manifest_path, "w") as f:
    json.dump(images, f)
'''


def pil_available():
    if not os.path.exists(PIL_PYTHON):
        return False
    return subprocess.run([PIL_PYTHON, "-c", "import PIL.Image"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


@unittest.skipUnless(pil_available(), "Pillow is not importable by %s; needs Debian package python3-pil" % PIL_PYTHON)
class ImageAgainstPillow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="clip_test_image_pil_")
        cls.helper = os.path.join(cls.tmp, "crop")
        src = os.path.join(cls.tmp, "crop.c")
        with open(src, "w") as f:
            f.write(HELPER_C)
        sources = [os.path.join(ROOT, "io", name) for name in
                   ("image.c", "resample.c", "stb_image_impl.c", "error.c")]
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-I", ROOT,
                        "-o", cls.helper, src] + sources + ["-lm"], check=True)
        script = os.path.join(cls.tmp, "reference.py")
        with open(script, "w") as f:
            f.write(REFERENCE_PY)
        manifest = os.path.join(cls.tmp, "manifest.json")
        shared_paths = [shared("images", name) for name in SHARED_IMAGES]
        subprocess.run([PIL_PYTHON, script, cls.tmp, manifest, json.dumps(SIZES)] + shared_paths,
                       check=True, timeout=600)
        with open(manifest) as f:
            cls.images = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def crops(self, paths, n):
        proc = subprocess.run([self.helper, str(n)] + paths, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        size = n * n * 3
        self.assertEqual(len(proc.stdout), size * len(paths))
        return [proc.stdout[i * size:(i + 1) * size] for i in range(len(paths))]

    def check(self, select):
        images = [im for im in self.images if select(im)]
        self.assertTrue(images)
        for n in SIZES:
            got = self.crops([im["path"] for im in images], n)
            for image, ours in zip(images, got):
                with open(image["ref"][str(n)], "rb") as f:
                    want = f.read()
                diffs = [abs(a - b) for a, b in zip(ours, want) if a != b]
                allowed = JPEG_TOLERANCE if image["kind"] == "jpeg" else 0
                with self.subTest(image=os.path.basename(image["path"]), mode=image["mode"], n=n):
                    self.assertLessEqual(max(diffs, default=0), allowed,
                                         "%d of %d values differ, by up to %d levels" % (
                                             len(diffs), len(want), max(diffs, default=0)))

    def test_shared_images_at_other_sizes(self):
        shared_dir = os.path.dirname(shared("images", SHARED_IMAGES[0]))
        self.check(lambda im: os.path.dirname(im["path"]) == shared_dir)

    def test_synthetic_png(self):
        self.check(lambda im: im["path"].startswith(self.tmp) and im["path"].endswith(".png"))

    def test_synthetic_bmp_gif_pnm(self):
        self.check(lambda im: im["path"].startswith(self.tmp) and
                   im["path"].endswith((".bmp", ".gif", ".pgm", ".ppm")))

    def test_synthetic_jpeg(self):
        self.check(lambda im: im["path"].startswith(self.tmp) and im["path"].endswith(".jpg"))

    def test_every_mode_is_covered(self):
        modes = {im["mode"] for im in self.images}
        self.assertTrue({"L", "LA", "RGB", "RGBA", "P", "1"} <= modes, modes)


if __name__ == "__main__":
    unittest.main()

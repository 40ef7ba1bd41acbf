#!/usr/bin/env python3
"""make_seeds.py - write the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

    /usr/bin/python3 tests/fuzz/make_seeds.py    (rewrites the seeds; PIL for JPEG and GIF)

Small valid inputs of every kind each reader accepts, so the fuzzer starts from the
interesting structure instead of having to discover magic numbers:
  weightfile  tiny .clip models: tools/make_random_model.py with a 520-token vocabulary
              (CLIP's byte symbols + the first merges of ../shared's BPE list) and widths
              of 8, converted by tools/convert.py (QuickGELU and GELU);
  image       PNG (gray 1/8/16-bit, RGB, palette, gray+alpha, RGBA), BMP (8/24/32-bit),
              PGM/PPM (8 and 16-bit) written here with the standard library; JPEG and GIF
              written with PIL when it is installed;
  tokenizer   texts that reach the tokenizer's branches (entities, accents, contractions,
              digits, CJK, invalid UTF-8, long words);
  npy         .npy files of each dtype and header version the reader knows.
The committed seeds are this script's output; rerunning it gives the same files (the
models are seeded; PIL's encoders are deterministic).
"""
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
MERGES = os.path.join(ROOT, "..", "shared", "clip", "bpe_simple_vocab_16e6.txt.gz")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- .clip ---------------------------------------------------------------------------------
def weightfile_seeds():
    tmp = tempfile.mkdtemp(prefix="fuzz-seeds-")
    try:
        for name, extra in (("tiny-quickgelu.clip", []), ("tiny-gelu.clip", ["--gelu"])):
            src = os.path.join(tmp, name + ".src")
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_random_model.py"), src,
                            "--seed", "1", "--merges", MERGES, "--vocab-size", "520", "--image-size", "8",
                            "--patch", "4", "--vision-width", "8", "--vision-layers", "1",
                            "--vision-heads", "2", "--text-width", "8", "--text-layers", "1",
                            "--text-heads", "2", "--context", "8", "--embed-dim", "4"] + extra,
                           check=True, stdout=subprocess.DEVNULL)
            out = os.path.join(tmp, name)
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert.py"),
                            os.path.join(src, "openai.pt"), "--config", os.path.join(src, "open_clip_config.json"),
                            "--vocab", os.path.join(src, "merges.txt"), "--name", "fuzz seed", "-o", out],
                           check=True, stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                write("weightfile", name, f.read())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- images --------------------------------------------------------------------------------
def png(width, height, color_type, depth, rows, palette=None, trns=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\0" + row for row in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", palette)
    if trns:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def bmp(width, height, bits, pixel_rows, palette=b"", bitfields=None):
    stride = (width * bits + 31) // 32 * 4
    data = b"".join(r.ljust(stride, b"\0") for r in reversed(pixel_rows))  # bottom-up
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 3 if bitfields else 0,
                       len(data), 2835, 2835, len(palette) // 4, 0)
    if bitfields:  # BI_BITFIELDS: the masks follow the 40-byte header
        info += struct.pack("<III", *bitfields)
    off = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off) + info + palette + data


def pixels(w, h, channels, seed=1):
    rows, x = [], seed
    for _ in range(h):
        row = bytearray()
        for _ in range(w * channels):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            row.append(x >> 16 & 0xFF)
        rows.append(bytes(row))
    return rows


def image_seeds():
    write("image", "gray8.png", png(5, 3, 0, 8, pixels(5, 3, 1)))
    write("image", "gray1.png", png(9, 2, 0, 1, [b"\xa5\x80", b"\x3c\x00"]))
    write("image", "gray16.png", png(3, 4, 0, 16, pixels(3, 4, 2)))
    write("image", "rgb.png", png(4, 6, 2, 8, pixels(4, 6, 3), trns=b"\0\1\0\2\0\3"))
    write("image", "palette.png", png(6, 5, 3, 4, [bytes([0x01, 0x23, 0x45])] * 5,
                                      palette=bytes(range(48)), trns=b"\x80"))
    write("image", "gray-alpha.png", png(3, 3, 4, 8, pixels(3, 3, 2)))
    write("image", "rgba.png", png(7, 4, 6, 8, pixels(7, 4, 4)))
    write("image", "rgb24.bmp", bmp(5, 4, 24, pixels(5, 4, 3)))
    write("image", "pal8.bmp", bmp(4, 3, 8, pixels(4, 3, 1, seed=3),
                                   palette=b"".join(bytes([i, 255 - i, i // 2, 0]) for i in range(256))))
    write("image", "gray8.bmp", bmp(3, 3, 8, pixels(3, 3, 1, seed=4),
                                    palette=b"".join(bytes([i, i, i, 0]) for i in range(256))))
    write("image", "rgba32.bmp", bmp(3, 2, 32, pixels(3, 2, 4),
                                     bitfields=(0xFF0000, 0xFF00, 0xFF)))
    write("image", "gray.pgm", b"P5\n# comment\n4 3\n255\n" + b"".join(pixels(4, 3, 1)))
    write("image", "rgb.ppm", b"P6 3 2 200\n" + bytes(v % 201 for r in pixels(3, 2, 3) for v in r))
    write("image", "gray16.pgm", b"P5 2 2 1000\n" + struct.pack(">4H", 0, 999, 1000, 500))
    try:
        from PIL import Image
    except ImportError:
        print("make_seeds.py: PIL is not installed: no JPEG and GIF seeds", file=sys.stderr)
        return
    rgb = Image.frombytes("RGB", (16, 12), b"".join(pixels(16, 12, 3)))
    for name, img, kw in (("rgb420.jpg", rgb, dict(quality=50)),
                          ("rgb444.jpg", rgb, dict(quality=90, subsampling=0)),
                          ("progressive.jpg", rgb, dict(quality=60, progressive=True)),
                          ("gray.jpg", rgb.convert("L"), dict(quality=70))):
        buf = io.BytesIO()
        img.save(buf, "JPEG", **kw)
        write("image", name, buf.getvalue())
    buf = io.BytesIO()
    rgb.convert("P", palette=Image.ADAPTIVE, colors=16).save(buf, "GIF", transparency=3)
    write("image", "palette.gif", buf.getvalue())
    buf = io.BytesIO()
    rgb.convert("L").save(buf, "GIF")
    write("image", "gray.gif", buf.getvalue())


# --- texts ---------------------------------------------------------------------------------
TEXTS = [
    b"a photo of a cat.",
    b"Hello, World! It's 2024 and we're testing   whitespace\t\n tabs.",
    b"&amp; &lt;b&gt; &eacute;t&eacute; &#233; &#x1F600; &notanentity; &amp",
    "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m \u0130stanbul \u00df \ufb01".encode(),
    "\u732b\u306e\u5199\u771f \ud55c\uad6d\uc5b4 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \U0001F431\U0001F3FD".encode(),
    b"<|startoftext|>special<|endoftext|> tokens",
    b"\xff\xfe invalid \xc3\x28 utf8 \xe2\x82 \xf0\x9f\x98",
    b"don't won't I'M you'LL they've she'd",
    b"supercalifragilisticexpialidocious" * 4,
    "\u00e2\u20ac\u2122 mojibake \u00c3\u00a9 fixes".encode(),
    b"",
]


# --- .npy ----------------------------------------------------------------------------------
def npy(descr, shape, data, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    pre = 10 if version == 1 else 12
    header += " " * ((64 - (pre + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode("latin1") + data


def npy_seeds():
    write("npy", "f32-3x2x2.npy", npy("<f4", (3, 2, 2), struct.pack("<12f", *range(12))))
    write("npy", "f64-vector.npy", npy("<f8", (3,), struct.pack("<3d", 1.5, -2, 1e300)))
    write("npy", "u8.npy", npy("|u1", (2, 3), bytes(range(6))))
    write("npy", "i32.npy", npy("<i4", (1, 2), struct.pack("<2i", -1, 7)))
    write("npy", "i64-v2.npy", npy("<i8", (2,), struct.pack("<2q", 1 << 40, -5), version=2))
    write("npy", "scalar.npy", npy("<f4", (), struct.pack("<f", 3.25)))
    write("npy", "empty.npy", npy("<f4", (0, 4), b""))


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    weightfile_seeds()
    image_seeds()
    for i, text in enumerate(TEXTS):
        write("tokenizer", "text-%02d.txt" % i, text)
    npy_seeds()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print("%-10s %2d seeds, %6d bytes" % (target, len(files), size))


if __name__ == "__main__":
    main()

"""make_search_folder.py - a folder of drawn "colour shape" images for the search tests.

    /usr/bin/python3 tests/make_search_folder.py OUT_DIR [--per-class N] [--seed S] [--prefix P]
        [--broken K]

Draws N images of each of the 32 colour x shape classes of the demo world
(tools/demo_world.py: mostly draw_ordinary, PIL's own drawing, some render_scene scenes),
in nested folders (OUT_DIR/<shape>/<colour-group>/...), as PNG, JPEG (upper- and
lower-case extensions), BMP and PPM, plus K broken files (a truncated PNG and JPEG, an empty
file, text named .jpg). Prints one line per file: "PATH<TAB>colour<TAB>shape" (colour and
shape empty for broken files). Needs numpy and PIL (Debian's python3-numpy, python3-pil).
"""
import argparse
import io
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import demo_world  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--prefix", default="img")
    p.add_argument("--broken", type=int, default=4)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    formats = [("png", "PNG"), ("jpg", "JPEG"), ("JPG", "JPEG"), ("png", "PNG"), ("bmp", "BMP"), ("ppm", "PPM")]
    k = 0
    for color, shape in demo_world.CLASSES:
        for i in range(a.per_class):
            if rng.random() < 0.8:
                im = demo_world.draw_ordinary(rng, color, shape)
            else:
                im, _ = demo_world.render_scene(rng, color, shape, easy=True)
            ext, fmt = formats[k % len(formats)]
            group = "warm" if color in ("red", "orange", "yellow") else "other"
            d = os.path.join(a.out, shape, group, "deeper" if i % 3 == 0 else "")
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, "%s_%s_%s_%03d.%s" % (a.prefix, color, shape, i, ext))
            kw = {"quality": 95} if fmt == "JPEG" else {}
            im.convert("RGB").save(path, fmt, **kw)
            print("%s\t%s\t%s" % (path, color, shape))
            k += 1
    broken_dir = os.path.join(a.out, "broken")
    for j in range(a.broken):
        os.makedirs(broken_dir, exist_ok=True)
        kind = j % 4
        buf = io.BytesIO()
        im = demo_world.draw_ordinary(rng, "red", "circle")
        if kind == 0:
            im.save(buf, "PNG")
            data, name = buf.getvalue()[:len(buf.getvalue()) // 2], "%s_truncated_%d.png" % (a.prefix, j)
        elif kind == 1:
            im.save(buf, "JPEG")
            data, name = buf.getvalue()[:300], "%s_truncated_%d.jpg" % (a.prefix, j)
        elif kind == 2:
            data, name = b"", "%s_empty_%d.png" % (a.prefix, j)
        else:
            data, name = b"this is not an image\n", "%s_text_%d.jpg" % (a.prefix, j)
        path = os.path.join(broken_dir, name)
        with open(path, "wb") as f:
            f.write(data)
        print("%s\t\t" % path)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""pagecache_bench.py - what a model file's page-cache state costs a whole clip_run process.

    python3 bench/pagecache_bench.py [--clip-run ./clip_run] [--model M.clip] [--runs R] [--threads 1,2]

The same model, copied twice beside the original: once with `cp`, whose writes leave the
page cache holding it in 4 KB pages, once with `dd bs=2M`, whole 2 MiB blocks at 2 MiB
offsets, as tools/convert.py and `clip_run quantize` write (tools/clipfile.py,
BlockWriter), which a file system with large folios caches as 2 MiB folios. Then
`clip_run embed-image` of one preprocessed image from each copy, whole processes timed by
hyperfine (1 warm-up, R runs), and the share of the vision tower mapped in 2 MiB pages
(FilePmdMapped in /proc/PID/smaps of a longer run). The default model and image are the
ones `make bench` prepares (bench/out). Writes bench/out/pagecache.md and prints it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run_bench  # noqa: E402  (machine_info: CPU family/model, commit, load)
from search_bench import hyperfine  # noqa: E402


def pmd_mapped_mb(clip_run, model, image):
    """(MB mapped in 2 MiB pages, MB resident) of the model's mapping, read from smaps while
    a run over many copies of the image is still going."""
    proc = subprocess.Popen([clip_run, "embed-image", model] + [image] * 200 + ["-o", os.devnull, "-t", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        pmd = rss = None
        with open("/proc/%d/smaps" % proc.pid) as f:
            inside = False
            for line in f:
                if line.rstrip().endswith(model):
                    inside = True
                elif inside and line.startswith("Rss:"):
                    rss = int(line.split()[1]) / 1024
                elif inside and line.startswith("FilePmdMapped:"):
                    pmd = int(line.split()[1]) / 1024
                    break
        return pmd, rss
    except OSError:
        return None, None
    finally:
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip-run", default=os.path.join(ROOT, "clip_run"))
    parser.add_argument("--model", default=os.path.join(HERE, "out", "vit-b-32-random.clip"))
    parser.add_argument("--image", default=os.path.join(HERE, "out", "inputs", "image_0.npy"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    clip_run = os.path.abspath(args.clip_run)
    for path, what in ((args.model, "model"), (args.image, "image")):
        if not os.path.exists(path):
            print("pagecache_bench.py: error: no %s %s (make bench prepares both)" % (what, path), file=sys.stderr)
            return 1
    for tool in ("hyperfine", "cp", "dd"):
        if not shutil.which(tool):
            print("pagecache_bench.py: error: %s is not installed (sh tools/deps.sh bench)" % tool, file=sys.stderr)
            return 1
    info = run_bench.machine_info(clip_run, args.model)
    rows = []
    # beside the original: the same file system, whose page cache is what is measured
    with tempfile.TemporaryDirectory(prefix=".pagecache-", dir=os.path.dirname(os.path.abspath(args.model))) as d:
        copies = {"cp": os.path.join(d, "cp.clip"), "dd bs=2M": os.path.join(d, "dd.clip")}
        subprocess.run(["cp", args.model, copies["cp"]], check=True)
        subprocess.run(["dd", "if=" + args.model, "of=" + copies["dd bs=2M"], "bs=2M", "status=none"], check=True)
        for how, model in copies.items():
            pmd, rss = pmd_mapped_mb(clip_run, model, args.image)
            for t in [int(x) for x in args.threads.split(",")]:
                r = hyperfine([clip_run, "embed-image", model, args.image, "-o", os.path.join(d, "out.npy"),
                               "-t", str(t)], args.runs, os.path.join(d, "hf.json"))
                rows.append((how, t, r, pmd, rss))
    lines = ["# A whole `clip_run embed-image` process against the model's page-cache state", "",
             "| machine | %s (cpu family %s, model %s), %d CPUs; Linux %s; commit %s; %s |" % (
                 info["cpu"], info["family"], info["model"], info["cpus"], info["kernel"], info["commit"],
                 info["date"]),
             "| --- | --- |", "",
             "| copied with | -t | median (ms) | mean ± sd (ms) | vision tower in 2 MiB pages |",
             "| --- | --- | --- | --- | --- |"]
    for how, t, r, pmd, rss in rows:
        mapped = "%.0f of %.0f MB" % (pmd, rss) if pmd is not None else "? (no smaps)"
        lines.append("| %s | %d | %.1f | %.1f ± %.1f | %s |" % (how, t, r["median"], r["mean"], r["sd"], mapped))
    lines += ["", "hyperfine, 1 warm-up and %d runs of each; model %s. Load average %.2f at the start, %.2f at "
              "the end." % (args.runs, os.path.relpath(args.model, ROOT), info["load_start"], os.getloadavg()[0]), ""]
    text = "\n".join(lines)
    with open(os.path.join(HERE, "out", "pagecache.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""search_bench.py - how long `clip_run search` spends scanning 100,000 stored vectors.

    python3 bench/search_bench.py [--clip-run ./clip_run] [--vectors N] [--runs R] [--threads 1,2]

The target (issue 14): a text query over 100,000 stored 512-d image vectors costs < 50 ms
beyond the same command over a one-image index, which does everything else (process start,
model load, text encoding, output). Both are whole `clip_run search` processes timed by
hyperfine (1 warm-up, R runs); the difference of their means is the scan. CPU time (user +
system, all threads) is reported too: on a shared machine it moves less than wall time.

The model is a small random-weight CLIP with a 512-d embedding (tools/make_random_model.py
--preset small); the index holds one real image and N synthetic unit vectors
(tools/synthetic_index.py): the scan costs the same whatever the values. Writes
bench/out/search.md and prints it. Run on a quiet machine; the table records the load.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import run_bench  # noqa: E402  (machine_info: CPU family/model, commit, load)
import synthetic_index  # noqa: E402

QUERY = "a photo of a red circle."
TARGET_MS = 50.0


def hyperfine(cmd, runs, out_json):
    subprocess.run(["hyperfine", "--warmup", "1", "--runs", str(runs), "--export-json", out_json,
                    "--style", "none", "--", " ".join(shlex.quote(a) for a in cmd)], check=True, stdout=subprocess.DEVNULL)
    with open(out_json) as f:
        r = json.load(f)["results"][0]
    return {"mean": r["mean"] * 1000, "sd": r["stddev"] * 1000, "min": r["min"] * 1000, "median": r["median"] * 1000,
            "cpu": (r["user"] + r["system"]) * 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip-run", default=os.path.join(ROOT, "clip_run"))
    parser.add_argument("--vectors", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    clip_run = os.path.abspath(args.clip_run)
    threads = [int(t) for t in args.threads.split(",")]
    if not shutil.which("hyperfine"):
        print("search_bench.py: error: hyperfine is not installed (sh tools/deps.sh bench)", file=sys.stderr)
        return 1
    out_dir = os.path.join(HERE, "out")
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clip-search-bench-") as d:
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_random_model.py"), d,
                        "--preset", "small", "--embed-dim", "512"], check=True, stdout=subprocess.DEVNULL)
        model = os.path.join(d, "m512.clip")
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert.py"), os.path.join(d, "openai.pt"),
                        "--config", os.path.join(d, "open_clip_config.json"), "--vocab",
                        os.path.join(d, "merges.txt"), "-o", model], check=True, stdout=subprocess.DEVNULL)
        pics = os.path.join(d, "pics")
        os.makedirs(pics)
        shutil.copy(os.path.join(ROOT, "tests", "data", "demo", "red_circle.png"), pics)
        small, big = os.path.join(d, "one.clipindex"), os.path.join(d, "big.clipindex")
        subprocess.run([clip_run, "index", model, pics, "-o", small], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.copy(small, big)
        synthetic_index.fill(big, args.vectors)
        info = run_bench.machine_info(clip_run, model)
        rows = []
        for t in threads:
            one = hyperfine([clip_run, "search", model, small, QUERY, "-k", "10", "-t", str(t)],
                            args.runs, os.path.join(d, "one.json"))
            many = hyperfine([clip_run, "search", model, big, QUERY, "-k", "10", "-t", str(t)],
                             args.runs, os.path.join(d, "many.json"))
            rows.append((t, one, many))
    lines = ["# clip_run search over %d stored 512-d vectors" % args.vectors, "",
             "| machine | %s (cpu family %s, model %s), %d CPUs; commit %s; %s |" % (
                 info["cpu"], info["family"], info["model"], info["cpus"], info["commit"], info["date"]),
             "| --- | --- |", "",
             "| -t | 1 vector: wall (CPU) | %d vectors: wall (CPU) | scan: wall (CPU) | target |" % args.vectors,
             "| --- | --- | --- | --- | --- |"]
    for t, one, many in rows:
        scan, scan_cpu = many["mean"] - one["mean"], many["cpu"] - one["cpu"]
        lines.append("| %d | %.1f ± %.1f ms (%.1f) | %.1f ± %.1f ms (%.1f) | **%.1f ms** (%.1f) | < %.0f ms: %s |" % (
            t, one["mean"], one["sd"], one["cpu"], many["mean"], many["sd"], many["cpu"], scan, scan_cpu,
            TARGET_MS, "met" if scan < TARGET_MS else "NOT met"))
    lines += ["", "hyperfine, 1 warm-up and %d runs of each whole process; mean ± sd. Load average %.2f at the start, "
              "%.2f at the end." % (args.runs, info["load_start"], os.getloadavg()[0]), ""]
    text = "\n".join(lines)
    with open(os.path.join(out_dir, "search.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""run_bench.py - clip.c's benchmark: hyperfine over clip_run, optionally next to its peers.

    python3 bench/run_bench.py [--clip-run ./clip_run] [--threads 1,2] [--runs 10]
                               [--peers] [--peer-repeats 10] [--out bench/out]

(make bench / make bench-peers run this.) Steps:
  1. bench/prepare.py: the ViT-B/32 random-weight model and the inputs (cached by stamps).
  2. For each thread count N, hyperfine (no shell, 1 warm-up run, --runs R) over whole
     clip_run processes, -t N:
       image_npy     embed-image of one preprocessed float32 [3, 224, 224] .npy
       image_jpeg    embed-image of one 640x480 JPEG (decode + resize + crop + normalize)
       text_short    embed-text "a photo of a dog."
       text_long     embed-text of a text of exactly 77 tokens (start + 75 + end)
       image_batch8  embed-image of 8 .npy files (--batch 8 when clip_run has it)
       text_batch8   embed-text of 8 short prompts (--batch 8 when clip_run has it)
     plus the runs that separate start-up from warm work (below), and one more run of each
     case under wait4() for its peak RSS.
  3. Warm latency (what the peers' numbers mean: one forward pass in a running process):
     from `clip_run bench MODEL PHOTO -t N --iters R` when clip_run has that command (its
     lines "CASE  MS ms ..." with the case names above, median of R), else derived from whole processes: the
     same input 8 times in one process (--batch 1 if batching exists) minus once, over 7.
  4. --peers: PyTorch (bench/peers/clip_torch.py under /usr/bin/python3) and ONNX Runtime
     (bench/peers/ort_bench.js, after export_onnx.py) on the same weights and tensors, warm,
     median of repeats; both first check their embeddings against clip.c's (1e-4).
     int8 (issue 13): the same model quantized by `clip_run quantize --type T` for each T
     of --int8-types (default q8_0,q4_0), timed warm with `clip_run bench`, next to ONNX
     Runtime on its dynamically quantized graphs (bench/peers/quantize_onnx.py: what
     onnxruntime.quantization.quantize_dynamic does with its defaults; needs python3-onnx),
     whose cosine to the fp32 embeddings ort_bench.js prints before timing; the cosine of
     clip.c's quantized embeddings to its f32 ones is computed here.
  5. bench/out/results.md (+ results.json): the machine, date, commit, and per thread count
     the table; also printed to stdout.
Acceptance checks of issue 5, reported in the table's notes:
  peak RSS of one image embedding  <= .clip file size + 64 MB
  process start to first embedding <= warm image latency + 30 ms
and of issue 13 (same run): q8_0 image latency <= 0.8x ORT int8's; q8_0 "a photo of a
dog." <= 0.5x clip.c f32's.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", "peers")
CASES = [  # (name, what it is, compared with peers)
    ("image_npy", "image, preprocessed .npy", "image"),
    ("image_jpeg", "image, 640x480 JPEG", None),
    ("text_short", 'text "a photo of a dog."', "text_short"),
    ("text_long", "text, 77 tokens", "text_long"),
    ("image_batch8", "8 images (.npy)", "image_batch8"),
    ("text_batch8", "8 short texts", "text_batch8"),
]
INT8_CASES = [  # (clip_run bench case, what it is, ort_bench.js case)
    ("image_npy", "image, preprocessed .npy", "image"),
    ("text_short", 'text "a photo of a dog."', "text_short"),
    ("text_long", "text, 77 tokens", "text_long"),
    ("image_batch8", "8 images (.npy)", "image_batch8"),
]
MB = 1024 * 1024


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def output_of(cmd, **kw):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        return r.returncode, r.stdout
    except OSError as e:
        return -1, str(e)


# ---- Where we run ------------------------------------------------------------------------
def machine_info(clip_run, model):
    info = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "flags": []}
    rc, out = output_of(["lscpu"])
    if rc == 0:
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = value.strip()
            elif key.strip() == "Flags":
                flags = value.split()
                info["flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                                             "asimd", "asimdhp", "asimddp", "i8mm", "bf16") if f in flags]
    info["family"], info["model"] = "?", "?"
    try:  # the microarchitecture: AMD family 25 = Zen 3/4, 26 = Zen 5 (kernels/gemm_tune.c)
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and info[key.strip().replace("cpu ", "")] == "?":
                    info[key.strip().replace("cpu ", "")] = value.strip()
    except OSError:
        pass
    rc, out = output_of(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    commit = out.strip() if rc == 0 else "unknown"
    rc, out = output_of(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    if rc == 0 and out.strip():
        commit += " + uncommitted changes"
    rc, out = output_of([clip_run, "info", model])
    kernels = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("kernels:")), "?")
    tuning = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("gemm tuning:")), "")
    if tuning:
        kernels += "; GEMM: " + tuning
    rc, hf = output_of(["hyperfine", "--version"])
    info.update(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                commit=commit, kernels=kernels, hyperfine=hf.strip(), load_start=os.getloadavg()[0],
                kernel=platform.release())
    return info


def clip_run_features(clip_run):
    _, help_image = output_of([clip_run, "embed-image", "--help"])
    rc, help_bench = output_of([clip_run, "bench", "--help"])
    return {"batch": "--batch" in help_image, "bench": rc == 0}


# ---- clip.c: whole processes -------------------------------------------------------------
def case_commands(clip_run, inputs, threads, features, out_dir):
    """{name: argv}: the table's cases, then the 8x runs that give warm latency by difference."""
    model, texts = inputs["model"], inputs["texts"]
    batch = ["--batch", "8"] if features["batch"] else []
    one_at_a_time = ["--batch", "1"] if features["batch"] else []

    def image(name, paths, extra=()):
        return [clip_run, "embed-image", model] + list(paths) + ["-o", os.path.join(out_dir, name + ".npy"),
                                                                 "-t", str(threads)] + list(extra)

    def text(name, strings, extra=()):
        return [clip_run, "embed-text", model, "-o", os.path.join(out_dir, name + ".npy"), "-t", str(threads)] + \
            list(extra) + ["--"] + list(strings)

    cmds = {
        "image_npy": image("image_npy", inputs["arrays"][:1]),
        "image_jpeg": image("image_jpeg", inputs["photos"][:1]),
        "text_short": text("text_short", [texts["short"]]),
        "text_long": text("text_long", [texts["long"]]),
        "image_batch8": image("image_batch8", inputs["arrays"], batch),
        "text_batch8": text("text_batch8", texts["batch"], batch),
    }
    if not features["bench"]:
        if features["batch"]:
            cmds["image_x8"] = image("image_x8", inputs["arrays"], one_at_a_time)
        cmds["text_short_x8"] = text("text_short_x8", [texts["short"]] * 8, one_at_a_time)
        cmds["text_long_x8"] = text("text_long_x8", [texts["long"]] * 8, one_at_a_time)
    return cmds


def hyperfine(cmds, runs, json_path):
    argv = ["hyperfine", "-N", "--style", "basic", "--warmup", "1", "--runs", str(runs),
            "--export-json", json_path]
    for name, cmd in cmds.items():
        argv += ["-n", name, " ".join(shlex.quote(a) for a in cmd)]
    r = subprocess.run(argv, stdout=sys.stderr)
    if r.returncode != 0:
        raise SystemExit("bench: hyperfine failed (exit %d); run the command above by hand to see why"
                         % r.returncode)
    with open(json_path) as f:
        results = json.load(f)["results"]
    return {res["command"]: {"mean_ms": res["mean"] * 1e3, "sd_ms": (res["stddev"] or 0) * 1e3,
                             "median_ms": res["median"] * 1e3, "runs": len(res["times"])}
            for res in results}


def rusage_run(cmd):
    """One run of cmd: its peak resident set (KB) and its CPU time per wall time (how many
    cores it kept busy, start-up included), from the kernel's rusage of that child."""
    with tempfile.TemporaryFile() as err:
        wall0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - wall0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit("bench: %s failed: %s" % (" ".join(cmd[:3]), err.read().decode(errors="replace").strip()))
    return {"rss_kb": usage.ru_maxrss, "cpu_per_wall": (usage.ru_utime + usage.ru_stime) / wall}


def in_process_bench(clip_run, model, photo, threads, iters):
    """clip_run bench MODEL PHOTO -t N --iters K: {case: ms} from its lines "CASE  NUMBER ms ..."
    (the first number of the line: the median), and the raw text."""
    rc, out = output_of([clip_run, "bench", model, photo, "-t", str(threads), "--iters", str(iters)])
    if rc != 0:
        log("clip_run bench failed (exit %d): %s" % (rc, out.strip()[-300:]))
        return {}, out
    names = {c[0] for c in CASES} | {"image"}
    found = {}
    for line in out.splitlines():
        words = line.split()
        m = re.search(r"([0-9.]+)\s*ms\b", line)
        if words and m and words[0] in names:
            found["image_npy" if words[0] == "image" else words[0]] = float(m.group(1))
    return found, out


def warm_latency(proc, bench_ms, features):
    """{case: (ms, sd or None, source)}: one forward pass in a running process."""
    warm = {}
    if features["bench"]:  # without its lines (it failed, said why) there is no warm number
        for name, ms in bench_ms.items():
            warm[name] = (ms, None, "clip_run bench")
        return warm

    def per_extra(x8, x1):
        a, b = proc[x8], proc[x1]
        return (a["mean_ms"] - b["mean_ms"]) / 7, (a["sd_ms"] ** 2 + b["sd_ms"] ** 2) ** 0.5 / 7

    image_x8 = "image_x8" if features["batch"] else "image_batch8"
    for name, x8 in (("image_npy", image_x8), ("text_short", "text_short_x8"), ("text_long", "text_long_x8")):
        ms, sd = per_extra(x8, name)
        warm[name] = (ms, sd, "(8 runs - 1 run) / 7")
    # A batch is one process's work minus that process's start-up (the single run minus its
    # warm part), so it stays comparable when --batch makes the 8 cheaper than 8 singles.
    for name, single, tower in (("image_batch8", "image_npy", "image_npy"), ("text_batch8", "text_long", "text_long")):
        startup = proc[single]["mean_ms"] - warm[tower][0]
        warm[name] = (proc[name]["mean_ms"] - startup, None, "process - start-up")
    return warm


def wait_quiet(seconds):
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] >= 1.0 and time.monotonic() < deadline:
        time.sleep(5)


# ---- clip.c's quantized models (issue 13) ------------------------------------------------
def quantized_models(clip_run, inputs, types, out_dir):
    """{type: path}: the benchmark model through `clip_run quantize`, redone when the model
    or clip_run is newer than the file."""
    models = {}
    base, _ = os.path.splitext(os.path.basename(inputs["model"]))
    for t in types:
        path = os.path.join(out_dir, "%s-%s.clip" % (base, t))
        newest_input = max(os.path.getmtime(inputs["model"]), os.path.getmtime(clip_run))
        if not os.path.exists(path) or os.path.getmtime(path) < newest_input:
            log("clip_run quantize --type %s -> %s" % (t, path))
            subprocess.run([clip_run, "quantize", inputs["model"], path, "--type", t], check=True,
                           stdout=subprocess.DEVNULL)
        models[t] = path
    return models


def read_npy_f32(path):
    """A little-endian float32 C-order .npy [n, d] -> list of rows (standard library only)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError("%s: not a .npy file" % path)
    header_len = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else struct.unpack("<I", data[8:12])[0]
    start = (10 if data[6] == 1 else 12) + header_len
    header = data[start - header_len:start].decode("latin1")
    if "'<f4'" not in header or "'fortran_order': True" in header:
        raise ValueError("%s: expected little-endian float32 in C order" % path)
    shape = [int(v) for v in re.search(r"'shape':\s*\(([^)]*)\)", header).group(1).split(",") if v.strip()]
    n, d = (shape + [1])[:2] if len(shape) > 1 else (1, shape[0])
    values = struct.unpack("<%df" % (n * d), data[start:start + 4 * n * d])
    return [values[r * d:(r + 1) * d] for r in range(n)]


def row_cosines(a, b):
    out = []
    for x, y in zip(a, b):
        dot = sum(p * q for p, q in zip(x, y))
        out.append(dot / ((sum(p * p for p in x) * sum(q * q for q in y)) ** 0.5))
    return out


def quantized_cosines(clip_run, models, inputs, check_dir):
    """{type: {"image": (min, mean), "text": (min, mean)}}: cosine of each quantized model's raw
    embeddings of the peers' inputs to the f32 model's (check_dir/clipc_*.npy)."""
    texts = inputs["texts"]
    ref = {k: read_npy_f32(os.path.join(check_dir, "clipc_%s.npy" % k)) for k in ("image", "text")}
    result = {}
    for t, model in models.items():
        result[t] = {}
        for kind in ("image", "text"):
            out = os.path.join(check_dir, "clipc_%s_%s.npy" % (t, kind))
            if kind == "image":
                cmd = [clip_run, "embed-image", model] + inputs["arrays"] + ["--raw", "-o", out]
            else:
                cmd = [clip_run, "embed-text", model, "--raw", "-o", out, "--", texts["short"], texts["long"]] + \
                    texts["batch"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            cos = row_cosines(read_npy_f32(out), ref[kind])
            result[t][kind] = (min(cos), sum(cos) / len(cos))
    return result


# ---- Peers ------------------------------------------------------------------------------
SETTLE_SECONDS = 20


def run_peer(name, cmd, json_path):
    """Runs a peer, then waits SETTLE_SECONDS: right after ONNX Runtime's 2-thread runs, the
    next measurement on this VM was slower for a while (clip.c q8_0 image 18-23 ms, then
    15.4 ms 20 s later), so nothing is timed in that wake."""
    log("peer %s: %s" % (name, " ".join(shlex.quote(a) for a in cmd[:4]) + " ..."))
    r = subprocess.run(cmd, stdout=sys.stderr)
    time.sleep(SETTLE_SECONDS)
    if r.returncode != 0:
        return {"error": "%s exited %d (see the messages above)" % (name, r.returncode)}
    with open(json_path) as f:
        return json.load(f)


def clipc_reference_embeddings(clip_run, inputs, check_dir):
    """clip.c's raw embeddings of the peers' inputs: image [8, D]; text [10, D] (short, long, batch)."""
    os.makedirs(check_dir, exist_ok=True)
    texts = inputs["texts"]
    subprocess.run([clip_run, "embed-image", inputs["model"]] + inputs["arrays"] +
                   ["--raw", "-o", os.path.join(check_dir, "clipc_image.npy")], check=True)
    subprocess.run([clip_run, "embed-text", inputs["model"], "--raw", "-o", os.path.join(check_dir, "clipc_text.npy"),
                    "--", texts["short"], texts["long"]] + texts["batch"], check=True)


def peers_available(torch_python, node):
    avail = {}
    rc, out = output_of([torch_python, "-c", "import torch, numpy"])
    avail["PyTorch"] = None if rc == 0 else "no torch/numpy in %s (apt-get install python3-torch)" % torch_python
    if not shutil.which(node):
        avail["ONNX Runtime"] = "no node (apt-get install nodejs npm)"
    elif not os.path.isdir(os.path.join(PEERS, "node_modules", "onnxruntime-node")):
        avail["ONNX Runtime"] = "no bench/peers/node_modules (sh bench/peers/deps.sh)"
    elif avail["PyTorch"]:
        avail["ONNX Runtime"] = "needs PyTorch to export the ONNX graphs"
    else:
        avail["ONNX Runtime"] = None
    if avail["ONNX Runtime"]:
        avail["ONNX Runtime int8"] = avail["ONNX Runtime"]
    else:
        rc, _ = output_of([torch_python, "-c", "import onnx, numpy"])
        avail["ONNX Runtime int8"] = None if rc == 0 else \
            "no onnx in %s to quantize the graphs (apt-get install python3-onnx)" % torch_python
    return avail


# ---- The report --------------------------------------------------------------------------
def fmt_ms(ms, sd=None):
    if ms is None:
        return "—"
    text = "%.1f" % ms if ms < 100 else "%.0f" % ms
    if sd is not None:
        text += " ± " + ("%.1f" % sd if sd < 100 else "%.0f" % sd)
    return text


def report(info, inputs, features, results, peers_status, args):
    model_mb = inputs["model_bytes"] / MB
    lines = ["# clip.c benchmark: ViT-B/32 (random weights)", ""]
    flags = info["flags"]
    lines += ["| | |", "| --- | --- |",
              "| machine | %s (cpu family %s, model %s), %d CPUs, %s; Linux %s |" % (
                  info["cpu"], info.get("family", "?"), info.get("model", "?"), info["cpus"],
                  " ".join(flags) if flags else "no AVX2", info["kernel"]),
              "| date | %s |" % info["date"],
              "| commit | %s |" % info["commit"],
              "| clip.c kernels | %s |" % info["kernels"],
              "| model | %s, %.0f MiB (.clip) |" % (os.path.basename(inputs["model"]), model_mb),
              "| load average at start | %.2f (other work on the machine inflates every number) |" % info["load_start"],
              "| tools | %s; %s |" % (info["hyperfine"], "; ".join(
                  "%s %s" % (k, v) for k, v in results.get("peer_versions", {}).items()) or "no peers run"),
              ""]
    for threads in args.threads:
        r = results["threads"][str(threads)]
        proc, warm, rss = r["process"], r["warm"], r["rss_kb"]
        peer = r.get("peers", {})
        peer_names = [p for p in ("PyTorch", "ONNX Runtime") if p in peer and "cases" in peer[p]]
        head = ["case", "clip.c process (ms)", "clip.c warm (ms)"]
        head += ["%s (ms)" % p for p in peer_names]
        head += ["clip.c / %s" % ("ORT" if p == "ONNX Runtime" else p) for p in peer_names]
        head += ["peak RSS (MiB)"]
        lines += ["## %d thread%s (load average %.2f before)" % (threads, "" if threads == 1 else "s",
                                                                r["load_start"]), "",
                  "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for name, what, peer_case in CASES:
            label = what
            if name.endswith("batch8") and not features["batch"]:
                label += " †"
            row = [label, fmt_ms(proc[name]["mean_ms"], proc[name]["sd_ms"])]
            w = warm.get(name)
            row.append(fmt_ms(w[0], w[1]) if w else "—")
            peer_ms = []
            for p in peer_names:
                c = peer[p]["cases"].get(peer_case) if peer_case else None
                peer_ms.append(c["median_ms"] if c else None)
                row.append(fmt_ms(c["median_ms"], c["sd_ms"]) if c else "—")
            for ms in peer_ms:
                row.append("%.2f" % (w[0] / ms) if (ms and w) else "—")
            row.append("%.0f" % (rss[name] / 1024))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        # Acceptance of issue 5.
        rss_one = rss["image_npy"] / 1024
        first = proc["image_npy"]["mean_ms"]
        busy = ["clip.c %.2f (whole process)" % r["cpu_per_wall"]["image_npy"]]
        for p in peer_names:
            c = peer[p]["cases"].get("image")
            if c and "cpu_per_wall" in c:
                busy.append("%s %.2f" % (p, c["cpu_per_wall"]))
        lines.append("- peak RSS of one image embedding: %.0f MiB; limit model + 64 MiB = %.0f MiB: **%s**"
                     % (rss_one, model_mb + 64, "pass" if rss_one <= model_mb + 64 else "FAIL"))
        if "image_npy" in warm:
            warm_image = warm["image_npy"][0]
            lines.append("- process start to first embedding: %.1f ms; warm image %.1f ms + 30 ms = %.1f ms: **%s**"
                         % (first, warm_image, warm_image + 30, "pass" if first <= warm_image + 30 else "FAIL"))
        else:
            lines.append("- process start to first embedding: %.1f ms; no warm image latency to compare" % first)
        # Acceptance of issue 11 (ratios against ONNX Runtime in this run).
        ort = peer.get("ONNX Runtime", {}).get("cases", {}) if "ONNX Runtime" in peer_names else {}
        for name, peer_case, limit, what in (("image_npy", "image", 0.85, "image latency <= 0.85x ORT"),
                                             ("image_batch8", "image_batch8", 1 / 1.15, "batch-8 throughput >= 1.15x ORT"),
                                             ("text_short", "text_short", 0.15, '"a photo of a dog." <= 0.15x ORT'),
                                             ("text_long", "text_long", 0.85, "77-token text <= 0.85x ORT")):
            c, w = ort.get(peer_case), warm.get(name)
            if c and w:
                ratio = w[0] / c["median_ms"]
                shown = "%.2fx throughput" % (1 / ratio) if name == "image_batch8" else "%.2f" % ratio
                lines.append("- issue 11: %s: %s: **%s**" % (what, shown, "pass" if ratio <= limit else "FAIL"))
        m = re.search(r"^image_npy .*?, (\d+)% of OpenBLAS", r.get("bench_raw") or "", re.M)
        peak = re.search(r"OpenBLAS sgemm 1024\^3 \(([^)]*)\) ([\d.]+) \(1 thread\)", r.get("bench_raw") or "")
        if m and threads == 1:
            lines.append("- issue 11: image encode at 1 thread >= 75%% of OpenBLAS sgemm 1024^3 (%s, %s GFLOP/s in the same "
                         "process): %s%%: **%s**" % (peak.group(1) if peak else "?", peak.group(2) if peak else "?",
                                                     m.group(1), "pass" if int(m.group(1)) >= 75 else "FAIL"))
        lines += ["- warm numbers from: %s" % ("`clip_run bench`" if features["bench"] else
                                               "whole processes, (8 runs - 1 run) / 7; batches: process - start-up"),
                  "- cores busy (CPU time / wall time), one image: " + ", ".join(busy),
                  ""]
        if r.get("bench_raw"):
            lines += ["<details><summary>clip_run bench -t %d</summary>" % threads, "", "```",
                      r["bench_raw"].rstrip(), "```", "</details>", ""]
    lines += int8_report(results, args)
    notes = ["Notes:", "",
             "- *clip.c process*: hyperfine mean ± sd of a whole `clip_run` process (start, map the model, "
             "read/decode the input, forward pass, write the .npy), %s runs after 1 warm-up, file in the page cache." % args.runs,
             "- *clip.c warm*: one forward pass inside a running process; this is what the peers measure "
             "and what the ratios use.",
             "- *peers*: warm (3 untimed runs first), median ± sd of %d runs, inputs = the same preprocessed "
             "tensors and token ids (their tokenizer and image decoding are not timed). PyTorch: "
             "bench/peers/clip_torch.py, torch.set_num_threads(N), OpenBLAS threads = N, OMP_WAIT_POLICY=PASSIVE; ONNX Runtime: CPU execution provider, intra-op threads = N, "
             "inter-op 1, all graph optimizations." % args.peer_repeats,
             "- *clip.c / peer* < 1: clip.c is faster.",
             "- texts: clip.c's text tower stops at the end token (with causal attention the later "
             "positions cannot change it); the peers run all 77 positions as OpenAI's model does, so "
             "their short and 77-token texts cost the same.",
             "- *peak RSS*: of one clip.c process running that case (wait4 rusage).",
             "- JPEG: %s, %dx%d." % (inputs["photo_format"], *inputs["photo_size"])]
    if not features["batch"]:
        notes.append("- † clip_run has no `--batch` yet: 8 inputs in one process, run one after another.")
    for p, why in peers_status.items():
        if why:
            notes.append("- %s: not run (%s)." % (p, why))
    checks = results.get("checks", {})
    if checks:
        notes.append("- embeddings checked before timing (max |diff| of L2-normalized vectors): " +
                     "; ".join("%s vs %s %.1e" % (p, what, d) for p, c in checks.items() for what, d in c.items()))
    return "\n".join(lines + notes) + "\n"


def int8_report(results, args):
    """The int8 tables of issue 13: clip.c's quantized types next to ONNX Runtime int8 and
    clip.c f32, per thread count, with the issue's pass/fail lines."""
    if not args.int8_types:
        return []
    types = args.int8_types
    lines = ["## int8: clip.c %s vs ONNX Runtime int8 (dynamic quantization)" % ", ".join(types), ""]
    cos = results.get("int8_cosines", {})
    checks = results.get("int8_checks", {})
    acc = ["%s image %.6f / %.6f, text %.6f / %.6f" % ((t,) + cos[t]["image"] + cos[t]["text"]) for t in types if t in cos]
    ort = {k: v for k, v in checks.items() if "clip.c" in k}
    if ort:
        acc.append("ONNX Runtime int8 image %.6f / %.6f, text %.6f / %.6f" % tuple(
            ort.get("cosine to clip.c %s (%s)" % (kind, which), float("nan"))
            for kind in ("image", "text") for which in ("min", "mean")))
    if acc:
        lines += ["Cosine of raw embeddings to the f32 model's (8 images, 10 texts; min / mean): " + "; ".join(acc) + ".", ""]
    for threads in args.threads:
        r = results["threads"][str(threads)]
        q = r.get("int8", {})
        ort_cases = r.get("peers", {}).get("ONNX Runtime int8", {}).get("cases", {})
        f32 = r.get("warm", {})
        head = ["case"] + ["clip.c %s (ms)" % t for t in types] + ["ORT int8 (ms)", "clip.c f32 (ms)"]
        head += ["%s / ORT int8" % t for t in types] + ["%s / f32" % t for t in types]
        lines += ["### %d thread%s" % (threads, "" if threads == 1 else "s"), "",
                  "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for name, what, ort_case in INT8_CASES:
            mine = [q.get(t, {}).get("warm", {}).get(name) for t in types]
            o = ort_cases.get(ort_case)
            o_ms = o["median_ms"] if o else None
            f = f32.get(name)
            f_ms = f[0] if f else None
            row = [what] + [fmt_ms(ms) for ms in mine] + [fmt_ms(o_ms, o["sd_ms"]) if o else "—", fmt_ms(f_ms)]
            row += ["%.2f" % (ms / o_ms) if ms and o_ms else "—" for ms in mine]
            row += ["%.2f" % (ms / f_ms) if ms and f_ms else "—" for ms in mine]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        q8 = q.get("q8_0", {}).get("warm", {})
        img, o = q8.get("image_npy"), ort_cases.get("image")
        if img and o:
            ratio = img / o["median_ms"]
            lines.append("- issue 13: q8_0 image latency <= 0.8x ORT int8: %.1f / %.1f ms = %.2f: **%s**"
                         % (img, o["median_ms"], ratio, "pass" if ratio <= 0.8 else "FAIL"))
        short, f = q8.get("text_short"), f32.get("text_short")
        if short and f:
            ratio = short / f[0]
            lines.append('- issue 13: q8_0 "a photo of a dog." <= 0.5x clip.c f32: %.2f / %.2f ms = %.2f: **%s**'
                         % (short, f[0], ratio, "pass" if ratio <= 0.5 else "FAIL"))
        lines.append("")
        for t in types:
            raw = q.get(t, {}).get("bench_raw")
            if raw:
                lines += ["<details><summary>clip_run bench -t %d, %s</summary>" % (threads, t), "", "```",
                          raw.rstrip(), "```", "</details>", ""]
    lines += ["- int8 timings: clip.c warm from `clip_run bench` on `clip_run quantize --type T` of the same model; "
              "ORT int8: ort_bench.js --int8 on bench/peers/quantize_onnx.py's graphs (MatMul with constant "
              "weights -> DynamicQuantizeLinear + MatMulInteger, uint8 activations per tensor, int8 weights per "
              "tensor, symmetric; the patch Conv -> ConvInteger; the token embedding Gather on int8), same "
              "session options and repeats as the fp32 graphs.", ""]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip-run", default=os.environ.get("CLIP_RUN", os.path.join(ROOT, "clip_run")))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--runs", type=int, default=10, help="hyperfine runs per case")
    ap.add_argument("--peers", action="store_true", help="also run PyTorch and ONNX Runtime")
    ap.add_argument("--peer-repeats", type=int, default=10)
    ap.add_argument("--int8-types", default="q8_0,q4_0",
                    help="with --peers: clip.c types timed next to ONNX Runtime int8 (comma-separated; empty: none)")
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", "/usr/bin/python3"))
    ap.add_argument("--node", default=os.environ.get("NODE", "node"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before each thread count, wait up to SECONDS for the load average to fall below 1")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",") if t]
    args.int8_types = [t for t in args.int8_types.split(",") if t] if args.peers else []
    clip_run = os.path.abspath(args.clip_run)
    if not os.access(clip_run, os.X_OK):
        raise SystemExit("bench: %s is not an executable clip_run (build it with make)" % clip_run)
    if not shutil.which("hyperfine"):
        raise SystemExit("bench: hyperfine is missing (sh tools/deps.sh bench)")

    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "prepare.py"), "--clip-run", clip_run,
                    "--out", args.out], check=True)
    with open(os.path.join(args.out, "inputs.json")) as f:
        inputs = json.load(f)
    tmp = os.path.join(args.out, "tmp")
    os.makedirs(tmp, exist_ok=True)
    info = machine_info(clip_run, inputs["model"])
    features = clip_run_features(clip_run)
    if info["load_start"] > 0.5:
        log("load average %.2f: other processes are running; numbers will be inflated" % info["load_start"])
    log("clip_run: --batch %s, bench command %s" % ("yes" if features["batch"] else "no (8 inputs, one at a time)",
                                                     "yes" if features["bench"] else "no (warm latency by difference)"))

    results = {"info": info, "features": features, "threads": {}, "checks": {}, "peer_versions": {}}
    peers_status = {}
    onnx_dir = os.path.join(args.out, "onnx")
    check_dir = os.path.join(args.out, "check")
    if args.peers:
        peers_status = peers_available(args.torch_python, args.node)
        if any(v is None for v in peers_status.values()):
            clipc_reference_embeddings(clip_run, inputs, check_dir)
        if peers_status["ONNX Runtime"] is None:
            r = subprocess.run([args.torch_python, os.path.join(PEERS, "export_onnx.py"),
                                os.path.join(args.out, "inputs.json"), onnx_dir], stdout=sys.stderr)
            if r.returncode != 0:
                peers_status["ONNX Runtime"] = peers_status["ONNX Runtime int8"] = "export_onnx.py failed"
        if peers_status["ONNX Runtime int8"] is None:
            r = subprocess.run([args.torch_python, os.path.join(PEERS, "quantize_onnx.py"), onnx_dir], stdout=sys.stderr)
            if r.returncode != 0:
                peers_status["ONNX Runtime int8"] = "quantize_onnx.py failed"
    int8_models = quantized_models(clip_run, inputs, args.int8_types, args.out)
    if int8_models and os.path.exists(os.path.join(check_dir, "clipc_image.npy")):
        results["int8_cosines"] = quantized_cosines(clip_run, int8_models, inputs, check_dir)

    for i, threads in enumerate(args.threads):
        wait_quiet(args.wait_quiet)
        load = os.getloadavg()[0]
        log("clip.c, %d thread%s (load average %.2f)" % (threads, "" if threads == 1 else "s", load))
        cmds = case_commands(clip_run, inputs, threads, features, tmp)
        proc = hyperfine(cmds, args.runs, os.path.join(tmp, "hyperfine-t%d.json" % threads))
        rusage = {name: rusage_run(cmds[name]) for name, _, _ in CASES}
        rss = {name: u["rss_kb"] for name, u in rusage.items()}
        bench_ms, bench_raw = in_process_bench(clip_run, inputs["model"], inputs["photos"][0], threads,
                                                       args.runs) if features["bench"] else ({}, "")
        entry = {"load_start": load, "process": proc, "rss_kb": rss,
                 "cpu_per_wall": {n: u["cpu_per_wall"] for n, u in rusage.items()},
                 "bench_raw": bench_raw,
                 "warm": warm_latency(proc, bench_ms, features), "peers": {}}
        inputs_json = os.path.join(args.out, "inputs.json")
        if args.peers and peers_status.get("PyTorch") is None:
            out = os.path.join(tmp, "torch-t%d.json" % threads)
            cmd = [args.torch_python, os.path.join(PEERS, "clip_torch.py"), inputs_json, "--threads", str(threads),
                   "--repeats", str(args.peer_repeats), "--json", out]
            if i == 0:
                cmd += ["--check-against", check_dir, "--dump", check_dir]
            entry["peers"]["PyTorch"] = res = run_peer("PyTorch", cmd, out)
            if "error" in res:
                peers_status["PyTorch"] = res["error"]
            else:
                results["peer_versions"]["PyTorch"] = res["version"]
                if res["check"]:
                    results["checks"]["PyTorch"] = res["check"]
        if args.peers and peers_status.get("ONNX Runtime") is None:
            out = os.path.join(tmp, "ort-t%d.json" % threads)
            cmd = [args.node, os.path.join(PEERS, "ort_bench.js"), inputs_json, onnx_dir, "--threads", str(threads),
                   "--repeats", str(args.peer_repeats), "--json", out]
            if i == 0:
                cmd += ["--check-against", check_dir]
            entry["peers"]["ONNX Runtime"] = res = run_peer("ONNX Runtime", cmd, out)
            if "error" in res:
                peers_status["ONNX Runtime"] = res["error"]
            else:
                results["peer_versions"]["ONNX Runtime"] = res["version"] + " (CPU EP)"
                if res["check"]:
                    results["checks"]["ONNX Runtime"] = res["check"]
        # int8 (issue 13): clip.c's quantized models in-process, and ORT on its int8 graphs
        entry["int8"] = {}
        for t, model in int8_models.items():
            ms, raw = in_process_bench(clip_run, model, inputs["photos"][0], threads, args.runs)
            entry["int8"][t] = {"warm": ms, "bench_raw": raw}
        if args.peers and peers_status.get("ONNX Runtime int8") is None:
            out = os.path.join(tmp, "ort-int8-t%d.json" % threads)
            cmd = [args.node, os.path.join(PEERS, "ort_bench.js"), inputs_json, onnx_dir, "--int8",
                   "--threads", str(threads), "--repeats", str(args.peer_repeats), "--json", out,
                   "--cases", ",".join(c[2] for c in INT8_CASES)]
            if i == 0:
                cmd += ["--check-against", check_dir]
            entry["peers"]["ONNX Runtime int8"] = res = run_peer("ONNX Runtime int8", cmd, out)
            if "error" in res:
                peers_status["ONNX Runtime int8"] = res["error"]
            elif res["check"]:
                results["int8_checks"] = res["check"]
        results["threads"][str(threads)] = entry

    info["load_end"] = os.getloadavg()[0]
    text = report(info, inputs, features, results, peers_status, args)
    text += "- load average at the end: %.2f\n" % info["load_end"]
    for name, content in (("results.md", text), ("results.json", json.dumps(results, indent=1))):
        path = os.path.join(args.out, name)
        with open(path + ".tmp", "w") as f:
            f.write(content)
        os.replace(path + ".tmp", path)
    print(text)
    log("wrote %s" % os.path.join(args.out, "results.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

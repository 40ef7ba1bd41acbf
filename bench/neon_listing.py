#!/usr/bin/env python3
"""The aarch64 GEMM micro-kernel's inner loop, as the compiler emitted it.

Compiles kernels/gemm_neon.c for aarch64 (the cross compiler on other machines, cc on an
ARM one) with the Makefile's flags, disassembles it with objdump, finds the innermost
loop with the most FMAs (the full 5-row tile's k loop) and prints, as Markdown:
  - the listing of that loop;
  - its instruction mix per iteration and per k step: FMAs (fmla), vector loads
    (ldr/ldp/ld1 of q registers: a 16-byte or two 16-byte loads each), prefetches, other;
  - its register use: accumulators (fmla destinations), panel vectors (fmla's vector
    operand), x vectors (the lane operand).
With --write it replaces the part of bench/README.md between the markers
"<!-- neon-listing:begin -->" and "<!-- neon-listing:end -->".

Usage: python3 bench/neon_listing.py [--cc aarch64-linux-gnu-gcc] [--objdump ...] [--write]
Standard library only; needs binutils for aarch64 (tools/deps.sh arm installs them).
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "kernels", "gemm_neon.c")
README = os.path.join(ROOT, "bench", "README.md")
BEGIN, END = "<!-- neon-listing:begin -->", "<!-- neon-listing:end -->"
CFLAGS = ["-O2", "-std=c11", "-D_GNU_SOURCE"]      # as the Makefile (without -g)
FMAS_PER_K_STEP = 5 * 4                              # 5 rows x 4 vectors (16 columns)


def default_tools():
    native = platform.machine() in ("aarch64", "arm64")
    return ("cc", "objdump") if native else ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objdump")


def disassemble(cc, objdump):
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, "gemm_neon.o")
        subprocess.run([cc] + CFLAGS + ["-I", os.path.join(ROOT, "kernels"), "-c", SOURCE, "-o", obj],
                       check=True)
        version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        out = subprocess.run([objdump, "-d", "--no-show-raw-insn", obj], check=True,
                             capture_output=True, text=True).stdout
    ins = []
    for line in out.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\t(.*)$", line)
        if m:
            ins.append((int(m.group(1), 16), re.sub(r"\s+//.*$", "", m.group(2)).strip()))
    return ins, version


def innermost_loops(ins):
    """(start, end) address ranges of loops (a backward branch) that contain no other loop."""
    loops = []
    for addr, text in ins:
        m = re.match(r"(b\.\w+|cbn?z|tbn?z|b)\s.*?([0-9a-f]+) <", text)
        if m and int(m.group(2), 16) < addr:
            loops.append((int(m.group(2), 16), addr))
    return [(s, e) for s, e in loops
            if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in loops)]


def classify(text):
    op = text.split()[0]
    if op == "fmla":
        return "fma"
    if re.match(r"(ldr|ldur|ldp|ld1)$", op) and re.search(r"\b[qv]\d+", text):
        return "vector load"
    if op == "prfm":
        return "prefetch"
    return "other"


def vector_loads(text):
    """16-byte vectors a load instruction brings in (ldp: 2, ld1 {a-b}: its list)."""
    op = text.split()[0]
    if op == "ldp":
        return 2
    if op == "ld1":
        return len(re.findall(r"\bv\d+\.", text.split("[")[0]))
    return 1


def main():
    cc, objdump = default_tools()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", default=cc)
    ap.add_argument("--objdump", default=objdump)
    ap.add_argument("--write", action="store_true", help="update bench/README.md between the markers")
    args = ap.parse_args()

    ins, version = disassemble(args.cc, args.objdump)
    best = None
    for s, e in innermost_loops(ins):
        body = [(a, t) for a, t in ins if s <= a <= e]
        n_fma = sum(1 for _, t in body if classify(t) == "fma")
        if not best or n_fma > best[0]:
            best = (n_fma, body)
    if not best or best[0] == 0:
        sys.exit("neon_listing: no FMA loop found in gemm_neon.c")
    n_fma, body = best
    k_steps = n_fma // FMAS_PER_K_STEP
    counts = {}
    for _, t in body:
        counts[classify(t)] = counts.get(classify(t), 0) + 1
    load_insns = [t for _, t in body if classify(t) == "vector load"]
    loaded = sum(vector_loads(t) for t in load_insns)
    acc, panel, lane = set(), set(), set()
    for _, t in body:
        m = re.match(r"fmla\s+v(\d+)\.4s,\s*v(\d+)\.4s,\s*v(\d+)\.s\[\d\]", t)
        if m:
            acc.add(int(m.group(1))), panel.add(int(m.group(2))), lane.add(int(m.group(3)))
        else:
            m = re.match(r"fmla\s+v(\d+)\.4s,\s*v(\d+)\.4s,\s*v(\d+)\.4s", t)
            if m:
                acc.add(int(m.group(1))), panel.update((int(m.group(2)), int(m.group(3))))
    regs = lambda s: ", ".join("v%d" % r for r in sorted(s))

    out = []
    out.append("Generated by `python3 bench/neon_listing.py --write` with %s (`-O2`), from "
               "`kernels/gemm_neon.c`, function `gemm_f32_neon_5x16`: the k loop of the full "
               "5-row tile, %d k steps per iteration." % (version, k_steps))
    out.append("")
    out.append("| per | instructions | FMAs (`fmla`) | vector load instructions (16-byte vectors) | prefetches | other |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    out.append("| loop iteration | %d | %d | %d (%d) | %d | %d |" % (
        len(body), n_fma, len(load_insns), loaded, counts.get("prefetch", 0), counts.get("other", 0)))
    out.append("| k step | %.2f | %.2f | %.2f (%.2f) | %.2f | %.2f |" % (
        len(body) / k_steps, n_fma / k_steps, len(load_insns) / k_steps, loaded / k_steps,
        counts.get("prefetch", 0) / k_steps, counts.get("other", 0) / k_steps))
    out.append("")
    out.append("FMAs per load instruction: %.2f; per 16-byte vector loaded: %.2f. Registers: %d accumulators "
               "(%s), %d panel vectors (%s), %d x vectors read by lane (%s); %d of 32 in the loop." % (
                   n_fma / len(load_insns), n_fma / loaded, len(acc), regs(acc), len(panel), regs(panel),
                   len(lane), regs(lane), len(acc | panel | lane)))
    out.append("")
    out.append("```")
    out.extend("%6x:  %s" % (a, t) for a, t in body)
    out.append("```")
    text = "\n".join(out)
    if args.write:
        with open(README, encoding="utf-8") as f:
            readme = f.read()
        if BEGIN not in readme or END not in readme:
            sys.exit("neon_listing: %s lacks the markers %s ... %s" % (README, BEGIN, END))
        head, rest = readme.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(README, "w", encoding="utf-8") as f:
            f.write(head + BEGIN + "\n" + text + "\n" + END + tail)
    print(text)


if __name__ == "__main__":
    main()

#!/bin/sh
# gemm_report.sh - the GEMM driver's measurements, with the machine and commit they belong to:
#   per-shape and per-tower GFLOP/s of the native driver next to OpenBLAS (bench/gemm_bench.c),
#   and one forward pass per case in CPU milliseconds (bench/model_cpu.c), optionally for a
#   second clip.c library (OLD_LIB=path/libclip.a OLD_MODEL=a version-1 .clip) side by side.
#
#   sh bench/gemm_report.sh [MODEL] [threads...]      (make first; MODEL: bench/out/vit-b-32-random.clip)
# CPU time is used at 1 thread (a shared machine's other work is then not counted); the
# fastest call of many is kept. Output: markdown on stdout.
set -eu
cd "$(dirname "$0")/.."
model=${1:-bench/out/vit-b-32-random.clip}
[ $# -gt 0 ] && shift
threads=${*:-1}
build=${BUILD:-build}
cc -O2 -std=c11 -D_GNU_SOURCE -pthread bench/gemm_bench.c "$build/libclip.a" -ldl -lm -o "$build/gemm_bench"
cc -O2 -std=c11 -D_GNU_SOURCE -pthread bench/model_cpu.c "$build/libclip.a" -ldl -lm -o "$build/model_cpu"
family=$(grep -m1 '^cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
cpumodel=$(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
name=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "gemm_report: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- kernels model io || echo ' + uncommitted'),"
echo "$name, cpu family $family, model $cpumodel, $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg)"
echo
for t in $threads; do
    echo "### gemm_bench, $t thread(s)"; echo; echo '```'
    "$build/gemm_bench" "$t" 0.3
    echo '```'; echo
done
echo "### model_cpu (1 thread, CPU ms, fastest of 7): this tree"; echo; echo '```'
"$build/model_cpu" "$model" 7
echo '```'
if [ -n "${OLD_LIB:-}" ]; then
    cc -O2 -std=c11 -D_GNU_SOURCE -pthread bench/model_cpu.c "$OLD_LIB" -ldl -lm -o "$build/model_cpu_old"
    echo; echo "### model_cpu: $OLD_LIB on ${OLD_MODEL:-$model}"; echo; echo '```'
    "$build/model_cpu_old" "${OLD_MODEL:-$model}" 7
    echo '```'
fi
echo; echo "load average at the end $(cut -d' ' -f1 /proc/loadavg)"

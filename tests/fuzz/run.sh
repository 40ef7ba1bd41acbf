#!/bin/sh
# run.sh - run one libFuzzer target for a bounded time; fails on any crash, sanitizer
# report, leak, timeout or memory blow-up.
#
#   sh tests/fuzz/run.sh FUZZ_BUILD TARGET SECONDS       (from the repo root; FUZZ_SEED=N)
#
# The committed seeds (tests/fuzz/corpus/TARGET) are copied into a working corpus
# (FUZZ_BUILD/corpus/TARGET) that keeps growing across runs; the repo's seeds are never
# written. A failing input is saved as FUZZ_BUILD/artifacts/TARGET-crash-<sha1> (or leak-,
# timeout-, oom-); reproduce it with: FUZZ_BUILD/fuzz_TARGET THAT_FILE
set -u
FUZZ_BUILD=$1 TARGET=$2 SECONDS_=$3
BIN="$FUZZ_BUILD/fuzz_$TARGET"
SEEDS="tests/fuzz/corpus/$TARGET"
WORK="$FUZZ_BUILD/corpus/$TARGET"
ARTIFACTS="$FUZZ_BUILD/artifacts"

# Longest input per target: a tiny model is 34 KB, images and texts need little room to
# reach every branch, and longer inputs only make each run slower.
case "$TARGET" in
    weightfile) MAX_LEN=65536 ;;
    image)      MAX_LEN=16384 ;;
    tokenizer)  MAX_LEN=4096 ;;
    npy)        MAX_LEN=4096 ;;
    *)          MAX_LEN=4096 ;;
esac

[ -x "$BIN" ] || { echo "FAIL: $BIN is not built (make fuzz-build)"; exit 1; }
mkdir -p "$WORK" "$ARTIFACTS"
cp "$SEEDS"/* "$WORK"/ 2>/dev/null
export CLIP_FUZZ_MODEL="${CLIP_TEST_MODELS:-build/test-models}/golden-openai.clip"
log="$FUZZ_BUILD/fuzz_$TARGET.log"
# -timeout: one input may take at most 20 s (an image at the pixel limit takes ~1 s);
# -rss_limit_mb: the largest legal image (64 Mpixel GIF: 3 canvases of 256 MB) fits.
# -seed: a fixed seed (FUZZ_SEED, default 1) makes a run from the committed seeds
# reproducible, so the suite in CI explores the same inputs as here; FUZZ_SEED=0 picks a
# random one for open-ended fuzzing.
"$BIN" -seed="${FUZZ_SEED:-1}" -max_total_time="$SECONDS_" -max_len="$MAX_LEN" -timeout=20 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$TARGET-" "$WORK" >"$log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
if [ $rc -eq 0 ]; then
    echo "fuzz $TARGET: ${runs:-?} inputs in $SECONDS_ s, coverage ${cov:-?} edges, no failure"
    exit 0
fi
echo "FAIL: fuzz $TARGET (exit $rc), log $log:"
grep -E 'ERROR|WARNING|SUMMARY|runtime error|Test unit written|#[0-9]+ +[A-Z]' "$log" | grep -v '^#[0-9]* *\(NEW\|REDUCE\|pulse\|INITED\)' | head -n 20
grep -E '^ +#[0-9]+ 0x' "$log" | head -n 15
exit 1

#!/bin/sh
# run_tests.sh - the whole suite, as `make test` runs it from the repo root.
#   1. convert the golden-tiny reference model in both layouts (tests read them),
#   2. every Check unit-test binary (build/tests/test_*),
#   3. every Python test (tests/test_*.py: converter, CLI, golden end-to-end),
# then one closing line "N passed, N failed".
set -u
BUILD=${1:-build}
SHARED=../shared/clip
export CLIP_TEST_MODELS="$BUILD/test-models"
passed=0 failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

if [ ! -d "$SHARED" ]; then
    echo "error: reference data $SHARED is missing (tests need ../shared next to the repo)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

mkdir -p "$CLIP_TEST_MODELS"
python3 tools/convert.py "$SHARED/golden-tiny/openai.pt" --config "$SHARED/golden-tiny/open_clip_config.json" \
    --vocab "$SHARED/bpe_simple_vocab_16e6.txt.gz" -o "$CLIP_TEST_MODELS/golden-openai.clip" >/dev/null \
    || fail "convert golden-tiny (OpenAI layout)"
python3 tools/convert.py "$SHARED/golden-tiny" -o "$CLIP_TEST_MODELS/golden-hf.clip" >/dev/null \
    || fail "convert golden-tiny (Hugging Face layout)"

for t in "$BUILD"/tests/test_*; do
    case "$t" in *.d) continue ;; esac
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    echo "$out" | grep -E '^[0-9]+%: Checks' | sed "s|^|$(basename "$t"): |"
    [ $rc -eq 0 ] || echo "$out" | grep -vE '^(Running suite|[0-9]+%: Checks)'
    n=$(echo "$out" | sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p')
    if [ -z "$n" ]; then fail "$t crashed or printed no result (exit $rc)"; continue; fi
    set -- $n
    passed=$((passed + $1 - $2 - $3)); failed=$((failed + $2 + $3))
    [ $rc -eq 0 ] || [ $(($2 + $3)) -gt 0 ] || fail "$t exited $rc"
done

out=$(python3 -m unittest discover -s tests -p 'test_*.py' 2>&1); rc=$?
echo "$out" | grep -E '^(FAIL|ERROR):|^Ran |^OK|^FAILED' | sed 's/^/python: /'
[ $rc -eq 0 ] || echo "$out" | tail -n 60
ran=$(echo "$out" | sed -n 's/^Ran \([0-9]*\) test.*/\1/p')
bad=$(echo "$out" | sed -n 's/^FAILED (\(.*\))/\1/p' | tr ',' '\n' | sed -n 's/.*=\([0-9]*\)/\1/p' | awk '{s+=$1} END {print s+0}')
if [ -z "$ran" ]; then fail "python tests did not run"; else
    skipped=$(echo "$out" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p' | head -n 1)
    passed=$((passed + ran - bad - ${skipped:-0})); failed=$((failed + bad))
    [ $rc -eq 0 ] || [ "$bad" -gt 0 ] || fail "python tests exited $rc"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/sh
# valgrind.sh - valgrind memcheck over every clip_run command, on success and error paths.
#
#   sh tests/valgrind.sh CLIP_RUN MODEL WORKDIR
#
# Each command runs under memcheck with full leak checking; a definite or indirect leak,
# an invalid read/write or a use of uninitialised memory makes valgrind exit 86. A
# command must also end with the exit code it should (0, or 1 for the error paths), so
# an error path that crashes or is not taken is noticed. Prints one line per command:
#   valgrind ok: NAME          or          valgrind FAIL: NAME (why) + valgrind's report
#
# No suppression file is needed: OpenBLAS's thread pool and buffers stay reachable until
# exit ("still reachable", not an error), and under valgrind the CPU reports no AVX-512
# (valgrind cannot run it), so the AVX2 kernels and OpenBLAS's Haswell kernels are used.
set -u
CLIP_RUN=$1 MODEL=$2 WORK=$3
SHARED=../shared/clip
VG_EXIT=86
mkdir -p "$WORK"
IMAGE="$SHARED/images/astronaut_444.jpg"
IMAGE2="$SHARED/images/astronaut_crop.bmp"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind FAIL: valgrind is not installed (sh tools/deps.sh fuzz)"
    exit 1
fi

# check NAME EXPECTED_EXIT ARGS...
check() {
    name=$1 want=$2
    shift 2
    log="$WORK/$name.log"
    valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect --error-exitcode=$VG_EXIT --track-origins=yes \
        --log-file="$log" "$CLIP_RUN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null
    rc=$?
    if [ $rc -eq "$want" ]; then
        echo "valgrind ok: $name"
    else
        why="exit $rc, expected $want"
        [ $rc -eq $VG_EXIT ] && why="memcheck found errors"
        echo "valgrind FAIL: $name ($why)"
        echo "FAIL: valgrind $name: $CLIP_RUN $*"
        sed -n '/ERROR SUMMARY\|Invalid\|uninitialised\|definitely lost\|indirectly lost/p' "$log" | head -n 20
        head -c 2000 "$WORK/$name.err"
    fi
}

# Inputs for the commands and their error paths.
"$CLIP_RUN" preprocess "$MODEL" "$IMAGE" -o "$WORK/pixels.npy" >/dev/null 2>&1
head -c 4000 "$MODEL" >"$WORK/truncated.clip"
python3 - "$MODEL" "$WORK/corrupt.clip" <<'EOF'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[100] ^= 0xFF  # inside the config section: a key length or value becomes wrong
open(sys.argv[2], "wb").write(data)
EOF
head -c 300 "$IMAGE" >"$WORK/truncated.jpg"
printf 'not an image at all' >"$WORK/bad.png"
printf 'a photo of a cat\nan astronaut\n' >"$WORK/texts.txt"

check info 0 info "$MODEL"
check tokenize 0 tokenize "$MODEL" "a photo of a cat" "Hello, World!" --json
check tokenize-file 0 tokenize "$MODEL" -f "$WORK/texts.txt"
check preprocess 0 preprocess "$MODEL" "$IMAGE" -o "$WORK/out-pixels.npy"
check embed-image 0 embed-image "$MODEL" "$IMAGE" "$IMAGE2" -o "$WORK/image.npy"
check embed-image-npy 0 embed-image "$MODEL" "$WORK/pixels.npy" -o "$WORK/image-npy.npy"
check embed-text 0 embed-text "$MODEL" "a photo of a cat" -f "$WORK/texts.txt" -o "$WORK/text.npy"
check embed-text-ids 0 embed-text "$MODEL" --ids "49406 320 2368 49407" -o "$WORK/ids.npy"
check classify 0 classify "$MODEL" "$IMAGE" -l astronaut -l cat -l rocket --top 2 --json
check score 0 score "$MODEL" "$IMAGE" "an astronaut"
check error-missing-model 1 info "$WORK/no-such-model.clip"
check error-truncated-model-file 1 info "$WORK/truncated.clip"
check error-corrupt-model 1 score "$WORK/corrupt.clip" "$IMAGE" "x"
check error-missing-image 1 embed-image "$MODEL" "$WORK/no-such-image.jpg" -o "$WORK/never.npy"
check error-bad-image 1 score "$MODEL" "$WORK/bad.png" "x"
check error-truncated-image 1 classify "$MODEL" "$WORK/truncated.jpg" -l a -l b
check error-bad-npy 1 embed-image "$MODEL" "$WORK/texts.txt.npy" -o "$WORK/never.npy"
check error-wrong-npy-shape 1 embed-image "$MODEL" "$WORK/image.npy" -o "$WORK/never.npy"
check error-bad-ids 1 embed-text "$MODEL" --ids "49406 99999999" -o "$WORK/never.npy"
check error-usage 2 classify "$MODEL" "$IMAGE"

# Image search (issue 14) and the list / keep-going / labels paths.
mkdir -p "$WORK/photos/sub"
cp "$IMAGE" "$WORK/photos/a.jpg"
cp "$IMAGE2" "$WORK/photos/sub/b.bmp"
for n in c d e f g h i j k l m; do cp "$IMAGE" "$WORK/photos/sub/$n.jpg"; done  # no shard of 2 left empty
cp "$WORK/truncated.jpg" "$WORK/photos/sub/broken.jpg"
printf 'astronaut\ncat\nrocket\n' >"$WORK/labels.txt"
rm -f "$WORK/photos.clipindex" "$WORK/shard0.clipindex" "$WORK/shard1.clipindex" "$WORK/merged.clipindex"
check index 0 index "$MODEL" "$WORK/photos" -o "$WORK/photos.clipindex" --batch 2
check index-update 0 index "$MODEL" "$WORK/photos" -o "$WORK/photos.clipindex"
check index-shard 0 index "$MODEL" "$WORK/photos" -o "$WORK/shard0.clipindex" --shard 0/2
check index-shard1 0 index "$MODEL" "$WORK/photos" -o "$WORK/shard1.clipindex" --shard 1/2
check merge 0 merge "$WORK/merged.clipindex" "$WORK/shard0.clipindex" "$WORK/shard1.clipindex"
check search 0 search "$MODEL" "$WORK/photos.clipindex" "an astronaut" "a cat" -k 2 --json
check search-image-html 0 search "$MODEL" "$WORK/photos.clipindex" --image "$IMAGE" --html "$WORK/r.html"
check export 0 export "$WORK/photos.clipindex" --npy "$WORK/exp.npy" --paths "$WORK/exp.txt" --jsonl "$WORK/exp.jsonl"
check embed-image-dir-keep-going 0 embed-image "$MODEL" "$WORK/photos" -o "$WORK/dir.npy" --keep-going --paths-out "$WORK/dir.txt"
check classify-labels-file 0 classify "$MODEL" -f "$WORK/dir.txt" --labels "$WORK/labels.txt" --template "{} and {}"
check error-index-not-an-index 1 index "$MODEL" "$WORK/photos" -o "$WORK/texts.txt"
check error-search-other-model 1 search weights/demo.clip "$WORK/photos.clipindex" "x"

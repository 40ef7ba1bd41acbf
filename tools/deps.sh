#!/bin/sh
# deps.sh - make sure the system packages clip.c needs are present.
# Usage: tools/deps.sh build|test|fuzz|bench|train
#   train: Debian's PyTorch, numpy and PIL for /usr/bin/python3 (make demo-model).
#   fuzz: what `make test` needs beyond the unit tests: clang with libFuzzer and the
#         sanitizer runtimes (make fuzz), valgrind (make valgrind).
# Installs what is missing with apt-get when run as root on Debian/Ubuntu; otherwise
# prints one line naming the packages to install and fails.
set -u
need=""
have_header() { [ -f "$1" ]; }
check_pkg() { # package, test command
    if ! sh -c "$2" >/dev/null 2>&1; then need="$need $1"; fi
}
check_pkg libopenblas-dev 'test -f /usr/include/x86_64-linux-gnu/cblas.h || test -f /usr/include/aarch64-linux-gnu/cblas.h || test -f /usr/include/cblas.h || pkg-config --exists openblas'
check_pkg libstb-dev 'test -f /usr/include/stb/stb_image.h && test -f /usr/include/stb/stb_image_write.h'
check_pkg libsqlite3-dev 'test -f /usr/include/sqlite3.h'
check_pkg pkg-config 'command -v pkg-config'
check_pkg make 'command -v make'
check_pkg gcc 'command -v cc'
case "${1:-build}" in
    test)  check_pkg check 'test -f /usr/include/check.h'
           check_pkg python3 'command -v python3'
           check_pkg unicode-data 'test -f /usr/share/unicode/UnicodeData.txt'
           check_pkg python3-pil '/usr/bin/python3 -c "import PIL"'
           check_pkg python3-regex '/usr/bin/python3 -c "import regex"'
           # tests/test_search.py: drawn images (tools/demo_world.py), numpy.load of export,
           # the HTML page rendered headless, and the GNU parallel sharding recipe
           check_pkg python3-numpy '/usr/bin/python3 -c "import numpy"'
           check_pkg chromium 'command -v chromium'
           check_pkg parallel 'command -v parallel'
           check_pkg sqlite3 'command -v sqlite3' ;;
    fuzz)  check_pkg clang-14 'command -v clang-14'
           check_pkg libclang-rt-14-dev 'ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a || ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-aarch64.a'
           check_pkg valgrind 'command -v valgrind' ;;
    bench) check_pkg hyperfine 'command -v hyperfine'
           check_pkg python3 'command -v python3' ;;
    train) check_pkg python3-torch '/usr/bin/python3 -c "import torch"'
           check_pkg python3-numpy '/usr/bin/python3 -c "import numpy"'
           check_pkg python3-pil '/usr/bin/python3 -c "import PIL"' ;;
esac
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$need" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Another apt-get may hold the lock (make -j runs two deps steps at once): wait for it.
    wait_lock="-o DPkg::Lock::Timeout=600"
    if ! apt-get install $wait_lock -y -qq $need >/dev/null 2>&1; then
        apt-get $wait_lock update -qq >/dev/null 2>&1
        apt-get install $wait_lock -y -qq $need >/dev/null || { echo "deps: apt-get install$need failed" >&2; exit 1; }
    fi
    exit 0
fi
echo "error: missing system packages; install them with: sudo apt-get install$need" >&2
exit 1

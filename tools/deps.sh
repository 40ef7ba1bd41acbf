#!/bin/sh
# deps.sh - make sure the system packages clip.c needs are present.
# Usage: tools/deps.sh build|test|fuzz|bench|train|arm
#   train: Debian's PyTorch, numpy and PIL for /usr/bin/python3 (make demo-model).
#   fuzz: what `make test` needs beyond the unit tests: clang with libFuzzer and the
#         sanitizer runtimes (make fuzz), valgrind (make valgrind).
#   arm: building for aarch64 on another machine and running it there under qemu (make arm64
#        and the arm64 stage of make test): the cross compiler and C library, qemu-user, and
#        Check for arm64 through Debian's multiarch (check:arm64; the arm64 architecture is
#        added to dpkg first), OpenBLAS for arm64 (its header; --gemm openblas under qemu).
#        On an aarch64 machine the native packages do instead.
# Installs what is missing with apt-get when run as root on Debian/Ubuntu; otherwise
# prints one line naming the packages to install and fails.
set -u
need=""
have_header() { [ -f "$1" ]; }
check_pkg() { # package, test command
    if ! sh -c "$2" >/dev/null 2>&1; then need="$need $1"; fi
}
check_pkg libopenblas-dev 'test -f /usr/include/x86_64-linux-gnu/cblas.h || test -f /usr/include/aarch64-linux-gnu/cblas.h || test -f /usr/include/cblas.h || pkg-config --exists openblas'
check_pkg libstb-dev 'test -f /usr/include/stb/stb_image.h'
check_pkg pkg-config 'command -v pkg-config'
check_pkg make 'command -v make'
check_pkg gcc 'command -v cc'
case "${1:-build}" in
    test)  check_pkg check 'test -f /usr/include/check.h'
           check_pkg python3 'command -v python3'
           check_pkg unicode-data 'test -f /usr/share/unicode/UnicodeData.txt'
           check_pkg python3-pil '/usr/bin/python3 -c "import PIL"'
           check_pkg python3-regex '/usr/bin/python3 -c "import regex"' ;;
    fuzz)  check_pkg clang-14 'command -v clang-14'
           check_pkg libclang-rt-14-dev 'ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a || ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-aarch64.a'
           check_pkg valgrind 'command -v valgrind' ;;
    bench) check_pkg hyperfine 'command -v hyperfine'
           check_pkg python3 'command -v python3' ;;
    arm)   if [ "$(uname -m)" != aarch64 ]; then
               check_pkg gcc-aarch64-linux-gnu 'command -v aarch64-linux-gnu-gcc'
               check_pkg binutils-aarch64-linux-gnu 'command -v aarch64-linux-gnu-objdump'
               check_pkg libc6-dev-arm64-cross 'test -f /usr/aarch64-linux-gnu/include/stdio.h'
               check_pkg qemu-user 'command -v qemu-aarch64'
               check_pkg check:arm64 'test -f /usr/lib/aarch64-linux-gnu/libcheck_pic.a'
               check_pkg libsubunit-dev:arm64 'test -f /usr/lib/aarch64-linux-gnu/libsubunit.a'
               check_pkg libopenblas-dev:arm64 'test -f /usr/include/aarch64-linux-gnu/cblas.h'
           fi ;;
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
    # Packages of another architecture (check:arm64) need it known to dpkg and its index.
    case "$need" in *:arm64*)
        dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64 ;;
    esac
    if ! apt-get install $wait_lock -y -qq $need >/dev/null 2>&1; then
        apt-get $wait_lock update -qq >/dev/null 2>&1
        apt-get install $wait_lock -y -qq $need >/dev/null || { echo "deps: apt-get install$need failed" >&2; exit 1; }
    fi
    exit 0
fi
echo "error: missing system packages; install them with: sudo apt-get install$need" >&2
exit 1

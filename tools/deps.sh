#!/bin/sh
# deps.sh - make sure the system packages clip.c needs are present.
# Usage: tools/deps.sh build|test|fuzz|bench|train|arm
#   build: a C compiler, make, stb_image (+ stb_image_write), SQLite. No BLAS (see below).
#   test: Check, Python 3 with PIL, regex, PyTorch and numpy at /usr/bin/python3, and
#         OpenBLAS's runtime library: every test runs, none is skipped for a missing package.
#   train: Debian's PyTorch, numpy and PIL for /usr/bin/python3 (make demo-model).
#   fuzz: what `make test` needs beyond the unit tests: clang with libFuzzer and the
#         sanitizer runtimes (make fuzz), valgrind (make valgrind).
#   arm: building for aarch64 on another machine and running it there under qemu (make arm64
#        and the arm64 stage of make test): the cross compiler and C library, qemu-user, and
#        Check for arm64 through Debian's multiarch (check:arm64; the arm64 architecture is
#        added to dpkg first), SQLite and OpenBLAS's runtime for arm64 (--gemm openblas under qemu).
#        On an aarch64 machine the native packages do instead.
# Installs what is missing with apt-get when run as root on Debian/Ubuntu; otherwise
# prints one line naming the packages to install and fails.
set -u
need=""
check_pkg() { # package, test command
    if ! sh -c "$2" >/dev/null 2>&1; then need="$need $1"; fi
}
# The build needs no BLAS at all: OpenBLAS is opened at run time (dlopen) for `--gemm
# openblas` only, so only its runtime library matters, and only where that is used.
# this machine's own (not another architecture's, e.g. arm64's for the qemu tests)
have_openblas='for f in /usr/lib/$(cc -dumpmachine)/libopenblas.so.0 /usr/lib/libopenblas.so.0 /usr/lib64/libopenblas.so.0; do [ -e "$f" ] && exit 0; done; exit 1'
check_pkg libstb-dev 'test -f /usr/include/stb/stb_image.h && test -f /usr/include/stb/stb_image_write.h'
check_pkg libsqlite3-dev 'test -f /usr/include/sqlite3.h'
check_pkg make 'command -v make'
check_pkg gcc 'command -v cc'
check_pkg libc6-dev 'test -f /usr/include/stdio.h'
case "${1:-build}" in
    build) sh -c "$have_openblas" >/dev/null 2>&1 ||
               echo "deps: note: OpenBLAS's runtime library (Debian: libopenblas0) is not installed; clip_run works without it; --gemm openblas needs it, and quantize's GPTQ runs minutes instead of seconds without it" >&2 ;;
    test)  check_pkg check 'test -f /usr/include/check.h'
           check_pkg pkg-config 'command -v pkg-config'
           # the tests compare --gemm openblas with the native kernels
           check_pkg libopenblas0 "$have_openblas"
           # tests/test_demo.py (TorchAgreement) and tests/test_convert.py (TorchWritten)
           check_pkg python3-torch '/usr/bin/python3 -c "import torch"'
           check_pkg python3-numpy '/usr/bin/python3 -c "import numpy"'
           check_pkg python3 'command -v python3'
           check_pkg unicode-data 'test -f /usr/share/unicode/UnicodeData.txt'
           check_pkg python3-pil '/usr/bin/python3 -c "import PIL"'
           check_pkg python3-regex '/usr/bin/python3 -c "import regex"'
           # tests/test_search.py: drawn images (tools/demo_world.py), numpy.load of export,
           # the HTML page rendered headless, and the GNU parallel sharding recipe
           check_pkg python3-numpy '/usr/bin/python3 -c "import numpy"'
           check_pkg chromium 'command -v chromium'
           check_pkg parallel 'command -v parallel'
           check_pkg sqlite3 'command -v sqlite3'
           # tests/test_write_blocks.py: the model writers' system calls
           check_pkg strace 'command -v strace' ;;
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
               check_pkg libsqlite3-dev:arm64 'test -f /usr/lib/aarch64-linux-gnu/libsqlite3.so'
               # the tests compare --gemm openblas with the native kernels under qemu too
               check_pkg libopenblas0:arm64 'test -e /usr/lib/aarch64-linux-gnu/libopenblas.so.0'
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

#!/bin/sh
# deps.sh - what the benchmark peers need (bench/README.md); not part of make test.
#   PyTorch + numpy for Debian's /usr/bin/python3 (python3-torch, python3-numpy)
#   ONNX for the same Python (python3-onnx): quantize_onnx.py builds ONNX Runtime's int8 graphs
#   node + npm, and onnxruntime-node in bench/peers/node_modules (npm ci from package-lock.json)
# Installs what is missing with apt-get when run as root on Debian/Ubuntu; otherwise names
# the packages. npm ci is the one step that needs the network (the npm registry). The
# onnxruntime-node install script, which would fetch optional CUDA binaries from outside
# the registry, is told to skip (ONNXRUNTIME_NODE_INSTALL=skip): the CPU build is in the package.
set -u
here=$(cd "$(dirname "$0")" && pwd)
need=""
/usr/bin/python3 -c "import torch, numpy" >/dev/null 2>&1 || need="$need python3-torch python3-numpy"
/usr/bin/python3 -c "import onnx" >/dev/null 2>&1 || need="$need python3-onnx"
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "peers: installing$need" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq $need >/dev/null 2>&1 || {
            apt-get update -qq >/dev/null 2>&1
            apt-get install -y -qq $need >/dev/null || { echo "peers: apt-get install$need failed" >&2; exit 1; }
        }
    else
        echo "error: missing system packages for the peers; install them with: sudo apt-get install$need" >&2
        exit 1
    fi
fi
if [ ! -f "$here/node_modules/onnxruntime-node/package.json" ]; then
    echo "peers: npm ci (onnxruntime-node) in $here" >&2
    (cd "$here" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "peers: npm ci failed (is the npm registry reachable?)" >&2; exit 1; }
fi
exit 0

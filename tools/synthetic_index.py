#!/usr/bin/env python3
"""synthetic_index.py - add N synthetic image vectors to a clip_run index, for scale tests.

    python3 tools/synthetic_index.py INDEX N [--seed S] [--distinct K]

INDEX is an index made by `clip_run index` (docs/INDEX.md); N rows named
/synthetic/NNNNNN.jpg are appended after its last slot, each holding one of K distinct
random unit vectors (vector_of(i) says which), written straight into the `vectors` blocks
the way io/index_store.c lays them out. A search scans them exactly as it scans real
embeddings: the work depends on the count, not the values. Used by the 100,000-vector
search test (tests/test_search.py) and benchmark (bench/search_bench.py).
"""

import argparse
import array
import math
import os
import random
import sqlite3
import sys
import urllib.parse

STRIDE = 7919  # a prime: slot i holds pool[(i * STRIDE) % K], so neighbours differ


def pool_of(dim, distinct, seed):
    """The K distinct unit vectors, as lists of float32-rounded values."""
    rng = random.Random(seed)
    pool = []
    for _ in range(distinct):
        v = [rng.gauss(0, 1) for _ in range(dim)]
        norm = math.sqrt(sum(x * x for x in v))
        pool.append(list(array.array("f", (x / norm for x in v))))
    return pool


def vector_of(i, distinct):
    """Which pool vector slot i holds."""
    return (i * STRIDE) % distinct


def fill(index, n, seed=5, distinct=1000):
    """Append n synthetic rows; returns (first slot, pool) so callers can recompute scores."""
    # mode=rw: a missing INDEX is an error, not a new empty database left behind
    db = sqlite3.connect("file:%s?mode=rw" % urllib.parse.quote(os.path.abspath(index)), uri=True)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    dim, per_block = int(meta["dim"]), int(meta["per_block"])
    pool = pool_of(dim, distinct, seed)
    blobs = []
    for v in pool:
        a = array.array("f", v)
        if sys.byteorder == "big":
            a.byteswap()  # the index stores little-endian float32
        blobs.append(a.tobytes())
    zero = bytes(4 * dim)
    first = (db.execute("SELECT max(id) FROM images").fetchone()[0] or 0) + 1
    first = (first + per_block - 1) // per_block * per_block  # start on a fresh block row
    rows, blocks = [], []
    for b in range(first // per_block, (first + n + per_block - 1) // per_block):
        parts, used = [], 0
        for slot in range(per_block):
            i = b * per_block + slot
            if i >= first + n:
                parts.append(zero)
                continue
            parts.append(blobs[vector_of(i, distinct)])
            used |= 1 << slot
            rows.append((i, synthetic_path(i), 1000, 0))
        blocks.append((b, used, b"".join(parts)))
    db.executemany("INSERT INTO images(id, path, size, mtime_ns) VALUES (?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO vectors(block, used, data) VALUES (?, ?, ?)", blocks)
    db.commit()
    db.close()
    return first, pool


def synthetic_path(i):
    return "/synthetic/%06d.jpg" % i


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index")
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--distinct", type=int, default=1000)
    args = parser.parse_args()
    if args.n < 1 or args.distinct < 1:
        parser.error("N and --distinct must be positive")
    try:
        fill(args.index, args.n, args.seed, args.distinct)
    except (sqlite3.Error, KeyError, ValueError) as e:
        print("synthetic_index.py: error: %s: %s" % (args.index, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

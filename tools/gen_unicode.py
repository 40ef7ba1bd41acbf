#!/usr/bin/env python3
"""gen_unicode.py - generate tokenizer/unicode_tables.c from the Unicode Character Database.

The tokenizer mirrors two Unicode versions at once (see golden-tiny/README.md, "Text"):
  * Python 3.11's str.lower(), str.isspace(), re's \\d and unicodedata NFC: Unicode 14.0;
  * the `regex` module's \\p{L}, \\p{N} and \\s used by CLIP's pattern: Unicode 15.0.
Debian's `unicode-data` package ships one UCD (15.0 at the time of writing). The 14.0 view
is that UCD with every code point whose DerivedAge is newer than 14.0 treated as
unassigned; the pattern view uses the UCD as it is. Both versions are recorded in the
output, and the script refuses a UCD older than either view.

Usage: tools/gen_unicode.py [--ucd /usr/share/unicode] [-o tokenizer/unicode_tables.c]
When the running Python's own Unicode database is 14.0 the tables are checked against it
(str.lower, isspace, isdecimal, unicodedata.combining/normalize, the final-sigma rule);
when the `regex` module is importable the pattern classes are checked against it too.
"""
import argparse
import os
import re
import sys
import unicodedata

LOWER_VIEW = (14, 0)    # Python 3.11: lower(), isspace(), \d, NFC
PATTERN_VIEW = (15, 0)  # regex module: \p{L}, \p{N}, \s
MAX_CP = 0x110000

# Property bits of one code point (tokenizer/unicode.h mirrors these names).
CLASS_OTHER, CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE, CLASS_NONE = 0, 1, 2, 3, 4
F_PY_SPACE = 1 << 3       # str.isspace() (14.0)
F_CASED = 1 << 4          # Cased (14.0), for the final-sigma rule of lower()
F_CASE_IGNORABLE = 1 << 5  # Case_Ignorable (14.0)
F_NFC_QC_NOT_YES = 1 << 6  # NFC_QC is No or Maybe
F_HAS_DECOMP = 1 << 7     # has a canonical decomposition (14.0, Hangul excluded)
F_HAS_LOWER = 1 << 8      # lower() changes it (14.0)
F_DECIMAL = 1 << 9        # str.isdecimal() (14.0), i.e. re's \d

BLOCK_SHIFT = 7


def parse_ranges(path, want_field=None):
    """Yields (first, last, fields) for each data line of a UCD property file."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [x.strip() for x in line.split(";")]
            a, _, b = fields[0].partition("..")
            first = int(a, 16)
            last = int(b, 16) if b else first
            if want_field is None or fields[1] == want_field:
                yield first, last, fields


def file_version(path):
    with open(path, encoding="utf-8") as f:
        m = re.search(r"-(\d+)\.(\d+)\.(\d+)\.txt", f.readline())
    if not m:
        sys.exit(f"gen_unicode: cannot read the version from {path}")
    return tuple(int(x) for x in m.groups())


class UCD:
    def __init__(self, root):
        self.root = root
        self.version = file_version(os.path.join(root, "DerivedAge.txt"))
        if self.version[:2] < PATTERN_VIEW:
            sys.exit(f"gen_unicode: UCD {self.version} is older than {PATTERN_VIEW}")
        self.age = {}
        for first, last, fields in parse_ranges(os.path.join(root, "DerivedAge.txt")):
            v = tuple(int(x) for x in fields[1].split("."))
            for cp in range(first, last + 1):
                self.age[cp] = v
        self.gc, self.ccc, self.bidi, self.decomp, self.lower1 = {}, {}, {}, {}, {}
        range_start = None
        with open(os.path.join(root, "UnicodeData.txt"), encoding="utf-8") as f:
            for line in f:
                p = line.rstrip("\n").split(";")
                cp = int(p[0], 16)
                if p[1].endswith(", First>"):
                    range_start = cp
                    continue
                cps = range(range_start, cp + 1) if p[1].endswith(", Last>") else [cp]
                for c in cps:
                    self.gc[c] = p[2]
                    self.ccc[c] = int(p[3])
                    self.bidi[c] = p[4]
                if p[5]:
                    self.decomp[cp] = p[5]
                if p[13]:
                    self.lower1[cp] = int(p[13], 16)
        self.special_lower = {}
        for _, _, fields in parse_ranges(os.path.join(root, "SpecialCasing.txt")):
            cp = int(fields[0], 16)
            if len(fields) > 4 and fields[4]:
                continue  # conditional mappings: Python ignores all but final sigma
            self.special_lower[cp] = [int(x, 16) for x in fields[1].split()]
        self.core = {}
        for first, last, fields in parse_ranges(os.path.join(root, "DerivedCoreProperties.txt")):
            self.core.setdefault(fields[1], set()).update(range(first, last + 1))
        self.white_space = set()
        for first, last, _ in parse_ranges(os.path.join(root, "PropList.txt"), "White_Space"):
            self.white_space.update(range(first, last + 1))
        self.comp_exclusions = set()
        for first, last, _ in parse_ranges(os.path.join(root, "CompositionExclusions.txt")):
            self.comp_exclusions.update(range(first, last + 1))
        self.full_comp_excl_file = set()
        for first, last, _ in parse_ranges(os.path.join(root, "DerivedNormalizationProps.txt"),
                                           "Full_Composition_Exclusion"):
            self.full_comp_excl_file.update(range(first, last + 1))

    def in_view(self, cp, view):
        a = self.age.get(cp)
        return a is not None and a[:2] <= view


def build(ucd):
    old = lambda cp: ucd.in_view(cp, LOWER_VIEW)

    # Canonical decompositions of the 14.0 view, fully expanded.
    canon = {cp: [int(x, 16) for x in d.split()]
             for cp, d in ucd.decomp.items() if not d.startswith("<") and old(cp)}
    compat = {cp: [int(x, 16) for x in d.split(">", 1)[1].split()] if d.startswith("<")
              else [int(x, 16) for x in d.split()] for cp, d in ucd.decomp.items() if old(cp)}

    def expand(cp, table):
        if cp not in table:
            return [cp]
        return [y for x in table[cp] for y in expand(x, table)]

    full_canon = {cp: expand(cp, canon) for cp in canon}
    ccc = {cp: v for cp, v in ucd.ccc.items() if old(cp) and v}

    # Full_Composition_Exclusion: listed exclusions, singletons, non-starter decompositions.
    excluded = {cp for cp in ucd.comp_exclusions if old(cp)}
    for cp, d in canon.items():
        if len(d) == 1 or ccc.get(cp, 0) or ccc.get(d[0], 0):
            excluded.add(cp)
    file_excl = {cp for cp in ucd.full_comp_excl_file if old(cp)}
    assert excluded == file_excl, "Full_Composition_Exclusion disagrees with the UCD file"
    compose = {}
    for cp, d in canon.items():
        if len(d) == 2 and cp not in excluded:
            compose[(d[0], d[1])] = cp
    second_of_pair = {b for (_, b) in compose}

    lower = {}
    for cp, lc in ucd.lower1.items():
        if old(cp) and lc != cp:
            lower[cp] = [lc]
    for cp, lc in ucd.special_lower.items():
        if old(cp) and lc != [cp]:
            lower[cp] = lc

    cased = {cp for cp in ucd.core["Cased"] if old(cp)}
    ignorable = {cp for cp in ucd.core["Case_Ignorable"] if old(cp)}

    qc_file = set()
    for first, last, fields in parse_ranges(os.path.join(ucd.root, "DerivedNormalizationProps.txt"),
                                           "NFC_QC"):
        qc_file.update(cp for cp in range(first, last + 1) if old(cp))
    props = [0] * MAX_CP
    for cp in range(MAX_CP):
        gc = ucd.gc.get(cp, "Cn") if ucd.in_view(cp, PATTERN_VIEW) else "Cn"
        if cp == 0x0345:
            cls = CLASS_NONE  # IGNORECASE: its case folding is a letter, see README
        elif cp in ucd.white_space:
            cls = CLASS_SPACE
        elif gc[0] == "L":
            cls = CLASS_LETTER
        elif gc[0] == "N":
            cls = CLASS_NUMBER
        else:
            cls = CLASS_OTHER
        f = cls
        if old(cp):
            gc14 = ucd.gc.get(cp, "Cn")
            if gc14 == "Zs" or ucd.bidi.get(cp) in ("WS", "B", "S"):
                f |= F_PY_SPACE
            if gc14 == "Nd":
                f |= F_DECIMAL
            if cp in cased:
                f |= F_CASED
            if cp in ignorable:
                f |= F_CASE_IGNORABLE
            if cp in excluded or cp in second_of_pair or \
                    0x1161 <= cp <= 0x1175 or 0x11A8 <= cp <= 0x11C2:  # Hangul V and T
                f |= F_NFC_QC_NOT_YES
            if cp in canon:
                f |= F_HAS_DECOMP
            if cp in lower:
                f |= F_HAS_LOWER
        props[cp] = (f, ccc.get(cp, 0))

    # Width map of ftfy: U+FF01..U+FFEF to their NFKC forms (14.0 view).
    def nfkc(s):
        d = [y for x in s for y in expand(x, compat)]
        return nfc_compose(canonical_order(d, ccc), compose, ccc)

    width = {}
    for cp in range(0xFF01, 0xFFF0):
        w = nfkc([cp])
        if w != [cp]:
            width[cp] = w
    derived_qc = {cp for cp in range(MAX_CP) if props[cp][0] & F_NFC_QC_NOT_YES}
    assert derived_qc == qc_file, "NFC_QC disagrees with DerivedNormalizationProps.txt"
    # unicode.c skips NFC work below U+0300 and decomposition lookups below U+00C0.
    assert all(props[cp][1] == 0 and not props[cp][0] & F_NFC_QC_NOT_YES for cp in range(0x300))
    assert min(canon) >= 0xC0
    return dict(props=props, full_canon=full_canon, compose=compose, lower=lower,
                ccc=ccc, width=width, excluded=excluded)


def canonical_order(cps, ccc):
    out = list(cps)
    i = 0
    while i < len(out):  # stable sort of each run of non-starters by ccc
        if ccc.get(out[i], 0) == 0:
            i += 1
            continue
        j = i
        while j < len(out) and ccc.get(out[j], 0):
            j += 1
        out[i:j] = sorted(out[i:j], key=lambda c: ccc.get(c, 0))
        i = j
    return out


def nfc_compose(cps, compose, ccc):
    """Canonical composition of canonically ordered text (the NFC algorithm, step 2)."""
    res, starter, last_ccc = [], None, 0
    for c in cps:
        cc = ccc.get(c, 0)
        adjacent = starter is not None and starter == len(res) - 1
        unblocked = adjacent or (starter is not None and 0 < last_ccc < cc)
        if unblocked and (res[starter], c) in compose:
            res[starter] = compose[(res[starter], c)]
            continue
        if cc == 0:
            starter = len(res)
        last_ccc = cc
        res.append(c)
    return res


def self_check(ucd, t):
    if unicodedata.unidata_version.split(".")[:2] != [str(x) for x in LOWER_VIEW]:
        print(f"gen_unicode: Python's Unicode is {unicodedata.unidata_version}, "
              "skipping the check against it", file=sys.stderr)
        return
    props = t["props"]
    bad = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        f, cc = props[cp]
        want_lower = [ord(x) for x in ch.lower()]
        got_lower = t["lower"].get(cp, [cp])
        if want_lower != got_lower and cp != 0x3A3:
            bad.append(("lower", hex(cp)))
        if bool(f & F_PY_SPACE) != ch.isspace():
            bad.append(("isspace", hex(cp)))
        if bool(f & F_DECIMAL) != ch.isdecimal():
            bad.append(("isdecimal", hex(cp)))
        if cc != unicodedata.combining(ch):
            bad.append(("ccc", hex(cp)))
        nfd = [ord(x) for x in unicodedata.normalize("NFD", ch)]
        if not (0xAC00 <= cp <= 0xD7A3) and nfd != t["full_canon"].get(cp, [cp]):
            bad.append(("nfd", hex(cp)))
        # Final sigma: cased/case-ignorable as lower() sees them.
        ign = bool(f & F_CASE_IGNORABLE)
        if not ign:
            final = (ch + "\u03a3").lower()[-1] == "\u03c2"
            if final != bool(f & F_CASED):
                bad.append(("cased", hex(cp)))
        if ("A\u03a3" + ch + "A").lower()[1] == "\u03c2" and ign:
            bad.append(("case_ignorable", hex(cp)))
        if not ign and ("A" + ch + "\u03a3").lower()[-1] == "\u03c2" and not f & F_CASED:
            bad.append(("case_ignorable", hex(cp)))
    for (a, b), c in t["compose"].items():
        if unicodedata.normalize("NFC", chr(a) + chr(b)) != chr(c):
            bad.append(("compose", hex(a), hex(b)))
    for cp, w in t["width"].items():
        if unicodedata.normalize("NFKC", chr(cp)) != "".join(map(chr, w)):
            bad.append(("width", hex(cp)))
    if bad:
        sys.exit(f"gen_unicode: {len(bad)} disagreements with Python: {bad[:20]}")
    print("gen_unicode: tables agree with Python's Unicode " + unicodedata.unidata_version,
          file=sys.stderr)
    try:
        import regex
    except ImportError:
        return
    if regex.match(r"\p{L}", "\ua7cb"):  # a letter new in Unicode 16.0
        print("gen_unicode: this regex module is newer than Unicode 15.0, "
              "skipping the check against it", file=sys.stderr)
        return
    pats = {CLASS_LETTER: regex.compile(r"[\p{L}]", regex.I),
            CLASS_NUMBER: regex.compile(r"[\p{N}]", regex.I),
            CLASS_SPACE: regex.compile(r"\s"),
            CLASS_OTHER: regex.compile(r"[^\s\p{L}\p{N}]", regex.I)}
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        got = [k for k, p in pats.items() if p.match(chr(cp))]
        want = props[cp][0] & 7
        if got != ([want] if want != CLASS_NONE else []):
            bad.append(("pattern", hex(cp)))
    if bad:
        sys.exit(f"gen_unicode: {len(bad)} disagreements with regex: {bad[:20]}")
    print("gen_unicode: pattern classes agree with regex " + regex.__version__, file=sys.stderr)


def c_array(ctype, name, values, per_line=16, fmt=str):
    out = [f"const {ctype} {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        out.append("    " + ", ".join(fmt(v) for v in values[i:i + per_line]) + ",")
    out.append("};")
    return "\n".join(out)


def emit(ucd, t, path):
    # Two-level property table: block index per 2^BLOCK_SHIFT code points, then a record
    # index per code point; identical blocks and identical records are shared.
    records, record_index = [], {}
    per_cp = []
    for p in t["props"]:
        if p not in record_index:
            record_index[p] = len(records)
            records.append(p)
        per_cp.append(record_index[p])
    assert len(records) <= 256
    size = 1 << BLOCK_SHIFT
    blocks, block_index, stage1 = [], {}, []
    for b in range(0, MAX_CP, size):
        blk = tuple(per_cp[b:b + size])
        if blk not in block_index:
            block_index[blk] = len(blocks)
            blocks.append(blk)
        stage1.append(block_index[blk])
    assert len(blocks) < 65536
    stage2 = [x for blk in blocks for x in blk]

    lower_simple = sorted((cp, v[0]) for cp, v in t["lower"].items() if len(v) == 1)
    lower_multi = sorted((cp, v) for cp, v in t["lower"].items() if len(v) > 1)
    assert all(len(v) <= 3 for _, v in lower_multi)
    decomp = sorted(t["full_canon"].items())
    pool, offs = [], []
    for cp, d in decomp:
        offs.append(len(pool) << 3 | len(d))
        pool.extend(d)
    max_decomp = max(len(d) for _, d in decomp)
    comp = sorted(((a << 21 | b), c) for (a, b), c in t["compose"].items())
    width = [t["width"].get(cp, [0]) + [0] * (2 - len(t["width"].get(cp, [0])))
             for cp in range(0xFF01, 0xFFF0)]
    assert all(len(w) == 2 for w in width)

    v14 = ".".join(map(str, LOWER_VIEW))
    v15 = ".".join(map(str, PATTERN_VIEW))
    ucdv = ".".join(map(str, ucd.version))
    parts = [f"""/* unicode_tables.c - GENERATED by tools/gen_unicode.py; do not edit.
 *
 * Source: the Unicode Character Database {ucdv} (Debian unicode-data).
 * Views: lower(), isspace(), isdecimal(), canonical decomposition/composition and ccc
 * follow Unicode {v14} (Python 3.11): code points newer than {v14} are unassigned there.
 * The pattern classes (letter, number, white space) follow Unicode {v15} (regex module).
 * Layout and bit meanings: tokenizer/unicode.h.
 */
#include "unicode.h"

const char uni_ucd_version[] = "{ucdv}";
const char uni_lower_view[] = "{v14}";
const char uni_pattern_view[] = "{v15}";
""",
             c_array("uint16_t", "uni_stage1", stage1, 24),
             c_array("uint8_t", "uni_stage2", stage2, 32),
             c_array("uni_record", "uni_records", records, 8,
                     lambda r: "{%d, %d}" % r),
             c_array("uint32_t", "uni_lower_from", [a for a, _ in lower_simple], 12, hex),
             c_array("uint32_t", "uni_lower_to", [b for _, b in lower_simple], 12, hex),
             f"const size_t uni_lower_count = {len(lower_simple)};",
             c_array("uni_multi_lower", "uni_lower_multi", lower_multi, 4,
                     lambda e: "{%s, %d, {%s}}" % (hex(e[0]), len(e[1]),
                                                   ", ".join(map(hex, e[1])))),
             f"const size_t uni_lower_multi_count = {len(lower_multi)};",
             c_array("uint32_t", "uni_decomp_cp", [cp for cp, _ in decomp], 12, hex),
             c_array("uint16_t", "uni_decomp_off", offs, 16),
             c_array("uint32_t", "uni_decomp_pool", pool, 12, hex),
             f"const size_t uni_decomp_count = {len(decomp)};",
             c_array("uint64_t", "uni_comp_key", [k for k, _ in comp], 8, hex),
             c_array("uint32_t", "uni_comp_val", [v for _, v in comp], 12, hex),
             f"const size_t uni_comp_count = {len(comp)};",
             c_array("uint32_t", "uni_width_ff01", [x for w in width for x in w], 12, hex),
             ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(parts))
    print(f"gen_unicode: {path}: {len(records)} records, {len(blocks)} blocks, "
          f"max decomposition {max_decomp}, {len(comp)} compositions", file=sys.stderr)
    return max_decomp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ucd", default="/usr/share/unicode")
    ap.add_argument("-o", "--output", default="tokenizer/unicode_tables.c")
    args = ap.parse_args()
    ucd = UCD(args.ucd)
    tables = build(ucd)
    self_check(ucd, tables)
    emit(ucd, tables, args.output)


if __name__ == "__main__":
    main()

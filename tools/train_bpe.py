#!/usr/bin/env python3
"""train_bpe.py - learn a small CLIP-style byte-level BPE vocabulary from a text corpus.

    python3 tools/train_bpe.py corpus.txt -n 400 -o merges.txt

The scheme is CLIP's: text is cleaned (HTML unescape, whitespace runs collapsed, lowercase),
split into words by CLIP's pre-tokenization pattern, each word's UTF-8 bytes are mapped to
printable characters (bytes_to_unicode) and the last symbol gets the suffix '</w>'. Then,
repeatedly, the most frequent adjacent symbol pair (ties: the smallest pair as strings) is
merged, until n merges are learned or every word is one symbol.

The output is a merges file in CLIP's format: '#version: 0.2', then one 'left right' line per
merge, rank order. The vocabulary CLIP builds from it (and tools/convert.py stores) is
    [256 byte symbols] + [256 byte symbols + '</w>'] + [one token per merge] + [sot, eot]
so it has 512 + n_merges + 2 ids, and any text still tokenizes: unknown words fall back to
smaller pieces, down to single bytes.

The Tokenizer class applies such a merges file exactly as the reference tokenizer does (for
the ASCII captions used in training; the stdlib `re` stands in for the `regex` module's
\\p{L} / \\p{N} classes). Standard library only.
"""
import argparse
import collections
import html
import re
import sys

# CLIP's pattern; [^\W\d_] is "a letter" and \d "a digit" in Python's re.
WORD_PATTERN = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
    re.IGNORECASE)
SOT, EOT = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    """Byte value -> printable character. Printable Latin-1 bytes map to themselves; the
    others (controls, space, soft hyphen, ...) to U+0100 onwards, in byte order. The dict's
    order (printable ones first) is the order of the first 256 vocabulary entries."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: chr(b) for b in printable}
    n_extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n_extra)
            n_extra += 1
    return table


def clean(text):
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip().lower()


def words_of(text):
    """Cleaned text -> list of words, each a tuple of byte symbols ending in '</w>'."""
    byte_char = bytes_to_unicode()
    out = []
    for token in WORD_PATTERN.findall(clean(text)):
        symbols = [byte_char[b] for b in token.encode("utf-8")]
        symbols[-1] += "</w>"
        out.append(tuple(symbols))
    return out


def learn_merges(lines, n_merges):
    """Returns the merges [(left, right), ...] in rank order."""
    word_counts = collections.Counter()
    for line in lines:
        word_counts.update(words_of(line))
    words = {w: list(w) for w in word_counts}          # word -> its current symbols
    merges = []
    while len(merges) < n_merges:
        pair_counts = collections.Counter()
        for w, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += word_counts[w]
        if not pair_counts:
            break                                        # every word is a single symbol
        best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        for w, symbols in words.items():
            i, merged = 0, []
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(joined)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            words[w] = merged
    return merges


def write_merges(merges, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for left, right in merges:
            f.write("%s %s\n" % (left, right))


def read_merges(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0].startswith("#version"), "%s: not a merges file" % path
    return [tuple(line.split()) for line in lines[1:] if line.strip()]


class Tokenizer:
    """CLIP's encoder for a merges list: text -> [sot, ids..., eot, 0, ...]."""

    def __init__(self, merges):
        self.byte_char = bytes_to_unicode()
        symbols = list(self.byte_char.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
        self.vocab = vocab
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: r for r, m in enumerate(merges)}
        self.sot, self.eot = self.ids[SOT], self.ids[EOT]
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        symbols = [self.byte_char[b] for b in token.encode("utf-8")]
        symbols[-1] += "</w>"
        while len(symbols) > 1:
            pairs = set(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            i, merged = 0, []
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self.cache[token] = symbols
        return symbols

    def encode(self, text, context_length):
        ids = [self.sot]
        for token in WORD_PATTERN.findall(clean(text)):
            if token in (SOT, EOT):
                ids.append(self.ids[token])
            else:
                ids += [self.ids[s] for s in self.bpe(token)]
        ids.append(self.eot)
        if len(ids) > context_length:
            ids = ids[:context_length - 1] + [self.eot]
        return ids + [0] * (context_length - len(ids))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", help="text file, one caption per line")
    ap.add_argument("-n", "--merges", type=int, default=400, help="number of merges to learn")
    ap.add_argument("-o", "--output", required=True, help="merges file to write")
    args = ap.parse_args(argv)
    with open(args.corpus, encoding="utf-8") as f:
        lines = f.read().splitlines()
    merges = learn_merges(lines, args.merges)
    write_merges(merges, args.output)
    print("%d merges -> %s (vocab %d)" % (len(merges), args.output, 512 + len(merges) + 2))


if __name__ == "__main__":
    sys.exit(main())

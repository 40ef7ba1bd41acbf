"""bpe_vocab.py - CLIP's byte-level BPE vocabulary, as the .clip tokenizer section stores it.

Two sources give the same thing:
  * a merges file in CLIP's format (bpe_simple_vocab_16e6.txt.gz, or plain text): a
    '#version' header line, then one merge "left right" per line. The vocabulary is built
    as the reference does: the 256 byte symbols, the same with '</w>', one token per merge
    (left + right), '<|startoftext|>', '<|endoftext|>'. With V tokens in the model, the
    first V - 2*256 - 2 merges are used.
  * Hugging Face's vocab.json (token -> id) + merges.txt (same merge format).
Both yield Vocab(tokens [id -> string], merges [(left id, right id, merged id)], sot, eot).
Tokens are in the byte-to-unicode form (byte 0x20 is 'Ġ').
"""

import gzip
import json

from tensor_data import FormatError

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
WORD_END = "</w>"


def byte_symbols():
    """The reference's byte -> printable character table, in its order: the bytes that are
    printable as themselves first ('!'..'~', '¡'..'¬', '®'..'ÿ'), then every other byte
    mapped to U+0100 onwards. Returns [(byte, char)]."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    table = [(b, chr(b)) for b in printable]
    n_extra = 0
    for b in range(256):
        if b not in printable:
            table.append((b, chr(256 + n_extra)))
            n_extra += 1
    return table


class Vocab:
    def __init__(self, tokens, merges, sot_id, eot_id, source, files=None):
        self.tokens = tokens
        self.merges = merges
        self.sot_id = sot_id
        self.eot_id = eot_id
        self.source = source                          # for messages
        self.files = files if files is not None else [source]  # the files it was read from


def _read_text(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (OSError, EOFError) as e:
        raise FormatError("%s: cannot read: %s" % (path, getattr(e, "strerror", None) or e))
    except UnicodeDecodeError:
        raise FormatError("%s: not UTF-8 text" % path)


def read_merges(path):
    """The merge pairs of a merges file (header line skipped), in rank order."""
    lines = _read_text(path).split("\n")
    # The reference drops the first line unread; it is a '#version' header (in the .gz
    # file preceded by gzip's stored file name).
    if "#version" not in lines[0]:
        raise FormatError("%s: the first line is not a '#version' header: %r" % (path, lines[0][:60]))
    lines = lines[1:]
    while lines and lines[-1] == "":
        lines.pop()
    merges = []
    for number, line in enumerate(lines, start=2):
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise FormatError("%s: line %d is not a merge 'left right': %r" % (path, number, line[:60]))
        merges.append((parts[0], parts[1]))
    return merges


def _ids_of_merges(merges, token_ids, path):
    out = []
    for rank, (left, right) in enumerate(merges):
        ids = (token_ids.get(left), token_ids.get(right), token_ids.get(left + right))
        if None in ids:
            missing = [s for s, i in zip((left, right, left + right), ids) if i is None][0]
            raise FormatError("%s: merge %d (%s %s): token %r is not in the vocabulary"
                              % (path, rank, left, right, missing))
        out.append(ids)
    return out


def vocab_from_merges_file(path, n_vocab):
    """CLIP's construction: n_vocab tokens from the first n_vocab - 514 merges of `path`."""
    n_merges = n_vocab - 2 * 256 - 2
    if n_merges < 0:
        raise FormatError("a vocabulary of %d tokens is too small for byte-level BPE (needs >= 514)" % n_vocab)
    merges = read_merges(path)
    if len(merges) < n_merges:
        raise FormatError("%s has %d merges, but the model's %d tokens need %d"
                          % (path, len(merges), n_vocab, n_merges))
    merges = merges[:n_merges]
    symbols = [c for _, c in byte_symbols()]
    tokens = symbols + [s + WORD_END for s in symbols] + [a + b for a, b in merges] + [SOT, EOT]
    token_ids = {}
    for i, t in enumerate(tokens):
        if t in token_ids:
            raise FormatError("%s: merge %d produces %r, which is already a token"
                              % (path, i - 512, t))
        token_ids[t] = i
    return Vocab(tokens, _ids_of_merges(merges, token_ids, path), n_vocab - 2, n_vocab - 1, path)


def vocab_from_hf(vocab_json, merges_txt, n_vocab):
    """Hugging Face's vocab.json (ids as given) + merges.txt; checks every id and merge."""
    try:
        token_ids = json.loads(_read_text(vocab_json),
                               object_pairs_hook=lambda pairs: _unique(pairs, vocab_json))
    except ValueError as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError("%s: not valid JSON: %s" % (vocab_json, e))
    if not isinstance(token_ids, dict):
        raise FormatError("%s: not a JSON object" % vocab_json)
    if len(token_ids) != n_vocab:
        raise FormatError("%s has %d tokens, but the model's token embedding has %d rows"
                          % (vocab_json, len(token_ids), n_vocab))
    tokens = [None] * n_vocab
    for token, i in token_ids.items():
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n_vocab or tokens[i] is not None:
            raise FormatError("%s: token %r has id %r; ids must be 0..%d, each used once"
                              % (vocab_json, token, i, n_vocab - 1))
        tokens[i] = token
    for special in (SOT, EOT):
        if special not in token_ids:
            raise FormatError("%s: %s is missing" % (vocab_json, special))
    merges = read_merges(merges_txt)
    return Vocab(tokens, _ids_of_merges(merges, token_ids, merges_txt),
                 token_ids[SOT], token_ids[EOT], "%s + %s" % (vocab_json, merges_txt),
                 [vocab_json, merges_txt])


def _unique(pairs, path):
    result = dict(pairs)
    if len(result) != len(pairs):
        raise FormatError("%s: a token appears twice" % path)
    return result


def check_vocab(vocab):
    """Every token must be byte symbols (optionally ending in '</w>') or a special token."""
    alphabet = set(c for _, c in byte_symbols())
    for i, token in enumerate(vocab.tokens):
        if token in (SOT, EOT):
            continue
        body = token[:-len(WORD_END)] if token.endswith(WORD_END) else token
        if not all(c in alphabet for c in (body or token)) or not token:
            raise FormatError("%s: token %d %r is not made of byte symbols" % (vocab.source, i, token))

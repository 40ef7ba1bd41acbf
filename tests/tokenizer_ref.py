"""tokenizer_ref.py - a Python reference of CLIP's tokenizer for differential tests and the
benchmark.

It follows OpenAI CLIP's simple_tokenizer.py: ftfy.fix_text, html.unescape twice, strip,
collapse \\s runs, lower(), the regex pattern, byte-level BPE. Unicode behaviour comes from
Python itself (str.lower, unicodedata, html) and from the `regex` module, which this
module requires. ftfy is used when installed; otherwise `fix_text` below re-states the
deterministic fixes of ftfy 6.3.1 with the standard library (no mojibake heuristic).
"""
import html
import html.entities
import re
import unicodedata

import regex

try:  # pragma: no cover - optional
    import ftfy as _ftfy
except ImportError:
    _ftfy = None


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# ---- ftfy's deterministic fixes, restated ------------------------------------------------

def _build_entities():
    entities = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";"):
            entities["&" + name] = char
            if name == name.lower():
                upper = "&" + name.upper()
                if html.unescape(upper) == upper:
                    entities[upper] = char.upper()
    return entities


_ENTITIES = _build_entities()
_ENTITY_RE = re.compile(r"&#?[0-9A-Za-z]{1,24};")
_C1_RE = re.compile(r"[\x80-\x9f]")
_SINGLE_QUOTE_RE = re.compile("[\u02bc\u2018-\u201b]")
_DOUBLE_QUOTE_RE = re.compile("[\u201c-\u201f]")
_ANSI_RE = re.compile("\033\\[((?:\\d|;)*)([a-zA-Z])")
_LIGATURES = {ord(k): v for k, v in {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž",
    "ǆ": "dž", "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj", "ﬀ": "ff",
    "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st"}.items()}
_WIDTH = {0x3000: " "}
_WIDTH.update({i: unicodedata.normalize("NFKC", chr(i)) for i in range(0xFF01, 0xFFF0)
               if unicodedata.normalize("NFKC", chr(i)) != chr(i)})
_CONTROLS = dict.fromkeys(list(range(0, 9)) + [0x0B] + list(range(0x0E, 0x20)) + [0x7F] +
                          list(range(0x206A, 0x2070)) + [0xFEFF] + list(range(0xFFF9, 0xFFFD)))


def _unescape_fixup(m):
    text = m.group(0)
    if text in _ENTITIES:
        return _ENTITIES[text]
    if text.startswith("&#"):
        unescaped = html.unescape(text)
        return text if ";" in unescaped else unescaped
    return text


def _c1_fixup(m):
    try:
        return m.group(0).encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:
        return m.group(0)  # 81 8D 8F 90 9D: undefined in Windows-1252, kept


def _fix_segment(text, unescape):
    while True:
        orig = text
        if unescape:
            text = _ENTITY_RE.sub(_unescape_fixup, text)
        text = _C1_RE.sub(_c1_fixup, text)
        text = text.translate(_LIGATURES).translate(_WIDTH)
        text = _SINGLE_QUOTE_RE.sub("'", _DOUBLE_QUOTE_RE.sub('"', text))
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n") \
            .replace("\u2029", "\n").replace("\u0085", "\n")
        text = _ANSI_RE.sub("", text)
        text = text.translate(_CONTROLS)
        text = unicodedata.normalize("NFC", text)
        if text == orig:
            return text


def fix_text_stdlib(text):
    out, pos, unescape = [], 0, True
    while pos < len(text):
        end = text.find("\n", pos) + 1 or len(text)
        end = min(end, pos + 1000000)
        segment = text[pos:end]
        if "<" in segment:
            unescape = False
        out.append(_fix_segment(segment, unescape))
        pos = end
    return "".join(out)


def fix_text(text):
    return _ftfy.fix_text(text) if _ftfy else fix_text_stdlib(text)


# ---- the tokenizer -------------------------------------------------------------------------

class SimpleTokenizer:
    PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
                        r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)

    def __init__(self, merges_path, n_merges=48894, fixer=fix_text):
        self.fixer = fixer
        self.byte_encoder = bytes_to_unicode()
        with open(merges_path, encoding="utf-8") as f:
            merges = f.read().split("\n")[1:n_merges + 1]
        merges = [tuple(m.split()) for m in merges]
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        out = " ".join(word)
        if len(self.cache) < 100000:
            self.cache[token] = out
        return out

    def clean(self, text):
        text = html.unescape(html.unescape(self.fixer(text))).strip()
        return regex.sub(r"\s+", " ", text).strip().lower()

    def encode(self, text):
        ids = []
        for token in self.PAT.findall(self.clean(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    def tokenize(self, text, context_length=77):
        """clip.tokenize(text, truncate=True) up to the final eot (no padding)."""
        ids = [self.encoder["<|startoftext|>"]] + self.encode(text) + \
            [self.encoder["<|endoftext|>"]]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = self.encoder["<|endoftext|>"]
        return ids


def regex_unicode_is_15():
    """True if the regex module's tables are Unicode 15.0 (as the reference's were)."""
    return bool(regex.match(r"\p{L}", "\U00011f04")) and not regex.match(r"\p{L}", "\ua7cb")

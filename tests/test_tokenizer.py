"""test_tokenizer.py - the C tokenizer against a Python reference on random text.

Thousands of random strings mixing scripts, emoji, entities, controls, odd white space,
combining marks and invalid UTF-8 go through the C tokenizer (bench/tokenizer/tok_bench.c,
compiled here with the tokenizer sources) and through tests/tokenizer_ref.py, which
follows simple_tokenizer.py with Python's own Unicode and html code and the `regex`
module. Skipped when `regex` is not installed (it is an optional reference).
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MERGES = os.path.join(ROOT, "..", "shared", "clip", "golden-tiny", "merges.txt")
sys.path.insert(0, HERE)

try:
    import regex  # noqa: F401
    import tokenizer_ref
except ImportError:
    tokenizer_ref = None

PIECES = [
    "a photo of", " THE ", "Dog's", "it'S", "we'll", "I'D", "don't", "'re", "'ve", "'m",
    "ſ", "'ſ", "<|startoftext|>", "<|endoftext|>", "<|ſtartoftext|>", "<|ENDOFTEXT|>", "<|",
    "&amp;", "&AMP;", "&amp", "&lt;", "&gt", "&eacute;", "&EACUTE;", "&SZLIG;", "&nTILDE;",
    "&notin;", "&notit;", "&not", "&#65;", "&#x41;", "&#X1F600;", "&#0;", "&#13;", "&#128;",
    "&#x80", "&#59;", "&#1114112;", "&#xD800;", "&#99999999999999999999;", "&#;", "&#x;",
    "&amp;lt;", "&amp;amp;amp;", "&CounterClockwiseContourIntegral;", "&ThickSpace;",
    "&nvlt;", "&copy", "&COPY;", "&frac12;", "&FRAC12;", "&#x1d;", "&#8232;", "&",
    "\r\n", "\r", "\n", "\u2028", "\u2029", "\x85", "\x1b[31m", "\x1b[1;٣m", "\x1b[", "\x1b",
    "\x00", "\x07", "\x0b", "\x0c", "\x1c", "\x7f", "\x80", "\x81", "\x8d", "\x91", "\x93",
    "\x9d", "\x9f", "\ufeff", "\ufff9", "\ufffc", "\u206a", "\u200b", "\u200d", "\u00ad",
    "ﬁ", "ﬃ", "ﬅ", "Ĳ", "ŉ", "Ǆ", "ǅ", "ǲ", "\u3000", "ＡＢＣ１２３", "ｶﾞ", "ﾟ", "￣", "￤",
    "‘", "’", "‚", "‛", "“", "”", "„", "‟", "ʼ", "\u00a0", "\u1680", "\u2003", "\u202f",
    "\u205f", "\u180e", "\t", "  ", "e\u0301", "\u0301", "A\u030a", "\u0345", "x\u0345y",
    "ᾂ", "\u1f00\u0345", "Σ", "ΟΔΟΣ", "ΣΑΣ.", "Σ'", "A\u03a3\u00ad", "İstanbul", "ǅ", "K",
    "Å", "ß", "ẞ", "Straße", "ﬀ", "ꭰ", "Ꭰ", "한국어", "\u1100\u1161\u11a8", "\u1100\u1161",
    "가\u11a8", "中文字", "日本語のテキスト", "Привет мир", "Ελληνικά", "مرحبا بالعالم",
    "नमस्ते दुनिया", "ภาษาไทย", "עברית", "😀", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "🇫🇷", "❤️",
    "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f", "123", "٣",
    "²", "½", "Ⅻ", "①", "\U00011f04", "\U0001e4d0", "\U00031350", "\U0001fae8", "\U0010ffff",
    "\ue000", "\ufdd0", "\uffff", "...", "!!!", "--", "<b>", "</w>", "a<b", "@user", "#tag",
]
INVALID_UTF8 = [b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xff", b"\x80\x80", b"\xe0\x80",
                b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82"]


def random_char(rng, assigned_only):
    while True:
        cp = rng.choice([rng.randrange(0x80, 0x800), rng.randrange(0x800, 0x10000),
                         rng.randrange(0x10000, 0x32000), rng.randrange(0, 0x110000)])
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if assigned_only and unicodedata.category(chr(cp)) == "Cn":
            continue
        return chr(cp)


def random_text(rng, assigned_only):
    parts = []
    for _ in range(rng.randrange(1, 25)):
        r = rng.random()
        if r < 0.55:
            parts.append(rng.choice(PIECES))
        elif r < 0.8:
            parts.append(random_char(rng, assigned_only))
        elif r < 0.9:
            parts.append(" ")
        else:
            parts.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                 for _ in range(rng.randrange(1, 12))))
    data = "".join(parts).encode("utf-8")
    if rng.random() < 0.15:
        cut = rng.randrange(len(data) + 1)
        data = data[:cut] + rng.choice(INVALID_UTF8) + data[cut:]
    return data


def build_driver(workdir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise unittest.SkipTest("no C compiler")
    srcs = [os.path.join(ROOT, "bench", "tokenizer", "tok_bench.c"),
            os.path.join(ROOT, "io", "error.c")]
    tokdir = os.path.join(ROOT, "tokenizer")
    srcs += sorted(os.path.join(tokdir, f) for f in os.listdir(tokdir) if f.endswith(".c"))
    exe = os.path.join(workdir, "tok_bench")
    subprocess.run([cc, "-std=c11", "-O1", "-D_GNU_SOURCE", "-o", exe] + srcs, check=True)
    return exe


def c_tokenize(exe, texts, workdir):
    path = os.path.join(workdir, "texts.hex")
    with open(path, "w") as f:
        for t in texts:
            f.write(t.hex() + "\n")
    out = subprocess.run([exe, MERGES, path, "--hex"], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    return [[int(x) for x in line.split()] for line in out]


@unittest.skipIf(tokenizer_ref is None, "the regex module is not installed; needs Debian package python3-regex")
class DifferentialTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MERGES):
            raise AssertionError(f"missing reference data {MERGES}")
        cls.workdir = tempfile.mkdtemp(prefix="tok-diff-")
        cls.exe = build_driver(cls.workdir)
        # The reference's regex tables were Unicode 15.0; with another version, keep to
        # characters both agree on (assigned in Python's own 14.0 database).
        cls.assigned_only = not tokenizer_ref.regex_unicode_is_15()
        cls.ref = tokenizer_ref.SimpleTokenizer(MERGES, fixer=tokenizer_ref.fix_text_stdlib)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def compare(self, texts):
        got = c_tokenize(self.exe, texts, self.workdir)
        self.assertEqual(len(got), len(texts))
        bad = []
        for data, ids in zip(texts, got):
            want = self.ref.tokenize(data.decode("utf-8", errors="replace"))
            if ids != want:
                bad.append((data, ids, want))
        for data, ids, want in bad[:5]:
            print(f"\n{data!r}\n  got  {ids}\n  want {want}", file=sys.stderr)
        self.assertEqual(len(bad), 0, f"{len(bad)} of {len(texts)} texts differ")

    def test_random_mixed_text(self):
        rng = random.Random(20240601)
        self.compare([random_text(rng, self.assigned_only) for _ in range(4000)])

    def test_multiline_and_long(self):
        rng = random.Random(7)
        texts = []
        for _ in range(40):
            lines = [random_text(rng, self.assigned_only) for _ in range(rng.randrange(2, 30))]
            texts.append(b"\n".join(lines))
        # A long line with a '<' late (entities before it decoded, after it not), and
        # long words of one class.
        texts.append(b"&eacute; " * 5000 + b"<" + b" &eacute;" * 10)
        texts.append("ab".encode() * 60000)
        texts.append("Σ\u0301".encode() * 20000)
        # ftfy fixes 1,000,000-character pieces separately: nothing composes or decodes
        # across the cut, and '\n' right at the limit ends a piece normally.
        pad = " " * 999999
        texts.append((pad + "e\u0301 x").encode())
        texts.append((pad[:-3] + "&EACUTE; &eacute;").encode())
        texts.append((pad[:-1] + "\ne\u0301").encode())
        texts.append((pad + "\u0301\u0323 \r\n&SZLIG;").encode())
        self.compare(texts)

    def test_ftfy_port_matches_ftfy(self):
        """When the real ftfy is installed, the stdlib restatement must agree with it
        wherever ftfy's mojibake heuristic does nothing."""
        if tokenizer_ref._ftfy is None:
            self.skipTest("ftfy is not installed (not packaged by Debian 12: pip install ftfy)")
        ftfy = tokenizer_ref._ftfy
        rng = random.Random(3)
        for _ in range(2000):
            text = random_text(rng, True).decode("utf-8", errors="replace")
            real = ftfy.fix_text(text)
            if ftfy.fix_text(text, fix_encoding=False) != real:
                continue  # mojibake repair, out of scope
            self.assertEqual(tokenizer_ref.fix_text_stdlib(text), real, repr(text))


if __name__ == "__main__":
    unittest.main()

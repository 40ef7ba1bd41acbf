"""Image search (issue 14): index, search, export, merge and sharding, end to end.

A folder of 320 drawn "colour shape" images (8 colours x 4 shapes x 10, nested folders, five
formats) and 4 broken files is made by tests/make_search_folder.py (numpy + PIL via
/usr/bin/python3). With the bundled demo model:
  - index skips the broken files (one warning each), ends with the summary line;
  - search --json puts an image of the asked class first for >= 90% of the 32 queries, and
    its ranking and scores equal a brute-force cosine ranking of embed-image / embed-text;
  - adding 5 files encodes only those 5, deleting drops them, touching re-encodes;
  - SIGKILL in the middle of an update leaves the old entries intact and a re-run finishes;
  - export loads in numpy and equals embed-image; shards made by GNU parallel and merged
    equal one index; --html renders in headless Chromium with visible thumbnails;
  - search over 100,000 stored 512-d vectors returns the brute-force top 100 (its speed,
    < 50 ms beyond the text encoding, is measured by bench/search_bench.py).
"""
import array
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

from harness import CLIP_RUN, ROOT, Npy, golden_model, run, tmpdir

sys.path.insert(0, os.path.join(ROOT, "tools"))
import synthetic_index  # noqa: E402

MODEL = os.path.join(ROOT, "weights", "demo.clip")
SYSTEM_PYTHON = "/usr/bin/python3"   # Debian's, with numpy and PIL
COLORS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star"]
QUERIES = ["%s %s" % (c, s) for c in COLORS for s in SHAPES]


def make_folder(out, per_class=10, seed=1234, prefix="img", broken=4):
    proc = subprocess.run([SYSTEM_PYTHON, os.path.join(ROOT, "tests", "make_search_folder.py"), out,
                           "--per-class", str(per_class), "--seed", str(seed), "--prefix", prefix,
                           "--broken", str(broken)], stdout=subprocess.PIPE, check=True)
    rows = [line.split("\t") for line in proc.stdout.decode().splitlines()]
    return [(p, c, s) for p, c, s in rows]


def summary(proc):
    lines = proc.stderr.decode().strip().splitlines()
    return lines[-1] if lines else ""


def counts(line):
    """'index: 5 added, 0 changed, 0 removed, 4 skipped, 325 total' -> dict."""
    assert line.startswith("index: "), line
    return {k: int(v) for v, k in (part.split() for part in line[7:].split(", "))}


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


class Search(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert os.path.exists(MODEL), MODEL
        cls.tmp = tmpdir()
        cls.folder = os.path.join(cls.tmp.name, "photos")
        cls.files = make_folder(cls.folder)
        cls.good = sorted(os.path.realpath(p) for p, c, s in cls.files if c)
        cls.index = os.path.join(cls.tmp.name, "photos.clipindex")
        cls.first = run("index", MODEL, cls.folder, "-o", cls.index)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def search_json(self, index, *queries, k=None):
        args = ["search", MODEL, index, *queries, "--json"] + (["-k", str(k)] if k else [])
        return [json.loads(line) for line in run(*args).stdout.decode().splitlines()]

    # ---- acceptance 1 ----
    def test_first_index_summary_and_warnings(self):
        err = self.first.stderr.decode().strip().splitlines()
        self.assertEqual(counts(err[-1]), {"added": 320, "changed": 0, "removed": 0, "skipped": 4, "total": 320})
        warnings = [line for line in err[:-1] if line.startswith("clip_run: warning: ")]
        self.assertEqual(len(warnings), 4, err)
        self.assertEqual(len(err), 5, "no progress bar when stderr is not a terminal: %r" % err)

    def test_text_queries_find_their_class(self):
        results = self.search_json(self.index, *QUERIES, k=5)
        self.assertEqual([r["query"] for r in results], QUERIES)
        hits = 0
        for q, r in zip(QUERIES, results):
            self.assertEqual(len(r["results"]), 5)
            c, s = q.split()
            hits += "_%s_%s_" % (c, s) in os.path.basename(r["results"][0]["path"])
        sys.stderr.write("\nsearch: %d/%d queries find their class first\n" % (hits, len(QUERIES)))
        self.assertGreaterEqual(hits / len(QUERIES), 0.9)

    def test_ranking_equals_brute_force(self):
        emb_i, emb_t = self.path("bf_images.npy"), self.path("bf_texts.npy")
        run("embed-image", MODEL, *self.good, "-o", emb_i, "--batch", "16")
        run("embed-text", MODEL, *QUERIES[:8], "-o", emb_t)
        images, texts = Npy(emb_i), Npy(emb_t)
        results = self.search_json(self.index, *QUERIES[:8], k=len(self.good))
        for qi, r in enumerate(results):
            t = texts.row(qi)
            brute = sorted(((dot(images.row(i), t), p) for i, p in enumerate(self.good)), key=lambda x: (-x[0], x[1]))
            got = [(h["score"], h["path"]) for h in r["results"]]
            self.assertEqual(len(got), len(brute))
            for rank, ((gs, gp), (bs, bp)) in enumerate(zip(got, brute)):
                self.assertAlmostEqual(gs, bs, delta=2e-6, msg=(r["query"], rank))
                if gp != bp:   # only a near-tie may swap
                    self.assertLess(abs(gs - bs), 1e-5, (r["query"], rank, gp, bp))
            self.assertEqual([p for _, p in got][:10], [p for _, p in brute][:10])

    def test_plain_output_and_image_query(self):
        out = run("search", MODEL, self.index, "red circle", "-k", "3").stdout.decode().splitlines()
        self.assertEqual(len(out), 3)
        for line in out:
            score, path = line.split("\t")
            self.assertTrue(-1 <= float(score) <= 1 and os.path.isabs(path))
        query = self.good[0]
        r = self.search_json(self.index, "--image", query, k=1)
        self.assertEqual(r[0]["query"], query)
        self.assertEqual(r[0]["results"][0]["path"], query)   # an image finds itself
        self.assertAlmostEqual(r[0]["results"][0]["score"], 1.0, delta=1e-5)

    def test_progress_bar_on_a_terminal(self):
        import pty
        master, slave = pty.openpty()
        folder = self.path("tty")
        shutil.copytree(os.path.join(self.folder, "star"), folder)
        proc = subprocess.Popen([CLIP_RUN, "index", MODEL, folder, "-o", self.path("tty.clipindex")],
                                stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait()
        os.close(master)
        text = b"".join(chunks).decode(errors="replace")
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(text, r"\[#*\.*\] \d+/80 +[\d.]+ images/s +ETA \d+:\d\d:\d\d")
        self.assertEqual(counts(text.replace("\r", "\n").strip().splitlines()[-1].replace("\x1b[K", "")),
                         {"added": 80, "changed": 0, "removed": 0, "skipped": 0, "total": 80})

    # ---- acceptance 2: updates and kills ----
    def copy_index(self, name):
        folder = self.path(name)
        shutil.copytree(self.folder, folder, copy_function=shutil.copy2)
        index = folder + ".clipindex"
        c = counts(summary(run("index", MODEL, folder, "-o", index)))
        self.assertEqual(c["added"], 320)
        return folder, index

    def test_add_delete_touch(self):
        folder, index = self.copy_index("upd")
        made = make_folder(os.path.join(folder, "new"), per_class=1, seed=99, prefix="new", broken=0)
        for p, _, _ in made[5:]:   # keep 5 new files
            os.remove(p)
        self.assertEqual(counts(summary(run("index", MODEL, folder, "-o", index))),
                         {"added": 5, "changed": 0, "removed": 0, "skipped": 4, "total": 325})
        self.assertEqual(counts(summary(run("index", MODEL, folder, "-o", index))),
                         {"added": 0, "changed": 0, "removed": 0, "skipped": 4, "total": 325})
        for p, _, _ in made[:3]:
            os.remove(p)
        self.assertEqual(counts(summary(run("index", MODEL, folder, "-o", index))),
                         {"added": 0, "changed": 0, "removed": 3, "skipped": 4, "total": 322})
        touched = made[3][0]
        st = os.stat(touched)
        os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
        self.assertEqual(counts(summary(run("index", MODEL, folder, "-o", index))),
                         {"added": 0, "changed": 1, "removed": 0, "skipped": 4, "total": 322})
        # --exclude drops what it now excludes; paths outside the PATHs given stay
        c = counts(summary(run("index", MODEL, folder, "-o", index, "--exclude", "*/new/*")))
        self.assertEqual((c["removed"], c["total"]), (2, 320))
        c = counts(summary(run("index", MODEL, os.path.join(folder, "circle"), "-o", index)))
        self.assertEqual((c["added"], c["removed"], c["total"]), (0, 0, 320))

    def test_sigkill_mid_index(self):
        folder, index = self.copy_index("kill")
        before = dict(sqlite3.connect(index).execute("SELECT path, vector FROM image_vectors").fetchall())
        more = make_folder(os.path.join(folder, "more"), per_class=8, seed=7, prefix="more", broken=0)
        proc = subprocess.Popen([CLIP_RUN, "index", MODEL, folder, "-o", index, "--batch", "4", "-t", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, n = time.time() + 120, 320
        while time.time() < deadline and proc.poll() is None:
            try:
                n = sqlite3.connect(index, timeout=5).execute("SELECT count(*) FROM images").fetchone()[0]
            except sqlite3.OperationalError:
                pass
            if n > 330:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL, "index finished before the kill; make it slower")
        r = self.search_json(index, "red circle", k=3)   # the old index is usable, first thing
        self.assertEqual(len(r[0]["results"]), 3)
        db = sqlite3.connect(index)
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        after = dict(db.execute("SELECT path, vector FROM image_vectors").fetchall())
        db.close()
        for p, v in before.items():
            self.assertEqual(after.get(p), v, "an old entry changed or vanished: " + p)
        done = len(after) - 320
        self.assertGreater(done, 0)
        self.assertLess(done, len(more))
        c = counts(summary(run("index", MODEL, folder, "-o", index)))
        self.assertEqual(c, {"added": len(more) - done, "changed": 0, "removed": 0, "skipped": 4,
                             "total": 320 + len(more)})

    def test_kill_inside_a_transaction(self):
        """A writer killed with a transaction open leaves a hot journal: the next clip_run
        (a search, read-only in intent) rolls it back and sees the index as it was."""
        index = self.path("hot.clipindex")
        shutil.copy(self.index, index)
        before = self.search_json(index, *QUERIES[:4], k=5)
        writer = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('PRAGMA cache_size = 1')\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "db.execute('DELETE FROM images WHERE id % 2 = 0')\n"
            "db.execute('DELETE FROM vectors')\n"
            "for i in range(100): db.execute('INSERT INTO meta VALUES (?, ?)', ('junk%d' % i, 'x' * 10000))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n"), index], stdout=subprocess.PIPE)
        self.assertEqual(writer.stdout.readline().strip(), b"ready")
        writer.kill()
        writer.wait()
        writer.stdout.close()
        self.assertTrue(os.path.exists(index + "-journal"))
        self.assertEqual(self.search_json(index, *QUERIES[:4], k=5), before)
        self.assertFalse(os.path.exists(index + "-journal"))
        c = counts(summary(run("index", MODEL, self.folder, "-o", index)))
        self.assertEqual((c["added"], c["total"]), (0, 320))

    # ---- acceptance 3: export ----
    def test_export_matches_embed_image(self):
        npy, paths, jsonl = self.path("exp.npy"), self.path("exp.txt"), self.path("exp.jsonl")
        run("export", self.index, "--npy", npy, "--paths", paths, "--jsonl", jsonl)
        with open(paths) as f:
            listed = f.read().splitlines()
        self.assertEqual(listed, self.good)
        ref = self.path("exp_ref.npy")
        run("embed-image", MODEL, *listed, "-o", ref)
        check = ("import numpy as np, sys\n"
                 "a = np.load(sys.argv[1]); b = np.load(sys.argv[2])\n"
                 "assert a.dtype == np.float32 and a.shape == b.shape, (a.shape, b.shape)\n"
                 "print(float(np.abs(a - b).max()))\n")
        out = subprocess.run([SYSTEM_PYTHON, "-c", check, npy, ref], stdout=subprocess.PIPE, check=True)
        self.assertLess(float(out.stdout), 1e-6)
        with open(jsonl) as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual([r["path"] for r in rows], listed)
        first = Npy(npy).row(0)
        self.assertTrue(all(abs(x - y) < 1e-6 for x, y in zip(rows[0]["vector"], first)))

    # ---- sharding: the README's GNU parallel recipe ----
    def test_gnu_parallel_shards_equal_one_index(self):
        if not shutil.which("parallel"):
            self.fail("GNU parallel is missing (sh tools/deps.sh test installs it)")
        work = self.path("shards")
        os.makedirs(work)
        recipe = ('seq 0 2 | parallel -j 2 "%s index %s %s -o %s/shard-{}.clipindex --shard {}/3 -t 1 2>/dev/null"'
                  ' && %s merge %s/all.clipindex %s/shard-*.clipindex'
                  % (CLIP_RUN, MODEL, self.folder, work, CLIP_RUN, work, work))
        subprocess.run(["sh", "-c", recipe], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sizes = [sqlite3.connect(os.path.join(work, "shard-%d.clipindex" % i)).execute(
            "SELECT count(*) FROM images").fetchone()[0] for i in range(3)]
        self.assertEqual(sum(sizes), 320)
        self.assertTrue(all(40 < n < 160 for n in sizes), sizes)
        a, b = self.path("m.jsonl"), self.path("one.jsonl")
        run("export", os.path.join(work, "all.clipindex"), "--jsonl", a)
        run("export", self.index, "--jsonl", b)
        with open(a) as fa, open(b) as fb:
            ra = [json.loads(x) for x in fa]
            rb = [json.loads(x) for x in fb]
        self.assertEqual([r["path"] for r in ra], [r["path"] for r in rb])
        for x, y in zip(ra, rb):
            self.assertEqual(x["vector"], y["vector"], x["path"])

    # ---- the HTML page, rendered by headless Chromium ----
    def test_html_renders_thumbnails(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            self.fail("chromium is missing (sh tools/deps.sh test installs it)")
        page = self.path("results.html")
        out = run("search", MODEL, self.index, "red circle", "blue square", "-k", "4", "--json", "--html", page)
        self.assertEqual(len(out.stdout.decode().splitlines()), 2)
        with open(page) as f:
            html = f.read()
        self.assertEqual(html.count("data:image/jpeg;base64,"), 8)
        self.assertNotIn("src=\"/", html)      # self-contained: no file or URL referenced
        # The same page without its pictures: what differs between the two screenshots is
        # exactly what the thumbnails drew.
        blank = self.path("blank.html")
        with open(blank, "w") as f:
            f.write(html.replace("data:image/jpeg;base64,", "data:,"))
        shots = []
        for name in (page, blank):
            png = name + ".png"
            proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                   "--window-size=1000,800", "--screenshot=" + png, "file://" + name],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            self.assertTrue(os.path.exists(png), "chromium made no screenshot: %s" % proc.stderr.decode()[-500:])
            shots.append(png)
        check = r"""
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
b = np.asarray(Image.open(sys.argv[2]).convert("RGB")).astype(int)
diff = np.abs(a - b).sum(axis=2) > 0
def runs(v):
    out, start = [], None
    for i, x in enumerate(list(v) + [False]):
        if x and start is None: start = i
        if not x and start is not None: out.append((start, i)); start = None
    return out
rows = runs(diff.any(axis=1))
sections = []
for y0, y1 in rows:
    cols = runs(diff[y0:y1].any(axis=0))
    red = ((a[y0:y1, :, 0] > 180) & (a[y0:y1, :, 1] < 90) & (a[y0:y1, :, 2] < 90)).sum()
    blue = ((a[y0:y1, :, 2] > 150) & (a[y0:y1, :, 0] < 100) & (a[y0:y1, :, 1] < 100)).sum()
    sections.append([y1 - y0, [x1 - x0 for x0, x1 in cols], int(red), int(blue)])
print(sections)
"""
        proc = subprocess.run([SYSTEM_PYTHON, "-c", check, shots[0], shots[1]], stdout=subprocess.PIPE, check=True)
        sections = json.loads(proc.stdout.decode().replace("'", '"'))
        # two rows of 4 thumbnails, each 160 x 160 pixels of picture
        self.assertEqual(len(sections), 2, sections)
        for height, widths, red, blue in sections:
            self.assertTrue(150 <= height <= 170, sections)
            self.assertEqual(len(widths), 4, sections)
            self.assertTrue(all(150 <= w <= 170 for w in widths), sections)
        self.assertGreater(sections[0][2], 2000, "red circles should show red")
        self.assertGreater(sections[1][3], 2000, "blue squares should show blue")

    # ---- refusals ----
    def test_other_model_refused(self):
        proc = run("search", golden_model("openai"), self.index, "red circle", check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("another model", proc.stderr.decode())
        with open(self.index, "rb") as f:
            before = f.read()
        proc = run("index", golden_model("openai"), self.folder, "-o", self.index, check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("another model", proc.stderr.decode())
        with open(self.index, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_merge_refuses_mixed_models(self):
        pics = self.path("three")
        os.makedirs(pics)
        for p in self.good[:3]:
            shutil.copy(p, pics)
        other = self.path("golden.clipindex")
        run("index", golden_model("openai"), pics, "-o", other)
        out = self.path("mixed.clipindex")
        proc = run("merge", out, self.index, other, check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("another model", proc.stderr.decode())
        proc = run("merge", self.index, self.index, check=False)   # OUT is also an input
        self.assertEqual(proc.returncode, 1)

    def test_non_index_output_refused(self):
        victim = self.path("victim.png")
        shutil.copy(self.good[0], victim)
        with open(victim, "rb") as f:
            before = f.read()
        for target, says in ((victim, "not a clip_run index"), (MODEL, "is the model")):
            proc = run("index", MODEL, self.folder, "-o", target, check=False)
            self.assertEqual(proc.returncode, 1)
            self.assertIn(says, proc.stderr.decode())
        with open(MODEL, "rb") as f:   # through another name, the format check still refuses it
            model_copy = self.path("copy.clip")
            with open(model_copy, "wb") as g:
                g.write(f.read())
        proc = run("index", MODEL, self.folder, "-o", model_copy, check=False)
        self.assertIn("not a clip_run index", proc.stderr.decode())
        with open(victim, "rb") as f:
            self.assertEqual(f.read(), before)
        proc = run("index", MODEL, self.path("no-such-dir"), "-o", self.path("x.clipindex"), check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertFalse(os.path.exists(self.path("x.clipindex")))

    def test_damaged_index(self):
        """An index from elsewhere may be damaged: one error line, no crash."""
        cases = {
            "short block": "UPDATE vectors SET data = substr(data, 1, 100) WHERE block = 1",
            "per_block": "UPDATE meta SET value = '999' WHERE key = 'per_block'",
            "dim": "UPDATE meta SET value = '-5' WHERE key = 'dim'",
            "orphan image": "DELETE FROM vectors WHERE block = 0",
            "format": "UPDATE meta SET value = 'something else' WHERE key = 'format'",
            "version": "UPDATE meta SET value = '99' WHERE key = 'version'",
            "no images table": "DROP TABLE images",
        }
        for name, sql in cases.items():
            index = self.path("damaged.clipindex")
            shutil.copy(self.index, index)
            db = sqlite3.connect(index)
            db.execute("DROP VIEW IF EXISTS image_vectors")
            db.execute(sql)
            db.commit()
            db.close()
            commands = [["search", MODEL, index, "red circle", "-k", "400"], ["export", index, "--jsonl", self.path("d.jsonl")]]
            if name == "orphan image":   # search reads vectors only: it finds what has one
                commands = commands[1:]
            for args in commands:
                proc = run(*args, check=False)
                err = proc.stderr.decode().strip().splitlines()
                self.assertEqual(proc.returncode, 1, (name, args[0], err))
                self.assertEqual(len(err), 1, (name, err))
                self.assertTrue(err[0].startswith("clip_run: error: "), (name, err))

    def test_nothing_indexable(self):
        d = self.path("only_broken")
        shutil.copytree(os.path.join(self.folder, "broken"), d)
        proc = run("index", MODEL, d, "-o", self.path("b.clipindex"), check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(counts(summary(proc))["skipped"], 4)


class SearchAtScale(unittest.TestCase):
    """100,000 vectors of dimension 512 (tools/synthetic_index.py): the top 100 that search
    returns are the top 100 of a brute-force cosine over the same vectors. How fast that
    scan is lives in bench/search_bench.py (make bench-search), not in this suite."""

    def test_100k_vectors_equal_brute_force(self):
        with tmpdir() as d:
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_random_model.py"), d,
                            "--preset", "small", "--embed-dim", "512"], check=True, stdout=subprocess.DEVNULL)
            from harness import convert
            model = convert(os.path.join(d, "openai.pt"), os.path.join(d, "m512.clip"), "--config",
                            os.path.join(d, "open_clip_config.json"), "--vocab", os.path.join(d, "merges.txt"))
            pics = os.path.join(d, "pics")
            os.makedirs(pics)
            shutil.copy(os.path.join(ROOT, "tests", "data", "demo", "red_circle.png"), pics)
            index = os.path.join(d, "big.clipindex")
            run("index", model, pics, "-o", index)
            db = sqlite3.connect(index)
            (image_path, blob), = db.execute("SELECT path, vector FROM image_vectors").fetchall()
            db.close()
            image = array.array("f", blob)
            if sys.byteorder == "big":
                image.byteswap()  # stored little-endian
            self.assertEqual(len(image), 512)
            # 5,000 distinct vectors, each in 20 slots: the top 100 spans several of them.
            first, pool = synthetic_index.fill(index, 100000, seed=5, distinct=5000)
            query = "a photo of a red circle."
            q = os.path.join(d, "q.npy")
            run("embed-text", model, query, "-o", q)
            t = Npy(q).row(0)
            score = {image_path: dot(image, t)}
            pool_score = [dot(v, t) for v in pool]
            for i in range(first, first + 100000):
                score[synthetic_index.synthetic_path(i)] = pool_score[synthetic_index.vector_of(i, 5000)]
            brute = sorted(score.values(), reverse=True)[:100]
            got = json.loads(run("search", model, index, query, "-k", "100", "--json").stdout)["results"]
            self.assertEqual(len(got), 100)
            for rank, (hit, expected) in enumerate(zip(got, brute)):
                self.assertAlmostEqual(hit["score"], expected, delta=2e-6, msg=rank)
                self.assertAlmostEqual(hit["score"], score[hit["path"]], delta=2e-6, msg=(rank, hit["path"]))
            self.assertEqual(len({h["path"] for h in got}), 100)

if __name__ == "__main__":
    unittest.main()

"""The two model writers, tools/convert.py and `clip_run quantize`, hand the kernel their
output in whole 2 MiB blocks, each at a multiple of 2 MiB in the file: only the last data
block and the header (rewritten at offset 0 once the checksums are known) may be shorter.

Why it matters: on a file system with large folios, pages written that way are cached as
2 MiB folios, which clip_run's mapping takes with one page-table entry each; a model written
in smaller pieces stays in 4 KB pages, and an image-embedding process at 2 threads took
15-18 ms longer to map and unmap them (tools/clipfile.py, BlockWriter;
bench/pagecache_bench.py). The reference here is the system calls themselves, as strace
sees them; the test fails on the earlier writers, which wrote each tensor as it came
(offsets 64-byte aligned only).
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

from harness import CLIP_RUN, ROOT, golden_model, shared, tmpdir

BLOCK = 2 << 20
# write(3</dir/.out.clip.tmp.x>, "..."..., 2097152) = 2097152   (strace -y; -e abbrev)
SYSCALL = re.compile(r'^(?:(\d+)\s+)?(\w+)\((\d+)<([^>]*)>, (.*)\) += (-?\d+)')
# with -f, a call another thread interrupts comes in two lines, joined here by pid:
#   1234 write(3<...>, "..."..., 2097152 <unfinished ...>
#   1234 <... write resumed>) = 2097152
UNFINISHED = re.compile(r'^(\d+)\s+(.*) <unfinished \.\.\.>$')
RESUMED = re.compile(r'^(\d+)\s+<\.\.\. \w+ resumed>(.*)$')
WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2", "copy_file_range", "sendfile", "lseek")


def writes(argv, output):
    """[(position, bytes)] of every write to OUTPUT (or its temp file) that argv makes,
    in order, with positions followed through lseek. Any other way of writing to it fails."""
    if shutil.which("strace") is None:
        raise AssertionError("strace is missing (tools/deps.sh test installs it)")
    # LeakSanitizer cannot run under ptrace (the sanitizer build's leak check would fail
    # the traced run); the other stages check leaks
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    with tmpdir() as d:
        log = os.path.join(d, "trace")
        proc = subprocess.run(["strace", "-f", "-y", "-qq", "-e", "trace=" + ",".join(WRITES), "-o", log] + argv,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600, env=env)
        if proc.returncode != 0:
            raise AssertionError("%s failed under strace (%d): %s" % (
                " ".join(argv[:3]), proc.returncode, proc.stderr.decode(errors="replace")[-2000:]))
        name = os.path.basename(output)
        targets = (name, "." + name + ".tmp")
        position, out, pending = {}, [], {}
        with open(log, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                m = UNFINISHED.match(line)
                if m:
                    pending[m.group(1)] = m.group(1) + " " + m.group(2)
                    continue
                m = RESUMED.match(line)
                if m and m.group(1) in pending:
                    line = pending.pop(m.group(1)) + m.group(2)
                m = SYSCALL.match(line)
                if not m or not os.path.basename(m.group(4)).startswith(targets):
                    continue
                call, fd, result = m.group(2), m.group(3), int(m.group(6))
                if call == "lseek":
                    position[fd] = result
                elif call == "pwrite64":
                    out.append((int(m.group(5).rsplit(", ", 1)[1]), result))
                elif call == "write":
                    if result > 0:
                        out.append((position.get(fd, 0), result))
                        position[fd] = position.get(fd, 0) + result
                else:
                    raise AssertionError("%s wrote its output with %s, which this test does not follow" % (argv[0], call))
        return out


class WholeBlocks(unittest.TestCase):
    def check(self, calls, size, header_rewrite):
        """header_rewrite: the writer goes back to offset 0 once to rewrite the header
        (convert.py), which may be shorter than a block."""
        self.assertGreater(size, 3 * BLOCK, "the model is too small to show anything")
        self.assertTrue(calls, "no write to the output seen")
        misplaced = [(p, n) for p, n in calls if p % BLOCK]
        self.assertEqual(misplaced, [], "writes not at a multiple of 2 MiB (position, bytes)")
        tail = (size - size % BLOCK, size % BLOCK)
        data = calls[:-1] if header_rewrite else calls
        if header_rewrite:
            self.assertEqual(calls[-1][0], 0, "the header rewrite comes last, at 0")
        short = [(p, n) for p, n in data if n % BLOCK and (p, n) != tail]
        self.assertEqual(short, [], "short writes other than the file's last block")
        # the data writes cover the file once, in order, without gaps
        self.assertEqual([p for p, n in data], [sum(n for _, n in data[:i]) for i in range(len(data))])
        self.assertEqual(sum(n for p, n in data), size)

    def test_convert(self):
        with tmpdir() as d:
            out = os.path.join(d, "model.clip")
            argv = [sys.executable, os.path.join(ROOT, "tools", "convert.py"), shared("golden-tiny"), "-o", out]
            self.check(writes(argv, out), os.path.getsize(out), header_rewrite=True)

    def test_quantize(self):
        with tmpdir() as d:
            out = os.path.join(d, "model-f16.clip")
            argv = [CLIP_RUN, "quantize", golden_model("openai"), out, "--type", "f16"]
            self.check(writes(argv, out), os.path.getsize(out), header_rewrite=False)


if __name__ == "__main__":
    unittest.main()

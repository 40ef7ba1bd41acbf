"""Run every Python test (tests/test_*.py, unittest discovery) and name each skip.

    python3 tests/unittest_main.py [MODULE...]     (default: every tests/test_*.py)

unittest's own report (stderr), then one line per skipped test on stdout,
"SKIP: python TEST_ID: REASON", which tests/run_tests.sh counts and lists. A reason
naming a missing installable package says "needs Debian package NAME": under CI=true
run_tests.sh fails such a skip. The exit code is 0 only when nothing failed.
"""
import os
import sys
import unittest


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if len(sys.argv) > 1:      # named modules only (the arm64 stage runs a subset under qemu)
        sys.path.insert(0, here)
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:])
    else:
        suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py")
    result = unittest.TextTestRunner(verbosity=1).run(suite)
    sys.stderr.flush()
    for test, reason in result.skipped:
        print("SKIP: python %s: %s" % (test.id(), reason), flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()

/* testutil.h - shared bits of the Check unit tests.
 *
 * Every tests/test_*.c defines `Suite *suite(void)` and ends with TEST_MAIN().
 * Reference data comes from ../shared/clip (relative to the repo root, where `make test`
 * runs); its absence is a failure, never a skip.
 */
#ifndef CLIP_TESTUTIL_H
#define CLIP_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHARED_DIR "../shared/clip"

/* Path of a shared reference file; fails the test if it is missing. */
static inline const char *shared_file(const char *rel) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", SHARED_DIR, rel);
    struct stat st;
    ck_assert_msg(stat(p, &st) == 0, "missing reference data %s (is ../shared present?)", p);
    return p;
}

/* Path of a model converted by tests/run_tests.sh (e.g. "golden-openai.clip"). */
static inline const char *test_model(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    const char *dir = getenv("CLIP_TEST_MODELS");
    snprintf(p, sizeof buf[0], "%s/%s", dir ? dir : "build/test-models", name);
    struct stat st;
    ck_assert_msg(stat(p, &st) == 0, "missing test model %s (run through make test)", p);
    return p;
}

/* Deterministic pseudo-random floats in [-1, 1). */
static inline float test_rand(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

/* Relative L2 distance |a - b| / |b|. */
static inline double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Skipping, for what this machine cannot run (an instruction set the CPU lacks): Check has no
 * skip, so a skipped test prints one line that tests/run_tests.sh counts and lists.
 *   TEST_SKIP("reason", ...)       the whole test: prints "SKIP: file test: reason" and
 *                                  returns (Check counts a pass; run_tests.sh moves it to the
 *                                  skipped count);
 *   TEST_SKIP_PART("reason", ...)  one part of a test that goes on with the rest: prints
 *                                  "SKIP-PART: file test: reason" (one more skip, the test's
 *                                  pass stays).
 * A reason naming a missing installable package must say "needs Debian package NAME":
 * under CI=true run_tests.sh fails such a skip. */
#define TEST_SKIP_LINE_(tag, ...)                                     \
    do {                                                              \
        printf("%s: %s %s: ", tag, __FILE__, __func__);              \
        printf(__VA_ARGS__);                                          \
        printf("\n");                                                 \
        fflush(stdout);                                               \
    } while (0)
#define TEST_SKIP(...)                                                \
    do {                                                              \
        TEST_SKIP_LINE_("SKIP", __VA_ARGS__);                         \
        return;                                                       \
    } while (0)
#define TEST_SKIP_PART(...) TEST_SKIP_LINE_("SKIP-PART", __VA_ARGS__)

#define TEST_MAIN()                                                   \
    int main(void) {                                                  \
        SRunner *runner = srunner_create(suite());                    \
        srunner_run_all(runner, CK_NORMAL);                           \
        int failed = srunner_ntests_failed(runner);                   \
        srunner_free(runner);                                         \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;             \
    }

#endif

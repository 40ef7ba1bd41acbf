/* test_index_store.c - the SQLite image index (io/index_store.c) without the CLI: puts,
 * replacements, removals and slot reuse across blocks, search against brute force, the
 * model identity, refusing files that are not indexes, and a rolled-back transaction. */
#include <math.h>
#include <sqlite3.h>

#include "../io/index_store.h"
#include "../model/clip.h"
#include "testutil.h"

enum { DIM = 40 };   /* per_block = min(32, 65000 / 160): full blocks of 32 */

static void temp_path(char *path, size_t n, const char *name) {
    snprintf(path, n, "/tmp/clip-index-%d-%s", (int)getpid(), name);
    unlink(path);
}

static void unit_vector(float *v, unsigned seed) {
    double norm = 0;
    for (int i = 0; i < DIM; i++) {
        v[i] = test_rand(&seed);
        norm += (double)v[i] * v[i];
    }
    for (int i = 0; i < DIM; i++) v[i] = (float)(v[i] / sqrt(norm));
}

typedef struct {
    int n;
    char paths[200][32];
    float vecs[200][DIM];
} collected;

static int collect(void *user, const char *path, int64_t size, int64_t mtime_ns, const float *vec) {
    collected *c = user;
    ck_assert_int_lt(c->n, 200);
    ck_assert_int_eq(size, 100);
    ck_assert_int_eq(mtime_ns, 7);
    snprintf(c->paths[c->n], 32, "%s", path);
    memcpy(c->vecs[c->n++], vec, sizeof(float) * DIM);
    return 0;
}

START_TEST(put_remove_search_foreach) {
    char path[256], name[32];
    temp_path(path, sizeof path, "a");
    index_store *s;
    ck_assert_int_eq(index_open(path, 1, &s), CLIP_OK);
    ck_assert_int_eq(index_bind_model(s, "0123456789abcdef", "test", DIM), CLIP_OK);
    float v[DIM], truth[100][DIM];
    ck_assert_int_eq(index_begin(s), CLIP_OK);
    for (int i = 0; i < 100; i++) {   /* 4 blocks, the last one partly used */
        snprintf(name, sizeof name, "/img/%03d.png", i);
        unit_vector(truth[i], 1000u + (unsigned)i);
        ck_assert_int_eq(index_put(s, name, 100, 7, truth[i]), CLIP_OK);
    }
    ck_assert_int_eq(index_commit(s), CLIP_OK);
    ck_assert_int_eq(index_count(s), 100);
    /* remove some, replace one (its slot stays), add new ones (they take the freed slots) */
    ck_assert_int_eq(index_begin(s), CLIP_OK);
    for (int i = 0; i < 100; i += 3) {
        snprintf(name, sizeof name, "/img/%03d.png", i);
        ck_assert_int_eq(index_remove(s, name), CLIP_OK);
    }
    ck_assert_int_eq(index_remove(s, "/not/there.png"), CLIP_OK);
    unit_vector(truth[1], 5u);
    ck_assert_int_eq(index_put(s, "/img/001.png", 100, 7, truth[1]), CLIP_OK);
    for (int i = 0; i < 100; i += 3) {
        snprintf(name, sizeof name, "/new/%03d.png", i);
        unit_vector(truth[i], 2000u + (unsigned)i);
        ck_assert_int_eq(index_put(s, name, 100, 7, truth[i]), CLIP_OK);
    }
    ck_assert_int_eq(index_commit(s), CLIP_OK);
    ck_assert_int_eq(index_count(s), 100);
    index_close(s);

    ck_assert_int_eq(index_open(path, 0, &s), CLIP_OK);
    const char *id, *model;
    int dim;
    index_model(s, &id, &model, &dim);
    ck_assert_str_eq(id, "0123456789abcdef");
    ck_assert_int_eq(dim, DIM);
    /* foreach: sorted by path, each vector as put */
    static collected c;
    c.n = 0;
    ck_assert_int_eq(index_foreach(s, collect, &c), CLIP_OK);
    ck_assert_int_eq(c.n, 100);
    for (int k = 1; k < c.n; k++) ck_assert_int_lt(strcmp(c.paths[k - 1], c.paths[k]), 0);
    for (int k = 0; k < c.n; k++) {
        int i = atoi(c.paths[k] + 5);
        ck_assert_mem_eq(c.vecs[k], truth[i], sizeof(float) * DIM);
    }
    /* search: the k best equal a brute-force ranking, with 1 and with 2 threads */
    unit_vector(v, 99u);
    for (int threads = 1; threads <= 2; threads++) {
        index_hit *hits;
        int n;
        ck_assert_int_eq(index_search(s, v, 10, threads, &hits, &n), CLIP_OK);
        ck_assert_int_eq(n, 10);
        float best[100];
        for (int k = 0; k < c.n; k++) {
            double d = 0;
            for (int j = 0; j < DIM; j++) d += (double)c.vecs[k][j] * v[j];
            best[k] = (float)d;
        }
        for (int h = 0; h < n; h++) {
            int rank_of = 0, k_of = -1;
            for (int k = 0; k < c.n; k++) if (strcmp(c.paths[k], hits[h].path) == 0) k_of = k;
            ck_assert_int_ge(k_of, 0);
            ck_assert_float_eq_tol(hits[h].score, best[k_of], 1e-5);
            for (int k = 0; k < c.n; k++) rank_of += best[k] > best[k_of] + 1e-6f;
            ck_assert_int_le(rank_of, h);
            if (h) ck_assert_float_ge(hits[h - 1].score, hits[h].score);
        }
        index_free_hits(hits, n);
    }
    index_close(s);
    unlink(path);
}
END_TEST

START_TEST(threads_agree) {
    char path[256], name[32];
    temp_path(path, sizeof path, "t");
    index_store *s;
    ck_assert_int_eq(index_open(path, 1, &s), CLIP_OK);
    ck_assert_int_eq(index_bind_model(s, "0123456789abcdef", "test", DIM), CLIP_OK);
    float v[DIM];
    ck_assert_int_eq(index_begin(s), CLIP_OK);
    for (int i = 0; i < 9000; i++) {   /* 282 blocks: enough for the threaded scan */
        snprintf(name, sizeof name, "/many/%05d.png", i);
        unit_vector(v, 7u * (unsigned)i + 1u);
        ck_assert_int_eq(index_put(s, name, 100, 7, v), CLIP_OK);
    }
    ck_assert_int_eq(index_commit(s), CLIP_OK);
    unit_vector(v, 4242u);
    index_hit *one, *two;
    int n1, n2;
    ck_assert_int_eq(index_search(s, v, 25, 1, &one, &n1), CLIP_OK);
    ck_assert_int_eq(index_search(s, v, 25, 3, &two, &n2), CLIP_OK);
    ck_assert_int_eq(n1, 25);
    ck_assert_int_eq(n2, 25);
    for (int i = 0; i < 25; i++) {
        ck_assert_str_eq(one[i].path, two[i].path);
        ck_assert_float_eq(one[i].score, two[i].score);
    }
    index_free_hits(one, n1);
    index_free_hits(two, n2);
    index_close(s);
    unlink(path);
}
END_TEST

START_TEST(rollback_and_identity) {
    char path[256];
    temp_path(path, sizeof path, "b");
    index_store *s;
    float v[DIM];
    unit_vector(v, 3u);
    ck_assert_int_eq(index_open(path, 1, &s), CLIP_OK);
    ck_assert_int_eq(index_bind_model(s, "aaaaaaaaaaaaaaaa", "one", DIM), CLIP_OK);
    ck_assert_int_eq(index_begin(s), CLIP_OK);
    ck_assert_int_eq(index_put(s, "/a.png", 100, 7, v), CLIP_OK);
    ck_assert_int_eq(index_commit(s), CLIP_OK);
    ck_assert_int_eq(index_begin(s), CLIP_OK);
    ck_assert_int_eq(index_put(s, "/b.png", 100, 7, v), CLIP_OK);
    index_rollback(s);
    ck_assert_int_eq(index_count(s), 1);
    ck_assert_int_eq(index_begin(s), CLIP_OK);   /* the slot map is rebuilt after a rollback */
    ck_assert_int_eq(index_put(s, "/c.png", 100, 7, v), CLIP_OK);
    ck_assert_int_eq(index_commit(s), CLIP_OK);
    ck_assert_int_eq(index_count(s), 2);
    ck_assert_int_eq(index_bind_model(s, "bbbbbbbbbbbbbbbb", "two", DIM), CLIP_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "another model"));
    ck_assert_int_eq(index_bind_model(s, "aaaaaaaaaaaaaaaa", "one", DIM + 1), CLIP_ERR_ARG);
    index_close(s);
    unlink(path);
}
END_TEST

START_TEST(refuses_what_is_not_an_index) {
    char path[256];
    temp_path(path, sizeof path, "c");
    const char junk[] = "this is a model, or an image, not an index";
    FILE *f = fopen(path, "wb");
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    index_store *s;
    ck_assert_int_eq(index_open(path, 1, &s), CLIP_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "not a clip_run index"));
    char back[sizeof junk];
    f = fopen(path, "rb");
    ck_assert_int_eq(fread(back, 1, sizeof back, f), sizeof back);
    fclose(f);
    ck_assert_mem_eq(back, junk, sizeof junk);   /* untouched */
    /* An SQLite file without any table (e.g. a first run killed while it created the
     * tables, rolled back) holds nothing to lose: it becomes an index. */
    unlink(path);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 3", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(index_open(path, 0, &s), CLIP_ERR_IO);
    ck_assert_int_eq(index_open(path, 1, &s), CLIP_OK);
    ck_assert_int_eq(index_bind_model(s, "aaaaaaaaaaaaaaaa", "one", DIM), CLIP_OK);
    index_close(s);
    ck_assert_int_eq(index_open("/tmp", 1, &s), CLIP_ERR_IO);
    ck_assert_int_eq(index_open("/nonexistent-dir/x.clipindex", 0, &s), CLIP_ERR_IO);
    unlink(path);
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("index_store");
    TCase *tc = tcase_create("index_store");
    tcase_add_test(tc, put_remove_search_foreach);
    tcase_add_test(tc, threads_agree);
    tcase_add_test(tc, rollback_and_identity);
    tcase_add_test(tc, refuses_what_is_not_an_index);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()

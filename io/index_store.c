/* index_store.c - the image index in SQLite (index_store.h; format: docs/INDEX.md).
 *
 * Tables:
 *   meta(key, value)                  format, version, model identity, dim, per_block
 *   images(id, path, size, mtime_ns)  id is also the vector's slot
 *   vectors(block, used, data)        data: per_block vectors of dim float32 (little-endian),
 *                                     slot id lives in block id / per_block at id % per_block;
 *                                     bit i of used says slot i holds a vector
 * One row per vector would cost a B-tree step per image (70 ms for 100,000 images, measured);
 * blocks of ~63 KiB on 64 KiB pages are read in place from the memory-mapped file, so a
 * search touches each vector once with almost no per-row overhead.
 */
#include "index_store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/threadpool.h"
#include "error.h"

#define BLOCK_BYTES 65000   /* a block row stays on one 64 KiB page (local payload <= 65501) */
#define MAX_PER_BLOCK 32    /* used is a 64-bit integer; keep clear of the sign bit */

struct index_store {
    sqlite3 *db;
    char path[1024];
    int writable;
    char model_id[128], model_name[256];
    int dim, per_block;
    uint8_t *used;          /* slot allocation, loaded at the first put */
    int64_t used_cap, hint;
    float *block;           /* scratch: one block */
};

static int db_fail(index_store *s, int code, const char *what) {
    int e = sqlite3_errcode(s->db);
    if (e == SQLITE_BUSY || e == SQLITE_LOCKED)
        return clip_fail(CLIP_ERR_IO, "%s: the index is in use by another process (%s)", s->path, what);
    return clip_fail(code, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec(index_store *s, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK) return CLIP_OK;
    int rc = clip_fail(CLIP_ERR_IO, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return rc;
}

static int prepare(index_store *s, const char *sql, sqlite3_stmt **st) {
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) == SQLITE_OK) return CLIP_OK;
    return db_fail(s, CLIP_ERR_FORMAT, "reading the index");
}

static void meta_get(index_store *s, const char *key, char *buf, size_t n) {
    sqlite3_stmt *st;
    buf[0] = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static int meta_set(index_store *s, const char *key, const char *value) {
    sqlite3_stmt *st;
    int rc = prepare(s, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? CLIP_OK : db_fail(s, CLIP_ERR_IO, "writing meta");
    sqlite3_finalize(st);
    return rc;
}

/* Is path an SQLite file (by its first 16 bytes)? -1: unreadable. */
static int is_sqlite(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char head[16];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    return got == sizeof head && memcmp(head, "SQLite format 3", 16) == 0;
}

static int load_meta(index_store *s) {
    char buf[64];
    meta_get(s, "model_id", s->model_id, sizeof s->model_id);
    meta_get(s, "model_name", s->model_name, sizeof s->model_name);
    meta_get(s, "dim", buf, sizeof buf);
    s->dim = atoi(buf);
    meta_get(s, "per_block", buf, sizeof buf);
    s->per_block = atoi(buf);
    if (s->model_id[0] && (s->dim < 1 || s->dim > 65536 || s->per_block < 1 || s->per_block > MAX_PER_BLOCK))
        return clip_fail(CLIP_ERR_FORMAT, "%s: damaged index (dim %d, per_block %d)", s->path, s->dim,
                         s->per_block);
    return CLIP_OK;
}

int index_open(const char *path, int writable, index_store **out) {
    *out = NULL;
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (!exists && (errno != ENOENT || !writable)) return clip_fail(CLIP_ERR_IO, "%s: %s", path, strerror(errno));
    if (exists && !S_ISREG(st.st_mode))
        return clip_fail(CLIP_ERR_IO, "%s: not a regular file (an index is an SQLite file)", path);
    char journal[1100];
    snprintf(journal, sizeof journal, "%s-journal", path);
    struct stat jst;
    int hot = stat(journal, &jst) == 0 && jst.st_size > 0;
    int fresh = !exists || (st.st_size == 0 && !hot);
    /* Never let SQLite turn some other file (a model, an image) into a database. An
     * interrupted write may leave the header in flux: then SQLite's journal repairs it. */
    if (!fresh && !hot && is_sqlite(path) != 1)
        return clip_fail(CLIP_ERR_FORMAT, "%s: not a clip_run index (not an SQLite file); left untouched", path);
    if (fresh && !writable) return clip_fail(CLIP_ERR_IO, "%s: empty file, not an index", path);

    index_store *s = calloc(1, sizeof *s);
    if (!s) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->writable = writable;
    /* Even a reader opens read-write when it may: after a kill, the first connection must
     * roll the unfinished transaction back (the hot journal), which a read-only connection
     * cannot do. A file the user may not write is still opened read-only. */
    int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                         : access(path, W_OK) == 0 ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    int rc = CLIP_OK;
    if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = clip_fail(CLIP_ERR_IO, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto done;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* Vectors are read in place from the mapping (SQLite caps the size it maps). */
    if ((rc = exec(s, "PRAGMA mmap_size = 1099511627776"))) goto done;
    /* No table at all: a new file, or one whose creation a kill rolled back. */
    sqlite3_stmt *tables;
    if ((rc = prepare(s, "SELECT count(*) FROM sqlite_master", &tables))) goto done;
    if (sqlite3_step(tables) == SQLITE_ROW && sqlite3_column_int64(tables, 0) == 0) fresh = 1;
    sqlite3_finalize(tables);
    if (fresh && !writable) {
        rc = clip_fail(CLIP_ERR_IO, "%s: an empty database, not an index", path);
        goto done;
    }
    if (fresh) {
        if ((rc = exec(s, "PRAGMA page_size = 65536"))) goto done;
        if ((rc = exec(s, "BEGIN IMMEDIATE;"
                          "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                          "CREATE TABLE IF NOT EXISTS images(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,"
                          " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);"
                          "CREATE TABLE IF NOT EXISTS vectors(block INTEGER PRIMARY KEY, used INTEGER NOT NULL,"
                          " data BLOB NOT NULL);"
                          "INSERT OR IGNORE INTO meta VALUES ('format', '" INDEX_FORMAT "');"
                          "INSERT OR IGNORE INTO meta VALUES ('version', '1');"
                          "COMMIT;"))) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            goto done;
        }
    }
    char format[64], version[16];
    meta_get(s, "format", format, sizeof format);
    meta_get(s, "version", version, sizeof version);
    if (strcmp(format, INDEX_FORMAT) != 0) {
        rc = clip_fail(CLIP_ERR_FORMAT, "%s: an SQLite file but not a clip_run index; left untouched", path);
        goto done;
    }
    if (atoi(version) != INDEX_VERSION) {
        rc = clip_fail(CLIP_ERR_FORMAT, "%s: index format version %s, this clip_run reads version %d", path,
                       version, INDEX_VERSION);
        goto done;
    }
    rc = load_meta(s);
done:
    if (rc) index_close(s);
    else *out = s;
    return rc;
}

void index_close(index_store *s) {
    if (!s) return;
    sqlite3_close(s->db);
    free(s->used);
    free(s->block);
    free(s);
}

void index_model(const index_store *s, const char **model_id, const char **model_name, int *dim) {
    if (model_id) *model_id = s->model_id;
    if (model_name) *model_name = s->model_name;
    if (dim) *dim = s->dim;
}

int index_bind_model(index_store *s, const char *model_id, const char *model_name, int dim) {
    if (s->model_id[0]) {
        if (strcmp(s->model_id, model_id) != 0 || s->dim != dim)
            return clip_fail(CLIP_ERR_ARG,
                             "%s was made with another model (%s, id %s, dim %d), not this one (%s, id %s, dim %d)",
                             s->path, s->model_name[0] ? s->model_name : "unnamed", s->model_id, s->dim,
                             model_name[0] ? model_name : "unnamed", model_id, dim);
        return CLIP_OK;
    }
    if (!s->writable) return clip_fail(CLIP_ERR_FORMAT, "%s: index has no model identity", s->path);
    if (dim < 1 || dim > 65536) return clip_fail(CLIP_ERR_ARG, "index: embedding size %d out of range", dim);
    int per_block = BLOCK_BYTES / (int)(sizeof(float) * (size_t)dim);
    if (per_block > MAX_PER_BLOCK) per_block = MAX_PER_BLOCK;
    if (per_block < 1) per_block = 1;
    char num[32], view[512];
    int rc = exec(s, "BEGIN IMMEDIATE");
    if (!rc) rc = meta_set(s, "model_id", model_id);
    if (!rc) rc = meta_set(s, "model_name", model_name);
    snprintf(num, sizeof num, "%d", dim);
    if (!rc) rc = meta_set(s, "dim", num);
    snprintf(num, sizeof num, "%d", per_block);
    if (!rc) rc = meta_set(s, "per_block", num);
    if (!rc) rc = meta_set(s, "dtype", "float32 little-endian, L2-normalized");
    /* For sqlite3 users: each image's vector as one BLOB, without knowing the blocks. */
    snprintf(view, sizeof view,
             "CREATE VIEW IF NOT EXISTS image_vectors AS SELECT images.id AS id, path, size, mtime_ns,"
             " substr(data, (images.id %% %d) * %d + 1, %d) AS vector FROM images"
             " JOIN vectors ON vectors.block = images.id / %d",
             per_block, 4 * dim, 4 * dim, per_block);
    if (!rc) rc = exec(s, view);
    if (!rc) rc = exec(s, "COMMIT");
    if (rc) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return load_meta(s);
}

int64_t index_count(index_store *s) {
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM images", -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

void index_free_entries(index_entry *e, size_t n) {
    for (size_t i = 0; e && i < n; i++) free(e[i].path);
    free(e);
}

int index_list(index_store *s, index_entry **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *st;
    int rc = prepare(s, "SELECT path, size, mtime_ns FROM images ORDER BY path", &st);
    if (rc) return rc;
    size_t n = 0, cap = 0;
    index_entry *e = NULL;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            index_entry *grown = realloc(e, cap * sizeof *e);
            if (!grown) { rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path); break; }
            e = grown;
        }
        const char *p = (const char *)sqlite3_column_text(st, 0);
        e[n].path = strdup(p ? p : "");
        e[n].size = sqlite3_column_int64(st, 1);
        e[n].mtime_ns = sqlite3_column_int64(st, 2);
        if (!e[n++].path) { rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path); break; }
    }
    if (!rc && r != SQLITE_DONE) rc = db_fail(s, CLIP_ERR_FORMAT, "reading the index");
    sqlite3_finalize(st);
    if (rc) { index_free_entries(e, n); return rc; }
    *out = e;
    *n_out = n;
    return CLIP_OK;
}

int index_begin(index_store *s) { return exec(s, "BEGIN IMMEDIATE"); }
int index_commit(index_store *s) {
    int rc = exec(s, "COMMIT");
    if (rc) index_rollback(s);
    return rc;
}
void index_rollback(index_store *s) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    /* The slot map may describe rows that were never committed: reload it next time. */
    free(s->used);
    s->used = NULL;
    s->used_cap = s->hint = 0;
}

/* ---- Slots -------------------------------------------------------------------------------- */
static int slots_load(index_store *s) {
    if (s->used) return CLIP_OK;
    sqlite3_stmt *st;
    int rc = prepare(s, "SELECT id FROM images", &st);
    if (rc) return rc;
    s->used_cap = 1024;
    s->used = calloc((size_t)s->used_cap, 1);
    while (s->used && sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (id < 0 || id > (int64_t)1 << 40) { rc = clip_fail(CLIP_ERR_FORMAT, "%s: damaged index (image id %lld)", s->path, (long long)id); break; }
        while (id >= s->used_cap) {
            uint8_t *grown = realloc(s->used, (size_t)s->used_cap * 2);
            if (!grown) { free(s->used); s->used = NULL; break; }
            memset(grown + s->used_cap, 0, (size_t)s->used_cap);
            s->used = grown;
            s->used_cap *= 2;
        }
        if (s->used) s->used[id] = 1;
    }
    sqlite3_finalize(st);
    if (!s->used && !rc) rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path);
    if (rc) { free(s->used); s->used = NULL; }
    s->hint = 0;
    return rc;
}

/* The lowest free slot, so removed images' slots are reused and blocks stay full. */
static int64_t slot_alloc(index_store *s) {
    while (s->hint < s->used_cap && s->used[s->hint]) s->hint++;
    if (s->hint == s->used_cap) {
        uint8_t *grown = realloc(s->used, (size_t)s->used_cap * 2);
        if (!grown) return -1;
        memset(grown + s->used_cap, 0, (size_t)s->used_cap);
        s->used = grown;
        s->used_cap *= 2;
    }
    s->used[s->hint] = 1;
    return s->hint;
}

static int64_t lookup(index_store *s, const char *path, int *rc) {
    sqlite3_stmt *st;
    *rc = prepare(s, "SELECT id FROM images WHERE path = ?", &st);
    if (*rc) return -1;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    int64_t id = -1;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) id = sqlite3_column_int64(st, 0);
    else if (r != SQLITE_DONE) *rc = db_fail(s, CLIP_ERR_IO, "reading the index");
    sqlite3_finalize(st);
    return id;
}

static int step_done(index_store *s, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st) == SQLITE_DONE ? CLIP_OK : db_fail(s, CLIP_ERR_IO, what);
    sqlite3_finalize(st);
    return rc;
}

/* Little-endian float32 on disk; a big-endian host swaps bytes. */
static void to_disk(float *v, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, v + i, 4);
        u = __builtin_bswap32(u);
        memcpy(v + i, &u, 4);
    }
#else
    (void)v;
    (void)n;
#endif
}
#define from_disk to_disk

static int write_slot(index_store *s, int64_t id, const float *vec) {
    const int64_t block = id / s->per_block;
    const int slot = (int)(id % s->per_block);
    const size_t block_len = (size_t)s->per_block * s->dim;
    if (!s->block && !(s->block = malloc(block_len * sizeof(float))))
        return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path);
    sqlite3_stmt *st;
    int rc = prepare(s, "SELECT used, data FROM vectors WHERE block = ?", &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, block);
    int64_t used = 0;
    memset(s->block, 0, block_len * sizeof(float));
    if (sqlite3_step(st) == SQLITE_ROW) {
        used = sqlite3_column_int64(st, 0);
        const void *data = sqlite3_column_blob(st, 1);
        if (data && (size_t)sqlite3_column_bytes(st, 1) == block_len * sizeof(float))
            memcpy(s->block, data, block_len * sizeof(float));
        else used = 0;  /* a damaged block: start it over */
    }
    sqlite3_finalize(st);
    memcpy(s->block + (size_t)slot * s->dim, vec, sizeof(float) * (size_t)s->dim);
    to_disk(s->block + (size_t)slot * s->dim, (size_t)s->dim);
    used |= (int64_t)1 << slot;
    if ((rc = prepare(s, "INSERT OR REPLACE INTO vectors(block, used, data) VALUES (?, ?, ?)", &st))) return rc;
    sqlite3_bind_int64(st, 1, block);
    sqlite3_bind_int64(st, 2, used);
    sqlite3_bind_blob(st, 3, s->block, (int)(block_len * sizeof(float)), SQLITE_STATIC);
    return step_done(s, st, "writing a vector");
}

int index_put(index_store *s, const char *path, int64_t size, int64_t mtime_ns, const float *vec) {
    if (!s->model_id[0]) return clip_fail(CLIP_ERR_ARG, "index_put: no model bound");
    int rc = slots_load(s);
    if (rc) return rc;
    int64_t id = lookup(s, path, &rc);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (id >= 0) {
        if ((rc = prepare(s, "UPDATE images SET size = ?, mtime_ns = ? WHERE id = ?", &st))) return rc;
        sqlite3_bind_int64(st, 1, size);
        sqlite3_bind_int64(st, 2, mtime_ns);
        sqlite3_bind_int64(st, 3, id);
    } else {
        if ((id = slot_alloc(s)) < 0) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path);
        if ((rc = prepare(s, "INSERT INTO images(id, path, size, mtime_ns) VALUES (?, ?, ?, ?)", &st))) return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, size);
        sqlite3_bind_int64(st, 4, mtime_ns);
    }
    if ((rc = step_done(s, st, "writing an entry"))) return rc;
    return write_slot(s, id, vec);
}

int index_remove(index_store *s, const char *path) {
    int rc = slots_load(s);
    if (rc) return rc;
    int64_t id = lookup(s, path, &rc);
    if (rc || id < 0) return rc;
    sqlite3_stmt *st;
    if ((rc = prepare(s, "DELETE FROM images WHERE id = ?", &st))) return rc;
    sqlite3_bind_int64(st, 1, id);
    if ((rc = step_done(s, st, "removing an entry"))) return rc;
    if ((rc = prepare(s, "UPDATE vectors SET used = used & ~(1 << ?) WHERE block = ?", &st))) return rc;
    sqlite3_bind_int(st, 1, (int)(id % s->per_block));
    sqlite3_bind_int64(st, 2, id / s->per_block);
    if ((rc = step_done(s, st, "removing a vector"))) return rc;
    if ((rc = prepare(s, "DELETE FROM vectors WHERE block = ? AND used = 0", &st))) return rc;
    sqlite3_bind_int64(st, 1, id / s->per_block);
    if ((rc = step_done(s, st, "removing a vector"))) return rc;
    if (id < s->used_cap) s->used[id] = 0;
    if (id < s->hint) s->hint = id;
    return CLIP_OK;
}

/* ---- Search ------------------------------------------------------------------------------ */
/* 16 independent sums: the compiler keeps them in vector registers (a single running sum
 * would serialize on the add latency). Memory bandwidth is the limit either way. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))  /* 8 or 16 lanes where the CPU has them */
#endif
static float dot(const float *restrict a, const float *restrict b, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    float tail = 0;
    for (; i < n; i++) tail += a[i] * b[i];
    for (int j = 8; j > 0; j /= 2)
        for (int k = 0; k < j; k++) acc[k] += acc[k + j];
    return acc[0] + tail;
}

typedef struct {
    float score;
    int64_t id;
} scored;

/* Min-heap on score (then on id, larger first out): the root is the worst kept. */
static int worse(const scored *a, const scored *b) {
    return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void sift_down(scored *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m])) m = l;
        if (r < n && worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        scored t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_offer(scored *h, int *n, int k, float score, int64_t id) {
    scored c = {score, id};
    if (*n < k) {
        int i = (*n)++;
        h[i] = c;
        while (i > 0 && worse(&h[i], &h[(i - 1) / 2])) {
            scored t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (worse(&h[0], &c)) {
        h[0] = c;
        sift_down(h, *n, 0);
    }
}

static int by_score_then_path(const void *x, const void *y) {
    const index_hit *a = x, *b = y;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return strcmp(a->path, b->path);
}

void index_free_hits(index_hit *h, int n) {
    for (int i = 0; h && i < n; i++) free(h[i].path);
    free(h);
}

/* One thread's share of a search: blocks [lo, hi] through its own connection (an SQLite
 * connection is not shared between threads), its own heap of the k best. */
typedef struct {
    const index_store *s;
    sqlite3 *db;
    int64_t lo, hi;
    const float *q;
    int k, n, rc;
    scored *heap;
    char error[1200];
} scan_job;

static void *scan(void *arg) {
    scan_job *j = arg;
    const index_store *s = j->s;
    const int dim = s->dim, pb = s->per_block;
    const size_t block_bytes = sizeof(float) * (size_t)pb * dim;
    float *aligned = malloc(block_bytes);
    sqlite3_stmt *st = NULL;
    int r = SQLITE_DONE;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    const int swap = 1;
#else
    const int swap = 0;
#endif
    if (!aligned) {
        snprintf(j->error, sizeof j->error, "%s: out of memory", s->path);
        j->rc = CLIP_ERR_NOMEM;
        return NULL;
    }
    if (sqlite3_prepare_v2(j->db, "SELECT block, used, data FROM vectors WHERE block BETWEEN ? AND ?", -1, &st,
                           NULL) != SQLITE_OK) {
        snprintf(j->error, sizeof j->error, "%s: reading vectors: %s", s->path, sqlite3_errmsg(j->db));
        j->rc = CLIP_ERR_IO;
        free(aligned);
        return NULL;
    }
    sqlite3_bind_int64(st, 1, j->lo);
    sqlite3_bind_int64(st, 2, j->hi);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const int64_t block = sqlite3_column_int64(st, 0);
        const uint64_t used = (uint64_t)sqlite3_column_int64(st, 1);
        const void *data = sqlite3_column_blob(st, 2);
        if ((size_t)sqlite3_column_bytes(st, 2) != block_bytes || !data) {
            snprintf(j->error, sizeof j->error, "%s: damaged index (vector block %lld has %d bytes, not %zu)",
                     s->path, (long long)block, sqlite3_column_bytes(st, 2), block_bytes);
            j->rc = CLIP_ERR_FORMAT;
            break;
        }
        /* SQLite hands the blob over at any byte offset: read floats from an aligned copy
         * unless it is aligned already (or the host is big-endian). */
        const float *v = data;
        if (swap || ((uintptr_t)data & (sizeof(float) - 1))) {
            memcpy(aligned, data, block_bytes);
            if (swap) from_disk(aligned, block_bytes / sizeof(float));
            v = aligned;
        }
        for (int slot = 0; slot < pb; slot++)
            if (used >> slot & 1)
                heap_offer(j->heap, &j->n, j->k, dot(j->q, v + (size_t)slot * dim, dim), block * pb + slot);
    }
    if (!j->rc && r != SQLITE_DONE) {
        snprintf(j->error, sizeof j->error, "%s: reading vectors: %s", s->path, sqlite3_errmsg(j->db));
        j->rc = CLIP_ERR_IO;
    }
    sqlite3_finalize(st);
    free(aligned);
    return NULL;
}

int index_search(index_store *s, const float *query, int k, int n_threads, index_hit **hits, int *n_hits) {
    *hits = NULL;
    *n_hits = 0;
    if (k < 1 || !s->model_id[0]) return CLIP_OK;
    sqlite3_stmt *st;
    int rc = prepare(s, "SELECT min(block), max(block), count(*) FROM vectors", &st);
    if (rc) return rc;
    int64_t lo = 0, hi = -1, n_blocks = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        lo = sqlite3_column_int64(st, 0);
        hi = sqlite3_column_int64(st, 1);
        n_blocks = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    /* Threads pay off from a few hundred blocks (about ten thousand images) on. */
    if (n_threads > 8) n_threads = 8;
    if (n_threads < 1 || n_blocks < 256) n_threads = 1;
    scan_job jobs[8];
    pthread_t tid[8];
    int started[8] = {0};
    memset(jobs, 0, sizeof jobs);
    const int64_t span = (hi - lo + 1 + n_threads - 1) / n_threads;
    for (int t = 0; t < n_threads && !rc; t++) {
        scan_job *j = &jobs[t];
        j->s = s;
        j->q = query;
        j->k = k;
        j->lo = lo + t * span;
        j->hi = t == n_threads - 1 ? hi : lo + (t + 1) * span - 1;
        if (!(j->heap = malloc(sizeof(scored) * (size_t)k))) rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path);
        j->db = s->db;
        if (!rc && t > 0) {
            j->db = NULL;
            if (sqlite3_open_v2(s->path, &j->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
                sqlite3_exec(j->db, "PRAGMA mmap_size = 1099511627776", NULL, NULL, NULL) != SQLITE_OK)
                rc = clip_fail(CLIP_ERR_IO, "%s: %s", s->path, j->db ? sqlite3_errmsg(j->db) : "cannot open");
            if (!rc) sqlite3_busy_timeout(j->db, 10000);
        }
    }
    for (int t = 1; t < n_threads && !rc; t++) started[t] = thread_start_quiet(&tid[t], scan, &jobs[t]) == 0;
    if (!rc) scan(&jobs[0]);
    for (int t = 1; t < n_threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else if (!rc) scan(&jobs[t]);   /* no thread: do its share here */
    }
    /* Merge the heaps into the first. */
    int n = 0;
    for (int t = 0; t < n_threads && !rc; t++) {
        if (jobs[t].rc) rc = clip_fail(jobs[t].rc, "%s", jobs[t].error);
        for (int i = 0; !rc && t > 0 && i < jobs[t].n; i++)
            heap_offer(jobs[0].heap, &jobs[0].n, k, jobs[t].heap[i].score, jobs[t].heap[i].id);
    }
    for (int t = 1; t < n_threads; t++) sqlite3_close(jobs[t].db);
    scored *heap = jobs[0].heap;
    if (!rc) n = jobs[0].n;
    for (int t = 1; t < n_threads; t++) free(jobs[t].heap);

    index_hit *out = NULL;
    if (!rc && n > 0 && !(out = calloc((size_t)n, sizeof *out)))
        rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path);
    st = NULL;
    if (!rc && n > 0) rc = prepare(s, "SELECT path FROM images WHERE id = ?", &st);
    for (int i = 0; !rc && i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, heap[i].id);
        if (sqlite3_step(st) != SQLITE_ROW) {
            rc = clip_fail(CLIP_ERR_FORMAT, "%s: damaged index (vector slot %lld has no image)", s->path,
                           (long long)heap[i].id);
            break;
        }
        const char *p = (const char *)sqlite3_column_text(st, 0);
        out[i].path = strdup(p ? p : "");
        out[i].score = heap[i].score;
        if (!out[i].path) rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", s->path);
    }
    sqlite3_finalize(st);
    free(heap);
    if (rc) {
        index_free_hits(out, n);
        return rc;
    }
    if (n > 0) qsort(out, (size_t)n, sizeof *out, by_score_then_path);
    *hits = out;
    *n_hits = n;
    return CLIP_OK;
}

/* ---- Export / merge ----------------------------------------------------------------------- */
int index_foreach(index_store *s, index_visit_fn fn, void *user) {
    if (!s->model_id[0]) return CLIP_OK;
    const int dim = s->dim, pb = s->per_block;
    const size_t block_len = (size_t)pb * dim;
    sqlite3_stmt *st;
    int rc = prepare(s, "SELECT max(block) FROM vectors", &st);
    if (rc) return rc;
    int64_t n_blocks = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) + 1 : 0;
    sqlite3_finalize(st);
    if (n_blocks < 0 || n_blocks > ((int64_t)1 << 40) / (int64_t)pb)
        return clip_fail(CLIP_ERR_FORMAT, "%s: damaged index (%lld vector blocks)", s->path, (long long)n_blocks);
    float *all = n_blocks ? calloc((size_t)n_blocks * block_len, sizeof(float)) : NULL;
    uint64_t *used = n_blocks ? calloc((size_t)n_blocks, sizeof(uint64_t)) : NULL;
    if (n_blocks && (!all || !used)) rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory for %lld vectors", s->path, (long long)(n_blocks * pb));
    if (!rc) rc = prepare(s, "SELECT block, used, data FROM vectors", &st);
    int r = SQLITE_DONE;
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t b = sqlite3_column_int64(st, 0);
        if (b < 0 || b >= n_blocks || (size_t)sqlite3_column_bytes(st, 2) != block_len * sizeof(float)) {
            rc = clip_fail(CLIP_ERR_FORMAT, "%s: damaged index (vector block %lld)", s->path, (long long)b);
            break;
        }
        used[b] = (uint64_t)sqlite3_column_int64(st, 1);
        memcpy(all + (size_t)b * block_len, sqlite3_column_blob(st, 2), block_len * sizeof(float));
        from_disk(all + (size_t)b * block_len, block_len);
    }
    if (!rc && r != SQLITE_DONE) rc = db_fail(s, CLIP_ERR_IO, "reading vectors");
    if (!rc) sqlite3_finalize(st);
    if (!rc) rc = prepare(s, "SELECT id, path, size, mtime_ns FROM images ORDER BY path", &st);
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0), b = id / pb;
        if (id < 0 || b >= n_blocks || !(used[b] >> (id % pb) & 1)) {
            rc = clip_fail(CLIP_ERR_FORMAT, "%s: damaged index (image %lld has no vector)", s->path, (long long)id);
            break;
        }
        const char *p = (const char *)sqlite3_column_text(st, 1);
        rc = fn(user, p ? p : "", sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                all + (size_t)id * dim);
    }
    if (!rc && r != SQLITE_DONE) rc = db_fail(s, CLIP_ERR_IO, "reading the index");
    sqlite3_finalize(st);
    free(all);
    free(used);
    return rc;
}

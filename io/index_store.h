/* index_store.h - an image index: paths, sizes, mtimes and embedding vectors in one SQLite
 * file (format: docs/INDEX.md). Knows nothing of command-line flags or of the model: the
 * caller passes vectors (L2-normalized float32) and a model identity string.
 *
 * Writes happen inside transactions the caller opens and commits (index_begin/commit), so a
 * process killed at any moment leaves the file as of the last commit: the previous index
 * plus every batch committed since.
 *
 * Vectors are stored in blocks of `per_block` consecutive slots (one SQLite row per block,
 * small enough to sit on one 64 KiB page), so a search reads a few thousand rows straight
 * from the memory-mapped file instead of one row per image.
 */
#ifndef CLIP_IO_INDEX_STORE_H
#define CLIP_IO_INDEX_STORE_H

#include <stddef.h>
#include <stdint.h>

#define INDEX_FORMAT "clip_run image index"
#define INDEX_VERSION 1

typedef struct index_store index_store;

typedef struct {
    char *path;
    int64_t size, mtime_ns;
} index_entry;

typedef struct {
    char *path;
    float score;
} index_hit;

/* Open an index. writable: create it if missing (an empty file counts as missing) and
 * allow writes. A file that is not an index (not SQLite, or SQLite without this format's
 * meta table) is refused without being touched. */
int index_open(const char *path, int writable, index_store **out);
void index_close(index_store *s);

/* The model identity: on a new index (no identity yet, writable) it is recorded; otherwise
 * it must equal the stored one (CLIP_ERR_ARG with a message naming both). */
int index_bind_model(index_store *s, const char *model_id, const char *model_name, int dim);
/* The stored identity (empty strings and 0 when none). */
void index_model(const index_store *s, const char **model_id, const char **model_name, int *dim);

/* Every entry, sorted by path (byte order). Free with index_free_entries. */
int index_list(index_store *s, index_entry **out, size_t *n);
void index_free_entries(index_entry *e, size_t n);
int64_t index_count(index_store *s);

/* Writes, only between index_begin and index_commit. put: insert, or replace the entry of
 * that path (its slot keeps its place). vec: dim floats. */
int index_begin(index_store *s);
int index_commit(index_store *s);
void index_rollback(index_store *s);
int index_put(index_store *s, const char *path, int64_t size, int64_t mtime_ns, const float *vec);
int index_remove(index_store *s, const char *path);

/* The k best entries by dot product with query (cosine for normalized vectors), best
 * first; ties by path. *n_hits <= k. n_threads (1..8) scan parts of a large index at once,
 * each through its own read-only connection. Free with index_free_hits. */
int index_search(index_store *s, const float *query, int k, int n_threads, index_hit **hits, int *n_hits);
void index_free_hits(index_hit *h, int n);

/* Calls fn for every entry in path order with its vector; stops at the first non-zero
 * return of fn and returns it. */
typedef int (*index_visit_fn)(void *user, const char *path, int64_t size, int64_t mtime_ns,
                              const float *vec);
int index_foreach(index_store *s, index_visit_fn fn, void *user);

#endif

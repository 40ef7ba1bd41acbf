/* cmd_search.c - image search from the command line, thin glue over io/index_store.h:
 *
 *   index MODEL PATH... -o INDEX     encode new and changed images into an SQLite index
 *   search MODEL INDEX QUERY...      the K best images for each text (or --image)
 *   export INDEX --npy/--paths/--jsonl   the vectors for numpy, FAISS, vector databases
 *   merge OUT IN...                  join shard indexes (index --shard I/N)
 *
 * The index is updated in place: every batch of encoded images is one SQLite transaction,
 * so a kill at any moment leaves the previous entries intact plus whole batches, and the
 * next run skips what was saved (path, size and mtime unchanged). Format: docs/INDEX.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../io/atomic.h"
#include "../io/index_store.h"
#include "../io/thumbnail.h"
#include "../model/clip.h"
#include "cli.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* FNV-1a of the stored path: which shard a file belongs to, the same on every machine
 * that sees the files under the same absolute path. */
static uint64_t path_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int same_file(const char *a, const char *b) {
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* ---- index -------------------------------------------------------------------------------- */
typedef struct {
    int added, changed, removed, skipped;
    int64_t total;
} index_counts;

static void print_summary(const index_counts *c) {
    fprintf(stderr, "index: %d added, %d changed, %d removed, %d skipped, %lld total\n", c->added, c->changed,
            c->removed, c->skipped, (long long)c->total);
}

/* done/total, images/s, ETA: on a terminal only (a log file gets the summary alone). */
static void progress(int done, int total, double t0) {
    double dt = now_s() - t0, rate = dt > 0 ? done / dt : 0;
    int eta = rate > 0 ? (int)((total - done) / rate + 0.5) : 0;
    char bar[31];
    int fill = total ? (int)(30.0 * done / total) : 30;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %d/%d  %.1f images/s  ETA %d:%02d:%02d ", bar, done, total, rate, eta / 3600,
            eta / 60 % 60, eta % 60);
    fflush(stderr);
}

/* Is path inside one of the roots the user named (a directory's files, or a file itself)?
 * Only entries inside the roots are candidates for removal: indexing photos/2024 into an
 * index that also holds photos/2023 leaves 2023 alone. */
typedef struct {
    char **root;
    int *is_dir;
    int n;
} roots;

static int in_roots(const roots *r, const char *path) {
    for (int i = 0; i < r->n; i++) {
        size_t n = strlen(r->root[i]);
        if (strncmp(path, r->root[i], n) != 0) continue;
        if (!r->is_dir[i] ? path[n] == 0 : (path[n] == '/' || (n && r->root[i][n - 1] == '/'))) return 1;
    }
    return 0;
}

static int add_root(roots *r, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* gather_files reports it */
    char *real = NULL;
    if (S_ISDIR(st.st_mode)) real = realpath(path, NULL);
    else {
        /* the same spelling gather_files uses: the real directory plus the name */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        char *rd = dir ? realpath(dir, NULL) : NULL;
        free(dir);
        if (rd) {
            const char *base = slash ? slash + 1 : path;
            size_t len = strlen(rd) + strlen(base) + 2;
            if ((real = malloc(len))) snprintf(real, len, "%s%s%s", rd, strcmp(rd, "/") ? "/" : "", base);
            free(rd);
        }
    }
    if (!real) return fail("out of memory");
    r->root[r->n] = real;
    r->is_dir[r->n++] = S_ISDIR(st.st_mode);
    return 0;
}

static int by_path(const void *x, const void *y) {
    return strcmp(((const file_item *)x)->path, ((const file_item *)y)->path);
}

int cmd_index(args *a) {
    if (a->n_pos < 1 || (a->n_pos < 2 && !a->file))
        return usage_error(a->cmd, "index needs MODEL and PATH... (images or directories) or -f LIST");
    if (!a->output) return usage_error(a->cmd, "index needs -o INDEX");
    if (strcmp(a->output, "-") == 0) return usage_error(a->cmd, "an index is a file (SQLite), not standard output");
    const int batch = a->batch > 0 ? a->batch : 8;

    /* What is there: every image under the PATHs, absolute, sorted, each once. */
    file_list files;
    int rc = gather_files(a, 1, 1, 1, &files);
    if (rc) return rc;
    qsort(files.items, (size_t)files.n, sizeof *files.items, by_path);
    int kept = 0;
    for (int i = 0; i < files.n; i++) {
        file_item *it = &files.items[i];
        int dup = kept > 0 && strcmp(files.items[kept - 1].path, it->path) == 0;
        int other_shard = a->shard_n > 0 && path_hash(it->path) % (uint64_t)a->shard_n != (uint64_t)a->shard_i;
        if (dup || other_shard) free(it->path);
        else files.items[kept++] = *it;
    }
    files.n = kept;
    for (int i = 0; i < files.n; i++)
        if (same_file(files.items[i].path, a->output)) {
            free_files(&files);
            return fail("-o %s is one of the images to index", a->output);
        }

    roots scope = {calloc((size_t)a->n_pos + 1, sizeof(char *)), calloc((size_t)a->n_pos + 1, sizeof(int)), 0};
    if (!scope.root || !scope.is_dir) rc = fail("out of memory");
    for (int i = 1; !rc && i < a->n_pos; i++) rc = add_root(&scope, a->pos[i]);

    session s = {0};
    index_store *ix = NULL;
    index_counts counts = {0};
    int opened = 0;
    index_entry *old = NULL;
    size_t n_old = 0;
    if (!rc) rc = open_session(a->pos[0], a, 1, &s);
    if (!rc && same_file(a->pos[0], a->output)) rc = fail("-o %s is the model", a->output);
    if (!rc && index_open(a->output, 1, &ix) != CLIP_OK) rc = api_fail();
    if (!rc) {
        opened = 1;
        char id[17];
        clip_model_identity(s.model, id);
        if (index_bind_model(ix, id, s.cfg->name, s.cfg->embed_dim) != CLIP_OK) rc = api_fail();
    }
    if (!rc && index_list(ix, &old, &n_old) != CLIP_OK) rc = api_fail();

    /* Compare (both sorted by path): new, changed, unchanged; and what is gone. */
    int *todo = malloc(sizeof(int) * ((size_t)files.n + 1));
    char *is_change = calloc((size_t)files.n + 1, 1);
    char **gone = malloc(sizeof(char *) * (n_old + 1));
    int n_todo = 0, n_gone = 0;
    /* Only -f LIST: the index mirrors the list. */
    const int all_in_scope = a->n_pos == 1;
    if (!rc && (!todo || !is_change || !gone)) rc = fail("out of memory");
    if (!rc) {
        size_t j = 0;
        for (int i = 0; i < files.n; i++) {
            int c = 1;
            while (j < n_old && (c = strcmp(old[j].path, files.items[i].path)) < 0) {
                if (all_in_scope || in_roots(&scope, old[j].path)) gone[n_gone++] = old[j].path;
                j++;
            }
            if (j < n_old && c == 0) {
                if (old[j].size != files.items[i].size || old[j].mtime_ns != files.items[i].mtime_ns) {
                    is_change[n_todo] = 1;
                    todo[n_todo++] = i;
                }
                j++;
            } else {
                todo[n_todo++] = i;
            }
        }
        for (; j < n_old; j++)
            if (all_in_scope || in_roots(&scope, old[j].path)) gone[n_gone++] = old[j].path;
    }

    /* Encode in batches; each batch is one transaction. */
    const int size = s.cfg ? s.cfg->image_size : 0, dim = s.cfg ? s.cfg->embed_dim : 0;
    const size_t image_len = (size_t)3 * size * size;
    float *pixels = rc ? NULL : malloc(sizeof(float) * image_len * (size_t)batch);
    float *embeds = rc ? NULL : malloc(sizeof(float) * (size_t)dim * batch);
    int *slot = malloc(sizeof(int) * (size_t)batch);
    char *slot_change = malloc((size_t)batch);
    if (!rc && (!pixels || !embeds || !slot || !slot_change)) rc = fail("out of memory");
    const int tty = isatty(2);
    const double t0 = now_s();
    double last_draw = 0;
    for (int first = 0; !rc && first < n_todo; first += batch) {
        const int count = n_todo - first < batch ? n_todo - first : batch;
        int loaded = 0;
        for (int i = 0; i < count; i++) {
            const file_item *it = &files.items[todo[first + i]];
            if (clip_image_load(s.model, it->path, pixels + (size_t)loaded * image_len) != CLIP_OK) {
                if (tty) fputs("\r\033[K", stderr);
                warn("%s (skipped)", clip_last_error());
                counts.skipped++;
                /* a changed file that no longer decodes: its old vector is stale */
                if (is_change[first + i]) {
                    if (index_begin(ix) != CLIP_OK || index_remove(ix, it->path) != CLIP_OK ||
                        index_commit(ix) != CLIP_OK) rc = api_fail();
                }
                continue;
            }
            slot[loaded] = todo[first + i];
            slot_change[loaded++] = is_change[first + i];
        }
        if (!rc && loaded && clip_encode_images(s.ctx, pixels, loaded, embeds) != CLIP_OK) rc = api_fail();
        if (!rc && loaded) {
            if (index_begin(ix) != CLIP_OK) rc = api_fail();
            for (int i = 0; !rc && i < loaded; i++) {
                const file_item *it = &files.items[slot[i]];
                clip_normalize(embeds + (size_t)i * dim, dim);
                if (index_put(ix, it->path, it->size, it->mtime_ns, embeds + (size_t)i * dim) != CLIP_OK)
                    rc = api_fail();
            }
            if (!rc && index_commit(ix) != CLIP_OK) rc = api_fail();
            if (rc) index_rollback(ix);
            for (int i = 0; !rc && i < loaded; i++) {
                if (slot_change[i]) counts.changed++;
                else counts.added++;
            }
        }
        if (tty && !rc && (now_s() - last_draw > 0.1 || first + count == n_todo)) {
            progress(first + count, n_todo, t0);
            last_draw = now_s();
        }
    }
    if (tty && n_todo) fputs("\r\033[K", stderr);

    /* Files gone (deleted, now excluded, or of another shard): dropped in one transaction. */
    if (!rc && n_gone) {
        if (index_begin(ix) != CLIP_OK) rc = api_fail();
        for (int i = 0; !rc && i < n_gone; i++)
            if (index_remove(ix, gone[i]) != CLIP_OK) rc = api_fail();
        if (!rc && index_commit(ix) != CLIP_OK) rc = api_fail();
        if (rc) index_rollback(ix);
        else counts.removed = n_gone;
    }
    if (opened) counts.total = index_count(ix);
    if (!rc && opened && counts.total == 0)
        rc = fail(files.n ? "nothing could be indexed (every image was skipped)" : "no images found under the PATHs given");

    free(pixels);
    free(embeds);
    free(slot);
    free(slot_change);
    free(todo);
    free(is_change);
    free(gone);
    index_free_entries(old, n_old);
    index_close(ix);
    for (int i = 0; scope.root && i < scope.n; i++) free(scope.root[i]);
    free(scope.root);
    free(scope.is_dir);
    free_files(&files);
    if (s.model) close_session(&s);   /* its notes come before the summary, the last line */
    if (opened) print_summary(&counts);
    return rc;
}

/* ---- search ------------------------------------------------------------------------------- */
typedef struct {
    const char *text;      /* the query as given (text, or the image path) */
    int is_image;
    index_hit *hits;
    int n_hits;
} query_result;

static void html_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* One self-contained page: thumbnails are data: URIs, no file or network is referenced. */
static int write_html(const char *path, const char *index_path, const query_result *q, int n_q) {
    atomic_file af;
    if (atomic_open(&af, path) != CLIP_OK) return api_fail();
    FILE *f = af.file;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>clip_run search</title>\n<style>\n"
          "body{font-family:sans-serif;margin:16px;background:#fafafa;color:#222}\n"
          "h2{font-size:18px;margin:20px 0 8px}\n"
          ".grid{display:flex;flex-wrap:wrap;gap:12px}\n"
          "figure{margin:0;width:160px;background:#fff;border:1px solid #ddd;padding:6px}\n"
          "figure img{width:160px;height:160px;display:block;image-rendering:auto}\n"
          "figcaption{font-size:11px;word-break:break-all;margin-top:4px}\n"
          ".score{font-weight:bold;font-size:13px}\n.missing{width:160px;height:160px;background:#eee;"
          "display:flex;align-items:center;justify-content:center;font-size:11px}\n"
          "</style></head><body>\n<h1 style=\"font-size:20px\">clip_run search: ", f);
    html_text(f, index_path);
    fputs("</h1>\n", f);
    int rc = 0;
    for (int i = 0; !rc && i < n_q; i++) {
        fputs("<section class=\"query\"><h2>", f);
        fputs(q[i].is_image ? "image: " : "", f);
        html_text(f, q[i].text);
        fputs("</h2>\n<div class=\"grid\">\n", f);
        for (int k = 0; k < q[i].n_hits; k++) {
            unsigned char *jpeg = NULL;
            size_t n = 0;
            char *b64 = NULL;
            fprintf(f, "<figure>");
            if (image_thumbnail_jpeg(q[i].hits[k].path, 160, &jpeg, &n) == CLIP_OK && (b64 = base64_encode(jpeg, n))) {
                fprintf(f, "<img alt=\"\" src=\"data:image/jpeg;base64,%s\">", b64);
            } else {
                warn("%s (no thumbnail)", clip_last_error());
                fputs("<div class=\"missing\">unreadable</div>", f);
            }
            free(jpeg);
            free(b64);
            fprintf(f, "<figcaption><span class=\"score\">%.4f</span><br>", q[i].hits[k].score);
            html_text(f, q[i].hits[k].path);
            fputs("</figcaption></figure>\n", f);
        }
        fputs("</div></section>\n", f);
    }
    fputs("</body></html>\n", f);
    if (ferror(f)) {
        atomic_abort(&af);
        return fail("%s: write error", path);
    }
    return atomic_commit(&af) == CLIP_OK ? 0 : api_fail();
}

int cmd_search(args *a) {
    if (a->n_pos < 2) return usage_error(a->cmd, "search needs MODEL, INDEX and QUERY... (or --image IMG)");
    if (a->n_pos < 3 && !a->image) return usage_error(a->cmd, "search needs a text QUERY or --image IMG");
    for (int i = 2; i < a->n_pos; i++)
        if (!a->pos[i][0]) return usage_error(a->cmd, "empty query (query %d)", i - 1);
    if (a->html && (same_file(a->html, a->pos[0]) || same_file(a->html, a->pos[1])))
        return fail("--html %s is the model or the index", a->html);
    const int k = a->top > 0 ? a->top : 10;
    index_store *ix = NULL;
    if (index_open(a->pos[1], 0, &ix) != CLIP_OK) return api_fail();
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) { index_close(ix); return rc; }
    char id[17];
    clip_model_identity(s.model, id);
    if (index_bind_model(ix, id, s.cfg->name, s.cfg->embed_dim) != CLIP_OK) rc = api_fail();
    const int dim = s.cfg->embed_dim, size = s.cfg->image_size;
    const int n_q = a->n_pos - 2 + (a->image ? 1 : 0);
    query_result *q = calloc((size_t)n_q, sizeof *q);
    float *embed = malloc(sizeof(float) * dim);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    float *pixels = a->image ? malloc(sizeof(float) * 3 * size * size) : NULL;
    if (!rc && (!q || !embed || !ids || (a->image && !pixels))) rc = fail("out of memory");
    for (int i = 0; !rc && i < n_q; i++) {
        if (i < a->n_pos - 2) {
            q[i].text = a->pos[2 + i];
            rc = embed_text(&s, q[i].text, strlen(q[i].text), ids, embed);
        } else {
            q[i].text = a->image;
            q[i].is_image = 1;
            rc = embed_image(&s, a->image, pixels, embed);
        }
        if (rc) break;
        clip_normalize(embed, dim);
        if (index_search(ix, embed, k, clip_context_threads(s.ctx), &q[i].hits, &q[i].n_hits) != CLIP_OK) {
            rc = api_fail();
            break;
        }
        if (a->json) {
            fputs("{\"query\": ", stdout);
            json_string(stdout, q[i].text, strlen(q[i].text));
            fputs(", \"results\": [", stdout);
            for (int h = 0; h < q[i].n_hits; h++) {
                fputs(h ? ", {\"path\": " : "{\"path\": ", stdout);
                json_string(stdout, q[i].hits[h].path, strlen(q[i].hits[h].path));
                printf(", \"score\": %.6f}", q[i].hits[h].score);
            }
            fputs("]}\n", stdout);
        } else {
            if (n_q > 1) printf("# %s\n", q[i].text);
            for (int h = 0; h < q[i].n_hits; h++) printf("%.6f\t%s\n", q[i].hits[h].score, q[i].hits[h].path);
        }
    }
    if (!rc && a->html) rc = write_html(a->html, a->pos[1], q, n_q);
    fflush(stdout);
    for (int i = 0; q && i < n_q; i++) index_free_hits(q[i].hits, q[i].n_hits);
    free(q);
    free(embed);
    free(ids);
    free(pixels);
    close_session(&s);
    index_close(ix);
    return rc;
}

/* ---- export ------------------------------------------------------------------------------- */
typedef struct {
    float *vectors;
    int n, cap, dim;
    FILE *paths, *jsonl;
    const char *paths_name;
    int bad_path;
} export_state;

static int export_one(void *user, const char *path, int64_t size, int64_t mtime_ns, const float *vec) {
    export_state *e = user;
    if (e->vectors) {
        if (e->n == e->cap) {
            int cap = e->cap ? 2 * e->cap : 1024;
            float *grown = realloc(e->vectors, sizeof(float) * (size_t)cap * e->dim);
            if (!grown) return fail("out of memory");
            e->vectors = grown;
            e->cap = cap;
        }
        memcpy(e->vectors + (size_t)e->n * e->dim, vec, sizeof(float) * e->dim);
    }
    e->n++;
    if (e->paths) {
        if (strchr(path, '\n')) return fail("%s: a path contains a newline; use --jsonl", e->paths_name);
        fprintf(e->paths, "%s\n", path);
    }
    if (e->jsonl) {
        fputs("{\"path\": ", e->jsonl);
        json_string(e->jsonl, path, strlen(path));
        fprintf(e->jsonl, ", \"size\": %lld, \"mtime_ns\": %lld, \"vector\": [", (long long)size, (long long)mtime_ns);
        for (int i = 0; i < e->dim; i++) fprintf(e->jsonl, i ? ", %.9g" : "%.9g", vec[i]);
        fputs("]}\n", e->jsonl);
    }
    return 0;
}

int cmd_export(args *a) {
    if (a->n_pos != 1) return usage_error(a->cmd, "export takes one INDEX");
    if (!a->npy && !a->paths && !a->jsonl) return usage_error(a->cmd, "export needs --npy, --paths or --jsonl");
    const char *outs[] = {a->npy, a->paths, a->jsonl};
    for (int i = 0; i < 3; i++)
        if (outs[i] && same_file(outs[i], a->pos[0])) return fail("%s is the index", outs[i]);
    index_store *ix;
    if (index_open(a->pos[0], 0, &ix) != CLIP_OK) return api_fail();
    int dim;
    index_model(ix, NULL, NULL, &dim);
    export_state e = {0};
    e.dim = dim;
    atomic_file pf = {0}, jf = {0};
    int rc = 0;
    if (a->npy && dim > 0 && !(e.vectors = malloc(sizeof(float) * dim))) rc = fail("out of memory");
    e.cap = e.vectors ? 1 : 0;
    if (!rc && a->paths) {
        if (atomic_open(&pf, a->paths) != CLIP_OK) rc = api_fail();
        else e.paths = pf.file, e.paths_name = a->paths;
    }
    if (!rc && a->jsonl) {
        if (atomic_open(&jf, a->jsonl) != CLIP_OK) rc = api_fail();
        else e.jsonl = jf.file;
    }
    if (!rc) {
        rc = index_foreach(ix, export_one, &e);
        if (rc < 0) rc = api_fail();
    }
    if (!rc && a->npy) {
        int64_t dims[2] = {e.n, dim > 0 ? dim : 0};
        rc = write_embeddings(a->npy, e.vectors, (int)dims[0], (int)dims[1]);
    }
    if (e.paths) { if (rc || atomic_commit(&pf) != CLIP_OK) { atomic_abort(&pf); if (!rc) rc = api_fail(); } }
    if (e.jsonl) { if (rc || atomic_commit(&jf) != CLIP_OK) { atomic_abort(&jf); if (!rc) rc = api_fail(); } }
    free(e.vectors);
    index_close(ix);
    return rc;
}

/* ---- merge -------------------------------------------------------------------------------- */
typedef struct {
    index_store *out;
    int in_batch, total, replaced;
} merge_state;

static int merge_one(void *user, const char *path, int64_t size, int64_t mtime_ns, const float *vec) {
    merge_state *m = user;
    /* Commit every 1000 entries: a killed merge keeps what it did and can be re-run. */
    if (m->in_batch == 0 && index_begin(m->out) != CLIP_OK) return api_fail();
    if (index_put(m->out, path, size, mtime_ns, vec) != CLIP_OK) return api_fail();
    m->total++;
    if (++m->in_batch == 1000) {
        m->in_batch = 0;
        if (index_commit(m->out) != CLIP_OK) return api_fail();
    }
    return 0;
}

int cmd_merge(args *a) {
    if (a->n_pos < 2) return usage_error(a->cmd, "merge needs OUT and at least one IN index");
    for (int i = 1; i < a->n_pos; i++)
        if (same_file(a->pos[0], a->pos[i])) return fail("%s: OUT is also an input", a->pos[0]);
    index_store *out;
    if (index_open(a->pos[0], 1, &out) != CLIP_OK) return api_fail();
    merge_state m = {out, 0, 0, 0};
    int rc = 0;
    int64_t before = index_count(out);
    for (int i = 1; !rc && i < a->n_pos; i++) {
        index_store *in;
        if (index_open(a->pos[i], 0, &in) != CLIP_OK) { rc = api_fail(); break; }
        const char *id, *name;
        int dim;
        index_model(in, &id, &name, &dim);
        if (!id[0]) { index_close(in); continue; }   /* an index never written to: nothing to take */
        if (index_bind_model(out, id, name, dim) != CLIP_OK) rc = api_fail();
        if (!rc) {
            rc = index_foreach(in, merge_one, &m);
            if (rc < 0) rc = api_fail();
        }
        if (!rc && m.in_batch) {
            m.in_batch = 0;
            if (index_commit(out) != CLIP_OK) rc = api_fail();
        }
        if (rc && m.in_batch) index_rollback(out);
        index_close(in);
    }
    int64_t total = index_count(out);
    if (!rc) fprintf(stderr, "merge: %d entries from %d indexes (%lld new), %lld total\n", m.total, a->n_pos - 1,
                     (long long)(total - before), (long long)total);
    index_close(out);
    return rc;
}

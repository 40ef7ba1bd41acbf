/* cli_files.c - lists of input images for embed-image, classify and index (tools/cli.h):
 * files as named, directories walked recursively, and -f LIST (one path per line, or
 * NUL-separated with -0; '-' = stdin), so 100,000 files never meet the argument limit.
 */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"

int is_image_name(const char *name) {
    static const char *const ext[] = {"jpg", "jpeg", "png", "bmp", "gif", "ppm", "pgm"};
    const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
    if (!dot || (slash && dot < slash)) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcasecmp(dot + 1, ext[i]) == 0) return 1;
    return 0;
}

/* --exclude GLOB matches the whole path or its last component (a file or directory name). */
static int excluded(const args *a, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (int i = 0; i < a->n_excludes; i++)
        if (fnmatch(a->excludes[i], path, 0) == 0 || fnmatch(a->excludes[i], base, 0) == 0) return 1;
    return 0;
}

static int add(file_list *l, const char *path, const struct stat *st) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        file_item *grown = realloc(l->items, sizeof *grown * (size_t)cap);
        if (!grown) return fail("out of memory");
        l->items = grown;
        l->cap = cap;
    }
    file_item *it = &l->items[l->n];
    if (!(it->path = strdup(path))) return fail("out of memory");
    it->size = st ? (int64_t)st->st_size : 0;
    it->mtime_ns = st ? (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec : 0;
    l->n++;
    return 0;
}

static int by_name(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

static int walk(const args *a, const char *dir, file_list *out, int depth) {
    if (depth > 256) { warn("%s: directories nested too deep, not entered", dir); return 0; }
    DIR *d = opendir(dir);
    if (!d) { warn("%s: %s (directory skipped)", dir, strerror(errno)); return 0; }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, sizeof *grown * cap);
            if (!grown) { rc = fail("out of memory"); break; }
            names = grown;
        }
        if (!(names[n++] = strdup(e->d_name))) rc = fail("out of memory");
    }
    closedir(d);
    if (!rc) qsort(names, n, sizeof *names, by_name); /* the same order on every file system */
    size_t dlen = strlen(dir);
    for (size_t i = 0; !rc && i < n; i++) {
        size_t len = dlen + 1 + strlen(names[i]);
        char *path = malloc(len + 1);
        if (!path) { rc = fail("out of memory"); break; }
        snprintf(path, len + 1, "%s%s%s", dir, dlen && dir[dlen - 1] == '/' ? "" : "/", names[i]);
        struct stat st;
        if (lstat(path, &st) == 0 && !excluded(a, path)) {
            if (S_ISDIR(st.st_mode)) rc = walk(a, path, out, depth + 1);
            /* A symlink to a file is taken (stat'ed through); to a directory, not followed:
             * that could loop or index the same tree twice. */
            else if (is_image_name(path) && (S_ISREG(st.st_mode) || (S_ISLNK(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode))))
                rc = add(out, path, &st);
        }
        free(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* An absolute spelling of path: realpath of a directory, realpath of a file's directory
 * plus its own name (a symlinked file keeps its name). */
static char *absolute(const char *path, int is_dir) {
    if (is_dir) return realpath(path, NULL);
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    char *real = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!real) return NULL;
    const char *base = slash ? slash + 1 : path;
    size_t len = strlen(real) + 1 + strlen(base);
    char *out = malloc(len + 1);
    if (out) snprintf(out, len + 1, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", base);
    free(real);
    return out;
}

static int add_path(const args *a, const char *path, int abs, file_list *out) {
    struct stat st;
    if (stat(path, &st) != 0) {
        /* embed-image and classify report it when they read it (or skip it, --keep-going) */
        if (!abs) return excluded(a, path) ? 0 : add(out, path, NULL);
        return fail("%s: %s", path, strerror(errno));
    }
    const int is_dir = S_ISDIR(st.st_mode);
    char *p = abs ? absolute(path, is_dir) : strdup(path);
    if (!p) return fail("%s: %s", path, strerror(errno ? errno : ENOMEM));
    int rc = 0;
    if (is_dir) rc = walk(a, p, out, 0);
    else if (!excluded(a, p)) rc = add(out, p, &st);
    free(p);
    return rc;
}

int gather_files(const args *a, int first_pos, int abs, int allow_empty, file_list *out) {
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (int i = first_pos; !rc && i < a->n_pos; i++) rc = add_path(a, a->pos[i], abs, out);
    if (!rc && a->file) {
        char *buf = NULL;
        size_t len = 0;
        rc = read_all(a->file, &buf, &len);
        const char sep = a->null_sep ? '\0' : '\n';
        for (size_t start = 0, i = 0; !rc && i <= len; i++) {
            if (i < len && buf[i] != sep) continue;
            size_t n = i - start;
            if (!a->null_sep && n && buf[start + n - 1] == '\r') n--;
            if (n) { /* blank lines separate nothing: skipped */
                char save = buf[start + n];
                buf[start + n] = 0;
                if (strlen(buf + start) != n) rc = fail("%s: a path contains a NUL byte (use -0 for NUL-separated lists)", a->file);
                else rc = add_path(a, buf + start, abs, out);
                buf[start + n] = save;
            }
            start = i + 1;
        }
        free(buf);
    }
    if (!rc && out->n == 0 && !allow_empty) rc = usage_error(a->cmd, "no image given (IMAGE..., a directory or -f LIST)");
    if (rc) free_files(out);
    return rc;
}

void free_files(file_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i].path);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* cli_common.c - what the clip_run commands share (tools/cli.h): error lines, the option
 * parser, text lists from arguments and -f FILE, JSON strings, and the steps of opening a
 * model, loading pixels and embedding an image or a text.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>

#include "../io/atomic.h"
#include "../io/npy.h"
#include "../kernels/gemm.h"
#include "../model/clip.h"
#include "cli.h"

/* ---- Errors ----------------------------------------------------------------------------- */
int usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clip_run: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'clip_run %s--help')\n", cmd ? cmd : "");
    va_end(ap);
    return 2;
}

/* Set by every error: notes and warnings kept for the end of a run are then not printed,
 * so a failure stays one line on stderr. */
static int cli_failed;

int fail(const char *fmt, ...) {
    cli_failed = 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clip_run: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int api_fail(void) { return fail("%s", clip_last_error()); }

/* ---- Command-line parsing -------------------------------------------------------------- */
/* Which options a command accepts: a string of letters (the keys below). */
int parse(int argc, char **argv, const char *cmd, const char *accepts, args *a) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->top = -1;
    a->pos = calloc((size_t)argc + 1, sizeof(char *));
    a->labels = calloc((size_t)argc + 1, sizeof(char *));
    a->excludes = calloc((size_t)argc + 1, sizeof(char *));
    a->keeps = calloc((size_t)argc + 1, sizeof(char *));
    if (!a->pos || !a->labels || !a->excludes || !a->keeps) return fail("out of memory");
    int only_positional = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (only_positional || s[0] != '-' || s[1] == 0) {
            a->pos[a->n_pos++] = s;
            continue;
        }
        if (strcmp(s, "--") == 0) { only_positional = 1; continue; }
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) { a->help = 1; continue; }
        /* Options with a value: -o -l -f -t --template --top, also as --opt=value. */
        static const struct { const char *short_, *long_; char key; } with_value[] = {
            {"-o", "--output", 'o'}, {"-l", "--label", 'l'}, {"-f", "--file", 'f'},
            {"-t", "--threads", 't'}, {NULL, "--template", 'T'}, {NULL, "--top", 'k'},
            {NULL, "--batch", 'b'}, {NULL, "--iters", 'n'}, {NULL, "--gemm", 'g'},
            {"-k", "--top", 'k'}, {NULL, "--exclude", 'x'}, {NULL, "--image", 'I'},
            {NULL, "--html", 'H'}, {NULL, "--shard", 'S'}, {NULL, "--npy", 'N'},
            {NULL, "--paths", 'P'}, {NULL, "--jsonl", 'J'}, {NULL, "--paths-out", 'p'},
            {NULL, "--labels", 'L'}, {NULL, "--text", 'X'}, {NULL, "--dump", 'D'},
            {NULL, "--labels", 'L'}, {NULL, "--type", 'y'}, {NULL, "--keep", 'e'},
        };
        static const struct { const char *short_, *long_; char key; } flags[] = {
            {NULL, "--raw", 'r'}, {NULL, "--json", 'j'}, {"-0", "--null", '0'},
            {NULL, "--ids", 'i'}, {NULL, "--keep-going", 'K'}, {NULL, "--no-truncate", 'U'},
            {NULL, "--plain", 'A'}, {NULL, "--no-calibrate", 'R'},
        };
        char key = 0;
        const char *value = NULL;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0] && !key; k++) {
            size_t n = strlen(with_value[k].long_);
            if ((with_value[k].short_ && strcmp(s, with_value[k].short_) == 0) ||
                strcmp(s, with_value[k].long_) == 0) {
                key = with_value[k].key;
                if (i + 1 >= argc) return usage_error(cmd, "option %s needs a value", s);
                value = argv[++i];
            } else if (strncmp(s, with_value[k].long_, n) == 0 && s[n] == '=') {
                key = with_value[k].key;
                value = s + n + 1;
            }
        }
        for (size_t k = 0; k < sizeof flags / sizeof flags[0] && !key; k++)
            if ((flags[k].short_ && strcmp(s, flags[k].short_) == 0) || strcmp(s, flags[k].long_) == 0)
                key = flags[k].key;
        if (!key || !strchr(accepts, key))
            return usage_error(cmd, "unknown option '%s'", s);
        char *end;
        switch (key) {
        case 'o': a->output = value; break;
        case 'l': a->labels[a->n_labels++] = value; break;
        case 'f': a->file = value; break;
        case 'T': a->template_ = value; break;
        case 'g':
            if (gemm_backend_parse(value) < 0)
                return usage_error(cmd, "--gemm takes native or openblas, not '%s'", value);
            a->gemm = value;
            break;
        case 'x': a->excludes[a->n_excludes++] = value; break;
        case 'y': a->type = value; break;
        case 'e': a->keeps[a->n_keeps++] = value; break;
        case 'I': a->image = value; break;
        case 'H': a->html = value; break;
        case 'N': a->npy = value; break;
        case 'P': a->paths = value; break;
        case 'J': a->jsonl = value; break;
        case 'p': a->paths_out = value; break;
        case 'L': a->labels_file = value; break;
        case 'X': a->text = value; break;
        case 'D': a->dump = value; break;
        case 'S': {
            long i_ = -1, n_ = -1;
            char *slash;
            errno = 0;
            i_ = strtol(value, &slash, 10);
            if (slash != value && *slash == '/') n_ = strtol(slash + 1, &end, 10);
            if (errno || n_ < 1 || n_ > 1000000 || *end || end == slash + 1 || i_ < 0 || i_ >= n_)
                return usage_error(cmd, "--shard takes I/N with 0 <= I < N (e.g. 0/4), not '%s'", value);
            a->shard_i = (int)i_;
            a->shard_n = (int)n_;
            break;
        }
        case 't': case 'k': case 'b': case 'n': {
            /* --batch is bounded by what a context can hold; -k by a sane output size. */
            const long max = key == 'b' ? CLIP_MAX_BATCH : key == 'k' ? 1000000 : 4096;
            errno = 0;
            long v = strtol(value, &end, 10);
            if (errno || *end || end == value || v < 1 || v > max)
                return usage_error(cmd, "%s needs a whole number from 1 to %ld, not '%s'", s, max, value);
            if (key == 't') a->threads = (int)v;
            else if (key == 'b') a->batch = (int)v;
            else if (key == 'n') a->iters = (int)v;
            else a->top = (int)v;
            break;
        }
        case 'r': a->raw = 1; break;
        case 'j': a->json = 1; break;
        case '0': a->null_sep = 1; break;
        case 'i': a->ids = 1; break;
        case 'K': a->keep_going = 1; break;
        case 'U': a->no_truncate = 1; break;
        case 'A': a->plain = 1; break;
        case 'R': a->no_calibrate = 1; break;
        }
    }
    return 0;
}

void free_args(args *a) {
    free(a->pos);
    free(a->labels);
    free(a->excludes);
    free(a->keeps);
}

void warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clip_run: warning: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cpu_count(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- Texts: from the command line and from -f FILE (one per line, or NUL-separated) ---- */

int read_all(const char *path, char **out, size_t *n_out) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return fail("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    while (buf) {
        if (n == cap) {
            if (cap >= MAX_INPUT_BYTES) { rc = fail("%s: larger than %d MB", path, MAX_INPUT_BYTES >> 20); break; }
            cap *= 2;
            char *grown = realloc(buf, cap + 1);
            if (!grown) break;
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = fail("%s: read error", path);
            break;
        }
    }
    if (f != stdin) fclose(f);
    if (!buf) return fail("out of memory");
    if (rc) { free(buf); return rc; }
    buf[n] = 0;
    *out = buf;
    *n_out = n;
    return 0;
}

int gather_texts(const args *a, int first_pos, text_list *t) {
    memset(t, 0, sizeof *t);
    size_t file_len = 0;
    if (a->file) {
        int rc = read_all(a->file, &t->buffer, &file_len);
        if (rc) return rc;
    }
    size_t max_texts = (size_t)a->n_pos + file_len + 1;
    t->text = malloc(sizeof(char *) * max_texts);
    t->len = malloc(sizeof(size_t) * max_texts);
    if (!t->text || !t->len) return fail("out of memory");
    for (int i = first_pos; i < a->n_pos; i++) {
        t->text[t->n] = (char *)a->pos[i];
        t->len[t->n++] = strlen(a->pos[i]);
    }
    if (a->file) {
        char sep = a->null_sep ? '\0' : '\n';
        size_t start = 0;
        for (size_t i = 0; i <= file_len; i++) {
            if (i < file_len && t->buffer[i] != sep) continue;
            size_t len = i - start;
            if (!(i == file_len && len == 0)) { /* no empty text after a final separator */
                if (!a->null_sep && len && t->buffer[start + len - 1] == '\r') len--;
                /* A blank line is almost always a stray newline, not a text to embed. With
                 * -0 every entry is deliberate, so an empty one is kept. */
                size_t k = 0;
                while (!a->null_sep && k < len && strchr(" \t\v\f", t->buffer[start + k])) k++;
                if (!a->null_sep && k == len) {
                    size_t line = 1;
                    for (size_t c = 0; c < start; c++) line += t->buffer[c] == '\n';
                    return usage_error(a->cmd, "%s: line %zu is blank (an empty text); remove it, or use -0 "
                                       "for NUL-separated texts", a->file, line);
                }
                t->text[t->n] = t->buffer + start;
                t->len[t->n++] = len;
            }
            start = i + 1;
        }
    }
    for (int i = 0; i < t->n; i++)
        if (t->len[i] > MAX_TEXT_BYTES)
            return fail("text %d is %zu bytes long (limit %d)", i + 1, t->len[i], MAX_TEXT_BYTES);
    if (t->n == 0) return usage_error(a->cmd, "no text given");
    return 0;
}

void free_texts(text_list *t) {
    free(t->text);
    free(t->len);
    free(t->buffer);
}

/* ---- JSON output --------------------------------------------------------------------------- */
void json_string(FILE *out, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') { fprintf(out, "\\%c", c); i++; }
        else if (c < 0x20 || c == 0x7f) { fprintf(out, "\\u%04x", c); i++; }
        else if (c < 0x80) { fputc((int)c, out); i++; }
        else {
            int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            int ok = n > 0 && i + n <= len;
            for (int k = 1; ok && k < n; k++) ok = (p[i + k] & 0xc0) == 0x80;
            if (ok && n == 3) ok = !(c == 0xe0 && p[i + 1] < 0xa0) && !(c == 0xed && p[i + 1] >= 0xa0);
            if (ok && n == 4) ok = !(c == 0xf0 && p[i + 1] < 0x90) && !(c == 0xf4 && p[i + 1] >= 0x90);
            if (ok) { fwrite(p + i, 1, (size_t)n, out); i += (size_t)n; }
            else { fputs("\\ufffd", out); i++; }
        }
    }
    fputc('"', out);
}

/* ---- Shared steps ----------------------------------------------------------------------------- */

/* need_context: also a context for a (threads, batch, --gemm) of the command line. */
int open_session(const char *path, const args *a, int need_context, session *s) {
    memset(s, 0, sizeof *s);
    if (clip_model_load(path, &s->model) != CLIP_OK) return api_fail();
    s->cfg = clip_model_config(s->model);
    s->no_truncate = a->no_truncate;
    if (!need_context) return 0;
    /* More threads than cores only adds switching: -t 999 once ran 300x slower than -t 2. */
    int threads = a->threads;
    const int cores = cpu_count();
    if (threads > cores) {
        s->threads_asked = threads;
        threads = cores;
    }
    if (clip_context_new(s->model, threads, a->batch > 0 ? a->batch : 1, &s->ctx) != CLIP_OK)
        return api_fail();
    if (a->gemm && clip_context_set_gemm(s->ctx, a->gemm) != CLIP_OK) return api_fail();
    return 0;
}

void close_session(session *s) {
    if (!cli_failed && s->threads_asked && s->ctx) {
        const int cores = clip_context_threads(s->ctx);
        fprintf(stderr, "clip_run: note: -t %d is more than the %d core%s this process may use; used %d\n",
                s->threads_asked, cores, cores == 1 ? "" : "s", cores);
    }
    /* The reference refuses texts longer than the context unless asked to truncate: say it
     * once, not per text. */
    if (!cli_failed && s->n_truncated)
        warn("%d text%s longer than the model's context of %d tokens %s truncated (the first: '%s'); "
             "--no-truncate makes this an error", s->n_truncated, s->n_truncated == 1 ? "" : "s",
             s->cfg->text_context, s->n_truncated == 1 ? "was" : "were", s->first_truncated);
    clip_context_free(s->ctx);
    clip_model_free(s->model);
}

int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* An image file, or a .npy already preprocessed to float32 [3, S, S]: pixels [3, S, S]. */
int load_pixels_msg(const session *s, const char *path, float *pixels, char *msg, size_t msg_size) {
    const int size = s->cfg->image_size;
    if (!ends_with(path, ".npy")) {
        if (clip_image_load(s->model, path, pixels) == CLIP_OK) return 0;
        snprintf(msg, msg_size, "%s", clip_last_error());
        return 1;
    }
    npy_array a;
    if (npy_read(path, &a) != CLIP_OK) {
        snprintf(msg, msg_size, "%s", clip_last_error());
        return 1;
    }
    int rc = 0;
    int lead = a.n_dims == 4 && a.dims[0] == 1; /* accept [1, 3, S, S] too */
    if (a.dtype != NPY_F32 || a.n_dims != 3 + lead || a.dims[lead] != 3 ||
        a.dims[lead + 1] != size || a.dims[lead + 2] != size) {
        snprintf(msg, msg_size, "%s: expected a float32 array of shape [3, %d, %d] (a preprocessed image)", path,
                 size, size);
        rc = 1;
    }
    for (size_t i = 0; !rc && i < a.n_elems; i++)
        if (!isfinite(((float *)a.data)[i])) {
            snprintf(msg, msg_size, "%s: contains NaN or infinity", path);
            rc = 1;
        }
    if (!rc) memcpy(pixels, a.data, sizeof(float) * a.n_elems);
    npy_free(&a);
    return rc;
}

int load_pixels(const session *s, const char *path, float *pixels) {
    char msg[1024];
    return load_pixels_msg(s, path, pixels, msg, sizeof msg) ? fail("%s", msg) : 0;
}

int embed_image(session *s, const char *path, float *pixels, float *embed) {
    int rc = load_pixels(s, path, pixels);
    if (!rc && clip_encode_images(s->ctx, pixels, 1, embed) != CLIP_OK) rc = api_fail();
    return rc;
}

/* "49406 320 1125 49407": token ids given directly (--ids), zero padded to the context. */
int parse_ids(const session *s, const char *text, size_t len, int32_t *ids) {
    const int context = s->cfg->text_context;
    int n = 0;
    size_t i = 0;
    memset(ids, 0, sizeof(int32_t) * (size_t)context);
    while (i < len) {
        if (text[i] == ' ' || text[i] == ',' || text[i] == '\t') { i++; continue; }
        long v = 0;
        size_t start = i;
        while (i < len && text[i] >= '0' && text[i] <= '9' && v <= s->cfg->text_vocab) v = v * 10 + (text[i++] - '0');
        if (i == start || (i < len && text[i] != ' ' && text[i] != ',' && text[i] != '\t'))
            return fail("--ids: '%.40s' is not a list of token ids", text);
        if (v >= s->cfg->text_vocab) return fail("--ids: token id %ld is outside the vocabulary (0..%d)", v, s->cfg->text_vocab - 1);
        if (n == context) return fail("--ids: more than %d ids", context);
        ids[n++] = (int32_t)v;
    }
    if (n == 0) return fail("--ids: empty list of token ids");
    return 0;
}

int embed_text(session *s, const char *text, size_t len, int32_t *ids, float *embed) {
    int rc = text_ids(s, text, len, ids);
    if (!rc && clip_encode_texts(s->ctx, ids, 1, embed) != CLIP_OK) rc = api_fail();
    return rc;
}

/* The write would destroy what is being read. Checked before any work, so nothing is
 * written. The first `n_file_args` positional arguments are files (1: the model alone, for
 * commands whose other arguments are texts). */
int refuse_output_over_inputs(const args *a, int n_file_args) {
    if (!a->output) return 0;
    for (int i = 0; i < n_file_args && i < a->n_pos; i++)
        if (atomic_same_file(a->output, a->pos[i]))
            return usage_error(a->cmd, "-o %s is %s %s of this command; it would be overwritten",
                               a->output, i == 0 ? "the model" : "the input", a->pos[i]);
    if (a->file && atomic_same_file(a->output, a->file))
        return usage_error(a->cmd, "-o %s is the -f input %s; it would be overwritten", a->output, a->file);
    return 0;
}

int write_embeddings(const char *path, const float *data, int n, int dim) {
    int64_t dims[2] = {n, dim};
    if (npy_write_f32(path, data, 2, dims) != CLIP_OK) return api_fail();
    return 0;
}

/* Token ids of one text: tokenized, or parsed with --ids. */
int text_ids(session *s, const char *text, size_t len, int32_t *ids) {
    if (s->ids_input) return parse_ids(s, text, len, ids);
    int truncated = 0;
    if (clip_tokenize_check(s->model, text, len, ids, &truncated) != CLIP_OK) return api_fail();
    if (!truncated) return 0;
    char excerpt[48];   /* the text's start on one line */
    size_t n = len < 40 ? len : 40;
    for (size_t i = 0; i < n; i++) excerpt[i] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
    strcpy(excerpt + n, len > 40 ? "..." : "");
    if (s->no_truncate)
        return fail("text '%s' is longer than the model's context of %d tokens (--no-truncate)", excerpt,
                    s->cfg->text_context);
    if (s->n_truncated++ == 0) memcpy(s->first_truncated, excerpt, sizeof excerpt);  /* reported at the end */
    return 0;
}

/* clip_run.c - the command-line tool: thin glue over the public API (model/clip.h).
 *
 *   clip_run info MODEL
 *   clip_run tokenize MODEL TEXT...                 context-length ids per text
 *   clip_run preprocess MODEL IMAGE -o OUT.npy      float32 [3, S, S]
 *   clip_run embed-image MODEL IMAGE... -o OUT.npy  float32 [N, D]
 *   clip_run embed-text MODEL TEXT... -o OUT.npy    float32 [N, D]
 *   clip_run classify MODEL IMAGE... -l LABEL...    zero-shot labels, best first
 *   clip_run score MODEL IMAGE TEXT                 cosine similarity and logit
 *   clip_run bench MODEL [IMAGE]                    in-process timings per stage, GFLOP/s
 *
 * Errors go to stderr as one line "clip_run: error: ..."; the exit code is 0 only on
 * success (1: the work failed, 2: the command line was wrong).
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../io/atomic.h"
#include "../io/npy.h"
#include "../kernels/gemm.h"
#include "../kernels/kernels.h"
#include "../model/clip.h"

#define MAX_TEXT_BYTES (1 << 20)     /* one text (a line of -f FILE) */
#define MAX_INPUT_BYTES (64 << 20)   /* all of -f FILE */

/* ---- Errors ----------------------------------------------------------------------------- */
static int usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clip_run: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'clip_run %s--help')\n", cmd ? cmd : "");
    va_end(ap);
    return 2;
}

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clip_run: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int api_fail(void) { return fail("%s", clip_last_error()); }

/* ---- Command-line parsing -------------------------------------------------------------- */
typedef struct {
    const char *cmd;             /* "classify ", for messages */
    const char **pos;            /* positional arguments */
    int n_pos;
    const char *output;          /* -o */
    const char **labels;         /* -l, repeatable */
    int n_labels;
    const char *template_;       /* --template */
    const char *file;            /* -f */
    const char *gemm;            /* --gemm */
    int top, threads, batch, iters, raw, json, null_sep, ids, help;
} args;

/* Which options a command accepts: a string of letters, see parse(). */
static int parse(int argc, char **argv, const char *cmd, const char *accepts, args *a) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->top = -1;
    a->pos = calloc((size_t)argc + 1, sizeof(char *));
    a->labels = calloc((size_t)argc + 1, sizeof(char *));
    if (!a->pos || !a->labels) return fail("out of memory");
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
        };
        static const struct { const char *short_, *long_; char key; } flags[] = {
            {NULL, "--raw", 'r'}, {NULL, "--json", 'j'}, {"-0", "--null", '0'},
            {NULL, "--ids", 'i'},
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
        case 't': case 'k': case 'b': case 'n': {
            errno = 0;
            long v = strtol(value, &end, 10);
            if (errno || *end || end == value || v < 1 || v > 4096)
                return usage_error(cmd, "%s needs a whole number from 1 to 4096, not '%s'", s, value);
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
        }
    }
    return 0;
}

static void free_args(args *a) {
    free(a->pos);
    free(a->labels);
}

/* ---- Texts: from the command line and from -f FILE (one per line, or NUL-separated) ---- */
typedef struct {
    char **text;
    size_t *len;
    int n;
    char *buffer;                /* the file's contents, texts point into it */
} text_list;

static int read_all(const char *path, char **out, size_t *n_out) {
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

static int gather_texts(const args *a, int first_pos, text_list *t) {
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

static void free_texts(text_list *t) {
    free(t->text);
    free(t->len);
    free(t->buffer);
}

/* ---- JSON output --------------------------------------------------------------------------- */
/* Writes s as a JSON string; bytes that are not valid UTF-8 become U+FFFD. */
static void json_string(FILE *out, const char *s, size_t len) {
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
typedef struct {
    clip_model *model;
    clip_context *ctx;
    const clip_config *cfg;
    int ids_input;               /* texts are token ids (--ids) */
} session;

/* need_context: also a context for a (threads, batch, --gemm) of the command line. */
static int open_session(const char *path, const args *a, int need_context, session *s) {
    memset(s, 0, sizeof *s);
    if (clip_model_load(path, &s->model) != CLIP_OK) return api_fail();
    s->cfg = clip_model_config(s->model);
    if (!need_context) return 0;
    if (clip_context_new(s->model, a->threads, a->batch > 0 ? a->batch : 1, &s->ctx) != CLIP_OK)
        return api_fail();
    if (a->gemm && clip_context_set_gemm(s->ctx, a->gemm) != CLIP_OK) return api_fail();
    return 0;
}

static void close_session(session *s) {
    clip_context_free(s->ctx);
    clip_model_free(s->model);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* An image file, or a .npy already preprocessed to float32 [3, S, S]: pixels [3, S, S]. */
static int load_pixels(const session *s, const char *path, float *pixels) {
    const int size = s->cfg->image_size;
    if (!ends_with(path, ".npy"))
        return clip_image_load(s->model, path, pixels) == CLIP_OK ? 0 : api_fail();
    npy_array a;
    if (npy_read(path, &a) != CLIP_OK) return api_fail();
    int rc = 0;
    int lead = a.n_dims == 4 && a.dims[0] == 1; /* accept [1, 3, S, S] too */
    if (a.dtype != NPY_F32 || a.n_dims != 3 + lead || a.dims[lead] != 3 ||
        a.dims[lead + 1] != size || a.dims[lead + 2] != size)
        rc = fail("%s: expected a float32 array of shape [3, %d, %d] (a preprocessed image)", path,
                  size, size);
    for (size_t i = 0; !rc && i < a.n_elems; i++)
        if (!isfinite(((float *)a.data)[i])) rc = fail("%s: contains NaN or infinity", path);
    if (!rc) memcpy(pixels, a.data, sizeof(float) * a.n_elems);
    npy_free(&a);
    return rc;
}

static int embed_image(session *s, const char *path, float *pixels, float *embed) {
    int rc = load_pixels(s, path, pixels);
    if (!rc && clip_encode_images(s->ctx, pixels, 1, embed) != CLIP_OK) rc = api_fail();
    return rc;
}

/* "49406 320 1125 49407": token ids given directly (--ids), zero padded to the context. */
static int parse_ids(const session *s, const char *text, size_t len, int32_t *ids) {
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

static int text_ids(session *s, const char *text, size_t len, int32_t *ids);

static int embed_text(session *s, const char *text, size_t len, int32_t *ids, float *embed) {
    int rc = text_ids(s, text, len, ids);
    if (!rc && clip_encode_texts(s->ctx, ids, 1, embed) != CLIP_OK) rc = api_fail();
    return rc;
}

static int write_embeddings(const char *path, const float *data, int n, int dim) {
    int64_t dims[2] = {n, dim};
    if (npy_write_f32(path, data, 2, dims) != CLIP_OK) return api_fail();
    return 0;
}

/* ---- Commands ----------------------------------------------------------------------------- */
static int cmd_info(args *a) {
    if (a->n_pos != 1) return usage_error(a->cmd, "info takes one MODEL");
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const clip_config *c = s.cfg;
    int grid = c->image_size / c->patch_size;
    printf("model:        %s\n", a->pos[0]);
    printf("name:         %s\n", c->name[0] ? c->name : "(none)");
    printf("image:        %d x %d, patch %d (%d patches + class token)\n", c->image_size,
           c->image_size, c->patch_size, grid * grid);
    printf("vision:       width %d, %d layers, %d heads, MLP %d\n", c->vision_width,
           c->vision_layers, c->vision_heads, c->vision_mlp);
    printf("text:         width %d, %d layers, %d heads, MLP %d, context %d, vocabulary %d\n",
           c->text_width, c->text_layers, c->text_heads, c->text_mlp, c->text_context, c->text_vocab);
    printf("embedding:    %d, logit scale %.4f (exp %.4f)\n", c->embed_dim, c->logit_scale,
           exp(c->logit_scale));
    printf("activation:   %s, LayerNorm eps %g\n",
           c->activation == CLIP_ACT_GELU ? "gelu" : "quick_gelu", c->ln_eps);
    printf("normalize:    mean (%.8g, %.8g, %.8g), std (%.8g, %.8g, %.8g)\n", c->image_mean[0],
           c->image_mean[1], c->image_mean[2], c->image_std[0], c->image_std[1], c->image_std[2]);
    printf("tokens:       start %d, end %d\n", c->sot_id, c->eot_id);
    if (clip_model_verify(s.model) != CLIP_OK) {
        close_session(&s);
        return api_fail();
    }
    printf("checksums:    every tensor verified\n");
    char features[128];
    printf("kernels:      %s (CPU supports %s; features: %s)\n", cpu_level_name(kernels_level()),
           cpu_level_name(cpu_detect()), cpu_features_string(cpu_features(), features, sizeof features));
    printf("matmul:       %s%s, %d threads\n", clip_context_gemm(s.ctx),
           strcmp(clip_context_gemm(s.ctx), "openblas") ? " (native; --gemm openblas: OpenBLAS)" : "",
           clip_context_threads(s.ctx));
    printf("gemm tuning:  %s\n", gemm_tuning_get(kernels_level())->why);
    close_session(&s);
    return 0;
}

static int cmd_tokenize(args *a) {
    if (a->n_pos < 1) return usage_error(a->cmd, "tokenize needs MODEL and TEXT...");
    text_list t;
    session s;
    int rc = gather_texts(a, 1, &t);
    if (!rc) rc = open_session(a->pos[0], a, 0, &s);
    if (rc) { free_texts(&t); return rc; }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    if (!ids) rc = fail("out of memory");
    for (int i = 0; !rc && i < t.n; i++) {
        if (clip_tokenize(s.model, t.text[i], t.len[i], ids) != CLIP_OK) { rc = api_fail(); break; }
        if (a->json) {
            fputs("{\"text\": ", stdout);
            json_string(stdout, t.text[i], t.len[i]);
            fputs(", \"ids\": [", stdout);
        }
        for (int k = 0; k < s.cfg->text_context; k++)
            printf(a->json ? "%s%d" : "%s%d", k ? (a->json ? ", " : " ") : "", ids[k]);
        fputs(a->json ? "]}\n" : "\n", stdout);
    }
    free(ids);
    free_texts(&t);
    close_session(&s);
    return rc;
}

static int cmd_preprocess(args *a) {
    if (a->n_pos != 2) return usage_error(a->cmd, "preprocess takes MODEL and one IMAGE");
    if (!a->output) return usage_error(a->cmd, "preprocess needs -o OUT.npy");
    session s;
    int rc = open_session(a->pos[0], a, 0, &s);
    if (rc) return rc;
    const int size = s.cfg->image_size;
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    int64_t dims[3] = {3, size, size};
    if (!pixels) rc = fail("out of memory");
    else if (clip_image_load(s.model, a->pos[1], pixels) != CLIP_OK) rc = api_fail();
    else if (npy_write_f32(a->output, pixels, 3, dims) != CLIP_OK) rc = api_fail();
    free(pixels);
    close_session(&s);
    return rc;
}

static int cmd_embed_image(args *a) {
    if (a->n_pos < 2) return usage_error(a->cmd, "embed-image needs MODEL and IMAGE...");
    if (!a->output) return usage_error(a->cmd, "embed-image needs -o OUT.npy");
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const int n = a->n_pos - 1, size = s.cfg->image_size, dim = s.cfg->embed_dim;
    const int batch = a->batch > 0 ? a->batch : 1;
    const size_t image_len = (size_t)3 * size * size;
    float *pixels = malloc(sizeof(float) * image_len * (size_t)batch);
    float *embeds = malloc(sizeof(float) * (size_t)n * dim);
    if (!pixels || !embeds) rc = fail("out of memory");
    /* Read up to `batch` images, then encode them together. */
    for (int first = 0; !rc && first < n; first += batch) {
        const int count = n - first < batch ? n - first : batch;
        for (int i = 0; !rc && i < count; i++)
            rc = load_pixels(&s, a->pos[1 + first + i], pixels + (size_t)i * image_len);
        if (!rc && clip_encode_images(s.ctx, pixels, count, embeds + (size_t)first * dim) != CLIP_OK)
            rc = api_fail();
    }
    for (int i = 0; !rc && !a->raw && i < n; i++) clip_normalize(embeds + (size_t)i * dim, dim);
    if (!rc) rc = write_embeddings(a->output, embeds, n, dim);
    free(pixels);
    free(embeds);
    close_session(&s);
    return rc;
}

/* Token ids of one text: tokenized, or parsed with --ids. */
static int text_ids(session *s, const char *text, size_t len, int32_t *ids) {
    if (s->ids_input) return parse_ids(s, text, len, ids);
    return clip_tokenize(s->model, text, len, ids) == CLIP_OK ? 0 : api_fail();
}

static int cmd_embed_text(args *a) {
    if (a->n_pos < 1) return usage_error(a->cmd, "embed-text needs MODEL and TEXT...");
    if (!a->output) return usage_error(a->cmd, "embed-text needs -o OUT.npy");
    text_list t;
    session s;
    int rc = gather_texts(a, 1, &t);
    if (!rc) rc = open_session(a->pos[0], a, 1, &s);
    if (rc) { free_texts(&t); return rc; }
    s.ids_input = a->ids;
    const int dim = s.cfg->embed_dim, context = s.cfg->text_context;
    const int batch = a->batch > 0 ? a->batch : 1;
    float *embeds = malloc(sizeof(float) * (size_t)t.n * dim);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)context * batch);
    if (!embeds || !ids) rc = fail("out of memory");
    for (int first = 0; !rc && first < t.n; first += batch) {
        const int count = t.n - first < batch ? t.n - first : batch;
        for (int i = 0; !rc && i < count; i++)
            rc = text_ids(&s, t.text[first + i], t.len[first + i], ids + (size_t)i * context);
        if (!rc && clip_encode_texts(s.ctx, ids, count, embeds + (size_t)first * dim) != CLIP_OK)
            rc = api_fail();
    }
    for (int i = 0; !rc && !a->raw && i < t.n; i++) clip_normalize(embeds + (size_t)i * dim, dim);
    if (!rc) rc = write_embeddings(a->output, embeds, t.n, dim);
    free(embeds);
    free(ids);
    free_texts(&t);
    close_session(&s);
    return rc;
}

typedef struct {
    int label;
    float prob, cosine;
} ranked;

static int by_prob(const void *x, const void *y) {
    const ranked *a = x, *b = y;
    if (a->prob != b->prob) return a->prob < b->prob ? 1 : -1;
    return a->label - b->label; /* ties keep the order the labels were given in */
}

static int cmd_classify(args *a) {
    if (a->n_pos < 2) return usage_error(a->cmd, "classify needs MODEL and IMAGE...");
    if (a->n_labels < 1) return usage_error(a->cmd, "classify needs at least one -l LABEL");
    const char *tmpl = a->template_ ? a->template_ : "a photo of a {}.";
    const char *hole = strstr(tmpl, "{}");
    if (!hole) return usage_error(a->cmd, "--template must contain {} where the label goes");
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const int dim = s.cfg->embed_dim, size = s.cfg->image_size, n_labels = a->n_labels;
    const int top = a->top > 0 && a->top < n_labels ? a->top : n_labels;
    float *label_embeds = malloc(sizeof(float) * (size_t)n_labels * dim);
    float *image_embed = malloc(sizeof(float) * dim);
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    ranked *rank = malloc(sizeof(ranked) * (size_t)n_labels);
    char *prompt = NULL;
    if (!label_embeds || !image_embed || !pixels || !ids || !rank) rc = fail("out of memory");

    /* The labels' text embeddings, once for all images. */
    for (int l = 0; !rc && l < n_labels; l++) {
        size_t n = strlen(tmpl) - 2 + strlen(a->labels[l]);
        char *grown = realloc(prompt, n + 1);
        if (!grown) { rc = fail("out of memory"); break; }
        prompt = grown;
        snprintf(prompt, n + 1, "%.*s%s%s", (int)(hole - tmpl), tmpl, a->labels[l], hole + 2);
        rc = embed_text(&s, prompt, n, ids, label_embeds + (size_t)l * dim);
    }
    const float scale = expf(s.cfg->logit_scale);
    for (int i = 1; !rc && i < a->n_pos; i++) {
        const char *path = a->pos[i];
        if ((rc = embed_image(&s, path, pixels, image_embed))) break;
        /* Softmax over logit_scale * cosine, as the reference's logits_per_image. */
        float max_logit = -INFINITY;
        for (int l = 0; l < n_labels; l++) {
            rank[l].label = l;
            rank[l].cosine = clip_cosine(image_embed, label_embeds + (size_t)l * dim, dim);
            if (scale * rank[l].cosine > max_logit) max_logit = scale * rank[l].cosine;
        }
        double sum = 0;
        for (int l = 0; l < n_labels; l++) sum += exp(scale * rank[l].cosine - max_logit);
        for (int l = 0; l < n_labels; l++)
            rank[l].prob = (float)(exp(scale * rank[l].cosine - max_logit) / sum);
        qsort(rank, (size_t)n_labels, sizeof *rank, by_prob);
        if (a->json) {
            fputs("{\"image\": ", stdout);
            json_string(stdout, path, strlen(path));
            fputs(", \"results\": [", stdout);
            for (int k = 0; k < top; k++) {
                fputs(k ? ", {\"label\": " : "{\"label\": ", stdout);
                json_string(stdout, a->labels[rank[k].label], strlen(a->labels[rank[k].label]));
                printf(", \"prob\": %.6f, \"cosine\": %.6f}", rank[k].prob, rank[k].cosine);
            }
            fputs("]}\n", stdout);
        } else {
            if (a->n_pos > 2) printf("%s\n", path);
            for (int k = 0; k < top; k++)
                printf("%7.2f%%  %s  (cosine %.4f)\n", 100.0f * rank[k].prob,
                       a->labels[rank[k].label], rank[k].cosine);
        }
    }
    free(prompt);
    free(label_embeds);
    free(image_embed);
    free(pixels);
    free(ids);
    free(rank);
    close_session(&s);
    return rc;
}

static int cmd_score(args *a) {
    if (a->n_pos != 3) return usage_error(a->cmd, "score takes MODEL, IMAGE and TEXT");
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const int dim = s.cfg->embed_dim, size = s.cfg->image_size;
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    float *image_embed = malloc(sizeof(float) * dim), *text_embed = malloc(sizeof(float) * dim);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    if (!pixels || !image_embed || !text_embed || !ids) rc = fail("out of memory");
    if (!rc && strlen(a->pos[2]) > MAX_TEXT_BYTES) rc = fail("text longer than %d bytes", MAX_TEXT_BYTES);
    if (!rc) rc = embed_image(&s, a->pos[1], pixels, image_embed);
    if (!rc) rc = embed_text(&s, a->pos[2], strlen(a->pos[2]), ids, text_embed);
    if (!rc) {
        float cosine = clip_cosine(image_embed, text_embed, dim);
        float logit = expf(s.cfg->logit_scale) * cosine;
        if (a->json) {
            fputs("{\"image\": ", stdout);
            json_string(stdout, a->pos[1], strlen(a->pos[1]));
            fputs(", \"text\": ", stdout);
            json_string(stdout, a->pos[2], strlen(a->pos[2]));
            printf(", \"cosine\": %.6f, \"logit\": %.6f}\n", cosine, logit);
        } else {
            printf("cosine %.6f  logit %.4f\n", cosine, logit);
        }
    }
    free(pixels);
    free(image_embed);
    free(text_embed);
    free(ids);
    close_session(&s);
    return rc;
}

/* ---- bench: in-process timings ------------------------------------------------------------ */
static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int by_value(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *ms, int n) {
    qsort(ms, (size_t)n, sizeof *ms, by_value);
    return n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

/* Best GFLOP/s of the native driver on a product that fits the L2 cache (x 240 KB, W 512
 * KB): the matmul peak the forward passes are measured against. */
static double gemm_peak(int n_threads) {
    enum { M = 120, N = 256, K = 512 };
    float *x = aligned_alloc(64, sizeof(float) * M * K), *w = aligned_alloc(64, sizeof(float) * N * K);
    float *y = aligned_alloc(64, sizeof(float) * M * N), *packed = aligned_alloc(64, sizeof(float) * N * K);
    threadpool *pool = n_threads > 1 ? threadpool_new(n_threads) : NULL;
    double best = 0;
    if (x && w && y && packed) {
        for (int i = 0; i < M * K; i++) x[i] = (float)(i % 17) * 0.01f;
        for (int i = 0; i < N * K; i++) w[i] = (float)(i % 13) * 0.01f;
        gemm_weight pw;
        gemm_pack(&pw, packed, GEMM_F32, w, N, K);
        const gemm_op op = {y, x, &pw, NULL, M, 0, GEMM_ACT_NONE};
        const double end = now_ms() + 300;
        while (now_ms() < end) {
            double t0 = now_ms();
            gemm_run(pool, &op, GEMM_NATIVE, kernels_level());
            double gflops = 2.0 * M * N * K / ((now_ms() - t0) * 1e6);
            if (gflops > best) best = gflops;
        }
    }
    threadpool_free(pool);
    free(x), free(w), free(y), free(packed);
    return best;
}

/* Best GFLOP/s of OpenBLAS sgemm on a large square product (1024^3, row-major x W^T), with
 * the kernels OpenBLAS picks for this CPU: OPENBLAS_CORETYPE, if set, is removed before
 * OpenBLAS is first loaded (AVX-512 on an AVX-512 CPU). 0 without OpenBLAS. `core` gets
 * the core name OpenBLAS reports. */
static double openblas_square_peak(int n_threads, char *core, size_t core_size) {
    enum { S = 1024 };
    snprintf(core, core_size, "unavailable");
    if (getenv("OPENBLAS_CORETYPE")) unsetenv("OPENBLAS_CORETYPE");
    if (blas_load() != 0) return 0;
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_NOLOAD);
    char *(*corename)(void) = lib ? (char *(*)(void))dlsym(lib, "openblas_get_corename") : NULL;
    snprintf(core, core_size, "%s", corename ? corename() : "unknown core");
    if (lib) dlclose(lib);
    float *x = aligned_alloc(64, sizeof(float) * S * S), *w = aligned_alloc(64, sizeof(float) * S * S);
    float *y = aligned_alloc(64, sizeof(float) * S * S);
    double best = 0;
    if (x && w && y) {
        for (int i = 0; i < S * S; i++) x[i] = (float)(i % 17) * 0.01f, w[i] = (float)(i % 13) * 0.01f;
        blas_set_threads(n_threads);
        const double end = now_ms() + 400;
        for (int rep = 0; rep < 3 || now_ms() < end; rep++) {
            double t0 = now_ms();
            blas_sgemm_nt(y, x, w, S, S, S, 0.0f);
            double gflops = 2.0 * S * S * S / ((now_ms() - t0) * 1e6);
            if (gflops > best) best = gflops;
        }
    }
    free(x), free(w), free(y);
    return best;
}

/* Copy bandwidth (memcpy of 64 MB; bytes read + written per second), best of 5, GB/s. */
static double copy_bandwidth(void) {
    const size_t n = 64 << 20;
    char *a = malloc(n), *b = malloc(n);
    double best = 0;
    if (a && b) {
        memset(a, 1, n), memset(b, 2, n);
        for (int r = 0; r < 5; r++) {
            double t0 = now_ms();
            memcpy(b, a, n);
            double gbs = 2.0 * n / ((now_ms() - t0) * 1e6);
            if (gbs > best) best = gbs;
        }
    }
    free(a), free(b);
    return best;
}

/* Floating-point work actually done (the last blocks' single query row, class token or
 * end token, and the causal text cut included). */
static double image_flop(const clip_config *c) {
    const double w = c->vision_width, f = c->vision_mlp, grid = c->image_size / c->patch_size;
    const double n = grid * grid, t = n + 1;
    double flop = 2 * n * 3.0 * c->patch_size * c->patch_size * w + 2 * w * c->embed_dim;
    for (int l = 0; l < c->vision_layers; l++) {
        const double rows = l == c->vision_layers - 1 ? 1 : t;
        flop += 2 * t * w * 3 * w + 4 * rows * t * w + 2 * rows * w * w + 4 * rows * w * f;
    }
    return flop;
}

static double text_flop(const clip_config *c, int n_tokens) {
    const double w = c->text_width, f = c->text_mlp, t = n_tokens;
    double flop = 2 * w * c->embed_dim;
    for (int l = 0; l < c->text_layers; l++) {
        const int last = l == c->text_layers - 1;
        const double attn = last ? 4 * t * w : 2 * t * (t + 1) * w, rows = last ? 1 : t;
        flop += 2 * t * w * 3 * w + attn + 2 * rows * w * w + 4 * rows * w * f;
    }
    return flop;
}

typedef struct {
    session *s;
    int iters;
    double peak;                 /* native GFLOP/s at this thread count */
    double blas_peak;            /* OpenBLAS sgemm 1024^3 GFLOP/s at this thread count */
    double stream_bytes;         /* weight bytes a case streams from memory (short text), or 0 */
    double copy_gbs;             /* measured copy bandwidth */
} bench_run;

static void print_stages(const session *s, int iters) {
    double ms[16];
    const char *names[16];
    int n = clip_context_stages(s->ctx, ms, names, 16);
    printf("  stages, mean ms per run:");
    for (int i = 0; i < n && i < 16; i++) printf("  %s %.2f", names[i], ms[i] / iters);
    printf("\n");
}

/* Encode `count` images or texts `iters` times (after one warm-up run): median ms. */
static int time_encode(bench_run *b, const char *name, const float *pixels, const int32_t *ids,
                       int count, double flop, double extra_ms) {
    double *ms = malloc(sizeof(double) * (size_t)b->iters);
    float *embeds = malloc(sizeof(float) * (size_t)count * b->s->cfg->embed_dim);
    if (!ms || !embeds) { free(ms); free(embeds); return fail("out of memory"); }
    int rc = 0;
    for (int i = -1; !rc && i < b->iters; i++) {
        if (i == 0) clip_context_reset_stages(b->s->ctx);
        double t0 = now_ms();
        int r = pixels ? clip_encode_images(b->s->ctx, pixels, count, embeds)
                       : clip_encode_texts(b->s->ctx, ids, count, embeds);
        if (r != CLIP_OK) rc = api_fail();
        else if (i >= 0) ms[i] = now_ms() - t0;
    }
    if (!rc) {
        double min = ms[0];
        for (int i = 1; i < b->iters; i++) if (ms[i] < min) min = ms[i];
        double med = median(ms, b->iters) + extra_ms;
        printf("%-13s %9.2f ms  (median of %d, min %.2f%s)  %.2f GFLOP, %.1f GFLOP/s = %.0f%% of peak",
               name, med, b->iters, min + extra_ms, extra_ms > 0 ? ", with preprocess" : "",
               flop * 1e-9, flop / ((med - extra_ms) * 1e6), 100 * flop / ((med - extra_ms) * 1e6) / b->peak);
        if (b->blas_peak > 0) printf(", %.0f%% of OpenBLAS", 100 * flop / ((med - extra_ms) * 1e6) / b->blas_peak);
        if (count > 1) printf(", %.2f ms each", med / count);
        if (b->stream_bytes > 0)
            printf(", weights streamed at %.1f GB/s (copy bandwidth %.1f)", b->stream_bytes / (med * 1e6), b->copy_gbs);
        printf("\n");
        print_stages(b->s, b->iters);
    }
    free(ms);
    free(embeds);
    return rc;
}

static int cmd_bench(args *a) {
    if (a->n_pos < 1 || a->n_pos > 2) return usage_error(a->cmd, "bench takes MODEL and optionally an IMAGE");
    args run_args = *a;
    const int batch = a->batch > 0 ? a->batch : 8;
    run_args.batch = batch;
    session s;
    int rc = open_session(a->pos[0], &run_args, 1, &s);
    if (rc) return rc;
    const clip_config *c = s.cfg;
    const int threads = clip_context_threads(s.ctx), context = c->text_context;
    const size_t image_len = (size_t)3 * c->image_size * c->image_size;

    const double native1 = gemm_peak(1), native_n = threads > 1 ? gemm_peak(threads) : native1;
    char core[64];
    const double blas1 = openblas_square_peak(1, core, sizeof core);
    const double blas_n = threads > 1 ? openblas_square_peak(threads, core, sizeof core) : blas1;
    const double copy_gbs = copy_bandwidth();
    printf("model         %s (vision %d x %d layers, text %d x %d layers)\n", a->pos[0],
           c->vision_width, c->vision_layers, c->text_width, c->text_layers);
    printf("matmul        %s, %d threads, batch %d\n", clip_context_gemm(s.ctx), threads, batch);
    printf("gemm tuning   %s\n", gemm_tuning_get(kernels_level())->why);
    printf("peak          native in-cache %.1f GFLOP/s (1 thread), %.1f (%d threads); "
           "OpenBLAS sgemm 1024^3 (%s kernels) %.1f (1 thread), %.1f (%d threads)\n", native1, native_n,
           threads, core, blas1, blas_n, threads);
    printf("memory        copy bandwidth %.1f GB/s (memcpy 64 MB, read + write)\n", copy_gbs);

    const int use_blas = strcmp(clip_context_gemm(s.ctx), "openblas") == 0;
    bench_run b = {&s, a->iters > 0 ? a->iters : 10, use_blas ? blas_n : native_n, blas_n, 0, copy_gbs};
    float *pixels = malloc(sizeof(float) * image_len * (size_t)batch);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)context * batch);
    if (!pixels || !ids) rc = fail("out of memory");
    unsigned seed = 12345;
    for (size_t i = 0; !rc && i < image_len * batch; i++) {
        seed = seed * 1664525u + 1013904223u;
        pixels[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }

    /* one image from a preprocessed tensor, and from an image file if given */
    if (!rc) rc = time_encode(&b, "image_npy", pixels, NULL, 1, image_flop(c), 0);
    if (!rc && a->n_pos == 2) {
        double *ms = malloc(sizeof(double) * (size_t)b.iters);
        if (!ms) rc = fail("out of memory");
        for (int i = 0; !rc && i < b.iters; i++) {
            double t0 = now_ms();
            if (clip_image_load(s.model, a->pos[1], pixels) != CLIP_OK) rc = api_fail();
            ms[i] = now_ms() - t0;
        }
        if (!rc) {
            double pre = median(ms, b.iters);
            printf("preprocess    %9.2f ms  (decode, resize, crop, normalize of %s)\n", pre, a->pos[1]);
            rc = time_encode(&b, "image_jpeg", pixels, NULL, 1, image_flop(c), pre);
        }
        free(ms);
    }

    /* texts: a short prompt, a full-context one */
    const char *short_text = "a photo of a dog.";
    char long_text[1024] = "";
    while (strlen(long_text) + 20 < sizeof long_text) strcat(long_text, "a photo of a big dog ");
    int short_len = 0;
    if (!rc && clip_tokenize(s.model, short_text, strlen(short_text), ids) != CLIP_OK) rc = api_fail();
    for (int i = 0; !rc && i < context; i++) if (ids[i]) short_len = i + 1;
    /* a short text reads the text tower's linear weights once (12 x (4 W^2 + 2 W M) floats) */
    b.stream_bytes = 4.0 * c->text_layers * (4.0 * c->text_width * c->text_width + 2.0 * c->text_width * c->text_mlp);
    if (!rc) rc = time_encode(&b, "text_short", NULL, ids, 1, text_flop(c, short_len), 0);
    b.stream_bytes = 0;
    if (!rc && clip_tokenize(s.model, long_text, strlen(long_text), ids) != CLIP_OK) rc = api_fail();
    if (!rc) rc = time_encode(&b, "text_long", NULL, ids, 1, text_flop(c, context), 0);

    /* batches */
    static const char *const nouns[] = {"dog", "cat", "car", "bird", "tree", "house", "boat", "person"};
    int batch_len = 0;
    for (int i = 0; !rc && i < batch; i++) {
        char text[64];
        snprintf(text, sizeof text, "a photo of a %s.", nouns[i % 8]);
        if (clip_tokenize(s.model, text, strlen(text), ids + (size_t)i * context) != CLIP_OK) rc = api_fail();
        for (int k = 0; !rc && k < context; k++) if (ids[(size_t)i * context + k] && k + 1 > batch_len) batch_len = k + 1;
    }
    char name[32];
    snprintf(name, sizeof name, "image_batch%d", batch);
    if (!rc) rc = time_encode(&b, name, pixels, NULL, batch, batch * image_flop(c), 0);
    snprintf(name, sizeof name, "text_batch%d", batch);
    if (!rc) rc = time_encode(&b, name, NULL, ids, batch, batch * text_flop(c, batch_len), 0);

    free(pixels);
    free(ids);
    close_session(&s);
    return rc;
}

/* ---- Help and dispatch ------------------------------------------------------------------- */
typedef struct {
    const char *name, *accepts, *usage;
    int (*run)(args *);
} command;

static const command commands[] = {
    {"info", "tg", "info MODEL [-t N] [--gemm native|openblas]\n"
     "  Print the model's config, the kernels this CPU uses and the matmul backend.\n", cmd_info},
    {"tokenize", "fj0",
     "tokenize MODEL TEXT... [-f FILE] [-0] [--json]\n"
     "  Print each text's token ids (context length, zero padded), one line per text.\n"
     "  -f FILE   also read texts from FILE, one per line ('-' = stdin)\n"
     "  -0        texts in FILE are separated by NUL bytes instead of newlines\n"
     "  --json    one JSON object per text: {\"text\": ..., \"ids\": [...]}\n", cmd_tokenize},
    {"preprocess", "o",
     "preprocess MODEL IMAGE -o OUT.npy\n"
     "  Decode, resize, crop and normalize IMAGE as the reference does: float32 [3, S, S].\n", cmd_preprocess},
    {"embed-image", "ortbg",
     "embed-image MODEL IMAGE... -o OUT.npy [--raw] [-t N] [--batch N] [--gemm native|openblas]\n"
     "  Image embeddings, float32 [N, D], L2-normalized unless --raw.\n"
     "  An IMAGE ending in .npy is a preprocessed float32 [3, S, S] tensor.\n"
     "  -t N      threads (default: one per core)\n"
     "  --batch N read N images, then encode them together (default 1)\n"
     "  --gemm B  matmul backend: native (default) or openblas\n", cmd_embed_image},
    {"embed-text", "ortf0ibg",
     "embed-text MODEL TEXT... -o OUT.npy [--raw] [-f FILE] [-0] [--ids] [-t N] [--batch N] [--gemm B]\n"
     "  Text embeddings, float32 [N, D], L2-normalized unless --raw; --batch N encodes N at once.\n"
     "  -f FILE   also read texts from FILE, one per line ('-' = stdin); -0: NUL-separated\n"
     "  --ids     each TEXT is already token ids (\"49406 320 49407\"), zero padded to the context\n", cmd_embed_text},
    {"classify", "ltTkjg",
     "classify MODEL IMAGE... -l LABEL [-l LABEL...] [--template T] [--top K] [--json] [-t N]\n"
     "  Zero-shot classification: softmax over exp(logit_scale) * cosine(image, prompt),\n"
     "  prompt = the template with {} replaced by the label (default \"a photo of a {}.\").\n"
     "  --top K   print only the K best labels\n"
     "  --json    one JSON object per image: {\"image\", \"results\": [{\"label\", \"prob\", \"cosine\"}]}\n", cmd_classify},
    {"score", "jtg",
     "score MODEL IMAGE TEXT [--json] [-t N]\n"
     "  Cosine similarity of the image and the text, and the logit (exp(logit_scale) * cosine).\n", cmd_score},
    {"bench", "tbng",
     "bench MODEL [IMAGE] [-t N] [--batch N] [--iters K] [--gemm native|openblas]\n"
     "  In-process benchmark: the matmul peak (native and OpenBLAS), then warm latency of an\n"
     "  image (random pixels; IMAGE, e.g. a JPEG, adds decode + preprocess), a short and a\n"
     "  77-token text, and a batch of N (default 8) of each; milliseconds per stage and\n"
     "  GFLOP/s against the measured peak. Median of K runs (default 10).\n", cmd_bench},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void print_help(FILE *out) {
    fprintf(out, "clip_run %s - CLIP image and text embeddings in C\n\nusage: clip_run COMMAND ARGS...\n\n",
            CLIP_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "clip_run %s\n", commands[i].usage);
    fprintf(out, "Options end at '--' (so a text may start with '-'). 'clip_run COMMAND --help' for one command.\n");
}

int main(int argc, char **argv) {
    /* Ctrl-C or a kill while an output file is written removes its temp file: a previous
     * output stays as it was and no half-written file remains. */
    atomic_cleanup_on_signals();
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("clip_run %s\n", CLIP_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        char cmd[64];
        snprintf(cmd, sizeof cmd, "%s ", commands[i].name);
        args a;
        int rc = parse(argc - 2, argv + 2, cmd, commands[i].accepts, &a);
        if (!rc && a.help) printf("usage: clip_run %s", commands[i].usage);
        else if (!rc) rc = commands[i].run(&a);
        free_args(&a);
        return rc;
    }
    return usage_error(NULL, "unknown command '%s'", argv[1]);
}

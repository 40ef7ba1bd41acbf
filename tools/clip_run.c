/* clip_run.c - the command-line tool: thin glue over the public API (model/clip.h).
 *
 *   clip_run info MODEL
 *   clip_run tokenize MODEL TEXT...                 context-length ids per text
 *   clip_run preprocess MODEL IMAGE -o OUT.npy      float32 [3, S, S]
 *   clip_run embed-image MODEL IMAGE... -o OUT.npy  float32 [N, D]
 *   clip_run embed-text MODEL TEXT... -o OUT.npy    float32 [N, D]
 *   clip_run classify MODEL IMAGE... -l LABEL...    zero-shot labels, best first
 *   clip_run score MODEL IMAGE TEXT                 cosine similarity and logit
 *
 * Errors go to stderr as one line "clip_run: error: ..."; the exit code is 0 only on
 * success (1: the work failed, 2: the command line was wrong).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/npy.h"
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
    int top, threads, raw, json, null_sep, ids, help;
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
        case 't': case 'k': {
            errno = 0;
            long v = strtol(value, &end, 10);
            if (errno || *end || end == value || v < 1 || v > 4096)
                return usage_error(cmd, "%s needs a whole number from 1 to 4096, not '%s'", s, value);
            if (key == 't') a->threads = (int)v; else a->top = (int)v;
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

static int open_session(const char *path, int threads, int need_context, session *s) {
    memset(s, 0, sizeof *s);
    if (clip_model_load(path, &s->model) != CLIP_OK) return api_fail();
    s->cfg = clip_model_config(s->model);
    if (need_context && clip_context_new(s->model, threads, &s->ctx) != CLIP_OK) return api_fail();
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

static int embed_text(session *s, const char *text, size_t len, int32_t *ids, float *embed) {
    if (s->ids_input) {
        int rc = parse_ids(s, text, len, ids);
        if (rc) return rc;
    } else if (clip_tokenize(s->model, text, len, ids) != CLIP_OK) return api_fail();
    if (clip_encode_texts(s->ctx, ids, 1, embed) != CLIP_OK) return api_fail();
    return 0;
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
    int rc = open_session(a->pos[0], 0, 0, &s);
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
    printf("kernels:      %s (CPU supports %s), matmul: OpenBLAS\n",
           cpu_level_name(kernels_level()), cpu_level_name(cpu_detect()));
    close_session(&s);
    return 0;
}

static int cmd_tokenize(args *a) {
    if (a->n_pos < 1) return usage_error(a->cmd, "tokenize needs MODEL and TEXT...");
    text_list t;
    session s;
    int rc = gather_texts(a, 1, &t);
    if (!rc) rc = open_session(a->pos[0], 0, 0, &s);
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
    int rc = open_session(a->pos[0], 0, 0, &s);
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
    int rc = open_session(a->pos[0], a->threads, 1, &s);
    if (rc) return rc;
    const int n = a->n_pos - 1, size = s.cfg->image_size, dim = s.cfg->embed_dim;
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    float *embeds = malloc(sizeof(float) * (size_t)n * dim);
    if (!pixels || !embeds) rc = fail("out of memory");
    for (int i = 0; !rc && i < n; i++) {
        rc = embed_image(&s, a->pos[1 + i], pixels, embeds + (size_t)i * dim);
        if (!rc && !a->raw) clip_normalize(embeds + (size_t)i * dim, dim);
    }
    if (!rc) rc = write_embeddings(a->output, embeds, n, dim);
    free(pixels);
    free(embeds);
    close_session(&s);
    return rc;
}

static int cmd_embed_text(args *a) {
    if (a->n_pos < 1) return usage_error(a->cmd, "embed-text needs MODEL and TEXT...");
    if (!a->output) return usage_error(a->cmd, "embed-text needs -o OUT.npy");
    text_list t;
    session s;
    int rc = gather_texts(a, 1, &t);
    if (!rc) rc = open_session(a->pos[0], a->threads, 1, &s);
    if (rc) { free_texts(&t); return rc; }
    s.ids_input = a->ids;
    const int dim = s.cfg->embed_dim;
    float *embeds = malloc(sizeof(float) * (size_t)t.n * dim);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    if (!embeds || !ids) rc = fail("out of memory");
    for (int i = 0; !rc && i < t.n; i++) {
        rc = embed_text(&s, t.text[i], t.len[i], ids, embeds + (size_t)i * dim);
        if (!rc && !a->raw) clip_normalize(embeds + (size_t)i * dim, dim);
    }
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
    int rc = open_session(a->pos[0], a->threads, 1, &s);
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
    int rc = open_session(a->pos[0], a->threads, 1, &s);
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

/* ---- Help and dispatch ------------------------------------------------------------------- */
typedef struct {
    const char *name, *accepts, *usage;
    int (*run)(args *);
} command;

static const command commands[] = {
    {"info", "", "info MODEL\n  Print the model's config and the kernels this CPU uses.\n", cmd_info},
    {"tokenize", "fj0",
     "tokenize MODEL TEXT... [-f FILE] [-0] [--json]\n"
     "  Print each text's token ids (context length, zero padded), one line per text.\n"
     "  -f FILE   also read texts from FILE, one per line ('-' = stdin)\n"
     "  -0        texts in FILE are separated by NUL bytes instead of newlines\n"
     "  --json    one JSON object per text: {\"text\": ..., \"ids\": [...]}\n", cmd_tokenize},
    {"preprocess", "o",
     "preprocess MODEL IMAGE -o OUT.npy\n"
     "  Decode, resize, crop and normalize IMAGE as the reference does: float32 [3, S, S].\n", cmd_preprocess},
    {"embed-image", "ort",
     "embed-image MODEL IMAGE... -o OUT.npy [--raw] [-t N]\n"
     "  Image embeddings, float32 [N, D], L2-normalized unless --raw.\n"
     "  An IMAGE ending in .npy is a preprocessed float32 [3, S, S] tensor.\n"
     "  -t N      threads (default: one per core)\n", cmd_embed_image},
    {"embed-text", "ortf0i",
     "embed-text MODEL TEXT... -o OUT.npy [--raw] [-f FILE] [-0] [--ids] [-t N]\n"
     "  Text embeddings, float32 [N, D], L2-normalized unless --raw.\n"
     "  -f FILE   also read texts from FILE, one per line ('-' = stdin); -0: NUL-separated\n"
     "  --ids     each TEXT is already token ids (\"49406 320 49407\"), zero padded to the context\n", cmd_embed_text},
    {"classify", "ltTkj",
     "classify MODEL IMAGE... -l LABEL [-l LABEL...] [--template T] [--top K] [--json] [-t N]\n"
     "  Zero-shot classification: softmax over exp(logit_scale) * cosine(image, prompt),\n"
     "  prompt = the template with {} replaced by the label (default \"a photo of a {}.\").\n"
     "  --top K   print only the K best labels\n"
     "  --json    one JSON object per image: {\"image\", \"results\": [{\"label\", \"prob\", \"cosine\"}]}\n", cmd_classify},
    {"score", "jt",
     "score MODEL IMAGE TEXT [--json] [-t N]\n"
     "  Cosine similarity of the image and the text, and the logit (exp(logit_scale) * cosine).\n", cmd_score},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void print_help(FILE *out) {
    fprintf(out, "clip_run %s - CLIP image and text embeddings in C\n\nusage: clip_run COMMAND ARGS...\n\n",
            CLIP_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "clip_run %s\n", commands[i].usage);
    fprintf(out, "Options end at '--' (so a text may start with '-'). 'clip_run COMMAND --help' for one command.\n");
}

int main(int argc, char **argv) {
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

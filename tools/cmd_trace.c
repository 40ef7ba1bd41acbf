/* cmd_trace.c - clip_run trace: every stage of one forward pass, for learning and debugging.
 *
 *   clip_run trace MODEL IMAGE [--dump DIR]      pixels [3, S, S] -> ... -> image_embed [D]
 *   clip_run trace MODEL --text TEXT [--dump DIR] ids [C] -> ... -> text_embed [D]
 *
 * The model calls trace_stage (clip_context_set_trace, model/clip.h) at each stage boundary
 * with the stage's name, shape and data; this prints one line per stage (shape, mean, std,
 * first values) and, with --dump DIR, writes DIR/STAGE.npy. One input, so the batch
 * dimension (1) is left out of shapes and files. The stage names are those of
 * ../shared/clip/golden-tiny/debug/ where it has the stage (tests/test_trace.py compares).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/npy.h"
#include "../model/clip.h"
#include "cli.h"

typedef struct {
    const char *dump;            /* directory, or NULL */
    int rc;                      /* the first failure to write a file */
} trace_state;

static void trace_line(const char *name, int n_dims, const int64_t *dims, const float *data) {
    size_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= (size_t)dims[i];
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) sum += data[i];
    const double mean = n ? sum / n : 0;
    for (size_t i = 0; i < n; i++) sum2 += (data[i] - mean) * (data[i] - mean);
    char shape[64] = "[";
    for (int i = 0; i < n_dims; i++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", i ? ", " : "",
                 (long long)dims[i]);
    strncat(shape, "]", sizeof shape - strlen(shape) - 1);
    printf("%-28s %-16s mean %10.6f  std %9.6f  first", name, shape, mean, n ? sqrt(sum2 / n) : 0.0);
    for (size_t i = 0; i < n && i < 4; i++) printf(" %9.5f", data[i]);
    printf("\n");
}

static void trace_dump(trace_state *t, const char *name, int n_dims, const int64_t *dims, const float *data) {
    if (!t->dump || t->rc) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", t->dump, name);
    if (npy_write_f32(path, data, n_dims, dims) != CLIP_OK) t->rc = api_fail();
}

static void trace_stage(void *user, const char *name, int n_dims, const int *dims, const float *data) {
    int64_t d[8];
    int k = 0;
    for (int i = 1; i < n_dims && k < 8; i++) d[k++] = dims[i];   /* drop the batch of 1 */
    trace_line(name, k, d, data);
    trace_dump(user, name, k, d, data);
}

int cmd_trace(args *a) {
    const int text_mode = a->text != NULL;
    if (a->n_pos != (text_mode ? 1 : 2))
        return usage_error(a->cmd, "trace takes MODEL and IMAGE, or MODEL and --text TEXT");
    if (a->dump && mkdir(a->dump, 0777) != 0 && errno != EEXIST)
        return fail("%s: cannot create directory: %s", a->dump, strerror(errno));
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const clip_config *c = s.cfg;
    trace_state t = {a->dump, 0};
    float *embed = malloc(sizeof(float) * c->embed_dim);
    float *pixels = text_mode ? NULL : malloc(sizeof(float) * 3 * c->image_size * c->image_size);
    int32_t *ids = text_mode ? malloc(sizeof(int32_t) * c->text_context) : NULL;
    float *ids_f = text_mode ? malloc(sizeof(float) * c->text_context) : NULL;
    if (!embed || (!text_mode && !pixels) || (text_mode && (!ids || !ids_f))) rc = fail("out of memory");
    if (!rc && text_mode && strlen(a->text) > MAX_TEXT_BYTES) rc = fail("text longer than %d bytes", MAX_TEXT_BYTES);
    if (!rc && text_mode) rc = text_ids(&s, a->text, strlen(a->text), ids);
    if (!rc && text_mode) {
        /* The tokens, and where the end token is: the tower pools there (argmax of the ids,
         * as the reference does) and computes no position after it. */
        int eot = 0, n_real = 0;
        for (int i = 0; i < c->text_context; i++) {
            if (ids[i] > ids[eot]) eot = i;
            if (ids[i]) n_real = i + 1;
            ids_f[i] = (float)ids[i];
        }
        printf("%-28s [%d]             ", "text_tokens", c->text_context);
        for (int i = 0; i < n_real; i++) printf(" %d", ids[i]);
        printf("%s\n%-28s %d (the tower computes positions 0..%d)\n", n_real < c->text_context ? " 0..." : "",
               "text_end_token", eot, eot);
        int64_t dims[1] = {c->text_context};
        trace_dump(&t, "text_tokens", 1, dims, ids_f);   /* float32: ids < 2^24 are exact */
    }
    if (!rc && !text_mode) rc = load_pixels(&s, a->pos[1], pixels);
    if (!rc) {
        clip_context_set_trace(s.ctx, trace_stage, &t);
        int e = text_mode ? clip_encode_texts(s.ctx, ids, 1, embed) : clip_encode_images(s.ctx, pixels, 1, embed);
        clip_context_set_trace(s.ctx, NULL, NULL);
        if (e != CLIP_OK) rc = api_fail();
    }
    if (!rc) rc = t.rc;
    free(embed);
    free(pixels);
    free(ids);
    free(ids_f);
    close_session(&s);
    return rc;
}

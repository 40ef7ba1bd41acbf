/* cmd_embed.c - the commands that turn inputs into arrays: preprocess (an image to the
 * normalized float32 [3, S, S] pixels), embed-image and embed-text (float32 [N, D]).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/npy.h"
#include "../model/clip.h"
#include "cli.h"

int cmd_preprocess(args *a) {
    if (a->n_pos != 2) return usage_error(a->cmd, "preprocess takes MODEL and one IMAGE");
    if (!a->output) return usage_error(a->cmd, "preprocess needs -o OUT.npy");
    session s;
    int rc = refuse_output_over_inputs(a, a->n_pos);
    if (rc) return rc;
    rc = open_session(a->pos[0], a, 0, &s);
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

int cmd_embed_image(args *a) {
    if (a->n_pos < 2) return usage_error(a->cmd, "embed-image needs MODEL and IMAGE...");
    if (!a->output) return usage_error(a->cmd, "embed-image needs -o OUT.npy");
    session s;
    int rc = refuse_output_over_inputs(a, a->n_pos);
    if (rc) return rc;
    rc = open_session(a->pos[0], a, 1, &s);
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

int cmd_embed_text(args *a) {
    if (a->n_pos < 1) return usage_error(a->cmd, "embed-text needs MODEL and TEXT...");
    if (!a->output) return usage_error(a->cmd, "embed-text needs -o OUT.npy");
    text_list t;
    session s;
    int rc = refuse_output_over_inputs(a, 1);
    if (rc) return rc;
    rc = gather_texts(a, 1, &t);
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


/* calibrate.c - calibration inputs for clip_run quantize's GPTQ (kernels/gptq.c): the
 * inputs of every block's four linear layers while the f32 model encodes a fixed set of
 * synthetic images and texts.
 *
 * Layers and the trace stages that are their inputs (model/clip.h, clip_context_set_trace):
 *   TOWER.blocks.L.attn.qkv.weight  <- TOWER_blockL_ln1   [n, T, W]
 *   TOWER.blocks.L.attn.out.weight  <- TOWER_blockL_attn  [n, T, W]
 *   TOWER.blocks.L.mlp.fc1.weight   <- TOWER_blockL_ln2   [n, T, W]
 *   TOWER.blocks.L.mlp.fc2.weight   <- TOWER_blockL_mlp   [n, T, F]
 * T is every token that reaches the embedding: an image's N + 1 (1 in the last block from the
 * attention on), a text's tokens up to its end token. Of an image's tokens at most
 * ROWS_PER_IMAGE are kept (evenly spaced, the class token first), which bounds the memory:
 * rows x the sum of the layers' k floats (a ViT-B/32: 16 images x 50 tokens, 128 texts, 0.4 GB).
 *
 * The inputs are made, not read: calibrating on the user's images would tie the file to
 * them, and GPTQ needs the inputs' correlations, which come from the model's structure more
 * than from what is in the picture. Images: a flat colour, waves of random frequency and
 * direction, flat rectangles and a little noise, from a fixed seed (README, "Quantized
 * models": calibrated on these, tested on photographs). Texts: prompt templates x subjects.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"

#define N_IMAGES 16
#define ROWS_PER_IMAGE 64
#define N_LONG_TEXTS 8

static const char *const templates[] = {
    "a photo of a %s.", "a drawing of a %s", "a close-up photo of the %s", "a blurry picture of a %s.",
    "%s", "an old black and white photograph of a %s on a city street at night",
    "a painting of a small %s next to a large red house, in the style of a children's book",
    "there is a %s in this picture, and two people are looking at it!", "red %s", "%s?",
};
static const char *const subjects[] = {
    "dog", "cat", "car", "tree", "house", "person", "bird", "boat", "flower", "bicycle", "mountain", "plate of food",
};

/* splitmix64: a fixed sequence, the same on every machine */
static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float uniform(uint64_t *state) { return (float)(next_u64(state) >> 40) / 16777216.0f; }

/* One synthetic picture in [0, 1], then normalized as preprocessing does: pixels [3, S, S]. */
static void synthetic_image(float *pixels, int size, int grey, const clip_config *cfg, uint64_t *rng) {
    const size_t plane = (size_t)size * size;
    for (int c = 0; c < 3; c++) {
        const float base = uniform(rng);
        for (size_t e = 0; e < plane; e++) pixels[c * plane + e] = base;
    }
    for (int wave = 0; wave < 6; wave++) {
        const float u = uniform(rng), freq = 1 + 20 * u * u, angle = 6.2831853f * uniform(rng);
        const float phase = 6.2831853f * uniform(rng), amp[3] = {0.3f * uniform(rng), 0.3f * uniform(rng),
                                                                  0.3f * uniform(rng)};
        const float fx = 6.2831853f * freq * cosf(angle) / size, fy = 6.2831853f * freq * sinf(angle) / size;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                const float s = sinf(fx * x + fy * y + phase);
                for (int c = 0; c < 3; c++) pixels[c * plane + (size_t)y * size + x] += amp[c] * s;
            }
    }
    for (int rect = 0; rect < 5; rect++) {
        const int x0 = (int)(uniform(rng) * 0.9f * size), y0 = (int)(uniform(rng) * 0.9f * size);
        const int w = (int)((0.07f + 0.45f * uniform(rng)) * size), h = (int)((0.07f + 0.45f * uniform(rng)) * size);
        const float colour[3] = {uniform(rng), uniform(rng), uniform(rng)};
        for (int y = y0; y < y0 + h && y < size; y++)
            for (int x = x0; x < x0 + w && x < size; x++)
                for (int c = 0; c < 3; c++) pixels[c * plane + (size_t)y * size + x] = colour[c];
    }
    if (grey)                /* photographs come in grey too: R = G = B */
        for (size_t e = 0; e < plane; e++)
            pixels[e] = pixels[plane + e] = pixels[2 * plane + e] =
                (pixels[e] + pixels[plane + e] + pixels[2 * plane + e]) / 3;
    for (int c = 0; c < 3; c++)
        for (size_t e = 0; e < plane; e++) {
            /* Box-Muller: noise of standard deviation 0.05 */
            const float u1 = uniform(rng) + 1e-7f, u2 = uniform(rng);
            float v = pixels[c * plane + e] + 0.05f * sqrtf(-2 * logf(u1)) * cosf(6.2831853f * u2);
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            pixels[c * plane + e] = (v - cfg->image_mean[c]) / cfg->image_std[c];
        }
}

static calib_layer *layer_named(calib_set *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->layers[i].name, name)) return &s->layers[i];
    return NULL;
}

const calib_layer *calib_find(const calib_set *s, const char *name) {
    return layer_named((calib_set *)s, name);
}

/* Appends the rows of data [n, T, k] to the inputs of the layer `name`. */
static void append(calib_set *s, const char *name, const int *dims, const float *data) {
    calib_layer *l = layer_named(s, name);
    if (!l) {
        calib_layer *grown = realloc(s->layers, sizeof *grown * (size_t)(s->n + 1));
        if (!grown) { s->failed = 1; return; }
        s->layers = grown;
        l = &s->layers[s->n++];
        memset(l, 0, sizeof *l);
        snprintf(l->name, sizeof l->name, "%s", name);
        l->k = dims[2];
    }
    const int n_seq = dims[0], tokens = dims[1], k = dims[2];
    const int keep = tokens > ROWS_PER_IMAGE ? ROWS_PER_IMAGE : tokens;
    if (k != l->k) { s->failed = 1; return; }
    if (l->rows + n_seq * keep > l->cap) {
        int cap = l->cap ? l->cap : 256;
        while (cap < l->rows + n_seq * keep) cap *= 2;
        float *grown = realloc(l->x, sizeof(float) * (size_t)cap * k);
        if (!grown) { s->failed = 1; return; }
        l->x = grown, l->cap = cap;
    }
    for (int q = 0; q < n_seq; q++)
        for (int i = 0; i < keep; i++) {
            const int t = (int)((long)i * tokens / keep);      /* evenly spaced, token 0 first */
            memcpy(l->x + (size_t)l->rows++ * k, data + ((size_t)q * tokens + t) * k, sizeof(float) * (size_t)k);
        }
}

/* The trace hook: the stages that are a layer's input. */
static void collect(void *user, const char *stage, int n_dims, const int *dims, const float *data) {
    calib_set *s = user;
    char tower[16], what[16];
    int block, end = 0;
    if (!s->failed && n_dims == 3 && !strcmp(stage, "vision_patches")) {
        append(s, "vision.patch_embed.weight", dims, data);
        return;
    }
    if (s->failed || n_dims != 3 || sscanf(stage, "%15[a-z]_block%d_%15[a-z0-9]%n", tower, &block, what, &end) != 3 ||
        stage[end] != '\0')
        return;
    static const struct { const char *stage, *layer; } map[] = {
        {"ln1", "attn.qkv.weight"}, {"attn", "attn.out.weight"}, {"ln2", "mlp.fc1.weight"}, {"mlp", "mlp.fc2.weight"}};
    const char *layer = NULL;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(what, map[i].stage)) layer = map[i].layer;
    if (!layer) return;
    char name[sizeof s->layers[0].name];
    snprintf(name, sizeof name, "%s.blocks.%d.%s", tower, block, layer);
    append(s, name, dims, data);
}

int calibrate(clip_model *model, clip_context *ctx, calib_set *out) {
    memset(out, 0, sizeof *out);
    const clip_config *cfg = clip_model_config(model);
    const int size = cfg->image_size;
    float *pixels = malloc(sizeof(float) * 3 * (size_t)size * size);
    float *embed = malloc(sizeof(float) * (size_t)cfg->embed_dim);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cfg->text_context);
    int rc = CLIP_ERR_NOMEM;
    if (!pixels || !embed || !ids) goto done;
    clip_context_set_trace(ctx, collect, out);
    uint64_t rng = 20261206;
    for (int i = 0; i < N_IMAGES && !out->failed; i++) {
        synthetic_image(pixels, size, i % 4 == 3, cfg, &rng);
        if ((rc = clip_encode_images(ctx, pixels, 1, embed)) != CLIP_OK) goto done;
    }
    for (size_t t = 0; t < sizeof templates / sizeof templates[0] && !out->failed; t++)
        for (size_t s = 0; s < sizeof subjects / sizeof subjects[0] && !out->failed; s++) {
            char text[256];
            snprintf(text, sizeof text, templates[t], subjects[s]);
            if ((rc = clip_tokenize(model, text, strlen(text), ids)) != CLIP_OK) goto done;
            if ((rc = clip_encode_texts(ctx, ids, 1, embed)) != CLIP_OK) goto done;
        }
    /* and texts that fill the whole context: every position embedding then meets
     * calibration, and GPTQ cannot hide errors where only long texts go */
    for (int i = 0; i < N_LONG_TEXTS && !out->failed; i++) {
        char text[1024] = "";
        for (size_t w = 0; strlen(text) < 600; w++) {
            strcat(text, subjects[(i + w * (i + 1)) % (sizeof subjects / sizeof subjects[0])]);
            strcat(text, w % 3 == 2 ? ". " : w % 2 ? " and " : ", ");
        }
        if ((rc = clip_tokenize(model, text, strlen(text), ids)) != CLIP_OK) goto done;
        if ((rc = clip_encode_texts(ctx, ids, 1, embed)) != CLIP_OK) goto done;
    }
    rc = out->failed ? CLIP_ERR_NOMEM : CLIP_OK;
done:
    clip_context_set_trace(ctx, NULL, NULL);
    free(pixels), free(embed), free(ids);
    if (rc != CLIP_OK) calib_free(out);
    return rc;
}

void calib_free(calib_set *s) {
    for (int i = 0; i < s->n; i++) free(s->layers[i].x);
    free(s->layers);
    memset(s, 0, sizeof *s);
}

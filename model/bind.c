/* bind.c - find every tensor the architecture needs and check its shape.
 *
 * The tensor names and shapes are the contract of docs/FORMAT.md. A missing tensor or a
 * shape that disagrees with the config is an error naming both, so a file that loads is
 * a file the forward pass can run on without any further checks.
 *
 * The linear layers' weights become gemm_weights (kernels/gemm.h): a tensor stored packed
 * (format version 2, tools/convert.py) is used in place in the mapping; a row-major one
 * (version 1 files) is packed here into memory the model owns, which costs a copy of the
 * weights at load (the file's pages of them are then dropped, so memory still holds the
 * weights once; re-convert the checkpoint to skip the copy).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/error.h"
#include "model.h"

/* Look up `name` (printf-style) and require the given dims (n_dims of them). packed: NULL
 * for a tensor that must be row-major, else set to whether it is stored in panels. */
static int find_tensor(const clip_model *m, const float **out, int *packed, int n_dims, const uint64_t *dims,
                       const char *fmt, va_list ap) {
    char name[128];
    vsnprintf(name, sizeof name, fmt, ap);
    const wf_tensor *t = weightfile_find(&m->file, name);
    if (!t) return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' is missing", m->file.path, name);
    if (WF_LAYOUT(t->dtype) != WF_ROWS && !packed)
        return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' is stored in panels; only linear weights may be",
                         m->file.path, name);
    if (packed) *packed = WF_LAYOUT(t->dtype) != WF_ROWS;
    int same = t->n_dims == (uint32_t)n_dims;
    for (int d = 0; same && d < n_dims; d++) same = t->dims[d] == dims[d];
    if (!same) {
        char got[96] = "", want[96] = "";
        for (uint32_t d = 0; d < t->n_dims; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", d ? ", " : "",
                     (unsigned long long)t->dims[d]);
        for (int d = 0; d < n_dims; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", d ? ", " : "",
                     (unsigned long long)dims[d]);
        return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' has shape [%s], the config needs [%s]",
                         m->file.path, name, got, want);
    }
    *out = t->data;
    return CLIP_OK;
}

/* A row-major f32 tensor of the given shape. */
static int find(const clip_model *m, const float **out, int n_dims, const uint64_t *dims, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = find_tensor(m, out, NULL, n_dims, dims, fmt, ap);
    va_end(ap);
    return rc;
}

static int find_matrix(const clip_model *m, const float **out, int *packed, const uint64_t *dims,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = find_tensor(m, out, packed, 2, dims, fmt, ap);
    va_end(ap);
    return rc;
}

/* A linear layer's weight [n, k]: in place if the file stores it in panels (version 2),
 * else packed now into memory the model owns. */
static int find_linear(clip_model *m, gemm_weight *out, uint64_t n, uint64_t k, const char *fmt, ...) {
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const float *rows;
    uint64_t dims[2] = {n, k};
    int packed;
    int rc = find_matrix(m, &rows, &packed, dims, "%s", name);
    if (rc) return rc;
    if (packed) {   /* any element type: f32, f16, bf16, q8_0, q4_0 (weightfile.c checked its size) */
        const gemm_type type = (gemm_type)WF_TYPE(weightfile_find(&m->file, name)->dtype);
        *out = gemm_weight_packed(type, rows, (int)n, (int)k);
        return CLIP_OK;
    }
    const size_t bytes = gemm_packed_bytes(GEMM_F32, (int)n, (int)k);
    void **list = realloc(m->packed, sizeof(void *) * (size_t)(m->n_packed + 1));
    if (!list) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", m->file.path);
    m->packed = list;
    void *panels = aligned_alloc(64, bytes);
    if (!panels) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory packing '%s'", m->file.path, name);
    m->packed[m->n_packed++] = panels;
    m->packed_bytes += bytes;
    gemm_pack(out, panels, GEMM_F32, rows, (int)n, (int)k);
    /* The copy is what the model reads from now on: the file's pages of these rows would
     * otherwise stay resident next to it (a ViT-B/32 then needs 1.6x its file in memory).
     * The checksum reads them once more later (verify.c), and drops them again. */
    const wf_tensor *t = weightfile_find(&m->file, name);
    if (!m->copied && !(m->copied = calloc(m->file.n_tensors, 1)))
        return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", m->file.path);
    m->copied[t - m->file.tensors] = 1;
    weightfile_drop_pages(&m->file, t);
    return CLIP_OK;
}

/* The token embedding [V, W]: row-major f32 (looked up by pointer), or in panels of any
 * type (quantize's output; rows are dequantized one at a time, model/text.c). */
static int find_token_embed(clip_model *m, clip_text *t, uint64_t vocab, uint64_t width) {
    const float *data;
    int packed;
    const uint64_t dims[2] = {vocab, width};
    int rc = find_matrix(m, &data, &packed, dims, "text.token_embed");
    if (rc) return rc;
    t->token_embed = packed ? NULL : data;
    if (packed)
        t->token_embed_packed = gemm_weight_packed((gemm_type)WF_TYPE(weightfile_find(&m->file, "text.token_embed")->dtype),
                                                   data, (int)vocab, (int)width);
    return CLIP_OK;
}

#define SHAPE(...) (sizeof((uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)), ((uint64_t[]){__VA_ARGS__})

static int bind_tower(clip_model *m, clip_tower *tw, const char *prefix) {
    uint64_t d = (uint64_t)tw->d_model, f = (uint64_t)tw->d_mlp;
    tw->blocks = calloc((size_t)tw->n_layers, sizeof(clip_block));
    if (!tw->blocks) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", m->file.path);
    for (int i = 0; i < tw->n_layers; i++) {
        clip_block *b = &tw->blocks[i];
        int rc;
        if ((rc = find(m, &b->ln1_w, SHAPE(d), "%s.blocks.%d.ln1.weight", prefix, i)) ||
            (rc = find(m, &b->ln1_b, SHAPE(d), "%s.blocks.%d.ln1.bias", prefix, i)) ||
            (rc = find_linear(m, &b->qkv_w, 3 * d, d, "%s.blocks.%d.attn.qkv.weight", prefix, i)) ||
            (rc = find(m, &b->qkv_b, SHAPE(3 * d), "%s.blocks.%d.attn.qkv.bias", prefix, i)) ||
            (rc = find_linear(m, &b->out_w, d, d, "%s.blocks.%d.attn.out.weight", prefix, i)) ||
            (rc = find(m, &b->out_b, SHAPE(d), "%s.blocks.%d.attn.out.bias", prefix, i)) ||
            (rc = find(m, &b->ln2_w, SHAPE(d), "%s.blocks.%d.ln2.weight", prefix, i)) ||
            (rc = find(m, &b->ln2_b, SHAPE(d), "%s.blocks.%d.ln2.bias", prefix, i)) ||
            (rc = find_linear(m, &b->fc1_w, f, d, "%s.blocks.%d.mlp.fc1.weight", prefix, i)) ||
            (rc = find(m, &b->fc1_b, SHAPE(f), "%s.blocks.%d.mlp.fc1.bias", prefix, i)) ||
            (rc = find_linear(m, &b->fc2_w, d, f, "%s.blocks.%d.mlp.fc2.weight", prefix, i)) ||
            (rc = find(m, &b->fc2_b, SHAPE(d), "%s.blocks.%d.mlp.fc2.bias", prefix, i)))
            return rc;
    }
    return CLIP_OK;
}

int model_bind(clip_model *m) {
    const clip_config *c = &m->config;
    clip_vision *v = &m->vision;
    clip_text *t = &m->text;
    v->tower = (clip_tower){c->vision_width, c->vision_heads, c->vision_mlp, c->vision_layers,
                            c->activation, c->ln_eps, NULL, "vision"};
    t->tower = (clip_tower){c->text_width, c->text_heads, c->text_mlp, c->text_layers,
                            c->activation, c->ln_eps, NULL, "text"};
    int grid = c->image_size / c->patch_size;
    v->n_patches = grid * grid;
    uint64_t vw = (uint64_t)c->vision_width, tw = (uint64_t)c->text_width;
    uint64_t p = (uint64_t)c->patch_size, D = (uint64_t)c->embed_dim;
    int rc;
    if ((rc = find_linear(m, &v->patch_w, vw, 3 * p * p, "vision.patch_embed.weight")) ||
        (rc = find(m, &v->class_embed, SHAPE(vw), "vision.class_embed")) ||
        (rc = find(m, &v->pos_embed, SHAPE((uint64_t)v->n_patches + 1, vw), "vision.pos_embed")) ||
        (rc = find(m, &v->ln_pre_w, SHAPE(vw), "vision.ln_pre.weight")) ||
        (rc = find(m, &v->ln_pre_b, SHAPE(vw), "vision.ln_pre.bias")) ||
        (rc = find(m, &v->ln_post_w, SHAPE(vw), "vision.ln_post.weight")) ||
        (rc = find(m, &v->ln_post_b, SHAPE(vw), "vision.ln_post.bias")) ||
        (rc = find_linear(m, &v->proj, D, vw, "vision.proj")) ||
        (rc = bind_tower(m, &v->tower, "vision")) ||
        (rc = find_token_embed(m, t, (uint64_t)c->text_vocab, tw)) ||
        (rc = find(m, &t->pos_embed, SHAPE((uint64_t)c->text_context, tw), "text.pos_embed")) ||
        (rc = find(m, &t->ln_final_w, SHAPE(tw), "text.ln_final.weight")) ||
        (rc = find(m, &t->ln_final_b, SHAPE(tw), "text.ln_final.bias")) ||
        (rc = find_linear(m, &t->proj, D, tw, "text.proj")) ||
        (rc = bind_tower(m, &t->tower, "text")))
        return rc;
    return CLIP_OK;
}

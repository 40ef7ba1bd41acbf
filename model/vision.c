/* vision.c - the image tower (a Vision Transformer), for a batch of n images at once.
 *
 *   pixels [n, 3, S, S]
 *   -> patch_embed: cut into N = (S/P)^2 patches, each flattened to [3 P P] in (channel,
 *      row, column) order, times W^T: a stride-P convolution as one matmul  -> [n N, W]
 *   -> prepend each image's class token, add position embeddings           -> [n (N+1), W]
 *   -> ln_pre -> n_layers residual blocks (the last one for class tokens only)
 *   -> ln_post of the class tokens -> projection                           -> [n, D]
 * Every linear layer runs over the rows of all n images together; attention stays
 * within each image.
 */
#include <string.h>

#include "../kernels/kernels.h"
#include "model.h"

/* Unroll pixels [3, S, S] into patches [N, 3 P P], patch (py, px) at row py * grid + px. */
static void patch_unroll(float *patches, const float *pixels, int image_size, int patch) {
    const int grid = image_size / patch;
    for (int py = 0; py < grid; py++)
        for (int px = 0; px < grid; px++) {
            float *row = patches + (size_t)(py * grid + px) * 3 * patch * patch;
            for (int c = 0; c < 3; c++)
                for (int ky = 0; ky < patch; ky++) {
                    const float *src = pixels + ((size_t)c * image_size + py * patch + ky) * image_size
                                       + px * patch;
                    memcpy(row, src, sizeof(float) * patch);
                    row += patch;
                }
        }
}

void vision_forward(clip_context *ctx, const float *pixels, int n, float *out) {
    const clip_model *m = ctx->model;
    const clip_vision *v = &m->vision;
    const int d = v->tower.d_model, n_patches = v->n_patches, n_tokens = n_patches + 1;
    const int p = m->config.patch_size, image_size = m->config.image_size;
    const size_t image_len = (size_t)3 * image_size * image_size, patch_len = (size_t)3 * p * p;
    float *x = ctx->x;

    /* patch_embed for all n images in one matmul: patches [n * N, 3 P P] -> h [n * N, W];
     * then x row s * (N+1) is image s's class token and the N rows after it its patches. */
    double t0 = model_now_ms();
    for (int s = 0; s < n; s++)
        patch_unroll(ctx->patches + (size_t)s * n_patches * patch_len, pixels + s * image_len,
                     image_size, p);
    model_linear(ctx, ctx->h, ctx->patches, &v->patch_w, NULL, n * n_patches, 0, GEMM_ACT_NONE);
    for (int s = 0; s < n; s++) {
        float *xs = x + (size_t)s * n_tokens * d;
        memcpy(xs, v->class_embed, sizeof(float) * d);
        memcpy(xs + d, ctx->h + (size_t)s * n_patches * d, sizeof(float) * n_patches * d);
        add_inplace(xs, v->pos_embed, (size_t)n_tokens * d);
    }
    ctx->stage_ms[STAGE_EMBED] += model_now_ms() - t0;
    model_layernorm(ctx, x, x, v->ln_pre_w, v->ln_pre_b, n * n_tokens, d, v->tower.ln_eps);

    /* Only the class token (position 0) leaves the last block, compacted to x rows 0..n-1. */
    int class_pos[n];
    memset(class_pos, 0, sizeof class_pos);
    tower_blocks(ctx, &v->tower, n, n_tokens, class_pos, 0);

    /* The class token summarizes the image. */
    model_layernorm(ctx, ctx->h, x, v->ln_post_w, v->ln_post_b, n, d, v->tower.ln_eps);
    t0 = model_now_ms();
    model_linear(ctx, out, ctx->h, &v->proj, NULL, n, 0, GEMM_ACT_NONE);
    ctx->stage_ms[STAGE_HEAD] += model_now_ms() - t0;
}

/* transformer.c - one pre-LayerNorm residual block, shared by both towers.
 *
 *   x [n_seq * seq_len, d_model]: n_seq sequences (a batch) of seq_len tokens each
 *   x = x + out_proj(attention(qkv_proj(ln1(x))))      attention: n_heads heads, per sequence
 *   x = x + fc2(act(fc1(ln2(x))))                       act: quick_gelu or gelu
 *
 * The linear layers see all rows of the batch at once (m = n_seq * seq_len), which is
 * where a batch pays: every weight row is loaded once for many more tokens. Epilogues are
 * fused into the matmuls: the residual adds are accumulating products straight into x,
 * and the activation runs on fc1's output while it is in cache (kernels/gemm.c).
 *
 * Attention is split into (sequence, head) tasks across the thread pool. Each task copies
 * its head's q, k, v columns (seq_len x 3 head_dim floats, a few tens of KB) into a
 * per-thread buffer laid out as a one-head qkv, runs the attention kernel on it in L1,
 * and scatters the result into its columns of h.
 *
 * When only one token of each sequence is needed afterwards (the last block of a tower:
 * the class token of an image, the end token of a text), attention is computed for that
 * query alone, those rows are compacted to x [n_seq, d_model] and everything after
 * attention runs on n_seq rows: the result for those rows is unchanged (the products'
 * summation order does not depend on the number of rows, kernels/gemm.c).
 */
#include <string.h>
#include <time.h>

#include "../kernels/kernels.h"
#include "model.h"

double model_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

void model_linear(clip_context *ctx, float *y, const float *x, const gemm_weight *w, const float *b,
                  int n_rows, int accumulate, gemm_activation act) {
    const gemm_op op = {y, x, w, b, n_rows, accumulate, act, ctx->gemm_work};
    gemm_run(ctx->pool, &op, ctx->backend, kernels_level());
}

static void keep_rows(float *x, int n_seq, int seq_len, const int *pos, int d) {
    /* row s * seq_len + pos[s] -> row s; in ascending order no source is overwritten
     * before it is read (source s' >= s' * seq_len >= destination s') */
    for (int s = 0; s < n_seq; s++)
        memmove(x + (size_t)s * d, x + ((size_t)s * seq_len + pos[s]) * d, sizeof(float) * d);
}

/* ---- LayerNorm over row blocks -------------------------------------------------------- */
#define LN_ROWS 16

typedef struct {
    float *out;
    const float *x, *gamma, *beta;
    int n_rows, dim;
    float eps;
} layernorm_job;

static void layernorm_task(void *arg, int task, int thread) {
    (void)thread;
    const layernorm_job *j = arg;
    const int r0 = task * LN_ROWS, n = j->n_rows - r0 < LN_ROWS ? j->n_rows - r0 : LN_ROWS;
    const size_t offset = (size_t)r0 * j->dim;
    layernorm(j->out + offset, j->x + offset, j->gamma, j->beta, n, j->dim, j->eps);
}

void model_layernorm(clip_context *ctx, float *out, const float *x, const float *gamma,
                     const float *beta, int n_rows, int dim, float eps) {
    const double t0 = model_now_ms();
    layernorm_job job = {out, x, gamma, beta, n_rows, dim, eps};
    threadpool_run(ctx->pool, (n_rows + LN_ROWS - 1) / LN_ROWS, layernorm_task, &job);
    ctx->stage_ms[STAGE_LAYERNORM] += model_now_ms() - t0;
}

/* ---- Attention, one (sequence, head) per task ---------------------------------------------- */
typedef struct {
    clip_context *ctx;
    const int *query_pos;       /* NULL: every query; else the one query of each sequence */
    int d_model, n_heads, head_dim, seq_len, causal;
    const float *q_rows;        /* NULL: q, k, v in ctx->qkv rows [q | k | v]; else ctx->qkv
                                   rows are [k | v] and q_rows [n_seq, d_model] the queries */
} attention_job;

static void attention_task(void *arg, int task, int thread) {
    const attention_job *j = arg;
    const int seq = task / j->n_heads, head = task % j->n_heads, hd = j->head_dim;
    const size_t d = (size_t)j->d_model, col = (size_t)head * hd;
    float *one_head = j->ctx->attn + (size_t)thread * j->ctx->attn_floats;  /* [seq_len, 3 hd] */
    float *out = one_head + (size_t)j->seq_len * 3 * hd;                      /* [n_queries, hd] */

    /* One query at position p sees keys 0..p under the causal mask, all of them otherwise;
     * its q goes to row 0 of the copy, where the kernel takes its first query from. */
    const int p = j->query_pos ? j->query_pos[seq] : 0;
    const int n_keys = j->query_pos && j->causal ? p + 1 : j->seq_len;
    const int n_queries = j->query_pos ? 1 : j->seq_len;
    float *scores = out + (size_t)n_queries * hd;                             /* [seq_len] */
    const size_t row_floats = (j->q_rows ? 2 : 3) * d, k_col = j->q_rows ? 0 : d;
    const float *qkv = j->ctx->qkv + (size_t)seq * j->seq_len * row_floats;
    for (int t = 0; t < n_keys; t++) {
        const float *row = qkv + (size_t)t * row_floats + col;
        float *dst = one_head + (size_t)t * 3 * hd;
        if (!j->q_rows) memcpy(dst, row, sizeof(float) * hd);
        memcpy(dst + hd, row + k_col, sizeof(float) * hd);
        memcpy(dst + 2 * hd, row + k_col + d, sizeof(float) * hd);
    }
    if (j->q_rows) memcpy(one_head, j->q_rows + (size_t)seq * d + col, sizeof(float) * hd);
    else if (j->query_pos) memcpy(one_head, qkv + (size_t)p * 3 * d + col, sizeof(float) * hd);
    attention(out, one_head, n_keys, n_queries, hd, j->causal && !j->query_pos, scores);
    const size_t first_row = j->query_pos ? (size_t)seq : (size_t)seq * j->seq_len;
    for (int q = 0; q < n_queries; q++)
        memcpy(j->ctx->h + (first_row + q) * d + col, out + (size_t)q * hd, sizeof(float) * hd);
}

/* ---- The block ---------------------------------------------------------------------------- */
static void transformer_block(clip_context *ctx, const clip_tower *tw, const clip_block *b, int layer,
                              int n_seq, int seq_len, const int *query_pos, int causal) {
    const int d = tw->d_model, f = tw->d_mlp, n_tokens = n_seq * seq_len;
    const gemm_activation act = tw->activation == CLIP_ACT_GELU ? GEMM_ACT_GELU : GEMM_ACT_QUICK_GELU;
    float *x = ctx->x, *h = ctx->h;
    double t0;

    /* Attention sub-block. Keys and values need every token; queries only the ones at
     * query_pos, if given. */
    model_layernorm(ctx, h, x, b->ln1_w, b->ln1_b, n_tokens, d, tw->ln_eps);
    /* trace shapes: [n_seq, rows of each sequence, width]; one row each after compaction */
    MODEL_TRACE(ctx, h, 3, ((const int[]){n_seq, seq_len, d}), "%s_block%d_ln1", tw->name, layer);
    t0 = model_now_ms();
    /* With one query per sequence (and no trace, which shows every row's q), only those
     * rows need q: k and v for every row go to ctx->qkv as [k | v] (panels d/16 on of the
     * packed W), q for the query rows only (panels 0 .. d/16 - 1) into ctx->mlp, which is
     * free until the MLP. Each output is the same sum as in the full product, so nothing
     * changes but the work: a third of the last block's qkv, 0.46 GFLOP in a batch of 8
     * images (about 4 ms at 1 thread on Zen 4). */
    const float *q_rows = NULL;
    if (query_pos && !ctx->trace && d % GEMM_PANEL == 0 && 2 * d <= seq_len * f) {
        const size_t q_panels_bytes = (size_t)(d / GEMM_PANEL) * b->qkv_w.panel_bytes;
        gemm_weight q_w = b->qkv_w, kv_w = b->qkv_w;
        q_w.n = d;
        kv_w.n = 2 * d;
        kv_w.panels = (const char *)b->qkv_w.panels + q_panels_bytes;
        model_linear(ctx, ctx->qkv, h, &kv_w, b->qkv_b ? b->qkv_b + d : NULL, n_tokens, 0, GEMM_ACT_NONE);
        float *query_h = ctx->mlp, *q = ctx->mlp + (size_t)n_seq * d;
        for (int s = 0; s < n_seq; s++)
            memcpy(query_h + (size_t)s * d, h + ((size_t)s * seq_len + query_pos[s]) * d, sizeof(float) * d);
        model_linear(ctx, q, query_h, &q_w, b->qkv_b, n_seq, 0, GEMM_ACT_NONE);
        q_rows = q;
    } else {
        model_linear(ctx, ctx->qkv, h, &b->qkv_w, b->qkv_b, n_tokens, 0, GEMM_ACT_NONE);
    }
    ctx->stage_ms[STAGE_QKV] += model_now_ms() - t0;
    MODEL_TRACE(ctx, ctx->qkv, 3, ((const int[]){n_seq, seq_len, 3 * d}), "%s_block%d_qkv", tw->name, layer);

    t0 = model_now_ms();
    attention_job job = {ctx, query_pos, d, tw->n_heads, d / tw->n_heads, seq_len, causal, q_rows};
    threadpool_run(ctx->pool, n_seq * tw->n_heads, attention_task, &job);
    int n_rows = n_tokens;
    if (query_pos) {
        keep_rows(x, n_seq, seq_len, query_pos, d);
        n_rows = n_seq;
    }
    ctx->stage_ms[STAGE_ATTENTION] += model_now_ms() - t0;
    const int rows = n_rows / n_seq;   /* of each sequence from here on */
    MODEL_TRACE(ctx, h, 3, ((const int[]){n_seq, rows, d}), "%s_block%d_attn", tw->name, layer);

    t0 = model_now_ms();
    model_linear(ctx, x, h, &b->out_w, b->out_b, n_rows, 1, GEMM_ACT_NONE);  /* x += ... */
    ctx->stage_ms[STAGE_OUT_PROJ] += model_now_ms() - t0;
    MODEL_TRACE(ctx, x, 3, ((const int[]){n_seq, rows, d}), "%s_block%d_after_attn", tw->name, layer);

    /* MLP sub-block. */
    model_layernorm(ctx, h, x, b->ln2_w, b->ln2_b, n_rows, d, tw->ln_eps);
    MODEL_TRACE(ctx, h, 3, ((const int[]){n_seq, rows, d}), "%s_block%d_ln2", tw->name, layer);
    t0 = model_now_ms();
    model_linear(ctx, ctx->mlp, h, &b->fc1_w, b->fc1_b, n_rows, 0, act);
    MODEL_TRACE(ctx, ctx->mlp, 3, ((const int[]){n_seq, rows, f}), "%s_block%d_mlp", tw->name, layer);
    model_linear(ctx, x, ctx->mlp, &b->fc2_w, b->fc2_b, n_rows, 1, GEMM_ACT_NONE);
    ctx->stage_ms[STAGE_MLP] += model_now_ms() - t0;
    MODEL_TRACE(ctx, x, 3, ((const int[]){n_seq, rows, d}), "%s_after_block%d", tw->name, layer);
}

/* ---- The tower's blocks ------------------------------------------------------------------- */
void tower_blocks(clip_context *ctx, const clip_tower *tw, int n_seq, int seq_len, const int *keep,
                  int causal) {
    for (int l = 0; l < tw->n_layers; l++)
        transformer_block(ctx, tw, &tw->blocks[l], l, n_seq, seq_len, l == tw->n_layers - 1 ? keep : NULL,
                          causal);
    if (tw->n_layers == 0) keep_rows(ctx->x, n_seq, seq_len, keep, tw->d_model);
}

/* attention.c - scaled dot-product self-attention of one head, scalar reference.
 *
 * qkv: [n_tokens, 3 * head_dim], row t = q_t | k_t | v_t.
 * out: [n_queries, head_dim]. For query t < n_queries:
 *      p = softmax_j(q_t . k_j / sqrt(head_dim)) over keys j < n_tokens (j <= t if causal)
 *      out[t] = sum_j p_j v_j
 * scratch: n_tokens floats, the scores and then the weights of one query.
 *
 * The caller (model/transformer.c) runs one (sequence, head) per task and hands each a
 * compact copy of that head's columns, so every query walks keys and values that sit
 * together in cache. The weights are left unnormalised and the output is divided by their
 * sum once, at the end. attention_run() is that loop for every instruction set; this file
 * also holds the scalar steps (attention.h).
 */
#include <math.h>

#include "attention.h"
#include "kernels.h"

void attention_run(const attention_steps *steps, float *out, const float *qkv, int n_tokens,
                   int n_queries, int head_dim, int causal, float *scratch) {
    if (head_dim <= 0) return;
    const size_t row = 3 * (size_t)head_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const float *keys = qkv + head_dim, *values = qkv + 2 * (size_t)head_dim;
    for (int t = 0; t < n_queries; t++) {
        const int n_keys = causal ? t + 1 : n_tokens;
        steps->scores(scratch, qkv + (size_t)t * row, keys, row, n_keys, head_dim, scale);
        const float sum = steps->softmax_numerators(scratch, n_keys);
        steps->weighted_sum(out + (size_t)t * head_dim, scratch, values, row, n_keys, head_dim,
                            1.0f / sum);
    }
}

/* ---- The scalar steps -------------------------------------------------------------------- */
static void scores(float *score, const float *q, const float *keys, size_t row, int n_keys,
                   int head_dim, float scale) {
    for (int j = 0; j < n_keys; j++) {
        const float *k = keys + (size_t)j * row;
        float dot = 0;
        for (int d = 0; d < head_dim; d++) dot += q[d] * k[d];
        score[j] = dot * scale;
    }
}

static float softmax_numerators(float *score, int n_keys) {
    float max = -INFINITY;
    for (int j = 0; j < n_keys; j++)
        if (score[j] > max) max = score[j];
    double sum = 0;
    for (int j = 0; j < n_keys; j++) {
        score[j] = expf(score[j] - max);
        sum += score[j];
    }
    return (float)sum;
}

static void weighted_sum(float *o, const float *weight, const float *values, size_t row,
                         int n_keys, int head_dim, float inv_sum) {
    for (int d = 0; d < head_dim; d++) o[d] = 0;
    for (int j = 0; j < n_keys; j++) {
        const float *v = values + (size_t)j * row;
        for (int d = 0; d < head_dim; d++) o[d] += weight[j] * v[d];
    }
    for (int d = 0; d < head_dim; d++) o[d] *= inv_sum;
}

void attention_scalar(float *out, const float *qkv, int n_tokens, int n_queries, int head_dim,
                      int causal, float *scratch) {
    static const attention_steps steps = {scores, softmax_numerators, weighted_sum};
    attention_run(&steps, out, qkv, n_tokens, n_queries, head_dim, causal, scratch);
}

/* attention.c - multi-head scaled dot-product self-attention, scalar reference.
 *
 * qkv: [n_tokens, 3 * d_model], row t = q_t | k_t | v_t, head h in columns
 *      [h * head_dim, (h + 1) * head_dim) of each third; head_dim = d_model / n_heads.
 * out: [n_queries, d_model]. For query t < n_queries and head h:
 *      p = softmax_j(q_t . k_j / sqrt(head_dim)) over keys j < n_tokens (j <= t if causal)
 *      out[t, head h] = sum_j p_j v_j
 * scratch: n_tokens floats, the scores and then the weights of one query.
 *
 * Heads are the outer loop so the keys and values of one head stay in cache while every
 * query walks them. The weights are left unnormalised and the output is divided by their
 * sum once, at the end.
 */
#include <math.h>

#include "kernels.h"

void attention_scalar(float *out, const float *qkv, int n_tokens, int n_queries, int d_model,
                      int n_heads, int causal, float *scratch) {
    if (n_heads <= 0 || d_model < n_heads) return;
    const int head_dim = d_model / n_heads;
    const size_t row = 3 * (size_t)d_model;
    const float scale = 1.0f / sqrtf((float)head_dim);

    for (int h = 0; h < n_heads; h++) {
        const float *keys = qkv + d_model + (size_t)h * head_dim;
        const float *values = qkv + 2 * (size_t)d_model + (size_t)h * head_dim;
        for (int t = 0; t < n_queries; t++) {
            const float *q = qkv + (size_t)t * row + (size_t)h * head_dim;
            const int n_keys = causal ? t + 1 : n_tokens;

            float max = -INFINITY;
            for (int j = 0; j < n_keys; j++) {
                const float *k = keys + (size_t)j * row;
                float dot = 0;
                for (int d = 0; d < head_dim; d++) dot += q[d] * k[d];
                scratch[j] = dot * scale;
                if (scratch[j] > max) max = scratch[j];
            }
            double sum = 0;
            for (int j = 0; j < n_keys; j++) {
                scratch[j] = expf(scratch[j] - max);
                sum += scratch[j];
            }

            float *o = out + (size_t)t * d_model + (size_t)h * head_dim;
            for (int d = 0; d < head_dim; d++) o[d] = 0;
            for (int j = 0; j < n_keys; j++) {
                const float *v = values + (size_t)j * row;
                const float p = scratch[j];
                for (int d = 0; d < head_dim; d++) o[d] += p * v[d];
            }
            const float inv_sum = (float)(1.0 / sum);
            for (int d = 0; d < head_dim; d++) o[d] *= inv_sum;
        }
    }
}

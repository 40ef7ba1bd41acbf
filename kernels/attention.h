/* attention.h - the one loop of (one head's) attention, shared by every instruction set.
 *
 * For each query, attention is three steps over the keys and values; attention.c runs the
 * loop (attention_run), and each of attention.c (scalar), attention_avx2.c,
 * attention_avx512.c and attention_neon.c supplies the three steps for its instruction set.
 * Layout of qkv and out: see attention() in kernels.h.
 */
#ifndef CLIP_KERNELS_ATTENTION_H
#define CLIP_KERNELS_ATTENTION_H

#include <stddef.h>

typedef struct {
    /* score[j] = scale * q . k_j for j < n_keys; k_j is row j of `keys` (stride `row`) */
    void (*scores)(float *score, const float *q, const float *keys, size_t row, int n_keys,
                   int head_dim, float scale);
    /* score[j] = exp(score[j] - max_j score) in place; returns their sum */
    float (*softmax_numerators)(float *score, int n_keys);
    /* o[d] = inv_sum * sum_j weight[j] * v_j[d] for d < head_dim */
    void (*weighted_sum)(float *o, const float *weight, const float *values, size_t row,
                         int n_keys, int head_dim, float inv_sum);
} attention_steps;

void attention_run(const attention_steps *steps, float *out, const float *qkv, int n_tokens,
                   int n_queries, int head_dim, int causal, float *scratch);

#endif

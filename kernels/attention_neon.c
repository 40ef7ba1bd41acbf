/* attention_neon.c - self-attention of one head, vectorised over head_dim (NEON).
 *
 * Shapes and semantics as attention.c (qkv: [n_tokens, 3 * head_dim], out:
 * [n_queries, head_dim], scratch: n_tokens floats). For each query:
 *   1. scores: q . k_j for four keys at a time, 4 columns of head_dim per FMA, the four
 *      sums reduced together with two pairwise adds; the last head_dim % 4 columns are
 *      added in scalar;
 *   2. softmax numerators in place in scratch (vecmath_neon.h);
 *   3. the weighted sum of values, in blocks of 16 columns held in registers while all
 *      keys stream past (two keys per step, in two sets of accumulators, to hide FMA
 *      latency), then single vectors, then the last head_dim % 4 columns in scalar;
 *      scaled by 1 / sum when stored.
 */
#include <math.h>

#include "attention.h"
#include "kernels.h"
#include "vecmath_neon.h"

/* scores[j] = scale * (q . k_j), k_j = keys + j * row, for j < n_keys */
static void scores(float *score, const float *q, const float *keys, size_t row, int n_keys,
                   int head_dim, float scale) {
    const int n_full = head_dim - head_dim % V4;
    int j = 0;
    for (; j + 4 <= n_keys; j += 4) {
        const float *k0 = keys + (size_t)j * row, *k1 = k0 + row, *k2 = k1 + row, *k3 = k2 + row;
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < n_full; d += V4) {
            const float32x4_t qv = vld1q_f32(q + d);
            a0 = vfmaq_f32(a0, qv, vld1q_f32(k0 + d));
            a1 = vfmaq_f32(a1, qv, vld1q_f32(k1 + d));
            a2 = vfmaq_f32(a2, qv, vld1q_f32(k2 + d));
            a3 = vfmaq_f32(a3, qv, vld1q_f32(k3 + d));
        }
        float32x4_t sums = vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
        if (n_full < head_dim) {
            float tail[4] = {0, 0, 0, 0};
            for (int d = n_full; d < head_dim; d++) {
                tail[0] += q[d] * k0[d];
                tail[1] += q[d] * k1[d];
                tail[2] += q[d] * k2[d];
                tail[3] += q[d] * k3[d];
            }
            sums = vaddq_f32(sums, vld1q_f32(tail));
        }
        vst1q_f32(score + j, vmulq_f32(sums, vdupq_n_f32(scale)));
    }
    for (; j < n_keys; j++) {
        const float *k = keys + (size_t)j * row;
        float32x4_t a = vdupq_n_f32(0);
        for (int d = 0; d < n_full; d += V4) a = vfmaq_f32(a, vld1q_f32(q + d), vld1q_f32(k + d));
        float dot = vaddvq_f32(a);
        for (int d = n_full; d < head_dim; d++) dot += q[d] * k[d];
        score[j] = dot * scale;
    }
}

/* o[0 .. 4 n_vecs) = inv_sum * sum_j weight[j] * v_j over the same columns. Inlined with a
 * constant n_vecs (1 or 4), the unused accumulators vanish. */
static inline __attribute__((always_inline)) void
weighted_sum_block(float *o, const float *weight, const float *values, size_t row, int n_keys,
                   float inv_sum, const int n_vecs) {
    float32x4_t a[4], b[4];                                 /* even keys, odd keys */
    for (int v = 0; v < n_vecs; v++) a[v] = b[v] = vdupq_n_f32(0);
    int j = 0;
    for (; j + 2 <= n_keys; j += 2) {
        const float *va = values + (size_t)j * row, *vb = va + row;
        const float pa = weight[j], pb = weight[j + 1];
        for (int v = 0; v < n_vecs; v++) {
            a[v] = vfmaq_n_f32(a[v], vld1q_f32(va + V4 * v), pa);
            b[v] = vfmaq_n_f32(b[v], vld1q_f32(vb + V4 * v), pb);
        }
    }
    if (j < n_keys) {
        const float *va = values + (size_t)j * row;
        for (int v = 0; v < n_vecs; v++) a[v] = vfmaq_n_f32(a[v], vld1q_f32(va + V4 * v), weight[j]);
    }
    for (int v = 0; v < n_vecs; v++) vst1q_f32(o + V4 * v, vmulq_n_f32(vaddq_f32(a[v], b[v]), inv_sum));
}

/* o[d] = inv_sum * sum_j weight[j] * v_j[d] for d < head_dim */
static void weighted_sum(float *o, const float *weight, const float *values, size_t row,
                         int n_keys, int head_dim, float inv_sum) {
    int d = 0;
    for (; d + 4 * V4 <= head_dim; d += 4 * V4)
        weighted_sum_block(o + d, weight, values + d, row, n_keys, inv_sum, 4);
    for (; d + V4 <= head_dim; d += V4)
        weighted_sum_block(o + d, weight, values + d, row, n_keys, inv_sum, 1);
    for (; d < head_dim; d++) {
        float sum = 0;
        for (int j = 0; j < n_keys; j++) sum += weight[j] * values[(size_t)j * row + d];
        o[d] = sum * inv_sum;
    }
}

static float softmax_numerators(float *score, int n_keys) {
    return row_exp_sum4(score, (size_t)n_keys, row_max4(score, (size_t)n_keys));
}

void attention_neon(float *out, const float *qkv, int n_tokens, int n_queries, int head_dim,
                    int causal, float *scratch) {
    static const attention_steps steps = {scores, softmax_numerators, weighted_sum};
    attention_run(&steps, out, qkv, n_tokens, n_queries, head_dim, causal, scratch);
}

/* attention_avx2.c - self-attention of one head, vectorised over head_dim (AVX2 + FMA).
 *
 * Shapes and semantics as attention.c (qkv: [n_tokens, 3 * head_dim], out:
 * [n_queries, head_dim], scratch: n_tokens floats). For each query:
 *   1. scores: q . k_j for four keys at a time, 8 columns of head_dim per FMA, the four
 *      sums reduced together;
 *   2. softmax numerators in place in scratch (vecmath_avx2.h);
 *   3. the weighted sum of values, in blocks of up to 32 columns held in registers while
 *      all keys stream past (two keys per step, in two sets of accumulators, to hide FMA
 *      latency), scaled by 1 / sum when stored.
 * Any head_dim works: the last vector of a row is loaded and stored under a mask.
 */
#include <math.h>

#include "attention.h"
#include "kernels.h"
#include "vecmath_avx2.h"

#define BLOCK_VECS 4                      /* weighted-sum block: 4 vectors = 32 columns */

/* Four dot products reduced at once: returns (sum a0, sum a1, sum a2, sum a3). */
static inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* scores[j] = scale * (q . k_j), k_j = keys + j * row, for j < n_keys */
static void scores(float *score, const float *q, const float *keys, size_t row, int n_keys,
                   int head_dim, float scale) {
    const __m256i tail = mask8((size_t)(head_dim % V8));
    const int n_full = head_dim - head_dim % V8;
    int j = 0;
    for (; j + 4 <= n_keys; j += 4) {
        const float *k0 = keys + (size_t)j * row, *k1 = k0 + row, *k2 = k1 + row, *k3 = k2 + row;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        int d = 0;
        for (; d < n_full; d += V8) {
            const __m256 qv = _mm256_loadu_ps(q + d);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + d), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + d), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + d), a3);
        }
        if (d < head_dim) {
            const __m256 qv = _mm256_maskload_ps(q + d, tail);
            a0 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k0 + d, tail), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k1 + d, tail), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k2 + d, tail), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k3 + d, tail), a3);
        }
        _mm_storeu_ps(score + j, _mm_mul_ps(reduce4(a0, a1, a2, a3), _mm_set1_ps(scale)));
    }
    for (; j < n_keys; j++) {
        const float *k = keys + (size_t)j * row;
        __m256 a = _mm256_setzero_ps();
        int d = 0;
        for (; d < n_full; d += V8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a);
        if (d < head_dim)
            a = _mm256_fmadd_ps(_mm256_maskload_ps(q + d, tail), _mm256_maskload_ps(k + d, tail), a);
        score[j] = hsum8(a) * scale;
    }
}

/* o[0 .. n_vecs vectors) = inv_sum * sum_j weight[j] * v_j over the same columns, where
 * the last vector covers only the lanes in `last`. Inlined with a constant n_vecs, the
 * unused accumulators vanish. */
static inline __attribute__((always_inline)) void
weighted_sum_block(float *o, const float *weight, const float *values, size_t row, int n_keys,
                   float inv_sum, const int n_vecs, __m256i last) {
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256i m0 = n_vecs == 1 ? last : all, m1 = n_vecs == 2 ? last : all;
    const __m256i m2 = n_vecs == 3 ? last : all, m3 = last;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;   /* even keys */
    __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                     /* odd keys */
    int j = 0;
    for (; j + 2 <= n_keys; j += 2) {
        const float *va = values + (size_t)j * row, *vb = va + row;
        const __m256 pa = _mm256_set1_ps(weight[j]), pb = _mm256_set1_ps(weight[j + 1]);
        a0 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va, m0), a0);
        b0 = _mm256_fmadd_ps(pb, _mm256_maskload_ps(vb, m0), b0);
        if (n_vecs > 1) {
            a1 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va + V8, m1), a1);
            b1 = _mm256_fmadd_ps(pb, _mm256_maskload_ps(vb + V8, m1), b1);
        }
        if (n_vecs > 2) {
            a2 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va + 2 * V8, m2), a2);
            b2 = _mm256_fmadd_ps(pb, _mm256_maskload_ps(vb + 2 * V8, m2), b2);
        }
        if (n_vecs > 3) {
            a3 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va + 3 * V8, m3), a3);
            b3 = _mm256_fmadd_ps(pb, _mm256_maskload_ps(vb + 3 * V8, m3), b3);
        }
    }
    if (j < n_keys) {
        const float *va = values + (size_t)j * row;
        const __m256 pa = _mm256_set1_ps(weight[j]);
        a0 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va, m0), a0);
        if (n_vecs > 1) a1 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va + V8, m1), a1);
        if (n_vecs > 2) a2 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va + 2 * V8, m2), a2);
        if (n_vecs > 3) a3 = _mm256_fmadd_ps(pa, _mm256_maskload_ps(va + 3 * V8, m3), a3);
    }
    const __m256 inv = _mm256_set1_ps(inv_sum);
    _mm256_maskstore_ps(o, m0, _mm256_mul_ps(_mm256_add_ps(a0, b0), inv));
    if (n_vecs > 1) _mm256_maskstore_ps(o + V8, m1, _mm256_mul_ps(_mm256_add_ps(a1, b1), inv));
    if (n_vecs > 2) _mm256_maskstore_ps(o + 2 * V8, m2, _mm256_mul_ps(_mm256_add_ps(a2, b2), inv));
    if (n_vecs > 3) _mm256_maskstore_ps(o + 3 * V8, m3, _mm256_mul_ps(_mm256_add_ps(a3, b3), inv));
}

/* o[d] = inv_sum * sum_j weight[j] * v_j[d] for d < head_dim */
static void weighted_sum(float *o, const float *weight, const float *values, size_t row,
                         int n_keys, int head_dim, float inv_sum) {
    const __m256i all = _mm256_set1_epi32(-1);
    int d = 0;
    for (; d + BLOCK_VECS * V8 <= head_dim; d += BLOCK_VECS * V8)
        weighted_sum_block(o + d, weight, values + d, row, n_keys, inv_sum, 4, all);
    const int rest = head_dim - d;
    if (rest == 0) return;
    const int n_vecs = (rest + V8 - 1) / V8;
    const __m256i last = mask8((size_t)(rest - (n_vecs - 1) * V8));
    switch (n_vecs) {
    case 1: weighted_sum_block(o + d, weight, values + d, row, n_keys, inv_sum, 1, last); break;
    case 2: weighted_sum_block(o + d, weight, values + d, row, n_keys, inv_sum, 2, last); break;
    case 3: weighted_sum_block(o + d, weight, values + d, row, n_keys, inv_sum, 3, last); break;
    default: weighted_sum_block(o + d, weight, values + d, row, n_keys, inv_sum, 4, last); break;
    }
}

static float softmax_numerators(float *score, int n_keys) {
    return row_exp_sum8(score, (size_t)n_keys, row_max8(score, (size_t)n_keys));
}

void attention_avx2(float *out, const float *qkv, int n_tokens, int n_queries, int head_dim,
                    int causal, float *scratch) {
    static const attention_steps steps = {scores, softmax_numerators, weighted_sum};
    attention_run(&steps, out, qkv, n_tokens, n_queries, head_dim, causal, scratch);
}

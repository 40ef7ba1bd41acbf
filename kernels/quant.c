/* quant.c - f16/bf16 conversion, packing and quantizing weights into the panel layouts of
 * quant.h, quantizing activation rows, and the scalar reference micro-kernels of every
 * type beyond f32 (the results the SIMD kernels must reproduce bit for bit).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

/* ---- Half precision ------------------------------------------------------------------- */
static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t f32_to_f16(float f) {
    const uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000, mag = x & 0x7fffffff;
    if (mag >= 0x7f800000) return (uint16_t)(sign | (mag > 0x7f800000 ? 0x7e00 : 0x7c00));
    if (mag < 0x38800000) {   /* below 2^-14: an f16 subnormal, in units of 2^-24 (exact scaling) */
        return (uint16_t)(sign | (uint32_t)nearbyintf(float_of(mag) * 16777216.0f));
    }
    /* normal: rebias the exponent (127 -> 15), keep 10 mantissa bits, round half to even;
     * a carry out of the mantissa correctly bumps the exponent (up to inf) */
    uint32_t h = ((mag >> 23) - 112) << 10 | (mag & 0x7fffff) >> 13;
    const uint32_t rest = mag & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    if (h > 0x7c00) h = 0x7c00;
    return (uint16_t)(sign | h);
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {                                       /* zero or subnormal: m x 2^-24 */
        const float f = (float)m * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (e == 31) return float_of(sign | 0x7f800000 | m << 13);
    return float_of(sign | (e + 112) << 23 | m << 13);
}

uint16_t f32_to_bf16(float f) {
    const uint32_t x = bits_of(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)(x >> 16 | 0x40);   /* quiet NaN */
    return (uint16_t)((x + 0x7fff + (x >> 16 & 1)) >> 16);
}

uint16_t f32_to_bf16_daz(float f) {
    const uint32_t x = bits_of(f);
    return (x & 0x7f800000) == 0 ? (uint16_t)(x >> 16 & 0x8000) : f32_to_bf16(f);
}

float bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

/* ---- Packing ---------------------------------------------------------------------------- */
static int n_blocks_of(int k) { return (k + QK - 1) / QK; }

size_t quant_panel_bytes(gemm_type type, int k) {
    switch (type) {
    case GEMM_F16: case GEMM_BF16: return ((size_t)k * GEMM_PANEL * 2 + 63) / 64 * 64;
    case GEMM_Q8_0: return (size_t)n_blocks_of(k) * sizeof(q8_0_block);
    case GEMM_Q4_0: return (size_t)n_blocks_of(k) * sizeof(q4_0_block);
    default: return 0;
    }
}

/* The 32 weights of feature row `w` from k step p0 (zero past k). */
static void block_values(float *v, const float *w, int p0, int k) {
    for (int c = 0; c < QK; c++) v[c] = p0 + c < k ? w[p0 + c] : 0.0f;
}

/* q8_0: scale max|v| / 127 rounded to f16; values rounded against that rounded scale so
 * dequantization (d16 x q) is as close as the stored scale allows. */
static uint16_t scale_q8(const float *v) {
    float amax = 0;
    for (int c = 0; c < QK; c++) amax = fmaxf(amax, fabsf(v[c]));
    return f32_to_f16(amax / 127.0f);
}

int quant_level(gemm_type type, float v, float d) {
    if (!(d != 0)) return 0;
    const float r = nearbyintf(v / d);
    if (type == GEMM_Q8_0) return r > 127 ? 127 : r < -127 ? -127 : (int)r;
    return r > 7 ? 7 : r < -8 ? -8 : (int)r;
}

/* The squared error of a block's q4_0 levels against scale d (d != 0). */
static double q4_error(const float *v, float d) {
    double err = 0;
    for (int c = 0; c < QK; c++) {
        const float e = v[c] - (float)quant_level(GEMM_Q4_0, v[c], d) * d;
        err += (double)e * e;
    }
    return err;
}

/* q4_0: values u - 8 in -8..7 times a scale. Which scale: of a few candidates (the block's
 * extreme mapped to -8, or to +-7, +-7.5, +-7.75) the one with the least squared error after
 * rounding (the scale itself rounded to f16 first), then refined by least squares while
 * that lowers the error. */
static uint16_t scale_q4(const float *v) {
    float amax = 0, extreme = 0;
    for (int c = 0; c < QK; c++)
        if (fabsf(v[c]) > amax) { amax = fabsf(v[c]); extreme = v[c]; }
    /* A finer grid of divisors (6 to 8 in steps of 1/8) was measured: no better embeddings
     * on a ViT-B/32, at 5x the quantizing time. */
    static const float divisors[] = {-8.0f, 7.0f, -7.0f, 7.5f, -7.5f, 7.75f, -7.75f};
    uint16_t best_d16 = 0;
    double best_err = INFINITY;
    for (size_t t = 0; t < sizeof divisors / sizeof divisors[0] && amax > 0; t++) {
        const uint16_t d16 = f32_to_f16(extreme / divisors[t]);
        const float d = f16_to_f32(d16);
        if (!(d != 0) || !isfinite(d)) continue;
        const double err = q4_error(v, d);
        if (err < best_err) { best_err = err; best_d16 = d16; }
    }
    /* Refine: with the values fixed, the least-squares scale is sum(v q) / sum(q q); re-round
     * against it, and keep it while the error falls. */
    for (int iter = 0; iter < 3 && best_err > 0; iter++) {
        const float d = f16_to_f32(best_d16);
        double vq = 0, qq = 0;
        for (int c = 0; c < QK; c++) {
            const float r = (float)quant_level(GEMM_Q4_0, v[c], d);
            vq += (double)v[c] * r;
            qq += (double)r * r;
        }
        if (qq == 0) break;
        const uint16_t d16 = f32_to_f16((float)(vq / qq));
        const float nd = f16_to_f32(d16);
        if (!(nd != 0) || !isfinite(nd) || d16 == best_d16) break;
        const double err = q4_error(v, nd);
        if (err >= best_err) break;
        best_err = err;
        best_d16 = d16;
    }
    return best_d16;
}

uint16_t quant_block_scale(gemm_type type, const float v[QK]) {
    return type == GEMM_Q8_0 ? scale_q8(v) : scale_q4(v);
}

void quant_pack_scaled(void *dst, gemm_type type, const float *w, const uint16_t *scales, int n, int k) {
    const size_t panel_bytes = quant_panel_bytes(type, k);
    const int n_panels = (n + GEMM_PANEL - 1) / GEMM_PANEL, n_blocks = n_blocks_of(k);
    memset(dst, 0, panel_bytes * (size_t)n_panels);
    for (int j = 0; j < n; j++) {
        char *panel = (char *)dst + (size_t)(j / GEMM_PANEL) * panel_bytes;
        const int f = j % GEMM_PANEL;
        const float *row = w + (size_t)j * k;
        if (type == GEMM_F16) {
            uint16_t *h = (uint16_t *)panel;
            for (int p = 0; p < k; p++) h[(size_t)p * GEMM_PANEL + f] = f32_to_f16(row[p]);
            continue;
        }
        if (type == GEMM_BF16) {        /* [k / 2][16][2]: step p at pair p / 2, slot p % 2 */
            uint16_t *h = (uint16_t *)panel;
            for (int p = 0; p < k; p++) h[(size_t)(p / 2) * 2 * GEMM_PANEL + 2 * f + p % 2] = f32_to_bf16_daz(row[p]);
            continue;
        }
        for (int b = 0; b < n_blocks; b++) {
            float v[QK];
            block_values(v, row, b * QK, k);
            const uint16_t d16 = scales ? scales[(size_t)j * n_blocks + b] : quant_block_scale(type, v);
            const float d = f16_to_f32(d16);
            if (type == GEMM_Q8_0) {
                q8_0_block *blk = (q8_0_block *)panel + b;
                blk->d[f] = d16;
                for (int c = 0; c < QK; c++) blk->q[c / 4][f][c % 4] = (int8_t)quant_level(type, v[c], d);
            } else {
                q4_0_block *blk = (q4_0_block *)panel + b;
                blk->d[f] = d16;
                for (int c = 0; c < QK; c++) {
                    const int group = c / 4, h = group / 2, shift = group % 2 ? 4 : 0;
                    blk->q[h][f][c % 4] |= (uint8_t)((quant_level(type, v[c], d) + 8) << shift);
                }
            }
        }
    }
}

void quant_pack(void *dst, gemm_type type, const float *w, int n, int k) {
    quant_pack_scaled(dst, type, w, NULL, n, k);
}

/* Block b of feature f as int8 values and its scale, for either quantized type. */
static float block_ints(const gemm_weight *w, const char *panel, int b, int f, int8_t *q) {
    if (w->type == GEMM_Q8_0) {
        const q8_0_block *blk = (const q8_0_block *)panel + b;
        for (int c = 0; c < QK; c++) q[c] = blk->q[c / 4][f][c % 4];
        return f16_to_f32(blk->d[f]);
    }
    const q4_0_block *blk = (const q4_0_block *)panel + b;
    for (int c = 0; c < QK; c++) {
        const int group = c / 4;
        q[c] = (int8_t)(((blk->q[group / 2][f][c % 4] >> (group % 2 ? 4 : 0)) & 15) - 8);
    }
    return f16_to_f32(blk->d[f]);
}

void quant_row(const gemm_weight *w, int j, float *out) {
    const char *panel = (const char *)w->panels + (size_t)(j / GEMM_PANEL) * w->panel_bytes;
    const int f = j % GEMM_PANEL;
    switch (w->type) {
    case GEMM_F32:
        for (int p = 0; p < w->k; p++) out[p] = ((const float *)panel)[(size_t)p * GEMM_PANEL + f];
        return;
    case GEMM_F16:
        for (int p = 0; p < w->k; p++) out[p] = f16_to_f32(((const uint16_t *)panel)[(size_t)p * GEMM_PANEL + f]);
        return;
    case GEMM_BF16:
        for (int p = 0; p < w->k; p++)
            out[p] = bf16_to_f32(((const uint16_t *)panel)[(size_t)(p / 2) * 2 * GEMM_PANEL + 2 * f + p % 2]);
        return;
    default:
        for (int b = 0; b < n_blocks_of(w->k); b++) {
            int8_t q[QK];
            const float d = block_ints(w, panel, b, f, q);
            for (int c = 0; c < QK && b * QK + c < w->k; c++) out[b * QK + c] = d * (float)q[c];
        }
    }
}

/* ---- Activations ------------------------------------------------------------------------- */
size_t q8_act_bytes(int m, int k) {
    const size_t n_blocks = (size_t)n_blocks_of(k);
    return (size_t)m * n_blocks * (sizeof(float) + sizeof(int32_t) + QK) + 64;
}

void q8_act_init(q8_act *a, void *scratch, int m, int k) {
    a->n_blocks = n_blocks_of(k);
    a->d = scratch;
    a->s = (int32_t *)(a->d + (size_t)m * a->n_blocks);
    a->q = (int8_t *)(a->s + (size_t)m * a->n_blocks);
}

void q8_act_quantize(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k) {
    for (int r = row0; r < row0 + n_rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        for (int b = 0; b < a->n_blocks; b++) {
            float v[QK];
            block_values(v, xr, b * QK, k);
            float amax = 0;
            for (int c = 0; c < QK; c++) amax = fmaxf(amax, fabsf(v[c]));
            const float inv = amax > 0 ? 127.0f / amax : 0.0f;
            int8_t *q = a->q + ((size_t)r * a->n_blocks + b) * QK;
            int32_t sum = 0;
            for (int c = 0; c < QK; c++) {
                q[c] = (int8_t)nearbyintf(v[c] * inv);
                sum += q[c];
            }
            a->d[(size_t)r * a->n_blocks + b] = amax / 127.0f;
            a->s[(size_t)r * a->n_blocks + b] = sum;
        }
    }
}

size_t bf16_act_bytes(int m, int k) { return (size_t)m * bf16_act_stride(k) * sizeof(uint16_t) + 64; }

void bf16_round_rows(uint16_t *xb, const float *x, size_t ldx, int row0, int n_rows, int k) {
    const size_t ldxb = bf16_act_stride(k);
    for (int r = row0; r < row0 + n_rows; r++) {
        uint16_t *out = xb + (size_t)r * ldxb;
        for (int p = 0; p < k; p++) out[p] = f32_to_bf16_daz(x[(size_t)r * ldx + p]);
        if (k % 2) out[k] = 0;
    }
}

/* ---- Scalar reference micro-kernels ------------------------------------------------------- */
static void start_acc(const gemm_tile *t, float *acc, const float *y, int j0, int cols) {
    for (int c = 0; c < cols; c++) {
        acc[c] = t->load_y ? y[c] : 0.0f;
        if (t->bias) acc[c] = t->load_y ? acc[c] + t->bias[j0 + c] : t->bias[j0 + c];
    }
}

/* f16: the f32 order with each weight converted first. */
void gemm_f16_scalar_4x16(const gemm_tile *t) {
    for (int j0 = 0; j0 < t->n; j0 += GEMM_PANEL) {
        const uint16_t *panel = (const uint16_t *)((const char *)t->w + (size_t)(j0 / GEMM_PANEL) * t->panel_bytes);
        const int cols = t->n - j0 < GEMM_PANEL ? t->n - j0 : GEMM_PANEL;
        for (int i = 0; i < t->m; i++) {
            const float *x = t->x + (size_t)i * t->ldx;
            float *y = t->y + (size_t)i * t->ldy + j0, acc[GEMM_PANEL];
            start_acc(t, acc, y, j0, cols);
            for (int p = 0; p < t->k; p++)
                for (int c = 0; c < cols; c++) acc[c] = fmaf(x[p], f16_to_f32(panel[(size_t)p * GEMM_PANEL + c]), acc[c]);
            for (int c = 0; c < cols; c++) y[c] = acc[c];
        }
    }
}

/* bf16: the order of vdpbf16ps (quant.h): per pair of k steps, the odd product, then the
 * even one, each one fused multiply-add; subnormal inputs read as zero, subnormal results
 * (after rounding) flushed to zero of their sign. t->xb holds x rounded to bf16. */
static float daz(float f) { return (bits_of(f) & 0x7f800000) == 0 ? float_of(bits_of(f) & 0x80000000u) : f; }
static float ftz(float f) { return daz(f); }        /* the same test on a result */

void gemm_bf16_scalar_4x16(const gemm_tile *t) {
    for (int j0 = 0; j0 < t->n; j0 += GEMM_PANEL) {
        const uint16_t *panel = (const uint16_t *)((const char *)t->w + (size_t)(j0 / GEMM_PANEL) * t->panel_bytes);
        const int cols = t->n - j0 < GEMM_PANEL ? t->n - j0 : GEMM_PANEL;
        for (int i = 0; i < t->m; i++) {
            const uint16_t *xb = t->xb + (size_t)i * t->ldxb;
            float *y = t->y + (size_t)i * t->ldy + j0, acc[GEMM_PANEL];
            start_acc(t, acc, y, j0, cols);
            for (int c = 0; c < cols; c++) acc[c] = daz(acc[c]);
            for (int q = 0; q < t->k / 2; q++) {
                const float x0 = daz(bf16_to_f32(xb[2 * q])), x1 = daz(bf16_to_f32(xb[2 * q + 1]));
                const uint16_t *pair = panel + (size_t)q * 2 * GEMM_PANEL;
                for (int c = 0; c < cols; c++) {
                    acc[c] = ftz(fmaf(x1, daz(bf16_to_f32(pair[2 * c + 1])), acc[c]));
                    acc[c] = ftz(fmaf(x0, daz(bf16_to_f32(pair[2 * c])), acc[c]));
                }
            }
            for (int c = 0; c < cols; c++) y[c] = acc[c];
        }
    }
}

/* q8_0 and q4_0: exact int32 block sums, one fmaf per block (quant.h). t->xq / t->xd are
 * the quantized activation rows at the tile's first block; t->k is a multiple of 32. */
static void int_kernel(const gemm_tile *t) {
    const gemm_weight w = {t->type, GEMM_PANEL, t->k, t->w, t->panel_bytes};
    const int n_blocks = t->k / QK;
    for (int j0 = 0; j0 < t->n; j0 += GEMM_PANEL) {
        const char *panel = (const char *)t->w + (size_t)(j0 / GEMM_PANEL) * t->panel_bytes;
        const int cols = t->n - j0 < GEMM_PANEL ? t->n - j0 : GEMM_PANEL;
        for (int i = 0; i < t->m; i++) {
            const int8_t *xq = t->xq + (size_t)i * t->ldxq;
            const float *xd = t->xd + (size_t)i * t->ldxd;
            float *y = t->y + (size_t)i * t->ldy + j0, acc[GEMM_PANEL];
            start_acc(t, acc, y, j0, cols);
            for (int b = 0; b < n_blocks; b++)
                for (int c = 0; c < cols; c++) {
                    int8_t wq[QK];
                    const float dw = block_ints(&w, panel, b, c, wq);
                    int32_t isum = 0;
                    for (int s = 0; s < QK; s++) isum += (int32_t)xq[b * QK + s] * wq[s];
                    acc[c] = fmaf((float)isum, xd[b] * dw, acc[c]);
                }
            for (int c = 0; c < cols; c++) y[c] = acc[c];
        }
    }
}
void gemm_q8_0_scalar_4x16(const gemm_tile *t) { int_kernel(t); }
void gemm_q4_0_scalar_4x16(const gemm_tile *t) { int_kernel(t); }

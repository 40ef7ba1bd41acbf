/* bf16_neon.c - the bf16 micro-kernel with NEON (aarch64 Advanced SIMD): the order of
 * vdpbf16ps (quant.h) with FMAs and an explicit flush, tiles of up to 4 rows x 16
 * features (one panel = 4 q registers).
 *
 *   x:  the tile's rows rounded to bf16 (t->xb): per pair of k steps one 32-bit value
 *   W:  bf16 panels [k / 2][16][2]: per pair one 64-byte line = 4 q registers of 4 lanes,
 *       each lane a feature's (w[2q] low, w[2q + 1] high)
 *   y:  per row 4 accumulators of 4 floats
 *
 * A bf16 is the top half of an f32: a lane's high half masked is w[2q + 1] as a float, its
 * low half shifted up 16 bits is w[2q]. Per pair and row two FMAs, the odd product first.
 * The denormal handling is explicit, because AArch64's flush-to-zero mode (FPCR.FZ)
 * detects tininess BEFORE rounding, and the x86 instruction after it (a sum just below
 * 2^-126 that rounds to 2^-126 stays there): so FZ stays off, each FMA result with a zero
 * exponent field after rounding is replaced by zero of its sign (a lane test of the
 * exponent bits, then an AND that keeps all of r or only its sign bit), and subnormal weights (possible in a file written elsewhere)
 * are read as zero the same way; x holds no subnormals (bf16_round_rows). Correct before
 * fast: three more instructions per FMA, NEON has no bf16 dot product of this order
 * (BFDOT rounds differently). Bit-identical to the scalar reference in quant.c.
 */
#include <arm_neon.h>
#include <string.h>

#include "quant.h"

#define BF16_MR 4

/* v if its exponent field is not zero (normal, infinite or NaN), else zero of v's sign. */
static inline float32x4_t flush(float32x4_t v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t keep = vorrq_u32(vtstq_u32(u, vdupq_n_u32(0x7f800000u)), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vandq_u32(u, keep));
}

static inline __attribute__((always_inline)) void bf16_tile(const gemm_tile *t, const int mr) {
    const int n = t->n, full = n >= 16;
    float32x4_t acc[BF16_MR][4];
    float bias_buf[16] = {0};
    if (t->bias) memcpy(bias_buf, t->bias, sizeof(float) * (full ? 16 : (size_t)n));
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        float row[16] = {0};
        if (t->load_y) memcpy(row, t->y + i * t->ldy, sizeof(float) * (full ? 16 : (size_t)n));
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            float32x4_t a = vld1q_f32(row + 4 * c);
            if (t->bias) a = t->load_y ? vaddq_f32(a, vld1q_f32(bias_buf + 4 * c)) : vld1q_f32(bias_buf + 4 * c);
            acc[i][c] = flush(a);                     /* a subnormal start is read as zero */
        }
    }
    const uint32x4_t top = vdupq_n_u32(0xffff0000u);
    const uint32_t *w = t->w;
    const uint16_t *xb = t->xb;
    for (int q = 0; q < t->k / 2; q++) {
        float32x4_t odd[4], even[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const uint32x4_t line = vld1q_u32(w + (size_t)q * 16 + 4 * c);
            odd[c] = flush(vreinterpretq_f32_u32(vandq_u32(line, top)));
            even[c] = flush(vreinterpretq_f32_u32(vshlq_n_u32(line, 16)));
        }
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            uint32_t pair;
            memcpy(&pair, xb + i * t->ldxb + 2 * (size_t)q, 4);
            const float32x4_t x_odd = vreinterpretq_f32_u32(vdupq_n_u32(pair & 0xffff0000u));
            const float32x4_t x_even = vreinterpretq_f32_u32(vdupq_n_u32(pair << 16));
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                acc[i][c] = flush(vfmaq_f32(acc[i][c], x_odd, odd[c]));
                acc[i][c] = flush(vfmaq_f32(acc[i][c], x_even, even[c]));
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        float row[16];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) vst1q_f32(row + 4 * c, acc[i][c]);
        memcpy(t->y + i * t->ldy, row, sizeof(float) * (full ? 16 : (size_t)n));
    }
}

void gemm_bf16_neon_4x16(const gemm_tile *t) {
    switch (t->m) {
    case 1: bf16_tile(t, 1); break;
    case 2: bf16_tile(t, 2); break;
    case 3: bf16_tile(t, 3); break;
    case 4: bf16_tile(t, 4); break;
    default: break;
    }
}

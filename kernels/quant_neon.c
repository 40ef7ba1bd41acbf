/* quant_neon.c - NEON micro-kernels of the weight types beyond f32 (kernels/quant.h) and
 * the NEON activation quantizer, for aarch64. Each reproduces its scalar reference in
 * quant.c bit for bit: the same float operations per output in the same order.
 *
 *   f16 (5 x 16): the f32 kernel of gemm_neon.c with a conversion in front: per k step the
 *     panel's 16 halves become 4 float vectors (fcvtl / fcvtl2, exact: every binary16 is a
 *     float32), then 20 "fmla by element" against the 5 rows' x values. The arithmetic is
 *     f32 (an f16 fmla would round each product to half precision: not the reference).
 *   q8_0 / q4_0: per block of 32 k steps, exact int32 dot products of the block's int8
 *     weights and quantized activations, then per output one
 *         acc = fma((float)isum, dx * dw, acc)
 *     (quant.h). The block layout [8 groups][16 features][4 k] makes one 64-byte line the
 *     4-k-step group of all 16 features: four q registers of 4 features x 4 k each.
 *     Three versions of the integer part, chosen at run time from the hwcaps:
 *       sdot  (dotprod, 3 x 16): "sdot vAcc.4s, vW.16b, vX.4b[lane]" sums 4
 *             products per feature into an int32 lane; the lane picks the group's 4
 *             activation bytes out of a register holding 4 groups. 4 per group and row.
 *       smmla (i8mm, 4 x 16): "smmla vAcc.4s, vA.16b, vB.16b" multiplies a 2 x 8
 *             int8 matrix by an 8 x 2 one (2 rows x 2 features x 8 k, 32 products).
 *             Its operands need 8 consecutive k of ONE feature per 8 bytes, where a line
 *             of the file has 4 k of one feature per 4 bytes: zip1 / zip2 of the 32-bit
 *             lanes of two groups' registers (groups g and g + 1) give [f k0-7, f+1 k0-7]
 *             pairs; the integer sum of a block does not depend on which k are paired.
 *             The activations of two rows are interleaved likewise (8 bytes each). The
 *             file layout stays as it is: one zip per 16 weight bytes, shared by all rows.
 *             The 2 x 2 results [r f, r f+1, r+1 f, r+1 f+1] keep that order in the float
 *             accumulators too (the scales are arranged to match, dx * dw per lane is the
 *             same product), and are put back into rows only when stored.
 *       plain (any ARMv8.0 core, Cortex-A53/A72: 3 x 16): smull / smull2 (int8 x int8 ->
 *             int16, 8 lanes), addp of adjacent int16 pairs (2 products each: at most
 *             2 x 128 x 127 = 32512, no overflow), sadalp into the int32 lanes.
 *     q4_0 unpacks a byte register into the int8 operands of two groups (AND / shift,
 *     minus 8) and goes the same way.
 *   activations: q8_act_quantize_neon stores the scalar q8_act_quantize's bytes (fmaxnm
 *     skips a NaN as fmaxf does; fcvtns rounds to nearest even as nearbyintf; a NaN gives
 *     0 in both).
 *
 * Why these tiles: 32 vector registers. sdot / plain: 3 rows x 4 float accumulators
 * + 3 x 4 int32 block sums + 4 weight registers + 3 activation registers = 31; the
 * compiled block loops keep everything in registers (gcc 12 -O2: no stack access). smmla:
 * 2 row pairs x 8 feature pairs of int32 sums (16) + 16 float accumulators would be 32
 * before any operand, so part of the float accumulators goes to the stack and comes back
 * once per block (gcc 12: 18 stack accesses per 64 smmla), not per instruction.
 *
 * The dotprod and i8mm functions carry target attributes (the rest of the binary stays
 * ARMv8.0: it runs on any aarch64 core); kernels/gemm.c lists them with GEMM_NEEDS_DOTPROD
 * / GEMM_NEEDS_I8MM and calls them only where cpu_features() found the extension.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")   /* as gemm_neon.c: keeps the tiles in registers */
#endif
#include <arm_neon.h>
#include <string.h>

#include "quant.h"

/* arm_neon.h defines these intrinsics for armv8.2-a + the extension; both extensions are
 * optional from ARMv8.2 on (dotprod mandatory in 8.4, i8mm in 8.6), so a core that has
 * one implements ARMv8.2 and the functions may assume it too. */
#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define I8MM __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#define INLINE static inline __attribute__((always_inline))

/* ---- Start values and stores (row layout, 16 columns, n valid) ----------------------------- */
/* Row i's 4 accumulators at the start: y (load_y), plus the bias, or the bias, or 0; only
 * the n valid columns of y and bias are read. */
INLINE void start_row(const gemm_tile *t, int i, float32x4_t a[4]) {
    float bias[16] = {0}, y[16] = {0};
    const size_t cols = t->n < 16 ? (size_t)t->n : 16;
    if (t->bias) memcpy(bias, t->bias, sizeof(float) * cols);
    if (t->load_y) memcpy(y, t->y + (size_t)i * t->ldy, sizeof(float) * cols);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const float32x4_t b = vld1q_f32(bias + 4 * c), v = vld1q_f32(y + 4 * c);
        a[c] = !t->load_y ? b : t->bias ? vaddq_f32(v, b) : v;
    }
}

INLINE void store_row(const gemm_tile *t, int i, const float32x4_t a[4]) {
    float *y = t->y + (size_t)i * t->ldy;
    if (t->n >= 16) {
_Pragma("GCC unroll 4")
        for (int c = 0; c < 4; c++) vst1q_f32(y + 4 * c, a[c]);
        return;
    }
    float row[16];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) vst1q_f32(row + 4 * c, a[c]);
    memcpy(y, row, sizeof(float) * (size_t)t->n);
}

/* ---- f16: [k][16] halves -------------------------------------------------------------------- */
#define HALF_MR 5

/* The 16 halves of one k step as 4 float vectors (exact conversion). */
INLINE void half_line(const uint16_t *p, float32x4_t w[4]) {
    const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(p)), h1 = vreinterpretq_f16_u16(vld1q_u16(p + 8));
    w[0] = vcvt_f32_f16(vget_low_f16(h0));
    w[1] = vcvt_high_f32_f16(h0);
    w[2] = vcvt_f32_f16(vget_low_f16(h1));
    w[3] = vcvt_high_f32_f16(h1);
}

INLINE void half_tile(const gemm_tile *t, const int mr) {
    float32x4_t acc[HALF_MR][4];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) start_row(t, i, acc[i]);
    const uint16_t *w = t->w;
    const float *x = t->x;
    const size_t ldx = t->ldx;
    const char *next = t->next_w;     /* the next tile's panel: 32 bytes a k step */
    const int k = t->k;
    int p = 0;
    for (; p + 4 <= k; p += 4) {
        if (next) __builtin_prefetch(next + (size_t)p * 32, 0, 2);
        float32x4_t xv[HALF_MR];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) xv[i] = vld1q_f32(x + i * ldx + p);
        /* one k step per lane of the x vectors, in ascending k (the lane is a constant) */
#define HALF_STEP(lane)                                                           \
        do {                                                                      \
            float32x4_t wv[4];                                                    \
            half_line(w + (size_t)(p + lane) * GEMM_PANEL, wv);                   \
            _Pragma("GCC unroll 8")                                               \
            for (int i = 0; i < mr; i++)                                          \
                _Pragma("GCC unroll 4")                                           \
                for (int c = 0; c < 4; c++) acc[i][c] = vfmaq_laneq_f32(acc[i][c], wv[c], xv[i], lane); \
        } while (0)
        HALF_STEP(0);
        HALF_STEP(1);
        HALF_STEP(2);
        HALF_STEP(3);
#undef HALF_STEP
    }
    for (; p < k; p++) {
        float32x4_t wv[4];
        half_line(w + (size_t)p * GEMM_PANEL, wv);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) acc[i][c] = vfmaq_n_f32(acc[i][c], wv[c], x[i * ldx + p]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) store_row(t, i, acc[i]);
}

void gemm_f16_neon_5x16(const gemm_tile *t) {
    switch (t->m) {
    case 1: half_tile(t, 1); break;
    case 2: half_tile(t, 2); break;
    case 3: half_tile(t, 3); break;
    case 4: half_tile(t, 4); break;
    case 5: half_tile(t, 5); break;
    default: break;
    }
}

/* ---- q8_0 / q4_0: shared pieces ---------------------------------------------------------------- */
#define INT_MR 3

/* The 16 weight scales of a block as 4 float vectors (d[16] starts the block). */
INLINE void block_scales(const void *blk, float32x4_t dw[4]) {
    half_line(blk, dw);
}

/* The block's float step for row i (row layout): acc += (float)isum * (dx * dw). */
INLINE void block_fma(float32x4_t acc[4], const int32x4_t isum[4], float dx, const float32x4_t dw[4]) {
    const float32x4_t dxv = vdupq_n_f32(dx);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(isum[c]), vmulq_f32(dxv, dw[c]));
}

/* q4_0: one register of nibble bytes (4 features x 4 k of groups 2h and 2h + 1) -> the
 * int8 operands of group 2h (low nibbles) and 2h + 1 (high), u - 8 each. */
INLINE int8x16_t q4_low(uint8x16_t bytes) {
    return vsubq_s8(vreinterpretq_s8_u8(vandq_u8(bytes, vdupq_n_u8(15))), vdupq_n_s8(8));
}
INLINE int8x16_t q4_high(uint8x16_t bytes) {
    return vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(bytes, 4)), vdupq_n_s8(8));
}

/* Weight register c (features 4c .. 4c + 3) of group g of a block, as int8. */
INLINE int8x16_t weights(const void *blk, int g, int c, const int is_q4) {
    if (!is_q4) return vld1q_s8(((const q8_0_block *)blk)->q[g][4 * c]);
    const uint8x16_t bytes = vld1q_u8(((const q4_0_block *)blk)->q[g / 2][4 * c]);
    return g % 2 ? q4_high(bytes) : q4_low(bytes);
}

INLINE size_t block_bytes(const int is_q4) { return is_q4 ? sizeof(q4_0_block) : sizeof(q8_0_block); }

/* ---- sdot (dotprod) ---------------------------------------------------------------------------- */
INLINE DOTPROD void sdot_tile(const gemm_tile *t, const int mr, const int is_q4) {
    float32x4_t acc[INT_MR][4];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) start_row(t, i, acc[i]);
    const int n_blocks = t->k / QK;
    const char *next = t->next_w;
    for (int b = 0; b < n_blocks; b++) {
        const char *blk = (const char *)t->w + (size_t)b * block_bytes(is_q4);
        if (next)
            for (size_t o = 0; o < block_bytes(is_q4); o += 64) __builtin_prefetch(next + (size_t)b * block_bytes(is_q4) + o, 0, 2);
        int32x4_t isum[INT_MR][4];
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) isum[i][c] = vdupq_n_s32(0);
        /* two halves of 16 k: one activation register per row holds 4 groups' bytes */
#pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
            int8x16_t xv[INT_MR];
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++) xv[i] = vld1q_s8(t->xq + (size_t)i * t->ldxq + (size_t)b * QK + 16 * half);
#define SDOT_GROUP(lane)                                                                      \
            do {                                                                              \
                _Pragma("GCC unroll 4")                                                       \
                for (int c = 0; c < 4; c++) {                                                 \
                    const int8x16_t wv = weights(blk, 4 * half + lane, c, is_q4);             \
                    _Pragma("GCC unroll 4")                                                   \
                    for (int i = 0; i < mr; i++) isum[i][c] = vdotq_laneq_s32(isum[i][c], wv, xv[i], lane); \
                }                                                                             \
            } while (0)
            SDOT_GROUP(0);
            SDOT_GROUP(1);
            SDOT_GROUP(2);
            SDOT_GROUP(3);
#undef SDOT_GROUP
        }
        float32x4_t dw[4];
        block_scales(blk, dw);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) block_fma(acc[i], isum[i], t->xd[(size_t)i * t->ldxd + b], dw);
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) store_row(t, i, acc[i]);
}

INLINE DOTPROD void sdot_dispatch(const gemm_tile *t, const int is_q4) {
    switch (t->m) {
    case 1: sdot_tile(t, 1, is_q4); break;
    case 2: sdot_tile(t, 2, is_q4); break;
    case 3: sdot_tile(t, 3, is_q4); break;
    default: break;
    }
}
DOTPROD void gemm_q8_0_neon_sdot_3x16(const gemm_tile *t) { sdot_dispatch(t, 0); }
DOTPROD void gemm_q4_0_neon_sdot_3x16(const gemm_tile *t) { sdot_dispatch(t, 1); }

/* ---- smmla (i8mm) ------------------------------------------------------------------------------ */
#define MMLA_MR 4
#define MMLA_PAIRS (MMLA_MR / 2)

/* [a.d0, b.d0] and [a.d1, b.d1]: two rows' 2-float halves, or a row pair back into rows. */
INLINE float32x4_t zip_lo(float32x4_t a, float32x4_t b) {
    return vreinterpretq_f32_f64(vzip1q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b)));
}
INLINE float32x4_t zip_hi(float32x4_t a, float32x4_t b) {
    return vreinterpretq_f32_f64(vzip2q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b)));
}

INLINE I8MM void mmla_tile(const gemm_tile *t, const int mr, const int is_q4) {
    const int n_pairs = (mr + 1) / 2;
    /* float accumulators in the smmla layout: acc[p][2c + h] = [r f, r f+1, r+1 f, r+1 f+1]
     * for rows r = 2p, r + 1 and features f = 4c + 2h, f + 1 */
    float32x4_t acc[MMLA_PAIRS][8];
#pragma GCC unroll 2
    for (int p = 0; p < n_pairs; p++) {
        float32x4_t r0[4], r1[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
        start_row(t, 2 * p, r0);
        if (2 * p + 1 < mr) start_row(t, 2 * p + 1, r1);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            acc[p][2 * c] = zip_lo(r0[c], r1[c]);
            acc[p][2 * c + 1] = zip_hi(r0[c], r1[c]);
        }
    }
    /* a missing second row of the last pair multiplies row 2p's values again (not stored) */
    const int8_t *xrow[MMLA_MR];
    const float *drow[MMLA_MR];
#pragma GCC unroll 4
    for (int i = 0; i < 2 * n_pairs; i++) {
        const int r = i < mr ? i : i - 1;
        xrow[i] = t->xq + (size_t)r * t->ldxq;
        drow[i] = t->xd + (size_t)r * t->ldxd;
    }
    const int n_blocks = t->k / QK;
    const char *next = t->next_w;
    for (int b = 0; b < n_blocks; b++) {
        const char *blk = (const char *)t->w + (size_t)b * block_bytes(is_q4);
        if (next)
            for (size_t o = 0; o < block_bytes(is_q4); o += 64) __builtin_prefetch(next + (size_t)b * block_bytes(is_q4) + o, 0, 2);
        int32x4_t isum[MMLA_PAIRS][8];
#pragma GCC unroll 2
        for (int p = 0; p < n_pairs; p++)
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) isum[p][j] = vdupq_n_s32(0);
        /* groups g, g + 1 = k steps 8 gp .. 8 gp + 7 of the block */
#pragma GCC unroll 4
        for (int gp = 0; gp < QK / 8; gp++) {
            int8x16_t xa[MMLA_PAIRS];     /* 2 x 8: row 2p's 8 activations, then row 2p + 1's */
#pragma GCC unroll 2
            for (int p = 0; p < n_pairs; p++)
                xa[p] = vcombine_s8(vld1_s8(xrow[2 * p] + (size_t)b * QK + 8 * gp),
                                    vld1_s8(xrow[2 * p + 1] + (size_t)b * QK + 8 * gp));
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const int32x4_t wa = vreinterpretq_s32_s8(weights(blk, 2 * gp, c, is_q4));
                const int32x4_t wb = vreinterpretq_s32_s8(weights(blk, 2 * gp + 1, c, is_q4));
                /* 8 x 2: features 4c, 4c + 1 (8 k each), then 4c + 2, 4c + 3 */
                const int8x16_t w01 = vreinterpretq_s8_s32(vzip1q_s32(wa, wb));
                const int8x16_t w23 = vreinterpretq_s8_s32(vzip2q_s32(wa, wb));
#pragma GCC unroll 2
                for (int p = 0; p < n_pairs; p++) {
                    isum[p][2 * c] = vmmlaq_s32(isum[p][2 * c], xa[p], w01);
                    isum[p][2 * c + 1] = vmmlaq_s32(isum[p][2 * c + 1], xa[p], w23);
                }
            }
        }
        float32x4_t dw[4];
        block_scales(blk, dw);
#pragma GCC unroll 2
        for (int p = 0; p < n_pairs; p++) {
            const float32x4_t dx = vcombine_f32(vdup_n_f32(drow[2 * p][b]), vdup_n_f32(drow[2 * p + 1][b]));
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                /* lane by lane the scalar reference's dx[row] * dw[feature] */
                const float32x4_t s01 = vmulq_f32(dx, zip_lo(dw[c], dw[c])), s23 = vmulq_f32(dx, zip_hi(dw[c], dw[c]));
                acc[p][2 * c] = vfmaq_f32(acc[p][2 * c], vcvtq_f32_s32(isum[p][2 * c]), s01);
                acc[p][2 * c + 1] = vfmaq_f32(acc[p][2 * c + 1], vcvtq_f32_s32(isum[p][2 * c + 1]), s23);
            }
        }
    }
#pragma GCC unroll 2
    for (int p = 0; p < n_pairs; p++) {
        float32x4_t r0[4], r1[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            r0[c] = zip_lo(acc[p][2 * c], acc[p][2 * c + 1]);
            r1[c] = zip_hi(acc[p][2 * c], acc[p][2 * c + 1]);
        }
        store_row(t, 2 * p, r0);
        if (2 * p + 1 < mr) store_row(t, 2 * p + 1, r1);
    }
}

INLINE I8MM void mmla_dispatch(const gemm_tile *t, const int is_q4) {
    switch (t->m) {
    case 1: mmla_tile(t, 1, is_q4); break;
    case 2: mmla_tile(t, 2, is_q4); break;
    case 3: mmla_tile(t, 3, is_q4); break;
    case 4: mmla_tile(t, 4, is_q4); break;
    default: break;
    }
}
I8MM void gemm_q8_0_neon_smmla_4x16(const gemm_tile *t) { mmla_dispatch(t, 0); }
I8MM void gemm_q4_0_neon_smmla_4x16(const gemm_tile *t) { mmla_dispatch(t, 1); }

/* ---- plain NEON (ARMv8.0): smull + addp + sadalp ----------------------------------------------- */
/* isum += the 4-product sums per feature of a weight register (4 features x 4 k) and the
 * group's 4 activation bytes (x4: repeated in each 32-bit lane). */
INLINE int32x4_t dot4_plain(int32x4_t isum, int8x16_t w, int8x16_t x4) {
    const int16x8_t p01 = vmull_s8(vget_low_s8(w), vget_low_s8(x4));   /* features 0, 1: 4 products each */
    const int16x8_t p23 = vmull_high_s8(w, x4);                         /* features 2, 3 */
    return vpadalq_s16(isum, vpaddq_s16(p01, p23));                     /* pairs, then pairs of pairs */
}

INLINE void plain_tile(const gemm_tile *t, const int mr, const int is_q4) {
    float32x4_t acc[INT_MR][4];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) start_row(t, i, acc[i]);
    const int n_blocks = t->k / QK;
    const char *next = t->next_w;
    for (int b = 0; b < n_blocks; b++) {
        const char *blk = (const char *)t->w + (size_t)b * block_bytes(is_q4);
        if (next)
            for (size_t o = 0; o < block_bytes(is_q4); o += 64) __builtin_prefetch(next + (size_t)b * block_bytes(is_q4) + o, 0, 2);
        int32x4_t isum[INT_MR][4];
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) isum[i][c] = vdupq_n_s32(0);
#pragma GCC unroll 8
        for (int g = 0; g < QK / 4; g++) {
            int8x16_t x4[INT_MR];         /* the group's 4 bytes in every 32-bit lane (ld1r) */
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++) {
                int32_t four;
                memcpy(&four, t->xq + (size_t)i * t->ldxq + (size_t)b * QK + 4 * g, 4);
                x4[i] = vreinterpretq_s8_s32(vdupq_n_s32(four));
            }
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const int8x16_t wv = weights(blk, g, c, is_q4);
#pragma GCC unroll 4
                for (int i = 0; i < mr; i++) isum[i][c] = dot4_plain(isum[i][c], wv, x4[i]);
            }
        }
        float32x4_t dw[4];
        block_scales(blk, dw);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) block_fma(acc[i], isum[i], t->xd[(size_t)i * t->ldxd + b], dw);
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) store_row(t, i, acc[i]);
}

INLINE void plain_dispatch(const gemm_tile *t, const int is_q4) {
    switch (t->m) {
    case 1: plain_tile(t, 1, is_q4); break;
    case 2: plain_tile(t, 2, is_q4); break;
    case 3: plain_tile(t, 3, is_q4); break;
    default: break;
    }
}
void gemm_q8_0_neon_3x16(const gemm_tile *t) { plain_dispatch(t, 0); }
void gemm_q4_0_neon_3x16(const gemm_tile *t) { plain_dispatch(t, 1); }

/* ---- Activation rows quantized per block of 32 (quant.h, q8_act_quantize) --------------------- */
void q8_act_quantize_neon(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k) {
    for (int r = row0; r < row0 + n_rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        for (int b = 0; b < a->n_blocks; b++) {
            const int p0 = b * QK, left = k - p0;
            float pad[QK] = {0};               /* a last partial block, zero padded past k */
            const float *v = xr + p0;
            if (left < QK) v = memcpy(pad, v, sizeof(float) * (size_t)left);
            float32x4_t vv[8], mx = vdupq_n_f32(0.0f);
            for (int j = 0; j < 8; j++) {
                vv[j] = vld1q_f32(v + 4 * j);
                mx = vmaxnmq_f32(mx, vabsq_f32(vv[j]));   /* a NaN is skipped, as by fmaxf */
            }
            const float amax = vmaxnmvq_f32(mx);
            const float32x4_t inv = vdupq_n_f32(amax > 0 ? 127.0f / amax : 0.0f);
            int16x8_t h[4];
            for (int j = 0; j < 4; j++)
                h[j] = vcombine_s16(vmovn_s32(vcvtnq_s32_f32(vmulq_f32(vv[2 * j], inv))),
                                    vmovn_s32(vcvtnq_s32_f32(vmulq_f32(vv[2 * j + 1], inv))));
            int8_t *q = a->q + ((size_t)r * a->n_blocks + b) * QK;
            vst1q_s8(q, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
            vst1q_s8(q + 16, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
            a->d[(size_t)r * a->n_blocks + b] = amax / 127.0f;
            /* the block's sum of q (kernels that add a constant to q subtract it back) */
            a->s[(size_t)r * a->n_blocks + b] = vaddlvq_s16(h[0]) + vaddlvq_s16(h[1]) + vaddlvq_s16(h[2]) +
                                                 vaddlvq_s16(h[3]);
        }
    }
}

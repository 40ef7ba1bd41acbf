/* quant.h - the weight types beyond f32, in the panel layout of gemm.h.
 *
 * A linear weight W [n, k] is stored in panels of 16 output features (gemm.h). Per type:
 *
 *   f16   panel = [k][16] IEEE binary16            w = half_to_float(h)
 *   bf16  panel = [ceil(k / 2)][16][2] bfloat16 (top 16 bits of an f32), k padded with a
 *         zero to even: w[f][2 q + e] = bf2f(v[q][f][e]); one 64-byte line per pair of k
 *         steps, each feature's pair in one 32-bit lane (file layout code 2, FORMAT.md)
 *   q8_0  panel = ceil(k / 32) blocks of q8_0_block (544 bytes, 8.5 bits per weight):
 *           d[16]           one f16 scale per feature for these 32 k steps
 *           q[8][16][4]     int8: [group of 4 k steps][feature][k step in the group]
 *         w[f][32 b + 4 g + c] = d[f] * q[g][f][c]
 *   q4_0  panel = ceil(k / 32) blocks of q4_0_block (288 bytes, 4.5 bits per weight):
 *           d[16]           one f16 scale per feature
 *           q[4][16][4]     bytes; byte [h][f][c] holds two 4-bit values u in 0..15:
 *                           low nibble  = k step 8 h + c      (group 2 h)
 *                           high nibble = k step 8 h + 4 + c  (group 2 h + 1)
 *         w[f][32 b + 4 g + c] = d[f] * (u - 8)
 *   k is padded with zeros to a multiple of 32 in the quantized types.
 *
 * Why this layout: one 64-byte line of a q8_0 block is a 4-k-step group of all 16
 * features, the operand of one AVX-512 VNNI vpdpbusd against 4 broadcast activation bytes
 * (two AVX2 maddubs, four NEON sdot); a q4_0 line unpacks into two such lines with one
 * AND and one shift.
 *
 * The quantized kernels multiply int8 by int8: each activation row is quantized per
 * block of 32 (q8_act, below) and every output is
 *     acc = (load_y ? y : 0) [+ bias]
 *     for each block b, ascending:  acc = fmaf((float)isum_b, dx[b] * dw[f][b], acc)
 * where isum_b is the exact int32 dot product of the block's 32 int8 pairs. Integer sums
 * are exact and the float steps are fixed, so every ISA reproduces the scalar reference
 * bit for bit, for any batch or thread count.
 *
 * ---- bf16: the exact order of AVX-512 BF16 vdpbf16ps -----------------------------------
 * The bf16 product rounds the activations to bf16 too (bf16_round_rows: f32 subnormals to
 * signed zero, then round to nearest even, NaN stays NaN: what vcvtne2ps2bf16 does) and
 * multiplies k in pairs, as vdpbf16ps does per 32-bit lane (Intel SDM pseudo-code; AMD
 * Zen 4 measured identical on 32 million random and edge lanes, bench/README.md):
 *     acc = daz((load_y ? y : 0) [+ bias])
 *     for each pair q = 0, 1, ... ceil(k / 2) - 1 (x and w zero past k):
 *         acc = ftz(fmaf(xb[2q + 1], wb[2q + 1], acc))      the odd element first,
 *         acc = ftz(fmaf(xb[2q],     wb[2q],     acc))      then the even one
 * where xb, wb are the bf16 values as floats with subnormals read as zero (daz) and
 * ftz(r) replaces a result whose exponent field is 0 after rounding (|r| < 2^-126) by zero
 * of r's sign (x86 flush-to-zero: tininess after rounding; FLT_MIN - 2^-160 stays FLT_MIN).
 * Each step is one f32 fused multiply-add rounded to nearest even, so the scalar reference
 * (fmaf) and the AVX2 and NEON kernels (FMA + an explicit flush) give the same bits as the
 * instruction. A NaN input gives a NaN output; which NaN (its payload) is not specified.
 */
#ifndef CLIP_QUANT_H
#define CLIP_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

#define QK 32                  /* k steps per quantization block */

typedef struct {
    uint16_t d[GEMM_PANEL];            /* f16 scale per feature */
    int8_t q[QK / 4][GEMM_PANEL][4];   /* [k group][feature][k in group] */
} q8_0_block;
_Static_assert(sizeof(q8_0_block) == 544, "q8_0 block: 16 f16 scales + 512 int8");

typedef struct {
    uint16_t d[GEMM_PANEL];            /* f16 scale per feature */
    uint8_t q[QK / 8][GEMM_PANEL][4];  /* nibble pairs, see above */
} q4_0_block;
_Static_assert(sizeof(q4_0_block) == 288, "q4_0 block: 16 f16 scales + 256 bytes of nibbles");

/* ---- Half precision ------------------------------------------------------------------- */
uint16_t f32_to_f16(float f);          /* round to nearest even; overflow -> inf */
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);         /* round to nearest even; NaN stays NaN */
uint16_t f32_to_bf16_daz(float f);     /* the same after an f32 subnormal becomes signed zero
                                          (vcvtneps2bf16): bf16 weights and activations */
float bf16_to_f32(uint16_t h);

/* ---- Packing (gemm_pack dispatches here for the types beyond f32) ----------------------- */
/* Bytes of one panel of `type` for k steps (0 for an unknown type). */
size_t quant_panel_bytes(gemm_type type, int k);
/* W [n, k] row-major f32 -> panels of `type` in dst (quant_panel_bytes x panels). */
void quant_pack(void *dst, gemm_type type, const float *w, int n, int k);
/* The same with q8_0 / q4_0 block scales chosen by the caller: scales [n][ceil(k / 32)]
 * (f16 bits; NULL: quant_block_scale's). Each value is stored as quant_level(v, scale). */
void quant_pack_scaled(void *dst, gemm_type type, const float *w, const uint16_t *scales, int n, int k);
/* The scale (f16 bits) quant_pack gives a block of 32 weights of q8_0 or q4_0: q8_0
 * max|v| / 127; q4_0 the best of a few candidates by squared error, refined by least squares. */
uint16_t quant_block_scale(gemm_type type, const float v[QK]);
/* The integer level of v against scale d: round half to even of v / d, clamped to
 * -127..127 (q8_0) or -8..7 (q4_0); 0 for d = 0. Dequantized: level x d. */
int quant_level(gemm_type type, float v, float d);
/* Row j of a packed weight of any type, dequantized into out [k]. */
void quant_row(const gemm_weight *w, int j, float *out);

/* ---- Activations, quantized per row and block of 32 (q8_0 and q4_0 products) ----------
 * One row of x [k] becomes ceil(k / 32) blocks: scale dx[b] = max|x| / 127 (f32) and 32
 * int8 values q = round_half_even(x * (127 / max|x|)), zero padded, and their sum s[b]
 * (what the AVX-512 VNNI kernels subtract after multiplying the weights as unsigned bytes:
 * sum((w + 128) q) - 128 s = sum(w q), exactly). */
typedef struct {
    float *d;                  /* [m][n_blocks] */
    int32_t *s;                /* [m][n_blocks] sum of the block's 32 values q */
    int8_t *q;                 /* [m][n_blocks * 32] */
    int n_blocks;
} q8_act;
size_t q8_act_bytes(int m, int k);     /* scratch for q8_act_init */
void q8_act_init(q8_act *a, void *scratch, int m, int k);
void q8_act_quantize(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k);
/* The same bytes with AVX2 / AVX-512 (quant_avx2.c, quant_avx512.c); the driver picks by level. */
void q8_act_quantize_avx2(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k);
void q8_act_quantize_avx512(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k);
void q8_act_quantize_neon(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k);   /* quant_neon.c */

/* ---- Activations rounded to bf16 (the bf16 products) -----------------------------------
 * Rows [row0, row0 + n_rows) of x [., k] (stride ldx) -> xb with row stride ldxb =
 * bf16_act_stride(k) (k rounded up to even; the pad is a zero), each value f32_to_bf16_daz. */
static inline size_t bf16_act_stride(int k) { return (size_t)(k + 1) / 2 * 2; }
size_t bf16_act_bytes(int m, int k);   /* scratch for m rows */
void bf16_round_rows(uint16_t *xb, const float *x, size_t ldx, int row0, int n_rows, int k);
void bf16_round_rows_avx512(uint16_t *xb, const float *x, size_t ldx, int row0, int n_rows, int k);

/* ---- Scalar reference micro-kernels (any m, n; the order of the comment above) -------- */
gemm_ukernel_fn gemm_f16_scalar_4x16, gemm_bf16_scalar_4x16, gemm_q8_0_scalar_4x16, gemm_q4_0_scalar_4x16;
/* AVX2 + FMA + F16C (kernels/quant_avx2.c); the int8 ones with vpmaddubsw, no VNNI. */
gemm_ukernel_fn gemm_f16_avx2_6x16, gemm_q8_0_avx2_4x16, gemm_q4_0_avx2_4x16;
/* AVX-512 (kernels/quant_avx512.c); the int8 ones need AVX-512 VNNI (GEMM_NEEDS_VNNI). */
gemm_ukernel_fn gemm_f16_avx512_8x32, gemm_q8_0_avx512vnni_8x32, gemm_q4_0_avx512vnni_8x32;
/* NEON (kernels/quant_neon.c): f16 with fcvtl + fmla; the int8 ones with smmla (i8mm,
 * GEMM_NEEDS_I8MM), sdot (dotprod, GEMM_NEEDS_DOTPROD) or smull/sadalp (ARMv8.0). */
gemm_ukernel_fn gemm_f16_neon_5x16;
gemm_ukernel_fn gemm_q8_0_neon_smmla_4x16, gemm_q4_0_neon_smmla_4x16;
gemm_ukernel_fn gemm_q8_0_neon_sdot_3x16, gemm_q4_0_neon_sdot_3x16;
gemm_ukernel_fn gemm_q8_0_neon_3x16, gemm_q4_0_neon_3x16;
/* bf16 in the order of vdpbf16ps: AVX-512 BF16 itself (GEMM_NEEDS_BF16), and FMA with an
 * explicit flush on AVX2 and NEON (kernels/bf16_avx512.c, bf16_avx2.c, bf16_neon.c). */
gemm_ukernel_fn gemm_bf16_avx512bf16_10x32, gemm_bf16_avx2_4x16, gemm_bf16_neon_4x16;

#endif

/* quant.h - the weight types beyond f32, in the panel layout of gemm.h.
 *
 * A linear weight W [n, k] is stored in panels of 16 output features (gemm.h). Per type:
 *
 *   f16   panel = [k][16] IEEE binary16            w = half_to_float(h)
 *   bf16  panel = [k][16] bfloat16 (top 16 bits of an f32)
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
float bf16_to_f32(uint16_t h);

/* ---- Packing (gemm_pack dispatches here for the types beyond f32) ----------------------- */
/* Bytes of one panel of `type` for k steps (0 for an unknown type). */
size_t quant_panel_bytes(gemm_type type, int k);
/* W [n, k] row-major f32 -> panels of `type` in dst (quant_panel_bytes x panels). */
void quant_pack(void *dst, gemm_type type, const float *w, int n, int k);
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

/* ---- Scalar reference micro-kernels (any m, n; the order of the comment above) -------- */
gemm_ukernel_fn gemm_f16_scalar_4x16, gemm_bf16_scalar_4x16, gemm_q8_0_scalar_4x16, gemm_q4_0_scalar_4x16;
/* AVX2 + FMA + F16C (kernels/quant_avx2.c); the int8 ones with vpmaddubsw, no VNNI. */
gemm_ukernel_fn gemm_f16_avx2_6x16, gemm_bf16_avx2_6x16, gemm_q8_0_avx2_4x16, gemm_q4_0_avx2_4x16;
/* AVX-512 (kernels/quant_avx512.c); the int8 ones need AVX-512 VNNI (GEMM_NEEDS_VNNI). */
gemm_ukernel_fn gemm_f16_avx512_8x32, gemm_bf16_avx512_8x32, gemm_q8_0_avx512vnni_8x32, gemm_q4_0_avx512vnni_8x32;

#endif

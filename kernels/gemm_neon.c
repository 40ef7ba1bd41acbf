/* gemm_neon.c - the f32 micro-kernel of gemm.h with NEON (aarch64 Advanced SIMD, 4 floats
 * a vector).
 *
 * Tile: 5 rows of x by one panel (16 columns = 4 q registers). Registers (32 q in all):
 *   20 accumulators  acc[i][c], row i < 5, column quarter c < 4
 *    4 panel vectors  the 16 weights of one k step (one 64-byte line)
 *    5 x vectors      x[i][p .. p+3] of each row: 4 k steps' multipliers
 * The main loop takes 4 k steps at a time: it loads each row's 4 x values once, and each
 * k step loads its panel line and issues 20 "fmla vAcc.4s, vW.4s, vX.s[lane]" (FMA by
 * element, the lane picking the step's x value: no broadcast instruction). Per 4 k steps:
 * 16 panel loads + 5 x loads for 80 FMAs (3.8 FMAs per load), no horizontal reduction:
 * each accumulator lane is one output. Each output is one fused multiply-add chain in k
 * order from its start value (y and/or bias), so the results are bit-identical to the
 * scalar reference (fmaf) and to every other ISA's micro-kernel (gemm.h, "Exact order").
 * Leftover k steps (k % 4) multiply by one x value at a time, the same FMA; fewer rows
 * run a constant-row copy; fewer than 16 columns go through a buffer for y and bias
 * (the zero-padded panel needs nothing).
 *
 * GCC's scheduling before register allocation interleaves the four k steps of the loop
 * and runs out of the 32 registers (gcc 12: 29 vector loads and a spill per 4 k steps
 * instead of 13 loads); without it every value stays in a register. bench/neon_listing.py
 * shows the loop as compiled.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif
#include <arm_neon.h>
#include <string.h>

#include "gemm.h"

#define MR 5

static inline __attribute__((always_inline)) void tile(const gemm_tile *t, const int mr) {
    const float *w = t->w, *x = t->x;
    float *y = t->y;
    const size_t ldx = t->ldx, ldy = t->ldy;
    const int n = t->n, full = n >= 16;
    float32x4_t acc[MR][4];

    /* start values: y (+ bias), or the bias, or 0; only the n valid columns are read */
    float bias_buf[16] = {0};
    if (t->bias) memcpy(bias_buf, t->bias, sizeof(float) * (full ? 16 : (size_t)n));
    const float32x4_t b0 = vld1q_f32(bias_buf), b1 = vld1q_f32(bias_buf + 4);
    const float32x4_t b2 = vld1q_f32(bias_buf + 8), b3 = vld1q_f32(bias_buf + 12);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        if (t->load_y) {
            float row[16];
            const float *yi = y + i * ldy;
            if (!full) {
                memcpy(row, yi, sizeof(float) * (size_t)n);
                yi = row;
            }
            acc[i][0] = vld1q_f32(yi);
            acc[i][1] = vld1q_f32(yi + 4);
            acc[i][2] = vld1q_f32(yi + 8);
            acc[i][3] = vld1q_f32(yi + 12);
            if (t->bias) {
                acc[i][0] = vaddq_f32(acc[i][0], b0);
                acc[i][1] = vaddq_f32(acc[i][1], b1);
                acc[i][2] = vaddq_f32(acc[i][2], b2);
                acc[i][3] = vaddq_f32(acc[i][3], b3);
            }
        } else {
            acc[i][0] = b0, acc[i][1] = b1, acc[i][2] = b2, acc[i][3] = b3;
        }
    }

    const int k = t->k;
    const char *next = t->next_w;     /* the next tile's panel, one line per k step */
    int p = 0;
    for (; p + 4 <= k; p += 4) {
        if (next) {                   /* the 4 lines of these 4 k steps */
            __builtin_prefetch(next + (size_t)p * 64, 0, 2);
            __builtin_prefetch(next + (size_t)p * 64 + 64, 0, 2);
            __builtin_prefetch(next + (size_t)p * 64 + 128, 0, 2);
            __builtin_prefetch(next + (size_t)p * 64 + 192, 0, 2);
        }
        float32x4_t xv[MR];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) xv[i] = vld1q_f32(x + i * ldx + p);
        /* one k step per lane of the x vectors (the lane is a constant after unrolling) */
#define K_STEP(lane)                                                                 \
        do {                                                                          \
            const float *line = w + (size_t)(p + lane) * 16;                          \
            const float32x4_t w0 = vld1q_f32(line), w1 = vld1q_f32(line + 4);         \
            const float32x4_t w2 = vld1q_f32(line + 8), w3 = vld1q_f32(line + 12);    \
            _Pragma("GCC unroll 8")                                                   \
            for (int i = 0; i < mr; i++) {                                            \
                acc[i][0] = vfmaq_laneq_f32(acc[i][0], w0, xv[i], lane);              \
                acc[i][1] = vfmaq_laneq_f32(acc[i][1], w1, xv[i], lane);              \
                acc[i][2] = vfmaq_laneq_f32(acc[i][2], w2, xv[i], lane);              \
                acc[i][3] = vfmaq_laneq_f32(acc[i][3], w3, xv[i], lane);              \
            }                                                                         \
        } while (0)
        K_STEP(0);
        K_STEP(1);
        K_STEP(2);
        K_STEP(3);
#undef K_STEP
    }
    for (; p < k; p++) {
        const float *line = w + (size_t)p * 16;
        const float32x4_t w0 = vld1q_f32(line), w1 = vld1q_f32(line + 4);
        const float32x4_t w2 = vld1q_f32(line + 8), w3 = vld1q_f32(line + 12);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const float xs = x[i * ldx + p];
            acc[i][0] = vfmaq_n_f32(acc[i][0], w0, xs);
            acc[i][1] = vfmaq_n_f32(acc[i][1], w1, xs);
            acc[i][2] = vfmaq_n_f32(acc[i][2], w2, xs);
            acc[i][3] = vfmaq_n_f32(acc[i][3], w3, xs);
        }
    }

#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float row[16];
        float *yi = full ? y + i * ldy : row;
        vst1q_f32(yi, acc[i][0]);
        vst1q_f32(yi + 4, acc[i][1]);
        vst1q_f32(yi + 8, acc[i][2]);
        vst1q_f32(yi + 12, acc[i][3]);
        if (!full) memcpy(y + i * ldy, row, sizeof(float) * (size_t)n);
    }
}

void gemm_f32_neon_5x16(const gemm_tile *t) {
    switch (t->m) {
    case 1: tile(t, 1); break;
    case 2: tile(t, 2); break;
    case 3: tile(t, 3); break;
    case 4: tile(t, 4); break;
    case 5: tile(t, 5); break;
    default: break;
    }
}

/* gemm.h - the linear layers' matrix product y = x W^T + b, with fused epilogues, over
 * weights packed in panels.
 *
 *   x: [m, k]  row-major float32     (activations: m = tokens, or tokens x batch)
 *   W: [n, k]  logically PyTorch's [out, in]; stored PACKED (below), in one of the
 *              weight types of gemm_type (f32, f16, bf16, q8_0, q4_0)
 *   y: [m, n]  row-major float32     y = act(x W^T + b)  or, accumulating,  y += x W^T + b
 *
 * ---- The packed layout ----------------------------------------------------------------
 * W is cut into panels of GEMM_PANEL = 16 consecutive output features (rows of W). Panel
 * j holds features 16 j .. 16 j + 15, interleaved along k: for f32 the panel is a [k][16]
 * array, so one k step of a panel is 16 contiguous floats = 64 bytes = one cache line,
 * one AVX-512 vector, two AVX2 vectors or four NEON vectors. The last panel is padded
 * with zero features. Panels follow each other, `panel_bytes` apart (a multiple of 64).
 * A micro-kernel therefore streams each panel front to back, and its inner loop is
 *     broadcast x[i][p]; load panel[p][0..15]; acc[i] += x[i][p] * panel[p]   (FMA)
 * with no horizontal reduction anywhere: each accumulator lane is one output.
 *
 * Other weight types keep the same panel idea with their own k step (gemm_type_info; quant.h):
 *   f16: [k][16] 2-byte values, converted to f32 before the FMA.
 *   bf16: [k / 2][16][2]: per PAIR of k steps one 64-byte line, each feature's two values
 *     side by side in a 32-bit lane: the operand of one AVX-512 BF16 vdpbf16ps against a
 *     broadcast pair of activations rounded to bf16 (its own exact order: quant.h).
 *   q8_0: k in blocks of 32; per block, 16 scales (f16, one per feature: 32
 *     bytes), then the block's 32 x 16 int8 values in groups of 4 k steps:
 *     [8 groups][16 features][4 int8] (512 bytes), so one 64-byte line is the 4-step
 *     group of all 16 features: the operand of one vpdpbusd (AVX-512 VNNI), two AVX2
 *     maddubs, or four NEON sdot. 544 bytes per block of 32 k (8.5 bits per weight).
 *   q4_0: the same with 4-bit values, two features' nibbles per byte.
 *
 * ---- Exact order -----------------------------------------------------------------------
 * Every output is ONE float accumulator updated in ascending k order:
 *     acc = (accumulate ? y : 0) [+ bias];  for p in 0..k-1: acc = fma(x[i][p], W[j][p], acc)
 *     y = act(acc)
 * The tile shape, the cache blocking, the split across threads and the number of rows
 * in the batch change none of these operations (a k chunk stores acc in y, the next one
 * loads it back), so results are bit-identical for any thread count and batch size, and
 * every micro-kernel matches the scalar reference (which uses fmaf) bit for bit. The
 * types beyond f32 define their own exact orders in quant.h (q8_0/q4_0 per block of 32;
 * bf16 per pair of k steps, as vdpbf16ps), with the same guarantee.
 *
 * ---- Micro-kernels and the driver --------------------------------------------------------
 * kernels/gemm.c holds the ONE driver (blocking over m, n, k; threads; epilogues; the
 * OpenBLAS backend) and the scalar reference micro-kernel. Each ISA file
 * (gemm_avx512.c, gemm_avx2.c, gemm_neon.c, ...) supplies only micro-kernels, listed in
 * the table of gemm.c as (ISA, weight type, tile) entries. A micro-kernel computes one
 * tile of at most MR rows by NR columns (NR a multiple of 16: NR / 16 panels):
 *
 *     void fn(const gemm_tile *t);
 *
 * with the fields of gemm_tile below; it must handle any m <= MR and n <= NR (the
 * driver hands it the edges), must read only the n valid columns of bias and y, and
 * must implement exactly the order above. A new ISA or weight type adds a function and
 * a table row; the driver is never copied.
 */
#ifndef CLIP_GEMM_H
#define CLIP_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "threadpool.h"

typedef enum { GEMM_NATIVE = 0, GEMM_OPENBLAS = 1 } gemm_backend;
typedef enum { GEMM_ACT_NONE = 0, GEMM_ACT_QUICK_GELU = 1, GEMM_ACT_GELU = 2 } gemm_activation;

/* Weight element types. The codes are the low byte of a tensor's dtype in the .clip file
 * (docs/FORMAT.md). Layouts and exact orders of the types beyond f32: kernels/quant.h. */
typedef enum {
    GEMM_F32 = 0,
    GEMM_F16 = 1,      /* IEEE half */
    GEMM_BF16 = 2,     /* bfloat16 */
    GEMM_Q8_0 = 8,     /* blocks of 32 int8 + one f16 scale per feature */
    GEMM_Q4_0 = 9,     /* blocks of 32 4-bit values + one f16 scale per feature */
} gemm_type;

#define GEMM_PANEL 16          /* output features per panel */
#define GEMM_MAX_MR 16         /* largest row count of any micro-kernel's tile */

/* What a weight type needs from the driver: its k granularity and panel size. */
typedef struct {
    gemm_type type;
    const char *name;          /* "f32" */
    int block_k;               /* k chunks (and a packed panel's k) are multiples of this */
    int has_kernels;           /* 0: reserved, not computable yet */
} gemm_type_info;
const gemm_type_info *gemm_type_get(gemm_type type);   /* NULL for unknown codes */

/* A packed weight: the panels of W [n, k]. */
typedef struct {
    gemm_type type;
    int n, k;
    const void *panels;        /* ceil(n / 16) panels, 64-byte aligned */
    size_t panel_bytes;        /* bytes from one panel to the next */
} gemm_weight;

/* Bytes of one panel and of the whole packed W, for a type and shape (0 if unknown). */
size_t gemm_panel_bytes(gemm_type type, int k);
size_t gemm_packed_bytes(gemm_type type, int n, int k);
/* Pack a row-major f32 W [n, k] into dst (gemm_packed_bytes, 64-byte aligned) as `type`
 * (any type of gemm_type; quant_pack for those beyond f32); fills *out to describe it.
 * 0, or -1 for an unsupported type. */
int gemm_pack(gemm_weight *out, void *dst, gemm_type type, const float *w, int n, int k);
/* Describe panels already packed (e.g. straight from the mapped .clip file). */
gemm_weight gemm_weight_packed(gemm_type type, const void *panels, int n, int k);
/* W[j][p] of a packed f32 weight (tests, slow paths). */
float gemm_weight_at(const gemm_weight *w, int j, int p);

typedef struct {
    float *y;                 /* [m, n] */
    const float *x;           /* [m, k] */
    const gemm_weight *w;     /* [n, k] packed; n and k come from here */
    const float *bias;        /* [n] or NULL */
    int m;
    int accumulate;           /* 1: y += x W^T + b (e.g. the residual stream); 0: y = ... */
    gemm_activation act;      /* applied to y after the sum (with accumulate 0 only) */
    void *work;               /* gemm_work_bytes(type, m, k) bytes of scratch (the q8/q4
                                 types quantize x into it); NULL when that is 0 */
} gemm_op;

/* Scratch a product needs beyond x, W and y: 0 for f32/f16, the quantized activation
 * rows for q8_0/q4_0, the activation rows rounded to bf16 for bf16 (kernels/quant.h).
 * Planned once per context, never in the hot loop. */
size_t gemm_work_bytes(gemm_type type, int m, int k);

/* Run op on the pool (NULL: the calling thread) with the given backend; the native
 * backend uses the micro-kernel chosen for `level` (clamped to what is compiled in). */
void gemm_run(threadpool *pool, const gemm_op *op, gemm_backend backend, cpu_level level);

const char *gemm_backend_name(gemm_backend backend);
/* "native" / "openblas" -> backend; -1 if the name is unknown. */
int gemm_backend_parse(const char *name);

/* ---- The micro-kernel interface ------------------------------------------------------ */
typedef struct {
    const float *x;            /* row 0 of the tile at its first k; row i at x + i * ldx */
    size_t ldx;
    const void *w;             /* the tile's first panel, already advanced to its first k */
    size_t panel_bytes;        /* panel j of the tile at (const char *)w + j * panel_bytes */
    float *y;                  /* the tile's first output; row i at y + i * ldy */
    size_t ldy;
    const float *bias;         /* NULL, or the tile's n bias values (added at the start) */
    int m, n, k;               /* rows <= MR, valid columns <= NR, k steps (a multiple of
                                  the type's block_k, except for f32) */
    int load_y;                /* 1: the accumulators start from y (accumulate, or a later
                                  k chunk); 0: from zero */
    const void *next_w;        /* a hint, may be ignored: the panels the driver's next tile
                                  will read (same layout as w), to prefetch while this one
                                  computes, one line per panel per k step; NULL: none */
    gemm_type type;            /* the weight type (one kernel may serve several) */
    const signed char *xq;     /* q8_0/q4_0: x quantized (quant.h), the tile's first block */
    const float *xd;           /*   and its per-block scales */
    size_t ldxq, ldxd;         /*   row strides in int8 values and in scales */
    const int *xs;             /*   and the sums of its blocks' int8 values (stride ldxd) */
    const uint16_t *xb;        /* bf16: x rounded to bf16 (quant.h), the tile's first k */
    size_t ldxb;               /*   row stride in bf16 values (k rounded up to even) */
} gemm_tile;
typedef void gemm_ukernel_fn(const gemm_tile *t);

typedef struct {
    const char *name;          /* "avx512 f32 12x32" */
    cpu_level isa;
    gemm_type type;
    int mr, nr;                /* tile: rows of x, columns of y (nr = panels x 16) */
    gemm_ukernel_fn *run;
    unsigned needs;            /* extensions beyond the ISA level: GEMM_NEEDS_* */
} gemm_ukernel;
#define GEMM_NEEDS_VNNI 1u     /* AVX-512 VNNI (vpdpbusd) */
#define GEMM_NEEDS_DOTPROD 2u  /* aarch64 dotprod (sdot), hwcap ASIMDDP */
#define GEMM_NEEDS_I8MM 4u     /* aarch64 i8mm (smmla), hwcap2 I8MM */
#define GEMM_NEEDS_BF16 8u     /* AVX-512 BF16 (vdpbf16ps) */
/* 1 if this CPU has every extension a micro-kernel needs. */
int gemm_ukernel_usable(const gemm_ukernel *uk);

/* Every micro-kernel compiled in (for tests and `clip_run info`), n_out set to the count. */
const gemm_ukernel *gemm_ukernels(int *n_out);
/* The micro-kernel the driver uses for `type` at `level` on this CPU: the tuned one for
 * f32; for the other types the first usable table row of the best ISA up to `level`
 * (the table lists the faster variants of an ISA first: smmla, sdot, plain NEON), unless
 * CLIP_GEMM_TILE names a usable row of that type (for measurements). */
const gemm_ukernel *gemm_ukernel_for(gemm_type type, cpu_level level);

/* The scalar reference and the per-ISA micro-kernels (f32). */
gemm_ukernel_fn gemm_f32_scalar_4x16;
gemm_ukernel_fn gemm_f32_avx2_6x16;
gemm_ukernel_fn gemm_f32_avx512_12x32, gemm_f32_avx512_8x32, gemm_f32_avx512_14x16;
gemm_ukernel_fn gemm_f32_neon_5x16;

/* ---- Per-CPU choice ------------------------------------------------------------------- */
typedef struct {
    const gemm_ukernel *kernel;  /* the f32 micro-kernel */
    int mc;                    /* rows of x per block (x block in L2) */
    int kc;                    /* k per chunk (x tile of MR x KC in L1) */
    int nc;                    /* output columns per thread task (W chunk KC x NC in L2) */
    int prefetch;              /* 1: tiles that first touch their panels prefetch the next
                                  tile's (gemm_tile.next_w) */
    char why[320];             /* one line: the CPU, its caches, what was picked and why */
} gemm_tuning;
/* The choice for `level` on this CPU, computed once per level. For measurements the
 * environment overrides it: CLIP_GEMM_TILE=<name> or "measure", CLIP_GEMM_KC / _MC / _NC,
 * CLIP_GEMM_PREFETCH=0. */
const gemm_tuning *gemm_tuning_get(cpu_level level);
/* The native micro-kernel's name at a level, for `clip_run info`: "avx512 f32 8x32". */
const char *gemm_kernel_name(cpu_level level);

#endif

/* gemm.h - the linear layers' matrix product y = x W^T + b, with fused epilogues.
 *
 *   x: [m, k] row-major          (activations: m = tokens, or tokens x batch)
 *   W: [n, k] row-major          (PyTorch's [out, in] layout, used in place from the
 *                                 read-only weight mapping: no copy, no packing)
 *   y: [m, n] row-major          y = act(x W^T + b)   or, accumulating,  y += x W^T + b
 *
 * Both operands are walked along k, so the native kernels are "NT" dot-product kernels:
 * a register tile of MR rows of x by 4 rows of W is accumulated with vector FMAs over k
 * (MR x 4 vector accumulators), then each group of four accumulators is reduced to the
 * four sums of one output row segment and the bias is added. Work is split across a
 * thread pool by blocks of output columns, so every output is computed by exactly one
 * thread in one fixed order: results do not depend on the thread count or on how many
 * rows (batch) are computed together.
 *
 * Backends: "native" (these kernels, at the CPU level of kernels_level()) or "openblas"
 * (cblas_sgemm, with the epilogue as separate passes).
 */
#ifndef CLIP_GEMM_H
#define CLIP_GEMM_H

#include "kernels.h"
#include "threadpool.h"

typedef enum { GEMM_NATIVE = 0, GEMM_OPENBLAS = 1 } gemm_backend;
typedef enum { GEMM_ACT_NONE = 0, GEMM_ACT_QUICK_GELU = 1, GEMM_ACT_GELU = 2 } gemm_activation;

typedef struct {
    float *y;                 /* [m, n] */
    const float *x;           /* [m, k] */
    const float *w;           /* [n, k] */
    const float *bias;        /* [n] or NULL */
    int m, n, k;
    int accumulate;           /* 1: y += x W^T + b (e.g. the residual stream); 0: y = ... */
    gemm_activation act;      /* applied to y after the sum (with accumulate 0 only) */
} gemm_op;

/* Run op on the pool (NULL: the calling thread) with the given backend; the native
 * backend uses the kernels of `level` (clamped to what is compiled in). */
void gemm_run(threadpool *pool, const gemm_op *op, gemm_backend backend, cpu_level level);
/* Same with the native backend at kernels_level(). */
void gemm(threadpool *pool, const gemm_op *op);

const char *gemm_backend_name(gemm_backend backend);
/* "native" / "openblas" -> backend; -1 if the name is unknown. */
int gemm_backend_parse(const char *name);
/* The native kernel's register tile, for `clip_run info`: e.g. "avx512 5x4 NT". */
const char *gemm_kernel_name(cpu_level level);

/* One block of the product for one range of k, the unit the per-ISA kernels implement:
 *   y[i, j] = (accumulate ? y[i, j] : 0) + (bias ? bias[j] : 0) + sum_{p<k} x[i, p] w[j, p]
 * for i < m, j < n, with leading dimensions ldy, ldx, ldw (in floats). */
typedef void gemm_block_fn(float *y, int ldy, const float *x, int ldx, const float *w, int ldw,
                           int m, int n, int k, const float *bias, int accumulate);
gemm_block_fn gemm_block_scalar, gemm_block_avx2, gemm_block_avx512, gemm_block_neon;

#endif

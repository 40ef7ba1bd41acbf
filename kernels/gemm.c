/* gemm.c - y = x W^T + b for the linear layers: blocking, threads, epilogue, backends.
 *
 * Shapes as gemm.h: x [m, k], W [n, k] (used in place), y [m, n]. The native product is
 * cut three ways:
 *   - columns: tasks of `nb` output columns (nb rows of W) go to the thread pool; a task
 *     owns its columns of y for all m rows, so no two threads touch one output;
 *   - rows: blocks of MC rows of x, so a block (MC x KC floats) stays in the L2 cache
 *     while the task's rows of W pass over it;
 *   - k: chunks of at most KC, so the 4 W rows of a register tile (4 x KC floats) stay in
 *     the L1 cache while every x row of the block meets them. The first chunk stores (or,
 *     accumulating, adds) sum + bias, later chunks add their partial sums.
 * When a row block's last chunk is done, its y segment is still in cache and the
 * activation (fc1 + GELU) runs over it there: the epilogue costs no extra pass over
 * memory. A residual add is the accumulating form: x += W^T h + b straight into x.
 *
 * Chunk sizes depend only on k, so every output's summation order is fixed by the
 * shapes of W alone: the same with 1 or 8 threads, 1 or 50 rows.
 */
#include <string.h>

#include "gemm.h"

#ifndef KC
#define KC 1024            /* k chunk: 4 W rows of 1024 floats = 16 KB of L1; fc2 (k 3072) in 3 */
#endif
#ifndef MC
#define MC 80              /* rows per block: 80 x 1024 floats = 320 KB of a 1 MB L2, beside a
                              task's 64 W rows (256 KB). With KC 1536 the two overflowed L2
                              and a batch's fc2 ran at 70% of fc1's speed. */
#endif
#define NB 64              /* output columns per task */
#ifndef SMALL_M_NB
#define SMALL_M_NB 512     /* up to this many with fewer than SMALL_M rows */
#endif
#define SMALL_M 20         /* the rows below which gemm_avx512.c prefetches far ahead */

/* ---- scalar reference ------------------------------------------------------------- */
void gemm_block_scalar(float *y, int ldy, const float *x, int ldx, const float *w, int ldw,
                       int m, int n, int k, const float *bias, int accumulate) {
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        float *yi = y + (size_t)i * ldy;
        for (int j = 0; j < n; j++) {
            const float *wj = w + (size_t)j * ldw;
            float sum = 0;
            for (int p = 0; p < k; p++) sum += xi[p] * wj[p];
            if (bias) sum += bias[j];
            yi[j] = accumulate ? yi[j] + sum : sum;
        }
    }
}

/* ---- dispatch ----------------------------------------------------------------------- */
typedef void activation_fn(float *, size_t);

static cpu_level usable(cpu_level level) {
    return cpu_level_usable(level) ? level : CPU_SCALAR;
}

static gemm_block_fn *block_fn(cpu_level level) {
    switch (usable(level)) {
#if defined(CLIP_KERNELS_X86)
    case CPU_AVX512: return gemm_block_avx512;
    case CPU_AVX2: return gemm_block_avx2;
#endif
#if defined(CLIP_KERNELS_ARM)
    case CPU_NEON: return gemm_block_neon;
#endif
    default: return gemm_block_scalar;
    }
}

static activation_fn *act_fn(gemm_activation act, cpu_level level) {
    if (act == GEMM_ACT_NONE) return NULL;
    switch (usable(level)) {
#if defined(CLIP_KERNELS_X86)
    case CPU_AVX512: return act == GEMM_ACT_GELU ? gelu_avx512 : quick_gelu_avx512;
    case CPU_AVX2: return act == GEMM_ACT_GELU ? gelu_avx2 : quick_gelu_avx2;
#endif
#if defined(CLIP_KERNELS_ARM)
    case CPU_NEON: return act == GEMM_ACT_GELU ? gelu_neon : quick_gelu_neon;
#endif
    default: return act == GEMM_ACT_GELU ? gelu_scalar : quick_gelu_scalar;
    }
}

const char *gemm_backend_name(gemm_backend backend) {
    return backend == GEMM_OPENBLAS ? "openblas" : "native";
}

int gemm_backend_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "native") == 0) return GEMM_NATIVE;
    if (strcmp(name, "openblas") == 0) return GEMM_OPENBLAS;
    return -1;
}

const char *gemm_kernel_name(cpu_level level) {
    switch (usable(level)) {
    case CPU_AVX512: return "avx512 5x4 NT";
    case CPU_AVX2: return "avx2 3x4 NT";
    case CPU_NEON: return "neon 5x4 NT";
    default: return "scalar";
    }
}

/* ---- native backend --------------------------------------------------------------------- */
typedef struct {
    const gemm_op *op;
    gemm_block_fn *block;
    activation_fn *act;
    int nb, kc;
} native_job;

static void native_task(void *arg, int task, int thread) {
    (void)thread;
    const native_job *job = arg;
    const gemm_op *op = job->op;
    const int n0 = task * job->nb, n_cols = op->n - n0 < job->nb ? op->n - n0 : job->nb;
    const float *w = op->w + (size_t)n0 * op->k;
    const float *bias = op->bias ? op->bias + n0 : NULL;
    for (int m0 = 0; m0 < op->m; m0 += MC) {
        const int n_rows = op->m - m0 < MC ? op->m - m0 : MC;
        float *y = op->y + (size_t)m0 * op->n + n0;
        const float *x = op->x + (size_t)m0 * op->k;
        for (int k0 = 0; k0 < op->k; k0 += job->kc) {
            const int len = op->k - k0 < job->kc ? op->k - k0 : job->kc;
            job->block(y, op->n, x + k0, op->k, w + k0, op->k, n_rows, n_cols, len,
                       k0 == 0 ? bias : NULL, k0 > 0 || op->accumulate);
        }
        if (job->act)
            for (int r = 0; r < n_rows; r++) job->act(y + (size_t)r * op->n, (size_t)n_cols);
    }
}

static void native_gemm(threadpool *pool, const gemm_op *op, cpu_level level) {
    native_job job = {op, block_fn(level), act_fn(op->act, level), NB, KC};
    /* k chunks of equal size, a multiple of 16 (whole vectors) where possible */
    const int n_chunks = (op->k + KC - 1) / KC;
    job.kc = n_chunks > 1 ? ((op->k + n_chunks - 1) / n_chunks + 15) / 16 * 16 : op->k;
    /* enough tasks that the threads finish together: at least 4 per thread */
    const int n_threads = threadpool_size(pool);
    if (n_threads > 1 && (op->n + NB - 1) / NB < 4 * n_threads) {
        int nb = (op->n + 4 * n_threads - 1) / (4 * n_threads);
        nb = (nb + 3) / 4 * 4;
        job.nb = nb < 16 ? 16 : nb;
    } else if (op->m < SMALL_M) {
        /* Few rows: the product streams W from memory, and the kernel prefetches W a
         * few row groups ahead within a task only, so each task starts with a stall.
         * Fewer, bigger tasks (still 4 per thread) start fewer streams. */
        int nb = (op->n + 4 * n_threads - 1) / (4 * n_threads);
        nb = (nb + NB - 1) / NB * NB;
        job.nb = nb > SMALL_M_NB ? SMALL_M_NB : nb;
    }
    threadpool_run(pool, (op->n + job.nb - 1) / job.nb, native_task, &job);
}

/* ---- OpenBLAS backend ------------------------------------------------------------------- */
static void openblas_gemm(const gemm_op *op, cpu_level level) {
    float beta = op->accumulate ? 1.0f : 0.0f;
    if (op->bias) {
        for (int r = 0; r < op->m; r++) {
            float *y = op->y + (size_t)r * op->n;
            if (op->accumulate) add_inplace(y, op->bias, (size_t)op->n);
            else memcpy(y, op->bias, sizeof(float) * (size_t)op->n);
        }
        beta = 1.0f;
    }
    blas_sgemm_nt(op->y, op->x, op->w, op->m, op->n, op->k, beta);
    activation_fn *act = act_fn(op->act, level);
    if (act) act(op->y, (size_t)op->m * op->n);
}

/* ---- entry points ------------------------------------------------------------------------ */
void gemm_run(threadpool *pool, const gemm_op *op, gemm_backend backend, cpu_level level) {
    if (op->m <= 0 || op->n <= 0) return;
    if (op->k <= 0) {                       /* an empty sum: y is the bias (or unchanged) */
        for (int r = 0; r < op->m; r++)
            for (int j = 0; j < op->n; j++) {
                float *y = op->y + (size_t)r * op->n + j;
                const float b = op->bias ? op->bias[j] : 0.0f;
                *y = op->accumulate ? *y + b : b;
            }
        activation_fn *act = act_fn(op->act, level);
        if (act) act(op->y, (size_t)op->m * op->n);
        return;
    }
    if (backend == GEMM_OPENBLAS) openblas_gemm(op, level);
    else native_gemm(pool, op, level);
}

void gemm(threadpool *pool, const gemm_op *op) { gemm_run(pool, op, GEMM_NATIVE, kernels_level()); }

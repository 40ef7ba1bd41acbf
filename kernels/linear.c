/* linear.c - the linear layer y = x W^T + b, through OpenBLAS, loaded on first use.
 *
 * x: [n_rows, d_in], W: [d_out, d_in] (PyTorch's layout, so the product uses W
 * transposed), b: [d_out] or NULL, y: [n_rows, d_out] (must not overlap x or W).
 * The bias is written into every row of y first and sgemm adds the product onto it
 * (beta = 1), which saves a second pass over y; without a bias beta = 0, and BLAS then
 * never reads y.
 *
 * OpenBLAS is opened with dlopen() the first time a product needs it, not linked: its
 * library constructor starts a pool of threads that spin (sched_yield) for a while
 * waiting for work. Linked, every process paid that at start-up and shared its cores
 * with the spinners, even when only the native kernels run (the default). The thread
 * count asked for before the library is loaded is remembered and applied when it is.
 */
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "../io/error.h"
#include "kernels.h"

typedef void sgemm_fn(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,
                      const blasint, const blasint, const blasint, const float, const float *,
                      const blasint, const float *, const blasint, const float, float *, const blasint);
typedef void set_threads_fn(int);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static sgemm_fn *blas_sgemm;                 /* NULL until loaded (or if it cannot be) */
static set_threads_fn *blas_threads;
static char blas_error[256];
static atomic_int wanted_threads = 1;        /* applied at load */

static void load_openblas(void) {
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(blas_error, sizeof blas_error, "%s", why ? why : "not found");
        return;
    }
    sgemm_fn *sgemm = (sgemm_fn *)dlsym(lib, "cblas_sgemm");
    set_threads_fn *threads = (set_threads_fn *)dlsym(lib, "openblas_set_num_threads");
    if (!sgemm || !threads) {
        snprintf(blas_error, sizeof blas_error, "libopenblas has no cblas_sgemm/openblas_set_num_threads");
        dlclose(lib);
        return;
    }
    threads(atomic_load(&wanted_threads));
    blas_threads = threads;
    blas_sgemm = sgemm;
}

int blas_load(void) {
    pthread_once(&blas_once, load_openblas);
    if (blas_sgemm) return 0;
    return clip_fail(CLIP_ERR_ARG, "the openblas matmul backend is unavailable: cannot load OpenBLAS (%s)",
                     blas_error);
}

void blas_set_threads(int n_threads) {
    if (n_threads <= 0) return;
    atomic_store(&wanted_threads, n_threads);
    if (blas_threads) blas_threads(n_threads);   /* else: applied when loaded */
}

/* y = alpha x W^T + beta y (x [m, k], W [n, k], y [m, n]); without OpenBLAS (blas_load
 * failed and the caller went on regardless) the same sum in plain loops. */
void blas_sgemm_nt(float *y, const float *x, const float *w, int m, int n, int k, float beta) {
    if (blas_load() == 0) {
        blas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, beta, y, n);
        return;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0;
            for (int p = 0; p < k; p++) sum += x[(size_t)i * k + p] * w[(size_t)j * k + p];
            y[(size_t)i * n + j] = beta != 0.0f ? beta * y[(size_t)i * n + j] + sum : sum;
        }
}

/* y = x w + beta y with leading dimensions: x [m, k] (ldx), w [k, n] (ldw), y [m, n] (ldy);
 * the product of one packed weight panel (kernels/gemm.c). Plain loops without OpenBLAS. */
void blas_sgemm_nn(float *y, int ldy, const float *x, int ldx, const float *w, int ldw, int m, int n,
                   int k, float beta) {
    if (blas_load() == 0) {
        blas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, x, ldx, w, ldw, beta, y, ldy);
        return;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0;
            for (int p = 0; p < k; p++) sum += x[(size_t)i * ldx + p] * w[(size_t)p * ldw + j];
            y[(size_t)i * ldy + j] = beta != 0.0f ? beta * y[(size_t)i * ldy + j] + sum : sum;
        }
}

void linear(float *y, const float *x, const float *w, const float *b,
            int n_rows, int d_in, int d_out) {
    if (n_rows <= 0 || d_out <= 0) return;
    if (b)
        for (int r = 0; r < n_rows; r++) memcpy(y + (size_t)r * d_out, b, (size_t)d_out * sizeof *y);
    if (d_in <= 0) {                             /* an empty sum: y is just the bias */
        if (!b) memset(y, 0, (size_t)n_rows * d_out * sizeof *y);
        return;
    }
    blas_sgemm_nt(y, x, w, n_rows, d_out, d_in, b ? 1.0f : 0.0f);
}

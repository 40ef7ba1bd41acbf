/* blas_loader.c - OpenBLAS's sgemm for `--gemm openblas`, loaded on first use (dlopen).
 *
 * blas_sgemm_nt(y, x, W, m, n, k, beta): y = x W^T + beta y with x [m, k], W [n, k]
 * (PyTorch's layout, so the product uses W transposed), y [m, n] (must not overlap x or W).
 *
 * OpenBLAS is opened with dlopen() the first time a product needs it, not linked: its
 * library constructor starts a pool of threads that spin (sched_yield) for a while
 * waiting for work. Linked, every process paid that at start-up and shared its cores
 * with the spinners, even when only the native kernels run (the default). The thread
 * count asked for before the library is loaded is remembered and applied when it is.
 *
 * No BLAS header is included: the build must not depend on which cblas.h a machine has
 * (netlib's, from libblas-dev, declares cblas_sgemm with other types than OpenBLAS's and
 * lacks `blasint`). The one entry point used is declared below from OpenBLAS's ABI.
 * Only the runtime library (Debian: libopenblas0) is needed, and only for --gemm openblas.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>

#include "../io/error.h"
#include "kernels.h"

/* cblas_sgemm of OpenBLAS's LP64 build (libopenblas.so.0; the 64-bit-integer build is
 * another library, libopenblas64.so.0, which is not opened): blasint is int, and the
 * enums CBLAS_ORDER and CBLAS_TRANSPOSE are passed as ints with the values of the CBLAS
 * standard, which every cblas.h uses. */
typedef void sgemm_fn(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
typedef void set_threads_fn(int);
/* Double precision, for quantize's GPTQ (kernels/gptq.c): cblas_dgemm / cblas_dsyrk take the
 * CBLAS enums as above (CblasUpper = 121); dpotrf_ / dtrtri_ are LAPACK's Fortran entry points
 * that OpenBLAS carries (arguments by pointer, then the hidden lengths of the character
 * arguments, which gfortran passes as size_t). */
typedef void dgemm_fn(int order, int trans_a, int trans_b, int m, int n, int k, double alpha,
                      const double *a, int lda, const double *b, int ldb, double beta, double *c, int ldc);
typedef void dsyrk_fn(int order, int uplo, int trans, int n, int k, double alpha, const double *a, int lda,
                      double beta, double *c, int ldc);
typedef void dpotrf_fn(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
typedef void dtrtri_fn(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info,
                       size_t uplo_len, size_t diag_len);
enum { CBLAS_UPPER = 121 };

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static sgemm_fn *blas_sgemm;                 /* NULL until loaded (or if it cannot be) */
static set_threads_fn *blas_threads;
static char blas_error[256];
static atomic_int wanted_threads = 1;        /* applied at load */
static dgemm_fn *blas_dgemm;                 /* each NULL if the library lacks it: plain loops */
static dsyrk_fn *blas_dsyrk;
static dpotrf_fn *lapack_dpotrf;
static dtrtri_fn *lapack_dtrtri;
static atomic_int double_loops;              /* blas_double_loops(): tests of the plain loops */

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
    blas_dgemm = (dgemm_fn *)dlsym(lib, "cblas_dgemm");
    blas_dsyrk = (dsyrk_fn *)dlsym(lib, "cblas_dsyrk");
    lapack_dpotrf = (dpotrf_fn *)dlsym(lib, "dpotrf_");
    lapack_dtrtri = (dtrtri_fn *)dlsym(lib, "dtrtri_");
    blas_threads = threads;
    blas_sgemm = sgemm;
}

int blas_load(void) {
    pthread_once(&blas_once, load_openblas);
    if (blas_sgemm) return 0;
    return clip_fail(CLIP_ERR_ARG, "the openblas matmul backend is unavailable: cannot load OpenBLAS (%s); "
                     "install its runtime library (Debian: apt-get install libopenblas0)", blas_error);
}

void blas_set_threads(int n_threads) {
    if (n_threads <= 0) return;
    atomic_store(&wanted_threads, n_threads);
    if (blas_threads) blas_threads(n_threads);   /* else: applied when loaded */
}

/* y = x W^T + beta y (x [m, k], W [n, k], y [m, n]); without OpenBLAS (blas_load
 * failed and the caller went on regardless) the same sum in plain loops. */
void blas_sgemm_nt(float *y, const float *x, const float *w, int m, int n, int k, float beta) {
    if (blas_load() == 0) {
        blas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, m, n, k, 1.0f, x, k, w, k, beta, y, n);
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
        blas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, m, n, k, 1.0f, x, ldx, w, ldw, beta, y, ldy);
        return;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0;
            for (int p = 0; p < k; p++) sum += x[(size_t)i * ldx + p] * w[(size_t)p * ldw + j];
            y[(size_t)i * ldy + j] = beta != 0.0f ? beta * y[(size_t)i * ldy + j] + sum : sum;
        }
}

void blas_double_loops(int on) { atomic_store(&double_loops, on); }

/* OpenBLAS's routine f, if the library loads, has it, and the loops are not asked for. */
#define HAVE(f) (!atomic_load(&double_loops) && blas_load() == 0 && (f) != NULL)

/* ---- Double precision (quantize's GPTQ) ---------------------------------------------------
 * A row-major matrix is its transpose to column-major LAPACK: the row-major lower Cholesky
 * factor is LAPACK's upper one ("U"), a row-major upper triangle LAPACK's lower ("L"). */
void blas_dgemm_tn(double *c, int ldc, const double *a, int lda, const double *b, int ldb, int m, int n, int k,
                   double alpha, double beta) {
    if (HAVE(blas_dgemm)) {
        blas_dgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS, CBLAS_NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    for (int i = 0; i < m; i++) {
        double *ci = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++) ci[j] *= beta;
        for (int p = 0; p < k; p++) {
            const double s = alpha * a[(size_t)p * lda + i];
            const double *bp = b + (size_t)p * ldb;
            for (int j = 0; j < n; j++) ci[j] += s * bp[j];
        }
    }
}

void blas_dgram(double *h, const double *x, int rows, int k) {
    if (HAVE(blas_dsyrk)) {
        blas_dsyrk(CBLAS_ROW_MAJOR, CBLAS_UPPER, CBLAS_TRANS, k, rows, 1.0, x, k, 0.0, h, k);
    } else {
        for (int i = 0; i < k; i++)
            for (int j = i; j < k; j++) {
                double s = 0;
                for (int r = 0; r < rows; r++) s += x[(size_t)r * k + i] * x[(size_t)r * k + j];
                h[(size_t)i * k + j] = s;
            }
    }
    for (int i = 0; i < k; i++)            /* mirror the upper triangle */
        for (int j = 0; j < i; j++) h[(size_t)i * k + j] = h[(size_t)j * k + i];
}

int blas_cholesky_lower(double *a, int n) {
    if (HAVE(lapack_dpotrf)) {
        int info = 0;
        lapack_dpotrf("U", &n, a, &n, &info, 1);
        return info == 0 ? 0 : -1;
    }
    for (int j = 0; j < n; j++) {          /* Cholesky-Crout, row by row */
        double *aj = a + (size_t)j * n;
        for (int i = j; i < n; i++) {
            double *ai = a + (size_t)i * n, s = ai[j];
            for (int p = 0; p < j; p++) s -= ai[p] * aj[p];
            if (i == j) {
                if (!(s > 0)) return -1;
                ai[j] = sqrt(s);
            } else {
                ai[j] = s / aj[j];
            }
        }
    }
    return 0;
}

void blas_invert_upper(double *a, int n) {
    if (HAVE(lapack_dtrtri)) {
        int info = 0;
        lapack_dtrtri("L", "N", &n, a, &n, &info, 1, 1);
        return;
    }
    /* column j of the inverse X solves U x = e_j, from the diagonal up. Columns go right to
     * left: column j needs U's columns up to j only, which are not yet overwritten. */
    for (int j = n - 1; j >= 0; j--) {
        a[(size_t)j * n + j] = 1.0 / a[(size_t)j * n + j];
        for (int i = j - 1; i >= 0; i--) {
            double s = 0;
            for (int p = i + 1; p <= j; p++) s += a[(size_t)i * n + p] * a[(size_t)p * n + j];
            a[(size_t)i * n + j] = -s / a[(size_t)i * n + i];
        }
    }
}

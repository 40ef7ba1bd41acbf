/* kernels_bench.c - nanoseconds per call of every kernel, at every SIMD level this CPU has.
 *
 * Shapes are those of CLIP ViT-B/16 (197 tokens of 768, 12 heads, MLP 3072) and of its
 * text tower (77 tokens of 512, 8 heads, causal); the qkv projection's matmul runs through
 * gemm_run (kernels/gemm.c) on one thread: the native kernels at each level, then OpenBLAS
 * when its runtime library is installed. Not part of `make test`; build and run:
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -pthread bench/kernels_bench.c build/libclip.a \
 *       -ldl -lm -o build/kernels_bench
 *   build/kernels_bench [seconds per measurement, default 0.2]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/gemm.h"
#include "../kernels/kernels.h"

enum { N_TOK = 197, D_MODEL = 768, N_HEADS = 12, D_MLP = 3072, N_TEXT = 77, D_TEXT = 512, N_HEADS_TEXT = 8 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *random_floats(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "kernels_bench: out of memory\n");
        exit(1);
    }
    unsigned state = 12345;
    for (size_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        p[i] = scale * ((float)(state >> 8) / 8388608.0f - 1.0f);
    }
    return p;
}

/* The buffers every benchmark works on, allocated once. */
static float *x, *y, *gamma_, *beta_, *mlp, *mlp_src, *qkv, *qkv_text, *att_out, *scratch, *w, *b, *lin_out;
static double budget = 0.2;

typedef void (*bench_fn)(void);

/* Calls fn repeatedly for about `budget` seconds; returns ns per call. */
static double time_it(bench_fn fn) {
    fn();                                             /* warm caches and the dispatch */
    long calls = 0;
    const double start = now();
    double elapsed;
    do {
        for (int i = 0; i < 8; i++) fn();
        calls += 8;
        elapsed = now() - start;
    } while (elapsed < budget);
    return elapsed / calls * 1e9;
}

static void b_layernorm(void) { layernorm(y, x, gamma_, beta_, N_TOK, D_MODEL, 1e-5f); }
/* the activations work in place: refresh the input so they never run on their own output */
/* the activations and softmax have no dispatched names: the version of the forced level */
static void (*const quick_gelu_at[])(float *, size_t) = {quick_gelu_scalar, quick_gelu_avx2, quick_gelu_avx512};
static void (*const gelu_at[])(float *, size_t) = {gelu_scalar, gelu_avx2, gelu_avx512};
static void (*const softmax_at[])(float *, int) = {softmax_scalar, softmax_avx2, softmax_avx512};
static void b_quick_gelu(void) {
    memcpy(mlp, mlp_src, sizeof(float) * N_TOK * D_MLP);
    quick_gelu_at[kernels_level()](mlp, (size_t)N_TOK * D_MLP);
}
static void b_gelu(void) {
    memcpy(mlp, mlp_src, sizeof(float) * N_TOK * D_MLP);
    gelu_at[kernels_level()](mlp, (size_t)N_TOK * D_MLP);
}
static void b_copy_only(void) { memcpy(mlp, mlp_src, sizeof(float) * N_TOK * D_MLP); }
static void b_softmax(void) {
    memcpy(scratch, x, sizeof(float) * N_TOK);
    softmax_at[kernels_level()](scratch, N_TOK);
}
static void b_add(void) { add_inplace(y, x, (size_t)N_TOK * D_MODEL); }
/* attention() is one head over a compact [tokens, 3 * head_dim] copy (as model/transformer.c
 * hands it); a layer runs it once per head */
static void b_attention(void) {
    for (int h = 0; h < N_HEADS; h++)
        attention(att_out, qkv, N_TOK, N_TOK, D_MODEL / N_HEADS, 0, scratch);
}
static void b_attention_cls(void) {
    for (int h = 0; h < N_HEADS; h++) attention(att_out, qkv, N_TOK, 1, D_MODEL / N_HEADS, 0, scratch);
}
static void b_attention_text(void) {
    for (int h = 0; h < N_HEADS_TEXT; h++)
        attention(att_out, qkv_text, N_TEXT, N_TEXT, D_TEXT / N_HEADS_TEXT, 1, scratch);
}
/* y = x W^T + b, [197, 768] x [2304, 768]^T: the qkv projection, one thread */
static gemm_op qkv_op(void) {
    const gemm_op op = {lin_out, x, w, b, N_TOK, 3 * D_MODEL, D_MODEL, 0, GEMM_ACT_NONE};
    return op;
}
static void b_gemm_native(void) {
    const gemm_op op = qkv_op();
    gemm_run(NULL, &op, GEMM_NATIVE, kernels_level());
}
static void b_gemm_openblas(void) {
    const gemm_op op = qkv_op();
    gemm_run(NULL, &op, GEMM_OPENBLAS, kernels_level());
}

int main(int argc, char **argv) {
    if (argc > 1) budget = atof(argv[1]);
    if (budget <= 0) budget = 0.2;
    x = random_floats((size_t)N_TOK * D_MODEL, 3);
    y = random_floats((size_t)N_TOK * D_MODEL, 1);
    gamma_ = random_floats(D_MODEL, 1);
    beta_ = random_floats(D_MODEL, 1);
    mlp = random_floats((size_t)N_TOK * D_MLP, 4);
    mlp_src = random_floats((size_t)N_TOK * D_MLP, 4);
    qkv = random_floats((size_t)N_TOK * 3 * D_MODEL, 1);
    qkv_text = random_floats((size_t)N_TEXT * 3 * D_TEXT, 1);
    att_out = random_floats((size_t)N_TOK * D_MODEL, 1);
    scratch = random_floats(N_TOK, 1);
    w = random_floats((size_t)3 * D_MODEL * D_MODEL, 0.05f);
    b = random_floats((size_t)3 * D_MODEL, 1);
    lin_out = random_floats((size_t)N_TOK * 3 * D_MODEL, 1);

    static const struct { const char *name; bench_fn fn; } benches[] = {
        {"layernorm 197x768", b_layernorm},
        {"memcpy 197x3072 (subtract from the two below)", b_copy_only},
        {"quick_gelu 197x3072 (+ memcpy)", b_quick_gelu},
        {"gelu 197x3072 (+ memcpy)", b_gelu},
        {"softmax 197 (+ memcpy)", b_softmax},
        {"add_inplace 197x768", b_add},
        {"attention 197 tok, 768, 12 heads", b_attention},
        {"attention class token only", b_attention_cls},
        {"attention text 77 tok, 512, 8 heads, causal", b_attention_text},
        {"gemm 197x768 -> 2304 (native, 1 thread)", b_gemm_native},
    };
    const int n_benches = (int)(sizeof benches / sizeof benches[0]);

    printf("%-48s", "ns per call");
    for (int l = CPU_SCALAR; l < CPU_LEVEL_COUNT; l++)
        if (cpu_level_usable((cpu_level)l)) printf(" %12s", cpu_level_name((cpu_level)l));
    printf("\n");
    for (int i = 0; i < n_benches; i++) {
        printf("%-48s", benches[i].name);
        for (int l = CPU_SCALAR; l < CPU_LEVEL_COUNT; l++) {
            if (!cpu_level_usable((cpu_level)l)) continue;
            kernels_force((cpu_level)l);
            printf(" %12.0f", time_it(benches[i].fn));
            fflush(stdout);
        }
        printf("\n");
    }
    blas_set_threads(1);
    if (blas_load() == 0)
        printf("%-48s %12.0f\n", "gemm 197x768 -> 2304 (OpenBLAS, 1 thread)", time_it(b_gemm_openblas));
    else
        printf("gemm (OpenBLAS): not measured, its runtime library is not installed (libopenblas0)\n");
    return 0;
}

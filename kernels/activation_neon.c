/* activation_neon.c - quick GELU and exact GELU, in place over n floats, 4 at a time (NEON).
 *
 * The math (polynomial exp and erfc) is in vecmath_neon.h; this file only walks the array,
 * two vectors per step, and sends the last partial vector through a small buffer so any n
 * works without touching memory past it.
 */
#include "kernels.h"
#include "vecmath_neon.h"

void quick_gelu_neon(float *x, size_t n) {
    size_t i = 0;
    for (; i + 2 * V4 <= n; i += 2 * V4) {
        vst1q_f32(x + i, quick_gelu4(vld1q_f32(x + i)));
        vst1q_f32(x + i + V4, quick_gelu4(vld1q_f32(x + i + V4)));
    }
    for (; i < n; i += V4) {
        const size_t len = n - i < V4 ? n - i : V4;
        store_tail(x + i, quick_gelu4(load_tail(x + i, len, 0.0f)), len);
    }
}

void gelu_neon(float *x, size_t n) {
    size_t i = 0;
    for (; i + 2 * V4 <= n; i += 2 * V4) {
        vst1q_f32(x + i, gelu4(vld1q_f32(x + i)));
        vst1q_f32(x + i + V4, gelu4(vld1q_f32(x + i + V4)));
    }
    for (; i < n; i += V4) {
        const size_t len = n - i < V4 ? n - i : V4;
        store_tail(x + i, gelu4(load_tail(x + i, len, 0.0f)), len);
    }
}

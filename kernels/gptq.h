/* gptq.h - rounding a weight matrix to q8_0 / q4_0 with error feedback from calibration
 * inputs (GPTQ), for clip_run quantize. Offline work: allocates, not for hot loops. */
#ifndef CLIP_GPTQ_H
#define CLIP_GPTQ_H
#include <stdint.h>

#include "quant.h"

/* The fraction of the mean of diag(H) added to H's diagonal (GPTQ's default): it keeps H
 * invertible when the calibration rows span less than k dimensions, and bounds the feedback. */
#define GPTQ_DAMP 0.01

/* w [n, k] row-major f32: in, the weights; out, their quantized values (level x scale,
 * exactly what quant_pack_scaled stores with `scales`). x [rows, k]: the layer's inputs on
 * calibration data (rows >= 1). scales [n][ceil(k / 32)]: out, the blocks' f16 scales.
 * type: GEMM_Q8_0 or GEMM_Q4_0. Returns 0; -1 out of memory, -2 calibration inputs that are
 * not finite or not usable (w unchanged after either). */
int gptq_quantize(gemm_type type, float *w, int n, int k, const float *x, int rows, uint16_t *scales);

#endif

/* resample.c - Pillow 9.4's BICUBIC and NEAREST resize, restricted to a crop window.
 *
 * BICUBIC works like Pillow's ImagingResample (libImaging/Resample.c), separably:
 *   1. per axis, a filter bank: for each output pixel o, the input window
 *      [first, first + n_taps) around center = (o + 0.5) * scale and its weights,
 *      Keys' cubic (a = -0.5) stretched by the scale factor when shrinking (antialiasing),
 *      normalised to sum 1 in double, then rounded to 22-bit fixed point;
 *   2. horizontal pass over only the input rows the vertical pass reads,
 *      [rows, out_w, channels], each sum rounded and clipped to uint8;
 *   3. vertical pass on that uint8 image -> [out_h, out_w, channels].
 * A pass whose axis keeps its size is skipped, as in Pillow, so the result is then just
 * the input's pixels on that axis. Because the filter bank of output pixel o depends only
 * on o, building it for the crop's pixels only gives exactly the full resize's pixels.
 *
 * NEAREST follows Pillow's affine scale path: per axis a running position
 * pos = 0.5 * scale, pos += scale per output pixel, source = (int)pos.
 */
#include "resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* 32-bit accumulators hold 8-bit pixels times weights that may sum a little above 1
 * (negative lobes), so 2 bits of headroom: 32 - 8 - 2. */
#define PRECISION_BITS 22
#define ROUND_HALF (1 << (PRECISION_BITS - 1))
#define BICUBIC_SUPPORT 2.0

static double bicubic_kernel(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* The filter of n_out consecutive output pixels on one axis. */
typedef struct {
    int n_out;
    int ksize;        /* taps reserved per output pixel */
    int *first;       /* [n_out] first input index of each window */
    int *n_taps;      /* [n_out] window length */
    int32_t *weights; /* [n_out, ksize] fixed-point weights, zero past n_taps */
} filter_bank;

static void filter_bank_free(filter_bank *fb) {
    free(fb->first);
    free(fb->n_taps);
    free(fb->weights);
}

/* Filters of output pixels out_first .. out_first + n_out - 1 of a resize in_size -> out_size.
 * The arithmetic is Pillow's, operation for operation, so the doubles come out identical. */
static int filter_bank_build(int in_size, int out_size, int out_first, int n_out, filter_bank *fb) {
    /* Pillow passes the box edges as float: (float)in_size - 0.0f, exact for our sizes. */
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = BICUBIC_SUPPORT * filter_scale;
    double inv_filter_scale = 1.0 / filter_scale;
    int ksize = (int)ceil(support) * 2 + 1;

    fb->n_out = n_out;
    fb->ksize = ksize;
    fb->first = malloc((size_t)n_out * sizeof *fb->first);
    fb->n_taps = malloc((size_t)n_out * sizeof *fb->n_taps);
    fb->weights = malloc((size_t)n_out * (size_t)ksize * sizeof *fb->weights);
    double *w = malloc((size_t)ksize * sizeof *w);
    if (!fb->first || !fb->n_taps || !fb->weights || !w) {
        free(w);
        filter_bank_free(fb);
        return clip_fail(CLIP_ERR_NOMEM, "out of memory for resize filters (%d x %d taps)", n_out,
                         ksize);
    }

    for (int i = 0; i < n_out; i++) {
        int o = out_first + i;
        double center = 0.0 + (o + 0.5) * scale;
        /* Window ends rounded by +0.5 and truncation, like Pillow (not floor/ceil). */
        int lo = (int)(center - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > in_size) hi = in_size;
        int n_taps = hi - lo;
        if (n_taps > ksize) n_taps = ksize; /* cannot happen; keeps writes in bounds */

        double sum = 0.0;
        for (int x = 0; x < n_taps; x++) {
            w[x] = bicubic_kernel(((x + lo) - center + 0.5) * inv_filter_scale);
            sum += w[x];
        }
        int32_t *k = fb->weights + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < n_taps ? (sum != 0.0 ? w[x] / sum : w[x]) : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        fb->first[i] = lo;
        fb->n_taps[i] = n_taps;
    }
    free(w);
    return CLIP_OK;
}

static inline uint8_t clip8(int32_t acc) {
    if (acc < 0) return 0;
    acc >>= PRECISION_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* One row: in_row [in_w, channels] -> out_row [fb->n_out, channels]. Inlined with a
 * constant `channels` by the dispatcher below, so the channel loop unrolls. */
static inline void horizontal_row(const uint8_t *in_row, uint8_t *out_row, const filter_bank *fb,
                                  int channels) {
    for (int i = 0; i < fb->n_out; i++) {
        const int32_t *k = fb->weights + (size_t)i * fb->ksize;
        const uint8_t *p = in_row + (size_t)fb->first[i] * channels;
        int32_t acc[4] = {ROUND_HALF, ROUND_HALF, ROUND_HALF, ROUND_HALF};
        for (int x = 0; x < fb->n_taps[i]; x++)
            for (int c = 0; c < channels; c++) acc[c] += p[x * channels + c] * k[x];
        for (int c = 0; c < channels; c++) out_row[i * channels + c] = clip8(acc[c]);
    }
}

/* Rows in_first .. in_first + n_rows - 1 of src [*, in_w, channels] -> tmp [n_rows, n_out, channels]. */
static void horizontal_pass(const uint8_t *src, int in_w, int channels, int in_first, int n_rows,
                            const filter_bank *fb, uint8_t *tmp) {
    size_t in_stride = (size_t)in_w * channels, out_stride = (size_t)fb->n_out * channels;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *in_row = src + (size_t)(in_first + r) * in_stride;
        uint8_t *out_row = tmp + (size_t)r * out_stride;
        switch (channels) {
        case 1: horizontal_row(in_row, out_row, fb, 1); break;
        case 2: horizontal_row(in_row, out_row, fb, 2); break;
        case 3: horizontal_row(in_row, out_row, fb, 3); break;
        default: horizontal_row(in_row, out_row, fb, 4); break;
        }
    }
}

/* rows: [*, row_len] uint8 whose row 0 is input row row0; dst [fb->n_out, row_len].
 * acc: [row_len] scratch. Summing whole rows keeps the inner loop contiguous; integer
 * sums do not depend on the order, so this equals Pillow's per-pixel loop. */
static void vertical_pass(const uint8_t *rows, size_t stride, int row0, int row_len,
                          const filter_bank *fb, int32_t *acc, uint8_t *dst) {
    for (int j = 0; j < fb->n_out; j++) {
        const int32_t *k = fb->weights + (size_t)j * fb->ksize;
        const uint8_t *base = rows + (size_t)(fb->first[j] - row0) * stride;
        for (int e = 0; e < row_len; e++) acc[e] = ROUND_HALF;
        for (int y = 0; y < fb->n_taps[j]; y++) {
            const uint8_t *row = base + (size_t)y * stride;
            int32_t ky = k[y];
            for (int e = 0; e < row_len; e++) acc[e] += row[e] * ky;
        }
        uint8_t *out = dst + (size_t)j * row_len;
        for (int e = 0; e < row_len; e++) out[e] = clip8(acc[e]);
    }
}

int resample_bicubic_crop(const uint8_t *src, int in_w, int in_h, int channels, int resized_w,
                          int resized_h, int crop_left, int crop_top, int out_w, int out_h,
                          uint8_t *dst) {
    int need_horizontal = resized_w != in_w;
    int need_vertical = resized_h != in_h;
    int row_len = out_w * channels;
    filter_bank fh = {0}, fv = {0};
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    int rc = CLIP_OK;

    /* Input rows the output needs: the vertical filters' union, or the crop itself. */
    int row_first = crop_top, n_rows = out_h;
    if (need_vertical) {
        if ((rc = filter_bank_build(in_h, resized_h, crop_top, out_h, &fv)) != CLIP_OK) return rc;
        row_first = fv.first[0];
        n_rows = fv.first[out_h - 1] + fv.n_taps[out_h - 1] - row_first;
    }

    /* rows: [n_rows, out_w, channels] view with row stride `stride`, row 0 = input row_first. */
    const uint8_t *rows;
    size_t stride;
    if (need_horizontal) {
        if ((rc = filter_bank_build(in_w, resized_w, crop_left, out_w, &fh)) != CLIP_OK) goto done;
        tmp = malloc((size_t)n_rows * row_len);
        if (!tmp) {
            rc = clip_fail(CLIP_ERR_NOMEM, "out of memory for resize (%d x %d)", n_rows, out_w);
            goto done;
        }
        horizontal_pass(src, in_w, channels, row_first, n_rows, &fh, tmp);
        rows = tmp;
        stride = (size_t)row_len;
    } else {
        stride = (size_t)in_w * channels;
        rows = src + (size_t)row_first * stride + (size_t)crop_left * channels;
    }

    if (need_vertical) {
        acc = malloc((size_t)row_len * sizeof *acc);
        if (!acc) {
            rc = clip_fail(CLIP_ERR_NOMEM, "out of memory for resize (%d values)", row_len);
            goto done;
        }
        vertical_pass(rows, stride, row_first, row_len, &fv, acc, dst);
    } else {
        for (int j = 0; j < out_h; j++) memcpy(dst + (size_t)j * row_len, rows + j * stride, row_len);
    }

done:
    free(acc);
    free(tmp);
    filter_bank_free(&fh);
    filter_bank_free(&fv);
    return rc;
}

/* Source index of output pixels out_first .. out_first + n_out - 1. The position is a
 * running sum from pixel 0, as in Pillow: (o + 0.5) * scale computed directly rounds
 * differently where the exact value is an integer. */
static void nearest_indices(int in_size, int out_size, int out_first, int n_out, int *index) {
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double pos = 0.0 + scale * 0.5;
    for (int o = 0; o < out_first + n_out; o++) {
        if (o >= out_first) {
            int s = (int)pos;
            index[o - out_first] = s < 0 ? 0 : s >= in_size ? in_size - 1 : s;
        }
        pos += scale;
    }
}

int resample_nearest_crop(const uint8_t *src, int in_w, int in_h, int channels, int resized_w,
                          int resized_h, int crop_left, int crop_top, int out_w, int out_h,
                          uint8_t *dst) {
    int *col = malloc((size_t)out_w * sizeof *col);
    int *row = malloc((size_t)out_h * sizeof *row);
    if (!col || !row) {
        free(col);
        free(row);
        return clip_fail(CLIP_ERR_NOMEM, "out of memory for resize (%d x %d)", out_w, out_h);
    }
    nearest_indices(in_w, resized_w, crop_left, out_w, col);
    nearest_indices(in_h, resized_h, crop_top, out_h, row);
    for (int j = 0; j < out_h; j++) {
        const uint8_t *in_row = src + (size_t)row[j] * in_w * channels;
        uint8_t *out = dst + (size_t)j * out_w * channels;
        for (int i = 0; i < out_w; i++)
            memcpy(out + (size_t)i * channels, in_row + (size_t)col[i] * channels, channels);
    }
    free(col);
    free(row);
    return CLIP_OK;
}

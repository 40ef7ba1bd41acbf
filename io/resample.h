/* resample.h - Pillow 9.4's image resize, bit for bit, evaluated only inside a crop window.
 *
 * Images are interleaved uint8, [height, width, channels] with 1 to 4 channels, each
 * channel resampled on its own. Both functions compute the window
 *   rows [crop_top, crop_top + out_h) x columns [crop_left, crop_left + out_w)
 * of the image resized to resized_w x resized_h, writing [out_h, out_w, channels].
 * Every output pixel is exactly the one the full resize would produce: the filter
 * windows depend only on the output coordinate, so pixels outside the crop need not exist.
 *
 * resample_bicubic_crop: PIL BICUBIC (a = -0.5), antialiased when shrinking, 22-bit fixed
 *   point weights, horizontal pass first with uint8 rounding between the passes; a pass is
 *   skipped when its axis keeps its size (as PIL does).
 * resample_nearest_crop: PIL NEAREST as used for palette ("P") and bilevel ("1") images.
 */
#ifndef CLIP_IO_RESAMPLE_H
#define CLIP_IO_RESAMPLE_H

#include <stdint.h>

/* Returns CLIP_OK or CLIP_ERR_NOMEM (message set). */
int resample_bicubic_crop(const uint8_t *src, int in_w, int in_h, int channels, int resized_w,
                          int resized_h, int crop_left, int crop_top, int out_w, int out_h,
                          uint8_t *dst);

/* Returns CLIP_OK or CLIP_ERR_NOMEM (message set). */
int resample_nearest_crop(const uint8_t *src, int in_w, int in_h, int channels, int resized_w,
                          int resized_h, int crop_left, int crop_top, int out_w, int out_h,
                          uint8_t *dst);

#endif

/* image.h - decode an image file and reproduce the reference CLIP preprocessing.
 *
 * The reference (clip.clip._transform on a PIL image) is:
 *   Resize(S, BICUBIC) -> CenterCrop(S) -> convert("RGB") -> ToTensor -> Normalize.
 * image_load_crop() does the first three steps bit-exactly (PIL's fixed-point bicubic,
 * in the image's own mode: gray, gray+alpha, RGB, RGBA premultiplied, palette nearest),
 * giving [S, S, 3] uint8; image_normalize() does the last two.
 * Decoding is stb_image (from the system's libstb-dev). Limits (checked before any large
 * allocation): IMAGE_MAX_SIDE per side and IMAGE_MAX_PIXELS in all.
 */
#ifndef CLIP_IO_IMAGE_H
#define CLIP_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_SIDE 32768
#define IMAGE_MAX_PIXELS (64u * 1024u * 1024u)

/* rgb_out: [size, size, 3]. Returns CLIP_OK or CLIP_ERR_IO / CLIP_ERR_IMAGE / CLIP_ERR_NOMEM
 * with a message naming the file. */
int image_load_crop(const char *path, int size, uint8_t *rgb_out);
int image_load_crop_memory(const void *data, size_t n_bytes, const char *label, int size,
                           uint8_t *rgb_out);

/* rgb: [size, size, 3] uint8 -> chw_out: [3, size, size], (v / 255 - mean[c]) / std[c]. */
void image_normalize(const uint8_t *rgb, int size, const float mean[3], const float std[3],
                     float *chw_out);

#endif

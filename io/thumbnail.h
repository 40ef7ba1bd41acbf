/* thumbnail.h - a small JPEG of an image, for pages that show search results.
 *
 * The thumbnail is what the model sees: the image resized and centre-cropped to a square
 * exactly as the CLIP preprocessing does (io/image.c), then JPEG-encoded with
 * stb_image_write, so every limit and check of the image reader applies.
 */
#ifndef CLIP_IO_THUMBNAIL_H
#define CLIP_IO_THUMBNAIL_H

#include <stddef.h>

/* *jpeg: malloc'ed JPEG bytes of a side x side thumbnail (16 <= side <= 1024). */
int image_thumbnail_jpeg(const char *path, int side, unsigned char **jpeg, size_t *n);

/* Standard base64 (RFC 4648) of n bytes: a malloc'ed NUL-terminated string, or NULL. */
char *base64_encode(const unsigned char *data, size_t n);

#endif

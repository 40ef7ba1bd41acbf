/* stb_image_impl.c - the one compiled copy of stb_image, from the system's libstb-dev.
 *
 * Configured for what io/image.c needs: decoding from memory only (image.c reads the
 * file itself, with a size limit), the formats we support (JPEG, PNG, BMP, GIF, PGM/PPM),
 * and a dimension limit. That limit is deliberately above IMAGE_MAX_SIDE: stbi_info then
 * still reports the size of an oversized image, so image.c can refuse it by name with a
 * clear message before decoding; stb itself refuses anything beyond 1 << 24 per side.
 * Warnings of the third-party code are silenced here only.
 */
#define STBI_NO_STDIO
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_MAX_DIMENSIONS (1 << 24)
/* stb's internal consistency asserts must never abort the program on a corrupt file: the
 * decoder reports such files as errors, and io/image.c refuses the known bad ones first. */
#define STBI_ASSERT(x) ((void)0)
#define STB_IMAGE_IMPLEMENTATION

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#endif

#include <stb/stb_image.h>

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

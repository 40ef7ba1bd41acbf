/* fuzz_image.c - libFuzzer target: an image file from a stranger.
 *
 * The input bytes are an image file (JPEG, PNG, BMP, GIF, PGM/PPM or anything else). They
 * go through image_load_crop_memory() (io/image.c): format sniffing, the size limits,
 * Pillow-mode detection, stb_image decoding, GIF/PNM completion, and the PIL-exact
 * resize + crop (io/resample.c) to one of a few output sizes, picked by the input length
 * so every input is tried at one size: 1 (the degenerate crop), 7 (odd, tiny) and 33 (odd,
 * upscaling most seeds). Seeds: tests/fuzz/corpus/image (tests/fuzz/make_seeds.py).
 */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "../../io/image.h"
#include "../../io/error.h"
#include "../../model/clip.h"

/* Every failure must leave a message: clear it before each input, check it after. */
static void clear_error(void) { clip_fail(CLIP_OK, "%s", ""); }
static int has_error(void) { return strcmp(clip_last_error(), "no error") != 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int sizes[] = {1, 7, 33};
    const int crop = sizes[size % 3];
    uint8_t rgb[33 * 33 * 3];
    clear_error();
    int rc = image_load_crop_memory(data, size, "fuzz.img", crop, rgb);
    if (rc != CLIP_OK) {
        if (!has_error()) __builtin_trap();
        return 0;
    }
    /* Every output byte was written: reading them lets MSan/valgrind-style checks and
     * UBSan see any uninitialised or garbage path. */
    unsigned sum = 0;
    for (int i = 0; i < crop * crop * 3; i++) sum += rgb[i];
    return sum == 0xFFFFFFFFu;
}

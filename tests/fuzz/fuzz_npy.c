/* fuzz_npy.c - libFuzzer target: a .npy file from a stranger.
 *
 * The input bytes are a whole .npy file; they go through npy_read_memory() (io/npy.c):
 * magic and version, header length, the header dict (descr, fortran_order, shape) and the
 * data size against the bytes present. An array that loads must hold exactly n_elems
 * elements, which are all read. Seeds: tests/fuzz/corpus/npy (tests/fuzz/make_seeds.py).
 */
#include <stdint.h>
#include <string.h>

#include "../../io/npy.h"
#include "../../io/error.h"
#include "../../model/clip.h"

/* Every failure must leave a message: clear it before each input, check it after. */
static void clear_error(void) { clip_fail(CLIP_OK, "%s", ""); }
static int has_error(void) { return strcmp(clip_last_error(), "no error") != 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    npy_array a;
    clear_error();
    if (npy_read_memory(data, size, "fuzz.npy", &a) != CLIP_OK) {
        if (!has_error()) __builtin_trap();
        npy_free(&a);
        return 0;
    }
    size_t n = 1;
    for (int d = 0; d < a.n_dims; d++) n *= (size_t)a.dims[d];
    if (n != a.n_elems || a.n_dims < 0 || a.n_dims > NPY_MAX_DIMS) __builtin_trap();
    static const size_t item[] = {[NPY_F32] = 4, [NPY_F64] = 8, [NPY_U8] = 1, [NPY_I32] = 4, [NPY_I64] = 8};
    unsigned char sum = 0;
    const unsigned char *bytes = a.data;
    for (size_t i = 0; i < a.n_elems * item[a.dtype]; i++) sum ^= bytes[i];
    npy_free(&a);
    return sum == 0xFF && a.n_elems == 0; /* never true: keeps the loop */
}

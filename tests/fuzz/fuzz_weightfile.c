/* fuzz_weightfile.c - libFuzzer target: a .clip weight file from a stranger.
 *
 * The input bytes are a whole .clip file (docs/FORMAT.md). They go through the public
 * clip_model_load(), so everything a model file reaches is fuzzed: the header and section
 * bounds, the config and its relations, the tokenizer section, the tensor directory
 * (io/weightfile.c) and tensor binding and shape checks (model/bind.c). A model that loads
 * is then used to tokenize a text, which builds the tokenizer's tables (tokenizer_new, on
 * first use) and walks the vocabulary and merges they accepted.
 *
 * clip_model_load() maps a file by path, so the bytes are written to an anonymous
 * in-memory file (memfd) and opened as /proc/self/fd/N: no disk traffic per input.
 * Seeds: tests/fuzz/corpus/weightfile (tests/fuzz/make_seeds.py).
 */
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../io/error.h"
#include "../../model/clip.h"

/* Every failure must leave a message: clear it before each input, check it after. */
static void clear_error(void) { clip_fail(CLIP_OK, "%s", ""); }
static int has_error(void) { return strcmp(clip_last_error(), "no error") != 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd = -1;
    if (fd < 0) fd = memfd_create("fuzz.clip", 0);
    if (fd < 0) return 0;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    clear_error();
    clip_model *model = NULL;
    if (clip_model_load(path, &model) != CLIP_OK) {
        if (!has_error()) __builtin_trap();
        return 0;
    }
    const clip_config *cfg = clip_model_config(model);
    int32_t ids[8192];
    static const char text[] = "a photo of a cat, don't 123 &amp; \xc3\xa9t\xc3\xa9!";
    if (cfg->text_context <= 8192 && clip_tokenize(model, text, sizeof text - 1, ids) == CLIP_OK) {
        for (int i = 0; i < cfg->text_context; i++)
            if (ids[i] < 0 || ids[i] >= cfg->text_vocab) __builtin_trap();
    }
    clip_model_free(model);
    return 0;
}

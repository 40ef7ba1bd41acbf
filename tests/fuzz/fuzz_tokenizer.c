/* fuzz_tokenizer.c - libFuzzer target: text from a stranger, with CLIP's real vocabulary.
 *
 * The input bytes are one text (any bytes: invalid UTF-8, NULs, HTML entities, huge
 * words). They go through clip_tokenize() -> tokenizer_encode() (tokenizer/): the ftfy-style
 * fixes, HTML unescaping, whitespace cleanup, lowercasing, pre-tokenization, byte-to-unicode
 * and BPE merges with the 49408-token vocabulary, into text_context ids.
 *
 * The vocabulary comes from the golden-tiny model converted by the test suite
 * ($CLIP_FUZZ_MODEL, default build/test-models/golden-openai.clip; tests/fuzz/run.sh sets it).
 * The tokenizer keeps scratch buffers from one text to the next, so a bug that needs
 * empty (never allocated) buffers would hide behind earlier inputs: every fourth input
 * (by length) is also encoded by a fresh tokenizer, built from the small vocabulary of the
 * tiny seed model ($CLIP_FUZZ_SMALL_MODEL, default tests/fuzz/corpus/weightfile/
 * tiny-quickgelu.clip) because building the full one takes too long to do often.
 * Seeds: tests/fuzz/corpus/tokenizer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../model/clip.h"
#include "../../model/model.h"

static clip_model *model, *small_model;

static clip_model *load(const char *env, const char *fallback) {
    const char *path = getenv(env);
    clip_model *m;
    if (clip_model_load(path ? path : fallback, &m) != CLIP_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", clip_last_error());
        exit(1);
    }
    return m;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    model = load("CLIP_FUZZ_MODEL", "build/test-models/golden-openai.clip");
    small_model = load("CLIP_FUZZ_SMALL_MODEL", "tests/fuzz/corpus/weightfile/tiny-quickgelu.clip");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const clip_config *cfg = clip_model_config(model);
    int32_t ids[77];
    if (cfg->text_context != 77) __builtin_trap();
    if (size % 4 == 0) {
        const wf_tokenizer *wt = &small_model->file.tokenizer;
        tokenizer_vocab vocab = {wt->n_vocab, wt->tokens, wt->token_lens, wt->n_merges,
                                 wt->merges, wt->sot_id, wt->eot_id};
        clip_tokenizer *fresh;
        if (tokenizer_new(&vocab, &fresh) != CLIP_OK) __builtin_trap();
        tokenizer_encode(fresh, (const char *)data, size, ids, 77);
        tokenizer_free(fresh);
    }
    if (clip_tokenize(model, (const char *)data, size, ids) != CLIP_OK) return 0;
    /* [sot, tokens..., eot, 0...]: the contract of clip_tokenize. The text itself may
     * hold the special tokens' strings, so sot and eot can also appear in the middle. */
    if (ids[0] != cfg->sot_id) __builtin_trap();
    int has_end = 0;
    for (int i = 1; i < 77; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->text_vocab) __builtin_trap();
        has_end |= ids[i] == cfg->eot_id;
    }
    if (!has_end) __builtin_trap();
    return 0;
}

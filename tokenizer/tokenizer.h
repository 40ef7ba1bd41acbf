/* tokenizer.h - CLIP's byte-level BPE tokenizer, bit-identical to the reference.
 *
 * text bytes -> ftfy-style fixes, HTML unescape, whitespace cleanup, lowercase
 *            -> pre-tokenization (specials, contractions, letters, digits, other runs)
 *            -> bytes to unicode symbols -> BPE merges by rank -> ids
 *            -> [sot, ids..., eot, 0, 0, ...]  (context_len ids, truncated keeping eot)
 */
#ifndef CLIP_TOKENIZER_H
#define CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct clip_tokenizer clip_tokenizer;

/* The vocabulary as stored in the weight file (docs/FORMAT.md, tokenizer section). */
typedef struct {
    uint32_t n_vocab;
    const char *const *tokens;   /* [n_vocab] byte-to-unicode encoded strings, e.g. "a</w>" */
    const uint32_t *token_lens;  /* [n_vocab] bytes */
    uint32_t n_merges;
    const uint32_t *merges;      /* [n_merges * 3]: left, right, merged ids; rank = index */
    uint32_t sot_id, eot_id;
} tokenizer_vocab;

/* Builds lookup tables; validates ids and strings. The vocab memory must outlive nothing:
 * the tokenizer copies what it needs. */
int tokenizer_new(const tokenizer_vocab *vocab, clip_tokenizer **out);
void tokenizer_free(clip_tokenizer *tok);

/* Encodes len bytes of text into exactly context_len ids (see above). Returns the number
 * of ids before padding (>= 2), or a negative CLIP_ERR_* code. A tokenizer keeps scratch
 * buffers: use one per thread. */
int tokenizer_encode(clip_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                     int context_len);
/* The same; *truncated (if not NULL) = 1 when tokens were dropped to fit context_len. */
int tokenizer_encode_check(clip_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                           int context_len, int *truncated);

#endif

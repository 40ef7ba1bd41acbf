/* pretokenize.h - CLIP's pre-tokenization pattern over lower-cased code-point text.
 *
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * compiled with IGNORECASE by the regex module (see pretokenize.c).
 */
#ifndef CLIP_TOKENIZER_PRETOKENIZE_H
#define CLIP_TOKENIZER_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

enum {
    PRETOK_END = 0,  /* no more tokens */
    PRETOK_WORD = 1, /* text[start..end) goes through BPE */
    PRETOK_SOT = 2,  /* the literal <|startoftext|> */
    PRETOK_EOT = 3,  /* the literal <|endoftext|> */
};

/* Finds the next token at or after *pos, as re.findall does; advances *pos past it. */
int pretok_next(const uint32_t *text, size_t n, size_t *pos, size_t *start, size_t *end);

#endif

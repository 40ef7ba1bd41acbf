/* tok_vocab.h - CLIP's vocabulary built from a merges file, as SimpleTokenizer does.
 *
 * Order of ids: the 256 byte symbols in bytes_to_unicode order, the same 256 with "</w>",
 * one token per merge (left + right), then <|startoftext|> and <|endoftext|>. The file's
 * first line ("#version: ...") is skipped; `n_merges` lines are used (48894 for CLIP).
 * Used by tests/test_tokenizer.c and bench/tokenizer/tok_bench.c, so neither needs the
 * converter or the weight-file loader.
 */
#ifndef CLIP_TESTS_TOK_VOCAB_H
#define CLIP_TESTS_TOK_VOCAB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tokenizer/tokenizer.h"

typedef struct {
    tokenizer_vocab v;
    char **tokens;
    uint32_t *lens, *merges;
    uint32_t *slots; /* string -> id + 1, open addressing, for building */
    size_t mask;
} tok_vocab;

static inline int tok_vocab_printable(unsigned b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

static inline uint32_t tok_vocab_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static inline uint32_t tok_vocab_get(const tok_vocab *tv, const char *s, size_t n) {
    for (size_t h = tok_vocab_hash(s, n) & tv->mask; tv->slots[h]; h = (h + 1) & tv->mask) {
        uint32_t id = tv->slots[h] - 1;
        if (tv->lens[id] == n && memcmp(tv->tokens[id], s, n) == 0) return id;
    }
    return UINT32_MAX;
}

static inline uint32_t tok_vocab_add(tok_vocab *tv, const char *s, size_t n) {
    uint32_t id = tv->v.n_vocab++;
    tv->tokens[id] = malloc(n + 1);
    memcpy(tv->tokens[id], s, n);
    tv->tokens[id][n] = 0;
    tv->lens[id] = (uint32_t)n;
    size_t h = tok_vocab_hash(s, n) & tv->mask;
    while (tv->slots[h]) h = (h + 1) & tv->mask;
    tv->slots[h] = id + 1;
    return id;
}

/* Returns 0, or -1 with a message on stderr. */
static inline int tok_vocab_load(tok_vocab *tv, const char *merges_path, uint32_t n_merges) {
    memset(tv, 0, sizeof *tv);
    FILE *f = fopen(merges_path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", merges_path);
        return -1;
    }
    size_t cap = 512 + (size_t)n_merges + 2;
    tv->tokens = calloc(cap, sizeof *tv->tokens);
    tv->lens = calloc(cap, sizeof *tv->lens);
    tv->merges = calloc((size_t)n_merges * 3 + 1, sizeof *tv->merges);
    size_t slots = 1024;
    while (slots < cap * 2) slots *= 2;
    tv->slots = calloc(slots, sizeof *tv->slots);
    tv->mask = slots - 1;
    unsigned sym[256], n = 0, extra = 0;
    for (unsigned b = 0; b < 256; b++)
        if (tok_vocab_printable(b)) sym[n++] = b;
    for (unsigned b = 0; b < 256; b++)
        if (!tok_vocab_printable(b)) sym[n++] = 256 + extra++;
    for (int pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i < 256; i++) {
            char buf[8];
            size_t k;
            if (sym[i] < 0x80) buf[0] = (char)sym[i], k = 1;
            else buf[0] = (char)(0xC0 | sym[i] >> 6), buf[1] = (char)(0x80 | (sym[i] & 63)), k = 2;
            if (pass) memcpy(buf + k, "</w>", 4), k += 4;
            tok_vocab_add(tv, buf, k);
        }
    char line[1024];
    uint32_t r = 0;
    int first = 1;
    while (r < n_merges && fgets(line, sizeof line, f)) {
        if (first) {
            first = 0;
            continue;
        }
        line[strcspn(line, "\r\n")] = 0;
        char *space = strchr(line, ' ');
        if (!space) break;
        size_t ll = (size_t)(space - line), rl = strlen(space + 1);
        uint32_t left = tok_vocab_get(tv, line, ll), right = tok_vocab_get(tv, space + 1, rl);
        if (left == UINT32_MAX || right == UINT32_MAX) break;
        memmove(space, space + 1, rl + 1); /* joined string */
        uint32_t merged = tok_vocab_add(tv, line, ll + rl);
        tv->merges[3 * r] = left, tv->merges[3 * r + 1] = right, tv->merges[3 * r + 2] = merged;
        r++;
    }
    fclose(f);
    if (r != n_merges) {
        fprintf(stderr, "%s: only %u of %u merges readable\n", merges_path, r, n_merges);
        return -1;
    }
    tv->v.sot_id = tok_vocab_add(tv, "<|startoftext|>", 15);
    tv->v.eot_id = tok_vocab_add(tv, "<|endoftext|>", 13);
    tv->v.tokens = (const char *const *)tv->tokens;
    tv->v.token_lens = tv->lens;
    tv->v.n_merges = n_merges;
    tv->v.merges = tv->merges;
    return 0;
}

static inline void tok_vocab_free(tok_vocab *tv) {
    for (uint32_t i = 0; i < tv->v.n_vocab; i++) free(tv->tokens[i]);
    free(tv->tokens);
    free(tv->lens);
    free(tv->merges);
    free(tv->slots);
    memset(tv, 0, sizeof *tv);
}

#endif

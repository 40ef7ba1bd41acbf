/* bpe.h - byte-level BPE of one pre-token, as CLIP's SimpleTokenizer.bpe does it.
 *
 * A word is a run of UTF-8 bytes; its symbols start as one vocabulary id per byte (the
 * last one with "</w>"), then the adjacent pair of lowest merge rank is merged, every
 * occurrence left to right, until no adjacent pair has a rank.
 */
#ifndef CLIP_TOKENIZER_BPE_H
#define CLIP_TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#define BPE_CACHE_SLOTS 4096   /* power of two */
#define BPE_CACHE_WORD 24      /* longest word (bytes) the cache keeps */
#define BPE_SHORT_WORD 48      /* up to this many bytes the direct algorithm is used */

typedef struct {
    uint32_t hash;
    uint8_t len, n_ids;
    unsigned char bytes[BPE_CACHE_WORD];
    uint32_t ids[BPE_CACHE_WORD];
} bpe_cache_slot;

typedef struct { uint32_t rank, pos; } bpe_heap_entry;

typedef struct {
    uint32_t byte_id[256], byte_end_id[256]; /* symbol of a byte, without and with </w> */
    /* Merge table: open addressing on (left << 32 | right); empty slots hold UINT64_MAX. */
    uint64_t *merge_key;
    uint32_t *merge_rank, *merge_id;
    size_t merge_mask;
    bpe_cache_slot *cache;
    /* Scratch for one word, grown on demand (never per word): symbols, links, heap. */
    size_t cap;
    uint32_t *sym, *out;
    int32_t *next, *prev;
    bpe_heap_entry *heap, *pending;
} bpe_model;

/* Sets up the merge table for n_merges (left, right, merged) canonical ids; rank = index.
 * A pair listed twice keeps its last rank, as a Python dict would. */
int bpe_init(bpe_model *m, const uint32_t *merges, uint32_t n_merges);
void bpe_free(bpe_model *m);

/* BPE of bytes[0..len) (len >= 1). On success *ids points to *n_ids ids inside the model,
 * valid until the next call. force_long selects the algorithm for long words (tests). */
int bpe_word(bpe_model *m, const unsigned char *bytes, size_t len, const uint32_t **ids,
             size_t *n_ids, int force_long);

#endif

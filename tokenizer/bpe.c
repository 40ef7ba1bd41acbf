/* bpe.c - merging byte symbols into vocabulary ids by merge rank.
 *
 * Data: a hash table from an adjacent pair of ids to (rank, merged id), a direct-mapped
 * cache from word bytes to ids, and per-model scratch arrays sized for the longest word
 * seen so far.
 *
 * The reference loop (SimpleTokenizer.bpe) is: find the lowest-ranked pair present;
 * merge all its occurrences in one left-to-right pass; repeat. Short words run exactly
 * that loop. Long words (a megabyte of letters is legal input) would make it quadratic,
 * so they use a heap of (rank, position) and process one rank at a time: all current
 * occurrences of the lowest rank are merged left to right, and only then are the pairs
 * created by those merges added. A merge creates pairs containing the merged symbol,
 * which is longer than either half, so it never recreates the pair being merged; hence
 * the two algorithms give the same result.
 */
#include "bpe.h"

#include <stdlib.h>
#include <string.h>

#include "../io/error.h"

#define DEAD UINT32_MAX

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

int bpe_init(bpe_model *m, const uint32_t *merges, uint32_t n_merges) {
    size_t cap = 16;
    while (cap < (size_t)n_merges * 2) cap *= 2;
    m->merge_key = malloc(cap * sizeof *m->merge_key);
    m->merge_rank = malloc(cap * sizeof *m->merge_rank);
    m->merge_id = malloc(cap * sizeof *m->merge_id);
    m->cache = calloc(BPE_CACHE_SLOTS, sizeof *m->cache);
    if (!m->merge_key || !m->merge_rank || !m->merge_id || !m->cache)
        return clip_fail(CLIP_ERR_NOMEM, "tokenizer: out of memory for %u merges", n_merges);
    memset(m->merge_key, 0xFF, cap * sizeof *m->merge_key);
    m->merge_mask = cap - 1;
    for (uint32_t r = 0; r < n_merges; r++) {
        uint64_t key = (uint64_t)merges[3 * r] << 32 | merges[3 * r + 1];
        size_t h = mix64(key) & m->merge_mask;
        while (m->merge_key[h] != UINT64_MAX && m->merge_key[h] != key) h = (h + 1) & m->merge_mask;
        m->merge_key[h] = key;
        m->merge_rank[h] = r;
        m->merge_id[h] = merges[3 * r + 2];
    }
    return 0;
}

void bpe_free(bpe_model *m) {
    free(m->merge_key);
    free(m->merge_rank);
    free(m->merge_id);
    free(m->cache);
    free(m->sym);
    free(m->out);
    free(m->next);
    free(m->prev);
    free(m->heap);
    free(m->pending);
    memset(m, 0, sizeof *m);
}

/* Rank of the pair (left, right), or DEAD if it is not a merge; *merged gets its id. */
static inline uint32_t pair_rank(const bpe_model *m, uint32_t left, uint32_t right, uint32_t *merged) {
    uint64_t key = (uint64_t)left << 32 | right;
    size_t h = mix64(key) & m->merge_mask;
    for (;;) {
        uint64_t k = m->merge_key[h];
        if (k == key) {
            *merged = m->merge_id[h];
            return m->merge_rank[h];
        }
        if (k == UINT64_MAX) return DEAD;
        h = (h + 1) & m->merge_mask;
    }
}

static int reserve(bpe_model *m, size_t len) {
    if (len <= m->cap) return 0;
    size_t cap = m->cap ? m->cap : 64;
    while (cap < len) cap *= 2;
    uint32_t *sym = realloc(m->sym, cap * sizeof *sym);
    if (sym) m->sym = sym;
    uint32_t *out = realloc(m->out, cap * sizeof *out);
    if (out) m->out = out;
    int32_t *next = realloc(m->next, cap * sizeof *next);
    if (next) m->next = next;
    int32_t *prev = realloc(m->prev, cap * sizeof *prev);
    if (prev) m->prev = prev;
    bpe_heap_entry *heap = realloc(m->heap, 3 * cap * sizeof *heap);
    if (heap) m->heap = heap;
    bpe_heap_entry *pending = realloc(m->pending, 2 * cap * sizeof *pending);
    if (pending) m->pending = pending;
    if (!sym || !out || !next || !prev || !heap || !pending)
        return clip_fail(CLIP_ERR_NOMEM, "tokenizer: out of memory for a %zu-byte word", len);
    m->cap = cap;
    return 0;
}

/* The reference loop, for short words: symbols in m->sym[0..n). Returns the new n. */
static size_t merge_direct(const bpe_model *m, uint32_t *sym, size_t n) {
    while (n > 1) {
        uint32_t best = DEAD, best_left = 0, best_right = 0, best_id = 0, merged;
        for (size_t i = 0; i + 1 < n; i++) {
            uint32_t r = pair_rank(m, sym[i], sym[i + 1], &merged);
            if (r < best) {
                best = r;
                best_left = sym[i];
                best_right = sym[i + 1];
                best_id = merged;
            }
        }
        if (best == DEAD) break;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n && sym[i] == best_left && sym[i + 1] == best_right) {
                sym[o++] = best_id;
                i++;
            } else {
                sym[o++] = sym[i];
            }
        }
        n = o;
    }
    return n;
}

static inline int heap_less(bpe_heap_entry a, bpe_heap_entry b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}
static void heap_push(bpe_heap_entry *h, size_t *n, bpe_heap_entry e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(e, h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}
static bpe_heap_entry heap_pop(bpe_heap_entry *h, size_t *n) {
    bpe_heap_entry top = h[0], last = h[--*n];
    size_t i = 0, count = *n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= count) break;
        if (child + 1 < count && heap_less(h[child + 1], h[child])) child++;
        if (!heap_less(h[child], last)) break;
        h[i] = h[child];
        i = child;
    }
    if (count) h[i] = last;
    return top;
}

/* The heap algorithm for long words; same result as merge_direct. */
static size_t merge_heap(bpe_model *m, size_t n) {
    uint32_t *sym = m->sym;
    int32_t *next = m->next, *prev = m->prev;
    bpe_heap_entry *heap = m->heap, *pending = m->pending;
    size_t n_heap = 0, merged;
    uint32_t id = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
        uint32_t r = i + 1 < n ? pair_rank(m, sym[i], sym[i + 1], &id) : DEAD;
        if (r != DEAD) heap_push(heap, &n_heap, (bpe_heap_entry){r, (uint32_t)i});
    }
    while (n_heap) {
        uint32_t round = heap[0].rank;
        size_t n_pending = 0;
        while (n_heap && heap[0].rank == round) {
            bpe_heap_entry e = heap_pop(heap, &n_heap);
            uint32_t left = e.pos;
            int32_t right = next[left];
            /* Stale if either side was merged since: the pair no longer has this rank. */
            if (sym[left] == DEAD || right < 0 || pair_rank(m, sym[left], sym[right], &id) != round)
                continue;
            sym[left] = id;
            sym[right] = DEAD;
            next[left] = next[right];
            if (next[right] >= 0) prev[next[right]] = (int32_t)left;
            if (prev[left] >= 0) pending[n_pending++] = (bpe_heap_entry){0, (uint32_t)prev[left]};
            if (next[left] >= 0) pending[n_pending++] = (bpe_heap_entry){0, left};
        }
        for (size_t k = 0; k < n_pending; k++) {
            uint32_t pos = pending[k].pos;
            if (sym[pos] == DEAD || next[pos] < 0) continue;
            uint32_t r = pair_rank(m, sym[pos], sym[next[pos]], &id);
            if (r != DEAD) heap_push(heap, &n_heap, (bpe_heap_entry){r, pos});
        }
    }
    merged = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) sym[merged++] = sym[i];
    return merged;
}

static uint32_t hash_bytes(const unsigned char *b, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

int bpe_word(bpe_model *m, const unsigned char *bytes, size_t len, const uint32_t **ids,
             size_t *n_ids, int force_long) {
    uint32_t hash = 0;
    bpe_cache_slot *slot = NULL;
    if (len <= BPE_CACHE_WORD && !force_long) {
        hash = hash_bytes(bytes, len);
        slot = &m->cache[hash & (BPE_CACHE_SLOTS - 1)];
        if (slot->len == len && slot->hash == hash && memcmp(slot->bytes, bytes, len) == 0) {
            *ids = slot->ids;
            *n_ids = slot->n_ids;
            return 0;
        }
    }
    int rc = reserve(m, len);
    if (rc) return rc;
    uint32_t *sym = m->sym;
    for (size_t i = 0; i + 1 < len; i++) sym[i] = m->byte_id[bytes[i]];
    sym[len - 1] = m->byte_end_id[bytes[len - 1]];
    size_t n = (len <= BPE_SHORT_WORD && !force_long) ? merge_direct(m, sym, len) : merge_heap(m, len);
    if (slot) {
        slot->hash = hash;
        slot->len = (uint8_t)len;
        slot->n_ids = (uint8_t)n;
        memcpy(slot->bytes, bytes, len);
        memcpy(slot->ids, sym, n * sizeof *sym);
    }
    *ids = sym;
    *n_ids = n;
    return 0;
}

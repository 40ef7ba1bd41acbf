/* checksum_avx2.c - Adler-32 over 32 bytes per step (see checksum.c for the definition).
 *
 * For a run of k blocks of 32 bytes, starting from (a, b):
 *   a' = a + sum of all bytes
 *   b' = b + 32k a + sum over blocks t of [ 32 (k - 1 - t) S_t + sum_i (32 - i) x_{t,i} ]
 * where S_t is block t's byte sum. The vector loop keeps the running block sums (for a'),
 * their prefix total (for the 32 (k - 1 - t) S_t term) and the weighted sums, and the
 * modulo is taken once per run, short enough that no 32-bit lane overflows.
 */
#include <immintrin.h>

#include "kernels.h"

#define ADLER_MOD 65521u
#define BLOCKS_PER_RUN 128 /* 4096 bytes: every lane stays far below 2^32 */

static uint64_t hsum_epi32(__m256i v) {
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, v);
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s += lanes[i];
    return s;
}

uint32_t adler32_avx2(uint32_t adler, const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t a = adler & 0xffff, b = adler >> 16;
    const __m256i weights = _mm256_setr_epi8(32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19,
                                             18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4,
                                             3, 2, 1);
    const __m256i ones16 = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
    while (n >= 32) {
        size_t k = n / 32 < BLOCKS_PER_RUN ? n / 32 : BLOCKS_PER_RUN;
        __m256i sums = zero, prefix = zero, weighted = zero;
        for (size_t t = 0; t < k; t++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(p + 32 * t));
            prefix = _mm256_add_epi32(prefix, sums);
            sums = _mm256_add_epi32(sums, _mm256_sad_epu8(x, zero));
            weighted = _mm256_add_epi32(
                weighted, _mm256_madd_epi16(_mm256_maddubs_epi16(x, weights), ones16));
        }
        b += 32 * k * a + 32 * hsum_epi32(prefix) + hsum_epi32(weighted);
        a += hsum_epi32(sums);
        a %= ADLER_MOD;
        b %= ADLER_MOD;
        p += 32 * k;
        n -= 32 * k;
    }
    return adler32_scalar((uint32_t)(b << 16 | a), p, n);
}

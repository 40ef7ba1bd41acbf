/* checksum_neon.c - Adler-32 over 16 bytes per step (see checksum.c for the definition).
 *
 * For a run of k blocks of 16 bytes, starting from (a, b):
 *   a' = a + sum of all bytes
 *   b' = b + 16k a + sum over blocks t of [ 16 (k - 1 - t) S_t + sum_i (16 - i) x_{t,i} ]
 * where S_t is block t's byte sum. The vector loop keeps the running block sums (for a'),
 * their prefix total (for the 16 (k - 1 - t) S_t term) and the weighted sums, each in four
 * 32-bit lanes; the modulo is taken once per run of 256 blocks (4 KB), short enough that
 * no lane overflows (the prefix lanes stay below 256^2 / 2 * 1020 < 2^26).
 */
#include <arm_neon.h>

#include "kernels.h"

#define ADLER_MOD 65521u
#define BLOCKS_PER_RUN 256

uint32_t adler32_neon(uint32_t adler, const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t a = adler & 0xffff, b = adler >> 16;
    static const uint8_t weight_bytes[16] = {16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    const uint8x16_t weights = vld1q_u8(weight_bytes);
    while (n >= 16) {
        const size_t k = n / 16 < BLOCKS_PER_RUN ? n / 16 : BLOCKS_PER_RUN;
        uint32x4_t sums = vdupq_n_u32(0), prefix = sums, weighted = sums;
        for (size_t t = 0; t < k; t++) {
            const uint8x16_t x = vld1q_u8(p + 16 * t);
            prefix = vaddq_u32(prefix, sums);
            sums = vpadalq_u16(sums, vpaddlq_u8(x));                     /* byte sums */
            /* each product <= 255 * 16, two per 16-bit lane: no overflow */
            const uint16x8_t products = vmlal_high_u8(vmull_u8(vget_low_u8(x), vget_low_u8(weights)), x, weights);
            weighted = vpadalq_u16(weighted, products);
        }
        b += 16 * k * a + 16 * (uint64_t)vaddvq_u32(prefix) + vaddvq_u32(weighted);
        a += vaddvq_u32(sums);
        a %= ADLER_MOD;
        b %= ADLER_MOD;
        p += 16 * k;
        n -= 16 * k;
    }
    return adler32_scalar((uint32_t)(b << 16 | a), p, n);
}

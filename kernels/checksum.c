/* checksum.c - Adler-32, the checksum the .clip format stores for every tensor.
 *
 * a = 1 + sum of the bytes, b = sum of the successive values of a, both mod 65521;
 * the result is b << 16 | a (zlib's definition, so Python's zlib.adler32 agrees). The
 * scalar reference defers the modulo: 5552 bytes is the longest run for which b cannot
 * overflow 32 bits. The AVX2 and NEON versions (checksum_avx2.c, checksum_neon.c) run at
 * memory speed; adler32() dispatches (cpu.c).
 */
#include "kernels.h"

#define ADLER_MOD 65521u
#define ADLER_NMAX 5552

uint32_t adler32_scalar(uint32_t adler, const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t a = adler & 0xffff, b = adler >> 16;
    while (n > 0) {
        size_t run = n < ADLER_NMAX ? n : ADLER_NMAX;
        n -= run;
        while (run--) {
            a += *p++;
            b += a;
        }
        a %= ADLER_MOD;
        b %= ADLER_MOD;
    }
    return b << 16 | a;
}

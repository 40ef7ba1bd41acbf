/* test_checksum.c - Adler-32: scalar reference against the definition, each SIMD version
 * this CPU has (AVX2, NEON) against the scalar on odd sizes, starting values and
 * worst-case (all 0xff) data; and the weight file's checksums catching a flipped bit. */
#include "../io/weightfile.h"
#include "../kernels/kernels.h"
#include "../model/clip.h"
#include "testutil.h"

/* The definition, one byte and one modulo at a time. */
static uint32_t adler_definition(uint32_t adler, const unsigned char *p, size_t n) {
    uint32_t a = adler & 0xffff, b = adler >> 16;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return b << 16 | a;
}

static const size_t sizes[] = {0, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 4095, 4096, 4097,
                               5551, 5552, 5553, 65537, 1 << 20};

static unsigned char *test_bytes(size_t n, int fill) {
    unsigned char *p = malloc(n + 1);
    unsigned seed = 99;
    for (size_t i = 0; i < n; i++) {
        test_rand(&seed);
        p[i] = fill >= 0 ? (unsigned char)fill : (unsigned char)(seed >> 13);
    }
    return p;
}

START_TEST(scalar_matches_definition) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int fill = -1; fill <= 255; fill += 256) {
            unsigned char *p = test_bytes(sizes[s], fill);
            ck_assert_uint_eq(adler32_scalar(1, p, sizes[s]), adler_definition(1, p, sizes[s]));
            ck_assert_uint_eq(adler32_scalar(0xfff0fff0u % 65521, p, sizes[s]),
                              adler_definition(0xfff0fff0u % 65521, p, sizes[s]));
            free(p);
        }
    /* zlib's published value for "Wikipedia". */
    ck_assert_uint_eq(adler32_scalar(1, "Wikipedia", 9), 0x11E60398u);
}
END_TEST

/* The SIMD versions compiled in, and the level each needs. */
static const struct { cpu_level level; uint32_t (*fn)(uint32_t, const void *, size_t); const char *name; } simd[] = {
#if defined(CLIP_KERNELS_X86)
    {CPU_AVX2, adler32_avx2, "avx2"},
#endif
#if defined(CLIP_KERNELS_ARM)
    {CPU_NEON, adler32_neon, "neon"},
#endif
    {CPU_SCALAR, adler32_scalar, "scalar"},   /* keeps the array non-empty everywhere */
};

START_TEST(simd_matches_scalar) {
    if (!cpu_level_usable(simd[_i].level)) TEST_SKIP("%s: this CPU has no %s", simd[_i].name, simd[_i].name);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int fill = -1; fill <= 255; fill += 256) {
            unsigned char *p = test_bytes(sizes[s] + 3, fill);
            for (int offset = 0; offset < 3; offset++) { /* unaligned starts too */
                uint32_t start = offset == 2 ? (65520u << 16 | 65520u) : 1;
                ck_assert_msg(simd[_i].fn(start, p + offset, sizes[s]) == adler32_scalar(start, p + offset, sizes[s]),
                              "%s Adler-32 of %zu bytes (offset %d) differs from the scalar", simd[_i].name,
                              sizes[s], offset);
            }
            free(p);
        }
    /* the dispatched name runs the best level's version */
    ck_assert_uint_eq(adler32(1, "Wikipedia", 9), 0x11E60398u);
}
END_TEST

START_TEST(damaged_tensor_is_refused) {
    FILE *f = fopen(test_model("golden-openai.clip"), "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    rewind(f);
    unsigned char *bytes = malloc(size);
    ck_assert_int_eq(fread(bytes, 1, size, f), size);
    fclose(f);
    bytes[size - 1000] ^= 0x10; /* one bit inside the last tensor */
    char path[] = "/tmp/clip-damaged-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_eq(write(fd, bytes, size), (ssize_t)size);
    close(fd);
    clip_model *m;
    ck_assert_int_eq(clip_model_load(path, &m), CLIP_OK); /* the structure is intact */
    ck_assert_int_eq(clip_model_verify(m), CLIP_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "checksum mismatch"));
    clip_context *ctx;
    ck_assert_int_eq(clip_context_new(m, 1, 1, &ctx), CLIP_OK);
    int32_t ids[77] = {49406, 320, 49407};
    float embed[64];
    ck_assert_int_eq(clip_encode_texts(ctx, ids, 1, embed), CLIP_ERR_FORMAT);
    clip_context_free(ctx);
    clip_model_free(m);
    unlink(path);
    free(bytes);
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("checksum");
    TCase *tc = tcase_create("checksum");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, scalar_matches_definition);
    tcase_add_loop_test(tc, simd_matches_scalar, 0, (int)(sizeof simd / sizeof simd[0]));
    tcase_add_test(tc, damaged_tensor_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()

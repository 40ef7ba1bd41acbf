/* test_image.c - image decoding and CLIP preprocessing against the golden-tiny references.
 *
 * For every image in ../shared/clip/images/, image_load_crop(64) must reproduce
 * golden-tiny/pixels_u8/<name>.npy ([64, 64, 3] uint8, Pillow 9.4 + torchvision): bit for bit
 * for PNG/GIF/BMP, within 4 levels for JPEG (stb's IDCT is not libjpeg-turbo's), and
 * image_normalize must reproduce pre/<name>.npy ([3, 64, 64] float32). Bad input (missing,
 * empty, non-image, truncated, corrupted, oversized) must give the right error code.
 */
#include "testutil.h"

#include <stdint.h>
#include <unistd.h>

#include "../io/image.h"
#include "../io/npy.h"
#include "../model/clip.h"

#define S 64

static const char *const IMAGES[] = {
    "astronaut_444.jpg",    "coffee_exif_orient6.jpg", "coins_gray.jpg",
    "hubble_rgba.png",      "brick_la.png",            "retina_palette_trns.png",
    "ihc.gif",              "astronaut_crop.bmp",      "coffee_thumb_45x31.png",
    "one_pixel.png",        "strip_900x3.png",
};
#define N_IMAGES (int)(sizeof IMAGES / sizeof IMAGES[0])

static const float MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static int is_jpeg(const char *name) { return strstr(name, ".jpg") != NULL; }

/* golden-tiny/<dir>/<name without extension>.npy */
static void load_golden(const char *dir, const char *image, npy_dtype dtype, int n_values,
                        npy_array *out) {
    char rel[256];
    snprintf(rel, sizeof rel, "golden-tiny/%s/%.*s.npy", dir, (int)(strrchr(image, '.') - image), image);
    const char *path = shared_file(rel);
    ck_assert_msg(npy_read(path, out) == CLIP_OK, "%s: %s", path, clip_last_error());
    ck_assert_int_eq(out->dtype, dtype);
    ck_assert_int_eq((int)out->n_elems, n_values);
}

static void image_path(const char *image, char *path, size_t cap) {
    char rel[256];
    snprintf(rel, sizeof rel, "images/%s", image);
    snprintf(path, cap, "%s", shared_file(rel));
}

START_TEST(test_golden_pixels) {
    const char *image = IMAGES[_i];
    char path[1024];
    image_path(image, path, sizeof path);
    uint8_t rgb[S * S * 3];
    ck_assert_msg(image_load_crop(path, S, rgb) == CLIP_OK, "%s", clip_last_error());

    npy_array ref;
    load_golden("pixels_u8", image, NPY_U8, S * S * 3, &ref);
    const uint8_t *want = ref.data;
    int max_diff = 0, n_diff = 0;
    for (int i = 0; i < S * S * 3; i++) {
        int d = abs((int)rgb[i] - (int)want[i]);
        if (d > max_diff) max_diff = d;
        n_diff += d != 0;
    }
    npy_free(&ref);
    int tolerance = is_jpeg(image) ? 4 : 0;
    ck_assert_msg(max_diff <= tolerance, "%s: %d values differ, by up to %d levels (allowed %d)",
                  image, n_diff, max_diff, tolerance);
}
END_TEST

/* The normalised tensor from our own crop: exact-ish for lossless inputs; for JPEG the
 * crop may be 4 levels off, i.e. 4 / 255 / std. */
START_TEST(test_golden_tensor) {
    const char *image = IMAGES[_i];
    char path[1024];
    image_path(image, path, sizeof path);
    uint8_t rgb[S * S * 3];
    ck_assert_msg(image_load_crop(path, S, rgb) == CLIP_OK, "%s", clip_last_error());
    static float chw[3 * S * S];
    image_normalize(rgb, S, MEAN, STD, chw);

    npy_array ref;
    load_golden("pre", image, NPY_F32, 3 * S * S, &ref);
    ck_assert_int_eq(ref.n_dims, 3);
    ck_assert_int_eq((int)ref.dims[0], 3);
    const float *want = ref.data;
    double max_diff = 0;
    for (int i = 0; i < 3 * S * S; i++) max_diff = fmax(max_diff, fabs((double)chw[i] - want[i]));
    npy_free(&ref);
    double tolerance = is_jpeg(image) ? 4.0 / 255.0 / 0.2613 + 1e-6 : 1e-6;
    ck_assert_msg(max_diff <= tolerance, "%s: max |diff| %g > %g", image, max_diff, tolerance);
}
END_TEST

/* image_normalize alone: the golden uint8 crop must give the golden tensor, for every image. */
START_TEST(test_normalize_matches_torch) {
    const char *image = IMAGES[_i];
    npy_array pix, pre;
    load_golden("pixels_u8", image, NPY_U8, S * S * 3, &pix);
    load_golden("pre", image, NPY_F32, 3 * S * S, &pre);
    static float chw[3 * S * S];
    image_normalize(pix.data, S, MEAN, STD, chw);
    const float *want = pre.data;
    int n_bad = 0;
    for (int i = 0; i < 3 * S * S; i++) n_bad += fabsf(chw[i] - want[i]) > 1e-6f;
    npy_free(&pix);
    npy_free(&pre);
    ck_assert_msg(n_bad == 0, "%s: %d values off by more than 1e-6", image, n_bad);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------------- */

static char tmp_dir[] = "/tmp/clip_test_image_XXXXXX";

static const char *write_tmp(const char *name, const void *bytes, size_t n) {
    static char path[4][1200];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", tmp_dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", p);
    ck_assert_int_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return p;
}

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(*n ? *n : 1);
    ck_assert_int_eq(fread(buf, 1, *n, f), *n);
    fclose(f);
    return buf;
}

static void setup_tmp(void) { ck_assert(mkdtemp(tmp_dir) != NULL); }
static void teardown_tmp(void) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    strcpy(tmp_dir, "/tmp/clip_test_image_XXXXXX");
}

/* The call fails with `code` and a message that names the file. */
static void expect_file_error(const char *path, int code) {
    uint8_t rgb[S * S * 3];
    int rc = image_load_crop(path, S, rgb);
    ck_assert_msg(rc == code, "%s: got %d, want %d (%s)", path, rc, code, clip_last_error());
    ck_assert_msg(strstr(clip_last_error(), path) != NULL, "message does not name the file: %s",
                  clip_last_error());
}

static void expect_memory_error(const void *bytes, size_t n, int code) {
    uint8_t rgb[S * S * 3];
    int rc = image_load_crop_memory(bytes, n, "mem.img", S, rgb);
    ck_assert_msg(rc == code, "got %d, want %d (%s)", rc, code, clip_last_error());
    ck_assert_msg(strstr(clip_last_error(), "mem.img") != NULL, "message does not name the input: %s",
                  clip_last_error());
}

START_TEST(test_missing_file) {
    expect_file_error("../shared/clip/images/no_such_image.png", CLIP_ERR_IO);
    expect_file_error(tmp_dir, CLIP_ERR_IO); /* a directory */
}
END_TEST

START_TEST(test_empty_file) {
    expect_file_error(write_tmp("empty.png", "", 0), CLIP_ERR_IMAGE);
    expect_memory_error("", 0, CLIP_ERR_IMAGE);
}
END_TEST

START_TEST(test_not_an_image) {
    const char text[] = "this is a text file, not an image\n";
    expect_file_error(write_tmp("text.jpg", text, sizeof text - 1), CLIP_ERR_IMAGE);
    /* Right magic, garbage after it. */
    const char fake_png[] = "\x89PNG\r\n\x1a\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    expect_memory_error(fake_png, sizeof fake_png - 1, CLIP_ERR_IMAGE);
    const char fake_jpeg[] = "\xff\xd8\xff\xe0 garbage garbage garbage";
    expect_memory_error(fake_jpeg, sizeof fake_jpeg - 1, CLIP_ERR_IMAGE);
    expect_memory_error("GIF89a", 6, CLIP_ERR_IMAGE);
    expect_memory_error("BM", 2, CLIP_ERR_IMAGE);
    expect_memory_error("P6\n", 3, CLIP_ERR_IMAGE);
}
END_TEST

START_TEST(test_truncated_png) {
    size_t n;
    uint8_t *png = read_all(shared_file("images/hubble_rgba.png"), &n);
    expect_file_error(write_tmp("half.png", png, n / 2), CLIP_ERR_IMAGE);
    expect_memory_error(png, 40, CLIP_ERR_IMAGE);
    free(png);
}
END_TEST

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
static void put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* Headers that claim huge images must be refused before anything is allocated. */
START_TEST(test_huge_headers) {
    uint8_t png[33] = "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR";
    put_be32(png + 16, 100000);
    put_be32(png + 20, 100000);
    png[24] = 8, png[25] = 2;
    expect_file_error(write_tmp("huge.png", png, sizeof png), CLIP_ERR_IMAGE);
    ck_assert_msg(strstr(clip_last_error(), "large") || strstr(clip_last_error(), "limit"),
                  "message does not say the image is too large: %s", clip_last_error());

    const char pnm_huge[] = "P6\n100000 100000\n255\n";
    expect_memory_error(pnm_huge, sizeof pnm_huge - 1, CLIP_ERR_IMAGE);
    /* Each side within IMAGE_MAX_SIDE, the product far beyond IMAGE_MAX_PIXELS. */
    const char pnm_many[] = "P5\n30000 30000\n255\n";
    expect_memory_error(pnm_many, sizeof pnm_many - 1, CLIP_ERR_IMAGE);
    ck_assert_msg(strstr(clip_last_error(), "limit") != NULL, "%s", clip_last_error());

    uint8_t gif[13] = "GIF89a";
    gif[6] = 0xff, gif[7] = 0xff, gif[8] = 0xff, gif[9] = 0xff;
    expect_memory_error(gif, sizeof gif, CLIP_ERR_IMAGE);

    uint8_t bmp[54] = "BM";
    put_le32(bmp + 10, 54);
    put_le32(bmp + 14, 40);
    put_le32(bmp + 18, 100000);
    put_le32(bmp + 22, 100000);
    bmp[26] = 1, bmp[28] = 24;
    expect_memory_error(bmp, sizeof bmp, CLIP_ERR_IMAGE);

    /* A real JPEG whose frame header claims 60000 x 60000. */
    size_t n;
    uint8_t *jpeg = read_all(shared_file("images/astronaut_444.jpg"), &n);
    size_t sof = 2;
    while (sof + 9 < n && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) sof++;
    ck_assert_msg(sof + 9 < n, "no SOF0 marker in astronaut_444.jpg");
    jpeg[sof + 5] = jpeg[sof + 7] = 0xEA, jpeg[sof + 6] = jpeg[sof + 8] = 0x60;
    expect_memory_error(jpeg, n, CLIP_ERR_IMAGE);
    ck_assert_msg(strstr(clip_last_error(), "too large") != NULL, "%s", clip_last_error());
    free(jpeg);

    /* Zero-sized image. */
    const char pnm_empty[] = "P5\n0 10\n255\n";
    expect_memory_error(pnm_empty, sizeof pnm_empty - 1, CLIP_ERR_IMAGE);
}
END_TEST

/* A Huffman table declaring more than 256 codes (the JPEG limit) is refused before stb
 * sees it: the system's stb_image 2.27 would write past its tables first. */
START_TEST(test_jpeg_oversized_huffman_table) {
    size_t n;
    uint8_t *jpeg = read_all(shared_file("images/astronaut_444.jpg"), &n);
    size_t dht = 2;
    while (dht + 21 < n && !(jpeg[dht] == 0xFF && jpeg[dht + 1] == 0xC4)) dht++;
    ck_assert_msg(dht + 21 < n, "no DHT marker in astronaut_444.jpg");
    for (int k = 0; k < 16; k++) jpeg[dht + 5 + k] = 0xFF; /* 16 x 255 codes */
    expect_memory_error(jpeg, n, CLIP_ERR_IMAGE);
    ck_assert_msg(strstr(clip_last_error(), "Huffman") != NULL, "not caught by the guard: %s",
                  clip_last_error());
    free(jpeg);
}
END_TEST

START_TEST(test_bad_size_argument) {
    uint8_t rgb[3];
    char path[1024];
    image_path("one_pixel.png", path, sizeof path);
    ck_assert_int_eq(image_load_crop(path, 0, rgb), CLIP_ERR_ARG);
    ck_assert_int_eq(image_load_crop(path, -5, rgb), CLIP_ERR_ARG);
}
END_TEST

/* Every prefix length class and scattered byte corruptions of every shared image: the
 * result is either a picture or CLIP_ERR_IMAGE, never a crash (run under ASan to see more). */
START_TEST(test_truncated_and_corrupted) {
    const char *image = IMAGES[_i];
    char rel[256];
    snprintf(rel, sizeof rel, "images/%s", image);
    size_t n;
    uint8_t *bytes = read_all(shared_file(rel), &n);
    static uint8_t rgb[S * S * 3];
    const double fractions[] = {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99};
    for (size_t f = 0; f < sizeof fractions / sizeof fractions[0]; f++) {
        size_t len = (size_t)(fractions[f] * n);
        int rc = image_load_crop_memory(bytes, len, image, S, rgb);
        ck_assert_msg(rc == CLIP_OK || rc == CLIP_ERR_IMAGE, "%s cut at %zu: rc %d (%s)", image,
                      len, rc, clip_last_error());
    }
    uint8_t *copy = malloc(n);
    unsigned state = 12345u + (unsigned)_i;
    for (int trial = 0; trial < 12; trial++) {
        memcpy(copy, bytes, n);
        for (int j = 0; j < 8; j++) {
            state = state * 1664525u + 1013904223u;
            size_t at = (size_t)(state >> 8) % (n < 256 ? n : 256 + (trial & 1) * (n - 256));
            copy[at] ^= (uint8_t)(state >> 3) | 1;
        }
        int rc = image_load_crop_memory(copy, n, image, S, rgb);
        ck_assert_msg(rc == CLIP_OK || rc == CLIP_ERR_IMAGE || rc == CLIP_ERR_NOMEM,
                      "%s corrupted (trial %d): rc %d (%s)", image, trial, rc, clip_last_error());
    }
    free(copy);
    free(bytes);
}
END_TEST

/* Inputs that once made the fuzzer (or a sanitizer) complain, kept as regressions. Each has
 * a scan that uses a Huffman table no DHT defined, and must be refused for it by
 * jpeg_huffman_tables_safe (io/image.c) before stb sees the file, with that message. Without
 * the check stb decodes with uninitialised tables, which ASan does not see: it then fails
 * with a message of its own or returns garbage pixels, so "decoded or refused" would pass
 * with the guard removed. */
START_TEST(test_regressions) {
    static const char *files[] = {"tests/data/regressions/stb-jpeg-shift.jpg",
                                  "tests/data/regressions/stb-jpeg-huffman-oob.jpg",
                                  "tests/data/regressions/stb-jpeg-undefined-table.jpg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        uint8_t rgb[33 * 33 * 3];
        int rc = image_load_crop(files[i], 33, rgb);
        ck_assert_msg(rc == CLIP_ERR_IMAGE, "%s: code %d, expected CLIP_ERR_IMAGE", files[i], rc);
        ck_assert_msg(strstr(clip_last_error(), "corrupt JPEG (invalid or missing Huffman table)"),
                      "%s: %s", files[i], clip_last_error());
    }
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("image");
    TCase *golden = tcase_create("golden");
    tcase_set_timeout(golden, 60);
    tcase_add_loop_test(golden, test_golden_pixels, 0, N_IMAGES);
    tcase_add_loop_test(golden, test_golden_tensor, 0, N_IMAGES);
    tcase_add_loop_test(golden, test_normalize_matches_torch, 0, N_IMAGES);
    suite_add_tcase(s, golden);

    TCase *bad = tcase_create("bad_input");
    tcase_set_timeout(bad, 60);
    tcase_add_checked_fixture(bad, setup_tmp, teardown_tmp);
    tcase_add_test(bad, test_missing_file);
    tcase_add_test(bad, test_regressions);
    tcase_add_test(bad, test_empty_file);
    tcase_add_test(bad, test_not_an_image);
    tcase_add_test(bad, test_truncated_png);
    tcase_add_test(bad, test_huge_headers);
    tcase_add_test(bad, test_jpeg_oversized_huffman_table);
    tcase_add_test(bad, test_bad_size_argument);
    tcase_add_loop_test(bad, test_truncated_and_corrupted, 0, N_IMAGES);
    suite_add_tcase(s, bad);
    return s;
}

TEST_MAIN()

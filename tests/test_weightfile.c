/* test_weightfile.c - the .clip loader refuses every corruption cleanly.
 *
 * Starting from a good file (golden-tiny converted by tests/run_tests.sh), we truncate it,
 * flip bytes and point fields outside the file. Every variant must either load (a flip in
 * harmless bytes, such as a token's text or a weight value) or fail with CLIP_ERR_FORMAT
 * and a message naming the file: never crash, never read out of bounds (run this under
 * the sanitizer build to see the latter).
 */
#include "../io/weightfile.h"
#include "../kernels/kernels.h"
#include "../model/clip.h"
#include "testutil.h"

static unsigned char *good;
static size_t good_size;

static void load_good(void) {
    FILE *f = fopen(test_model("golden-openai.clip"), "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    good_size = (size_t)ftell(f);
    rewind(f);
    good = malloc(good_size);
    ck_assert_int_eq(fread(good, 1, good_size, f), good_size);
    fclose(f);
}

static const char *write_variant(const unsigned char *data, size_t size) {
    static char path[64];
    strcpy(path, "/tmp/clip-corrupt-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
    close(fd);
    return path;
}

/* Load through the whole public path (file checks, tensor binding, tokenizer). */
static int try_load(const unsigned char *data, size_t size) {
    const char *path = write_variant(data, size);
    clip_model *model = NULL;
    int rc = clip_model_load(path, &model);
    if (rc == CLIP_OK) {
        clip_model_free(model);
    } else {
        ck_assert_msg(rc == CLIP_ERR_FORMAT, "code %d: %s", rc, clip_last_error());
        ck_assert_msg(strstr(clip_last_error(), path) != NULL, "message without the file: %s",
                      clip_last_error());
    }
    unlink(path);
    return rc;
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Recompute the header checksum after a deliberate change, so that the change reaches
 * the structural checks behind it (a forged file, rather than a damaged one). */
static void reseal(unsigned char *p, size_t size) {
    uint64_t data_off = get_u64(p + 64);
    if (data_off < 16 || data_off > size) return;
    uint32_t sum = adler32(1, p + 16, (size_t)data_off - 16);
    for (int i = 0; i < 4; i++) p[12 + i] = (unsigned char)(sum >> (8 * i));
}

START_TEST(good_file_loads) {
    load_good();
    ck_assert_int_eq(try_load(good, good_size), CLIP_OK);
    weightfile wf;
    ck_assert_int_eq(weightfile_open(test_model("golden-openai.clip"), &wf), CLIP_OK);
    ck_assert_int_eq(wf.config.vision_width, 128);
    ck_assert_int_eq(wf.config.text_heads, 2);
    ck_assert_int_eq(wf.config.text_vocab, 49408);
    ck_assert_int_eq(wf.config.activation, CLIP_ACT_QUICK_GELU);
    ck_assert_int_eq(wf.tokenizer.eot_id, 49407);
    const wf_tensor *t = weightfile_find(&wf, "vision.blocks.1.attn.qkv.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dims[0], 384);
    ck_assert_int_eq((uintptr_t)t->data % 64, 0);
    weightfile_close(&wf);
}
END_TEST

START_TEST(truncations_fail_cleanly) {
    load_good();
    /* Dense cuts through the header and config, then a spread through the rest. */
    for (size_t cut = 0; cut < 4096; cut += 13) ck_assert_int_eq(try_load(good, cut), CLIP_ERR_FORMAT);
    for (size_t cut = 4096; cut < good_size; cut += good_size / 150)
        ck_assert_int_eq(try_load(good, cut), CLIP_ERR_FORMAT);
    ck_assert_int_eq(try_load(good, good_size - 1), CLIP_ERR_FORMAT);
}
END_TEST

START_TEST(byte_flips_never_crash) {
    load_good();
    unsigned char *bad = malloc(good_size);
    unsigned seed = 12345;
    uint64_t data_off = get_u64(good + 64);
    for (int trial = 0; trial < 300; trial++) {
        memcpy(bad, good, good_size);
        /* Aim at the structure (header, config, tokenizer counts, directory). */
        test_rand(&seed);
        size_t at = trial < 100 ? (size_t)trial : (seed >> 8) % (size_t)data_off;
        bad[at] ^= (unsigned char)(1u << (seed % 8));
        if (at >= 16 && trial % 2 == 0) reseal(bad, good_size);
        int rc = try_load(bad, good_size);
        if (trial % 2 == 1 && at >= 12) ck_assert_int_eq(rc, CLIP_ERR_FORMAT); /* the checksum sees it */
    }
    free(bad);
}
END_TEST

START_TEST(named_errors) {
    load_good();
    unsigned char *bad = malloc(good_size);

    memcpy(bad, good, good_size);
    bad[0] = 'X';
    ck_assert_int_eq(try_load(bad, good_size), CLIP_ERR_FORMAT);

    /* A section pointing past the end. */
    memcpy(bad, good, good_size);
    put_u64(bad + 32, good_size + 4096);
    reseal(bad, good_size);
    ck_assert_int_eq(try_load(bad, good_size), CLIP_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "tokenizer"));

    /* The first tensor's offset moved past the end: the message names the tensor. */
    weightfile wf;
    ck_assert_int_eq(weightfile_open(test_model("golden-openai.clip"), &wf), CLIP_OK);
    uint64_t offset = (uint64_t)((const unsigned char *)wf.tensors[0].data - wf.map);
    char name[128];
    strcpy(name, wf.tensors[0].name);
    weightfile_close(&wf);
    uint64_t dir_off = get_u64(good + 48), dir_size = get_u64(good + 56);
    memcpy(bad, good, good_size);
    int patched = 0;
    for (uint64_t i = dir_off; i + 8 <= dir_off + dir_size && !patched; i++)
        if (get_u64(bad + i) == offset) {
            put_u64(bad + i, good_size + 64 * 1000);
            patched = 1;
        }
    ck_assert(patched);
    reseal(bad, good_size);
    ck_assert_int_eq(try_load(bad, good_size), CLIP_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), name));
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "past end"));
    free(bad);
}
END_TEST

/* The byte offset of tensor `name`'s dtype field in the directory of p. */
static size_t dtype_field(const unsigned char *p, const char *name) {
    const size_t len = strlen(name);
    const uint64_t dir_off = get_u64(p + 48), dir_size = get_u64(p + 56);
    for (uint64_t i = dir_off; i + 4 + len + 4 <= dir_off + dir_size; i++)
        if (p[i] == len && !p[i + 1] && !p[i + 2] && !p[i + 3] && memcmp(p + i + 4, name, len) == 0)
            return (size_t)(i + 4 + len);
    ck_abort_msg("tensor %s not found in the directory", name);
    return 0;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Version 2 stores the linear weights in panels (dtype 0x100), everything else row-major;
 * a type other than f32 outside panels, a type in a layout not its own (bf16 is only in
 * pair panels, 0x202), a size that does not fit the type, an unknown type or layout,
 * panels where they do not belong, or panels in a version 1 file are refused with a
 * message naming the tensor. */
START_TEST(dtypes_and_layouts_checked) {
    load_good();
    unsigned char *bad = malloc(good_size);
    const char *qkv = "vision.blocks.0.attn.qkv.weight";
    ck_assert_uint_eq(good[8], 2);
    ck_assert_uint_eq(good[dtype_field(good, qkv)], 0);
    ck_assert_uint_eq(good[dtype_field(good, qkv) + 1], 1);          /* 0x100: panels */
    ck_assert_uint_eq(good[dtype_field(good, "vision.pos_embed") + 1], 0);
    const struct { const char *tensor; uint32_t dtype; const char *message; } cases[] = {
        {qkv, 1, "f16"},                            /* f16 row-major (only panels) */
        {qkv, 0x108, "q8_0"},                       /* q8_0 panels of an f32 panel's size */
        {qkv, 0x10a, "unknown element type"},       /* no type 10 */
        {qkv, 0x200, "f32 in pair panels"},         /* pair panels are bf16's only */
        {qkv, 0x300, "unknown layout"},             /* no layout 3 */
        {qkv, 0x102, "quantize the f32 model again"}, /* bf16 in its old [k][16] panels */
        {qkv, 0x202, "size"},                       /* bf16 pair panels of an f32 panel's size */
        {"vision.class_embed", 0x100, "dimensions"},/* panels of a vector */
        {"text.pos_embed", 0x100, "text.pos_embed"},/* a table other than the token embedding */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(bad, good, good_size);
        put_u32(bad + dtype_field(bad, cases[c].tensor), cases[c].dtype);
        reseal(bad, good_size);
        ck_assert_int_eq(try_load(bad, good_size), CLIP_ERR_FORMAT);
        ck_assert_msg(strstr(clip_last_error(), cases[c].message), "%s %#x: %s", cases[c].tensor,
                      cases[c].dtype, clip_last_error());
    }
    memcpy(bad, good, good_size);                   /* panels in a version 1 file */
    put_u32(bad + 8, 1);
    ck_assert_int_eq(try_load(bad, good_size), CLIP_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "version 1"));
    free(bad);
}
END_TEST

/* The tokenizer's tables are built by the first clip_tokenize, so a vocabulary that fails
 * their checks (here: the symbol of byte '!' renamed, so no token spells it) loads, and
 * then fails that call and every later one with the same message. */
START_TEST(vocabulary_checked_at_first_tokenize) {
    load_good();
    weightfile wf;
    ck_assert_int_eq(weightfile_open(test_model("golden-openai.clip"), &wf), CLIP_OK);
    ck_assert_uint_eq(wf.tokenizer.token_lens[0], 1);
    ck_assert_int_eq(wf.tokenizer.tokens[0][0], '!');
    size_t at = (size_t)((const unsigned char *)wf.tokenizer.tokens[0] - wf.map);
    weightfile_close(&wf);
    unsigned char *bad = malloc(good_size);
    memcpy(bad, good, good_size);
    bad[at] = '"';
    reseal(bad, good_size);
    const char *path = write_variant(bad, good_size);
    clip_model *model = NULL;
    ck_assert_int_eq(clip_model_load(path, &model), CLIP_OK);
    int32_t ids[77];
    char first[512];
    ck_assert_int_eq(clip_tokenize(model, "a cat", 5, ids), CLIP_ERR_FORMAT);
    snprintf(first, sizeof first, "%s", clip_last_error());
    ck_assert_ptr_nonnull(strstr(first, path));
    ck_assert_ptr_nonnull(strstr(first, "byte 0x21"));
    ck_assert_int_eq(clip_tokenize(model, "a dog", 5, ids), CLIP_ERR_FORMAT);
    ck_assert_str_eq(clip_last_error(), first);
    clip_model_free(model);
    unlink(path);
    free(bad);
}
END_TEST

START_TEST(not_a_file) {
    clip_model *m;
    ck_assert_int_eq(clip_model_load("/nonexistent/model.clip", &m), CLIP_ERR_IO);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(clip_model_load("/tmp", &m), CLIP_ERR_IO);
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("weightfile");
    TCase *tc = tcase_create("weightfile");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, good_file_loads);
    tcase_add_test(tc, truncations_fail_cleanly);
    tcase_add_test(tc, byte_flips_never_crash);
    tcase_add_test(tc, named_errors);
    tcase_add_test(tc, dtypes_and_layouts_checked);
    tcase_add_test(tc, vocabulary_checked_at_first_tokenize);
    tcase_add_test(tc, not_a_file);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()

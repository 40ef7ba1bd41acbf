/* test_npy.c - .npy writer/reader round trip, and the reader on NumPy-written goldens. */
#include "../io/npy.h"
#include "../model/clip.h"
#include "testutil.h"

START_TEST(round_trip_odd_shapes) {
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {2, 63, 65}, {1, 1, 4097}};
    unsigned seed = 7;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t n = (size_t)(shapes[s][0] * shapes[s][1] * shapes[s][2]);
        float *data = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) data[i] = test_rand(&seed) * 1e3f;
        char path[] = "/tmp/clip-npy-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(npy_write_f32(path, data, 3, shapes[s]), CLIP_OK);
        npy_array a;
        ck_assert_int_eq(npy_read(path, &a), CLIP_OK);
        ck_assert_int_eq(a.dtype, NPY_F32);
        ck_assert_int_eq(a.n_dims, 3);
        for (int d = 0; d < 3; d++) ck_assert_int_eq(a.dims[d], shapes[s][d]);
        ck_assert_mem_eq(a.data, data, n * sizeof(float));
        /* NumPy's rule: the header ends on a 64-byte boundary. */
        FILE *f = fopen(path, "rb");
        unsigned char pre[10];
        ck_assert_int_eq(fread(pre, 1, 10, f), 10);
        fclose(f);
        ck_assert_int_eq((10 + pre[8] + 256 * pre[9]) % 64, 0);
        npy_free(&a);
        unlink(path);
        free(data);
    }
}
END_TEST

START_TEST(reads_numpy_files) {
    npy_array a;
    ck_assert_int_eq(npy_read(shared_file("golden-tiny/image_embeds.npy"), &a), CLIP_OK);
    ck_assert_int_eq(a.dtype, NPY_F32);
    ck_assert_int_eq(a.n_dims, 2);
    ck_assert_int_eq(a.dims[0], 11);
    ck_assert_int_eq(a.dims[1], 64);
    npy_free(&a);
    ck_assert_int_eq(npy_read(shared_file("golden-tiny/pixels_u8/ihc.npy"), &a), CLIP_OK);
    ck_assert_int_eq(a.dtype, NPY_U8);
    ck_assert_int_eq(a.n_elems, 64 * 64 * 3);
    npy_free(&a);
}
END_TEST

START_TEST(rejects_bad_files) {
    npy_array a;
    const char *cases[] = {
        "",
        "\x93NUMPY",
        "\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
        "\x93NUMPY\x01\x00\x40\x00{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }     ",
        "\x93NUMPY\x01\x00\x40\x00{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }      ",
        "\x93NUMPY\x01\x00\x40\x00{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999,99999999), }",
        "\x93NUMPY\x09\x00\x00\x00",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i]) + (i == 6 ? 0 : 0);
        int rc = npy_read_memory(cases[i], len, "case", &a);
        ck_assert_msg(rc == CLIP_ERR_FORMAT, "case %zu accepted", i);
        ck_assert_ptr_null(a.data);
        ck_assert_ptr_nonnull(strstr(clip_last_error(), "case"));
    }
    ck_assert_int_eq(npy_read("/nonexistent/x.npy", &a), CLIP_ERR_IO);
}
END_TEST

START_TEST(write_failure_leaves_nothing) {
    float v = 1;
    int64_t dims[1] = {1};
    ck_assert_int_eq(npy_write_f32("/nonexistent-dir/out.npy", &v, 1, dims), CLIP_ERR_IO);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "/nonexistent-dir/out.npy"));
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_test(tc, round_trip_odd_shapes);
    tcase_add_test(tc, reads_numpy_files);
    tcase_add_test(tc, rejects_bad_files);
    tcase_add_test(tc, write_failure_leaves_nothing);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()

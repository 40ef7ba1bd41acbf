/* npy.h - NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order).
 *
 * Written by the CLI for embeddings ([N, D] float32) and preprocessed images ([3, S, S]);
 * read for `embed-image x.npy` and by the tests for the golden outputs. Writes go to a
 * temporary file in the same directory, renamed into place only when complete.
 */
#ifndef CLIP_IO_NPY_H
#define CLIP_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

typedef enum { NPY_F32, NPY_F64, NPY_U8, NPY_I32, NPY_I64 } npy_dtype;

#define NPY_MAX_DIMS 8

typedef struct {
    npy_dtype dtype;
    int n_dims;
    int64_t dims[NPY_MAX_DIMS];
    size_t n_elems;
    void *data;     /* malloc'ed, n_elems elements of dtype */
} npy_array;

int npy_read(const char *path, npy_array *out);
int npy_read_memory(const void *bytes, size_t n_bytes, const char *label, npy_array *out);
void npy_free(npy_array *a);
int npy_write_f32(const char *path, const float *data, int n_dims, const int64_t *dims);

#endif

/* atomic.c - temp file + rename (see atomic.h). */
#include "atomic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

int atomic_open(atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path)
        return clip_fail(CLIP_ERR_ARG, "%.64s...: output path too long", path);
    strcpy(af->path, path);
    /* The temp file must be in the same directory, so that rename() is atomic. */
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    snprintf(af->tmp_path, sizeof af->tmp_path, "%.*s.%s.tmp.XXXXXX", dir_len, path,
             path + dir_len);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0)
        return clip_fail(CLIP_ERR_IO, "%s: cannot create output file: %s", path, strerror(errno));
    af->file = fdopen(fd, "wb");
    if (!af->file) {
        close(fd);
        unlink(af->tmp_path);
        return clip_fail(CLIP_ERR_IO, "%s: cannot open output file: %s", path, strerror(errno));
    }
    return CLIP_OK;
}

int atomic_commit(atomic_file *af) {
    int ok = fflush(af->file) == 0 && !ferror(af->file) && fsync(fileno(af->file)) == 0;
    int saved_errno = errno;
    if (fclose(af->file) != 0 && ok) {
        ok = 0;
        saved_errno = errno;
    }
    af->file = NULL;
    if (ok && rename(af->tmp_path, af->path) == 0) return CLIP_OK;
    if (ok) saved_errno = errno;
    unlink(af->tmp_path);
    return clip_fail(CLIP_ERR_IO, "%s: cannot write output file: %s", af->path,
                     strerror(saved_errno));
}

void atomic_abort(atomic_file *af) {
    if (af->file) fclose(af->file);
    af->file = NULL;
    if (af->tmp_path[0]) unlink(af->tmp_path);
    af->tmp_path[0] = 0;
}

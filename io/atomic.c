/* atomic.c - temp file + rename (see atomic.h). */
#include "atomic.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

/* The temp file of the write in progress, for the signal handler: the path is complete
 * before `pending` is set, and cleared after the file is renamed or removed. */
static char pending_path[sizeof ((atomic_file *)0)->tmp_path];
static volatile sig_atomic_t pending;
static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void remove_pending(int sig) {
    if (pending) unlink(pending_path);
    pending = 0;
    raise(sig); /* the handler was reset (SA_RESETHAND): this ends the process as usual */
}

void atomic_cleanup_on_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = remove_pending;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof cleanup_signals[0]; i++) {
        struct sigaction old;
        /* A signal the parent set to be ignored (nohup, background jobs) stays ignored. */
        if (sigaction(cleanup_signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(cleanup_signals[i], &sa, NULL);
    }
}

/* Block the cleanup signals while the temp file comes into being and is registered, so
 * no signal finds a file that exists but is not yet known to the handler. */
static void block_signals(sigset_t *saved) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof cleanup_signals[0]; i++)
        sigaddset(&set, cleanup_signals[i]);
    sigprocmask(SIG_BLOCK, &set, saved);
}

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
    sigset_t saved;
    block_signals(&saved);
    int fd = mkstemp(af->tmp_path);
    int err = errno;
    if (fd >= 0) {
        memcpy(pending_path, af->tmp_path, sizeof pending_path);
        pending = 1;
    }
    sigprocmask(SIG_SETMASK, &saved, NULL);
    if (fd < 0)
        return clip_fail(CLIP_ERR_IO, "%s: cannot create output file: %s", path, strerror(err));
    /* mkstemp makes the file private (0600); give it the permissions a plain fopen would. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    af->file = fdopen(fd, "wb");
    if (!af->file) {
        close(fd);
        pending = 0;
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
    if (ok && rename(af->tmp_path, af->path) == 0) {
        pending = 0;
        return CLIP_OK;
    }
    if (ok) saved_errno = errno;
    pending = 0;
    unlink(af->tmp_path);
    return clip_fail(CLIP_ERR_IO, "%s: cannot write output file: %s", af->path,
                     strerror(saved_errno));
}

void atomic_abort(atomic_file *af) {
    if (af->file) fclose(af->file);
    af->file = NULL;
    pending = 0;
    if (af->tmp_path[0]) unlink(af->tmp_path);
    af->tmp_path[0] = 0;
}

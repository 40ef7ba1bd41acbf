/* atomic.c - output files: temp file + rename for regular files, in place for devices and
 * FIFOs, standard output for "-" (see atomic.h). */
#include "atomic.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
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

/* Follow `path` while it is a symbolic link, to the path of the file it finally names
 * (which need not exist yet: a dangling link is written through, like `>` does). Only the
 * last component matters here: rename() replaces exactly that directory entry. */
static int follow_links(const char *path, char *out, size_t cap) {
    char cur[sizeof ((atomic_file *)0)->path], target[sizeof cur];
    if (strlen(path) >= sizeof cur) return clip_fail(CLIP_ERR_ARG, "%.64s...: output path too long", path);
    strcpy(cur, path);
    for (int hops = 0; hops < 40; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) {
            if (strlen(cur) >= cap) return clip_fail(CLIP_ERR_ARG, "%s: output path too long", path);
            strcpy(out, cur);
            return CLIP_OK;
        }
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n < 0) return clip_fail(CLIP_ERR_IO, "%s: cannot read link: %s", path, strerror(errno));
        target[n] = 0;
        if (target[0] == '/') {
            strcpy(cur, target);
        } else {                            /* relative to the link's own directory */
            const char *slash = strrchr(cur, '/');
            size_t dir_len = slash ? (size_t)(slash - cur + 1) : 0;
            if (dir_len + (size_t)n >= sizeof cur)
                return clip_fail(CLIP_ERR_ARG, "%s: output path too long", path);
            memmove(cur + dir_len, target, (size_t)n + 1);
        }
    }
    return clip_fail(CLIP_ERR_IO, "%s: too many levels of symbolic links", path);
}

static int open_stdout(atomic_file *af) {
    if (isatty(STDOUT_FILENO))
        return clip_fail(CLIP_ERR_ARG, "-o -: standard output is a terminal; redirect it to a file "
                                       "or a pipe (the output is binary)");
    af->kind = ATOMIC_STDOUT;
    af->file = stdout;
    return CLIP_OK;
}

/* A device or FIFO: written where it is. Opening a FIFO waits for its reader, as `>` does. */
static int open_in_place(atomic_file *af, const struct stat *st) {
    if (S_ISSOCK(st->st_mode))
        return clip_fail(CLIP_ERR_IO, "%s: is a socket; cannot write an output file to it", af->shown);
    int fd = open(af->path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return clip_fail(CLIP_ERR_IO, "%s: cannot open output: %s", af->shown, strerror(errno));
    af->kind = ATOMIC_IN_PLACE;
    af->file = fdopen(fd, "wb");
    if (!af->file) {
        close(fd);
        return clip_fail(CLIP_ERR_IO, "%s: cannot open output: %s", af->shown, strerror(errno));
    }
    return CLIP_OK;
}

/* A regular file or a new path: a hidden temp file in the same directory (so that rename()
 * is atomic), with the permissions of the file it replaces, or of a plain fopen. */
static int open_temp(atomic_file *af, const struct stat *old) {
    const char *slash = strrchr(af->path, '/');
    int dir_len = slash ? (int)(slash - af->path + 1) : 0;
    snprintf(af->tmp_path, sizeof af->tmp_path, "%.*s.%s.tmp.XXXXXX", dir_len, af->path,
             af->path + dir_len);
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
        return clip_fail(CLIP_ERR_IO, "%s: cannot create output file: %s", af->shown, strerror(err));
    if (old) {
        /* Best effort: as root, keep the replaced file's owner too. */
        if (fchown(fd, old->st_uid, old->st_gid) != 0) { /* not ours to give away: keep ours */ }
        fchmod(fd, old->st_mode & 07777);
    } else {
        mode_t mask = umask(0);             /* mkstemp makes the file private (0600) */
        umask(mask);
        fchmod(fd, 0666 & ~mask);
    }
    af->kind = ATOMIC_RENAME;
    af->file = fdopen(fd, "wb");
    if (!af->file) {
        close(fd);
        pending = 0;
        unlink(af->tmp_path);
        af->tmp_path[0] = 0;
        return clip_fail(CLIP_ERR_IO, "%s: cannot open output file: %s", af->shown, strerror(errno));
    }
    return CLIP_OK;
}

int atomic_open(atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    snprintf(af->shown, sizeof af->shown, "%s", path);
    if (strcmp(path, "-") == 0) return open_stdout(af);
    if (path[0] == 0) return clip_fail(CLIP_ERR_ARG, "empty output path");
    if (strlen(path) >= sizeof af->path) return clip_fail(CLIP_ERR_ARG, "%.64s...: output path too long", path);
    /* stat() follows every link the way open() will, /proc's magic links included
     * (/dev/stdout -> /proc/self/fd/1 -> a pipe has no path of its own). */
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return clip_fail(CLIP_ERR_IO, "%s: is a directory", path);
        if (!S_ISREG(st.st_mode)) {
            strcpy(af->path, path);
            return open_in_place(af, &st);
        }
        char real[PATH_MAX];     /* the regular file to replace, wherever its links lead */
        if (!realpath(path, real) || strlen(real) >= sizeof af->path)
            return clip_fail(CLIP_ERR_IO, "%s: cannot resolve the output path", path);
        strcpy(af->path, real);
        return open_temp(af, &st);
    }
    if (errno != ENOENT) return clip_fail(CLIP_ERR_IO, "%s: cannot use as output: %s", path, strerror(errno));
    int rc = follow_links(path, af->path, sizeof af->path);    /* a new file, maybe via a link */
    return rc ? rc : open_temp(af, NULL);
}

int atomic_commit(atomic_file *af) {
    FILE *f = af->file;
    af->file = NULL;
    int ok = f && fflush(f) == 0 && !ferror(f);
    int saved_errno = errno;
    if (af->kind == ATOMIC_STDOUT) {
        if (!ok) return clip_fail(CLIP_ERR_IO, "standard output: write failed: %s", strerror(saved_errno));
        return CLIP_OK;
    }
    /* Devices and FIFOs have nothing to sync (fsync fails with EINVAL on them). */
    if (ok && af->kind == ATOMIC_RENAME && fsync(fileno(f)) != 0) {
        ok = 0;
        saved_errno = errno;
    }
    if (f && fclose(f) != 0 && ok) {
        ok = 0;
        saved_errno = errno;
    }
    if (af->kind == ATOMIC_IN_PLACE) {
        if (!ok) return clip_fail(CLIP_ERR_IO, "%s: write failed: %s", af->shown, strerror(saved_errno));
        return CLIP_OK;
    }
    if (ok && rename(af->tmp_path, af->path) == 0) {
        pending = 0;
        af->tmp_path[0] = 0;
        return CLIP_OK;
    }
    if (ok) saved_errno = errno;
    pending = 0;
    unlink(af->tmp_path);
    af->tmp_path[0] = 0;
    return clip_fail(CLIP_ERR_IO, "%s: cannot write output file: %s", af->shown, strerror(saved_errno));
}

void atomic_abort(atomic_file *af) {
    if (af->file && af->kind != ATOMIC_STDOUT) fclose(af->file);
    else if (af->file) fflush(af->file);
    af->file = NULL;
    if (af->kind == ATOMIC_RENAME && af->tmp_path[0]) {
        pending = 0;
        unlink(af->tmp_path);
    }
    af->tmp_path[0] = 0;
}

int atomic_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!a || !b || strcmp(a, "-") == 0 || strcmp(b, "-") == 0) return 0;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* fl_fs: atomic file replacement and small-file helpers. */
#include "fl_fs.h"
#include "fl_error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void s_fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int fl_atomic_open(struct fl_atomic_file *af, const char *path, mode_t mode)
{
    memset(af, 0, sizeof *af);
    size_t len = strlen(path);
    af->path = strdup(path);
    af->tmp_path = malloc(len + 16);
    if (!af->path || !af->tmp_path) {
        fl_atomic_abort(af);
        return fl_fail(FL_ENOMEM, "%s: out of memory", path);
    }
    snprintf(af->tmp_path, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        int e = errno;
        free(af->tmp_path);
        af->tmp_path = NULL;
        fl_atomic_abort(af);
        return fl_fail(FL_EIO, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    if (fchmod(fd, mode) != 0 || !(af->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        fl_atomic_abort(af);
        return fl_fail(FL_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

int fl_atomic_commit(struct fl_atomic_file *af)
{
    int rc = 0;
    int e = 0;
    if (fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0) {
        e = errno;
        rc = FL_EIO;
    }
    if (fclose(af->f) != 0 && rc == 0) {
        e = errno;
        rc = FL_EIO;
    }
    af->f = NULL;
    if (rc == 0 && rename(af->tmp_path, af->path) != 0) {
        e = errno;
        rc = FL_EIO;
    }
    if (rc != 0) {
        fl_error_set("%s: write failed: %s", af->path, strerror(e ? e : EIO));
        fl_atomic_abort(af);
        return rc;
    }
    s_fsync_dir(af->path);
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
    return 0;
}

void fl_atomic_abort(struct fl_atomic_file *af)
{
    if (af->f)
        fclose(af->f);
    if (af->tmp_path)
        unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int fl_fs_write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
    struct fl_atomic_file af;
    int rc = fl_atomic_open(&af, path, mode);
    if (rc)
        return rc;
    setvbuf(af.f, NULL, _IONBF, 0); /* buf goes straight to the file, never through a copy */
    if (len && fwrite(buf, 1, len, af.f) != len) {
        int e = errno;
        fl_atomic_abort(&af);
        return fl_fail(FL_EIO, "%s: write failed: %s", path, strerror(e));
    }
    return fl_atomic_commit(&af);
}

int fl_fs_open_regular(const char *path, int *fd, struct stat *st)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return fl_fail(FL_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return fl_fail(FL_EIO, "%s: not a regular file", path);
    }
    return 0;
}

size_t fl_fs_read_fd(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

int fl_fs_read_file(const char *path, size_t max_len, unsigned char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd;
    struct stat st;
    int rc = fl_fs_open_regular(path, &fd, &st);
    if (rc)
        return rc;
    if ((size_t)st.st_size > max_len) {
        close(fd);
        return fl_fail(FL_ERANGE, "%s: %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max_len);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *p = malloc(n + 1);
    if (!p) {
        close(fd);
        return fl_fail(FL_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fl_fs_read_fd(fd, p, n);
    close(fd);
    if (got != n) {
        free(p);
        return fl_fail(FL_ETRUNC, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    return 0;
}

int fl_fs_mkdirs(const char *path, mode_t mode)
{
    char *p = strdup(path);
    if (!p)
        return FL_ENOMEM;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, mode) != 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                return fl_fail(FL_EIO, "%s: cannot create directory: %s", path, strerror(e));
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return 0;
}

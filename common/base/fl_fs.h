/* fl_fs: files written atomically (temporary file in the same directory, fsync, rename,
 * fsync of the directory), so a reader sees the old file or the new one, never half of one. */
#ifndef FL_FS_H
#define FL_FS_H

#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

struct fl_atomic_file {
    FILE *f;        /* write through this stream between open and commit */
    char *path;     /* final path */
    char *tmp_path; /* temporary path in the same directory */
};

/* Create a temporary file beside `path` with `mode` (e.g. 0644, 0600 for secrets).
 * Returns 0 or FL_EIO (message names the path). */
int fl_atomic_open(struct fl_atomic_file *af, const char *path, mode_t mode);
/* Flush, fsync and rename into place. On failure the temporary file is removed and the
 * old file, if any, is untouched. Always releases af. */
int fl_atomic_commit(struct fl_atomic_file *af);
/* Discard the temporary file; safe after commit or on a zeroed struct. */
void fl_atomic_abort(struct fl_atomic_file *af);
/* One-shot: write buf to path atomically. Unbuffered, so no stdio buffer ever holds a copy of
 * buf (secret key files are written this way). */
int fl_fs_write_file(const char *path, const void *buf, size_t len, mode_t mode);
/* Read a whole (small) file into a malloc'd buffer (NUL-terminated for convenience).
 * Refuses files larger than max_len with FL_ERANGE. */
int fl_fs_read_file(const char *path, size_t max_len, unsigned char **buf, size_t *len);
/* Open path read-only (close-on-exec) and check that it is a regular file; *st is its status.
 * The caller closes *fd. 0, or FL_EIO naming the path. */
int fl_fs_open_regular(const char *path, int *fd, struct stat *st);
/* Read n bytes from fd into buf, retrying when interrupted. Returns how many were read: fewer
 * than n only at the end of the file or on an error. */
size_t fl_fs_read_fd(int fd, void *buf, size_t n);
/* mkdir -p with mode; existing directories are fine. */
int fl_fs_mkdirs(const char *path, mode_t mode);

#endif

/* fl_gzread: gzopen/gzread with errors that name the file. */
#include "fl_gzread.h"
#include "fl_error.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int fl_gz_open(gzFile *f, const char *path)
{
    errno = 0;
    *f = gzopen(path, "rb");
    if (!*f)
        return fl_fail(FL_EIO, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    gzbuffer(*f, 1 << 18);
    return 0;
}

int fl_gz_read(gzFile f, const char *path, void *buf, size_t len, size_t *got)
{
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        if (want > (size_t)INT_MAX)
            want = (size_t)INT_MAX;
        int r = gzread(f, (char *)buf + *got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            return fl_fail(zerr == Z_ERRNO ? FL_EIO : FL_EFORMAT, "%s: read error: %s", path,
                           zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

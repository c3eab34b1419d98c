/* fl_gzread: reading a data file through zlib, so a gzip-compressed file and a raw one read
 * alike. Shared by the data layer's readers (IDX, CSV); errors name the file. */
#ifndef FL_GZREAD_H
#define FL_GZREAD_H

#include <stddef.h>
#include <zlib.h>

/* Open path for reading (raw files are read as they are). 0 or FL_EIO. */
int fl_gz_open(gzFile *f, const char *path);
/* Read up to len bytes into buf; *got < len only at the end of the file. 0, FL_EIO or
 * FL_EFORMAT (corrupt compressed data). */
int fl_gz_read(gzFile f, const char *path, void *buf, size_t len, size_t *got);

#endif

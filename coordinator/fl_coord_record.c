/* fl_coord_record: the test builds' record of the frames the coordinator reads. */
#include "fl_coord_record.h"
#include "fl_error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct fl_coord_record {
    FILE *fp;    /* DIR/frames, appended to */
    bool failed; /* a write failed (logged once) */
};

fl_coord_record_t *fl_coord_record_open(void)
{
    const char *dir = getenv("FEDTL_TEST_RECORD_DIR");
    if (!dir || !*dir)
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/frames", dir);
    fl_coord_record_t *self = calloc(1, sizeof *self);
    if (self && (mkdir(dir, 0700) == 0 || errno == EEXIST))
        self->fp = fopen(path, "ab");
    if (!self || !self->fp) {
        fl_log(FL_LOG_ERROR, "test_record_failed", "path=\"%s\" reason=\"%s\"", path,
               strerror(errno));
        free(self);
        return NULL;
    }
    fl_log(FL_LOG_WARN, "test_record",
           "path=\"%s\" reason=\"test build: recording every frame "
           "read from a branch\"",
           path);
    return self;
}

void fl_coord_record_close(fl_coord_record_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fclose((*self_p)->fp);
    free(*self_p);
    *self_p = NULL;
}

void fl_coord_record_frame(fl_coord_record_t *self, const char *peer_id, const char *branch,
                           int type, uint32_t round, const uint8_t *frame, size_t len)
{
    if (!self)
        return;
    bool ok = fprintf(self->fp, "frame peer=%s branch=%s type=%d round=%u bytes=%zu\n", peer_id,
                      branch, type, round, len) > 0 &&
              fwrite(frame, 1, len, self->fp) == len && fputc('\n', self->fp) != EOF &&
              fflush(self->fp) == 0;
    if (!ok && !self->failed) {
        self->failed = true;
        fl_log(FL_LOG_ERROR, "test_record_failed", "reason=\"%s\"", strerror(errno));
    }
}

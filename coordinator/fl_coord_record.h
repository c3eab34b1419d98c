/* fl_coord_record: test builds only (cmake -DFEDTL_TESTING=ON). With FEDTL_TEST_RECORD_DIR set,
 * the coordinator appends every frame it reads from a branch, as its decoder saw it (after
 * CurveZMQ), to DIR/frames, so that a test can check what the coordinator learns
 * (tests/test_secagg_view.c). Each record is one text line
 *   frame peer=ID branch=NAME type=T round=R bytes=N
 * (ID the key id the connection proved, or "unknown"; NAME the branch's registered name or "?";
 * T the Envelope's body case, -1 for a frame that did not decode; R the round open or last
 * opened) followed by the N bytes and a newline. */
#ifndef FL_COORD_RECORD_H
#define FL_COORD_RECORD_H

#ifndef FEDTL_TESTING
#error "fl_coord_record is for test builds only"
#endif

#include <stddef.h>
#include <stdint.h>

typedef struct fl_coord_record fl_coord_record_t;

/* The record FEDTL_TEST_RECORD_DIR asks for, or NULL when it is unset (or cannot be opened:
 * logged). */
fl_coord_record_t *fl_coord_record_open(void);
void fl_coord_record_close(fl_coord_record_t **self_p);
/* Append one frame (see above); write errors are logged once. */
void fl_coord_record_frame(fl_coord_record_t *self, const char *peer_id, const char *branch,
                           int type, uint32_t round, const uint8_t *frame, size_t len);

#endif

/* fl_time: the one clock fedtl measures intervals with (monotonic: never jumps with the wall
 * clock), in milliseconds for protocols and in seconds for progress and rates. */
#ifndef FL_TIME_H
#define FL_TIME_H

#include <stdint.h>

/* Milliseconds on the monotonic clock (from an arbitrary origin; positive). */
int64_t fl_now_ms(void);
/* Seconds on the same clock, with nanosecond resolution. */
double fl_now_s(void);

/* The creation time fedtl writes into the files it makes (bases, adapters): the value of
 * SOURCE_DATE_EPOCH (seconds since 1970, the reproducible-builds.org convention) when the
 * environment sets it, else 0, "not recorded". Never the wall clock: a file is a function of
 * its inputs, so the same data, options and seed give the same bytes and the same content
 * hash. A malformed SOURCE_DATE_EPOCH is reported on stderr once and treated as unset. */
int64_t fl_time_stamp(void);

#endif

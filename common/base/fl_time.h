/* fl_time: the one clock fedtl measures intervals with (monotonic: never jumps with the wall
 * clock), in milliseconds for protocols and in seconds for progress and rates. */
#ifndef FL_TIME_H
#define FL_TIME_H

#include <stdint.h>

/* Milliseconds on the monotonic clock (from an arbitrary origin; positive). */
int64_t fl_now_ms(void);
/* Seconds on the same clock, with nanosecond resolution. */
double fl_now_s(void);

#endif

/* fl_time: the monotonic clock, and the creation stamp of files. */
#include "fl_time.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int64_t fl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double fl_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t fl_time_stamp(void)
{
    static bool warned;
    const char *v = getenv("SOURCE_DATE_EPOCH");
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long long t = strtoll(v, &end, 10);
    if (errno || *end || t < 0 || v[0] < '0' || v[0] > '9') {
        if (!warned)
            fprintf(stderr,
                    "fedtl: SOURCE_DATE_EPOCH=\"%.40s\" is not a number of seconds since "
                    "1970; no creation time recorded\n",
                    v);
        warned = true;
        return 0;
    }
    return (int64_t)t;
}

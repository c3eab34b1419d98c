/* fl_error: error names, per-thread error detail and the key=value logger. */
#include "fl_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static _Thread_local char s_msg[1024];

const char *fl_strerror(int err)
{
    switch (err) {
    case FL_OK:
        return "success";
    case FL_ENOMEM:
        return "out of memory";
    case FL_EIO:
        return "I/O error";
    case FL_EFORMAT:
        return "malformed input";
    case FL_EVERSION:
        return "unsupported version";
    case FL_EHASH:
        return "content hash mismatch";
    case FL_ETRUNC:
        return "truncated input";
    case FL_EMISMATCH:
        return "mismatch";
    case FL_EINVAL:
        return "invalid argument";
    case FL_ERANGE:
        return "value out of range";
    case FL_ECRYPTO:
        return "verification failed";
    case FL_ENOTFOUND:
        return "not found";
    default:
        return "unknown error";
    }
}

void fl_error_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s_msg, sizeof s_msg, fmt, ap);
    va_end(ap);
}

const char *fl_error_msg(void)
{
    return s_msg;
}

int fl_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s_msg, sizeof s_msg, fmt, ap);
    va_end(ap);
    return err;
}

static int s_level = -1;

void fl_log_set_level(fl_log_level_t level)
{
    s_level = (int)level;
}

static int s_current_level(void)
{
    if (s_level >= 0)
        return s_level;
    const char *env = getenv("FEDTL_LOG");
    if (env && strcasecmp(env, "debug") == 0)
        return FL_LOG_DEBUG;
    if (env && strcasecmp(env, "warn") == 0)
        return FL_LOG_WARN;
    if (env && strcasecmp(env, "error") == 0)
        return FL_LOG_ERROR;
    return FL_LOG_INFO;
}

void fl_log(fl_log_level_t level, const char *event, const char *fields, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if ((int)level < s_current_level())
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level], event);
    if (fields && n > 0 && (size_t)n < sizeof line - 1) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fields);
        vsnprintf(line + n, sizeof line - (size_t)n, fields, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line);
}

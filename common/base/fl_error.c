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

/* The message from fmt: formatted aside first, since callers often wrap the previous one
 * (fl_fail(rc, "%s: %s", path, fl_error_msg())) and vsnprintf must not read what it writes. */
static void s_format(const char *fmt, va_list ap)
{
    char buf[sizeof s_msg];
    vsnprintf(buf, sizeof buf, fmt, ap);
    memcpy(s_msg, buf, sizeof s_msg);
}

void fl_error_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_format(fmt, ap);
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
    s_format(fmt, ap);
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

/* Length of the well-formed UTF-8 character at p (1 to 4), or 0 when p starts no such
 * character (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF). */
static size_t s_utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
               : p[0] >= 0xe0 && p[0] <= 0xef ? 3
               : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                              : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return n;
}

bool fl_utf8_valid(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = s_utf8_len(p);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

static bool s_log_bare(const char *s)
{
    if (!*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '\\' || *p == '=')
            return false;
        size_t n = s_utf8_len(p);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

const char *fl_log_str(const char *s, char *out, size_t len)
{
    if (len < 3) { /* not even room for "" */
        if (len)
            out[0] = '\0';
        return out;
    }
    if (!s)
        s = "";
    if (s_log_bare(s) && strlen(s) < len) {
        memcpy(out, s, strlen(s) + 1);
        return out;
    }
    size_t o = 0;
    out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char esc[8];
        size_t n = s_utf8_len(p), elen;
        if (*p == '"' || *p == '\\')
            elen = (size_t)snprintf(esc, sizeof esc, "\\%c", *p);
        else if (*p == '\n' || *p == '\r' || *p == '\t')
            elen = (size_t)snprintf(esc, sizeof esc, "\\%c",
                                    *p == '\n'   ? 'n'
                                    : *p == '\r' ? 'r'
                                                 : 't');
        else if (n == 0 || *p < 0x20 || *p == 0x7f)
            elen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
        else
            elen = 0;
        size_t take = elen ? elen : n;
        if (o + take + 2 > len) /* room for the closing quote and the NUL */
            break;
        memcpy(out + o, elen ? esc : (const char *)p, take);
        o += take;
        p += elen ? 1 : n;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

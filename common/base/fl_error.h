/* fl_error: error codes shared by every fedtl module, and the one logger.
 * Actions return 0 or a negative FL_E* code; fl_strerror() names it.
 * Log lines are machine-readable: "ts=... level=... event=... key=value ...". */
#ifndef FL_ERROR_H
#define FL_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum {
    FL_OK = 0,
    FL_ENOMEM = -1,    /* allocation failed */
    FL_EIO = -2,       /* read/write/open failed (errno kept) */
    FL_EFORMAT = -3,   /* input is malformed */
    FL_EVERSION = -4,  /* unknown format or protocol version */
    FL_EHASH = -5,     /* content hash mismatch (corruption) */
    FL_ETRUNC = -6,    /* input ends early */
    FL_EMISMATCH = -7, /* well-formed but does not fit (wrong base, shape, class) */
    FL_EINVAL = -8,    /* bad argument from a user */
    FL_ERANGE = -9,    /* value out of range */
    FL_ECRYPTO = -10,  /* verification or decryption failed */
    FL_ENOTFOUND = -11 /* no such thing */
};

/* Name of an FL_E* code, never NULL. */
const char *fl_strerror(int err);

/* Errors are explained where they are found: the detail (file, line, what is wrong)
 * goes into a per-thread message buffer that the caller can print. */
void fl_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message set on this thread, or "" when none. */
const char *fl_error_msg(void);
/* Set the detail and return err: `return fl_fail(FL_EFORMAT, "%s: line %zu: ...", ...)`. */
int fl_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef enum { FL_LOG_DEBUG, FL_LOG_INFO, FL_LOG_WARN, FL_LOG_ERROR } fl_log_level_t;

/* Minimum level printed (default INFO; FEDTL_LOG=debug|info|warn|error overrides). */
void fl_log_set_level(fl_log_level_t level);
/* One line to stderr: ts=<RFC3339> level=<lvl> event=<event> <fields>. `fields` is a
 * printf format producing key=value pairs separated by spaces (may be NULL). */
void fl_log(fl_log_level_t level, const char *event, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));
/* A string from a peer, a file or a user made safe to print as a log value (key=%s): as it is
 * when it is printable UTF-8 without blanks, '"', '\\' or '='; otherwise in double quotes, with
 * '"' and '\\' escaped, \n \r \t for those, \xNN for other control bytes and bytes that are
 * not UTF-8. Cut to fit out (len >= 3 bytes, NUL included) between characters; returns out. */
const char *fl_log_str(const char *s, char *out, size_t len);
/* Is s well-formed UTF-8 (no stray continuation byte, overlong form, surrogate or code point
 * beyond U+10FFFF)? Text that JSON files and peers will carry is checked with it. */
bool fl_utf8_valid(const char *s);

#endif

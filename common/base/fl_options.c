/* fl_options: the option engine's values: reading, checking and storing one option's text,
 * defaults, the table's own checks. The INI file and the command line are fl_options_read.c;
 * --help and --check-config, fl_options_help.c. */
#include "fl_options.h"
#include "fl_error.h"
#include "fl_options_internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- names ---- */

bool fl_options_name_eq(const char *typed, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++, name++) {
        char a = typed[k] == '-' ? '_' : typed[k], b = *name == '-' ? '_' : *name;
        if (!b || a != b)
            return false;
    }
    return *name == '\0';
}

const struct fl_option *fl_options_find(const struct fl_options_spec *s, const char *name, size_t n)
{
    for (size_t k = 0; k < s->noptions; k++)
        if (fl_options_name_eq(name, n, s->options[k].name))
            return &s->options[k];
    return NULL;
}

void fl_options_flag(const char *name, char *buf, size_t len)
{
    int w = snprintf(buf, len, "--%s", name);
    for (char *p = buf; w > 0 && *p; p++)
        if (*p == '_')
            *p = '-';
}

void fl_options_quote(const char *text, char *buf, size_t len)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 8 < len; p++) {
        if (o > 96) {
            o += (size_t)snprintf(buf + o, len - o, "...");
            break;
        }
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o < len ? o : len - 1] = '\0';
}

/* ---- values ---- */

int fl_options_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    for (size_t k = 0; k < sizeof yes / sizeof yes[0]; k++) {
        if (strcasecmp(text, yes[k]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[k]) == 0) {
            *out = false;
            return 0;
        }
    }
    return FL_EINVAL;
}

/* A decimal whole number, blanks around it allowed: its sign and magnitude, or -1. */
static int s_whole(const char *t, bool *neg, unsigned long long *mag)
{
    while (*t == ' ' || *t == '\t')
        t++;
    *neg = *t == '-';
    if (*t == '-' || *t == '+')
        t++;
    if (!isdigit((unsigned char)*t))
        return -1;
    char *end;
    errno = 0;
    *mag = strtoull(t, &end, 10);
    if (errno == ERANGE)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    return *end ? -1 : 0;
}

/* A value read from text, before it is stored. */
union s_value {
    bool b;                           /* FL_OPTION_BOOL */
    long long i;                      /* FL_OPTION_INT */
    unsigned long long u;             /* FL_OPTION_UINT */
    double d;                         /* FL_OPTION_DOUBLE */
    const struct fl_option_choice *c; /* FL_OPTION_CHOICE */
};

static int s_parse_number(const struct fl_option *o, const char *t, const char *who, const char *q,
                          union s_value *v)
{
    bool neg = false;
    unsigned long long mag = 0;
    bool whole = s_whole(t, &neg, &mag) == 0;
    if (o->type == FL_OPTION_INT) {
        bool ok = whole && (neg ? mag <= (unsigned long long)LLONG_MAX + 1 : mag <= LLONG_MAX);
        if (ok)
            v->i = neg ? (long long)(0 - mag) : (long long)mag;
        if (!ok || v->i < o->range.i.lo || v->i > o->range.i.hi)
            return fl_fail(FL_EINVAL, "%s: '%s' is not a whole number in [%lld, %lld]", who, q,
                           o->range.i.lo, o->range.i.hi);
        return 0;
    }
    if (o->type == FL_OPTION_UINT) {
        v->u = mag;
        if (!whole || (neg && mag) || mag < o->range.u.lo || mag > o->range.u.hi)
            return fl_fail(FL_EINVAL, "%s: '%s' is not a whole number in [%llu, %llu]", who, q,
                           o->range.u.lo, o->range.u.hi);
        return 0;
    }
    char *end;
    errno = 0;
    v->d = strtod(t, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    bool open = o->flags & FL_OPTION_HI_OPEN;
    if (end == t || *end || !isfinite(v->d) || v->d < o->range.d.lo ||
        (open ? v->d >= o->range.d.hi : v->d > o->range.d.hi))
        return fl_fail(FL_EINVAL, "%s: '%s' is not a number in [%g, %g%c", who, q, o->range.d.lo,
                       o->range.d.hi, open ? ')' : ']');
    return 0;
}

/* A byte count: a whole number, then K, M, G or T (powers of 1024), then B or iB, any case. */
static int s_parse_size(const struct fl_option *o, const char *t, const char *who, const char *q,
                        union s_value *v)
{
    static const char units[] = "KMGT";
    char num[32];
    size_t len = strspn(t, "0123456789");
    const char *u = t + len, *p = strchr(units, toupper((unsigned char)*u));
    int shift = *u && p ? 10 * (int)(p - units + 1) : 0;
    const char *rest = shift ? u + 1 : u;
    bool ok = len > 0 && len < sizeof num &&
              (!*rest || strcasecmp(rest, "b") == 0 || (shift && strcasecmp(rest, "ib") == 0));
    unsigned long long mag = 0;
    if (ok) {
        memcpy(num, t, len);
        num[len] = '\0';
        errno = 0;
        mag = strtoull(num, NULL, 10);
        ok = errno != ERANGE && mag <= (ULLONG_MAX >> shift);
    }
    v->u = mag << shift;
    if (!ok)
        return fl_fail(FL_EINVAL,
                       "%s: '%s' is not a size (a whole number of bytes, or with K, M, G or T: "
                       "512M, 1G)",
                       who, q);
    if (v->u < o->range.u.lo || v->u > o->range.u.hi)
        return fl_fail(FL_EINVAL, "%s: %s is not between %llu and %llu bytes", who, q,
                       o->range.u.lo, o->range.u.hi);
    return 0;
}

static int s_parse_choice(const struct fl_option *o, const char *t, const char *who, const char *q,
                          union s_value *v)
{
    char list[512] = "";
    size_t n = 0;
    for (const struct fl_option_choice *c = o->choices; c->name; c++) {
        if (strcasecmp(t, c->name) == 0) {
            v->c = c;
            return 0;
        }
        n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s",
                              c == o->choices ? "" : ", ", c->name);
    }
    return fl_fail(FL_EINVAL, "%s: '%s' is not one of %s", who, q, list);
}

/* Read text as o's value; who names the option in messages. */
static int s_parse(const struct fl_option *o, const char *t, const char *who, union s_value *v)
{
    char q[128];
    fl_options_quote(t, q, sizeof q);
    int rc = 0;
    switch (o->type) {
    case FL_OPTION_BOOL:
        if (fl_options_parse_bool(t, &v->b) != 0)
            rc = fl_fail(FL_EINVAL, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                         who, q);
        break;
    case FL_OPTION_INT:
    case FL_OPTION_UINT:
    case FL_OPTION_DOUBLE:
        rc = s_parse_number(o, t, who, q, v);
        break;
    case FL_OPTION_STRING:
    case FL_OPTION_PATH: {
        size_t max = o->store == FL_OPTION_CHARS ? o->size - 1
                                                 : (o->max_len ? o->max_len : FL_OPTIONS_TEXT_MAX);
        size_t len = strlen(t);
        if (len > max)
            rc = fl_fail(FL_EINVAL, "%s: longer than %zu characters", who, max);
        for (size_t k = 0; rc == 0 && !(o->flags & FL_OPTION_ANY_TEXT) && k < len; k++)
            if ((unsigned char)t[k] < 0x20 || t[k] == 0x7f)
                rc = fl_fail(FL_EINVAL, "%s: '%s' holds a control character", who, q);
        break;
    }
    case FL_OPTION_CHOICE:
        rc = s_parse_choice(o, t, who, q, v);
        break;
    case FL_OPTION_SIZE:
        rc = s_parse_size(o, t, who, q, v);
        break;
    }
    if (rc == 0 && o->validate && o->validate(t) != 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", fl_error_msg());
        rc = fl_fail(FL_EINVAL, "%s: %s", who, why);
    }
    return rc;
}

/* Store text (already checked) into a text field; NULL or "" unsets it. */
static int s_store_text(const struct fl_option *o, void *field, const char *t, const char *who)
{
    if (o->store == FL_OPTION_CHARS) {
        snprintf(field, o->size, "%s", t ? t : "");
    } else if (o->store == FL_OPTION_BORROWED) {
        *(const char **)field = t && *t ? t : NULL;
    } else {
        char *copy = NULL;
        if (t && *t && !(copy = strdup(t)))
            return fl_fail(FL_ENOMEM, "%s: out of memory", who);
        free(*(char **)field);
        *(char **)field = copy;
    }
    return 0;
}

int fl_options_set_entry(const struct fl_option *o, void *cfg, const char *t, const char *who)
{
    void *field = (char *)cfg + o->offset;
    bool text = o->type == FL_OPTION_STRING || o->type == FL_OPTION_PATH ||
                (o->type == FL_OPTION_CHOICE && o->store != FL_OPTION_VALUE);
    if (!*t && text) {
        if (o->flags & FL_OPTION_REQUIRED)
            return fl_fail(FL_EINVAL, "%s: empty, but required", who);
        return o->def ? fl_options_set_entry(o, cfg, o->def, who)
                      : s_store_text(o, field, NULL, who);
    }
    union s_value v;
    int rc = s_parse(o, t, who, &v);
    if (rc)
        return rc;
    switch (o->type) {
    case FL_OPTION_BOOL:
        *(bool *)field = v.b;
        break;
    case FL_OPTION_INT:
        *(int *)field = (int)v.i;
        break;
    case FL_OPTION_UINT:
    case FL_OPTION_SIZE:
        if (o->size == sizeof(uint32_t))
            *(uint32_t *)field = (uint32_t)v.u;
        else
            *(uint64_t *)field = (uint64_t)v.u;
        break;
    case FL_OPTION_DOUBLE:
        if (o->size == sizeof(float))
            *(float *)field = (float)v.d;
        else
            *(double *)field = v.d;
        break;
    case FL_OPTION_STRING:
    case FL_OPTION_PATH:
        return s_store_text(o, field, t, who);
    case FL_OPTION_CHOICE:
        if (o->store == FL_OPTION_VALUE)
            *(int *)field = v.c->value;
        else
            return s_store_text(o, field, v.c->name, who);
        break;
    }
    return 0;
}

void fl_options_reset(const struct fl_options_spec *s, void *cfg)
{
    for (size_t k = 0; k < s->noptions; k++) {
        const struct fl_option *o = &s->options[k];
        if (o->def) {
            int rc = fl_options_set_entry(o, cfg, o->def, o->name);
            assert(rc == 0 && "an option's default must be valid");
            (void)rc;
        }
    }
}

int fl_options_set(const struct fl_options_spec *s, void *cfg, const char *name, const char *value,
                   const char *origin)
{
    const struct fl_option *o = fl_options_find(s, name, strlen(name));
    char q[128], who[256];
    if (!o) {
        fl_options_quote(name, q, sizeof q);
        return fl_fail(FL_ENOTFOUND, "%s%sunknown option '%s'", origin ? origin : "",
                       origin ? ": " : "", q);
    }
    char flag[96];
    fl_options_flag(o->name, flag, sizeof flag);
    snprintf(who, sizeof who, "%s%s%s", origin ? origin : "", origin ? ": " : "", flag);
    return fl_options_set_entry(o, cfg, value, who);
}

void fl_options_free(const struct fl_options_spec *s, void *cfg)
{
    for (size_t k = 0; k < s->noptions; k++) {
        const struct fl_option *o = &s->options[k];
        if (o->store == FL_OPTION_OWNED) {
            char **field = (char **)((char *)cfg + o->offset);
            free(*field);
            *field = NULL;
        }
    }
}

static bool s_is_set(const struct fl_option *o, const void *cfg)
{
    const void *field = (const char *)cfg + o->offset;
    if (o->store == FL_OPTION_CHARS)
        return *(const char *)field != '\0';
    if (o->store == FL_OPTION_OWNED || o->store == FL_OPTION_BORROWED)
        return *(const char *const *)field && **(const char *const *)field;
    return true;
}

int fl_options_check_required(const struct fl_options_spec *s, const void *cfg)
{
    char list[512] = "";
    size_t n = 0;
    int missing = 0;
    for (size_t k = 0; k < s->noptions; k++) {
        const struct fl_option *o = &s->options[k];
        if (!(o->flags & FL_OPTION_REQUIRED) || s_is_set(o, cfg))
            continue;
        char flag[96];
        fl_options_flag(o->name, flag, sizeof flag);
        n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s",
                              missing ? ", " : "", flag);
        missing++;
    }
    if (!missing)
        return 0;
    return fl_fail(FL_EINVAL, "%s %s required", list, missing > 1 ? "are" : "is");
}

/* ---- the table itself ---- */

void fl_options_format(const struct fl_option *o, const void *cfg, char *buf, size_t len)
{
    const void *field = (const char *)cfg + o->offset;
    const char *text = NULL;
    if (o->store == FL_OPTION_CHARS)
        text = field;
    else if (o->store == FL_OPTION_OWNED || o->store == FL_OPTION_BORROWED)
        text = *(const char *const *)field ? *(const char *const *)field : "";
    if (text) {
        snprintf(buf, len, "%s", text);
        return;
    }
    switch (o->type) {
    case FL_OPTION_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        break;
    case FL_OPTION_INT:
        snprintf(buf, len, "%d", *(const int *)field);
        break;
    case FL_OPTION_UINT:
        snprintf(buf, len, "%llu",
                 o->size == sizeof(uint32_t) ? (unsigned long long)*(const uint32_t *)field
                                             : (unsigned long long)*(const uint64_t *)field);
        break;
    case FL_OPTION_SIZE: { /* the largest unit that says it exactly: 1G, 1536M */
        unsigned long long v = o->size == sizeof(uint32_t)
                                   ? (unsigned long long)*(const uint32_t *)field
                                   : (unsigned long long)*(const uint64_t *)field;
        int k = 0;
        while (k < 4 && v && (v & 1023) == 0)
            v >>= 10, k++;
        snprintf(buf, len, "%llu%s", v, k ? (const char *[]){"K", "M", "G", "T"}[k - 1] : "");
        break;
    }
    case FL_OPTION_DOUBLE: {
        /* The shortest text that reads back to the same value. */
        double v = o->size == sizeof(float) ? *(const float *)field : *(const double *)field;
        if (v == (double)(long long)v && fabs(v) < 1e15) {
            snprintf(buf, len, "%.0f", v);
            break;
        }
        for (int p = 1; p <= 17; p++) {
            snprintf(buf, len, "%.*g", p, v);
            double back = strtod(buf, NULL);
            if (o->size == sizeof(float) ? (float)back == (float)v : back == v)
                break;
        }
        break;
    }
    case FL_OPTION_CHOICE:
        snprintf(buf, len, "%d", *(const int *)field);
        for (const struct fl_option_choice *c = o->choices; c->name; c++)
            if (c->value == *(const int *)field) {
                snprintf(buf, len, "%s", c->name);
                break;
            }
        break;
    default:
        buf[0] = '\0';
    }
}

/* What is wrong with one entry's type, storage and bounds, or NULL. */
static const char *s_entry_problem(const struct fl_option *o)
{
    bool value = o->store == FL_OPTION_VALUE,
         pointer = o->store == FL_OPTION_OWNED || o->store == FL_OPTION_BORROWED;
    if (!o->name || !o->help)
        return "a name and a help line are needed";
    if ((o->flags & FL_OPTION_HI_OPEN) && o->type != FL_OPTION_DOUBLE)
        return "only a double's range can be open";
    if ((o->flags & FL_OPTION_REQUIRED) && value)
        return "only text can be required";
    if (o->store == FL_OPTION_OWNED && o->def)
        return "owned text has no default (say in the help what unset means)";
    if (pointer && o->size != sizeof(char *))
        return "the field is not a pointer";
    if (o->store == FL_OPTION_CHARS && o->size < 2)
        return "the char array is too small";
    switch (o->type) {
    case FL_OPTION_BOOL:
        return value && o->size == sizeof(bool) ? NULL : "a bool field is needed";
    case FL_OPTION_INT:
        return value && o->size == sizeof(int) && o->range.i.lo <= o->range.i.hi &&
                       o->range.i.lo >= INT_MIN && o->range.i.hi <= INT_MAX
                   ? NULL
                   : "an int field and a range within int are needed";
    case FL_OPTION_UINT:
    case FL_OPTION_SIZE:
        return value && (o->size == 8 || (o->size == 4 && o->range.u.hi <= UINT32_MAX)) &&
                       o->range.u.lo <= o->range.u.hi
                   ? NULL
                   : "a 32- or 64-bit field and a range within it are needed";
    case FL_OPTION_DOUBLE:
        return value && (o->size == sizeof(float) || o->size == sizeof(double)) &&
                       o->range.d.lo <= o->range.d.hi
                   ? NULL
                   : "a float or double field and a range are needed";
    case FL_OPTION_STRING:
    case FL_OPTION_PATH:
        if (o->store == FL_OPTION_BORROWED && o->where != FL_OPTION_FLAG_ONLY)
            return "borrowed text can only come from the command line";
        return value ? "text needs CHARS, OWNED or BORROWED storage" : NULL;
    case FL_OPTION_CHOICE:
        if (!o->choices || !o->choices[0].name)
            return "a choice needs choices";
        return value && o->size != sizeof(int) ? "a choice's value goes into an int" : NULL;
    }
    return "unknown type";
}

int fl_options_check_spec(const struct fl_options_spec *s)
{
    static const char *const builtin[] = {"help", "config", "check_config"};
    size_t need = 1;
    for (size_t k = 0; k < s->noptions; k++)
        if (s->options[k].offset + s->options[k].size > need)
            need = s->options[k].offset + s->options[k].size;
    if (s->nactions > 16 || s->max_positional > FL_OPTIONS_MAX_POSITIONAL ||
        s->min_positional > s->max_positional)
        return fl_fail(FL_EINVAL, "%s: too many actions or positional arguments", s->program);
    for (size_t k = 0; k < s->noptions; k++) {
        const struct fl_option *o = &s->options[k];
        const char *why = s_entry_problem(o);
        for (size_t j = 0; !why && j < k; j++)
            if (fl_options_name_eq(o->name, strlen(o->name), s->options[j].name))
                why = "the name is taken twice";
        for (size_t j = 0; !why && j < sizeof builtin / sizeof builtin[0]; j++)
            if (fl_options_name_eq(o->name, strlen(o->name), builtin[j]))
                why = "the name is a built-in flag's";
        for (size_t j = 0; !why && j < s->nactions; j++)
            if (fl_options_name_eq(o->name, strlen(o->name), s->actions[j].name))
                why = "the name is an action's";
        if (!why && o->def) {
            void *scratch = calloc(1, need);
            if (!scratch)
                return fl_fail(FL_ENOMEM, "out of memory");
            if (fl_options_set_entry(o, scratch, o->def, o->name) != 0)
                why = "the default is refused";
            free(scratch);
        }
        if (why)
            return fl_fail(FL_EINVAL, "%s: option '%s': %s", s->program,
                           o->name ? o->name : "(null)", why);
    }
    return 0;
}

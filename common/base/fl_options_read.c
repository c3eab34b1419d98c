/* fl_options: reading an INI file and a command line into a program's configuration. */
#include "fl_error.h"
#include "fl_options.h"
#include "fl_options_internal.h"

#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* ---- the INI file ---- */

/* What inih's callbacks share while one file is read. */
struct s_load {
    const struct fl_options_spec *s; /* the program */
    void *cfg;                       /* being filled */
    FILE *f;                         /* the file */
    char *buf;                       /* the line read (getline's) */
    size_t cap;                      /* its allocation */
    int line;                        /* lines handed to inih so far (inih counts the same) */
    int err_line;                    /* line of the first refused entry, 0: none */
    char err[640];                   /* its message */
};

static void s_load_fail(struct s_load *x, const char *msg)
{
    if (!x->err_line) {
        x->err_line = x->line;
        snprintf(x->err, sizeof x->err, "%s", msg);
    }
}

/* inih's reader: one whole line per call, so that inih's line numbers are the file's. A line
 * inih cannot hold (n bytes with the newline) or holding a NUL is refused here, and inih is
 * handed a line it refuses too, rather than the pieces fgets would cut it into. */
static char *s_read_line(char *buf, int n, void *stream)
{
    struct s_load *x = stream;
    ssize_t len = getline(&x->buf, &x->cap, x->f);
    if (len < 0)
        return NULL;
    x->line++;
    char why[96] = "";
    if (memchr(x->buf, '\0', (size_t)len))
        snprintf(why, sizeof why, "a NUL character in the line");
    else if (len >= n)
        snprintf(why, sizeof why, "the line is longer than %d characters", n - 2);
    if (why[0]) {
        s_load_fail(x, why);
        snprintf(buf, (size_t)n, "?\n");
        return buf;
    }
    memcpy(buf, x->buf, (size_t)len + 1);
    return buf;
}

static bool s_listed(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

/* "[a] or [b]": the sections a program reads, for messages. */
static void s_sections(const struct fl_options_spec *s, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *const *p = s->sections; *p && n < len; p++)
        n += (size_t)snprintf(buf + n, len - n, "%s[%s]", p == s->sections ? "" : " or ", *p);
}

/* The option a key names in a section: an alias's, or the key's own. */
static const struct fl_option *s_ini_option(const struct fl_options_spec *s, const char *section,
                                            const char *name)
{
    for (const struct fl_options_alias *a = s->aliases; a && a->section; a++)
        if (strcmp(a->section, section) == 0 && fl_options_name_eq(name, strlen(name), a->key))
            return fl_options_find(s, a->option, strlen(a->option));
    return fl_options_find(s, name, strlen(name));
}

static int s_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct s_load *x = user;
    char qs[128], qn[128], who[160], want[128];
    fl_options_quote(section, qs, sizeof qs);
    fl_options_quote(name, qn, sizeof qn);
    s_sections(x->s, want, sizeof want);
    int rc = 0;
    if (s_listed(x->s->sections, section)) {
        const struct fl_option *o = s_ini_option(x->s, section, name);
        if (!o || o->where == FL_OPTION_FLAG_ONLY) {
            rc = fl_fail(FL_EFORMAT,
                         o ? "'%s' is a command-line flag only" : "unknown option '%s' in [%s]", qn,
                         qs);
        } else {
            snprintf(who, sizeof who, "%s", qn);
            rc = fl_options_set_entry(o, x->cfg, value ? value : "", who);
        }
    } else if (s_listed(x->s->foreign, section)) {
        return 1; /* another fedtl program's */
    } else if (!*section) {
        rc = fl_fail(FL_EFORMAT, "'%s' is outside any section (expected %s)", qn, want);
    } else {
        rc = fl_fail(FL_EFORMAT, "unknown section [%s] (expected %s)", qs, want);
    }
    if (rc == 0)
        return 1;
    s_load_fail(x, fl_error_msg());
    return 0; /* inih notes the line and reads on */
}

int fl_options_load(const struct fl_options_spec *s, void *cfg, const char *path)
{
    assert(s->sections && "a program without an INI section reads no file");
    struct s_load x = {.s = s, .cfg = cfg};
    if (!(x.f = fopen(path, "r")))
        return fl_fail(FL_EIO, "%s: cannot open the configuration file: %s", path, strerror(errno));
    int line = ini_parse_stream(s_read_line, &x, s_ini_entry, &x);
    fclose(x.f);
    free(x.buf);
    if (line < 0)
        return fl_fail(FL_ENOMEM, "%s: out of memory", path);
    if (line == 0)
        return 0;
    if (line == x.err_line)
        return fl_fail(FL_EFORMAT, "%s: line %d: %s", path, line, x.err);
    return fl_fail(FL_EFORMAT, "%s: line %d: syntax error (expected name = value or [section])",
                   path, line);
}

/* ---- the command line ---- */

/* One flag of argv, read in the first pass and applied in the second. */
struct s_item {
    const struct fl_option *o; /* the option, NULL for --config */
    const char *value;         /* its text */
};

/* The walk over argv: items to apply, and the first usage error. */
struct s_walk {
    const struct fl_options_spec *s; /* the program */
    struct fl_options_args *out;     /* help, switches, positional arguments */
    struct s_item *items;            /* flags in order */
    int nitems;                      /* their number */
    int err;                         /* first error, 0: none */
    char msg[640];                   /* its message */
};

static void s_walk_fail(struct s_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_walk_fail(struct s_walk *w, const char *fmt, ...)
{
    if (w->err)
        return;
    w->err = FL_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof w->msg, fmt, ap);
    va_end(ap);
}

/* A spec among the siblings that has this flag, or NULL. */
static const struct fl_options_spec *s_sibling(const struct fl_options_spec *s, const char *name,
                                               size_t n)
{
    for (const struct fl_options_spec *const *p = s->siblings; p && *p; p++) {
        const struct fl_option *o = *p == s ? NULL : fl_options_find(*p, name, n);
        if (o && o->where != FL_OPTION_INI_ONLY)
            return *p;
    }
    return NULL;
}

/* A switch (--check-config, an action): bare, or =BOOL. */
static bool s_switch(struct s_walk *w, const char *arg, const char *eq)
{
    bool on = true;
    if (eq && fl_options_parse_bool(eq + 1, &on) != 0)
        s_walk_fail(w, "%s: not a boolean (true/false, yes/no, on/off, 1/0)", arg);
    return on;
}

/* One "--name[=value]" at argv[*i]; may take argv[*i + 1] as its value. */
static void s_walk_flag(struct s_walk *w, int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *name = arg + 2, *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    char typed[128], q[128];
    snprintf(typed, sizeof typed, "%.*s", (int)(n + 2 < 100 ? n + 2 : 100), arg);
    fl_options_quote(typed, q, sizeof q);
    if (fl_options_name_eq(name, n, "help")) {
        w->out->help = true;
        return;
    }
    const struct fl_options_spec *s = w->s;
    if (s->check_config && fl_options_name_eq(name, n, "check_config")) {
        w->out->check_config = s_switch(w, q, eq);
        return;
    }
    for (size_t k = 0; k < s->nactions; k++)
        if (fl_options_name_eq(name, n, s->actions[k].name)) {
            if (s_switch(w, q, eq))
                w->out->actions |= 1u << k;
            else
                w->out->actions &= ~(1u << k);
            return;
        }
    const struct fl_option *o = fl_options_find(s, name, n);
    bool config = s->sections && fl_options_name_eq(name, n, "config");
    if (!o && !config) {
        const struct fl_options_spec *other = s_sibling(s, name, n);
        if (other)
            s_walk_fail(w, "%s does not apply here (it is an option of %s)", q, other->program);
        else
            s_walk_fail(w, "unknown option %s", q);
        return;
    }
    if (o && o->where == FL_OPTION_INI_ONLY) {
        s_walk_fail(w, "%s can only be set in the configuration file", q);
        return;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value && o && o->type == FL_OPTION_BOOL)
        value = "true";
    if (!value) {
        if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
            s_walk_fail(w, "%s needs a value", q);
            return;
        }
        value = argv[++*i];
    }
    w->items[w->nitems++] = (struct s_item){.o = o, .value = value};
}

static void s_walk(struct s_walk *w, int argc, char **argv)
{
    const struct fl_options_spec *s = w->s;
    bool dashdash = false;
    char q[128];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = true;
        } else if (!dashdash && strcmp(a, "-h") == 0) {
            w->out->help = true;
        } else if (!dashdash && strncmp(a, "--", 2) == 0) {
            s_walk_flag(w, argc, argv, &i);
        } else if (!dashdash && a[0] == '-' && a[1]) {
            fl_options_quote(a, q, sizeof q);
            s_walk_fail(w, "unknown option %s", q);
        } else if (w->out->npositional < s->max_positional) {
            w->out->positional[w->out->npositional++] = a;
        } else {
            fl_options_quote(a, q, sizeof q);
            s_walk_fail(w, "unexpected argument '%s'", q);
        }
    }
    if (w->out->npositional < s->min_positional)
        s_walk_fail(w, "missing %s", s->positional ? s->positional : "argument");
}

int fl_options_parse(const struct fl_options_spec *s, void *cfg, int argc, char **argv,
                     struct fl_options_args *out)
{
    assert(fl_options_check_spec(s) == 0);
    memset(out, 0, sizeof *out);
    struct s_walk w = {.s = s, .out = out};
    if (argc > 1 && !(w.items = calloc((size_t)argc, sizeof *w.items)))
        return fl_fail(FL_ENOMEM, "out of memory");
    s_walk(&w, argc, argv);
    int rc = 0;
    if (out->help)
        goto out_free_items;
    if (w.err) {
        rc = fl_fail(w.err, "%s", w.msg);
        goto out_free_items;
    }
    for (int k = 0; k < w.nitems && rc == 0; k++) /* the files first */
        if (!w.items[k].o)
            rc = fl_options_load(s, cfg, w.items[k].value);
    for (int k = 0; k < w.nitems && rc == 0; k++) {
        const struct fl_option *o = w.items[k].o;
        if (!o)
            continue;
        char flag[96];
        fl_options_flag(o->name, flag, sizeof flag);
        rc = fl_options_set_entry(o, cfg, w.items[k].value, flag);
    }
out_free_items:
    free(w.items);
    return rc;
}

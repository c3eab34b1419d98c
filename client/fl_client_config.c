/* fl_client_config: fedtl-client's options from an INI file and the command line. */
#include "fl_client_config.h"
#include "fl_error.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void fl_client_config_default(struct fl_client_config *c)
{
    memset(c, 0, sizeof *c);
    c->holdout = 0.2;
    c->connect_timeout_s = 30;
}

static int s_parse_int(const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return -1;
    *out = (int)x;
    return 0;
}

static int s_parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on") || !*v)
        *out = true;
    else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

static const struct {
    const char *name; /* long option */
    size_t off;       /* its char * in the config */
} s_strs[] = {
    {"coordinator", offsetof(struct fl_client_config, coordinator)},
    {"coordinator-key", offsetof(struct fl_client_config, coordinator_key)},
    {"key", offsetof(struct fl_client_config, key)},
    {"data", offsetof(struct fl_client_config, data)},
    {"labels", offsetof(struct fl_client_config, labels)},
    {"cache-dir", offsetof(struct fl_client_config, cache_dir)},
    {"out", offsetof(struct fl_client_config, out)},
    {"keep-updates", offsetof(struct fl_client_config, keep_updates)},
};

int fl_client_config_set(struct fl_client_config *c, const char *name_in, const char *value,
                         const char *origin)
{
    char name[64];
    if (strlen(name_in) >= sizeof name)
        return fl_fail(FL_ENOTFOUND, "%s: unknown option '%.64s...'", origin, name_in);
    snprintf(name, sizeof name, "%s", name_in);
    for (char *p = name; *p; p++)
        if (*p == '_')
            *p = '-';
    for (size_t i = 0; i < sizeof s_strs / sizeof s_strs[0]; i++) {
        if (strcmp(name, s_strs[i].name) != 0)
            continue;
        if (!*value)
            return fl_fail(FL_EINVAL, "%s: --%s is empty", origin, name);
        char **field = (char **)((char *)c + s_strs[i].off), *copy = strdup(value);
        if (!copy)
            return fl_fail(FL_ENOMEM, "%s: out of memory", origin);
        free(*field);
        *field = copy;
        return 0;
    }
    int bad = 0;
    if (!strcmp(name, "holdout")) {
        char *end;
        errno = 0;
        double h = strtod(value, &end);
        bad = errno || end == value || *end || !(h >= 0.0 && h < 1.0);
        if (!bad)
            c->holdout = h;
    } else if (!strcmp(name, "insecure")) {
        bad = s_parse_bool(value, &c->insecure);
    } else if (!strcmp(name, "threads")) {
        bad = s_parse_int(value, 0, 4096, &c->threads);
    } else if (!strcmp(name, "heartbeat-ms")) {
        bad = s_parse_int(value, 0, 600000, &c->heartbeat_ms);
    } else if (!strcmp(name, "connect-timeout")) {
        bad = s_parse_int(value, 0, 86400 * 365, &c->connect_timeout_s);
    } else {
        return fl_fail(FL_ENOTFOUND, "%s: unknown option '%s'", origin, name_in);
    }
    if (bad)
        return fl_fail(FL_EINVAL, "%s: bad value '%.200s' for --%s", origin, value, name);
    return 0;
}

/* What inih's callback needs. */
struct s_ini {
    struct fl_client_config *c; /* options being filled */
    char err[600];              /* the first error */
};

static int s_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct s_ini *x = user;
    if (strcmp(section, "client") != 0)
        return 1; /* other programs' sections */
    char origin[160];
    snprintf(origin, sizeof origin, "[client] %.100s", name);
    if (fl_client_config_set(x->c, name, value ? value : "", origin) != 0) {
        snprintf(x->err, sizeof x->err, "%s", fl_error_msg());
        return 0; /* inih reports this line */
    }
    return 1;
}

int fl_client_config_load(struct fl_client_config *c, const char *path)
{
    struct s_ini x = {.c = c};
    int line = ini_parse(path, s_ini_entry, &x);
    if (line < 0)
        return fl_fail(FL_EIO, "%s: cannot read the config file", path);
    if (line > 0)
        return fl_fail(FL_EFORMAT, "%s: line %d: %s", path, line,
                       x.err[0] ? x.err : "syntax error");
    return 0;
}

int fl_client_config_check(struct fl_client_config *c)
{
    if (!c->coordinator || !c->coordinator_key || !c->key || !c->data)
        return fl_fail(FL_EINVAL,
                       "--coordinator, --coordinator-key, --key and --data are required");
    if (!c->cache_dir && !(c->cache_dir = strdup("./fedtl-cache")))
        return fl_fail(FL_ENOMEM, "out of memory");
    return 0;
}

void fl_client_config_free(struct fl_client_config *c)
{
    for (size_t i = 0; i < sizeof s_strs / sizeof s_strs[0]; i++) {
        char **field = (char **)((char *)c + s_strs[i].off);
        free(*field);
        *field = NULL;
    }
}

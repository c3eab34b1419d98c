/* fl_coord_config: the coordinator's configuration, from an INI file (inih) and flags. */
#include "fl_arch.h"
#include "fl_coord.h"
#include "fl_data.h"
#include "fl_error.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void fl_coord_config_default(struct fl_coord_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->federation, sizeof c->federation, "fedtl");
    snprintf(c->endpoint, sizeof c->endpoint, "tcp://0.0.0.0:7777");
    snprintf(c->state_dir, sizeof c->state_dir, "fedtl-state");
    snprintf(c->method, sizeof c->method, "lora");
    snprintf(c->strategy, sizeof c->strategy, "fedavg");
    c->rounds = 10;
    c->fraction = 1.0;
    c->min_clients = 1;
    c->min_start = 1;
    c->deadline_s = 120;
    c->round_retries = 3;
    c->epochs = 2;
    c->batch = 32;
    c->seed = 1;
    c->heartbeat_ms = 1000;
    c->chunk_size = 256u << 10; /* fastest of 256 KiB, 1 MiB, 4 MiB in bench_basedist */
}

enum s_kind { S_STR, S_INT, S_U32, S_U64, S_DBL, S_FLT, S_BOOL };

struct s_field {
    const char *name; /* key in the file, flag without "--" */
    enum s_kind kind; /* how to parse it */
    size_t off;       /* offset in the config */
    size_t size;      /* buffer size for strings */
    double lo, hi;    /* bounds for numbers */
};

#define F_STR(n, f)                                                                                \
    {                                                                                              \
        n, S_STR, offsetof(struct fl_coord_config, f), sizeof((struct fl_coord_config *)0)->f, 0,  \
            0                                                                                      \
    }
#define F_NUM(n, k, f, lo, hi)                                                                     \
    {                                                                                              \
        n, k, offsetof(struct fl_coord_config, f), 0, lo, hi                                       \
    }

static const struct s_field s_fields[] = {
    F_STR("federation", federation),
    F_STR("endpoint", endpoint),
    F_STR("control", control),
    F_STR("key", key),
    F_STR("allow", allow),
    F_STR("base", base),
    F_STR("state_dir", state_dir),
    F_STR("eval_data", eval_data),
    F_STR("eval_labels", eval_labels),
    F_NUM("rounds", S_INT, rounds, 1, 1e6),
    F_NUM("clients_per_round", S_INT, clients_per_round, 0, 1e6),
    F_NUM("fraction", S_DBL, fraction, 0, 1),
    F_NUM("min_clients", S_INT, min_clients, 1, 1e6),
    F_NUM("min_start", S_INT, min_start, 1, 1e6),
    F_NUM("deadline", S_DBL, deadline_s, 0.1, 1e6),
    F_NUM("start_grace", S_DBL, start_grace_s, 0, 1e6),
    F_NUM("round_retries", S_INT, round_retries, 0, 1000),
    F_NUM("epochs", S_INT, epochs, 1, 10000),
    F_NUM("batch", S_INT, batch, 1, 1 << 16),
    F_NUM("lr", S_FLT, lr, 0, 10),
    F_STR("method", method),
    F_NUM("rank", S_INT, rank, 0, 1024),
    F_NUM("alpha", S_FLT, alpha, 0, 1e6),
    F_STR("targets", targets),
    F_STR("classes", classes),
    F_NUM("seed", S_U64, seed, 0, 18446744073709551615.0),
    F_NUM("heartbeat_ms", S_INT, heartbeat_ms, 10, 600000),
    F_NUM("chunk_size", S_U32, chunk_size, 4096, 4 << 20),
    F_STR("strategy", strategy),
    F_NUM("insecure", S_BOOL, insecure, 0, 1),
    F_NUM("exit_when_done", S_BOOL, exit_when_done, 0, 1),
    F_NUM("threads", S_INT, threads, 0, 1024),
};

static const struct s_field *s_find(const char *key)
{
    char norm[64];
    size_t i = 0;
    for (; key[i] && i < sizeof norm - 1; i++)
        norm[i] = key[i] == '-' ? '_' : key[i];
    norm[i] = '\0';
    for (size_t k = 0; k < sizeof s_fields / sizeof s_fields[0]; k++)
        if (strcmp(s_fields[k].name, norm) == 0)
            return &s_fields[k];
    return NULL;
}

int fl_coord_config_set(struct fl_coord_config *c, const char *key, const char *value)
{
    const struct s_field *f = s_find(key);
    if (!f)
        return fl_fail(FL_ENOTFOUND, "unknown setting '%s'", key);
    char *p = (char *)c + f->off;
    if (f->kind == S_STR) {
        if (strlen(value) >= f->size)
            return fl_fail(FL_EINVAL, "%s: value longer than %zu characters", key, f->size - 1);
        snprintf(p, f->size, "%s", value);
        return 0;
    }
    if (f->kind == S_BOOL) {
        bool v;
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1") ||
            !strcmp(value, "on"))
            v = true;
        else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0") ||
                 !strcmp(value, "off"))
            v = false;
        else
            return fl_fail(FL_EINVAL, "%s: '%s' is not true or false", key, value);
        *(bool *)p = v;
        return 0;
    }
    char *end;
    errno = 0;
    if (f->kind == S_INT || f->kind == S_U32 || f->kind == S_U64) {
        /* Whole numbers only: "2.5" or "1e3" for a count is a mistake to report. */
        unsigned long long u = strtoull(value, &end, 10);
        while (*end == ' ')
            end++;
        if (end == value || *end != '\0' || errno == ERANGE || value[strspn(value, " ")] == '-' ||
            (double)u < f->lo || (double)u > f->hi)
            return fl_fail(FL_EINVAL, "%s: '%s' is not a whole number in [%.0f, %.0f]", key, value,
                           f->lo, f->hi);
        if (f->kind == S_INT)
            *(int *)p = (int)u;
        else if (f->kind == S_U32)
            *(uint32_t *)p = (uint32_t)u;
        else
            *(uint64_t *)p = (uint64_t)u;
        return 0;
    }
    double v = strtod(value, &end);
    while (*end == ' ')
        end++;
    if (end == value || *end != '\0' || !(v >= f->lo && v <= f->hi))
        return fl_fail(FL_EINVAL, "%s: '%s' is not a number in [%g, %g]", key, value, f->lo, f->hi);
    if (f->kind == S_DBL)
        *(double *)p = v;
    else
        *(float *)p = (float)v;
    return 0;
}

struct s_ini_ctx {
    struct fl_coord_config *c; /* being filled */
    const char *path;          /* for messages */
    char err[512];             /* first error */
};

static int s_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    struct s_ini_ctx *x = user;
    if (strcmp(section, "coordinator") != 0 && strcmp(section, "federation") != 0) {
        snprintf(x->err, sizeof x->err, "unknown section [%s]", section);
        return 0;
    }
    if (fl_coord_config_set(x->c, name, value) != 0) {
        snprintf(x->err, sizeof x->err, "%s", fl_error_msg());
        return 0;
    }
    return 1;
}

int fl_coord_config_load(struct fl_coord_config *c, const char *path)
{
    struct s_ini_ctx x = {.c = c, .path = path};
    int line = ini_parse(path, s_ini_handler, &x);
    if (line < 0)
        return fl_fail(FL_EIO, "%s: cannot open", path);
    if (line > 0)
        return fl_fail(FL_EFORMAT, "%s: line %d: %s", path, line,
                       x.err[0] ? x.err : "syntax error");
    return 0;
}

int fl_coord_config_check(const struct fl_coord_config *c)
{
    if (!c->base[0])
        return fl_fail(FL_EINVAL, "no base model: set base = FILE.ftm (or --base)");
    if (!c->allow[0])
        return fl_fail(FL_EINVAL, "no allow-list: set allow = DIR or FILE (or --allow)");
    if (!c->key[0] && !c->insecure)
        return fl_fail(FL_EINVAL, "no coordinator key: set key = FILE.key (or --key)");
    if (!c->key[0])
        return fl_fail(FL_EINVAL, "no coordinator key: updates are sealed to it even with "
                                  "--insecure; set key = FILE.key");
    if (c->min_clients > c->min_start)
        return fl_fail(FL_EINVAL, "min_clients (%d) cannot exceed min_start (%d)", c->min_clients,
                       c->min_start);
    if (c->clients_per_round > 0 && c->clients_per_round < c->min_clients)
        return fl_fail(FL_EINVAL, "clients_per_round (%d) is below min_clients (%d)",
                       c->clients_per_round, c->min_clients);
    enum fl_adapter_kind kind;
    if (fl_adapter_kind_parse(c->method, &kind) != 0)
        return fl_fail(FL_EINVAL, "method: %s", fl_error_msg());
    if (c->classes[0]) {
        int32_t ids[FL_MAX_CLASSES];
        int n = 0;
        if (fl_classes_parse(c->classes, ids, FL_MAX_CLASSES, &n) != 0)
            return fl_fail(FL_EINVAL, "classes: %s", fl_error_msg());
    }
    if (!c->federation[0] || strlen(c->federation) > 63)
        return fl_fail(FL_EINVAL, "federation name must be 1 to 63 characters");
    return 0;
}

void fl_coord_config_print(const struct fl_coord_config *c, FILE *f)
{
    for (size_t k = 0; k < sizeof s_fields / sizeof s_fields[0]; k++) {
        const struct s_field *fd = &s_fields[k];
        const char *p = (const char *)c + fd->off;
        fprintf(f, "%s = ", fd->name);
        switch (fd->kind) {
        case S_STR:
            fprintf(f, "%s\n", p);
            break;
        case S_INT:
            fprintf(f, "%d\n", *(const int *)p);
            break;
        case S_U32:
            fprintf(f, "%u\n", *(const uint32_t *)p);
            break;
        case S_U64:
            fprintf(f, "%llu\n", (unsigned long long)*(const uint64_t *)p);
            break;
        case S_DBL:
            fprintf(f, "%g\n", *(const double *)p);
            break;
        case S_FLT:
            fprintf(f, "%g\n", *(const float *)p);
            break;
        case S_BOOL:
            fprintf(f, "%s\n", *(const bool *)p ? "true" : "false");
            break;
        }
    }
}

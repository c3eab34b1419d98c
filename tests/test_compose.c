/* The container packaging, checked without a Docker engine: docker-compose.yml is validated by
 * docker-compose (when installed), every service's command is read out of it and run against
 * the real binaries with --check-config on files laid out as the volumes would hold them, the
 * commands are compared flag for flag with scripts/simulate.sh, and docker/prepare.sh (the
 * prepare service) runs for real on a small Fashion-MNIST partition.
 *
 * docker-compose.yml is read by a small line parser that knows the subset of YAML the file
 * uses: block mappings by indentation, block and one-line flow lists, quoted scalars,
 * comments, and `<<: *anchor` merges of a top-level `x-...: &anchor` mapping. When
 * docker-compose is installed, its fully resolved `config` output is parsed the same way and
 * must give the same commands, which keeps the parser honest. */
#include <criterion/criterion.h>

#include "fl_testutil.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPOSE_FILE FEDTL_SRC_DIR "/docker-compose.yml"
#define PREPARE_SH   FEDTL_SRC_DIR "/docker/prepare.sh"
#define SIMULATE_SH  FEDTL_SRC_DIR "/scripts/simulate.sh"
#define HOME         "/var/lib/fedtl" /* WORKDIR and volume root in the images */
#define FMNIST       "/usr/share/datasets/fashion-mnist"

#define MAX_LINES 2048
#define MAX_SVC   64
#define MAX_ITEMS 128

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("compose");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

TestSuite(compose, .init = s_setup, .fini = s_teardown, .timeout = 300);

/* ---- a YAML subset ---------------------------------------------------------------------- */

struct s_line {
    int indent;
    char *text; /* without the indentation, a trailing comment or trailing blanks */
};

struct s_yaml {
    struct s_line l[MAX_LINES];
    int n;
};

/* Remove a comment (" #" or a leading "#" outside quotes) and trailing blanks. */
static void s_strip_comment(char *t)
{
    char q = 0;
    for (char *p = t; *p; p++) {
        if (q) {
            if (*p == q)
                q = 0;
        } else if (*p == '\'' || *p == '"') {
            q = *p;
        } else if (*p == '#' && (p == t || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
    }
    size_t n = strlen(t);
    while (n && isspace((unsigned char)t[n - 1]))
        t[--n] = '\0';
}

/* Parse text (modified in place) into non-blank, non-comment lines. */
static void s_yaml_parse(struct s_yaml *y, char *text)
{
    y->n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int ind = 0;
        while (line[ind] == ' ')
            ind++;
        char *t = line + ind;
        s_strip_comment(t);
        if (!*t || !strcmp(t, "---"))
            continue;
        cr_assert_lt(y->n, MAX_LINES, "YAML too long");
        y->l[y->n].indent = ind;
        y->l[y->n].text = t;
        y->n++;
    }
}

/* Does text start with "key:" (then the end or a blank)? *rest gets what follows, trimmed. */
static bool s_key_is(const char *text, const char *key, const char **rest)
{
    size_t k = strlen(key);
    if (strncmp(text, key, k) != 0 || text[k] != ':' || (text[k + 1] && text[k + 1] != ' '))
        return false;
    const char *r = text + k + 1;
    while (*r == ' ')
        r++;
    if (rest)
        *rest = r;
    return true;
}

/* A scalar without its quotes, malloc'd. */
static char *s_unquote(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0])
        s++, n -= 2;
    char *r = malloc(n + 1);
    cr_assert_not_null(r);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

/* The line index of the top-level mapping that defines &name, or -1. */
static int s_anchor(const struct s_yaml *y, const char *name)
{
    size_t k = strlen(name);
    for (int i = 0; i < y->n; i++) {
        const char *a = strchr(y->l[i].text, '&');
        if (a && !strncmp(a + 1, name, k) && a[1 + k] == '\0')
            return i;
    }
    return -1;
}

/* In the mapping opened by line b, the line of key (following `<<: *anchor` merges when the
 * mapping does not set key itself), or -1. */
static int s_get(const struct s_yaml *y, int b, const char *key)
{
    if (b < 0 || b + 1 >= y->n || y->l[b + 1].indent <= y->l[b].indent)
        return -1;
    int body = y->l[b + 1].indent, merge = -1;
    for (int i = b + 1; i < y->n && y->l[i].indent > y->l[b].indent; i++) {
        const char *rest;
        if (y->l[i].indent != body)
            continue;
        if (s_key_is(y->l[i].text, key, NULL))
            return i;
        if (s_key_is(y->l[i].text, "<<", &rest) && rest[0] == '*')
            merge = s_anchor(y, rest + 1);
    }
    return merge >= 0 ? s_get(y, merge, key) : -1;
}

/* The list under the key at line i: a flow list on the line or a block list below it.
 * Returns the number of items (malloc'd strings). */
static int s_list(const struct s_yaml *y, int i, char **out, int max)
{
    int n = 0;
    cr_assert_geq(i, 0);
    const char *rest = strchr(y->l[i].text, ':') + 1;
    while (*rest == ' ')
        rest++;
    if (*rest == '[') {
        const char *end = strrchr(rest, ']');
        cr_assert_not_null(end, "flow list not closed on one line: %s", y->l[i].text);
        const char *p = rest + 1;
        while (p < end) {
            const char *c = p;
            char q = 0;
            while (c < end && (q || *c != ',')) {
                if (q && *c == q)
                    q = 0;
                else if (!q && (*c == '"' || *c == '\''))
                    q = *c;
                c++;
            }
            char *item = s_unquote(p, (size_t)(c - p));
            if (*item) {
                cr_assert_lt(n, max);
                out[n++] = item;
            } else {
                free(item);
            }
            p = c + 1;
        }
        return n;
    }
    cr_assert_eq(*rest, '\0', "expected a list after %s", y->l[i].text);
    for (int j = i + 1; j < y->n && y->l[j].indent >= y->l[i].indent; j++) {
        const char *t = y->l[j].text;
        if (t[0] != '-' || (t[1] != ' ' && t[1] != '\0'))
            break;
        cr_assert_lt(n, max);
        out[n++] = s_unquote(t + 1, strlen(t + 1));
    }
    return n;
}

/* The value of name in the mapping (or KEY=value list) under the key at line i, or NULL. */
static char *s_map_value(const struct s_yaml *y, int i, const char *name)
{
    size_t k = strlen(name);
    for (int j = i + 1; j < y->n && y->l[j].indent > y->l[i].indent; j++) {
        const char *t = y->l[j].text, *rest;
        if (s_key_is(t, name, &rest))
            return s_unquote(rest, strlen(rest));
        if (t[0] == '-' && t[1] == ' ') {
            char *item = s_unquote(t + 2, strlen(t + 2));
            if (!strncmp(item, name, k) && item[k] == '=') {
                char *v = strdup(item + k + 1);
                free(item);
                return v;
            }
            free(item);
        }
    }
    return NULL;
}

/* ---- the services ----------------------------------------------------------------------- */

struct s_svc {
    char name[64];
    int line;
    char *cmd[MAX_ITEMS];
    int ncmd;
    char *vol[MAX_ITEMS]; /* "volume:/target[:mode]" */
    int nvol;
};

struct s_compose {
    char *text;
    struct s_yaml y;
    struct s_svc s[MAX_SVC];
    int n;
};

static void s_compose_parse(struct s_compose *c, char *text)
{
    memset(c, 0, sizeof *c);
    c->text = text;
    s_yaml_parse(&c->y, text);
    const struct s_yaml *y = &c->y;
    int t = -1;
    for (int i = 0; i < y->n; i++)
        if (y->l[i].indent == 0 && s_key_is(y->l[i].text, "services", NULL))
            t = i;
    cr_assert_geq(t, 0, "no services: in the compose file");
    cr_assert_lt(t + 1, y->n);
    int ind = y->l[t + 1].indent;
    for (int i = t + 1; i < y->n && y->l[i].indent > 0; i++) {
        if (y->l[i].indent != ind)
            continue;
        const char *colon = strchr(y->l[i].text, ':');
        cr_assert(colon && colon[1] == '\0', "not a service: %s", y->l[i].text);
        cr_assert_lt(c->n, MAX_SVC);
        struct s_svc *s = &c->s[c->n++];
        snprintf(s->name, sizeof s->name, "%.*s", (int)(colon - y->l[i].text), y->l[i].text);
        s->line = i;
        int k = s_get(y, i, "command");
        if (k >= 0)
            s->ncmd = s_list(y, k, s->cmd, MAX_ITEMS);
        k = s_get(y, i, "volumes");
        if (k >= 0)
            s->nvol = s_list(y, k, s->vol, MAX_ITEMS);
    }
}

static void s_compose_free(struct s_compose *c)
{
    for (int i = 0; i < c->n; i++) {
        for (int k = 0; k < c->s[i].ncmd; k++)
            free(c->s[i].cmd[k]);
        for (int k = 0; k < c->s[i].nvol; k++)
            free(c->s[i].vol[k]);
    }
    free(c->text);
}

static void s_compose_load(struct s_compose *c)
{
    char *text = fl_test_slurp(COMPOSE_FILE);
    cr_assert_not_null(text, "cannot read %s", COMPOSE_FILE);
    s_compose_parse(c, text);
}

static const struct s_svc *s_svc(const struct s_compose *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->s[i].name, name))
            return &c->s[i];
    return NULL;
}

static bool s_is_branch(const struct s_svc *s)
{
    return !strncmp(s->name, "branch-", 7);
}

/* Split "volume:/target[:mode]": the volume name and target (malloc'd), read-only or not. */
static void s_volume(const char *spec, char **vol, char **target, bool *ro)
{
    const char *c1 = strchr(spec, ':');
    cr_assert_not_null(c1, "volume without a target: %s", spec);
    const char *c2 = strchr(c1 + 1, ':');
    *vol = strndup(spec, (size_t)(c1 - spec));
    *target = c2 ? strndup(c1 + 1, (size_t)(c2 - c1 - 1)) : strdup(c1 + 1);
    *ro = c2 && !strcmp(c2 + 1, "ro");
}

/* The value after flag in a command, or NULL. */
static const char *s_flag(const struct s_svc *s, const char *flag)
{
    for (int i = 0; i + 1 < s->ncmd; i++)
        if (!strcmp(s->cmd[i], flag))
            return s->cmd[i + 1];
    return NULL;
}

/* ---- container paths to paths under root ------------------------------------------------ */

/* HOME/x -> root/x: where the prepare service writes (its volumes under HOME). */
static char *s_home(const char *root, const char *p)
{
    size_t h = strlen(HOME);
    char *r = malloc(strlen(root) + strlen(p) + 2);
    cr_assert_not_null(r);
    if (!strncmp(p, HOME, h) && (p[h] == '/' || !p[h]))
        sprintf(r, "%s%s", root, p + h);
    else
        strcpy(r, p);
    return r;
}

/* Where a path of service s's container lies under root: through the volume mounted there,
 * at the place the prepare service mounts that volume (root/...), or root/volumes/NAME for a
 * volume prepare does not write; a path under HOME on no volume is the container's own layer,
 * root/layer/SERVICE/...; any other path (the Fashion-MNIST files) is the host's. */
static char *s_map(const struct s_compose *c, const struct s_svc *s, const char *p)
{
    const struct s_svc *prep = s_svc(c, "prepare");
    for (int i = 0; i < s->nvol; i++) {
        char *vol, *target;
        bool ro;
        s_volume(s->vol[i], &vol, &target, &ro);
        size_t t = strlen(target);
        char *r = NULL;
        if (!strncmp(p, target, t) && (p[t] == '/' || !p[t])) {
            for (int j = 0; prep && j < prep->nvol && !r; j++) {
                char *pv, *pt;
                bool pro;
                s_volume(prep->vol[j], &pv, &pt, &pro);
                if (!strcmp(pv, vol)) {
                    char *inprep = malloc(strlen(pt) + strlen(p) + 1);
                    sprintf(inprep, "%s%s", pt, p + t);
                    r = s_home(s_dir, inprep);
                    free(inprep);
                }
                free(pv);
                free(pt);
            }
            if (!r) {
                r = malloc(strlen(s_dir) + strlen(vol) + strlen(p) + 16);
                sprintf(r, "%s/volumes/%s%s", s_dir, vol, p + t);
            }
        }
        free(vol);
        free(target);
        if (r)
            return r;
    }
    size_t h = strlen(HOME);
    if (!strncmp(p, HOME, h) && (p[h] == '/' || !p[h])) {
        char *r = malloc(strlen(s_dir) + strlen(s->name) + strlen(p) + 16);
        sprintf(r, "%s/layer/%s%s", s_dir, s->name, p + h);
        return r;
    }
    return strdup(p);
}

static void s_mkdirs(const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(fl_test_run(cmd, NULL), 0, "%s", cmd);
}

/* Append a single-quoted shell word. */
static void s_append_word(char *buf, size_t cap, const char *w)
{
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, cap - n, " '");
    for (const char *p = w; *p && n + 8 < cap; p++) {
        if (*p == '\'')
            n += (size_t)snprintf(buf + n, cap - n, "'\\''");
        else
            buf[n++] = *p, buf[n] = '\0';
    }
    cr_assert_lt(n + 2, cap, "command too long");
    strcat(buf, "'");
}

/* Options whose value is a file or directory the program reads: it must exist. */
static bool s_is_input(const char *flag)
{
    static const char *const in[] = {"--key",       "--allow",       "--base",
                                     "--eval-data", "--eval-labels", "--coordinator-key",
                                     "--data",      "--labels",      "--config"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        if (!strcmp(flag, in[i]))
            return true;
    return false;
}

/* Run service s's command, paths mapped, with extra (e.g. "--check-config") appended, from
 * the build directory. Input files must exist (the coordinator's --check-config only checks
 * its settings), output directories are made as the image makes them. Returns the exit
 * status; *out gets the output. */
static int s_run_service(const struct s_compose *c, const struct s_svc *s, const char *extra,
                         char **out)
{
    cr_assert_gt(s->ncmd, 0, "%s has no command", s->name);
    static char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd '%s' &&", s_dir);
    char prog[512];
    snprintf(prog, sizeof prog, "%s/%s", FEDTL_BIN_DIR, s->cmd[0]);
    cr_assert_eq(access(prog, X_OK), 0, "%s runs %s, which is not built", s->name, s->cmd[0]);
    s_append_word(cmd, sizeof cmd, prog);
    for (int i = 1; i < s->ncmd; i++) {
        char *v = s->cmd[i][0] == '/' ? s_map(c, s, s->cmd[i]) : strdup(s->cmd[i]);
        if (s->cmd[i][0] == '/' && i > 0) {
            if (s_is_input(s->cmd[i - 1])) {
                cr_assert_eq(access(v, R_OK), 0, "%s: %s %s: %s is missing", s->name, s->cmd[i - 1],
                             s->cmd[i], v);
            } else if (!strncmp(v, s_dir, strlen(s_dir))) {
                char *d = strdup(v), *slash = strrchr(d, '/');
                *slash = '\0';
                s_mkdirs(d); /* the image's directories (WORKDIR, mount points) */
                free(d);
            }
        }
        s_append_word(cmd, sizeof cmd, v);
        free(v);
    }
    if (extra) {
        strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
        strncat(cmd, extra, sizeof cmd - strlen(cmd) - 1);
    }
    return fl_test_run(cmd, out);
}

/* --check-config for the coordinator and every branch (those with index < nbranches). */
static void s_check_all(const struct s_compose *c, int nbranches)
{
    int checked = 0;
    for (int i = 0; i < c->n; i++) {
        const struct s_svc *s = &c->s[i];
        if (!strcmp(s->name, "prepare"))
            continue;
        if (s_is_branch(s) && atoi(s->name + 7) >= nbranches)
            continue;
        char *out = NULL;
        int rc = s_run_service(c, s, "--check-config", &out);
        cr_assert_eq(rc, 0, "%s: its command with --check-config exited %d:\n%s", s->name, rc,
                     out ? out : "");
        if (!strcmp(s->cmd[0], "fedtl-client")) {
            char want[96];
            snprintf(want, sizeof want, "branch           %s (", s->name);
            cr_assert(out && strstr(out, want), "%s runs with another identity:\n%s", s->name,
                      out ? out : "");
        }
        free(out);
        checked++;
    }
    cr_assert_geq(checked, 2);
}

/* ---- fixtures --------------------------------------------------------------------------- */

static void s_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s: exit %d\n%s", cmd, rc, out ? out : "");
    free(out);
}

/* A CSV of n 28x28 records with labels first..first+k-1, seeded pixels. */
static void s_write_images(const char *path, int n, int first, int k)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    unsigned x = 12345u + (unsigned)first;
    for (int i = 0; i < n; i++) {
        int label = first + i % k;
        fprintf(f, "%d", label);
        for (int j = 0; j < 784; j++) {
            x = x * 1103515245u + 12345u;
            fprintf(f, ",%u", ((x >> 16) % 64u) + (unsigned)(label * 16 + (j % 28) * 2));
        }
        fputc('\n', f);
    }
    fclose(f);
}

/* The files prepare.sh writes, made here with the fedtl tool: keys, the allow-list, a small
 * base pretrained on a tiny CSV, one tiny shard per branch. */
static void s_fixture(int nbranches)
{
    const char *b = FEDTL_BIN_DIR "/fedtl";
    s_sh("cd '%s' && mkdir -p keys allow base branches && %s keygen --out keys/hq --name hq", s_dir,
         b);
    char path[1200];
    snprintf(path, sizeof path, "%s/pre.csv", s_dir);
    s_write_images(path, 40, 0, 5);
    s_sh("cd '%s' && %s pretrain --data pre.csv --classes 0-4 --arch cnn-small --epochs 1 "
         "--quiet --out base/base.ftm && printf '[strategy]\\nname = fedprox\\n' "
         ">base/strategy.ini",
         s_dir, b);
    for (int k = 0; k < nbranches; k++) {
        char d[1024 - 64];
        snprintf(d, sizeof d, "%s/branches/branch-%02d", s_dir, k);
        s_mkdirs(d);
        s_sh("cd '%s' && %s keygen --out branch --name branch-%02d && cp ../../keys/hq.pub . && "
             "cp branch.pub ../../allow/branch-%02d.pub",
             d, b, k, k);
        snprintf(path, sizeof path, "%s/shard.csv", d);
        s_write_images(path, 30, 5, 5);
    }
}

static bool s_have_fashion(void)
{
    return access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access(FMNIST "/t10k-images-idx3-ubyte.gz", R_OK) == 0;
}

/* ---- (a) docker-compose validates the file ---------------------------------------------- */

/* "docker-compose" or "docker compose", or NULL. */
static const char *s_compose_cmd(void)
{
    if (fl_test_run("command -v docker-compose >/dev/null", NULL) == 0)
        return "docker-compose";
    if (fl_test_run("docker compose version >/dev/null 2>&1", NULL) == 0)
        return "docker compose";
    return NULL;
}

Test(compose, docker_compose_config_validates)
{
    const char *dc = s_compose_cmd();
    if (!dc)
        cr_skip_test("neither docker-compose nor docker compose is installed "
                     "(scripts/deps.sh test installs docker-compose)");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "cd '%s' && %s -f '%s' config -q", s_dir, dc, COMPOSE_FILE);
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s: exit %d\n%s", cmd, rc, out ? out : "");
    free(out);

    /* The resolved file (anchors merged) has the commands and volumes the parser found. */
    snprintf(cmd, sizeof cmd, "cd '%s' && %s -f '%s' config 2>/dev/null", s_dir, dc, COMPOSE_FILE);
    rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0);
    struct s_compose mine, theirs;
    s_compose_load(&mine);
    s_compose_parse(&theirs, out);
    cr_assert_eq(theirs.n, mine.n, "docker-compose sees %d services, the parser %d", theirs.n,
                 mine.n);
    for (int i = 0; i < mine.n; i++) {
        const struct s_svc *a = &mine.s[i], *b = s_svc(&theirs, a->name);
        cr_assert_not_null(b, "docker-compose has no service %s", a->name);
        cr_assert_eq(a->ncmd, b->ncmd, "%s: command lengths differ", a->name);
        for (int k = 0; k < a->ncmd; k++)
            cr_assert_str_eq(a->cmd[k], b->cmd[k], "%s: command word %d", a->name, k);
        if (b->nvol && strncmp(b->vol[0], "type:", 5) != 0) { /* short syntax (v1) */
            cr_assert_eq(a->nvol, b->nvol, "%s: volume counts differ", a->name);
            for (int k = 0; k < a->nvol; k++) {
                size_t n = strlen(b->vol[k]);
                if (n > 3 && !strcmp(b->vol[k] + n - 3, ":rw") && strcmp(a->vol[k], b->vol[k]))
                    b->vol[k][n - 3] = '\0';
                cr_assert_str_eq(a->vol[k], b->vol[k], "%s: volume %d", a->name, k);
            }
        }
    }
    s_compose_free(&theirs);
    s_compose_free(&mine);

    /* And it would notice a broken file. */
    char *good = fl_test_slurp(COMPOSE_FILE), *bad = fl_test_path(s_dir, "bad.yml");
    cr_assert_not_null(good);
    char *p = strstr(good, "    command:");
    cr_assert_not_null(p);
    memcpy(p, "    comand: ", 12);
    FILE *f = fopen(bad, "w");
    cr_assert_not_null(f);
    fputs(good, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s -f '%s' --project-directory '%s' config -q", s_dir, dc,
             bad, FEDTL_SRC_DIR);
    rc = fl_test_run(cmd, &out);
    cr_assert_neq(rc, 0, "docker-compose accepted a misspelt key");
    cr_assert(out && strstr(out, "comand"), "%s failed for another reason:\n%s", cmd,
              out ? out : "");
    free(out);
    free(good);
    free(bad);
}

/* ---- (b) the services' commands --------------------------------------------------------- */

Test(compose, services_and_volumes)
{
    struct s_compose c;
    s_compose_load(&c);
    const struct s_svc *prep = s_svc(&c, "prepare"), *coord = s_svc(&c, "coordinator");
    cr_assert_not_null(prep);
    cr_assert_not_null(coord);
    cr_assert(coord->ncmd > 0 && !strcmp(coord->cmd[0], "fedtl-coordinator"));
    cr_assert_str_eq(s_flag(coord, "--endpoint"), "tcp://0.0.0.0:7777");
    cr_assert(prep->ncmd == 1 && !strcmp(prep->cmd[0], "fedtl-prepare"));

    /* prepare's BRANCHES = the branch services = the branch volumes prepare fills. */
    int k = s_get(&c.y, prep->line, "environment");
    cr_assert_geq(k, 0, "prepare has no environment");
    char *env = s_map_value(&c.y, k, "BRANCHES");
    cr_assert_not_null(env, "prepare does not set BRANCHES");
    int branches = atoi(env), nbranch = 0, nfilled = 0;
    free(env);
    for (int i = 0; i < prep->nvol; i++)
        nfilled += strstr(prep->vol[i], ":" HOME "/branches/branch-") != NULL;
    for (int i = 0; i < c.n; i++) {
        const struct s_svc *s = &c.s[i];
        if (!s_is_branch(s))
            continue;
        cr_assert_eq(atoi(s->name + 7), nbranch, "branches must be branch-00, branch-01, ...");
        nbranch++;
        cr_assert(s->ncmd > 0 && !strcmp(s->cmd[0], "fedtl-client"));
        cr_assert_str_eq(s_flag(s, "--coordinator"), "tcp://coordinator:7777");
        /* Only its own volume, read-only, the one prepare fills for it. */
        cr_assert_eq(s->nvol, 1, "%s mounts %d volumes; only its own", s->name, s->nvol);
        char *vol, *target, want[128];
        bool ro;
        s_volume(s->vol[0], &vol, &target, &ro);
        cr_assert_str_eq(vol, s->name, "%s mounts %s", s->name, vol);
        cr_assert(ro, "%s mounts its volume writable", s->name);
        snprintf(want, sizeof want, "%s:" HOME "/branches/%s", s->name, s->name);
        bool filled = false;
        for (int j = 0; j < prep->nvol; j++)
            filled |= !strcmp(prep->vol[j], want);
        cr_assert(filled, "prepare does not mount %s (want %s)", s->name, want);
        free(vol);
        free(target);
    }
    cr_assert_geq(nbranch, 1);
    cr_assert_eq(branches, nbranch, "prepare's BRANCHES is %d, with %d branch services", branches,
                 nbranch);
    cr_assert_eq(nfilled, nbranch, "prepare fills %d branch volumes for %d branches", nfilled,
                 nbranch);
    /* The branches wait for prepare to succeed; the network is internal. */
    const char *text = fl_test_slurp(COMPOSE_FILE);
    cr_assert(strstr(text, "condition: service_completed_successfully"));
    cr_assert(strstr(text, "internal: true"));
    free((char *)text);
    s_compose_free(&c);
}

/* The flags (and literal values) of one of simulate.sh's command lines: from the line that
 * holds start to the first line ending with one of the characters of end, plus the lines
 * holding extra (conditional additions). */
struct s_simflags {
    char *flag[MAX_ITEMS];
    char *value[MAX_ITEMS]; /* a literal value after the flag, or NULL */
    bool required[MAX_ITEMS];
    int n;
};

static void s_sim_add(struct s_simflags *f, char *line, bool required)
{
    char *save = NULL;
    char *prev = NULL;
    for (char *w = strtok_r(line, " \t\\()", &save); w; w = strtok_r(NULL, " \t\\()", &save)) {
        if (!strncmp(w, "--", 2) && isalpha((unsigned char)w[2])) {
            cr_assert_lt(f->n, MAX_ITEMS);
            f->flag[f->n] = strdup(w);
            f->value[f->n] = NULL;
            f->required[f->n] = required;
            f->n++;
            prev = w;
        } else if (prev && f->n) {
            if (!strchr(w, '$') && !strchr(w, '"'))
                f->value[f->n - 1] = strdup(w);
            prev = NULL;
        }
    }
}

static void s_sim_flags(struct s_simflags *f, const char *start, const char *end, const char *extra)
{
    memset(f, 0, sizeof *f);
    char *text = fl_test_slurp(SIMULATE_SH);
    cr_assert_not_null(text);
    bool in = false, found = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!in && strstr(line, start))
            in = found = true;
        if (in) {
            size_t n = strlen(line);
            bool last = n && strchr(end, line[n - 1]);
            s_sim_add(f, line, true);
            if (last)
                in = false;
        } else if (extra && strstr(line, extra)) {
            s_sim_add(f, strstr(line, extra), false);
        }
    }
    cr_assert(found, "simulate.sh has no %s any more", start);
    free(text);
}

static void s_same_as_simulate(const struct s_svc *s, const struct s_simflags *f)
{
    for (int i = 0; i < f->n; i++) {
        bool has = false;
        for (int k = 1; k < s->ncmd; k++)
            has |= !strcmp(s->cmd[k], f->flag[i]);
        if (f->required[i])
            cr_assert(has, "%s lacks %s, which simulate.sh passes", s->name, f->flag[i]);
        const char *v = has ? s_flag(s, f->flag[i]) : NULL;
        if (v && v[0] != '/' && f->value[i]) /* paths are the containers' own */
            cr_assert_str_eq(s_flag(s, f->flag[i]), f->value[i], "%s: %s differs from simulate.sh",
                             s->name, f->flag[i]);
    }
    for (int k = 1; k < s->ncmd; k++) {
        if (strncmp(s->cmd[k], "--", 2) != 0)
            continue;
        bool known = false;
        for (int i = 0; i < f->n; i++)
            known |= !strcmp(s->cmd[k], f->flag[i]);
        cr_assert(known, "%s passes %s, which simulate.sh does not", s->name, s->cmd[k]);
    }
}

Test(compose, commands_match_simulate)
{
    struct s_compose c;
    s_compose_load(&c);
    struct s_simflags coord, branch;
    s_sim_flags(&coord, "coord_cmd=(\"$bin/fedtl-coordinator\"", ")", "coord_cmd+=(");
    s_sim_flags(&branch, "\"$bin/fedtl-client\"", "&", NULL);
    cr_assert_gt(coord.n, 10);
    cr_assert_gt(branch.n, 5);
    for (int i = 0; i < c.n; i++) {
        const struct s_svc *s = &c.s[i];
        if (!strcmp(s->name, "coordinator"))
            s_same_as_simulate(s, &coord);
        else if (s_is_branch(s))
            s_same_as_simulate(s, &branch);
    }
    for (int i = 0; i < coord.n; i++)
        free(coord.flag[i]), free(coord.value[i]);
    for (int i = 0; i < branch.n; i++)
        free(branch.flag[i]), free(branch.value[i]);
    s_compose_free(&c);
}

Test(compose, commands_pass_check_config)
{
    if (!s_have_fashion())
        cr_skip_test("Fashion-MNIST not installed in " FMNIST " (the coordinator evaluates "
                     "on it): scripts/deps.sh test");
    struct s_compose c;
    s_compose_load(&c);
    int nbranch = 0;
    for (int i = 0; i < c.n; i++)
        nbranch += s_is_branch(&c.s[i]);
    s_fixture(nbranch);
    s_check_all(&c, nbranch);

    /* The check can fail: a wrong option, a branch without its shard. */
    const struct s_svc *coord = s_svc(&c, "coordinator"), *b0 = s_svc(&c, "branch-00");
    cr_assert_not_null(b0);
    char *out = NULL;
    int rc = s_run_service(&c, coord, "--no-such-setting 1 --check-config", &out);
    cr_assert_eq(rc, 2, "coordinator with a wrong option: exit %d\n%s", rc, out ? out : "");
    free(out);
    rc = s_run_service(&c, b0, "--no-such-option --check-config", &out);
    cr_assert_eq(rc, 2, "branch with a wrong option: exit %d\n%s", rc, out ? out : "");
    free(out);
    char shard[1024], moved[1100];
    snprintf(shard, sizeof shard, "%s/branches/branch-00/shard.csv", s_dir);
    snprintf(moved, sizeof moved, "%s.away", shard);
    cr_assert_eq(rename(shard, moved), 0);
    s_sh("touch '%s'", shard); /* empty: no records */
    rc = s_run_service(&c, b0, "--check-config", &out);
    cr_assert_neq(rc, 0, "branch with an empty shard passed:\n%s", out ? out : "");
    free(out);
    s_compose_free(&c);
}

/* ---- (c) the prepare service's script, for real ------------------------------------------ */

static int s_prepare(int branches, const char *more, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "env -u FEDTL_USER FEDTL_HOME='%s' FEDTL_BIN='%s' BRANCHES=%d SAMPLES=200 "
             "PRETRAIN_SAMPLES=300 PRETRAIN_EPOCHS=1 TMPDIR='%s' %s bash '%s'",
             s_dir, FEDTL_BIN_DIR, branches, s_dir, more ? more : "", PREPARE_SH);
    return fl_test_run(cmd, out);
}

static mode_t s_mode(const char *rel)
{
    char *p = fl_test_path(s_dir, rel);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "prepare.sh did not make %s", rel);
    free(p);
    return st.st_mode & 07777;
}

Test(compose, prepare_script_makes_what_the_services_use)
{
    if (!s_have_fashion())
        cr_skip_test("Fashion-MNIST not installed in " FMNIST ": scripts/deps.sh test");
    char *out = NULL;
    int rc = s_prepare(2,
                       "STRATEGY=fedprox STRATEGY_OPTS='proximal_mu=0.1 norm_bound_median=3 "
                       "server_lr_decay=0.5 server_lr_decay_after=14'",
                       &out);
    cr_assert_eq(rc, 0, "prepare.sh: exit %d\n%s", rc, out ? out : "");
    free(out);
    cr_assert_eq(s_mode("keys/hq.key"), 0600);
    s_mode("keys/hq.pub");
    s_mode("base/base.ftm");
    /* The compose file's strategy, as the coordinator reads it with --config. */
    cr_assert_eq(s_mode("base/strategy.ini") & 0777, 0644);
    char *ini_path = fl_test_path(s_dir, "base/strategy.ini"), *ini = fl_test_slurp(ini_path);
    cr_assert(ini && strstr(ini, "[strategy]\nname = fedprox\nproximal_mu = 0.1\n"
                                 "norm_bound_median = 3\nserver_lr_decay = 0.5\n"
                                 "server_lr_decay_after = 14\n"),
              "%s", ini ? ini : "");
    free(ini);
    for (int k = 0; k < 2; k++) {
        char p[256];
        snprintf(p, sizeof p, "allow/branch-%02d.pub", k);
        s_mode(p);
        snprintf(p, sizeof p, "branches/branch-%02d/branch.key", k);
        cr_assert_eq(s_mode(p), 0600);
        snprintf(p, sizeof p, "branches/branch-%02d/hq.pub", k);
        s_mode(p);
        snprintf(p, sizeof p, "branches/branch-%02d/shard.csv", k);
        cr_assert_eq(s_mode(p) & 0007, 0, "%s is readable by anyone", p);
    }
    s_sh("cmp -s '%s/keys/hq.pub' '%s/branches/branch-01/hq.pub'", s_dir, s_dir);
    s_sh("%s/fedtl inspect '%s/base/base.ftm' >/dev/null", FEDTL_BIN_DIR, s_dir);

    /* The coordinator and those two branches, as docker-compose.yml runs them, accept it. */
    struct s_compose c;
    s_compose_load(&c);
    s_check_all(&c, 2);
    s_compose_free(&c);

    /* Again: the same keys, the same base, the same shards. */
    s_sh("cd '%s' && mkdir old && cp keys/hq.pub base/base.ftm old/ && "
         "cp branches/branch-01/shard.csv old/ && cp branches/branch-01/branch.pub old/",
         s_dir);
    rc = s_prepare(2, NULL, &out);
    cr_assert_eq(rc, 0, "prepare.sh again: exit %d\n%s", rc, out ? out : "");
    cr_assert(out && strstr(out, "reusing the base"), "%s", out ? out : "");
    free(out);
    /* with no STRATEGY, the same: the recommendation for skewed branches (docs/STRATEGIES.md) */
    ini = fl_test_slurp(ini_path);
    cr_assert(ini && strstr(ini, "[strategy]\nname = fedprox\nproximal_mu = 0.1\n"
                                 "norm_bound_median = 3\nserver_lr_decay = 0.5\n"
                                 "server_lr_decay_after = 14\n"),
              "%s", ini ? ini : "");
    free(ini);
    free(ini_path);
    s_sh("cd '%s' && cmp -s old/hq.pub keys/hq.pub && cmp -s old/base.ftm base/base.ftm && "
         "cmp -s old/shard.csv branches/branch-01/shard.csv && "
         "cmp -s old/branch.pub allow/branch-01.pub",
         s_dir);

    /* A strategy setting that is not KEY=VALUE is refused, naming it. */
    rc = s_prepare(2, "STRATEGY_OPTS='proximal_mu=0.1 norm_bound_median'", &out);
    cr_assert_eq(rc, 2, "a bad STRATEGY_OPTS: exit %d\n%s", rc, out ? out : "");
    cr_assert(out && strstr(out, "'norm_bound_median' is not KEY=VALUE"), "%s", out ? out : "");
    free(out);

    /* BRANCHES that does not match the branch volumes is refused. */
    rc = s_prepare(1, NULL, &out);
    cr_assert_eq(rc, 2, "BRANCHES=1 with two branch volumes: exit %d\n%s", rc, out ? out : "");
    cr_assert(out && strstr(out, "BRANCHES"), "%s", out ? out : "");
    free(out);
    rc = s_prepare(2, "REQUIRE_MOUNTS=1", &out); /* nothing is a volume here */
    cr_assert_eq(rc, 2, "REQUIRE_MOUNTS=1 without volumes: exit %d\n%s", rc, out ? out : "");
    free(out);
    rc = s_prepare(0, NULL, &out);
    cr_assert_eq(rc, 2, "BRANCHES=0: exit %d\n%s", rc, out ? out : "");
    free(out);
}

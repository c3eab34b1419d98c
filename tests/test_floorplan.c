/* The floor plan (docs/ARCHITECTURE.md) as the tree holds it: every header a file of common/
 * includes comes from its own layer or one below, the engine (common/nn) includes nothing
 * about files, protobuf or ZeroMQ, and no source file outside tests/ grows past about 600
 * lines.
 * The build enforces the layers too (a layer's library sees only the headers below it); this
 * test names the offending line. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <string.h>

static const char *const s_layers[] = {"base", "nn", "data", "model", "trust", "wire", "fed"};
#define S_NLAYERS       ((int)(sizeof s_layers / sizeof s_layers[0]))
#define S_MAX_OFFENDERS 64
#define S_MAX_LINES     620 /* "about 600" */

/* Layer index of the folder holding header name, or -1 when it is not one of common/'s. */
static int s_layer_of_header(const char *name)
{
    char path[512];
    for (int l = 0; l < S_NLAYERS; l++) {
        snprintf(path, sizeof path, "%s/common/%s/%s", FEDTL_SRC_DIR, s_layers[l], name);
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            return l;
        }
    }
    return -1;
}

/* Calls fn(path, line number, the included name, quoted?) for every #include of path. */
typedef void(s_include_fn)(const char *path, int lineno, const char *name, bool quoted, void *arg);
static void s_each_include(const char *path, s_include_fn *fn, void *arg)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: cannot open", path);
    char line[1024];
    for (int lineno = 1; fgets(line, sizeof line, f); lineno++) {
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "#include", 8) != 0)
            continue;
        p += 8;
        while (*p == ' ' || *p == '\t')
            p++;
        char close = *p == '"' ? '"' : *p == '<' ? '>' : 0;
        const char *end = close ? strchr(p + 1, close) : NULL;
        if (!end)
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        fn(path, lineno, name, close == '"', arg);
    }
    fclose(f);
}

/* Calls fn(path) for every .c and .h file directly in dir. */
static void s_each_source(const char *dir, void (*fn)(const char *path, void *arg), void *arg)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: cannot open", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 3 || e->d_name[n - 2] != '.' ||
            (e->d_name[n - 1] != 'c' && e->d_name[n - 1] != 'h'))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fn(path, arg);
    }
    closedir(d);
}

struct s_check {
    int layer;                        /* the layer being checked */
    int bad;                          /* offences found */
    char what[S_MAX_OFFENDERS][1400]; /* the first of them, for the message */
};

static void s_note(struct s_check *c, const char *fmt, const char *path, int lineno,
                   const char *name)
{
    if (c->bad < S_MAX_OFFENDERS)
        snprintf(c->what[c->bad], sizeof c->what[0], fmt, path + strlen(FEDTL_SRC_DIR) + 1, lineno,
                 name);
    c->bad++;
}

static void s_check_include(const char *path, int lineno, const char *name, bool quoted, void *arg)
{
    struct s_check *c = arg;
    int l = quoted ? s_layer_of_header(name) : -1;
    if (l > c->layer)
        s_note(c, "%s:%d includes \"%s\" from a layer above", path, lineno, name);
    if (quoted && (strstr(name, "..") || strchr(name, '/')))
        s_note(c, "%s:%d includes \"%s\" by a path around the layers", path, lineno, name);
}

static void s_check_file(const char *path, void *arg)
{
    s_each_include(path, s_check_include, arg);
}

static void s_expect_none(const struct s_check *c, const char *what)
{
    for (int i = 0; i < c->bad && i < S_MAX_OFFENDERS; i++)
        cr_log_error("%s", c->what[i]);
    cr_expect_eq(c->bad, 0, "%d %s (listed above)", c->bad, what);
}

Test(floorplan, every_include_points_down_the_layers)
{
    for (int l = 0; l < S_NLAYERS; l++) {
        struct s_check c = {.layer = l};
        char dir[512];
        snprintf(dir, sizeof dir, "%s/common/%s", FEDTL_SRC_DIR, s_layers[l]);
        s_each_source(dir, s_check_file, &c);
        s_expect_none(&c, "includes point up the layers");
    }
}

/* What the engine must not know: files, protobuf, ZeroMQ (and the file formats). */
static void s_check_engine_include(const char *path, int lineno, const char *name, bool quoted,
                                   void *arg)
{
    static const char *const banned[] = {
        "zmq.h",        "czmq.h",     "protobuf-c", ".pb-c.h",  "fl_fs.h",    "fl_modelfile.h",
        "fl_filecodec", "fl_codec.h", "fl_data.h",  "fl_idx.h", "fl_csv.h",   "fl_gzread.h",
        "zlib.h",       "sys/mman.h", "fcntl.h",    "dirent.h", "sys/stat.h", "sodium.h"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(name, banned[i]))
            s_note(arg, "%s:%d: the engine includes <%s>", path, lineno, name);
}

static void s_check_engine_file(const char *path, void *arg)
{
    s_each_include(path, s_check_engine_include, arg);
    /* and opens no file by itself */
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[1024];
    for (int lineno = 1; fgets(line, sizeof line, f); lineno++)
        if (strstr(line, "fopen(") || strstr(line, "open(") || strstr(line, "mmap("))
            s_note(arg, "%s:%d: the engine opens a file (%s)", path, lineno, "open/fopen/mmap");
    fclose(f);
}

Test(floorplan, the_engine_knows_no_files_protobuf_or_sockets)
{
    struct s_check c = {.layer = 1};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/common/nn", FEDTL_SRC_DIR);
    s_each_source(dir, s_check_engine_file, &c);
    s_expect_none(&c, "things the engine must not know");
}

static void s_count_lines(const char *path, void *arg)
{
    struct s_check *c = arg;
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int lines = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        lines += ch == '\n';
    fclose(f);
    if (lines > S_MAX_LINES) {
        char n[32];
        snprintf(n, sizeof n, "%d", lines);
        s_note(c, "%s:%d: %s lines", path, lines, n);
    }
}

Test(floorplan, no_source_outside_tests_is_longer_than_about_600_lines)
{
    static const char *const dirs[] = {"common/base",  "common/nn",   "common/data", "common/model",
                                       "common/trust", "common/wire", "common/fed",  "coordinator",
                                       "client",       "tools",       "bench",       "fuzz"};
    struct s_check c = {0};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", FEDTL_SRC_DIR, dirs[i]);
        s_each_source(dir, s_count_lines, &c);
    }
    s_expect_none(&c, "files over the limit");
}

Test(floorplan, nothing_is_left_flat_in_common)
{
    struct s_check c = {0};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/common", FEDTL_SRC_DIR);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 2 && e->d_name[n - 2] == '.' &&
            (e->d_name[n - 1] == 'c' || e->d_name[n - 1] == 'h'))
            s_note(&c, "%s:%d: %s belongs in a layer's folder", dir, 0, e->d_name);
    }
    closedir(d);
    s_expect_none(&c, "files outside the layers");
}

/* fl_options, what the table prints: the usage line, --help and --check-config. */
#include "fl_options.h"

#include <string.h>

#define S_COLUMN_MAX 30  /* widest flag column before help moves to the next line */
#define S_LINE       100 /* columns of --help */

/* "N", "PATH", "a|b|c": what an option's value looks like. */
static void s_metavar(const struct fl_option *o, char *buf, size_t len)
{
    static const char *const by_type[] = {
        [FL_OPTION_BOOL] = "",    [FL_OPTION_INT] = "N",       [FL_OPTION_UINT] = "N",
        [FL_OPTION_DOUBLE] = "X", [FL_OPTION_STRING] = "TEXT", [FL_OPTION_PATH] = "PATH",
        [FL_OPTION_CHOICE] = "",  [FL_OPTION_SIZE] = "SIZE"};
    if (o->metavar) {
        snprintf(buf, len, "%s", o->metavar);
        return;
    }
    snprintf(buf, len, "%s", by_type[o->type]);
    if (o->type != FL_OPTION_CHOICE)
        return;
    size_t n = 0;
    for (const struct fl_option_choice *c = o->choices; c->name && n < len; c++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", c == o->choices ? "" : "|", c->name);
}

/* The left column of an option: "--rounds N", "--insecure", "name = X" (file only). */
static void s_left(const struct fl_option *o, char *buf, size_t len)
{
    char flag[96], meta[256];
    fl_options_flag(o->name, flag, sizeof flag);
    s_metavar(o, meta, sizeof meta);
    if (o->where == FL_OPTION_INI_ONLY)
        snprintf(buf, len, "%s = %s", o->name, meta[0] ? meta : "BOOL");
    else
        snprintf(buf, len, "%s%s%s", flag, meta[0] ? " " : "", meta);
}

void fl_options_usage(const struct fl_options_spec *s, FILE *f)
{
    fprintf(f, "usage: %s", s->program);
    for (size_t k = 0; k < s->noptions; k++) {
        const struct fl_option *o = &s->options[k];
        char left[400];
        if ((o->flags & FL_OPTION_REQUIRED) && o->where != FL_OPTION_INI_ONLY) {
            s_left(o, left, sizeof left);
            fprintf(f, " %s", left);
        }
    }
    fprintf(f, " [OPTIONS]");
    if (s->positional)
        fprintf(f, s->min_positional ? " %s%s" : " [%s%s]", s->positional,
                s->max_positional > 1 ? "..." : "");
    fprintf(f, "\n");
}

/* One row of --help: the left column padded to width, then the help text and more, wrapped
 * at S_LINE columns under the help column. */
static void s_row(FILE *f, int width, const char *left, const char *help, const char *more)
{
    char text[1024];
    snprintf(text, sizeof text, "%s%s", help, more);
    int room = S_LINE - width - 4;
    if (room < 20)
        room = 20;
    if ((int)strlen(left) > width)
        fprintf(f, "  %s\n  %-*s  ", left, width, "");
    else
        fprintf(f, "  %-*s  ", width, left);
    const char *p = text;
    while (*p) {
        int n = (int)strlen(p);
        if (n > room) { /* cut at the last blank that fits, or the first one after */
            n = room;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = (int)strcspn(p, " ");
        }
        fprintf(f, "%.*s\n", n, p);
        p += n;
        while (*p == ' ')
            p++;
        if (*p)
            fprintf(f, "  %-*s  ", width, "");
    }
}

void fl_options_help(const struct fl_options_spec *s, const void *defaults, FILE *f)
{
    int width = (int)strlen("-h, --help");
    char left[400], value[512], more[640];
    for (size_t k = 0; k < s->noptions; k++) {
        s_left(&s->options[k], left, sizeof left);
        if ((int)strlen(left) > width && (int)strlen(left) <= S_COLUMN_MAX)
            width = (int)strlen(left);
    }
    if (s->sections && width < (int)strlen("--config FILE"))
        width = (int)strlen("--config FILE");
    fl_options_usage(s, f);
    if (s->about)
        fprintf(f, "%s", s->about);
    const char *group = NULL;
    for (size_t k = 0; k < s->noptions; k++) {
        const struct fl_option *o = &s->options[k];
        if (k == 0 || (o->group && (!group || strcmp(o->group, group) != 0))) {
            group = o->group;
            fprintf(f, "\n%s:\n", group ? group : "Options");
        }
        s_left(o, left, sizeof left);
        fl_options_format(o, defaults, value, sizeof value);
        if (o->flags & FL_OPTION_REQUIRED)
            snprintf(more, sizeof more, " (required)");
        else if (value[0])
            snprintf(more, sizeof more, " (default: %s)", value);
        else
            more[0] = '\0';
        s_row(f, width, left, o->help, more);
    }
    fprintf(f, "\nGeneral:\n");
    if (s->sections) {
        size_t n = (size_t)snprintf(more, sizeof more, "read the section");
        for (const char *const *p = s->sections; *p && n < sizeof more; p++)
            n += (size_t)snprintf(more + n, sizeof more - n, "%s[%s]",
                                  p == s->sections ? " " : " or ", *p);
        snprintf(more + (n < sizeof more ? n : sizeof more - 1),
                 sizeof more - (n < sizeof more ? n : sizeof more - 1),
                 " of FILE; flags override it");
        s_row(f, width, "--config FILE", more, "");
    }
    if (s->check_config)
        s_row(f, width, "--check-config", "check the configuration, print it (INI) and exit", "");
    for (size_t k = 0; k < s->nactions; k++) {
        fl_options_flag(s->actions[k].name, left, sizeof left);
        s_row(f, width, left, s->actions[k].help, "");
    }
    s_row(f, width, "-h, --help", "print this help and exit", "");
    if (s->epilogue)
        fprintf(f, "\n%s", s->epilogue);
}

void fl_options_print(const struct fl_options_spec *s, const void *cfg, FILE *f)
{
    char value[8192];
    if (s->sections && s->sections[0])
        fprintf(f, "[%s]\n", s->sections[0]);
    for (size_t k = 0; k < s->noptions; k++) {
        const struct fl_option *o = &s->options[k];
        fl_options_format(o, cfg, value, sizeof value);
        fprintf(f, "%s%s = %s\n", o->where == FL_OPTION_FLAG_ONLY ? "; " : "", o->name, value);
    }
}

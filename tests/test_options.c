/* fl_options: one typed table drives the command line, the INI file, --help and
 * --check-config, with one reading of every value. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_options.h"
#include "fl_testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A program's configuration with a field of every kind. */
struct s_cfg {
    bool flag;            /* BOOL */
    int count;            /* INT [-5, 100], validated */
    uint32_t small;       /* UINT, 32 bits [1, 4096] */
    uint64_t big_number;  /* UINT, 64 bits */
    size_t bytes;         /* UINT, size_t */
    double ratio;         /* DOUBLE [0, 1) */
    float rate;           /* DOUBLE into a float [0, 10] */
    char name[8];         /* STRING in a char array */
    char *owned;          /* PATH, owned, required */
    const char *borrowed; /* STRING from argv */
    char mode[12];        /* CHOICE, its name in a char array */
    int level;            /* CHOICE, its value */
    const char *pick;     /* CHOICE, its name borrowed from the table */
    char path[64];        /* PATH, file only */
};

static const struct fl_option_choice s_modes[] = {{"fast", 0}, {"slow", 1}, {NULL, 0}};
static const struct fl_option_choice s_levels[] = {{"low", 10}, {"high", 20}, {NULL, 0}};

static int s_not_13(const char *value)
{
    return strcmp(value, "13") == 0 ? fl_fail(FL_EINVAL, "13 brings bad luck") : 0;
}

#define F(f) FL_OPTION_FIELD(struct s_cfg, f)
static const struct fl_option s_options[] = {
    {"flag", .type = FL_OPTION_BOOL, F(flag), .def = "false", .group = "Switches",
     .help = "a switch"},
    {"count", .type = FL_OPTION_INT, F(count), .range.i = {-5, 100}, .def = "7",
     .validate = s_not_13, .group = "Numbers", .help = "a count"},
    {"small", .type = FL_OPTION_UINT, F(small), .range.u = {1, 4096}, .def = "16",
     .help = "a 32-bit number"},
    {"big_number", .type = FL_OPTION_UINT, F(big_number), .range.u = {0, UINT64_MAX}, .def = "1",
     .help = "a 64-bit number"},
    {"bytes", .type = FL_OPTION_UINT, F(bytes), .range.u = {0, SIZE_MAX}, .help = "a size"},
    {"ratio", .type = FL_OPTION_DOUBLE, .flags = FL_OPTION_HI_OPEN, F(ratio), .range.d = {0, 1},
     .def = "0.5", .help = "a share"},
    {"rate", .type = FL_OPTION_DOUBLE, F(rate), .range.d = {0, 10}, .def = "0.25",
     .help = "a rate"},
    {"name", .type = FL_OPTION_STRING, .store = FL_OPTION_CHARS, F(name), .def = "abc",
     .group = "Text", .help = "a short name"},
    {"owned", .type = FL_OPTION_PATH, .store = FL_OPTION_OWNED, .flags = FL_OPTION_REQUIRED,
     F(owned), .metavar = "FILE", .help = "a file"},
    {"borrowed", .type = FL_OPTION_STRING, .where = FL_OPTION_FLAG_ONLY,
     .store = FL_OPTION_BORROWED, F(borrowed), .help = "text from argv"},
    {"mode", .type = FL_OPTION_CHOICE, .store = FL_OPTION_CHARS, F(mode), .choices = s_modes,
     .def = "fast", .help = "a mode"},
    {"level", .type = FL_OPTION_CHOICE, F(level), .choices = s_levels, .def = "low",
     .help = "a level"},
    {"pick", .type = FL_OPTION_CHOICE, .store = FL_OPTION_BORROWED, F(pick), .choices = s_modes,
     .help = "a pick"},
    {"path", .type = FL_OPTION_PATH, .where = FL_OPTION_INI_ONLY, .store = FL_OPTION_CHARS, F(path),
     .help = "a path, in the file only"},
};

static const struct fl_option s_sibling_options[] = {
    {"only_there", .type = FL_OPTION_BOOL, F(flag), .help = "the sibling's"},
};

static const char *const s_sections[] = {"test", "alias", NULL};
static const char *const s_foreign[] = {"other", NULL};
static const struct fl_options_action s_actions[] = {{"daemon", "detach"}};
extern const struct fl_options_spec *const s_family[];

static const struct fl_options_spec s_spec = {
    .program = "fltest",
    .about = "A program with an option of every kind.\n",
    .epilogue = "The end.\n",
    .options = s_options,
    .noptions = sizeof s_options / sizeof s_options[0],
    .sections = s_sections,
    .foreign = s_foreign,
    .check_config = true,
    .actions = s_actions,
    .nactions = 1,
    .positional = "FILE",
    .max_positional = 2,
    .siblings = s_family,
};

static const struct fl_options_spec s_sibling = {
    .program = "fltest other",
    .options = s_sibling_options,
    .noptions = 1,
    .siblings = s_family,
};

const struct fl_options_spec *const s_family[] = {&s_spec, &s_sibling, NULL};

static void s_default(struct s_cfg *c)
{
    memset(c, 0, sizeof *c);
    fl_options_reset(&s_spec, c);
}

/* Parse a NULL-terminated argument list after "fltest". */
static int s_parse(struct s_cfg *c, struct fl_options_args *a, const char *const *args)
{
    char *argv[32] = {"fltest"};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    return fl_options_parse(&s_spec, c, argc, argv, a);
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static bool s_has(const char *msg, const char *a, const char *b)
{
    return strstr(msg, a) && (!b || strstr(msg, b));
}

Test(fl_options, the_table_is_well_formed_and_defaults_apply)
{
    cr_assert_eq(fl_options_check_spec(&s_spec), 0, "%s", fl_error_msg());
    struct s_cfg c;
    s_default(&c);
    cr_assert(!c.flag);
    cr_assert_eq(c.count, 7);
    cr_assert_eq(c.small, 16);
    cr_assert_eq(c.big_number, 1);
    cr_assert_float_eq(c.ratio, 0.5, 0);
    cr_assert_float_eq(c.rate, 0.25f, 0);
    cr_assert_str_eq(c.name, "abc");
    cr_assert_null(c.owned);
    cr_assert_str_eq(c.mode, "fast");
    cr_assert_eq(c.level, 10);
    cr_assert_null(c.pick);
}

Test(fl_options, booleans_read_one_way)
{
    const char *yes[] = {"true", "TRUE", "True", "yes", "YES", "on", "On", "1"};
    const char *no[] = {"false", "FALSE", "no", "No", "off", "OFF", "0"};
    const char *bad[] = {"", "y", "n", "2", "-1", "truee", " true", "enabled", "t"};
    bool v;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_assert(fl_options_parse_bool(yes[i], &v) == 0 && v, "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert(fl_options_parse_bool(no[i], &v) == 0 && !v, "%s", no[i]);
    struct s_cfg c;
    s_default(&c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fl_options_parse_bool(bad[i], &v), FL_EINVAL, "'%s'", bad[i]);
        cr_assert_eq(fl_options_set(&s_spec, &c, "flag", bad[i], "here"), FL_EINVAL);
        char want[64];
        snprintf(want, sizeof want, "'%s'", bad[i]);
        cr_assert(s_has(fl_error_msg(), "here: --flag", want), "%s", fl_error_msg());
    }
    cr_assert_eq(fl_options_set(&s_spec, &c, "flag", "Yes", NULL), 0);
    cr_assert(c.flag);
}

Test(fl_options, whole_numbers_are_whole_and_within_range)
{
    struct s_cfg c;
    s_default(&c);
    cr_assert_eq(fl_options_set(&s_spec, &c, "count", "-5", NULL), 0);
    cr_assert_eq(c.count, -5);
    cr_assert_eq(fl_options_set(&s_spec, &c, "count", " 42 ", NULL), 0, "blanks around");
    cr_assert_eq(c.count, 42);
    const char *bad[] = {
        "-6", "101", "2.5", "1e3", "abc", "", "0x10", "4 2", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fl_options_set(&s_spec, &c, "count", bad[i], NULL), FL_EINVAL, "'%s'", bad[i]);
        cr_assert(s_has(fl_error_msg(), "--count", "[-5, 100]"), "%s", fl_error_msg());
    }
    cr_assert_eq(c.count, 42, "a refused value changes nothing");
    cr_assert_eq(fl_options_set(&s_spec, &c, "count", "13", NULL), FL_EINVAL, "the validator");
    cr_assert(s_has(fl_error_msg(), "--count", "bad luck"), "%s", fl_error_msg());
    cr_assert_eq(fl_options_set(&s_spec, &c, "small", "4096", NULL), 0);
    cr_assert_eq(c.small, 4096);
    const char *bad_small[] = {"0", "4097", "-1", "-0"};
    for (size_t i = 0; i < sizeof bad_small / sizeof bad_small[0]; i++)
        cr_assert_eq(fl_options_set(&s_spec, &c, "small", bad_small[i], NULL), FL_EINVAL, "'%s'",
                     bad_small[i]);
    cr_assert_eq(fl_options_set(&s_spec, &c, "big-number", "18446744073709551615", NULL), 0);
    cr_assert_eq(c.big_number, UINT64_MAX, "every one of 64 bits");
    cr_assert_eq(fl_options_set(&s_spec, &c, "big_number", "18446744073709551616", NULL),
                 FL_EINVAL);
    cr_assert_eq(fl_options_set(&s_spec, &c, "bytes", "123456789012", NULL), 0);
    cr_assert_eq(c.bytes, (size_t)123456789012ull);
}

Test(fl_options, real_numbers_are_finite_and_within_range)
{
    struct s_cfg c;
    s_default(&c);
    cr_assert_eq(fl_options_set(&s_spec, &c, "ratio", "0.999", NULL), 0);
    cr_assert_float_eq(c.ratio, 0.999, 0);
    cr_assert_eq(fl_options_set(&s_spec, &c, "ratio", "0", NULL), 0);
    const char *bad[] = {"1", "1.5", "-0.1", "nan", "inf", "", "0.2x", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fl_options_set(&s_spec, &c, "ratio", bad[i], NULL), FL_EINVAL, "'%s'", bad[i]);
        cr_assert(s_has(fl_error_msg(), "--ratio", "[0, 1)"), "%s", fl_error_msg());
    }
    cr_assert_eq(fl_options_set(&s_spec, &c, "rate", "10", NULL), 0, "a closed bound");
    cr_assert_float_eq(c.rate, 10.0f, 0);
    cr_assert_eq(fl_options_set(&s_spec, &c, "rate", "10.5", NULL), FL_EINVAL);
    cr_assert(s_has(fl_error_msg(), "[0, 10]", NULL), "%s", fl_error_msg());
    cr_assert_eq(fl_options_set(&s_spec, &c, "rate", "2.5e-1", NULL), 0);
    cr_assert_float_eq(c.rate, 0.25f, 0);
}

Test(fl_options, text_fits_holds_no_control_characters_and_empty_unsets)
{
    struct s_cfg c;
    s_default(&c);
    cr_assert_eq(fl_options_set(&s_spec, &c, "name", "1234567", NULL), 0);
    cr_assert_str_eq(c.name, "1234567");
    cr_assert_eq(fl_options_set(&s_spec, &c, "name", "12345678", NULL), FL_EINVAL);
    cr_assert(s_has(fl_error_msg(), "--name", "longer than 7"), "%s", fl_error_msg());
    cr_assert_eq(fl_options_set(&s_spec, &c, "name", "a\nb", NULL), FL_EINVAL);
    cr_assert(s_has(fl_error_msg(), "control character", "a\\x0ab"), "%s", fl_error_msg());
    cr_assert_str_eq(c.name, "1234567");
    cr_assert_eq(fl_options_set(&s_spec, &c, "name", "", NULL), 0, "empty: the default again");
    cr_assert_str_eq(c.name, "abc");
    cr_assert_eq(fl_options_set(&s_spec, &c, "owned", "a.txt", NULL), 0);
    cr_assert_eq(fl_options_set(&s_spec, &c, "owned", "b.txt", NULL), 0, "the old one is freed");
    cr_assert_str_eq(c.owned, "b.txt");
    cr_assert_eq(fl_options_set(&s_spec, &c, "owned", "", NULL), FL_EINVAL, "required");
    cr_assert(s_has(fl_error_msg(), "--owned", "empty"), "%s", fl_error_msg());
    const char *text = "from argv";
    cr_assert_eq(fl_options_set(&s_spec, &c, "borrowed", text, NULL), 0);
    cr_assert_eq(c.borrowed, text, "borrowed, not copied");
    cr_assert_eq(fl_options_set(&s_spec, &c, "borrowed", "", NULL), 0);
    cr_assert_null(c.borrowed);
    fl_options_free(&s_spec, &c);
    cr_assert_null(c.owned);
    fl_options_free(&s_spec, &c);
}

Test(fl_options, choices_ignore_case_and_name_the_others)
{
    struct s_cfg c;
    s_default(&c);
    cr_assert_eq(fl_options_set(&s_spec, &c, "mode", "SLOW", NULL), 0);
    cr_assert_str_eq(c.mode, "slow", "the choice's own spelling is kept");
    cr_assert_eq(fl_options_set(&s_spec, &c, "level", "High", NULL), 0);
    cr_assert_eq(c.level, 20);
    cr_assert_eq(fl_options_set(&s_spec, &c, "pick", "fast", NULL), 0);
    cr_assert_eq(c.pick, s_modes[0].name, "a borrowed choice points into the table");
    cr_assert_eq(fl_options_set(&s_spec, &c, "mode", "medium", NULL), FL_EINVAL);
    cr_assert(s_has(fl_error_msg(), "'medium' is not one of fast, slow", NULL), "%s",
              fl_error_msg());
    cr_assert_eq(fl_options_set(&s_spec, &c, "level", "", NULL), FL_EINVAL, "a value is no text");
    cr_assert_eq(fl_options_set(&s_spec, &c, "mode", "", NULL), 0);
    cr_assert_str_eq(c.mode, "fast", "empty: the default again");
    cr_assert_eq(fl_options_set(&s_spec, &c, "nope", "1", "origin"), FL_ENOTFOUND);
    cr_assert(s_has(fl_error_msg(), "origin: unknown option 'nope'", NULL), "%s", fl_error_msg());
}

Test(fl_options, flags_take_values_both_ways_and_switches_bare)
{
    struct s_cfg c;
    struct fl_options_args a;
    s_default(&c);
    const char *args[] = {"--count", "5",          "--small=32",  "--flag",   "--big_number",
                          "9",       "--name=x y", "in.txt",      "--daemon", "--check-config",
                          "--owned", "o.txt",      "--pick=slow", "--",       "--count",
                          NULL};
    cr_assert_eq(s_parse(&c, &a, args), 0, "%s", fl_error_msg());
    cr_assert(c.flag && c.count == 5 && c.small == 32 && c.big_number == 9);
    cr_assert_str_eq(c.name, "x y");
    cr_assert_str_eq(c.pick, "slow");
    cr_assert(a.check_config && (a.actions & 1) && !a.help);
    cr_assert_eq(a.npositional, 2);
    cr_assert_str_eq(a.positional[0], "in.txt");
    cr_assert_str_eq(a.positional[1], "--count", "after --, everything is an argument");
    const char *off[] = {"--flag=false", "--daemon=no", "--check-config=0", NULL};
    cr_assert_eq(s_parse(&c, &a, off), 0, "%s", fl_error_msg());
    cr_assert(!c.flag && !a.actions && !a.check_config);
    const char *later[] = {"--count", "1", "--count=2", NULL};
    cr_assert_eq(s_parse(&c, &a, later), 0);
    cr_assert_eq(c.count, 2, "a later flag wins");
    fl_options_free(&s_spec, &c);
}

Test(fl_options, bad_flags_are_refused_by_name)
{
    struct {
        const char *args[4]; /* the command line */
        const char *want[2]; /* in the message */
    } cases[] = {
        {{"--bogus", NULL}, {"unknown option --bogus", NULL}},
        {{"--bogus=1", NULL}, {"unknown option --bogus", NULL}},
        {{"-x", NULL}, {"unknown option -x", NULL}},
        {{"--only-there", NULL}, {"--only-there does not apply here", "fltest other"}},
        {{"--path", "p", NULL}, {"--path", "configuration file"}},
        {{"--count", NULL}, {"--count needs a value", NULL}},
        {{"--count", "--flag", NULL}, {"--count needs a value", NULL}},
        {{"--count", "2.5", NULL}, {"--count", "'2.5'"}},
        {{"--flag=maybe", NULL}, {"--flag", "'maybe'"}},
        {{"--daemon=maybe", NULL}, {"--daemon", "boolean"}},
        {{"a", "b", "c", NULL}, {"unexpected argument 'c'", NULL}},
        {{"--config", NULL}, {"--config needs a value", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct s_cfg c;
        struct fl_options_args a;
        s_default(&c);
        cr_assert_neq(s_parse(&c, &a, cases[i].args), 0, "case %zu", i);
        cr_assert(s_has(fl_error_msg(), cases[i].want[0], cases[i].want[1]), "case %zu: %s", i,
                  fl_error_msg());
        cr_assert_eq(c.count, 7, "nothing was applied");
    }
}

Test(fl_options, help_anywhere_wins_and_reads_nothing)
{
    struct s_cfg c;
    struct fl_options_args a;
    s_default(&c);
    const char *args[] = {"--count", "9", "--bogus", "--help", NULL};
    cr_assert_eq(s_parse(&c, &a, args), 0);
    cr_assert(a.help);
    cr_assert_eq(c.count, 7);
    const char *h[] = {"-h", NULL};
    cr_assert_eq(s_parse(&c, &a, h), 0);
    cr_assert(a.help);
}

Test(fl_options, the_file_reads_its_sections_and_names_file_line_and_key)
{
    char *dir = fl_test_tmpdir("opts");
    char *path = fl_test_path(dir, "t.ini");
    struct s_cfg c;
    s_default(&c);
    s_write(path, "; comment\r\n[test]\r\ncount = 3\r\n[other]\r\nanything = goes\r\n[alias]\r\n"
                  "big-number = 12\r\npath = /var/x\r\nflag = ON\r\n");
    cr_assert_eq(fl_options_load(&s_spec, &c, path), 0, "%s", fl_error_msg());
    cr_assert(c.count == 3 && c.big_number == 12 && c.flag);
    cr_assert_str_eq(c.path, "/var/x");
    struct {
        const char *text; /* the file */
        int line;         /* the line reported */
        const char *want; /* in the message */
    } cases[] = {
        {"[test]\ncount = 3\nbogus = 1\n", 3, "unknown option 'bogus' in [test]"},
        {"[test]\nborrowed = x\n", 2, "'borrowed' is a command-line flag only"},
        {"[test]\nflag =\n", 2, "flag: '' is not a boolean"},
        {"[test]\nflag\n", 2, "syntax error"},
        {"count = 1\n", 1, "outside any section (expected [test] or [alias])"},
        {"[elsewhere]\ncount = 1\n", 2, "unknown section [elsewhere]"},
        {"[test]\nratio = 2\ncount = 1000\n", 2, "ratio: '2' is not a number in [0, 1)"},
        {"[test]\nno value here\nratio = 2\n", 2, "syntax error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write(path, cases[i].text);
        s_default(&c);
        cr_assert_eq(fl_options_load(&s_spec, &c, path), FL_EFORMAT, "case %zu", i);
        char line[32];
        snprintf(line, sizeof line, "line %d: ", cases[i].line);
        cr_assert(s_has(fl_error_msg(), path, line) && strstr(fl_error_msg(), cases[i].want),
                  "case %zu: %s", i, fl_error_msg());
    }
    /* A line longer than inih holds, or holding a NUL, is refused whole: the line numbers
     * after it stay the file's. */
    char text[600];
    snprintf(text, sizeof text, "[test]\nname = %0300d\ncount = x\n", 1);
    s_write(path, text);
    cr_assert_eq(fl_options_load(&s_spec, &c, path), FL_EFORMAT);
    cr_assert(s_has(fl_error_msg(), "line 2: the line is longer than", NULL), "%s", fl_error_msg());
    s_write(path, "[test]\nowned = x\n");
    FILE *f = fopen(path, "a");
    fwrite("name = a\0b\ncount = x\n", 1, 21, f);
    fclose(f);
    s_default(&c);
    cr_assert_eq(fl_options_load(&s_spec, &c, path), FL_EFORMAT);
    cr_assert(s_has(fl_error_msg(), "line 3: a NUL character", NULL), "%s", fl_error_msg());
    fl_options_free(&s_spec, &c);
    s_write(path, "[test]\ncount = 500\nsmall = 64\n");
    s_default(&c);
    cr_assert_eq(fl_options_load(&s_spec, &c, path), FL_EFORMAT);
    cr_assert_eq(c.small, 64, "later keys are still read");
    char *missing = fl_test_path(dir, "none.ini");
    cr_assert_eq(fl_options_load(&s_spec, &c, missing), FL_EIO);
    cr_assert(s_has(fl_error_msg(), missing, NULL), "%s", fl_error_msg());
    free(missing);
    fl_test_rmtree(dir);
    free(dir);
    free(path);
}

Test(fl_options, flags_override_the_file_wherever_config_is)
{
    char *dir = fl_test_tmpdir("optp");
    char *one = fl_test_path(dir, "one.ini"), *two = fl_test_path(dir, "two.ini");
    s_write(one, "[test]\ncount = 3\nsmall = 5\nname = file\nflag = yes\n");
    s_write(two, "[test]\nsmall = 6\n");
    struct s_cfg c;
    struct fl_options_args a;
    s_default(&c);
    const char *args[] = {"--count", "4", "--config", one, "--flag=false", "--config=", NULL};
    char cfg2[1100];
    snprintf(cfg2, sizeof cfg2, "--config=%s", two);
    args[5] = cfg2;
    cr_assert_eq(s_parse(&c, &a, args), 0, "%s", fl_error_msg());
    cr_assert_eq(c.count, 4, "the flag over the file, though given before --config");
    cr_assert(!c.flag, "--flag=false over flag = yes");
    cr_assert_eq(c.small, 6, "the second file over the first");
    cr_assert_str_eq(c.name, "file", "the file over the default");
    cr_assert_eq(c.big_number, 1, "the default where nothing is said");
    const char *bad[] = {"--config", two, "--count", "1", NULL};
    s_write(two, "[test]\ncount = x\n");
    s_default(&c);
    cr_assert_eq(s_parse(&c, &a, bad), FL_EFORMAT);
    cr_assert(s_has(fl_error_msg(), two, "line 2"), "%s", fl_error_msg());
    fl_test_rmtree(dir);
    free(dir);
    free(one);
    free(two);
}

/* fl_options_help's text. */
static char *s_help(const struct s_cfg *defaults)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fl_options_help(&s_spec, defaults, f);
    fclose(f);
    return text;
}

Test(fl_options, help_lists_every_option_with_its_default)
{
    struct s_cfg c;
    s_default(&c);
    char *text = s_help(&c);
    const char *want[] = {"usage: fltest --owned FILE [OPTIONS] [FILE...]\n",
                          "A program with an option of every kind.\n",
                          "\nSwitches:\n",
                          "\nNumbers:\n",
                          "\nText:\n",
                          "  --flag ",
                          "(default: false)",
                          "  --count N ",
                          "a count (default: 7)",
                          "  --small N ",
                          "  --big-number N ",
                          "(default: 1)",
                          "  --bytes N ",
                          "  --ratio X ",
                          "(default: 0.5)",
                          "  --rate X ",
                          "(default: 0.25)",
                          "  --name TEXT ",
                          "(default: abc)",
                          "  --owned FILE ",
                          "a file (required)",
                          "  --borrowed TEXT ",
                          "  --mode fast|slow ",
                          "(default: fast)",
                          "  --level low|high ",
                          "(default: low)",
                          "  --pick fast|slow ",
                          "  path = PATH ",
                          "  --config FILE ",
                          "[test] or [alias]",
                          "  --check-config ",
                          "  --daemon ",
                          "  -h, --help ",
                          "The end.\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(text, want[i]), "no '%s' in:\n%s", want[i], text);
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        cr_expect(n <= 100, "a line of %zu columns:\n%.*s", n, (int)n, p);
        p += n + (p[n] == '\n');
    }
    free(text);
}

Test(fl_options, the_printed_configuration_loads_back_the_same)
{
    struct s_cfg c, d;
    s_default(&c);
    const char *set[][2] = {{"flag", "on"},       {"count", "-3"},
                            {"small", "4095"},    {"big_number", "18446744073709551615"},
                            {"bytes", "77"},      {"ratio", "0.1"},
                            {"rate", "0.3"},      {"name", "n a m"},
                            {"owned", "dir/f.x"}, {"mode", "slow"},
                            {"level", "high"},    {"pick", "slow"},
                            {"borrowed", "argv"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        cr_assert_eq(fl_options_set(&s_spec, &c, set[i][0], set[i][1], NULL), 0, "%s",
                     fl_error_msg());
    char *dir = fl_test_tmpdir("optc");
    char *path = fl_test_path(dir, "effective.ini");
    FILE *f = fopen(path, "w");
    fl_options_print(&s_spec, &c, f);
    fclose(f);
    char *text = fl_test_slurp(path);
    cr_assert(strncmp(text, "[test]\n", 7) == 0, "%s", text);
    cr_assert(strstr(text, "\nratio = 0.1\n") && strstr(text, "\nrate = 0.3\n") &&
                  strstr(text, "\nlevel = high\n") && strstr(text, "\n; borrowed = argv\n") &&
                  strstr(text, "\npath = \n"),
              "one line per option, the shortest numbers that read back:\n%s", text);
    s_default(&d);
    cr_assert_eq(fl_options_load(&s_spec, &d, path), 0, "%s\n%s", fl_error_msg(), text);
    cr_assert(d.flag == c.flag && d.count == c.count && d.small == c.small &&
              d.big_number == c.big_number && d.bytes == c.bytes && d.ratio == c.ratio &&
              d.rate == c.rate && d.level == c.level);
    cr_assert_str_eq(d.name, c.name);
    cr_assert_str_eq(d.owned, c.owned);
    cr_assert_str_eq(d.mode, c.mode);
    cr_assert_str_eq(d.path, c.path);
    cr_assert_null(d.borrowed, "a command-line flag is a comment in the file");
    fl_options_free(&s_spec, &c);
    fl_options_free(&s_spec, &d);
    free(text);
    fl_test_rmtree(dir);
    free(dir);
    free(path);
}

Test(fl_options, required_options_are_named)
{
    struct s_cfg c;
    s_default(&c);
    cr_assert_eq(fl_options_check_required(&s_spec, &c), FL_EINVAL);
    cr_assert(s_has(fl_error_msg(), "--owned is required", NULL), "%s", fl_error_msg());
    cr_assert_eq(fl_options_set(&s_spec, &c, "owned", "x", NULL), 0);
    cr_assert_eq(fl_options_check_required(&s_spec, &c), 0);
    fl_options_free(&s_spec, &c);
}

/* A spec of one entry, for the table checks. */
static int s_check_one(struct fl_option o)
{
    struct fl_options_spec s = {.program = "bad", .options = &o, .noptions = 1};
    return fl_options_check_spec(&s);
}

Test(fl_options, a_malformed_table_is_caught)
{
    struct fl_option ok = {"count", .type = FL_OPTION_INT, F(count), .range.i = {0, 9},
                           .help = "h"};
    cr_assert_eq(s_check_one(ok), 0, "%s", fl_error_msg());
    struct fl_option o = ok;
    o.size = sizeof(long long);
    cr_assert_eq(s_check_one(o), FL_EINVAL, "an int option on a long long");
    o = ok;
    o.def = "10";
    cr_assert_eq(s_check_one(o), FL_EINVAL, "a default out of range");
    cr_assert(s_has(fl_error_msg(), "'count'", "default"), "%s", fl_error_msg());
    o = ok;
    o.flags = FL_OPTION_REQUIRED;
    cr_assert_eq(s_check_one(o), FL_EINVAL, "a required number");
    o = ok;
    o.name = "help";
    cr_assert_eq(s_check_one(o), FL_EINVAL, "a built-in's name");
    o = (struct fl_option){
        "owned",    .type = FL_OPTION_PATH, .store = FL_OPTION_OWNED, F(owned), .def = "x",
        .help = "h"};
    cr_assert_eq(s_check_one(o), FL_EINVAL, "owned text with a default");
    o = (struct fl_option){"borrowed", .type = FL_OPTION_STRING, .store = FL_OPTION_BORROWED,
                           F(borrowed), .help = "h"};
    cr_assert_eq(s_check_one(o), FL_EINVAL, "borrowed text from a file");
    o = (struct fl_option){"rate", .type = FL_OPTION_DOUBLE, F(rate), .help = "h",
                           .range.d = {1, 0}};
    cr_assert_eq(s_check_one(o), FL_EINVAL, "an empty range");
    struct fl_option two[] = {ok, ok};
    two[1].name = "Count";
    struct fl_options_spec s = {.program = "bad", .options = two, .noptions = 2};
    cr_assert_eq(fl_options_check_spec(&s), 0, "names are case-sensitive");
    two[1].name = "count";
    cr_assert_eq(fl_options_check_spec(&s), FL_EINVAL, "a name taken twice");
}

/* A byte count option alone. */
struct s_sized {
    size_t budget;  /* SIZE, 64 bits */
    uint32_t small; /* SIZE, 32 bits */
};
#define Z(f) FL_OPTION_FIELD(struct s_sized, f)
static const struct fl_option s_size_options[] = {
    {"budget", .type = FL_OPTION_SIZE, Z(budget), .range.u = {1, (unsigned long long)1 << 50},
     .def = "1G", .help = "a budget"},
    {"small", .type = FL_OPTION_SIZE, Z(small), .range.u = {0, UINT32_MAX}, .def = "4K",
     .help = "a small size"},
};
static const struct fl_options_spec s_size_spec = {
    .program = "sized", .options = s_size_options, .noptions = 2};

Test(fl_options, sizes_take_binary_suffixes_and_print_back_exactly)
{
    struct s_sized c = {0};
    cr_assert_eq(fl_options_check_spec(&s_size_spec), 0, "%s", fl_error_msg());
    fl_options_reset(&s_size_spec, &c);
    cr_expect_eq(c.budget, (size_t)1 << 30);
    cr_expect_eq(c.small, 4096u);
    const struct {
        const char *text;
        size_t want;
        const char *printed;
    } ok[] = {{"512M", (size_t)512 << 20, "512M"},
              {"1536m", (size_t)1536 << 20, "1536M"},
              {"2g", (size_t)2 << 30, "2G"},
              {"64KiB", 64 << 10, "64K"},
              {"1000", 1000, "1000"},
              {"1025B", 1025, "1025"},
              {"1T", (size_t)1 << 40, "1T"},
              {"1024T", (size_t)1 << 50, "1024T"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(fl_options_set(&s_size_spec, &c, "budget", ok[i].text, NULL), 0, "%s: %s",
                     ok[i].text, fl_error_msg());
        cr_expect_eq(c.budget, ok[i].want, "%s read as %zu", ok[i].text, c.budget);
        char buf[64];
        fl_options_format(&s_size_options[0], &c, buf, sizeof buf);
        cr_expect_str_eq(buf, ok[i].printed);
    }
    const char *bad[] = {
        "0", "-1", "1X", "1.5G", "", "G", "1 G", "1KK", "1Gb!", "1025T", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t before = c.budget;
        cr_expect_eq(fl_options_set(&s_size_spec, &c, "budget", bad[i], "cmd"), FL_EINVAL,
                     "'%s' accepted", bad[i]);
        cr_expect_not_null(strstr(fl_error_msg(), "--budget"), "%s", fl_error_msg());
        cr_expect_eq(c.budget, before, "'%s' changed the value", bad[i]);
    }
    cr_expect_eq(fl_options_set(&s_size_spec, &c, "small", "4G", NULL), FL_EINVAL);
    cr_expect_not_null(strstr(fl_error_msg(), "between 0 and 4294967295 bytes"), "%s",
                       fl_error_msg());
}

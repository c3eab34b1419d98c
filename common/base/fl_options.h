/* fl_options: one typed option table per program drives its command line, its INI file
 * (libinih), its --help and its --check-config (the effective configuration, as an INI file
 * that loads back to the same values). A table entry names an option, its type and bounds, its
 * default, where it may be set and the field of the program's configuration struct it fills.
 *
 * Precedence, lowest first:
 *   1. the defaults: what the struct holds before parsing (fl_options_reset writes every
 *      entry's `def` into it; an entry without one keeps what the program put there);
 *   2. the INI file(s) named by --config FILE, in argv order, reading the program's sections;
 *   3. the flags, in argv order: a later flag overrides an earlier one and the file.
 *
 * One reading of every value, wherever it comes from:
 *   - booleans: true/false, yes/no, on/off, 1/0, in any case; anything else, an empty value
 *     included, is an error naming the option and the value. On the command line a bare
 *     `--flag` means true, and `--flag=false` sets it false.
 *   - whole numbers are whole (no "2.5", no "1e3"), real numbers finite; both within the
 *     entry's range.
 *   - an empty value leaves a text option unset (its default, or none); a required option
 *     refuses it.
 *   - text holds no control characters and fits the field.
 * Names: '-' and '_' are alike ("state-dir" is "state_dir"), otherwise exact; choices ignore
 * case. Unknown flags and keys are refused, naming them (and the file and line). The engine keeps
 * no state between calls (messages go to fl_error's per-thread buffer). Values and the table's
 * checks are in fl_options.c, the INI file and the command line in fl_options_read.c, what the
 * table prints (usage, --help, --check-config) in fl_options_help.c. */
#ifndef FL_OPTIONS_H
#define FL_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How an option's text is read. */
enum fl_option_type {
    FL_OPTION_BOOL,   /* bool */
    FL_OPTION_INT,    /* int within range.i */
    FL_OPTION_UINT,   /* uint32_t, uint64_t or size_t (by size) within range.u */
    FL_OPTION_DOUBLE, /* double or float (by size) within range.d */
    FL_OPTION_STRING, /* text of at most max_len bytes (char arrays: their size - 1) */
    FL_OPTION_PATH,   /* a file, directory or socket name: text, shown as PATH */
    FL_OPTION_CHOICE, /* one of choices[] */
    FL_OPTION_SIZE    /* a byte count, a whole number with an optional binary suffix K, M, G
                         or T (1G = 2^30; a trailing B or iB allowed), into a uint32_t,
                         uint64_t or size_t within range.u (in bytes) */
};

/* Where an option may be given. */
enum fl_option_where {
    FL_OPTION_BOTH = 0,  /* --name on the command line and name = in the file */
    FL_OPTION_FLAG_ONLY, /* the command line only */
    FL_OPTION_INI_ONLY   /* the file only */
};

/* How the value is kept in the struct. */
enum fl_option_store {
    FL_OPTION_VALUE = 0, /* the value itself (a choice: its int value) */
    FL_OPTION_CHARS,     /* text copied into a char[size] */
    FL_OPTION_OWNED,     /* text in a malloc'd char * the struct owns (fl_options_free) */
    FL_OPTION_BORROWED   /* const char *: the argv text (FLAG_ONLY), or a choice's name */
};

/* Entry flags. */
enum {
    FL_OPTION_REQUIRED = 1 << 0, /* must be set; an empty value is refused */
    FL_OPTION_HI_OPEN = 1 << 1,  /* a double's upper bound is excluded: [lo, hi) */
    FL_OPTION_ANY_TEXT = 1 << 2  /* text may hold control characters (a name written only
                                    through escaping writers: JSON, escaped log values) */
};

/* One choice: its name as typed and, for FL_OPTION_VALUE storage, its value. */
struct fl_option_choice {
    const char *name; /* NULL ends the list */
    int value;        /* stored into an int field */
};

/* An option's bounds, inclusive unless FL_OPTION_HI_OPEN: the member its type reads. */
union fl_option_range {
    struct {
        long long lo, hi; /* lowest and highest accepted */
    } i;                  /* FL_OPTION_INT */
    struct {
        unsigned long long lo, hi; /* lowest and highest accepted */
    } u;                           /* FL_OPTION_UINT, FL_OPTION_SIZE */
    struct {
        double lo, hi; /* lowest and highest (or first refused) accepted */
    } d;               /* FL_OPTION_DOUBLE */
};

/* One option of a program. */
struct fl_option {
    const char *name;            /* INI key, "state_dir"; the flag is --state-dir */
    enum fl_option_type type;    /* how its text is read */
    enum fl_option_where where;  /* command line, file or both */
    enum fl_option_store store;  /* how the struct keeps it */
    unsigned flags;              /* FL_OPTION_REQUIRED, FL_OPTION_HI_OPEN */
    size_t offset;               /* of the field in the program's struct */
    size_t size;                 /* of the field (FL_OPTION_FIELD fills both) */
    union fl_option_range range; /* bounds */
    size_t max_len;              /* text in a pointer field: longest accepted (0: 4096) */
    const struct fl_option_choice *choices; /* FL_OPTION_CHOICE: the accepted names */
    const char *def;                        /* default as text (NULL: the struct's initial value) */
    const char *metavar;                    /* placeholder in --help (NULL: from the type) */
    const char *group;                      /* --help heading, shared by consecutive entries */
    const char *help;                       /* one line for --help */
    /* Optional further check of a value that parsed: 0, or FL_EINVAL with fl_error_set()
     * saying what is wrong (the option's name is prefixed). */
    int (*validate)(const char *value);
};

/* Offset and size of field f of struct type T, for an fl_option initialiser. */
#define FL_OPTION_FIELD(T, f) .offset = offsetof(T, f), .size = sizeof(((T *)0)->f)

/* A command-line switch that asks the program to do something rather than configure it
 * (fedtl-coordinator --daemon); reported in fl_options_args.actions. */
struct fl_options_action {
    const char *name; /* flag without "--" */
    const char *help; /* one line for --help */
};

/* A key that means an option under another name in one INI section ([strategy] name = is
 * the coordinator's strategy). */
struct fl_options_alias {
    const char *section; /* the section, "strategy" (NULL ends the list) */
    const char *key;     /* the key there, "name" */
    const char *option;  /* the option it sets, "strategy" */
};

/* A program (or a subcommand) and its table. */
struct fl_options_spec {
    const char *program;                     /* "fedtl-client", "fedtl finetune" */
    const char *about;                       /* paragraph printed under the usage line */
    const char *epilogue;                    /* printed after the options (may be NULL) */
    const struct fl_option *options;         /* the table */
    size_t noptions;                         /* its length */
    const char *const *sections;             /* INI sections read (NULL-ended; NULL: no file) */
    const char *const *foreign;              /* other programs' sections, skipped (NULL-ended) */
    bool check_config;                       /* offers --check-config */
    const struct fl_options_action *actions; /* program switches (at most 16) */
    size_t nactions;                         /* their number */
    const char *positional;                  /* placeholder of positional arguments, "FILE" */
    int min_positional, max_positional;      /* how many (at most 8) */
    /* Sibling subcommands (NULL-ended, may include this one): a flag of theirs "does not apply"
     * here rather than being unknown. */
    const struct fl_options_spec *const *siblings;
    const struct fl_options_alias *aliases; /* section keys with another name (may be NULL) */
};

#define FL_OPTIONS_MAX_POSITIONAL 8
/* Longest text a pointer field takes when its entry sets no max_len. */
#define FL_OPTIONS_TEXT_MAX 4096

/* What fl_options_parse found besides the configuration. */
struct fl_options_args {
    bool help;                                         /* --help or -h: nothing else was read */
    bool check_config;                                 /* --check-config */
    unsigned actions;                                  /* bit i: spec->actions[i] given */
    int npositional;                                   /* positional arguments */
    const char *positional[FL_OPTIONS_MAX_POSITIONAL]; /* in order (argv's strings) */
};

/* The one boolean rule: true/false, yes/no, on/off, 1/0, any case. 0 or FL_EINVAL. */
int fl_options_parse_bool(const char *text, bool *out);

/* The entry called name[0..n) ('-' and '_' alike), or NULL. */
const struct fl_option *fl_options_find(const struct fl_options_spec *s, const char *name,
                                        size_t n);
/* An option's flag: "state_dir" -> "--state-dir". */
void fl_options_flag(const char *name, char *buf, size_t len);
/* Write every entry's default into cfg (entries without one are left alone). */
void fl_options_reset(const struct fl_options_spec *s, void *cfg);
/* Set option `name` ('-' and '_' alike) from text, as a flag would. origin (may be NULL)
 * prefixes messages, which spell the option --name. A refused value changes nothing.
 * 0, FL_ENOTFOUND (no such option), FL_EINVAL (bad value) or FL_ENOMEM. */
int fl_options_set(const struct fl_options_spec *s, void *cfg, const char *name, const char *value,
                   const char *origin);
/* Read the spec's sections of an INI file over cfg. Other fedtl programs' sections are
 * skipped; an unknown section or key, a flag-only option or a bad value is an error. Every
 * line is read; the first error is returned: FL_EIO (cannot open) or FL_EFORMAT, with a message
 * naming the file, the line and the key. */
int fl_options_load(const struct fl_options_spec *s, void *cfg, const char *path);
/* Parse argv[1..argc) (argv[0] is the program or subcommand) over cfg: the files of --config
 * first, then the flags (see the precedence above). With --help or -h anywhere, sets
 * out->help and reads nothing else. 0, or an FL_E code with a message naming the flag (or the
 * file and line) and the program: a usage error. */
int fl_options_parse(const struct fl_options_spec *s, void *cfg, int argc, char **argv,
                     struct fl_options_args *out);
/* The required options that are not set: 0, or FL_EINVAL naming them. */
int fl_options_check_required(const struct fl_options_spec *s, const void *cfg);
/* The usage line: "usage: PROGRAM --required X ... [OPTIONS]". */
void fl_options_usage(const struct fl_options_spec *s, FILE *f);
/* --help: the usage line, the about text, every option grouped and aligned with its value in
 * `defaults` shown as its default, the built-in flags and the epilogue. */
void fl_options_help(const struct fl_options_spec *s, const void *defaults, FILE *f);
/* --check-config: "[section]" then one "name = value" line per option (flag-only ones as
 * "; name = value" comments), which fl_options_load reads back to the same values as long as
 * each line fits inih's (a value of about 180 characters or more does not). */
void fl_options_print(const struct fl_options_spec *s, const void *cfg, FILE *f);
/* One option's value as text (as fl_options_print writes it) into buf. */
void fl_options_format(const struct fl_option *o, const void *cfg, char *buf, size_t len);
/* Free the owned strings of cfg (FL_OPTION_OWNED) and set them to NULL; twice is harmless. */
void fl_options_free(const struct fl_options_spec *s, void *cfg);
/* The table is well formed: field sizes fit the types, names are unique, defaults parse.
 * 0, or FL_EINVAL naming the entry (a programmer's error: for tests and asserts). */
int fl_options_check_spec(const struct fl_options_spec *s);

#endif

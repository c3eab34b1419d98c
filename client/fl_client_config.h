/* fl_client_config: fedtl-client's options, one table (fl_options) for the command line, the
 * INI file (section [client]; [coordinator] and [federation] are the coordinator's and are
 * skipped), --help and --check-config. Keys are the long options, with '_' and '-' alike.
 * Errors name where the value came from and what is wrong with it. */
#ifndef FL_CLIENT_CONFIG_H
#define FL_CLIENT_CONFIG_H

#include "fl_options.h"
#include "fl_table.h"

#include <stdbool.h>

/* Every option; strings are owned (malloc'd) or NULL when not given. */
struct fl_client_config {
    char *coordinator;     /* endpoint, e.g. tcp://hq:7777 */
    char *coordinator_key; /* the coordinator's .pub (pinned) */
    char *key;             /* the branch's .key */
    char *data;            /* local data (CSV, or IDX images) */
    char *labels;          /* IDX labels */
    char *cache_dir;       /* base model cache */
    char *out;             /* final adapter */
    char *keep_updates;    /* directory for each round's own adapter */
    char *http;            /* serve /metrics here (NULL: off) */
    double holdout;        /* share of records held out for evaluation */
    char *augment;         /* training augmentation, "crop,flip" (NULL: none) */
    size_t cache_budget;   /* decoded image records held in memory, bytes */
    bool insecure;         /* plaintext, no CURVE */
    int threads;           /* training threads, 0 = every core */
    int heartbeat_ms;      /* 0 = the coordinator's */
    int connect_timeout_s; /* give up after this much silence, 0 = never */
    /* a CSV with a header: the label column's name, the feature columns' (comma-separated),
     * what a missing value does (error, mean or drop); parsed by fl_client_config_check */
    char *label_column, *columns, *missing;
    struct fl_table_opts table;
#ifdef FEDTL_TESTING
    int test_attack;           /* test builds only: enum fl_attack_kind (fl_attack.h) */
    double test_attack_factor; /* test builds only: its F, 0 = the attack's default */
#endif
};

/* fedtl-client's options; fields of struct fl_client_config. */
extern const struct fl_options_spec fl_client_config_spec;

/* Defaults for every option. */
void fl_client_config_default(struct fl_client_config *c);
/* Set option `name` to `value`; origin ("FILE [client] KEY", "command line") prefixes
 * messages. An empty value unsets an optional option and is refused for a required one.
 * 0, or FL_EINVAL (bad or empty value), FL_ENOTFOUND (unknown option), FL_ENOMEM. */
int fl_client_config_set(struct fl_client_config *c, const char *name, const char *value,
                         const char *origin);
/* Read the [client] section of an INI file over c. 0, or FL_EIO / FL_EFORMAT naming the file,
 * the line and (for a bad value) the key; the first error wins, later keys are still read. An
 * unknown section is an error; the coordinator's are skipped. */
int fl_client_config_load(struct fl_client_config *c, const char *path);
/* The options needed to run are there (coordinator, coordinator_key, key, data); the cache
 * directory defaults to ./fedtl-cache. 0 or FL_EINVAL saying what is missing. */
int fl_client_config_check(struct fl_client_config *c);
void fl_client_config_free(struct fl_client_config *c);
/* How the data is read as a CSV with a header (label_column, columns, missing, checked by
 * fl_client_config_check), or NULL when none of them is set (a plain CSV). Points into c. */
const struct fl_table_opts *fl_client_config_table(const struct fl_client_config *c);

#endif

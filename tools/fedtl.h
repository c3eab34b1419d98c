/* The fedtl tool: shared option handling for its subcommands. Each subcommand has its own
 * option table (fl_options); a flag is accepted only where its table lists it. */
#ifndef FEDTL_TOOL_H
#define FEDTL_TOOL_H

#include "fl_arch.h"
#include "fl_data.h"
#include "fl_method.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_options.h"
#include "fl_train.h"

#include <stdbool.h>
#include <stdint.h>

/* Options of the subcommands; each uses those of its table. Text points into argv. */
struct tool_opts {
    const char *data, *labels, *classes;  /* input data, IDX labels, class selection */
    const char *out, *base, *adapter;     /* output and model files */
    const char *arch, *method, *targets;  /* pretrain / finetune choices */
    const char *out_dir;                  /* partition output directory */
    const char *name;                     /* keygen: the node's name */
    const char *state_dir, *control;      /* status: where the coordinator listens */
    const char *file;                     /* inspect, import: the file */
    const char *input_shape, *mean, *std; /* import: input shape and normalisation */
    const char *desc, *peft;              /* import: description; export: PEFT directory */
    double timeout;                       /* status: seconds to wait for the answer */
    int rank;                             /* LoRA rank (0: the method's) */
    float alpha;                          /* LoRA alpha (0: 2 * rank) */
    int threads;                          /* 0 = every core */
    size_t samples;                       /* use this many records (stratified), 0 = all */
    size_t cache_mb;                      /* finetune: frozen-prefix cache, MiB */
    size_t cache_budget;                  /* pretrain, finetune: decoded records held in
                                             memory, bytes; a larger image set streams */
    const char *augment;                  /* pretrain, finetune: "crop,flip" (NULL: none) */
    fl_pool_t *pool;                      /* threads lent to the load (NULL: its own) */
    int clients;                          /* partition: shards */
    double dir_alpha;                     /* partition: Dirichlet alpha, 0 = IID */
    size_t min_size;                      /* partition: minimum shard size */
    bool json, quiet, unlabeled, iid;     /* output and partition switches */
    bool skip_bad;                        /* skip unreadable images, counting them */
    const struct fl_image_target *image;  /* images: the base's preparation (NULL: as they are) */
    int resize, crop;                     /* import: image preparation to record */
    int pixel_max;                        /* import: a white pixel's feature value, 1 or 255 */
    const char *format;                   /* export-images: png or jpeg */
    const char *label_column, *columns;   /* tables: the label and feature columns by name */
    const char *missing;                  /* tables: error, mean or drop */
    const char *class_names;              /* import, pretrain: each output's name, a,b,... */
    struct fl_train_opts train;           /* epochs, batch, lr, optimiser, seed, cache */
};

/* Each subcommand's table (tools/cmd_*.c) and all of them, NULL-ended (tools/fedtl.c). */
extern const struct fl_options_spec tool_keygen_spec, tool_pretrain_spec, tool_finetune_spec,
    tool_eval_spec, tool_predict_spec, tool_inspect_spec, tool_partition_spec, tool_status_spec,
    tool_import_spec, tool_export_spec, tool_export_images_spec;
extern const struct fl_options_spec *const tool_specs[];

/* Parse argv for a subcommand over its defaults, check its required options, apply --quiet,
 * --iid, --cache-mb, --augment and --threads. Prints the help and returns 1 for --help; prints the
 * error and the usage line and returns 2 for a usage error; 0 otherwise. */
int tool_parse(const struct fl_options_spec *spec, int argc, char **argv, struct tool_opts *o);
/* Print "fedtl CMD: msg" and the usage line for a usage error; returns 2. */
int tool_usage_error(const struct fl_options_spec *spec, const char *msg);
/* Record --class-names (if given) in meta: the name of output i becomes that of its original
 * label meta->class_ids[i], for the base's nclasses outputs. 0, or an error naming the option. */
int tool_class_names(const struct tool_opts *o, struct fl_base_meta *meta, int nclasses);
/* Load --data/--labels (images prepared as o->image says, --skip-bad), apply --classes and
 * --samples; info (may be NULL) receives the class names and files. Prints the error and a
 * line for skipped or ignored files; returns 0 or 1. */
int tool_load_data(const struct tool_opts *o, struct fl_dataset *ds, int32_t *class_ids,
                   int *nclasses, struct fl_data_info *info);
/* --input-shape: "CxHxW" (or fewer axes, "HxW", "N") into dims, 1 to 3 positive axes of at most
 * 2^20; *ndim axes. 0, or FL_EINVAL with a message naming the text. */
int tool_parse_shape(const char *text, int64_t dims[3], int *ndim);
/* Print "fedtl: <msg>" for an error code with the detail message. Returns 1. */
int tool_error(int rc, const char *what);

/* Adapter configuration from a resolved method and --seed, for nclasses classes. */
void tool_adapter_meta(const struct tool_opts *o, const struct fl_method *mp, int nclasses,
                       const int32_t *class_ids, struct fl_adapter_meta *am);

/* A model loaded for eval and predict: the base, the adapter if any, the model built. */
struct tool_model {
    struct fl_base_file base;       /* the base file */
    struct fl_adapter_file adapter; /* the adapter file, when has_adapter */
    bool has_adapter;               /* --adapter given */
    fl_pool_t *pool;                /* compute threads (--threads), which the model borrows */
    fl_model_t *m;                  /* the model */
    const int32_t *class_ids;       /* original label of each model output */
    int nclasses;                   /* model outputs */
};
/* Load --base and --adapter into l and build the model. Prints the error; returns 0 or 1. */
int tool_model_load(const struct tool_opts *o, struct tool_model *l);
void tool_model_unload(struct tool_model *l);

struct cJSON;
/* inspect of a graph base (cmd_graph.c): the nodes an adapter can target, as a table on
 * stdout, or as a "nodes" array added to the JSON object o (0, or 1 when out of memory). */
void tool_graph_print(const struct fl_base_file *bf);
int tool_graph_json(const struct fl_base_file *bf, struct cJSON *o);

/* Table entries shared by several subcommands. */
#define TOOL_FIELD(f) FL_OPTION_FIELD(struct tool_opts, f)
#define TOOL_ARG      .where = FL_OPTION_FLAG_ONLY, .store = FL_OPTION_BORROWED
#define TOOL_TEXT(n, f, fl, mv, h)                                                                 \
    {                                                                                              \
        n, .type = FL_OPTION_STRING, TOOL_ARG, .flags = fl, TOOL_FIELD(f), .metavar = mv,          \
           .help = h                                                                               \
    }
#define TOOL_PATH(n, f, fl, mv, h)                                                                 \
    {                                                                                              \
        n, .type = FL_OPTION_PATH, TOOL_ARG, .flags = fl, TOOL_FIELD(f), .metavar = mv, .help = h  \
    }
#define TOOL_INT(n, f, lo, hi, mv, h)                                                              \
    {                                                                                              \
        n, .type = FL_OPTION_INT, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(f),                     \
           .range.i = {lo, hi}, .metavar = mv, .help = h                                           \
    }
#define TOOL_UINT(n, f, hi, mv, h)                                                                 \
    {                                                                                              \
        n, .type = FL_OPTION_UINT, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(f),                    \
           .range.u = {0, hi}, .metavar = mv, .help = h                                            \
    }
#define TOOL_REAL(n, f, lo, hi, mv, h)                                                             \
    {                                                                                              \
        n, .type = FL_OPTION_DOUBLE, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(f),                  \
           .range.d = {lo, hi}, .metavar = mv, .help = h                                           \
    }
#define TOOL_SWITCH(n, f, h)                                                                       \
    {                                                                                              \
        n, .type = FL_OPTION_BOOL, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(f), .help = h          \
    }

#define TOOL_OPT_DATA                                                                              \
    TOOL_PATH("data", data, FL_OPTION_REQUIRED, "D",                                               \
              "data: a folder of class folders of PNG/JPEG images, a path,label manifest, a "      \
              "CSV file (label, features...) or IDX images, raw or gzip")
#define TOOL_OPT_SKIP_BAD                                                                          \
    TOOL_SWITCH("skip-bad", skip_bad,                                                              \
                "skip unreadable images (corrupt, not images, outside a manifest's folder), "      \
                "counting them, instead of stopping")
#define TOOL_OPT_TABLE                                                                             \
    TOOL_TEXT("label-column", label_column, 0, "NAME",                                             \
              "a CSV with a header: the label column (default: the first)"),                       \
        TOOL_TEXT("columns", columns, 0, "A,B,...",                                                \
                  "a CSV with a header: the feature columns, in this order (default: the rest)"),  \
        TOOL_TEXT("missing", missing, 0, "error|mean|drop",                                        \
                  "a CSV with a header: a missing value (empty, NA, NaN, null, ?) is an error "    \
                  "(default), takes its column's mean, or drops its row")
#define TOOL_OPT_CLASS_NAMES                                                                       \
    TOOL_TEXT("class-names", class_names, 0, "A,B,...",                                            \
              "the name of each class, in output order, recorded in the base for predict "         \
              "(no commas; at most 63 bytes each)")
#define TOOL_OPT_LABELS TOOL_PATH("labels", labels, 0, "L", "the IDX images' IDX labels")
#define TOOL_OPT_CLASSES                                                                           \
    TOOL_TEXT("classes", classes, 0, "C",                                                          \
              "keep these classes (0-4 or 0,3,7), renumbered 0..k-1 in the order given")
#define TOOL_OPT_SAMPLES                                                                           \
    TOOL_UINT("samples", samples, SIZE_MAX, "N", "a stratified random subset of N records (0: all)")
#define TOOL_OPT_THREADS TOOL_INT("threads", threads, 0, 4096, "N", "threads (0: every core)")
#define TOOL_OPT_SEED    TOOL_UINT("seed", train.seed, UINT64_MAX, "S", "random seed")
#define TOOL_OPT_QUIET   TOOL_SWITCH("quiet", quiet, "no progress lines")
#define TOOL_OPT_AUGMENT                                                                           \
    {                                                                                              \
        "augment", .type = FL_OPTION_STRING, TOOL_ARG, TOOL_FIELD(augment),                        \
                   .metavar = "crop,flip", .validate = fl_augment_validate,                        \
                   .help = "training augmentation of image records: random crop with 4 px zero "   \
                           "padding, horizontal flip; seeded (--seed), never at evaluation"        \
    }
/* Default memory for decoded records; a larger image set streams from its files each epoch. */
#define TOOL_CACHE_BUDGET "1G"
#define TOOL_OPT_CACHE_BUDGET                                                                      \
    {                                                                                              \
        "cache_budget", .type = FL_OPTION_SIZE, .where = FL_OPTION_FLAG_ONLY,                      \
                        TOOL_FIELD(cache_budget), .range.u = {1, (unsigned long long)1 << 50},     \
                        .def = TOOL_CACHE_BUDGET, .metavar = "SIZE",                               \
                        .help = "decoded image records held in memory (512M, 1G, ...); a "         \
                                "larger set is decoded again from its files each epoch"            \
    }
#define TOOL_OPT_JSON          TOOL_SWITCH("json", json, "print one JSON object")
#define TOOL_OPT_BASE(fl)      TOOL_PATH("base", base, fl, "FILE", "the base model (.ftm)")
#define TOOL_OPT_ADAPTER       TOOL_PATH("adapter", adapter, 0, "FILE", "an adapter (.fta) over the base")
#define TOOL_OPT_EPOCHS(lo, h) TOOL_INT("epochs", train.epochs, lo, FL_METHOD_EPOCHS_MAX, "N", h)
#define TOOL_OPT_BATCH         TOOL_INT("batch", train.batch, 1, 1 << 16, "B", "mini-batch size")
#define TOOL_OPT_LR(h)         TOOL_REAL("lr", train.lr, 0, FL_METHOD_LR_MAX, "LR", h)
#define TOOL_OPT_MOMENTUM      TOOL_REAL("momentum", train.momentum, 0, 1, "M", "SGD momentum")
#define TOOL_OPT_WEIGHT_DECAY                                                                      \
    TOOL_REAL("weight_decay", train.weight_decay, 0, 10, "W", "L2 weight decay")
#define TOOL_OPT_OPTIMIZER                                                                         \
    {                                                                                              \
        "optimizer", .type = FL_OPTION_CHOICE, .where = FL_OPTION_FLAG_ONLY,                       \
                     TOOL_FIELD(train.optimizer), .choices = tool_optimizers,                      \
                     .help = "update rule"                                                         \
    }
extern const struct fl_option_choice tool_optimizers[];

/* A subcommand's spec: its program name, about text and table. */
#define TOOL_SPEC(cmd, text, table)                                                                \
    {                                                                                              \
        .program = "fedtl " cmd, .about = text, .options = table,                                  \
        .noptions = sizeof table / sizeof table[0], .siblings = tool_specs                         \
    }

int cmd_keygen(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_partition(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_export_images(int argc, char **argv);

#endif

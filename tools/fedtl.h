/* The fedtl tool: shared option handling for its subcommands. */
#ifndef FEDTL_TOOL_H
#define FEDTL_TOOL_H

#include "fl_arch.h"
#include "fl_data.h"
#include "fl_train.h"

#include <stdbool.h>
#include <stdint.h>

/* Options common to the subcommands; each uses the ones it documents. */
struct tool_opts {
    const char *data, *labels, *classes; /* input data, IDX labels, class selection */
    const char *out, *base, *adapter;    /* output and model files */
    const char *arch, *method, *targets; /* pretrain / finetune choices */
    const char *out_dir;                 /* partition output directory */
    int rank;                            /* LoRA rank */
    float alpha;                         /* LoRA alpha (0: 2 * rank) */
    int threads;                         /* 0 = every core */
    size_t samples;                      /* use this many records (stratified), 0 = all */
    int clients;                         /* partition: shards */
    double dir_alpha;                    /* partition: Dirichlet alpha, 0 = IID */
    size_t min_size;                     /* partition: minimum shard size */
    bool json, quiet, unlabeled;         /* output switches */
    struct fl_train_opts train;          /* epochs, batch, lr, optimiser, seed, cache */
};

/* Parse argv for subcommand `cmd`; prints usage and returns 1 for --help, 2 on error. */
int tool_parse(const char *cmd, const char *usage, int argc, char **argv, struct tool_opts *o);
/* Load --data/--labels, apply --classes and --samples. Prints the error; returns 0 or 1. */
int tool_load_data(const struct tool_opts *o, struct fl_dataset *ds, int32_t *class_ids,
                   int *nclasses);
/* Print "fedtl: <msg>" for an error code with the detail message. Returns 1. */
int tool_error(int rc, const char *what);

/* Adapter configuration from --method/--rank/--alpha/--targets/--seed for a base's arch. */
int tool_adapter_meta(const struct tool_opts *o, const struct fl_arch *arch, int nclasses,
                      const int32_t *class_ids, struct fl_adapter_meta *am);

int cmd_keygen(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_partition(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif

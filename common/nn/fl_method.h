/* fl_method: the one place an adapter method's settings are resolved: what the user set
 * (coordinator options, fedtl finetune flags) over the method's and the architecture's
 * defaults (fl_adapter_defaults, fl_arch_default_targets), into what an adapter and a training
 * run use. The coordinator and the tool both call fl_method_resolve. */
#ifndef FL_METHOD_H
#define FL_METHOD_H

#include "fl_arch.h"
#include "fl_options.h"

/* Bounds of what a user may set, shared by every program's option table. */
#define FL_METHOD_RANK_MAX   1024
#define FL_METHOD_ALPHA_MAX  1e6
#define FL_METHOD_LR_MAX     10.0
#define FL_METHOD_EPOCHS_MAX 10000
/* Epochs of a whole fine-tuning run when none are set (a federation's per-round epochs have
 * their own default, in the coordinator's options). */
#define FL_METHOD_EPOCHS 10

/* The methods as option tables offer them (fl_options choices, value: the fl_adapter_kind). */
extern const struct fl_option_choice fl_method_choices[];

/* What the user set; 0 (or NULL / "" for targets) means "the default". */
struct fl_method_overrides {
    int rank;            /* LoRA rank */
    float alpha;         /* LoRA alpha (default: 2 * rank) */
    float lr;            /* learning rate */
    int epochs;          /* local epochs */
    const char *targets; /* adapted layers, comma-separated: "conv2,fc1" */
};

/* A method's resolved settings. */
struct fl_method {
    enum fl_adapter_kind kind;                        /* the method */
    int rank;                                         /* LoRA rank (0 for head and bitfit) */
    float alpha;                                      /* LoRA alpha (0 for head and bitfit) */
    float lr;                                         /* learning rate */
    int epochs;                                       /* local epochs */
    int ntargets;                                     /* adapted layers */
    char targets[FL_MAX_TARGETS][FL_TARGET_NAME_MAX]; /* their names */
};

/* Resolve kind's settings for arch: each override that is set, else the default. Targets are
 * split at commas (blanks around names and empty names dropped) and checked: at most
 * FL_MAX_TARGETS names of fewer than FL_TARGET_NAME_MAX characters; whether arch has those
 * layers is the model's to check. A graph's default targets are fl_graphadapt_default_targets,
 * except for the zoo's cnn-small and mlp, which keep their chain's (fl_arch_default_targets).
 * user may be NULL (every default). 0, or FL_EINVAL for an
 * override out of bounds or a bad target list (the message says which). */
int fl_method_resolve(const struct fl_arch *arch, enum fl_adapter_kind kind,
                      const struct fl_method_overrides *user, struct fl_method *out);
/* Copy the method's kind, rank, alpha and targets into an adapter's configuration. */
void fl_method_to_meta(const struct fl_method *m, struct fl_adapter_meta *am);

#endif

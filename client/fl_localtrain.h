/* fl_localtrain: a branch's local training, from a round's task to the update body it answers
 * with. Holds the branch's records, keeps those of the federation's classes split (seeded) into
 * training and held-out records, and for each task builds the model from the base and the
 * global adapter, trains it, evaluates it on the held-out records and encodes the trained
 * adapter with its metrics as an UpdateBody (fl_codec). A task may ask for FedProx's proximal
 * term (its mu) and for a personal head (FedPer: the branch trains and keeps its own head.weight
 * and head.bias, reporting the global adapter's held-out figures next to its own); the final
 * adapter may be personalised by local fine-tuning. No sockets, envelopes or sealing here. */
#ifndef FL_LOCALTRAIN_H
#define FL_LOCALTRAIN_H

#include "fl_augment.h"
#include "fl_modelfile.h"
#ifdef FEDTL_TESTING
#include "fl_attack.h"
#endif
#include "fl_pool.h"
#include "fl_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the records come from and how they are used; the strings must outlive the module. */
struct fl_localtrain_config {
    const char *data;      /* local records: CSV, or IDX images */
    const char *labels;    /* IDX labels (NULL for CSV) */
    double holdout;        /* share of the records held out for evaluation, [0, 1) */
    uint64_t split_seed;   /* seed of the training / held-out split */
    const char *keep_dir;  /* when set, each round's trained adapter is also written to
                              keep_dir/round-N.fta */
    const char *head_path; /* where the branch keeps its own adapter for FedPer (tasks with
                              personal_head): its head.* tensors replace the global's before
                              training; NULL: personal heads are refused */
    bool progress;         /* per-epoch progress lines on stderr */
    fl_pool_t *pool;       /* training threads, borrowed (NULL: the caller's thread alone) */

    struct fl_augment augment; /* training augmentation (zeroed: none); needs an image base */
    size_t cache_budget;       /* decoded image records held in memory, bytes; a larger set
                                  streams from its files (0: no limit) */
    /* the data as a CSV with a header, by column name (fl_table.h); NULL: a plain CSV */
    const struct fl_table_opts *table;
#ifdef FEDTL_TESTING
    const struct fl_attack *attack; /* test builds only: the attack mounted (NULL: none) */
#endif
};

/* One round's task. The method, rank, alpha, targets and classes are the global adapter's
 * (its header); the rest is the round's training parameters. */
struct fl_localtrain_task {
    uint32_t round;         /* the round, written into the trained adapter's header */
    const uint8_t *adapter; /* the global adapter: adapter file bytes (borrowed) */
    size_t adapter_len;     /* their length */
    uint32_t epochs;        /* local epochs, 1 to 10000 */
    uint32_t batch;         /* mini-batch size, 1 to 2^20 */
    float lr;               /* learning rate, finite, in (0, 100) */
    uint64_t seed;          /* shuffling seed */
    float prox_mu;          /* FedProx's mu, finite, in [0, 1000] (0: off) */
    bool personal_head;     /* FedPer: train with (and keep) the branch's own head */
};

/* The final adapter to personalise (FinalModel.personalize): fine-tune it locally. */
struct fl_localtrain_final {
    const uint8_t *adapter; /* the final global adapter: adapter file bytes (borrowed) */
    size_t adapter_len;     /* their length */
    uint32_t round;         /* the federation's last round, written into the header */
    uint32_t epochs;        /* fine-tuning epochs, 1 to 1000 */
    uint32_t batch;         /* mini-batch size, 1 to 2^20 */
    float lr;               /* learning rate, finite, in (0, 100) */
    uint64_t seed;          /* shuffling seed */
    bool personal_head;     /* start from the branch's own head */
};

/* What a trained update reports; the same figures go into its body. */
struct fl_localtrain_metrics {
    size_t samples;           /* records trained on (the aggregation weight) */
    double train_loss;        /* mean training loss of the last epoch */
    double eval_loss;         /* mean loss on the held-out records (0 when none are held out) */
    double eval_accuracy;     /* accuracy on the held-out records (0 when none are held out) */
    size_t eval_samples;      /* held-out records */
    bool personal;            /* personal_* hold figures (a personal head, or personalisation);
                                 eval_* then score the global adapter as received */
    double personal_loss;     /* the personalised adapter's loss on the held-out records */
    double personal_accuracy; /* and its accuracy there */
};

/* The records as loaded, for summaries. */
struct fl_localtrain_info {
    size_t records; /* records held: all of the file's before the first task, then those of
                       the federation's classes */
    size_t dim;     /* features per record */
    int classes;    /* classes in the file (before the first task) */
    size_t samples; /* records a task trains on: the training split once the classes are
                       known, every record before */
};

typedef struct fl_localtrain fl_localtrain_t;

/* Load the records (cfg is copied, its strings borrowed). NULL on error, including a file
 * without records or a holdout outside [0, 1) (fl_error_msg says what). */
fl_localtrain_t *fl_localtrain_new(const struct fl_localtrain_config *cfg);
void fl_localtrain_destroy(fl_localtrain_t **self_p);
/* The records as they stand. */
void fl_localtrain_info(const fl_localtrain_t *self, struct fl_localtrain_info *out);

/* 0 when the base takes the records as input, else FL_EMISMATCH naming both sizes. */
int fl_localtrain_check_base(fl_localtrain_t *self, const struct fl_base_file *base);

/* Train for one task on the base (opened and verified; base_name names it in messages):
 * check the parameters (FL_EINVAL), decode the global adapter (the decoder's code), check it
 * was made for this base (FL_EMISMATCH) and that the base takes its method, targets and class
 * count (FL_EINVAL) and its tensors fit (FL_EMISMATCH), select its classes from the records
 * and split them (again only when the class list changed), train, evaluate, and encode the
 * UpdateBody into a malloc'd *body of *body_len bytes, which the caller wipes
 * (sodium_memzero) and frees. *metrics (may be NULL) gets what the body reports. Nothing is
 * sent. On error *body is NULL and fl_error_msg says why. Blocks for the whole training. */
int fl_localtrain_run(fl_localtrain_t *self, const struct fl_base_file *base, const char *base_name,
                      const struct fl_localtrain_task *task, uint8_t **body, size_t *body_len,
                      struct fl_localtrain_metrics *metrics);

/* Personalise the final adapter: check the parameters (FL_EINVAL), decode and check it as a
 * task's, evaluate it as received on the held-out records (metrics->eval_*), put the branch's
 * own head in when final->personal_head and one is kept, fine-tune on the training records,
 * evaluate again (metrics->personal_*) and pack the result into a malloc'd *adapter of *len
 * bytes (caller frees). Blocks for the whole fine-tuning. */
int fl_localtrain_personalize(fl_localtrain_t *self, const struct fl_base_file *base,
                              const char *base_name, const struct fl_localtrain_final *final,
                              uint8_t **adapter, size_t *len,
                              struct fl_localtrain_metrics *metrics);

#endif

/* fedtl: keys, pretraining, local fine-tuning, evaluation, prediction, partitioning and
 * inspection: the tool beside the coordinator and the branch clients. */
#include "fedtl.h"
#include "fl_data.h"
#include "fl_error.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} s_cmds[] = {
    {"keygen", cmd_keygen, "make a node's Ed25519 identity (PREFIX.key, PREFIX.pub)"},
    {"pretrain", cmd_pretrain, "train a base model from scratch"},
    {"finetune", cmd_finetune, "fine-tune an adapter on local data over a frozen base"},
    {"eval", cmd_eval, "accuracy, loss and per-class accuracy of a base (+ adapter)"},
    {"predict", cmd_predict, "one predicted label per record"},
    {"inspect", cmd_inspect, "architecture, parameters and hashes of a model file"},
    {"partition", cmd_partition, "split a data set into client shards (IID or Dirichlet)"},
    {"status", cmd_status, "ask a running coordinator for its round, branches and metrics"},
};

static void s_usage(FILE *f)
{
    fprintf(f, "usage: fedtl COMMAND [OPTIONS]   (fedtl COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].help);
}

int tool_error(int rc, const char *what)
{
    const char *msg = fl_error_msg();
    fprintf(stderr, "fedtl: %s: %s\n", what, msg[0] ? msg : fl_strerror(rc));
    return 1;
}

enum {
    O_DATA = 256,
    O_LABELS,
    O_CLASSES,
    O_OUT,
    O_BASE,
    O_ADAPTER,
    O_ARCH,
    O_METHOD,
    O_TARGETS,
    O_RANK,
    O_ALPHA,
    O_THREADS,
    O_SAMPLES,
    O_EPOCHS,
    O_BATCH,
    O_LR,
    O_OPTIM,
    O_MOMENTUM,
    O_WD,
    O_SEED,
    O_CACHE,
    O_JSON,
    O_QUIET,
    O_CLIENTS,
    O_DIR_ALPHA,
    O_IID,
    O_MIN,
    O_OUT_DIR,
    O_UNLABELED,
    O_HELP
};

static const struct option s_long[] = {{"data", required_argument, 0, O_DATA},
                                       {"labels", required_argument, 0, O_LABELS},
                                       {"classes", required_argument, 0, O_CLASSES},
                                       {"out", required_argument, 0, O_OUT},
                                       {"base", required_argument, 0, O_BASE},
                                       {"adapter", required_argument, 0, O_ADAPTER},
                                       {"arch", required_argument, 0, O_ARCH},
                                       {"method", required_argument, 0, O_METHOD},
                                       {"targets", required_argument, 0, O_TARGETS},
                                       {"rank", required_argument, 0, O_RANK},
                                       {"alpha", required_argument, 0, O_ALPHA},
                                       {"threads", required_argument, 0, O_THREADS},
                                       {"samples", required_argument, 0, O_SAMPLES},
                                       {"epochs", required_argument, 0, O_EPOCHS},
                                       {"batch", required_argument, 0, O_BATCH},
                                       {"lr", required_argument, 0, O_LR},
                                       {"optimizer", required_argument, 0, O_OPTIM},
                                       {"momentum", required_argument, 0, O_MOMENTUM},
                                       {"weight-decay", required_argument, 0, O_WD},
                                       {"seed", required_argument, 0, O_SEED},
                                       {"cache-mb", required_argument, 0, O_CACHE},
                                       {"json", no_argument, 0, O_JSON},
                                       {"quiet", no_argument, 0, O_QUIET},
                                       {"clients", required_argument, 0, O_CLIENTS},
                                       {"dirichlet", required_argument, 0, O_DIR_ALPHA},
                                       {"iid", no_argument, 0, O_IID},
                                       {"min-size", required_argument, 0, O_MIN},
                                       {"out-dir", required_argument, 0, O_OUT_DIR},
                                       {"unlabeled", no_argument, 0, O_UNLABELED},
                                       {"help", no_argument, 0, O_HELP},
                                       {0, 0, 0, 0}};

static int s_num(const char *cmd, const char *opt, const char *arg, double lo, double hi,
                 double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "fedtl %s: --%s '%s': expected a number in [%g, %g]\n", cmd, opt, arg, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

int tool_parse(const char *cmd, const char *usage, int argc, char **argv, struct tool_opts *o)
{
    memset(o, 0, sizeof *o);
    fl_train_opts_default(&o->train);
    o->train.progress = true;
    o->train.label = cmd;
    if (strcmp(cmd, "finetune") == 0) {
        o->train.lr = 0;     /* the method's default */
        o->train.epochs = 0; /* 10 */
    }
    o->rank = 0;
    o->dir_alpha = 0.5;
    o->min_size = 10;
    optind = 1;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "", s_long, NULL)) != -1) {
        const char *name = NULL;
        for (const struct option *p = s_long; p->name; p++)
            if (p->val == c)
                name = p->name;
        if (c != '?' && name && !strstr(usage, name) && c != O_HELP && c != O_THREADS) {
            fprintf(stderr, "fedtl %s: --%s does not apply here\n%s", cmd, name, usage);
            return 2;
        }
        switch (c) {
        case O_DATA:
            o->data = optarg;
            break;
        case O_LABELS:
            o->labels = optarg;
            break;
        case O_CLASSES:
            o->classes = optarg;
            break;
        case O_OUT:
            o->out = optarg;
            break;
        case O_BASE:
            o->base = optarg;
            break;
        case O_ADAPTER:
            o->adapter = optarg;
            break;
        case O_ARCH:
            o->arch = optarg;
            break;
        case O_METHOD:
            o->method = optarg;
            break;
        case O_TARGETS:
            o->targets = optarg;
            break;
        case O_OUT_DIR:
            o->out_dir = optarg;
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_QUIET:
            o->quiet = true;
            o->train.progress = false;
            break;
        case O_UNLABELED:
            o->unlabeled = true;
            break;
        case O_IID:
            o->dir_alpha = 0;
            break;
        case O_OPTIM:
            if (strcmp(optarg, "adam") == 0)
                o->train.optimizer = FL_OPT_ADAM;
            else if (strcmp(optarg, "sgd") == 0)
                o->train.optimizer = FL_OPT_SGD;
            else {
                fprintf(stderr, "fedtl %s: --optimizer '%s': expected adam or sgd\n", cmd, optarg);
                return 2;
            }
            break;
        case O_HELP:
            fputs(usage, stdout);
            return 1;
        case '?':
            fputs(usage, stderr);
            return 2;
        default:
            if (s_num(cmd, name, optarg, 0, 1e12, &v) != 0)
                return 2;
            switch (c) {
            case O_RANK:
                o->rank = (int)v;
                break;
            case O_ALPHA:
                o->alpha = (float)v;
                break;
            case O_THREADS:
                o->threads = (int)v;
                break;
            case O_SAMPLES:
                o->samples = (size_t)v;
                break;
            case O_EPOCHS:
                o->train.epochs = (int)v;
                break;
            case O_BATCH:
                o->train.batch = (int)v;
                break;
            case O_LR:
                o->train.lr = (float)v;
                break;
            case O_MOMENTUM:
                o->train.momentum = (float)v;
                break;
            case O_WD:
                o->train.weight_decay = (float)v;
                break;
            case O_SEED:
                o->train.seed = (uint64_t)v;
                break;
            case O_CACHE:
                o->train.cache_bytes = (size_t)v << 20;
                break;
            case O_CLIENTS:
                o->clients = (int)v;
                break;
            case O_DIR_ALPHA:
                o->dir_alpha = v;
                break;
            case O_MIN:
                o->min_size = (size_t)v;
                break;
            }
        }
    }
    if (optind < argc && strcmp(cmd, "inspect") != 0) {
        fprintf(stderr, "fedtl %s: unexpected argument '%s'\n%s", cmd, argv[optind], usage);
        return 2;
    }
    return 0;
}

int tool_load_data(const struct tool_opts *o, struct fl_dataset *ds, int32_t *class_ids,
                   int *nclasses)
{
    int rc = fl_dataset_load(ds, o->data, o->labels);
    if (rc)
        return tool_error(rc, "cannot load data");
    if (o->classes) {
        int count = 0;
        if ((rc = fl_classes_parse(o->classes, class_ids, FL_MAX_CLASSES, &count)) != 0 ||
            (rc = fl_dataset_select_classes(ds, class_ids, count)) != 0) {
            fl_dataset_free(ds);
            return tool_error(rc, "--classes");
        }
        *nclasses = count;
    } else {
        *nclasses = ds->num_classes;
        for (int i = 0; i < ds->num_classes && i < FL_MAX_CLASSES; i++)
            class_ids[i] = i;
    }
    if (ds->n == 0) {
        fl_dataset_free(ds);
        fprintf(stderr, "fedtl: %s: no records left after --classes %s\n", o->data, o->classes);
        return 1;
    }
    if (o->samples > 0 && o->samples < ds->n) {
        struct fl_dataset sub;
        if ((rc = fl_dataset_take(&sub, ds, o->samples, o->train.seed)) != 0) {
            fl_dataset_free(ds);
            return tool_error(rc, "--samples");
        }
        fl_dataset_free(ds);
        *ds = sub;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (strcmp(argv[1], s_cmds[i].name) == 0)
            return s_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "fedtl: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}

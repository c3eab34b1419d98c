/* fedtl partition: split a data set into client shards. */
#include "fedtl.h"
#include "fl_csv.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char s_partition_usage[] =
    "usage: fedtl partition --data D [--labels L] [--classes C] --clients N\n"
    "                       [--dirichlet ALPHA | --iid] [--min-size M] [--samples N]\n"
    "                       [--seed S] --out-dir DIR\n"
    "Split a data set into N client shards, IID or with Dirichlet(ALPHA) label skew (default\n"
    "0.5; smaller is more skewed), each with at least M records (default 10). Writes\n"
    "DIR/client-00.csv ... (label, features; the original labels, so a branch selects the same\n"
    "--classes) and prints each client's class histogram.\n";

int cmd_partition(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse("partition", s_partition_usage, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!o.data || !o.out_dir || o.clients < 1) {
        fprintf(stderr, "fedtl partition: --data, --clients (>= 1) and --out-dir are required\n%s",
                s_partition_usage);
        return 2;
    }
    struct fl_dataset ds;
    int32_t ids[FL_MAX_CLASSES];
    int k = 0;
    if (tool_load_data(&o, &ds, ids, &k) != 0)
        return 1;
    size_t **shards = calloc((size_t)o.clients, sizeof *shards);
    size_t *sizes = calloc((size_t)o.clients, sizeof *sizes);
    size_t *hist = calloc((size_t)ds.num_classes, sizeof *hist);
    if (!shards || !sizes || !hist) {
        rc = tool_error(FL_ENOMEM, "partition");
        goto out_free;
    }
    if ((rc = fl_fs_mkdirs(o.out_dir, 0755)) != 0 ||
        (rc = fl_partition(&ds, o.clients, o.dir_alpha, o.train.seed, o.min_size, shards, sizes)) !=
            0) {
        rc = tool_error(rc, "partition");
        goto out_free;
    }
    printf("%d clients, %s, %zu records, %d classes\nclient  records  per-class\n", o.clients,
           o.dir_alpha > 0 ? "Dirichlet label skew" : "IID", ds.n, ds.num_classes);
    for (int c = 0; c < o.clients && rc == 0; c++) {
        struct fl_dataset shard;
        char name[64];
        snprintf(name, sizeof name, "client-%02d.csv", c);
        size_t plen = strlen(o.out_dir) + strlen(name) + 2;
        char *path = malloc(plen);
        if (!path || (rc = fl_dataset_subset(&shard, &ds, shards[c], sizes[c])) != 0) {
            free(path);
            rc = tool_error(rc ? rc : FL_ENOMEM, "partition");
            break;
        }
        snprintf(path, plen, "%s/%s", o.out_dir, name);
        fl_dataset_histogram(&shard, hist);
        /* Shards keep the original labels: a branch selects its classes as HQ did. */
        for (size_t i = 0; i < shard.n; i++)
            shard.y[i] = ids[shard.y[i]];
        if ((rc = fl_dataset_write_csv(&shard, path)) != 0)
            rc = tool_error(rc, path);
        printf("%-7d %-8zu", c, sizes[c]);
        for (int j = 0; j < ds.num_classes; j++)
            printf(" %5zu", hist[j]);
        printf("   %s\n", path);
        fl_dataset_free(&shard);
        free(path);
    }
out_free:
    fl_partition_free(shards, o.clients);
    free(shards);
    free(sizes);
    free(hist);
    fl_dataset_free(&ds);
    return rc;
}

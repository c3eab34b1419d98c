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

static const struct fl_option s_partition_options[] = {
    TOOL_OPT_DATA,
    TOOL_OPT_LABELS,
    TOOL_OPT_TABLE,
    TOOL_OPT_CLASSES,
    TOOL_OPT_SAMPLES,
    TOOL_INT("clients", clients, 1, 1000000, "N", "shards to write (required)"),
    {"dirichlet", .type = FL_OPTION_DOUBLE, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(dir_alpha),
     .range.d = {0, 1e6}, .def = "0.5", .metavar = "ALPHA",
     .help = "Dirichlet label skew; smaller is more skewed, 0 is IID"},
    TOOL_SWITCH("iid", iid, "IID shards (--dirichlet 0)"),
    {"min_size", .type = FL_OPTION_UINT, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(min_size),
     .range.u = {0, SIZE_MAX}, .def = "10", .metavar = "M", .help = "records per shard, at least"},
    TOOL_OPT_SEED,
    TOOL_PATH("out_dir", out_dir, FL_OPTION_REQUIRED, "DIR", "where the shards go"),
    TOOL_OPT_THREADS,
};

const struct fl_options_spec tool_partition_spec = TOOL_SPEC(
    "partition",
    "Split a data set into N client shards, IID or with Dirichlet(ALPHA) label skew, each with\n"
    "at least M records. Writes DIR/client-00.csv ... (label, features; the original labels,\n"
    "so a branch selects the same --classes) and prints each client's class histogram.\n",
    s_partition_options);

int cmd_partition(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_partition_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (o.clients < 1)
        return tool_usage_error(&tool_partition_spec, "--clients N is required");
    struct fl_dataset ds;
    int32_t ids[FL_MAX_CLASSES];
    int k = 0;
    if (tool_load_data(&o, &ds, ids, &k, NULL) != 0)
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

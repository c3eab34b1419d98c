/* bench_heldout: a branch's own training / held-out split, written as two CSV files, so that
 * bench/strategies.sh scores adapters trained elsewhere (the final global adapter, a branch
 * trained alone with `fedtl finetune`) on exactly the records that branch held out. It makes the
 * split as fedtl-client does (client/fl_branch.c, client/fl_localtrain.c): the records of the
 * federation's classes, split by fl_dataset_split with the branch's holdout and a seed read
 * from the first 8 bytes of its Ed25519 public key, little-endian.
 *
 *   bench_heldout KEY.pub DATA.csv CLASSES HOLDOUT TRAIN.csv HELDOUT.csv
 *
 * Labels are written as DATA has them (the original class ids). Exit 0, 1 on error, 2 on usage. */
#include "fl_arch.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_keys.h"

#include <stdio.h>
#include <stdlib.h>

/* ds's records as CSV lines "label,x1,...", labels mapped back through classes[]. */
static int s_write(const char *path, const struct fl_dataset *ds, const int32_t *classes)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return fl_fail(FL_EIO, "%s: cannot create", path);
    for (size_t i = 0; i < ds->n; i++) {
        fprintf(f, "%d", (int)classes[ds->y[i]]);
        for (size_t j = 0; j < ds->dim; j++)
            fprintf(f, ",%.9g", (double)ds->x[i * ds->dim + j]);
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : fl_fail(FL_EIO, "%s: write failed", path);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr,
                "usage: bench_heldout KEY.pub DATA.csv CLASSES HOLDOUT TRAIN.csv HELDOUT.csv\n");
        return 2;
    }
    struct fl_pubkey pk;
    int32_t classes[FL_MAX_CLASSES];
    int nclasses = 0;
    char *end = NULL;
    double holdout = strtod(argv[4], &end);
    struct fl_dataset all = {0}, train = {0}, test = {0};
    int rc = fl_pubkey_load(argv[1], &pk);
    if (rc == 0)
        rc = fl_classes_parse(argv[3], classes, FL_MAX_CLASSES, &nclasses);
    if (rc == 0 && (*end || !(holdout >= 0 && holdout <= 0.5)))
        rc = fl_fail(FL_EINVAL, "holdout %s is not in [0, 0.5]", argv[4]);
    uint64_t seed = 0;
    for (int i = 0; i < 8; i++) /* as fl_branch_new seeds the split */
        seed |= (uint64_t)pk.sign_pk[i] << (8 * i);
    if (rc == 0)
        rc = fl_dataset_load(&all, argv[2], NULL);
    if (rc == 0)
        rc = fl_dataset_select_classes(&all, classes, nclasses);
    if (rc == 0)
        rc = fl_dataset_split(&all, holdout, seed, &train, &test);
    if (rc == 0)
        rc = s_write(argv[5], &train, classes);
    if (rc == 0)
        rc = s_write(argv[6], &test, classes);
    if (rc)
        fprintf(stderr, "bench_heldout: %s\n", fl_error_msg());
    else
        printf("bench=heldout train=%zu heldout=%zu\n", train.n, test.n);
    fl_dataset_free(&all);
    fl_dataset_free(&train);
    fl_dataset_free(&test);
    return rc ? 1 : 0;
}

/* fl_dataset: labelled records in memory. */
#include "fl_dataset.h"

#include <stdlib.h>
#include <string.h>

void fl_dataset_free(struct fl_dataset *ds)
{
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
}

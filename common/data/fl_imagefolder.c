/* fl_imagefolder: the files listed (fl_imagelist) then decoded on the thread pool, one slot
 * per file, so that records keep the listing's order whatever thread decoded them. */
#include "fl_imagefolder.h"
#include "fl_error.h"
#include "fl_imagelist.h"
#include "fl_mem.h"
#include "fl_tensor.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- decoding ---- */

/* Files a task takes from the shared counter at a time: few enough that the threads finish
 * together on a busy machine, enough to keep the counter cold. */
#define S_CHUNK 8

/* The decode of a whole list, shared by the pool's tasks; each file has its own slots. */
struct s_job {
    const struct fl_imagelist *l; /* what to read */
    struct fl_image_target asked; /* the target as given (zero fields: the files' own) */
    struct fl_image_target t;     /* the target with every geometry field fixed */
    size_t dim;                   /* features per record */
    float *x;                     /* [l->n, dim] */
    int *rc;                      /* [l->n] each file's result */
    char **msg;                   /* [l->n] each failure's message, malloc'd */
    fl_image_work_t **work;       /* [tasks] each task's buffers */
    atomic_size_t next;           /* the first file no task has taken yet */
};

static int s_decode_one(const struct s_job *j, fl_image_work_t *wk, size_t i)
{
    struct fl_image img;
    const char *path = j->l->e[i].path;
    int rc = fl_image_work_read(wk, path, &img);
    if (rc)
        return rc;
    int c, h, w;
    fl_image_prepared_dims(&img, &j->asked, &c, &h, &w);
    if (!j->asked.height && (h != j->t.height || w != j->t.width))
        return fl_fail(FL_EMISMATCH,
                       "%s: is %d x %d (after any resize), the first image %d x %d: "
                       "images of one data set share a size unless the base "
                       "records a resize and crop",
                       path, w, h, j->t.width, j->t.height);
    return fl_image_work_prepare(wk, &img, &j->t, path, j->x + i * j->dim, j->dim);
}

/* Task t: files taken S_CHUNK at a time until none is left. */
static void s_decode_task(void *arg, int t)
{
    struct s_job *j = arg;
    for (;;) {
        size_t begin = atomic_fetch_add(&j->next, S_CHUNK), n = j->l->n;
        if (begin >= n)
            return;
        size_t end = n - begin < S_CHUNK ? n : begin + S_CHUNK;
        for (size_t i = begin; i < end; i++)
            if ((j->rc[i] = s_decode_one(j, j->work[t], i)) != 0)
                j->msg[i] = strdup(fl_error_msg());
    }
}

/* Fix the target's missing geometry from the first image that decodes. */
static int s_fix_geometry(struct s_job *j, struct fl_imagelist *l)
{
    j->t = j->asked;
    if (j->asked.channels && j->asked.height && j->asked.width)
        return 0;
    int last = FL_ENOTFOUND;
    for (size_t i = 0; i < l->n; i++) {
        struct fl_image img;
        if ((last = fl_image_read(l->e[i].path, &img)) != 0) {
            if (!l->skip_bad)
                return last;
            continue; /* counted when the decode meets it again */
        }
        int c, h, w;
        fl_image_prepared_dims(&img, &j->asked, &c, &h, &w);
        fl_image_free(&img);
        j->t.channels = c, j->t.height = h, j->t.width = w;
        return 0;
    }
    char why[512];
    snprintf(why, sizeof why, "%s", fl_error_msg()); /* fl_fail writes where it points */
    return fl_fail(last, "no image could be read (%s)", why);
}

/* Decode every listed file into ds; bad ones fail the load or, skip_bad, are left out. */
static int s_decode(struct fl_imagelist *l, const struct fl_data_opts *opts, struct fl_dataset *ds,
                    struct fl_data_info *info)
{
    static const struct fl_image_target s_as_is = {0};
    struct s_job j = {.l = l, .asked = opts->image ? *opts->image : s_as_is};
    size_t listed = l->n;
    int rc = s_fix_geometry(&j, l);
    if (rc)
        return rc;
    j.dim = (size_t)j.t.channels * (size_t)j.t.height * (size_t)j.t.width;
    if (l->n > FL_DATA_MAX_BYTES / sizeof(float) / j.dim)
        return fl_fail(FL_ERANGE, "%zu images of %zu features: more than %zu bytes", l->n, j.dim,
                       FL_DATA_MAX_BYTES);
    /* not zeroed: every record is written by its decode (the pages are first touched there,
     * by the threads), a failed one is dropped below */
    j.x = fl_malloc_array(l->n * j.dim, sizeof *j.x);
    j.rc = calloc(l->n, sizeof *j.rc);
    j.msg = calloc(l->n, sizeof *j.msg);
    ds->y = fl_malloc_array(l->n, sizeof *ds->y);
    fl_pool_t *own = opts->pool ? NULL : fl_pool_new(0);
    fl_pool_t *pool = opts->pool ? opts->pool : own;
    int ntasks = fl_pool_size(pool) < (int)((l->n + S_CHUNK - 1) / S_CHUNK)
                     ? fl_pool_size(pool)
                     : (int)((l->n + S_CHUNK - 1) / S_CHUNK);
    j.work = calloc((size_t)ntasks, sizeof *j.work);
    bool made = j.work != NULL;
    for (int t = 0; made && t < ntasks; t++)
        made = (j.work[t] = fl_image_work_new()) != NULL;
    if (!j.x || !j.rc || !j.msg || !ds->y || !pool || !made) {
        rc = fl_fail(FL_ENOMEM, "out of memory for %zu images", l->n);
        goto out_free;
    }
    atomic_init(&j.next, 0);
    fl_pool_run(pool, ntasks, s_decode_task, &j);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (j.rc[i]) {
            fl_error_set("%s", j.msg[i] ? j.msg[i] : fl_strerror(j.rc[i]));
            if ((rc = fl_imagelist_bad(l, j.rc[i])) != 0)
                goto out_free;
            free(l->e[i].path);
            l->e[i].path = NULL;
            continue;
        }
        if (k != i) {
            memcpy(j.x + k * j.dim, j.x + i * j.dim, j.dim * sizeof(float));
            l->e[k] = l->e[i];
            l->e[i].path = NULL;
        }
        ds->y[k] = l->e[k].label;
        k++;
    }
    l->n = k;
    if (k == 0) {
        rc = fl_fail(FL_ENOTFOUND, "no image could be read");
        goto out_free;
    }
    ds->x = j.x, j.x = NULL;
    ds->n = k, ds->dim = j.dim;
    ds->rows = (uint32_t)j.t.height, ds->cols = (uint32_t)j.t.width;
    int32_t maxl = -1;
    for (size_t i = 0; i < k; i++)
        maxl = ds->y[i] > maxl ? ds->y[i] : maxl;
    ds->num_classes = l->nnames > maxl + 1 ? l->nnames : maxl + 1;
    if (info) {
        info->skipped = l->skipped, info->ignored = l->ignored;
        info->names = l->names, info->nnames = l->nnames;
        l->names = NULL, l->nnames = 0;
        info->files = fl_malloc_array(k, sizeof *info->files);
        if (!info->files) {
            rc = fl_fail(FL_ENOMEM, "out of memory");
            goto out_free;
        }
        for (size_t i = 0; i < k; i++)
            info->files[i] = l->e[i].path, l->e[i].path = NULL;
        info->nfiles = k;
    }
out_free:
    for (int t = 0; j.work && t < ntasks; t++)
        fl_image_work_destroy(&j.work[t]);
    free(j.work);
    fl_pool_destroy(&own);
    if (j.msg)
        for (size_t i = 0; i < l->cap && i < listed; i++)
            free(j.msg[i]);
    free(j.msg);
    free(j.rc);
    free(j.x);
    return rc;
}

static int s_load_list(struct fl_dataset *ds, struct fl_imagelist *l,
                       const struct fl_data_opts *opts, struct fl_data_info *info, int rc)
{
    if (rc == 0)
        rc = s_decode(l, opts, ds, info);
    if (rc) {
        fl_dataset_free(ds);
        if (info)
            fl_data_info_free(info);
    }
    fl_imagelist_free(l);
    return rc;
}

int fl_imagefolder_load(struct fl_dataset *ds, const char *path, const struct fl_data_opts *opts,
                        struct fl_data_info *info)
{
    struct fl_imagelist l = {.skip_bad = opts->skip_bad};
    struct stat st;
    memset(ds, 0, sizeof *ds);
    if (info)
        memset(info, 0, sizeof *info);
    int rc;
    if (stat(path, &st) != 0)
        rc = fl_fail(FL_EIO, "%s: %s%s", path, strerror(errno),
                     errno == ELOOP ? " (a symlink loop)" : "");
    else if (S_ISDIR(st.st_mode))
        rc = fl_imagelist_folder(&l, path, opts->unlabeled);
    else if (fl_imagefolder_is_manifest(path))
        rc = fl_imagelist_manifest(&l, path);
    else if (opts->unlabeled) {
        char *p = strdup(path);
        rc = p ? fl_imagelist_add(&l, p, 0) : fl_fail(FL_ENOMEM, "out of memory");
    } else
        rc = fl_fail(FL_EINVAL, "%s: neither a folder of class folders nor a manifest", path);
    if (rc == 0 && l.n == 0)
        rc = fl_fail(FL_ENOTFOUND, "%s: holds no .png, .jpg or .jpeg image", path);
    return s_load_list(ds, &l, opts, info, rc);
}

int fl_imagefolder_load_files(struct fl_dataset *ds, const char *const *paths, size_t n,
                              const struct fl_data_opts *opts, struct fl_data_info *info)
{
    struct fl_imagelist l = {.skip_bad = opts->skip_bad};
    memset(ds, 0, sizeof *ds);
    if (info)
        memset(info, 0, sizeof *info);
    int rc = n ? 0 : fl_fail(FL_EINVAL, "no image files given");
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = strdup(paths[i]);
        rc = p ? fl_imagelist_add(&l, p, 0) : fl_fail(FL_ENOMEM, "out of memory");
    }
    return s_load_list(ds, &l, opts, info, rc);
}

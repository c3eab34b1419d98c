/* fl_imagefolder: the files listed (fl_imagelist) then decoded on the thread pool, one slot
 * per file, so that records keep the listing's order whatever thread decoded them; or, over
 * the load's budget, kept as a record source that decodes them again when they are read. Each
 * decoding thread reuses its own buffers and JPEG decoder (fl_image_work) from file to file. */
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

/* Decode and prepare one file into out [dim] with a thread's buffers wk; asked is the target
 * as given, t the one with its geometry fixed. */
static int s_decode_file(fl_image_work_t *wk, const char *path, const struct fl_image_target *asked,
                         const struct fl_image_target *t, float *out, size_t dim)
{
    struct fl_image img;
    int rc = fl_image_work_read(wk, path, &img);
    if (rc)
        return rc;
    int c, h, w;
    fl_image_prepared_dims(&img, asked, &c, &h, &w);
    if (!asked->height && (h != t->height || w != t->width))
        return fl_fail(FL_EMISMATCH,
                       "%s: is %d x %d (after any resize), the first image %d x %d: "
                       "images of one data set share a size unless the base "
                       "records a resize and crop",
                       path, w, h, t->width, t->height);
    return fl_image_work_prepare(wk, &img, t, path, out, dim);
}

static int s_decode_one(const struct s_job *j, fl_image_work_t *wk, size_t i)
{
    return s_decode_file(wk, j->l->e[i].path, &j->asked, &j->t, j->x + i * j->dim, j->dim);
}

/* Files begin..end-1 of j, as task t (the check of skip_bad over the budget). */
static void s_decode_range(void *arg, int t, size_t begin, size_t end)
{
    struct s_job *j = arg;
    for (size_t i = begin; i < end; i++)
        if ((j->rc[i] = s_decode_one(j, j->work[t], i)) != 0)
            j->msg[i] = strdup(fl_error_msg());
}

/* n threads' decoding buffers, or NULL without the memory. */
static fl_image_work_t **s_works_new(int n)
{
    fl_image_work_t **w = calloc((size_t)n, sizeof *w);
    for (int t = 0; w && t < n; t++)
        if (!(w[t] = fl_image_work_new())) {
            while (t-- > 0)
                fl_image_work_destroy(&w[t]);
            free(w);
            return NULL;
        }
    return w;
}

static void s_works_destroy(fl_image_work_t ***w_p, int n)
{
    for (int t = 0; *w_p && t < n; t++)
        fl_image_work_destroy(&(*w_p)[t]);
    free(*w_p);
    *w_p = NULL;
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

/* ---- streaming: the files decoded again each time their records are read ---- */

/* A folder's images as a record source (fl_dataset.h). What the budget holds stays decoded:
 * the first nheld records (in the listing's order) are kept as they are first read, so only
 * the rest is decoded again each epoch. */
struct s_stream {
    struct fl_source src;         /* the interface; first, so a source is a stream */
    char **paths;                 /* [n] the files, in the listing's order */
    size_t n;                     /* files */
    struct fl_image_target asked; /* the target as given */
    struct fl_image_target t;     /* with the geometry fixed */
    size_t dim;                   /* features per record */
    fl_pool_t *pool;              /* decoding threads (borrowed, or own) */
    fl_pool_t *own;               /* the pool made when none was lent */
    fl_image_work_t **work;       /* [fl_pool_size(pool)] each thread's decoding buffers */
    size_t nheld;                 /* records 0..nheld-1 are kept once decoded */
    float *held;                  /* [nheld, dim] their features */
    bool *filled;                 /* [nheld] which of them are */
};

/* A fetch slot served from the held records, not decoded (an error is negative). */
#define S_HELD 1

/* One fetch, shared by the pool's tasks; each record has its own slots. */
struct s_fetch {
    struct s_stream *s; /* the source */
    const size_t *idx;  /* [n] records to read */
    float *out;         /* [n, dim] */
    int *rc;            /* [n] each record's result */
    char **msg;         /* [n] each failure's message, malloc'd */
};

static void s_fetch_range(void *arg, int t, size_t begin, size_t end)
{
    struct s_fetch *f = arg;
    const struct s_stream *s = f->s;
    for (size_t i = begin; i < end; i++)
        if (f->rc[i] != S_HELD &&
            (f->rc[i] = s_decode_file(s->work[t], s->paths[f->idx[i]], &s->asked, &s->t,
                                      f->out + i * s->dim, s->dim)) != 0)
            f->msg[i] = strdup(fl_error_msg());
}

static int s_stream_fetch(struct fl_source *src, const size_t *idx, size_t n, float *out)
{
    struct s_stream *s = (struct s_stream *)src;
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= s->n)
            return fl_fail(FL_ERANGE, "record %zu of %zu images", idx[i], s->n);
    struct s_fetch f = {.s = s, .idx = idx, .out = out};
    f.rc = calloc(n ? n : 1, sizeof *f.rc);
    f.msg = calloc(n ? n : 1, sizeof *f.msg);
    int rc = 0;
    if (!f.rc || !f.msg)
        rc = fl_fail(FL_ENOMEM, "out of memory reading %zu images", n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (idx[i] < s->nheld && s->filled[idx[i]]) {
            memcpy(out + i * s->dim, s->held + idx[i] * s->dim, sizeof(float) * s->dim);
            f.rc[i] = S_HELD;
        }
    if (rc == 0)
        fl_pool_for(s->pool, n, 1, s_fetch_range, &f);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (f.rc[i] < 0) /* the first failure in the order asked, whatever thread met it */
            rc = fl_fail(f.rc[i], "%s", f.msg[i] ? f.msg[i] : fl_strerror(f.rc[i]));
    for (size_t i = 0; rc == 0 && i < n; i++) /* keep what the budget holds */
        if (idx[i] < s->nheld && !s->filled[idx[i]]) {
            memcpy(s->held + idx[i] * s->dim, out + i * s->dim, sizeof(float) * s->dim);
            s->filled[idx[i]] = true;
        }
    for (size_t i = 0; f.msg && i < n; i++)
        free(f.msg[i]);
    free(f.msg);
    free(f.rc);
    return rc;
}

static void s_stream_destroy(struct fl_source *src)
{
    struct s_stream *s = (struct s_stream *)src;
    for (size_t i = 0; i < s->n; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->held);
    free(s->filled);
    s_works_destroy(&s->work, fl_pool_size(s->pool));
    fl_pool_destroy(&s->own);
    free(s);
}

/* The listed files as streamed records of ds (the source copies their paths). */
static int s_stream_new(struct fl_imagelist *l, const struct fl_data_opts *opts,
                        const struct fl_image_target *asked, const struct fl_image_target *t,
                        size_t dim, struct fl_dataset *ds)
{
    struct s_stream *s = calloc(1, sizeof *s);
    if (!s)
        return fl_fail(FL_ENOMEM, "out of memory");
    s->src = (struct fl_source){.fetch = s_stream_fetch, .destroy = s_stream_destroy};
    s->asked = *asked, s->t = *t, s->dim = dim;
    s->pool = opts->pool;
    if (!s->pool && !(s->pool = s->own = fl_pool_new(0))) {
        free(s);
        return fl_fail(FL_ENOMEM, "cannot make the decoding threads");
    }
    ds->src = fl_source_ref(&s->src);
    if (!(s->work = s_works_new(fl_pool_size(s->pool))))
        return fl_fail(FL_ENOMEM, "out of memory for the decoding buffers");
    s->paths = fl_malloc_array(l->n, sizeof *s->paths);
    ds->ref = fl_malloc_array(l->n, sizeof *ds->ref);
    ds->y = fl_malloc_array(l->n, sizeof *ds->y);
    if (!s->paths || !ds->ref || !ds->y)
        return fl_fail(FL_ENOMEM, "out of memory for %zu images", l->n);
    for (size_t i = 0; i < l->n; i++) {
        s->paths[i] = strdup(l->e[i].path);
        if (!s->paths[i])
            return fl_fail(FL_ENOMEM, "out of memory for %zu images", l->n);
        s->n = i + 1;
        ds->ref[i] = i;
        ds->y[i] = l->e[i].label;
    }
    ds->n = l->n, ds->dim = dim;
    ds->rows = (uint32_t)t->height, ds->cols = (uint32_t)t->width;
    /* Pages are touched only as records are kept; without the memory, nothing is kept. */
    size_t nheld = opts->budget / sizeof(float) / dim;
    if (nheld > 0 && (s->held = fl_malloc_array(nheld * dim, sizeof(float))) &&
        (s->filled = calloc(nheld, sizeof *s->filled)))
        s->nheld = nheld;
    return 0;
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

/* The class count of k records' labels y with the listing's names. */
static int32_t s_num_classes(const int32_t *y, size_t k, const struct fl_imagelist *l)
{
    int32_t maxl = -1;
    for (size_t i = 0; i < k; i++)
        maxl = y[i] > maxl ? y[i] : maxl;
    return l->nnames > maxl + 1 ? l->nnames : maxl + 1;
}

/* Hand the listing's counts, names and (taken) paths to info. */
static int s_fill_info(struct fl_imagelist *l, struct fl_data_info *info)
{
    if (!info)
        return 0;
    info->skipped = l->skipped, info->ignored = l->ignored;
    info->names = l->names, info->nnames = l->nnames;
    l->names = NULL, l->nnames = 0;
    info->files = fl_malloc_array(l->n, sizeof *info->files);
    if (!info->files)
        return fl_fail(FL_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++)
        info->files[i] = l->e[i].path, l->e[i].path = NULL;
    info->nfiles = l->n;
    return 0;
}

/* skip_bad over the budget: every file decoded once, a chunk at a time on pool, and the bad
 * ones left out of the listing (counted), as a load held in memory leaves them out. */
static int s_drop_bad(struct fl_imagelist *l, const struct s_job *j, fl_pool_t *pool)
{
    enum { CHUNK = 64 };
    struct fl_imagelist view = {0};
    struct s_job c = *j;
    c.l = &view;
    c.x = fl_falloc(CHUNK * j->dim);
    c.rc = calloc(CHUNK, sizeof *c.rc);
    c.msg = calloc(CHUNK, sizeof *c.msg);
    c.work = s_works_new(fl_pool_size(pool));
    int rc =
        c.x && c.rc && c.msg && c.work ? 0 : fl_fail(FL_ENOMEM, "out of memory checking images");
    for (size_t first = 0; rc == 0 && first < l->n; first += CHUNK) {
        view.e = l->e + first;
        view.n = l->n - first < CHUNK ? l->n - first : CHUNK;
        memset(c.rc, 0, CHUNK * sizeof *c.rc);
        fl_pool_for(pool, view.n, 1, s_decode_range, &c);
        for (size_t i = 0; i < view.n; i++) {
            if (!c.rc[i])
                continue;
            fl_error_set("%s", c.msg[i] ? c.msg[i] : fl_strerror(c.rc[i]));
            free(c.msg[i]);
            c.msg[i] = NULL;
            if (rc == 0 && (rc = fl_imagelist_bad(l, c.rc[i])) == 0) {
                free(view.e[i].path);
                view.e[i].path = NULL;
            }
        }
    }
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        if (l->e[i].path)
            l->e[k++] = l->e[i];
    if (rc == 0)
        l->n = k;
    if (rc == 0 && k == 0)
        rc = fl_fail(FL_ENOTFOUND, "no image could be read");
    for (size_t i = 0; c.msg && i < CHUNK; i++)
        free(c.msg[i]);
    s_works_destroy(&c.work, fl_pool_size(pool));
    free(c.msg);
    free(c.rc);
    free(c.x);
    return rc;
}

/* The listed files as streamed records: nothing decoded beyond the first image (but with
 * skip_bad, where every file is decoded once to find the bad ones). */
static int s_decode_streamed(struct fl_imagelist *l, const struct fl_data_opts *opts,
                             const struct s_job *j, struct fl_dataset *ds,
                             struct fl_data_info *info)
{
    int rc = 0;
    if (l->skip_bad) {
        fl_pool_t *own = opts->pool ? NULL : fl_pool_new(0);
        rc = opts->pool || own ? s_drop_bad(l, j, opts->pool ? opts->pool : own)
                               : fl_fail(FL_ENOMEM, "cannot make the decoding threads");
        fl_pool_destroy(&own);
    }
    if (rc == 0)
        rc = s_stream_new(l, opts, &j->asked, &j->t, j->dim, ds);
    if (rc == 0) {
        ds->num_classes = s_num_classes(ds->y, ds->n, l);
        rc = s_fill_info(l, info);
    }
    return rc;
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
    if (opts->budget && l->n > opts->budget / sizeof(float) / j.dim)
        return s_decode_streamed(l, opts, &j, ds, info);
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
    j.work = s_works_new(ntasks);
    if (!j.x || !j.rc || !j.msg || !ds->y || !pool || !j.work) {
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
    ds->num_classes = s_num_classes(ds->y, k, l);
    rc = s_fill_info(l, info);
out_free:
    s_works_destroy(&j.work, ntasks);
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

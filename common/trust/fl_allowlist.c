/* fl_allowlist: keys sorted by their Ed25519 form, with a sorted index of their X25519 forms,
 * so both look-ups are binary searches. */
#include "fl_allowlist.h"
#include "fl_error.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct s_entry {
    struct fl_pubkey key; /* keys, name */
    size_t seq;           /* load order: the first of duplicate keys wins */
};

struct fl_allowlist {
    struct s_entry *e;                 /* sorted by sign_pk, no duplicates */
    size_t n;                          /* entries in use */
    size_t cap;                        /* entries allocated */
    uint8_t (*curve)[FL_BOX_PK_BYTES]; /* the X25519 forms of e's keys, sorted */
};

static int s_add(void *ctx, const struct fl_pubkey *pk)
{
    struct fl_allowlist *a = ctx;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        if (cap > SIZE_MAX / sizeof *a->e)
            return fl_fail(FL_ENOMEM, "allow-list: too many keys");
        struct s_entry *e = realloc(a->e, cap * sizeof *e);
        if (!e)
            return fl_fail(FL_ENOMEM, "allow-list: out of memory");
        a->e = e;
        a->cap = cap;
    }
    a->e[a->n].key = *pk;
    a->e[a->n].seq = a->n;
    a->n++;
    return 0;
}

static int s_cmp_entry(const void *x, const void *y)
{
    const struct s_entry *a = x, *b = y;
    int c = memcmp(a->key.sign_pk, b->key.sign_pk, FL_SIGN_PK_BYTES);
    if (c)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int s_cmp_curve(const void *x, const void *y)
{
    return memcmp(x, y, FL_BOX_PK_BYTES);
}

static int s_cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static bool s_is_pub_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && name[0] != '.' && strcmp(name + n - 4, ".pub") == 0;
}

static int s_load_dir(struct fl_allowlist *a, const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return fl_fail(FL_EIO, "%s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!s_is_pub_name(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
                goto out_free;
            }
            names = nn;
        }
        size_t plen = strlen(path) + strlen(de->d_name) + 2;
        if (!(names[n] = malloc(plen))) {
            rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
            goto out_free;
        }
        snprintf(names[n++], plen, "%s/%s", path, de->d_name);
    }
    if (n)
        qsort(names, n, sizeof *names, s_cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode))
            continue; /* a directory or dangling link named *.pub is not a key */
        rc = fl_pubkey_each(names[i], s_add, a);
    }
out_free:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/* Sort, drop duplicate keys and build the X25519 index. */
static int s_index(struct fl_allowlist *a, const char *path)
{
    if (a->n == 0)
        return fl_fail(FL_ENOTFOUND, "%s: no public keys", path);
    qsort(a->e, a->n, sizeof *a->e, s_cmp_entry);
    size_t w = 1;
    for (size_t r = 1; r < a->n; r++)
        if (memcmp(a->e[r].key.sign_pk, a->e[w - 1].key.sign_pk, FL_SIGN_PK_BYTES) != 0)
            a->e[w++] = a->e[r];
    a->n = w;
    if (!(a->curve = malloc(a->n * sizeof *a->curve)))
        return fl_fail(FL_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < a->n; i++)
        memcpy(a->curve[i], a->e[i].key.box_pk, FL_BOX_PK_BYTES);
    qsort(a->curve, a->n, sizeof *a->curve, s_cmp_curve);
    return 0;
}

fl_allowlist_t *fl_allowlist_load(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        fl_fail(FL_EIO, "%s: %s", path ? path : "allow-list", strerror(path ? errno : EINVAL));
        return NULL;
    }
    struct fl_allowlist *a = calloc(1, sizeof *a);
    if (!a) {
        fl_fail(FL_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    int rc = S_ISDIR(st.st_mode) ? s_load_dir(a, path) : fl_pubkey_each(path, s_add, a);
    if (rc == 0)
        rc = s_index(a, path);
    if (rc != 0)
        fl_allowlist_destroy(&a);
    return a;
}

void fl_allowlist_destroy(fl_allowlist_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->e);
    free((*self_p)->curve);
    free(*self_p);
    *self_p = NULL;
}

size_t fl_allowlist_size(const fl_allowlist_t *a)
{
    return a ? a->n : 0;
}

static int s_cmp_sign_key(const void *key, const void *elem)
{
    return memcmp(key, ((const struct s_entry *)elem)->key.sign_pk, FL_SIGN_PK_BYTES);
}

bool fl_allowlist_has(const fl_allowlist_t *a, const uint8_t sign_pk[FL_SIGN_PK_BYTES],
                      char name[FL_NODE_NAME_MAX])
{
    if (!a || !sign_pk || a->n == 0)
        return false;
    const struct s_entry *e = bsearch(sign_pk, a->e, a->n, sizeof *a->e, s_cmp_sign_key);
    if (e && name)
        memcpy(name, e->key.name, FL_NODE_NAME_MAX);
    return e != NULL;
}

bool fl_allowlist_has_curve(const fl_allowlist_t *a, const uint8_t box_pk[FL_BOX_PK_BYTES])
{
    if (!a || !box_pk || a->n == 0)
        return false;
    return bsearch(box_pk, a->curve, a->n, sizeof *a->curve, s_cmp_curve) != NULL;
}

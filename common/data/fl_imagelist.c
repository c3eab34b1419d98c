/* fl_imagelist: class folders walked in sorted order, following symlinks but not loops, and
 * manifests checked line by line, into one list of files and labels. */
#include "fl_imagelist.h"
#include "fl_imagefolder.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_mem.h"
#include "fl_tensor.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void fl_imagelist_free(struct fl_imagelist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].path);
    free(l->e);
    for (int i = 0; i < l->nnames; i++)
        free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* Add path (taking ownership) with label. */
int fl_imagelist_add(struct fl_imagelist *l, char *path, int32_t label)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        if (l->n >= FL_IMAGEFOLDER_MAX_FILES) {
            free(path);
            return fl_fail(FL_ERANGE, "more than %zu images", FL_IMAGEFOLDER_MAX_FILES);
        }
        struct fl_imagelist_entry *e = realloc(l->e, cap * sizeof *e);
        if (!e) {
            free(path);
            return fl_fail(FL_ENOMEM, "out of memory listing images");
        }
        l->e = e, l->cap = cap;
    }
    l->e[l->n++] = (struct fl_imagelist_entry){.path = path, .label = label};
    return 0;
}

/* A bad entry found while listing: rc back, or, with skip_bad, a warning and 0. */
int fl_imagelist_bad(struct fl_imagelist *l, int rc)
{
    if (!l->skip_bad)
        return rc;
    char msg[512];
    fl_log(FL_LOG_WARN, "image_skipped", "reason=%s", fl_log_str(fl_error_msg(), msg, sizeof msg));
    l->skipped++;
    return 0;
}

bool fl_imagefolder_is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                   strcasecmp(dot, ".jpeg") == 0);
}

static char *s_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p)
        snprintf(p, a + b + 2, "%s%s%s", dir, a && dir[a - 1] == '/' ? "" : "/", name);
    return p;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in dir, dot entries left out; *names malloc'd (caller frees each). */
static int s_read_dir(const char *dir, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    *names = NULL, *n = 0;
    if (!d)
        return fl_fail(FL_EIO, "%s: %s%s", dir, strerror(errno),
                       errno == ELOOP ? " (a symlink loop)" : "");
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = cap <= FL_IMAGEFOLDER_MAX_FILES ? realloc(*names, cap * sizeof *nn) : NULL;
            if (!nn) {
                rc = fl_fail(FL_ENOMEM, "%s: too many entries", dir);
                break;
            }
            *names = nn;
        }
        if (!((*names)[*n] = strdup(de->d_name))) {
            rc = fl_fail(FL_ENOMEM, "%s: out of memory", dir);
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            free((*names)[i]);
        free(*names);
        *names = NULL, *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort(*names, *n, sizeof **names, s_cmp_str);
    return 0;
}

/* Folders being walked, to refuse a symlink that leads back into one of them. */
struct s_ancestors {
    dev_t dev[FL_IMAGEFOLDER_MAX_DEPTH + 2]; /* device of each */
    ino_t ino[FL_IMAGEFOLDER_MAX_DEPTH + 2]; /* inode of each */
    int n;                                   /* depth */
};

static bool s_is_ancestor(const struct s_ancestors *a, const struct stat *st)
{
    for (int i = 0; i < a->n; i++)
        if (a->dev[i] == st->st_dev && a->ino[i] == st->st_ino)
            return true;
    return false;
}

/* Add every image under dir (sorted, recursively) with label. */
static int s_walk(struct fl_imagelist *l, const char *dir, int32_t label, struct s_ancestors *anc)
{
    char **names;
    size_t n;
    int rc = s_read_dir(dir, &names, &n);
    if (rc)
        return fl_imagelist_bad(l, rc);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = s_join(dir, names[i]);
        struct stat st;
        if (!p) {
            rc = fl_fail(FL_ENOMEM, "out of memory");
        } else if (stat(p, &st) != 0) {
            rc = fl_imagelist_bad(l, fl_fail(FL_EIO, "%s: %s%s", p, strerror(errno),
                                             errno == ELOOP ? " (a symlink loop)" : ""));
            free(p);
        } else if (S_ISDIR(st.st_mode)) {
            if (s_is_ancestor(anc, &st))
                rc = fl_imagelist_bad(l, fl_fail(FL_EINVAL,
                                                 "%s: a symlink loop (leads back to a folder "
                                                 "that contains it)",
                                                 p));
            else if (anc->n > FL_IMAGEFOLDER_MAX_DEPTH)
                rc = fl_imagelist_bad(l, fl_fail(FL_ERANGE, "%s: folders nested more than %d deep",
                                                 p, FL_IMAGEFOLDER_MAX_DEPTH));
            else {
                anc->dev[anc->n] = st.st_dev, anc->ino[anc->n++] = st.st_ino;
                rc = s_walk(l, p, label, anc);
                anc->n--;
            }
            free(p);
        } else if (!S_ISREG(st.st_mode) || !fl_imagefolder_is_image_name(names[i])) {
            l->ignored++;
            free(p);
        } else {
            rc = fl_imagelist_add(l, p, label);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static bool s_is_int_label(const char *s, long *v)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    *v = strtol(s, &end, 10);
    return *end == '\0' && errno == 0 && *v <= FL_DATA_MAX_LABEL;
}

/* Class folders all named by numbers ("0".."9", or "5".."9" where a shard lacks some classes)
 * are labelled by those numbers, so branches that lack a class still agree on the others'
 * labels; with every number from 0 present this is torchvision's numbering too. */
static int s_numeric_classes(struct fl_imagelist *l, const char *root)
{
    long v = 0, top = -1;
    for (int i = 0; i < l->nnames; i++) {
        if (!s_is_int_label(l->names[i], &v))
            return 0;
        top = v > top ? v : top;
    }
    char **names = calloc((size_t)top + 1, sizeof *names);
    int32_t *map = calloc((size_t)l->nnames, sizeof *map);
    int rc = 0;
    if (!names || !map) {
        rc = fl_fail(FL_ENOMEM, "out of memory");
        goto out_free;
    }
    for (int i = 0; i < l->nnames && rc == 0; i++) {
        s_is_int_label(l->names[i], &v);
        map[i] = (int32_t)v;
        if (names[v])
            rc = fl_fail(FL_EINVAL, "%s: class folders '%s' and '%s' are one number", root,
                         names[v], l->names[i]);
        names[v] = l->names[i];
    }
    for (long i = 0; i <= top && rc == 0; i++)
        if (!names[i] && !(names[i] = calloc(1, 1))) /* a number no folder has: no name */
            rc = fl_fail(FL_ENOMEM, "out of memory");
    if (rc)
        goto out_free;
    for (size_t i = 0; i < l->n; i++)
        l->e[i].label = map[l->e[i].label];
    free(l->names); /* the strings moved to names */
    l->names = names, names = NULL;
    l->nnames = (int)top + 1;
out_free:
    if (names) /* only the strings this function allocated: the folder names stay in l */
        for (long i = 0; i <= top; i++)
            if (names[i] && !names[i][0])
                free(names[i]);
    free(names);
    free(map);
    return rc;
}

/* A folder of class folders (or, unlabeled, of images). */
int fl_imagelist_folder(struct fl_imagelist *l, const char *root, bool unlabeled)
{
    char **names;
    size_t n;
    struct stat rst;
    int rc = 0;
    if (stat(root, &rst) != 0)
        return fl_fail(FL_EIO, "%s: %s", root, strerror(errno));
    if ((rc = s_read_dir(root, &names, &n)) != 0)
        return rc;
    struct s_ancestors anc = {.dev = {rst.st_dev}, .ino = {rst.st_ino}, .n = 1};
    if (unlabeled) {
        rc = s_walk(l, root, 0, &anc);
        goto out_free;
    }
    if (!(l->names = calloc(n ? n : 1, sizeof *l->names))) {
        rc = fl_fail(FL_ENOMEM, "out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = s_join(root, names[i]);
        struct stat st;
        if (!p) {
            rc = fl_fail(FL_ENOMEM, "out of memory");
            break;
        }
        if (stat(p, &st) != 0) {
            rc = fl_imagelist_bad(l, fl_fail(FL_EIO, "%s: %s%s", p, strerror(errno),
                                             errno == ELOOP ? " (a symlink loop)" : ""));
        } else if (S_ISDIR(st.st_mode)) {
            if (l->nnames > FL_DATA_MAX_LABEL) {
                rc = fl_fail(FL_ERANGE, "%s: more than %d class folders", root,
                             FL_DATA_MAX_LABEL + 1);
            } else if (s_is_ancestor(&anc, &st)) {
                rc = fl_imagelist_bad(l, fl_fail(FL_EINVAL, "%s: a symlink loop", p));
            } else {
                size_t before = l->n;
                int32_t label = l->nnames;
                l->names[l->nnames++] = names[i];
                names[i] = NULL;
                anc.dev[1] = st.st_dev, anc.ino[1] = st.st_ino, anc.n = 2;
                rc = s_walk(l, p, label, &anc);
                anc.n = 1;
                if (rc == 0 && l->n == before)
                    rc = fl_imagelist_bad(l,
                                          fl_fail(FL_ENOTFOUND,
                                                  "%s: empty class folder (no .png, .jpg or .jpeg "
                                                  "file)",
                                                  p));
            }
        } else {
            l->ignored++; /* files beside the class folders (a README) */
        }
        free(p);
    }
    if (rc == 0 && l->nnames == 0)
        rc = fl_fail(FL_ENOTFOUND,
                     "%s: no class folders (one subfolder per class, holding its images)", root);
    if (rc == 0)
        rc = s_numeric_classes(l, root);
out_free:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ---- manifests ---- */

/* Longest manifest read. */
#define S_MANIFEST_MAX ((size_t)256 << 20)

bool fl_imagefolder_is_manifest(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    if (!f)
        return false;
    bool yes = false;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *comma = strrchr(line, ',');
        if (strcmp(line, "path,label") == 0)
            yes = true;
        else if (comma) {
            *comma = '\0';
            yes = fl_imagefolder_is_image_name(line);
        }
    }
    fclose(f);
    return yes;
}

/* The folder holding path, resolved (malloc'd). */
static char *s_real_dir(const char *path)
{
    char *copy = strdup(path), *dir = NULL;
    if (!copy)
        return NULL;
    char *slash = strrchr(copy, '/');
    if (!slash)
        dir = realpath(".", NULL);
    else {
        if (slash == copy)
            slash[1] = '\0';
        else
            *slash = '\0';
        dir = realpath(copy, NULL);
    }
    free(copy);
    return dir;
}

/* Check one manifest line's path and add it; the label is resolved later. */
static int s_manifest_path(struct fl_imagelist *l, const char *manifest, size_t lineno,
                           const char *base, const char *rel)
{
    if (rel[0] == '/')
        return fl_imagelist_bad(l, fl_fail(FL_EINVAL,
                                           "%s: line %zu: '%s' is an absolute path (paths are "
                                           "relative to the manifest's folder)",
                                           manifest, lineno, rel));
    char *p = s_join(base, rel);
    if (!p)
        return fl_fail(FL_ENOMEM, "out of memory");
    char *real = realpath(p, NULL);
    if (!real) {
        int e = errno;
        free(p);
        return fl_imagelist_bad(l, fl_fail(FL_EIO, "%s: line %zu: %s: %s%s", manifest, lineno, rel,
                                           strerror(e), e == ELOOP ? " (a symlink loop)" : ""));
    }
    size_t bl = strlen(base);
    bool inside = strncmp(real, base, bl) == 0 && (real[bl] == '/' || base[bl - 1] == '/');
    free(real);
    if (!inside) {
        free(p);
        return fl_imagelist_bad(l, fl_fail(FL_EINVAL,
                                           "%s: line %zu: '%s' lies outside the manifest's folder "
                                           "%s: refused",
                                           manifest, lineno, rel, base));
    }
    return fl_imagelist_add(l, p, 0);
}

/* Labels: all integers (used as they are), or else class names (sorted, numbered). */
static int s_manifest_labels(struct fl_imagelist *l, char **labels, const char *manifest)
{
    bool numeric = true;
    long v;
    for (size_t i = 0; i < l->n && numeric; i++)
        numeric = s_is_int_label(labels[i], &v);
    if (numeric) {
        for (size_t i = 0; i < l->n; i++) {
            s_is_int_label(labels[i], &v);
            l->e[i].label = (int32_t)v;
        }
        return 0;
    }
    char **sorted = fl_malloc_array(l->n ? l->n : 1, sizeof *sorted);
    if (!sorted)
        return fl_fail(FL_ENOMEM, "out of memory");
    memcpy(sorted, labels, l->n * sizeof *sorted);
    qsort(sorted, l->n, sizeof *sorted, s_cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
            sorted[k++] = sorted[i];
    int rc = 0;
    if (k > FL_DATA_MAX_LABEL + 1) {
        rc = fl_fail(FL_ERANGE, "%s: more than %d class names", manifest, FL_DATA_MAX_LABEL + 1);
        goto out_free;
    }
    if (!(l->names = calloc(k, sizeof *l->names))) {
        rc = fl_fail(FL_ENOMEM, "out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < k; i++)
        if (!(l->names[l->nnames++] = strdup(sorted[i]))) {
            rc = fl_fail(FL_ENOMEM, "out of memory");
            goto out_free;
        }
    for (size_t i = 0; i < l->n; i++) {
        char **hit = bsearch(&labels[i], sorted, k, sizeof *sorted, s_cmp_str);
        l->e[i].label = (int32_t)(hit - sorted);
    }
out_free:
    free(sorted);
    return rc;
}

int fl_imagelist_manifest(struct fl_imagelist *l, const char *manifest)
{
    unsigned char *buf;
    size_t len;
    char **labels = NULL;
    size_t nlabels = 0, cap = 0;
    int rc = fl_fs_read_file(manifest, S_MANIFEST_MAX, &buf, &len);
    if (rc)
        return rc;
    char *base = s_real_dir(manifest);
    if (!base) {
        rc = fl_fail(FL_EIO, "%s: cannot resolve its folder: %s", manifest, strerror(errno));
        goto out_free;
    }
    char *save = NULL, *line = strtok_r((char *)buf, "\n", &save);
    for (size_t lineno = 1; line && rc == 0; line = strtok_r(NULL, "\n", &save), lineno++) {
        line[strcspn(line, "\r")] = '\0';
        if (line[0] == '\0' || (lineno == 1 && strcmp(line, "path,label") == 0))
            continue;
        char *comma = strrchr(line, ',');
        if (!comma || comma == line || comma[1] == '\0') {
            rc = fl_fail(FL_EFORMAT, "%s: line %zu: want 'path,label'", manifest, lineno);
            break;
        }
        *comma = '\0';
        size_t before = l->n;
        if ((rc = s_manifest_path(l, manifest, lineno, base, line)) || l->n == before)
            continue;
        if (nlabels == cap) {
            cap = cap ? 2 * cap : 256;
            char **nl = realloc(labels, cap * sizeof *nl);
            if (!nl) {
                rc = fl_fail(FL_ENOMEM, "out of memory");
                break;
            }
            labels = nl;
        }
        labels[nlabels++] = comma + 1;
    }
    if (rc == 0 && l->n == 0)
        rc = fl_fail(FL_ENOTFOUND, "%s: lists no images", manifest);
    if (rc == 0)
        rc = s_manifest_labels(l, labels, manifest);
out_free:
    free(labels);
    free(base);
    free(buf);
    return rc;
}

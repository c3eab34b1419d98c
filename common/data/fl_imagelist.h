/* fl_imagelist: the listing half of fl_imagefolder (internal to the data layer): which image
 * files a class folder tree or a manifest names, with their labels and the class names. */
#ifndef FL_IMAGELIST_H
#define FL_IMAGELIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One image to read. */
struct fl_imagelist_entry {
    char *path;    /* as opened (and named in messages) */
    int32_t label; /* class index */
};

/* What the listing found. */
struct fl_imagelist {
    struct fl_imagelist_entry *e; /* entries */
    size_t n, cap;                /* used, allocated */
    char **names;                 /* class names, [nnames] */
    int nnames;                   /* class count */
    size_t skipped;               /* bad entries skipped while listing */
    size_t ignored;               /* files without an image name */
    bool skip_bad;                /* skip bad entries instead of failing */
};

/* Free the entries and names and zero *l. */
void fl_imagelist_free(struct fl_imagelist *l);
/* Add path (taking ownership, freed on failure) with label. */
int fl_imagelist_add(struct fl_imagelist *l, char *path, int32_t label);
/* A bad entry met while listing or decoding (the message set): rc back, or with skip_bad a
 * warning logged, the entry counted, and 0. */
int fl_imagelist_bad(struct fl_imagelist *l, int rc);
/* Every image of a folder of class folders (classes: the sorted folder names), or with
 * unlabeled every image under root, label 0. */
int fl_imagelist_folder(struct fl_imagelist *l, const char *root, bool unlabeled);
/* Every image a manifest names, paths checked to lie inside its folder. */
int fl_imagelist_manifest(struct fl_imagelist *l, const char *manifest);

#endif

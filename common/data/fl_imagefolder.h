/* fl_imagefolder: labelled images from a folder with one subfolder per class (torchvision's
 * ImageFolder: class names are the sorted folder names, a class's index its position) or from
 * a manifest CSV of "path,label" lines (paths relative to the manifest, never outside its
 * folder), decoded in parallel and prepared as fl_image_prepare says. */
#ifndef FL_IMAGEFOLDER_H
#define FL_IMAGEFOLDER_H

#include "fl_data.h"

/* Deepest folder nesting walked inside a class folder. */
#define FL_IMAGEFOLDER_MAX_DEPTH 32
/* Most images one folder or manifest may list. */
#define FL_IMAGEFOLDER_MAX_FILES ((size_t)1 << 24)

/* Does the file at path look like a manifest (first line "path,label", or a first field
 * naming a .png/.jpg/.jpeg file)? */
bool fl_imagefolder_is_manifest(const char *path);
/* Does name end in .png, .jpg or .jpeg (any case)? */
bool fl_imagefolder_is_image_name(const char *name);

/* Load path (a class folder tree, a manifest, or with opts->unlabeled a flat folder or one
 * image) into *ds, filling info (may be NULL). Every bad image, empty class folder, symlink
 * loop or manifest path outside its folder is an error naming the file, unless
 * opts->skip_bad, which skips and counts it. When the decoded records would take more than
 * opts->budget bytes, only the first image is decoded (for the geometry) and *ds streams:
 * each record is decoded again on opts->pool when read (fl_dataset_gather), but for the first
 * budget's worth of the listing, kept once decoded. A bad file then fails the read naming it;
 * with skip_bad every file is decoded once at the load, a chunk at a time, and the bad ones
 * are left out. *ds zeroed on failure. */
int fl_imagefolder_load(struct fl_dataset *ds, const char *path, const struct fl_data_opts *opts,
                        struct fl_data_info *info);
/* The same for a list of image files (labels 0, no classes): what predict reads. */
int fl_imagefolder_load_files(struct fl_dataset *ds, const char *const *paths, size_t n,
                              const struct fl_data_opts *opts, struct fl_data_info *info);

#endif

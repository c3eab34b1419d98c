/* fl_augment: training-time augmentation of image records, torchvision's CIFAR recipe:
 * RandomCrop(H x W, padding=P) with zero fill, then RandomHorizontalFlip(0.5), applied to raw
 * records (before the input normalisation, as torchvision pads the PIL image, so the padding is
 * black). Any record the model reads as C x H x W (H, W > 1) qualifies, whatever file it came
 * from; a flat record (an MLP's, a table's) is refused. Deterministic: a record's draw depends
 * only on the seed, the epoch and the record's index in the data set, never on threads, batches
 * or on whether the record was held in memory or decoded again. Never applied to evaluation. */
#ifndef FL_AUGMENT_H
#define FL_AUGMENT_H

#include "fl_arch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The operations, as bits. */
enum { FL_AUGMENT_CROP = 1 << 0, FL_AUGMENT_FLIP = 1 << 1 };

/* Padding of the random crop on each side, in pixels (torchvision's CIFAR recipe: 4). */
#define FL_AUGMENT_PAD 4

/* What augmentation a training run applies; zeroed: none. */
struct fl_augment {
    unsigned ops; /* FL_AUGMENT_* bits */
    int pad;      /* crop padding per side in pixels (0 with crop: FL_AUGMENT_PAD) */
};

/* The geometry of a record: c planes of h x w values (CHW), or interleaved (hwc). */
struct fl_augment_shape {
    int c, h, w; /* channels, height, width */
    bool hwc;    /* values interleaved per pixel (a chain base's layout) instead of planes */
};

/* Parse "crop,flip", "flip", "crop" or "none" (blanks around names allowed; "" is none) into
 * *ops. FL_EINVAL naming the unknown or repeated operation. */
int fl_augment_parse(const char *spec, unsigned *ops);
/* fl_augment_parse as an option table's validate hook (fl_options). */
int fl_augment_validate(const char *spec);
/* The geometry arch's input has, checked to be an image (H and W > 1): 0, or FL_EINVAL saying
 * the records are flat and augmentation needs C x H x W. */
int fl_augment_shape_of(const struct fl_arch *arch, struct fl_augment_shape *s);

/* One record's random draw: where the crop window sits relative to the image, and the flip. */
struct fl_augment_draw {
    int top, left; /* offset of the crop window, in [-pad, pad] each (0 without crop) */
    bool flip;     /* mirrored left to right (after the crop) */
};

/* The draw of (seed, epoch, record): top, then left (uniform in [-pad, pad]), then the flip's
 * coin, as torchvision draws RandomCrop then RandomHorizontalFlip. */
void fl_augment_draw(const struct fl_augment *a, uint64_t seed, uint64_t epoch, uint64_t record,
                     struct fl_augment_draw *d);
/* Apply a draw to x in place: out(y, x) = in(y + top, x' + left) with x' = w - 1 - x when
 * flipped, else x, and 0 where that falls outside the image; tmp holds c * h * w values. */
void fl_augment_apply(const struct fl_augment_shape *s, const struct fl_augment_draw *d, float *x,
                      float *tmp);
/* Augment one record x (c * h * w raw values) in place for (seed, epoch, record): its draw,
 * applied; tmp holds c * h * w scratch values. A no-op when a->ops is 0. */
void fl_augment_record(const struct fl_augment *a, const struct fl_augment_shape *s, uint64_t seed,
                       uint64_t epoch, uint64_t record, float *x, float *tmp);

#endif

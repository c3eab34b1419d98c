/* fl_prom: the Prometheus text exposition format (version 0.0.4) written to a FILE: a family's
 * HELP and TYPE lines, samples with escaped label values, and histograms with fixed buckets.
 * The programs' /metrics pages are built with it. */
#ifndef FL_PROM_H
#define FL_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FL_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define FL_PROM_BUCKETS_MAX  16

/* A histogram: cumulative counts are made when it is written. */
struct fl_prom_hist {
    const double *bounds;                 /* upper bounds, increasing (static) */
    size_t nbounds;                       /* how many (at most FL_PROM_BUCKETS_MAX) */
    uint64_t counts[FL_PROM_BUCKETS_MAX]; /* observations <= bounds[i] and > bounds[i-1] */
    uint64_t count;                       /* every observation (the +Inf bucket) */
    double sum;                           /* their sum */
};

/* The HELP and TYPE lines of a family (type: counter, gauge, histogram). */
void fl_prom_family(FILE *f, const char *name, const char *type, const char *help);
/* One sample: name{labels} value; labels is "" or pre-formatted k="v" pairs (fl_prom_label). */
void fl_prom_sample(FILE *f, const char *name, const char *labels, double value);
/* The same with an exact 64-bit count. */
void fl_prom_count(FILE *f, const char *name, const char *labels, uint64_t value);
/* Format key="value" into out (value escaped: backslash, quote, newline). Returns out. */
const char *fl_prom_label(char *out, size_t len, const char *key, const char *value);

void fl_prom_hist_init(struct fl_prom_hist *h, const double *bounds, size_t nbounds);
void fl_prom_hist_observe(struct fl_prom_hist *h, double v);
/* The whole family: HELP, TYPE, the _bucket lines, _sum and _count. */
void fl_prom_hist_write(FILE *f, const char *name, const char *help, const struct fl_prom_hist *h);

#endif

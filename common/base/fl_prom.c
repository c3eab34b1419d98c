/* fl_prom: Prometheus text exposition format. */
#include "fl_prom.h"

#include <math.h>
#include <string.h>

void fl_prom_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s ", name);
    for (const char *p = help; *p; p++) { /* HELP text escapes backslash and newline */
        if (*p == '\\')
            fputs("\\\\", f);
        else if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
    fprintf(f, "\n# TYPE %s %s\n", name, type);
}

static void s_value(FILE *f, double v)
{
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else
        fprintf(f, "%.17g", v);
}

static void s_name(FILE *f, const char *name, const char *labels)
{
    if (labels && *labels)
        fprintf(f, "%s{%s} ", name, labels);
    else
        fprintf(f, "%s ", name);
}

void fl_prom_sample(FILE *f, const char *name, const char *labels, double value)
{
    s_name(f, name, labels);
    s_value(f, value);
    fputc('\n', f);
}

void fl_prom_count(FILE *f, const char *name, const char *labels, uint64_t value)
{
    s_name(f, name, labels);
    fprintf(f, "%llu\n", (unsigned long long)value);
}

const char *fl_prom_label(char *out, size_t len, const char *key, const char *value)
{
    size_t n = 0;
    int w = snprintf(out, len, "%s=\"", key);
    if (w < 0 || (size_t)w >= len) {
        out[0] = '\0';
        return out;
    }
    n = (size_t)w;
    for (const char *p = value; *p && n + 4 < len; p++) {
        if (*p == '\\' || *p == '"') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

void fl_prom_hist_init(struct fl_prom_hist *h, const double *bounds, size_t nbounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nbounds = nbounds < FL_PROM_BUCKETS_MAX ? nbounds : FL_PROM_BUCKETS_MAX;
}

void fl_prom_hist_observe(struct fl_prom_hist *h, double v)
{
    if (isnan(v))
        return;
    for (size_t i = 0; i < h->nbounds; i++)
        if (v <= h->bounds[i]) {
            h->counts[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void fl_prom_hist_write(FILE *f, const char *name, const char *help, const struct fl_prom_hist *h)
{
    fl_prom_family(f, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < h->nbounds; i++) {
        cum += h->counts[i];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    fprintf(f, "%s_sum ", name);
    s_value(f, h->sum);
    fprintf(f, "\n%s_count %llu\n", name, (unsigned long long)h->count);
}

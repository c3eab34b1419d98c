/* What the coordinator learns under secure aggregation, with the real programs: a
 * fedtl-coordinator --secure-aggregation and five fedtl-client processes over CurveZMQ on
 * loopback, for two rounds, in a test build whose FEDTL_TEST_RECORD_DIR switch makes the
 * coordinator record every frame it reads from a branch as its decoder saw it (after CurveZMQ:
 * coordinator/fl_coord_record.h), and each branch write the input it masked and the global
 * adapter its task came with (client/fl_branch_secagg.c). From those records: no window of a
 * branch's encoded input (or of its update as floats) is anywhere in the coordinator's bytes;
 * each masked input as received is uncorrelated with the branch's input; the sum of the inputs
 * is what the coordinator committed (the change of the global adapter) within the fixed-point
 * error; and the record holds exactly the protocol's messages, every byte the ledger counted. */
#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_codec.h"
#include "fl_error.h"
#include "fl_modelfile.h"
#include "fl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_NB     5 /* branches */
#define S_ROUNDS 2

/* The federation (fl_test_fed_setup), every program recording into rec/, until the
 * coordinator exits after S_ROUNDS rounds. */
static void s_run(struct fl_test_fed *f)
{
    char *why = NULL;
    int rc = fl_test_fed_setup(f, "secagg-view", S_NB, FEDTL_BIN_DIR, &why);
    cr_assert_eq(rc, 0, "%s", why ? why : "");
    free(why);
    char cmd[4096], log[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && FEDTL_TEST_RECORD_DIR=%s/rec exec %s/fedtl-coordinator --key hq.key "
             "--allow allow --base base.ftm --state-dir state --endpoint tcp://127.0.0.1:%d "
             "--classes 1-3 --method lora --epochs 2 --heartbeat-ms 200 --threads 1 --rounds %d "
             "--min-clients %d --min-start %d --deadline 30 --exit-when-done "
             "--secure-aggregation",
             f->dir, f->dir, FEDTL_BIN_DIR, f->port, S_ROUNDS, S_NB, S_NB);
    snprintf(log, sizeof log, "%s/coord.log", f->dir);
    f->coord = fl_test_spawn(cmd, log);
    for (int i = 0; i < S_NB; i++) {
        snprintf(cmd, sizeof cmd,
                 "cd %s && FEDTL_TEST_RECORD_DIR=%s/rec exec %s/fedtl-client --coordinator "
                 "tcp://127.0.0.1:%d --coordinator-key hq.pub --key b%d.key --data "
                 "shards/client-%02d.csv --cache-dir cache%d --out final%d.fta --threads 1 "
                 "--connect-timeout 20",
                 f->dir, f->dir, FEDTL_BIN_DIR, f->port, i, i, i, i);
        snprintf(log, sizeof log, "%s/b%d.log", f->dir, i);
        f->branch[i] = fl_test_spawn(cmd, log);
    }
    rc = fl_test_wait(f->coord, 300);
    f->coord = 0;
    snprintf(log, sizeof log, "%s/coord.log", f->dir);
    char *clog = fl_test_slurp(log);
    cr_assert_eq(rc, 0, "coordinator exit %d:\n%s", rc, clog ? clog : "");
    free(clog);
}

/* ---- the records ---- */

/* A whole file into a malloc'd buffer (*len bytes). */
static uint8_t *s_read(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "%s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    cr_assert(buf && fread(buf, 1, (size_t)n, fp) == (size_t)n, "%s", path);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* One frame the coordinator read (coordinator/fl_coord_record.h). */
struct s_frame {
    char peer[64];       /* key id the connection proved, or "unknown" */
    char branch[64];     /* its name, or "?" */
    int type;            /* Envelope body case, -1: did not decode */
    uint32_t round;      /* the round open */
    const uint8_t *data; /* the frame (into the record) */
    size_t len;          /* its size */
};

/* Every frame in DIR/rec/frames into *frames (malloc'd, *n of them); the record's bytes in
 * *buf (free it after the frames). */
static void s_frames(struct fl_test_fed *f, uint8_t **buf, struct s_frame **frames, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rec/frames", f->dir);
    size_t len, cap = 0;
    *buf = s_read(path, &len);
    *frames = NULL;
    *n = 0;
    for (size_t off = 0; off < len;) {
        const uint8_t *nl = memchr(*buf + off, '\n', len - off);
        cr_assert_not_null(nl, "a header at %zu", off);
        char head[512];
        size_t hl = (size_t)(nl - (*buf + off));
        cr_assert_lt(hl, sizeof head);
        memcpy(head, *buf + off, hl);
        head[hl] = 0;
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            *frames = realloc(*frames, cap * sizeof **frames);
            cr_assert_not_null(*frames);
        }
        struct s_frame *fr = &(*frames)[(*n)++];
        cr_assert_eq(sscanf(head, "frame peer=%63s branch=%63s type=%d round=%u bytes=%zu",
                            fr->peer, fr->branch, &fr->type, &fr->round, &fr->len),
                     5, "%s", head);
        off += hl + 1;
        cr_assert_leq(fr->len + 1, len - off, "frame %zu is cut short", *n);
        fr->data = *buf + off;
        off += fr->len;
        cr_assert_eq((*buf)[off], '\n');
        off++;
    }
}

/* What branch `name` masked in round r (client/fl_branch_secagg.c, s_test_record). */
struct s_input {
    size_t n;        /* values */
    uint32_t weight; /* its weight (also enc[n]) */
    uint64_t *enc;   /* the n + 1 encoded words (malloc'd) */
    float *x;        /* the n values (malloc'd) */
};

static void s_input(struct fl_test_fed *f, const char *id, uint32_t r, struct s_input *in)
{
    char path[1024], want[128];
    snprintf(path, sizeof path, "%s/rec/input-%s-%u", f->dir, id, r);
    size_t len;
    uint8_t *buf = s_read(path, &len);
    const uint8_t *nl = memchr(buf, '\n', len);
    cr_assert_not_null(nl, "%s", path);
    unsigned round = 0;
    unsigned long long samples = 0;
    cr_assert_eq(sscanf((const char *)buf,
                        "input branch=%127s round=%u values=%zu samples=%llu "
                        "weight=%u",
                        want, &round, &in->n, &samples, &in->weight),
                 5, "%s", path);
    cr_assert_str_eq(want, id);
    cr_assert_eq(round, r);
    size_t off = (size_t)(nl - buf) + 1;
    cr_assert_eq(len - off, (in->n + 1) * 8 + in->n * 4, "%s: %zu bytes", path, len);
    in->enc = malloc((in->n + 1) * 8);
    in->x = malloc(in->n * 4 + 1);
    memcpy(in->enc, buf + off, (in->n + 1) * 8);
    memcpy(in->x, buf + off + (in->n + 1) * 8, in->n * 4);
    cr_assert_eq(in->enc[in->n], in->weight);
    free(buf);
}

/* A global adapter's values, in tensor order, into a malloc'd array of *n. */
static double *s_values(const char *path, size_t *n)
{
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_read(path, &a), 0, "%s", path);
    *n = 0;
    for (size_t t = 0; t < a.ntensors; t++)
        *n += fl_tensor_numel(&a.tensors[t]);
    double *v = malloc(*n * sizeof *v + 1);
    size_t off = 0;
    for (size_t t = 0; t < a.ntensors; t++)
        for (size_t i = 0; i < fl_tensor_numel(&a.tensors[t]); i++)
            v[off++] = a.tensors[t].data[i];
    fl_adapter_close(&a);
    return v;
}

/* ---- the checks ---- */

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t s_le64(const uint8_t *p)
{
    uint64_t w = 0;
    for (int b = 7; b >= 0; b--)
        w = w << 8 | p[b];
    return w;
}

/* Is the 8-byte window w (little-endian) anywhere in the sorted windows? */
static bool s_seen(const uint64_t *win, size_t nwin, uint64_t w)
{
    return bsearch(&w, win, nwin, sizeof w, s_cmp_u64) != NULL;
}

/* Pearson's r of x and y (n values each). */
static double s_pearson(const double *x, const double *y, size_t n)
{
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    for (size_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

/* The masked input's correlation with the input, the n words read two ways: as signed
 * integers (an input sent in the clear, or with a mask that leaves small values small, shows
 * r near 1) and as fractions in [0, 1) (a sign leaking through shows there). */
static void s_corr(const uint64_t *masked, const uint64_t *enc, size_t n, double *r_signed,
                   double *r_unit)
{
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    cr_assert(a && b);
    for (size_t v = 0; v < n; v++) {
        a[v] = (double)(int64_t)masked[v];
        b[v] = (double)(int64_t)enc[v];
    }
    *r_signed = s_pearson(a, b, n);
    for (size_t v = 0; v < n; v++) {
        a[v] = (double)masked[v] * 0x1p-64;
        b[v] = (double)enc[v] * 0x1p-64;
    }
    *r_unit = s_pearson(a, b, n);
    free(a);
    free(b);
}

/* What the checks share: the records, and the worst figures seen. */
struct s_view {
    struct fl_test_fed *f; /* the federation */
    uint8_t *rec;          /* the coordinator's record */
    struct s_frame *fr;    /* its frames */
    size_t nfr;            /* how many */
    uint64_t *win;         /* every 8-byte window of every frame, sorted */
    size_t nwin;           /* how many */
    char ids[S_NB][64];    /* branch i's key id */
    cJSON *ledger;         /* rounds.jsonl */
    double bound;          /* the correlation bound */
    double worst_r;        /* largest |r| of a masked input with its input */
    double worst_gap;      /* largest |committed change - decoded mean of the inputs| */
    double worst_fx;       /* largest |decoded mean - weighted mean of the floats| */
    size_t words, pairs;   /* encoded values and float pairs looked for */
    size_t found;          /* and found */
};

/* The coordinator's record: its frames, what the decoder saw (every frame decodes to the type
 * it is tagged with, none is a plain update: under secure aggregation no branch sends one),
 * their windows, and the branches' key ids (from the frames they sent once their hello proved
 * the key). */
static void s_view_load(struct s_view *v, struct fl_test_fed *f)
{
    memset(v, 0, sizeof *v);
    v->f = f;
    s_frames(f, &v->rec, &v->fr, &v->nfr);
    size_t total = 0;
    for (size_t k = 0; k < v->nfr; k++) {
        const struct s_frame *fr = &v->fr[k];
        Fedtl__Envelope *env = NULL;
        cr_assert_eq(fl_wire_decode(fr->data, fr->len, &env), 0, "frame %zu: %s", k,
                     fl_error_msg());
        cr_assert_eq((int)env->body_case, fr->type, "frame %zu", k);
        cr_assert_neq(fr->type, FEDTL__ENVELOPE__BODY_UPDATE, "frame %zu: a plain update", k);
        fl_wire_free(&env);
        total += fr->len;
        int b = -1;
        if (sscanf(fr->branch, "b%d", &b) == 1 && b >= 0 && b < S_NB)
            snprintf(v->ids[b], sizeof v->ids[b], "%s", fr->peer);
    }
    for (int b = 0; b < S_NB; b++)
        cr_assert(v->ids[b][0], "no frame from b%d", b);
    cr_log_info("the coordinator read %zu frames, %zu bytes", v->nfr, total);
    v->win = malloc((total ? total : 1) * sizeof *v->win);
    cr_assert_not_null(v->win);
    for (size_t k = 0; k < v->nfr; k++)
        for (size_t o = 0; o + 8 <= v->fr[k].len; o++)
            v->win[v->nwin++] = s_le64(v->fr[k].data + o);
    qsort(v->win, v->nwin, sizeof *v->win, s_cmp_u64);
    char path[1024];
    snprintf(path, sizeof path, "%s/state/rounds.jsonl", f->dir);
    v->ledger = fl_test_jsonl(path);
    cr_assert_not_null(v->ledger);
}

static void s_view_free(struct s_view *v)
{
    cJSON_Delete(v->ledger);
    free(v->win);
    free(v->fr);
    free(v->rec);
}

/* (d) Round r's record is complete: from each branch one message of each phase, and these
 * are all the bytes the ledger counted as the round's traffic. Each branch's masked input,
 * decoded, into masked[] (fl_wire_free them). */
static void s_check_complete(struct s_view *v, uint32_t r, const cJSON *line,
                             Fedtl__Envelope *masked[S_NB])
{
    static const int types[] = {FEDTL__ENVELOPE__BODY_SA_KEYS, FEDTL__ENVELOPE__BODY_SA_SHARES,
                                FEDTL__ENVELOPE__BODY_SA_MASKED,
                                FEDTL__ENVELOPE__BODY_SA_CONSISTENCY,
                                FEDTL__ENVELOPE__BODY_SA_REVEAL};
    uint64_t bytes = 0;
    for (int b = 0; b < S_NB; b++) {
        int count[5] = {0};
        masked[b] = NULL;
        for (size_t k = 0; k < v->nfr; k++) {
            const struct s_frame *fr = &v->fr[k];
            if (fr->round != r || strcmp(fr->peer, v->ids[b]) != 0)
                continue;
            for (int p = 0; p < 5; p++) {
                if (fr->type != types[p])
                    continue;
                count[p]++;
                bytes += fr->len;
                if (fr->type == FEDTL__ENVELOPE__BODY_SA_MASKED && !masked[b])
                    cr_assert_eq(fl_wire_decode(fr->data, fr->len, &masked[b]), 0);
            }
        }
        for (int p = 0; p < 5; p++)
            cr_expect_eq(count[p], 1, "round %u: b%d sent %d messages of type %d", r, b, count[p],
                         types[p]);
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(line, "bytes_in");
    cr_assert_not_null(in);
    cr_expect_eq(bytes, (uint64_t)in->valuedouble,
                 "round %u: %llu bytes recorded, the ledger counted %.0f", r,
                 (unsigned long long)bytes, in->valuedouble);
}

/* (a) No encoded value of branch b's input (but values within 2^16 of zero, 2^-8 of a weighted
 * update value: a pattern too common to mean anything) and no two consecutive floats of its
 * update are a window of what the coordinator read. (b) The masked input as received is
 * uncorrelated with the input. */
static void s_check_hidden(struct s_view *v, uint32_t r, int b, const struct s_input *in,
                           const Fedtl__SecAggMasked *m)
{
    int found = 0;
    for (size_t i = 0; i < in->n; i++) {
        int64_t e = (int64_t)in->enc[i];
        if (e > -65536 && e < 65536)
            continue;
        v->words++;
        found += s_seen(v->win, v->nwin, in->enc[i]);
    }
    for (size_t i = 0; i + 1 < in->n; i++) {
        uint8_t two[8];
        if (in->x[i] == 0 && in->x[i + 1] == 0)
            continue;
        memcpy(two, &in->x[i], 4);
        memcpy(two + 4, &in->x[i + 1], 4);
        v->pairs++;
        found += s_seen(v->win, v->nwin, s_le64(two));
    }
    v->found += (size_t)found;
    cr_expect_eq(found, 0, "round %u: %d windows of b%d's input are in the record", r, found, b);
    cr_assert_eq(m->n_words, in->n + 1);
    double rs, ru;
    s_corr(m->words, in->enc, in->n, &rs, &ru);
    cr_expect_lt(fabs(rs), v->bound, "round %u b%d: r = %.4f (signed)", r, b, rs);
    cr_expect_lt(fabs(ru), v->bound, "round %u b%d: r = %.4f (unit)", r, b, ru);
    cr_expect_neq(m->words[in->n], in->enc[in->n], "the weight is masked too");
    v->worst_r = fmax(v->worst_r, fmax(fabs(rs), fabs(ru)));
}

/* (c) The sum of round r's inputs (sum, d + 1 words; wx the weighted sum of their floats) is
 * what the coordinator committed: the global adapter moved from `before` to `after` by their
 * weighted mean, decoded exactly (up to the float the adapter is kept in), which is the
 * weighted mean of the updates within 2^-25 per input. */
static void s_check_sum(struct s_view *v, uint32_t r, const cJSON *line, const uint64_t *sum,
                        const double *wx, const double *before, const double *after, size_t d)
{
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(line, "secure_aggregation");
    const cJSON *tw = sa ? cJSON_GetObjectItemCaseSensitive(sa, "total_weight") : NULL;
    cr_assert_not_null(tw);
    cr_expect_eq(sum[d], (uint64_t)tw->valuedouble, "total weight");
    double w = (double)sum[d];
    for (size_t i = 0; i < d; i++) {
        double mean = (double)(int64_t)sum[i] / (w * 0x1p24), moved = after[i] - before[i];
        double gap = fabs(moved - mean), fx = fabs(mean - wx[i] / w);
        v->worst_gap = fmax(v->worst_gap, gap);
        v->worst_fx = fmax(v->worst_fx, fx);
        cr_expect_leq(gap, (fabs(after[i]) + fabs(mean)) * 0x1p-23 + 1e-12,
                      "round %u value %zu: moved %.9g, the inputs' mean %.9g", r, i, moved, mean);
        cr_expect_leq(fx, S_NB * 0x1p-25 / w + 1e-12, "round %u value %zu", r, i);
    }
}

/* Round r from the records. */
static void s_check_round(struct s_view *v, uint32_t r)
{
    const cJSON *line = NULL;
    cr_assert_eq(fl_test_ledger_lines(v->ledger, (int)r, 1, &line), 1, "round %u aggregated", r);
    Fedtl__Envelope *masked[S_NB];
    s_check_complete(v, r, line, masked);

    /* The global adapters around the round: the one its tasks carried, the next one. */
    char path[1024];
    size_t d = 0, d2 = 0;
    snprintf(path, sizeof path, "%s/rec/task-%s-%u.fta", v->f->dir, v->ids[0], r);
    double *before = s_values(path, &d);
    if (r < S_ROUNDS)
        snprintf(path, sizeof path, "%s/rec/task-%s-%u.fta", v->f->dir, v->ids[0], r + 1);
    else
        snprintf(path, sizeof path, "%s/state/global.fta", v->f->dir);
    double *after = s_values(path, &d2);
    cr_assert_eq(d, d2);
    /* A masked input independent of the input gives r close to N(0, 1/d) for d values:
     * |r| >= 5/sqrt(d) has a chance below 1e-6 per comparison (20 here); an input sent in the
     * clear gives 1. */
    v->bound = 5 / sqrt((double)d);

    uint64_t *sum = calloc(d + 1, sizeof *sum);
    double *wx = calloc(d, sizeof *wx);
    cr_assert(sum && wx);
    for (int b = 0; b < S_NB; b++) {
        struct s_input in;
        s_input(v->f, v->ids[b], r, &in);
        cr_assert_eq(in.n, d);
        cr_assert_not_null(masked[b], "round %u: no masked input from b%d", r, b);
        s_check_hidden(v, r, b, &in, masked[b]->sa_masked);
        for (size_t i = 0; i <= d; i++)
            sum[i] += in.enc[i];
        for (size_t i = 0; i < d; i++)
            wx[i] += (double)in.weight * in.x[i];
        free(in.enc);
        free(in.x);
        fl_wire_free(&masked[b]);
    }
    s_check_sum(v, r, line, sum, wx, before, after, d);
    free(sum);
    free(wx);
    free(before);
    free(after);
}

Test(secagg_view, the_coordinator_sees_no_branch_input_only_their_sum, .timeout = 900)
{
    struct fl_test_fed f;
    s_run(&f);
    struct s_view v;
    s_view_load(&v, &f);
    for (uint32_t r = 1; r <= S_ROUNDS; r++)
        s_check_round(&v, r);
    cr_log_info("%zu encoded values and %zu float pairs looked for, %zu found", v.words, v.pairs,
                v.found);
    cr_log_info("largest |r| of a masked input with its input: %.4f (bound %.4f)", v.worst_r,
                v.bound);
    cr_log_info("committed change vs the inputs' decoded mean: max %.3g; fixed point vs the "
                "updates' weighted mean: max %.3g",
                v.worst_gap, v.worst_fx);
    cr_expect_gt(v.words, (size_t)S_ROUNDS * S_NB * 1000, "enough values to look for");
    s_view_free(&v);
    fl_test_fed_teardown(&f);
}

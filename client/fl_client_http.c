/* fl_client_http: the branch's /metrics, published to a threaded fl_http server. */
#include "fl_client_http.h"
#include "fl_error.h"
#include "fl_http.h"
#include "fl_prom.h"

#include <stdlib.h>

/* Local training of one round: from seconds to an hour. */
static const double s_train_bounds[] = {0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

struct fl_client_http {
    fl_http_t *http;              /* the server (its own thread) */
    bool dirty;                   /* a count changed since the page was published */
    uint64_t rounds_joined;       /* updates sent */
    uint32_t last_round;          /* the last round trained */
    uint64_t accepted, rejected;  /* receipts */
    uint64_t bytes_in, bytes_out; /* messages received, updates sent */
    struct fl_prom_hist train_s;  /* local training time per round */
    bool has_eval;                /* held-out metrics are known */
    double eval_accuracy;         /* the last round's held-out accuracy */
    double eval_loss;             /* and loss */
    double train_loss;            /* and training loss */
};

fl_client_http_t *fl_client_http_new(const char *address)
{
    fl_client_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    fl_prom_hist_init(&self->train_s, s_train_bounds, sizeof s_train_bounds / sizeof(double));
    if (!(self->http = fl_http_new_threaded(address))) {
        free(self);
        return NULL;
    }
    self->dirty = true;
    fl_client_http_publish(self);
    fl_log(FL_LOG_INFO, "http_listening", "address=%s paths=/metrics", fl_http_where(self->http));
    return self;
}

void fl_client_http_destroy(fl_client_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_http_destroy(&(*self_p)->http);
    free(*self_p);
    *self_p = NULL;
}

void fl_client_http_received(fl_client_http_t *self, size_t bytes)
{
    if (!self)
        return;
    self->bytes_in += bytes;
    self->dirty = true;
}

void fl_client_http_round(fl_client_http_t *self, uint32_t round, double seconds, size_t bytes,
                          const struct fl_localtrain_metrics *m)
{
    if (!self)
        return;
    self->rounds_joined++;
    self->last_round = round;
    self->bytes_out += bytes;
    fl_prom_hist_observe(&self->train_s, seconds);
    self->train_loss = m->train_loss;
    if (m->eval_samples > 0) {
        self->has_eval = true;
        self->eval_accuracy = m->eval_accuracy;
        self->eval_loss = m->eval_loss;
    }
    self->dirty = true;
}

void fl_client_http_receipt(fl_client_http_t *self, bool accepted)
{
    if (!self)
        return;
    if (accepted)
        self->accepted++;
    else
        self->rejected++;
    self->dirty = true;
}

static void s_counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    fl_prom_family(f, name, "counter", help);
    fl_prom_count(f, name, "", v);
}

static void s_gauge(FILE *f, const char *name, const char *help, double v)
{
    fl_prom_family(f, name, "gauge", help);
    fl_prom_sample(f, name, "", v);
}

static void s_render(const fl_client_http_t *self, FILE *f)
{
    s_counter(f, "fedtl_branch_rounds_joined_total", "rounds this branch trained for and sent",
              self->rounds_joined);
    s_gauge(f, "fedtl_branch_last_round", "the last round trained (0: none yet)", self->last_round);
    s_counter(f, "fedtl_branch_updates_accepted_total", "receipts saying the update was accepted",
              self->accepted);
    s_counter(f, "fedtl_branch_updates_rejected_total", "receipts saying the update was rejected",
              self->rejected);
    fl_prom_hist_write(f, "fedtl_branch_training_duration_seconds",
                       "local training of one round, to the sealed update", &self->train_s);
    s_counter(f, "fedtl_branch_received_bytes_total", "bytes of messages from the coordinator",
              self->bytes_in);
    s_counter(f, "fedtl_branch_sent_update_bytes_total", "bytes of sealed updates sent",
              self->bytes_out);
    if (self->rounds_joined)
        s_gauge(f, "fedtl_branch_train_loss", "the last round's training loss", self->train_loss);
    if (self->has_eval) { /* absent until measured: never a made-up 0 */
        s_gauge(f, "fedtl_branch_holdout_accuracy_ratio",
                "the last round's accuracy on this branch's held-out records", self->eval_accuracy);
        s_gauge(f, "fedtl_branch_holdout_loss", "and its loss there", self->eval_loss);
    }
}

void fl_client_http_publish(fl_client_http_t *self)
{
    if (!self || !self->dirty)
        return;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    s_render(self, f);
    if (fclose(f) == 0 &&
        fl_http_publish(self->http, "/metrics", FL_PROM_CONTENT_TYPE, text, len) == 0)
        self->dirty = false;
    free(text);
}

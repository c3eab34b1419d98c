/* fl_branch: the branch's protocol state machine. */
#include "fl_branch.h"
#include "fl_basecache.h"
#include "fl_codec.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_keys.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_net.h"
#include "fl_seal.h"
#include "fl_time.h"
#include "fl_train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_POLL_MS           50   /* longest wait in zmq_poll */
#define S_DEFAULT_HEARTBEAT 1000 /* until a Welcome says otherwise */
#define S_SILENCE_BEATS     5    /* re-register after this many silent heartbeat intervals */
#define S_NO_DETAIL_MAX     3    /* handshake failures without detail before giving up */
#define S_DONE              1    /* a handler's "the run is over" */

enum s_state {
    S_HELLO,    /* waiting for a Welcome (not registered, or asked to be marked ready) */
    S_DOWNLOAD, /* registered, fetching the base */
    S_READY     /* registered with the base: heartbeats, tasks */
};

struct fl_branch {
    struct fl_branch_config cfg;     /* as given (strings borrowed) */
    struct fl_identity *id;          /* our key pair (sodium_malloc'd) */
    struct fl_pubkey coord;          /* the coordinator's public key */
    char out_path[PATH_MAX];         /* where the final adapter goes */
    char endpoint_id[FL_KEY_ID_LEN]; /* short id of our key, for logs */
    uint64_t split_seed;             /* train/holdout split seed (from our key) */
    struct fl_dataset data;          /* local records before class selection (freed after) */
    struct fl_dataset train, test;   /* the split, once the classes are known */
    bool prepared;                   /* train/test hold the classes below */
    int nclasses;                    /* classes selected */
    int32_t classes[FL_MAX_CLASSES]; /* their original labels */
    /* the session */
    void *ctx, *sock, *mon;            /* ZeroMQ context, DEALER, monitor PAIR */
    fl_basecache_t *cache;             /* the base cache */
    enum s_state state;                /* where the protocol is */
    bool welcomed;                     /* offer and federation are known */
    char federation[FL_NODE_NAME_MAX]; /* from Welcome */
    struct fl_base_offer offer;        /* the base the coordinator offers */
    uint32_t round;                    /* latest round seen */
    int heartbeat_ms;                  /* in use */
    bool have_base;                    /* base is open and verified against offer */
    struct fl_base_file base;          /* the base, mapped */
    char base_path[PATH_MAX];          /* its file */
    bool hello_had_base;               /* the last Hello said we hold the base */
    uint64_t last_heard;               /* ms: last message from the coordinator */
    uint64_t last_hello, last_beat;    /* ms: last Hello / Heartbeat sent */
    uint64_t lost_since;               /* ms: entered S_HELLO */
    int no_detail;                     /* handshake failures without detail in a row */
    uint64_t dl_start, dl_from;        /* download start (ms) and its first offset */
    uint64_t progress_at;              /* ms: last progress line */
    bool progress_tty;                 /* draw progress (stderr is a terminal) */
};

static void s_hex12(const uint8_t hash[FL_HASH_BYTES], char out[FL_KEY_ID_LEN])
{
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(hash, hex);
    memcpy(out, hex, 12);
    out[12] = '\0';
}

/* ---- set-up ---- */

fl_branch_t *fl_branch_new(const struct fl_branch_config *cfg)
{
    if (!cfg->coordinator || !cfg->coordinator_key || !cfg->key || !cfg->data || !cfg->cache_dir) {
        fl_error_set("coordinator, coordinator key, key, data and cache dir are required");
        return NULL;
    }
    if (!(cfg->holdout >= 0.0 && cfg->holdout < 1.0)) {
        fl_error_set("holdout %g is not in [0, 1)", cfg->holdout);
        return NULL;
    }
    fl_branch_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    if (cfg->out)
        snprintf(self->out_path, sizeof self->out_path, "%s", cfg->out);
    else
        snprintf(self->out_path, sizeof self->out_path, "%s/final.fta", cfg->cache_dir);
    if (!(self->id = fl_identity_load(cfg->key)))
        goto out_fail;
    if (fl_pubkey_load(cfg->coordinator_key, &self->coord) != 0)
        goto out_fail;
    if (fl_dataset_load(&self->data, cfg->data, cfg->labels) != 0)
        goto out_fail;
    if (self->data.n == 0) {
        fl_error_set("%s: no records", cfg->data);
        goto out_fail;
    }
    fl_key_id(self->id->sign_pk, self->endpoint_id);
    for (int i = 0; i < 8; i++)
        self->split_seed |= (uint64_t)self->id->sign_pk[i] << (8 * i);
    self->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : S_DEFAULT_HEARTBEAT;
    self->progress_tty = cfg->progress && isatty(STDERR_FILENO);
    return self;
out_fail:
    fl_branch_destroy(&self);
    return NULL;
}

static void s_disconnect(fl_branch_t *self)
{
    if (self->mon)
        zmq_close(self->mon);
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    self->mon = self->sock = self->ctx = NULL;
}

void fl_branch_destroy(fl_branch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_branch_t *self = *self_p;
    s_disconnect(self);
    fl_basecache_destroy(&self->cache);
    fl_base_close(&self->base);
    fl_dataset_free(&self->data);
    fl_dataset_free(&self->train);
    fl_dataset_free(&self->test);
    fl_identity_destroy(&self->id);
    free(self);
    *self_p = NULL;
}

void fl_branch_print(const fl_branch_t *self, FILE *out)
{
    const struct fl_branch_config *c = &self->cfg;
    char cid[FL_KEY_ID_LEN];
    fl_key_id(self->coord.sign_pk, cid);
    fprintf(out, "fedtl-client configuration OK\n");
    fprintf(out, "  branch           %s (key %s, %s)\n", self->id->name, self->endpoint_id, c->key);
    fprintf(out, "  coordinator      %s (key %s %s, %s)\n", c->coordinator, cid, self->coord.name,
            c->coordinator_key);
    fprintf(out, "  transport        %s\n",
            c->insecure ? "plaintext (--insecure)" : "CURVE, coordinator key pinned");
    fprintf(out, "  data             %s%s%s: %zu records, %zu features, %d classes\n", c->data,
            c->labels ? " + " : "", c->labels ? c->labels : "", self->data.n, self->data.dim,
            (int)self->data.num_classes);
    fprintf(out, "  holdout          %.3g\n", c->holdout);
    fprintf(out, "  cache            %s\n", c->cache_dir);
    fprintf(out, "  final adapter    %s\n", self->out_path);
    if (c->heartbeat_ms > 0)
        fprintf(out, "  heartbeat        %d ms\n", c->heartbeat_ms);
    else
        fprintf(out, "  heartbeat        from the coordinator\n");
    if (c->connect_timeout_s > 0)
        fprintf(out, "  connect timeout  %d s\n", c->connect_timeout_s);
    else
        fprintf(out, "  connect timeout  none\n");
}

/* DEALER to the coordinator and a monitor on it for handshake failures. */
static int s_connect(fl_branch_t *self)
{
    if (!(self->ctx = zmq_ctx_new()))
        return fl_fail(FL_EIO, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
    if (self->cfg.insecure)
        fl_log(FL_LOG_WARN, "insecure",
               "msg=\"CURVE is off: traffic to the coordinator is plaintext\"");
    self->sock = fl_net_dealer(self->ctx, self->id, self->cfg.insecure ? NULL : self->coord.box_pk,
                               self->cfg.coordinator);
    if (!self->sock)
        return FL_EIO;
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://fedtl-client-monitor-%p", (void *)self);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_DISCONNECTED;
    if (zmq_socket_monitor(self->sock, addr, events) != 0 ||
        !(self->mon = zmq_socket(self->ctx, ZMQ_PAIR)) || zmq_connect(self->mon, addr) != 0)
        return fl_fail(FL_EIO, "cannot monitor the socket: %s", zmq_strerror(errno));
    return 0;
}

/* ---- sending ---- */

static int s_send(fl_branch_t *self, Fedtl__Envelope *env, const char *what, size_t *bytes)
{
    int rc = fl_net_send(self->sock, NULL, 0, env, ZMQ_DONTWAIT, bytes);
    if (rc)
        fl_log(FL_LOG_WARN, "send_failed", "msg=%s error=\"%s\"", what,
               rc == FL_EIO ? zmq_strerror(errno) : fl_error_msg());
    return rc;
}

static size_t s_samples(const fl_branch_t *self)
{
    return self->prepared ? self->train.n : self->data.n;
}

static void s_send_hello(fl_branch_t *self, uint64_t now)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Hello h = FEDTL__HELLO__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    h.branch_key.data = self->id->sign_pk;
    h.branch_key.len = FL_SIGN_PK_BYTES;
    char name[FL_NODE_NAME_MAX];
    snprintf(name, sizeof name, "%s", self->id->name);
    h.name = name;
    h.samples = s_samples(self);
    if (self->have_base) {
        h.base_hash.data = self->base.hash;
        h.base_hash.len = FL_HASH_BYTES;
    }
    self->hello_had_base = self->have_base;
    self->last_hello = now;
    if (s_send(self, &env, "hello", NULL) == 0)
        fl_log(FL_LOG_DEBUG, "hello", "ready=%s samples=%llu", self->have_base ? "yes" : "no",
               (unsigned long long)h.samples);
}

/* Wait for a Welcome again (re-register, or ask to be marked ready). */
static void s_rehello(fl_branch_t *self, uint64_t now)
{
    if (self->state != S_HELLO)
        self->lost_since = now;
    self->state = S_HELLO;
    s_send_hello(self, now);
}

static void s_send_bye(fl_branch_t *self, Fedtl__ByeCode code, const char *reason)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Bye b = FEDTL__BYE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_BYE;
    env.bye = &b;
    b.code = code;
    b.reason = (char *)reason;
    s_send(self, &env, "bye", NULL);
}

static void s_send_heartbeat(fl_branch_t *self, uint64_t now)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Heartbeat hb = FEDTL__HEARTBEAT__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    hb.round = self->round;
    self->last_beat = now;
    s_send(self, &env, "heartbeat", NULL);
}

static void s_send_requests(fl_branch_t *self, uint64_t now)
{
    uint64_t offset;
    uint32_t credit;
    while (fl_basecache_next_request(self->cache, now, &offset, &credit)) {
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
        Fedtl__BaseRequest r = FEDTL__BASE_REQUEST__INIT;
        env.body_case = FEDTL__ENVELOPE__BODY_BASE_REQUEST;
        env.base_request = &r;
        r.base_hash.data = self->offer.hash;
        r.base_hash.len = FL_HASH_BYTES;
        r.offset = offset;
        r.credit = credit;
        if (s_send(self, &env, "base_request", NULL) != 0) {
            fl_basecache_restart(self->cache); /* ask again on the next tick */
            return;
        }
    }
}

/* ---- the base ---- */

/* The base is open: it must take our records as input. */
static int s_base_ready(fl_branch_t *self, uint64_t now)
{
    const struct fl_arch *a = &self->base.arch;
    size_t in = (size_t)a->in_h * (size_t)a->in_w * (size_t)a->in_c;
    if (in != self->data.dim)
        return fl_fail(FL_EMISMATCH, "%s has %zu features per record, the base (%s) takes %zu",
                       self->cfg.data, self->data.dim, a->name, in);
    self->have_base = true;
    s_rehello(self, now);
    return 0;
}

static void s_show_progress(fl_branch_t *self, uint64_t now, bool last)
{
    if (!self->progress_tty || (!last && now - self->progress_at < 200))
        return;
    self->progress_at = now;
    uint64_t have, size;
    fl_basecache_progress(self->cache, &have, &size);
    double secs = (double)(now - self->dl_start) / 1000.0;
    double mbs = secs > 0 ? (double)(have - self->dl_from) / 1e6 / secs : 0.0;
    fprintf(stderr, "\rbase download %5.1f%%  %.1f MB/s %s", 100.0 * (double)have / (double)size,
            mbs, last ? "\n" : "");
}

static int s_finish_download(fl_branch_t *self, uint64_t now)
{
    s_show_progress(self, now, true);
    uint64_t have, size;
    fl_basecache_progress(self->cache, &have, &size);
    fl_basecache_path(self->cache, self->offer.hash, ".ftm", self->base_path,
                      sizeof self->base_path);
    int rc = fl_basecache_finish(self->cache, &self->base);
    if (rc) {
        fl_log(FL_LOG_ERROR, "base_rejected", "error=%s msg=\"%s\"", fl_strerror(rc),
               fl_error_msg());
        return rc;
    }
    double secs = (double)(now - self->dl_start) / 1000.0;
    fl_log(FL_LOG_INFO, "base_downloaded", "path=%s bytes=%llu fetched=%llu seconds=%.2f MBps=%.2f",
           self->base_path, (unsigned long long)size, (unsigned long long)(have - self->dl_from),
           secs, secs > 0 ? (double)(have - self->dl_from) / 1e6 / secs : 0.0);
    return s_base_ready(self, now);
}

/* After a Welcome: use the cached base or start fetching it. */
static int s_acquire_base(fl_branch_t *self, uint64_t now)
{
    if (fl_basecache_active(self->cache)) {
        int rc = fl_basecache_begin(self->cache, &self->offer, now); /* same hash: restart */
        if (rc < 0)
            return rc;
        self->state = S_DOWNLOAD;
        return rc == 1 ? s_finish_download(self, now) : 0;
    }
    fl_basecache_path(self->cache, self->offer.hash, ".ftm", self->base_path,
                      sizeof self->base_path);
    int rc = fl_basecache_open(self->cache, &self->offer, &self->base);
    if (rc == 0)
        return s_base_ready(self, now);
    if (rc != FL_ENOTFOUND)
        return rc;
    if ((rc = fl_basecache_begin(self->cache, &self->offer, now)) < 0)
        return rc;
    uint64_t have, size;
    fl_basecache_progress(self->cache, &have, &size);
    self->dl_start = now;
    self->dl_from = have;
    self->state = S_DOWNLOAD;
    char h[FL_KEY_ID_LEN];
    s_hex12(self->offer.hash, h);
    fl_log(FL_LOG_INFO, "base_download", "base=%s size=%llu offset=%llu chunk=%u", h,
           (unsigned long long)size, (unsigned long long)have, self->offer.chunk_size);
    return rc == 1 ? s_finish_download(self, now) : 0;
}

/* ---- handlers: 0 to go on, S_DONE when the run is over, negative for a fatal error ---- */

static int s_on_welcome(fl_branch_t *self, const Fedtl__Welcome *w, uint64_t now)
{
    bool base_changed =
        self->welcomed && memcmp(self->offer.hash, w->base_hash.data, FL_HASH_BYTES) != 0;
    snprintf(self->federation, sizeof self->federation, "%s", w->federation);
    memcpy(self->offer.hash, w->base_hash.data, FL_HASH_BYTES);
    memcpy(self->offer.signature, w->base_signature.data, FL_SIG_BYTES);
    self->offer.size = w->base_size;
    self->offer.chunk_size = w->chunk_size;
    self->round = w->round;
    self->welcomed = true;
    if (self->cfg.heartbeat_ms <= 0 && w->heartbeat_ms > 0)
        self->heartbeat_ms =
            w->heartbeat_ms < 50 ? 50 : (int)(w->heartbeat_ms > 600000 ? 600000 : w->heartbeat_ms);
    fl_basecache_set_stall_ms(
        self->cache, (uint64_t)(2 * self->heartbeat_ms < 1000 ? 1000 : 2 * self->heartbeat_ms));
    char h[FL_KEY_ID_LEN];
    s_hex12(self->offer.hash, h);
    fl_log(FL_LOG_INFO, "welcome", "federation=%s round=%u base=%s heartbeat_ms=%d",
           self->federation, self->round, h, self->heartbeat_ms);
    if (base_changed && self->have_base) {
        fl_log(FL_LOG_WARN, "base_changed", "base=%s", h);
        fl_base_close(&self->base);
        self->have_base = false;
    }
    if (self->have_base) {
        if (self->hello_had_base) {
            if (self->state != S_READY)
                fl_log(FL_LOG_INFO, "ready", "federation=%s round=%u samples=%zu", self->federation,
                       self->round, s_samples(self));
            self->state = S_READY;
            self->last_beat = now;
            return 0;
        }
        s_rehello(self, now);
        return 0;
    }
    self->state = S_DOWNLOAD;
    return s_acquire_base(self, now);
}

static int s_on_chunk(fl_branch_t *self, const Fedtl__BaseChunk *c, uint64_t now)
{
    int rc = fl_basecache_chunk(self->cache, c->base_hash.data, c->base_hash.len, c->offset,
                                c->data.data, c->data.len, now);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return s_finish_download(self, now);
    s_show_progress(self, now, false);
    return 0;
}

static int s_on_bye(fl_branch_t *self, const Fedtl__Bye *b, uint64_t now)
{
    fl_log(FL_LOG_WARN, "coordinator_bye", "code=%s reason=\"%s\"", fl_wire_bye_name(b->code),
           b->reason);
    switch (b->code) {
    case FEDTL__BYE_CODE__BYE_SAY_HELLO:
        /* The coordinator does not know us (it restarted or forgot us). */
        if (self->state != S_HELLO || now - self->last_hello >= (uint64_t)self->heartbeat_ms)
            s_rehello(self, now); /* once per interval: queued heartbeats each draw a Bye */
        return 0;
    case FEDTL__BYE_CODE__BYE_NOT_ENROLLED:
    case FEDTL__BYE_CODE__BYE_REVOKED:
        return fl_fail(FL_ECRYPTO, "the coordinator refused this branch (%s): %s",
                       fl_wire_bye_name(b->code), b->reason);
    case FEDTL__BYE_CODE__BYE_SHUTDOWN:
        /* Keep registering until it is back or the connect timeout passes. */
        if (self->state != S_HELLO)
            self->lost_since = now;
        self->state = S_HELLO;
        self->last_hello = now;
        return 0;
    default: /* a branch's codes, from a coordinator: ignore */
        fl_log(FL_LOG_WARN, "bad_message", "msg=bye error=\"code %s from the coordinator\"",
               fl_wire_bye_name(b->code));
        return 0;
    }
}

static int s_on_final(fl_branch_t *self, const Fedtl__FinalModel *f)
{
    struct fl_adapter_file a;
    int rc = fl_adapter_unpack(f->adapter.data, f->adapter.len, "coordinator final model", &a);
    if (rc) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=final error=\"%s\"", fl_error_msg());
        return 0;
    }
    if (!self->welcomed) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=final error=\"before any welcome\"");
        goto out_close;
    }
    if ((rc = fl_adapter_check_base(&a, "coordinator final model", self->offer.hash,
                                    "the federation's base")) != 0) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=final error=\"%s\"", fl_error_msg());
        rc = 0;
        goto out_close;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self->out_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        fl_fs_mkdirs(dir, 0755);
    }
    if ((rc = fl_fs_write_file(self->out_path, f->adapter.data, f->adapter.len, 0644)) != 0)
        goto out_close;
    char h[FL_KEY_ID_LEN];
    s_hex12(a.hash, h);
    fl_log(FL_LOG_INFO, "final", "round=%u path=%s adapter=%s bytes=%zu", f->round, self->out_path,
           h, f->adapter.len);
    s_send_bye(self, FEDTL__BYE_CODE__BYE_DONE, "branch done");
    rc = S_DONE;
out_close:
    fl_adapter_close(&a);
    return rc;
}

/* ---- a round ---- */

/* Keep the records of the adapter's classes and split them (once per class list). */
static int s_prepare_data(fl_branch_t *self, const struct fl_adapter_meta *am)
{
    if (self->prepared && self->nclasses == am->num_classes &&
        memcmp(self->classes, am->class_ids, sizeof(int32_t) * (size_t)am->num_classes) == 0)
        return 0;
    int rc;
    if (self->prepared) { /* another class list: start again from the file */
        fl_dataset_free(&self->train);
        fl_dataset_free(&self->test);
        self->prepared = false;
        if ((rc = fl_dataset_load(&self->data, self->cfg.data, self->cfg.labels)) != 0)
            return rc;
    }
    size_t total = self->data.n;
    if ((rc = fl_dataset_select_classes(&self->data, am->class_ids, am->num_classes)) != 0)
        return rc;
    fl_log(FL_LOG_INFO, "data_selected", "classes=%d records=%zu of=%zu", am->num_classes,
           self->data.n, total);
    if (self->data.n == 0)
        return fl_fail(FL_EMISMATCH, "%s: no records of the federation's classes", self->cfg.data);
    if ((rc = fl_dataset_split(&self->data, self->cfg.holdout, self->split_seed, &self->train,
                               &self->test)) != 0)
        return rc;
    if (self->train.n == 0) {
        fl_dataset_free(&self->test);
        return fl_fail(FL_EMISMATCH, "%s: no training records left after the holdout",
                       self->cfg.data);
    }
    fl_dataset_free(&self->data);
    self->data.dim = self->train.dim; /* kept for the summary and the base check */
    self->data.n = self->train.n + self->test.n;
    self->nclasses = am->num_classes;
    memcpy(self->classes, am->class_ids, sizeof(int32_t) * (size_t)am->num_classes);
    self->prepared = true;
    return 0;
}

static bool s_params_ok(const Fedtl__TrainParams *p)
{
    return p->epochs >= 1 && p->epochs <= 10000 && p->batch >= 1 && p->batch <= (1u << 20) &&
           isfinite(p->lr) && p->lr > 0.0f && p->lr < 100.0f;
}

/* The trained adapter, encoded as an UpdateBody, in malloc'd *body (caller wipes). */
static int s_encode_body(const fl_branch_t *self, fl_model_t *m, uint32_t round,
                         const struct fl_epoch_stats *st, const struct fl_eval *ev, size_t train_n,
                         uint8_t **body, size_t *body_len)
{
    size_t n = fl_model_ntensors(m, FL_SET_ADAPTER);
    struct fl_tensor *ts = calloc(n ? n : 1, sizeof *ts);
    if (!ts)
        return fl_fail(FL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ts[i] = *fl_model_tensor(m, FL_SET_ADAPTER, i);
    struct fl_adapter_meta meta = *fl_model_adapter_meta(m);
    meta.round = round;
    uint8_t *adapter = NULL;
    size_t adapter_len = 0;
    int rc = fl_adapter_pack(&meta, ts, n, &adapter, &adapter_len);
    free(ts);
    if (rc)
        return rc;
    if (self->cfg.keep_updates) {
        char path[4096];
        snprintf(path, sizeof path, "%s/round-%u.fta", self->cfg.keep_updates, round);
        if (fl_fs_mkdirs(self->cfg.keep_updates, 0700) != 0 ||
            fl_fs_write_file(path, adapter, adapter_len, 0600) != 0)
            fl_log(FL_LOG_WARN, "keep_update_failed", "path=%s reason=\"%s\"", path,
                   fl_error_msg());
    }
    Fedtl__UpdateBody b = FEDTL__UPDATE_BODY__INIT;
    b.adapter.data = adapter;
    b.adapter.len = adapter_len;
    b.samples = train_n;
    b.train_loss = (float)st->loss;
    b.eval_loss = (float)ev->loss;
    b.eval_accuracy = (float)ev->accuracy;
    b.eval_samples = ev->n;
    rc = fl_wire_encode_body(&b, body, body_len);
    sodium_memzero(adapter, adapter_len);
    free(adapter);
    return rc;
}

static int s_send_update(fl_branch_t *self, uint32_t round, const uint8_t *body, size_t len,
                         size_t *bytes)
{
    struct fl_sealed sealed;
    int rc = fl_seal_update(self->id, self->coord.box_pk, self->federation, round, self->base.hash,
                            body, len, &sealed);
    if (rc)
        return rc;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SealedUpdate u = FEDTL__SEALED_UPDATE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    fl_wire_sealed_put(&sealed, &u);
    rc = s_send(self, &env, "update", bytes);
    fl_sealed_free(&sealed);
    return rc;
}

/* Train the task's adapter and send the sealed update. Errors here skip the round. */
static int s_run_task(fl_branch_t *self, const Fedtl__RoundTask *t, struct fl_adapter_file *a,
                      const char *origin)
{
    uint64_t t0 = (uint64_t)fl_now_ms();
    int rc = s_prepare_data(self, &a->meta);
    if (rc)
        return rc;
    fl_model_t *m = fl_model_from_base(&self->base, self->base_path, &a->meta, self->cfg.pool);
    if (!m)
        return FL_EINVAL;
    if ((rc = fl_model_set_adapter(m, a, origin)) != 0)
        goto out_destroy;
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = (int)t->params->epochs;
    o.batch = (int)t->params->batch;
    o.lr = t->params->lr;
    o.seed = t->params->seed;
    o.progress = self->progress_tty;
    char label[32];
    snprintf(label, sizeof label, "round %u", t->round);
    o.label = label;
    struct fl_epoch_stats st = {0};
    struct fl_eval ev = {0};
    if ((rc = fl_train(m, &self->train, &o, NULL, NULL, &st)) != 0)
        goto out_destroy;
    if (self->test.n > 0 && (rc = fl_evaluate(m, &self->test, &ev)) != 0)
        goto out_destroy;
    uint8_t *body = NULL;
    size_t body_len = 0, bytes = 0;
    if ((rc = s_encode_body(self, m, t->round, &st, &ev, self->train.n, &body, &body_len)) != 0)
        goto out_destroy;
    rc = s_send_update(self, t->round, body, body_len, &bytes);
    sodium_memzero(body, body_len);
    free(body);
    if (rc == 0)
        fl_log(FL_LOG_INFO, "round",
               "round=%u samples=%zu train_loss=%.4f eval_loss=%.4f "
               "eval_accuracy=%.4f eval_samples=%zu seconds=%.2f bytes=%zu",
               t->round, self->train.n, st.loss, ev.loss, ev.accuracy, ev.n,
               (double)((uint64_t)fl_now_ms() - t0) / 1000.0, bytes);
out_destroy:
    fl_model_destroy(&m);
    return rc;
}

static int s_on_task(fl_branch_t *self, const Fedtl__RoundTask *t)
{
    char origin[64];
    snprintf(origin, sizeof origin, "coordinator round %u", t->round);
    if (!self->have_base) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=task round=%u error=\"no base yet\"", t->round);
        return 0;
    }
    if (!s_params_ok(t->params)) {
        fl_log(FL_LOG_WARN, "bad_message",
               "msg=task round=%u error=\"bad training parameters "
               "(epochs %u, batch %u, lr %g)\"",
               t->round, t->params->epochs, t->params->batch, (double)t->params->lr);
        return 0;
    }
    struct fl_adapter_file a;
    if (fl_adapter_unpack(t->adapter.data, t->adapter.len, origin, &a) != 0) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=task round=%u error=\"%s\"", t->round,
               fl_error_msg());
        return 0;
    }
    int rc = fl_adapter_check_base(&a, origin, self->base.hash, self->base_path);
    if (rc == 0) {
        self->round = t->round;
        fl_log(FL_LOG_INFO, "task", "round=%u epochs=%u batch=%u lr=%g deadline_ms=%llu", t->round,
               t->params->epochs, t->params->batch, (double)t->params->lr,
               (unsigned long long)t->deadline_ms);
        rc = s_run_task(self, t, &a, origin);
    }
    if (rc)
        fl_log(FL_LOG_WARN, "task_failed", "round=%u error=%s msg=\"%s\"", t->round,
               fl_strerror(rc), fl_error_msg());
    fl_adapter_close(&a);
    /* Training blocked the loop: what the coordinator sent meanwhile is still queued. */
    self->last_heard = self->last_beat = (uint64_t)fl_now_ms();
    return 0;
}

/* ---- the loop ---- */

static int s_dispatch(fl_branch_t *self, Fedtl__Envelope *env, uint64_t now)
{
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_WELCOME:
        return s_on_welcome(self, env->welcome, now);
    case FEDTL__ENVELOPE__BODY_HEARTBEAT:
        return 0;
    case FEDTL__ENVELOPE__BODY_BASE_CHUNK:
        return s_on_chunk(self, env->base_chunk, now);
    case FEDTL__ENVELOPE__BODY_TASK:
        return s_on_task(self, env->task);
    case FEDTL__ENVELOPE__BODY_RECEIPT:
        if (env->receipt->accepted)
            fl_log(FL_LOG_INFO, "receipt", "round=%u accepted=yes", env->receipt->round);
        else
            fl_log(FL_LOG_WARN, "receipt", "round=%u accepted=no reason=\"%s\"",
                   env->receipt->round, env->receipt->reason);
        return 0;
    case FEDTL__ENVELOPE__BODY_FINAL:
        return s_on_final(self, env->final);
    case FEDTL__ENVELOPE__BODY_BYE:
        return s_on_bye(self, env->bye, now);
    default:
        fl_log(FL_LOG_WARN, "bad_message", "msg=%d error=\"not one a coordinator sends\"",
               (int)env->body_case);
        return 0;
    }
}

/* Everything waiting on the socket. */
static int s_on_socket(fl_branch_t *self)
{
    for (;;) {
        Fedtl__Envelope *env = NULL;
        size_t bytes = 0;
        int rc = fl_net_recv(self->sock, false, NULL, NULL, &env, &bytes);
        if (rc == 1)
            return 0;
        uint64_t now = (uint64_t)fl_now_ms();
        if (rc == FL_EIO) {
            fl_log(FL_LOG_WARN, "recv_failed", "error=\"%s\"", zmq_strerror(errno));
            return 0;
        }
        self->last_heard = now;
        if (rc < 0) {
            fl_log(FL_LOG_WARN, "bad_message", "bytes=%zu error=\"%s\"", bytes, fl_error_msg());
            continue;
        }
        rc = s_dispatch(self, env, now);
        fl_wire_free(&env);
        if (rc != 0)
            return rc;
    }
}

/* A monitor event: handshake failures are fatal (not enrolled, wrong key). */
static int s_on_monitor(fl_branch_t *self)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, self->mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&m) >= 6) {
        memcpy(&event, zmq_msg_data(&m), 2);
        memcpy(&value, (uint8_t *)zmq_msg_data(&m) + 2, 4);
    }
    bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    if (more) { /* the endpoint frame */
        zmq_msg_init(&m);
        zmq_msg_recv(&m, self->mon, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
    }
    const char *ep = self->cfg.coordinator;
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        self->no_detail = 0;
        fl_log(FL_LOG_DEBUG, "connected", "endpoint=%s", ep);
        return 0;
    case ZMQ_EVENT_DISCONNECTED:
        fl_log(FL_LOG_INFO, "disconnected", "endpoint=%s", ep);
        return 0;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        if (value == 300) {
            fl_log(FL_LOG_WARN, "handshake_retry", "endpoint=%s zap_status=300", ep);
            return 0;
        }
        return fl_fail(FL_ECRYPTO,
                       "the coordinator at %s refused our key %s (ZAP status %u): this branch is "
                       "not enrolled (its .pub is not in the allow-list) or was revoked",
                       ep, self->endpoint_id, value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return fl_fail(FL_ECRYPTO, "handshake with %s failed (ZMTP protocol error 0x%x): %s", ep,
                       value,
                       self->cfg.insecure ? "is the coordinator also --insecure?"
                                          : "wrong --coordinator-key, or the coordinator runs "
                                            "--insecure");
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        fl_log(FL_LOG_WARN, "handshake_failed", "endpoint=%s errno=%u", ep, value);
        if (++self->no_detail >= S_NO_DETAIL_MAX)
            return fl_fail(FL_ECRYPTO,
                           "handshake with %s failed %d times in a row: wrong "
                           "--coordinator-key%s?",
                           ep, self->no_detail,
                           self->cfg.insecure ? " or only one side --insecure" : "");
        return 0;
    default:
        return 0;
    }
}

/* Heartbeats, re-registration, the connect timeout and download credit. */
static int s_on_tick(fl_branch_t *self, uint64_t now)
{
    uint64_t hb = (uint64_t)self->heartbeat_ms;
    if (self->state == S_HELLO) {
        uint64_t limit = (uint64_t)self->cfg.connect_timeout_s * 1000u;
        if (limit > 0 && now - self->lost_since > limit)
            return fl_fail(FL_EIO,
                           "no answer from %s: wrong --coordinator-key, not enrolled, or "
                           "coordinator down",
                           self->cfg.coordinator);
        if (now - self->last_hello >= S_SILENCE_BEATS * hb)
            s_send_hello(self, now);
    } else if (now - self->last_heard > S_SILENCE_BEATS * hb) {
        fl_log(FL_LOG_WARN, "coordinator_silent", "ms=%llu msg=\"registering again\"",
               (unsigned long long)(now - self->last_heard));
        s_rehello(self, now);
    } else if (now - self->last_beat >= hb) {
        s_send_heartbeat(self, now);
    }
    if (fl_basecache_active(self->cache) && self->state != S_HELLO)
        s_send_requests(self, now);
    return 0;
}

int fl_branch_run(fl_branch_t *self, volatile sig_atomic_t *stop)
{
    int rc = 0;
    if (!self->cache && !(self->cache = fl_basecache_new(self->cfg.cache_dir, self->coord.sign_pk)))
        return FL_EIO;
    if ((rc = s_connect(self)) != 0)
        goto out_disconnect;
    uint64_t now = (uint64_t)fl_now_ms();
    fl_log(FL_LOG_INFO, "start", "branch=%s key=%s coordinator=%s samples=%zu", self->id->name,
           self->endpoint_id, self->cfg.coordinator, s_samples(self));
    self->state = S_HELLO;
    self->lost_since = self->last_heard = now;
    s_send_hello(self, now);
    while (rc == 0 && !(stop && *stop)) {
        zmq_pollitem_t items[2] = {{self->sock, 0, ZMQ_POLLIN, 0}, {self->mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, S_POLL_MS) < 0) {
            if (errno == EINTR)
                continue;
            rc = fl_fail(FL_EIO, "poll failed: %s", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            rc = s_on_monitor(self);
        if (rc == 0 && (items[0].revents & ZMQ_POLLIN))
            rc = s_on_socket(self);
        if (rc == 0)
            rc = s_on_tick(self, (uint64_t)fl_now_ms());
    }
    if (rc == 0) { /* stopped */
        fl_log(FL_LOG_INFO, "stop", "msg=\"branch stopping\"");
        s_send_bye(self, FEDTL__BYE_CODE__BYE_STOPPING, "branch stopping");
    }
    if (rc == S_DONE)
        rc = 0;
    if (rc == 0) { /* let the Bye leave */
        int linger = 500;
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
out_disconnect:
    s_disconnect(self);
    fl_basecache_destroy(&self->cache);
    return rc;
}

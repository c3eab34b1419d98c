/* fl_branch: the branch's protocol state machine. */
#include "fl_branch.h"
#include "fl_basecache.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_keys.h"
#include "fl_localtrain.h"
#include "fl_modelfile.h"
#include "fl_seal.h"
#include "fl_time.h"
#include "fl_uplink.h"

#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_POLL_MS           50   /* longest wait for a message */
#define S_DEFAULT_HEARTBEAT 1000 /* until a Welcome says otherwise */
#define S_SILENCE_BEATS     5    /* re-register after this many silent heartbeat intervals */
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
    fl_localtrain_t *local;          /* the local records and the training step */
    /* the session */
    fl_uplink_t *up;                   /* the connection to the coordinator */
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
    fl_key_id(self->id->sign_pk, self->endpoint_id);
    self->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : S_DEFAULT_HEARTBEAT;
    self->progress_tty = cfg->progress && isatty(STDERR_FILENO);
    struct fl_localtrain_config lc = {.data = cfg->data,
                                      .labels = cfg->labels,
                                      .holdout = cfg->holdout,
                                      .keep_dir = cfg->keep_updates,
                                      .progress = self->progress_tty};
    for (int i = 0; i < 8; i++) /* the split is the branch's own: seeded from its key */
        lc.split_seed |= (uint64_t)self->id->sign_pk[i] << (8 * i);
    if (!(self->local = fl_localtrain_new(&lc)))
        goto out_fail;
    return self;
out_fail:
    fl_branch_destroy(&self);
    return NULL;
}

void fl_branch_destroy(fl_branch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_branch_t *self = *self_p;
    fl_uplink_destroy(&self->up);
    fl_basecache_destroy(&self->cache);
    fl_base_close(&self->base);
    fl_localtrain_destroy(&self->local);
    fl_identity_destroy(&self->id);
    free(self);
    *self_p = NULL;
}

void fl_branch_print(const fl_branch_t *self, FILE *out)
{
    const struct fl_branch_config *c = &self->cfg;
    char cid[FL_KEY_ID_LEN];
    fl_key_id(self->coord.sign_pk, cid);
    struct fl_localtrain_info li;
    fl_localtrain_info(self->local, &li);
    fprintf(out, "fedtl-client configuration OK\n");
    fprintf(out, "  branch           %s (key %s, %s)\n", self->id->name, self->endpoint_id, c->key);
    fprintf(out, "  coordinator      %s (key %s %s, %s)\n", c->coordinator, cid, self->coord.name,
            c->coordinator_key);
    fprintf(out, "  transport        %s\n",
            c->insecure ? "plaintext (--insecure)" : "CURVE, coordinator key pinned");
    fprintf(out, "  data             %s%s%s: %zu records, %zu features, %d classes\n", c->data,
            c->labels ? " + " : "", c->labels ? c->labels : "", li.records, li.dim, li.classes);
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

/* ---- sending ---- */

static size_t s_samples(const fl_branch_t *self)
{
    struct fl_localtrain_info li;
    fl_localtrain_info(self->local, &li);
    return li.samples;
}

static void s_send_hello(fl_branch_t *self, uint64_t now)
{
    self->hello_had_base = self->have_base;
    self->last_hello = now;
    fl_uplink_hello(self->up, s_samples(self), self->have_base ? self->base.hash : NULL);
}

/* Wait for a Welcome again (re-register, or ask to be marked ready). */
static void s_rehello(fl_branch_t *self, uint64_t now)
{
    if (self->state != S_HELLO)
        self->lost_since = now;
    self->state = S_HELLO;
    s_send_hello(self, now);
}

static void s_send_heartbeat(fl_branch_t *self, uint64_t now)
{
    self->last_beat = now;
    fl_uplink_heartbeat(self->up, self->round);
}

static void s_send_requests(fl_branch_t *self, uint64_t now)
{
    uint64_t offset;
    uint32_t credit;
    while (fl_basecache_next_request(self->cache, now, &offset, &credit)) {
        if (fl_uplink_base_request(self->up, self->offer.hash, offset, credit) != 0) {
            fl_basecache_restart(self->cache); /* ask again on the next tick */
            return;
        }
    }
}

/* ---- the base ---- */

/* The base is open: it must take our records as input. */
static int s_base_ready(fl_branch_t *self, uint64_t now)
{
    int rc = fl_localtrain_check_base(self->local, &self->base);
    if (rc)
        return rc;
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
    fl_uplink_bye(self->up, FEDTL__BYE_CODE__BYE_DONE, "branch done");
    rc = S_DONE;
out_close:
    fl_adapter_close(&a);
    return rc;
}

/* ---- a round ---- */

static int s_send_update(fl_branch_t *self, uint32_t round, const uint8_t *body, size_t len,
                         size_t *bytes)
{
    struct fl_sealed sealed;
    int rc = fl_seal_update(self->id, self->coord.box_pk, self->federation, round, self->base.hash,
                            body, len, &sealed);
    if (rc)
        return rc;
    rc = fl_uplink_update(self->up, &sealed, bytes);
    fl_sealed_free(&sealed);
    return rc;
}

/* Train the task's adapter and send the sealed update. Errors here skip the round. */
static int s_run_task(fl_branch_t *self, const Fedtl__RoundTask *t)
{
    uint64_t t0 = (uint64_t)fl_now_ms();
    struct fl_localtrain_task task = {.round = t->round,
                                      .adapter = t->adapter.data,
                                      .adapter_len = t->adapter.len,
                                      .epochs = t->params->epochs,
                                      .batch = t->params->batch,
                                      .lr = t->params->lr,
                                      .seed = t->params->seed};
    struct fl_localtrain_metrics m;
    uint8_t *body = NULL;
    size_t body_len = 0, bytes = 0;
    int rc =
        fl_localtrain_run(self->local, &self->base, self->base_path, &task, &body, &body_len, &m);
    if (rc)
        return rc;
    rc = s_send_update(self, t->round, body, body_len, &bytes);
    sodium_memzero(body, body_len);
    free(body);
    if (rc == 0)
        fl_log(FL_LOG_INFO, "round",
               "round=%u samples=%zu train_loss=%.4f eval_loss=%.4f "
               "eval_accuracy=%.4f eval_samples=%zu seconds=%.2f bytes=%zu",
               t->round, m.samples, m.train_loss, m.eval_loss, m.eval_accuracy, m.eval_samples,
               (double)((uint64_t)fl_now_ms() - t0) / 1000.0, bytes);
    return rc;
}

static int s_on_task(fl_branch_t *self, const Fedtl__RoundTask *t)
{
    if (!self->have_base) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=task round=%u error=\"no base yet\"", t->round);
        return 0;
    }
    self->round = t->round;
    fl_log(FL_LOG_INFO, "task", "round=%u epochs=%u batch=%u lr=%g deadline_ms=%llu", t->round,
           t->params->epochs, t->params->batch, (double)t->params->lr,
           (unsigned long long)t->deadline_ms);
    int rc = s_run_task(self, t);
    if (rc)
        fl_log(FL_LOG_WARN, "task_failed", "round=%u error=%s msg=\"%s\"", t->round,
               fl_strerror(rc), fl_error_msg());
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
        int rc = fl_uplink_recv(self->up, &env, &bytes);
        if (rc == 1 || rc == FL_EIO) /* nothing more, or a socket error (logged) */
            return 0;
        uint64_t now = (uint64_t)fl_now_ms();
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

/* Messages and time until the run ends (S_DONE), *stop is set (0) or a fatal error. */
static int s_loop(fl_branch_t *self, volatile sig_atomic_t *stop)
{
    int rc = 0;
    while (rc == 0 && !(stop && *stop)) {
        bool readable = false;
        rc = fl_uplink_wait(self->up, S_POLL_MS, &readable);
        if (rc == 1) { /* a signal: look at *stop again */
            rc = 0;
            continue;
        }
        if (rc == 0 && readable)
            rc = s_on_socket(self);
        if (rc == 0)
            rc = s_on_tick(self, (uint64_t)fl_now_ms());
    }
    return rc;
}

int fl_branch_run(fl_branch_t *self, volatile sig_atomic_t *stop)
{
    int rc = 0;
    if (!self->cache && !(self->cache = fl_basecache_new(self->cfg.cache_dir, self->coord.sign_pk)))
        return FL_EIO;
    self->up = fl_uplink_new(self->id, self->cfg.insecure ? NULL : self->coord.box_pk,
                             self->cfg.coordinator);
    if (!self->up) {
        rc = FL_EIO;
        goto out_close;
    }
    uint64_t now = (uint64_t)fl_now_ms();
    fl_log(FL_LOG_INFO, "start", "branch=%s key=%s coordinator=%s samples=%zu", self->id->name,
           self->endpoint_id, self->cfg.coordinator, s_samples(self));
    self->state = S_HELLO;
    self->lost_since = self->last_heard = now;
    s_send_hello(self, now);
    rc = s_loop(self, stop);
    if (rc == 0) { /* stopped */
        fl_log(FL_LOG_INFO, "stop", "msg=\"branch stopping\"");
        fl_uplink_bye(self->up, FEDTL__BYE_CODE__BYE_STOPPING, "branch stopping");
    }
    if (rc == S_DONE)
        rc = 0;
    if (rc == 0)
        fl_uplink_linger(self->up, 500); /* let the Bye leave */
out_close:
    fl_uplink_destroy(&self->up);
    fl_basecache_destroy(&self->cache);
    return rc;
}

/* fl_branch: the branch's protocol loop. Its registration rules are fl_presence's, its socket
 * fl_uplink's, the base's download fl_basecache's and its training fl_localtrain's; this file
 * ties them to the messages. */
#include "fl_branch.h"
#include "fl_basecache.h"
#include "fl_branch_secagg.h"
#include "fl_client_http.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_final.h"
#include "fl_fs.h"
#include "fl_keys.h"
#include "fl_localtrain.h"
#include "fl_modelfile.h"
#include "fl_presence.h"
#include "fl_seal.h"
#include "fl_time.h"
#include "fl_uplink.h"

#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_POLL_MS 50 /* longest wait for a message */
#define S_DONE    1  /* a handler's "the run is over" */

struct fl_branch {
    struct fl_branch_config cfg;     /* as given (strings borrowed) */
    struct fl_identity *id;          /* our key pair (sodium_malloc'd) */
    struct fl_pubkey coord;          /* the coordinator's public key */
    char out_path[PATH_MAX];         /* where the final adapter goes */
    char global_path[PATH_MAX];      /* the unpersonalised final adapter, when personalised */
    char head_path[PATH_MAX];        /* the adapter whose head the branch keeps (FedPer) */
    char endpoint_id[FL_KEY_ID_LEN]; /* short id of our key, for logs */
    fl_localtrain_t *local;          /* the local records and the training step */
    fl_presence_t *presence;         /* registration, heartbeats, re-registration */
    /* while running */
    fl_uplink_t *up;                      /* the connection to the coordinator */
    fl_basecache_t *cache;                /* the base cache */
    bool welcomed;                        /* offer and federation are known */
    char federation[FL_NODE_NAME_MAX];    /* from Welcome */
    uint8_t run_id[FL_RUN_ID_BYTES];      /* from Welcome: this run of the federation */
    bool challenged;                      /* this connection's Challenge came */
    uint8_t nonce[FL_HELLO_NONCE_BYTES];  /* its nonce */
    char challenge_fed[FL_NODE_NAME_MAX]; /* the federation it named */
    struct fl_base_offer offer;           /* the base the coordinator offers */
    uint32_t round;                       /* latest round seen */
    struct fl_base_file base;             /* the base, mapped (once fl_presence_has_base) */
    char base_path[PATH_MAX];             /* its file */
    uint64_t dl_start, dl_from;           /* download start (ms) and its first offset */
    uint64_t progress_at;                 /* ms: last progress line */
    bool progress_tty;                    /* draw progress (stderr is a terminal) */
    fl_client_http_t *http;               /* --http /metrics (NULL: off) */
    fl_branch_secagg_t *secagg;           /* tasks with secure aggregation answer through it */
};

static void s_hex12(const uint8_t hash[FL_HASH_BYTES], char out[FL_KEY_ID_LEN])
{
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(hash, hex);
    memcpy(out, hex, 12);
    out[12] = '\0';
}

/* ---- sending ---- */

static size_t s_samples(const fl_branch_t *self)
{
    struct fl_localtrain_info li;
    fl_localtrain_info(self->local, &li);
    return li.samples;
}

/* fl_presence's callbacks. */
static void s_send_hello(void *arg, bool with_base)
{
    fl_branch_t *self = arg;
    uint8_t sig[FL_SIG_BYTES];
    bool sign =
        self->challenged && fl_sign_hello(self->id, self->challenge_fed, self->nonce, sig) == 0;
    fl_uplink_hello(self->up, s_samples(self), with_base ? self->base.hash : NULL,
                    sign ? sig : NULL);
}

static void s_reconnect(void *arg)
{
    fl_branch_t *self = arg;
    self->challenged = false; /* a new connection proves our key again */
    if (fl_uplink_reconnect(self->up) != 0)
        fl_log(FL_LOG_WARN, "reconnect_failed", "error=\"%s\"", fl_error_msg());
}

static void s_send_heartbeat(void *arg)
{
    fl_branch_t *self = arg;
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
    /* final.fta -> final-global.fta: next to the final adapter, named after it */
    size_t stem = strlen(self->out_path);
    if (stem > 4 && strcmp(self->out_path + stem - 4, ".fta") == 0)
        stem -= 4;
    if (snprintf(self->global_path, sizeof self->global_path, "%.*s-global.fta", (int)stem,
                 self->out_path) >= (int)sizeof self->global_path ||
        snprintf(self->head_path, sizeof self->head_path, "%s/personal.fta", cfg->cache_dir) >=
            (int)sizeof self->head_path) {
        fl_error_set("the cache directory or --out path is too long");
        free(self);
        return NULL;
    }
    if (!(self->id = fl_identity_load(cfg->key)))
        goto out_fail;
    if (fl_pubkey_load(cfg->coordinator_key, &self->coord) != 0)
        goto out_fail;
    fl_key_id(self->id->sign_pk, self->endpoint_id);
    self->progress_tty = cfg->progress && isatty(STDERR_FILENO);
    struct fl_localtrain_config lc = {.data = cfg->data,
                                      .labels = cfg->labels,
                                      .table = cfg->table,
                                      .holdout = cfg->holdout,
                                      .augment = {.ops = cfg->augment},
                                      .cache_budget = cfg->cache_budget,
                                      .keep_dir = cfg->keep_updates,
                                      .head_path = self->head_path,
                                      .progress = self->progress_tty,
                                      .pool = cfg->pool};
    for (int i = 0; i < 8; i++) /* the split is the branch's own: seeded from its key */
        lc.split_seed |= (uint64_t)self->id->sign_pk[i] << (8 * i);
#ifdef FEDTL_TESTING
    lc.attack = cfg->attack;
#endif
    if (!(self->local = fl_localtrain_new(&lc)))
        goto out_fail;
    struct fl_presence_config pc = {.peer = cfg->coordinator,
                                    .heartbeat_ms = cfg->heartbeat_ms,
                                    .connect_timeout_s = cfg->connect_timeout_s,
                                    .send_hello = s_send_hello,
                                    .send_heartbeat = s_send_heartbeat,
                                    .reconnect = s_reconnect,
                                    .arg = self};
    if (!(self->presence = fl_presence_new(&pc)))
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
    fl_presence_destroy(&self->presence);
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
    fprintf(out, "  augment          %s%s%s\n", c->augment & FL_AUGMENT_CROP ? "crop " : "",
            c->augment & FL_AUGMENT_FLIP ? "flip" : "", c->augment ? "" : "none");
    fprintf(out, "  cache budget     %zu bytes\n", c->cache_budget);
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

/* ---- the base ---- */

/* The base is open: it must take our records as input. */
static int s_base_ready(fl_branch_t *self, uint64_t now)
{
    int rc = fl_localtrain_check_base(self->local, &self->base);
    if (rc)
        return rc;
    fl_presence_base_ready(self->presence, now);
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
        char msg[512];
        fl_log(FL_LOG_ERROR, "base_rejected", "error=%s msg=%s", fl_strerror(rc),
               fl_log_str(fl_error_msg(), msg, sizeof msg));
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
    bool drop_base = base_changed && fl_presence_has_base(self->presence);
    snprintf(self->federation, sizeof self->federation, "%s", w->federation);
    memcpy(self->run_id, w->run_id.data, FL_RUN_ID_BYTES);
    memcpy(self->offer.hash, w->base_hash.data, FL_HASH_BYTES);
    memcpy(self->offer.signature, w->base_signature.data, FL_SIG_BYTES);
    self->offer.size = w->base_size;
    self->offer.chunk_size = w->chunk_size;
    self->round = w->round;
    self->welcomed = true;
    if (drop_base)
        fl_presence_base_lost(self->presence);
    enum fl_presence_next next = fl_presence_welcome(self->presence, now, w->heartbeat_ms);
    int hb = fl_presence_heartbeat_ms(self->presence);
    fl_basecache_set_stall_ms(self->cache, (uint64_t)(2 * hb < 1000 ? 1000 : 2 * hb));
    char h[FL_KEY_ID_LEN];
    s_hex12(self->offer.hash, h);
    char fed[2 * FL_NODE_NAME_MAX + 8]; /* the coordinator's words: escaped */
    fl_log_str(self->federation, fed, sizeof fed);
    fl_log(FL_LOG_INFO, "welcome", "federation=%s round=%u base=%s heartbeat_ms=%d", fed,
           self->round, h, hb);
    if (drop_base) {
        fl_log(FL_LOG_WARN, "base_changed", "base=%s", h);
        fl_base_close(&self->base);
    }
    if (next == FL_PRESENCE_READY)
        fl_log(FL_LOG_INFO, "ready", "federation=%s round=%u samples=%zu", fed, self->round,
               s_samples(self));
    return next == FL_PRESENCE_FETCH ? s_acquire_base(self, now) : 0;
}

/* The coordinator asks us to prove our key on this connection: a signed Hello answers. */
static int s_on_challenge(fl_branch_t *self, const Fedtl__Challenge *c, uint64_t now)
{
    memcpy(self->nonce, c->nonce.data, FL_HELLO_NONCE_BYTES);
    snprintf(self->challenge_fed, sizeof self->challenge_fed, "%s", c->federation);
    self->challenged = true;
    fl_log(FL_LOG_DEBUG, "challenge", "msg=\"proving our key\"");
    fl_presence_challenge(self->presence, now);
    return 0;
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
    char why[1100]; /* the coordinator's words: escaped */
    fl_log(FL_LOG_WARN, "coordinator_bye", "code=%s reason=%s", fl_wire_bye_name(b->code),
           fl_log_str(b->reason, why, sizeof why));
    return fl_presence_bye(self->presence, b->code, b->reason, now);
}

static void s_on_receipt(const Fedtl__UpdateReceipt *r)
{
    if (r->accepted)
        fl_log(FL_LOG_INFO, "receipt", "round=%u accepted=yes", r->round);
    else {
        char why[1100]; /* the coordinator's words: escaped */
        fl_log(FL_LOG_WARN, "receipt", "round=%u accepted=no reason=%s", r->round,
               fl_log_str(r->reason, why, sizeof why));
    }
}

static int s_on_final(fl_branch_t *self, const Fedtl__FinalModel *f)
{
    struct fl_adapter_file a;
    int rc = fl_adapter_unpack(f->adapter.data, f->adapter.len, "coordinator final model", &a);
    char msg[512];
    if (rc) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=final error=%s",
               fl_log_str(fl_error_msg(), msg, sizeof msg));
        return 0;
    }
    if (!self->welcomed) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=final error=\"before any welcome\"");
        goto out_close;
    }
    if ((rc = fl_adapter_check_base(&a, "coordinator final model", self->offer.hash,
                                    "the federation's base")) != 0) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=final error=%s",
               fl_log_str(fl_error_msg(), msg, sizeof msg));
        rc = 0;
        goto out_close;
    }
    char shown[3 * PATH_MAX];
    int asked = 0;
    const struct fl_final_paths paths = {.out = self->out_path, .global = self->global_path};
    if ((rc = fl_final_save(self->local, fl_presence_has_base(self->presence) ? &self->base : NULL,
                            self->base_path, &paths, f, &asked, shown, sizeof shown)) != 0)
        goto out_close;
    char h[FL_KEY_ID_LEN];
    s_hex12(a.hash, h);
    char op[2 * PATH_MAX];
    fl_log(FL_LOG_INFO, "final", "round=%u path=%s adapter=%s bytes=%zu personalized=%d%s",
           f->round, fl_log_str(self->out_path, op, sizeof op), h, f->adapter.len, asked, shown);
    fl_uplink_bye(self->up, FEDTL__BYE_CODE__BYE_DONE, "branch done");
    rc = S_DONE;
out_close:
    fl_adapter_close(&a);
    return rc;
}

/* ---- a round ---- */

/* Seal body for round (signed by us, to the coordinator, bound to the federation, its run and
 * the base) and send it. */
static int s_send_update(fl_branch_t *self, uint32_t round, const uint8_t *body, size_t len,
                         size_t *bytes)
{
    struct fl_sealed sealed;
    int rc = fl_seal_update(self->id, self->coord.box_pk, self->federation, self->run_id, round,
                            self->base.hash, body, len, &sealed);
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
                                      .seed = t->params->seed,
                                      .prox_mu = t->proximal_mu,
                                      .personal_head = t->personal_head};
    struct fl_localtrain_metrics m;
    uint8_t *body = NULL;
    size_t body_len = 0, bytes = 0;
    int rc =
        fl_localtrain_run(self->local, &self->base, self->base_path, &task, &body, &body_len, &m);
    if (rc)
        return rc;
    rc = t->secure_aggregation ? fl_branch_secagg_answer(self->secagg, self->federation,
                                                         self->run_id, t, body, body_len)
                               : s_send_update(self, t->round, body, body_len, &bytes);
    sodium_memzero(body, body_len);
    free(body);
    double secs = (double)((uint64_t)fl_now_ms() - t0) / 1000.0;
    if (rc == 0)
        fl_client_http_round(self->http, t->round, secs, bytes, &m);
    char personal[96] = "";
    if (rc == 0 && m.personal)
        snprintf(personal, sizeof personal, " personal_accuracy=%.4f personal_loss=%.4f",
                 m.personal_accuracy, m.personal_loss);
    if (rc == 0)
        fl_log(FL_LOG_INFO, "round",
               "round=%u samples=%zu train_loss=%.4f eval_loss=%.4f "
               "eval_accuracy=%.4f eval_samples=%zu%s seconds=%.2f bytes=%zu",
               t->round, m.samples, m.train_loss, m.eval_loss, m.eval_accuracy, m.eval_samples,
               personal, secs, bytes);
    return rc;
}

static int s_on_task(fl_branch_t *self, const Fedtl__RoundTask *t)
{
    if (!fl_presence_has_base(self->presence)) {
        fl_log(FL_LOG_WARN, "bad_message", "msg=task round=%u error=\"no base yet\"", t->round);
        return 0;
    }
    self->round = t->round;
    fl_log(FL_LOG_INFO, "task",
           "round=%u epochs=%u batch=%u lr=%g proximal_mu=%g personal_head=%d deadline_ms=%llu",
           t->round, t->params->epochs, t->params->batch, (double)t->params->lr,
           (double)t->proximal_mu, (int)t->personal_head, (unsigned long long)t->deadline_ms);
    int rc = s_run_task(self, t);
    if (rc) {
        char msg[512];
        fl_log(FL_LOG_WARN, "task_failed", "round=%u error=%s msg=%s", t->round, fl_strerror(rc),
               fl_log_str(fl_error_msg(), msg, sizeof msg));
    }
    /* Training blocked the loop: what the coordinator sent meanwhile is still queued. */
    fl_presence_resume(self->presence, (uint64_t)fl_now_ms());
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
    case FEDTL__ENVELOPE__BODY_CHALLENGE:
        return s_on_challenge(self, env->challenge, now);
    case FEDTL__ENVELOPE__BODY_BASE_CHUNK:
        return s_on_chunk(self, env->base_chunk, now);
    case FEDTL__ENVELOPE__BODY_TASK:
        return s_on_task(self, env->task);
    case FEDTL__ENVELOPE__BODY_RECEIPT:
        fl_client_http_receipt(self->http, env->receipt->accepted);
        s_on_receipt(env->receipt);
        return 0;
    case FEDTL__ENVELOPE__BODY_FINAL:
        return s_on_final(self, env->final);
    case FEDTL__ENVELOPE__BODY_BYE:
        return s_on_bye(self, env->bye, now);
    case FEDTL__ENVELOPE__BODY_SA_SETUP:
    case FEDTL__ENVELOPE__BODY_SA_KEY_SET:
    case FEDTL__ENVELOPE__BODY_SA_SHARE_SET:
    case FEDTL__ENVELOPE__BODY_SA_SURVIVORS:
    case FEDTL__ENVELOPE__BODY_SA_ABORT:
        return fl_branch_secagg_recv(self->secagg, env);
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
        fl_client_http_received(self->http, bytes);
        fl_presence_heard(self->presence, now);
        if (rc < 0) {
            char msg[512];
            fl_log(FL_LOG_WARN, "bad_message", "bytes=%zu error=%s", bytes,
                   fl_log_str(fl_error_msg(), msg, sizeof msg));
            continue;
        }
        rc = s_dispatch(self, env, now);
        fl_wire_free(&env);
        if (rc != 0)
            return rc;
    }
}

/* Time passing: heartbeats, re-registration, the connect timeout and download credit. */
static int s_on_tick(fl_branch_t *self, uint64_t now)
{
    int rc = fl_presence_tick(self->presence, now);
    if (rc == 0 && fl_basecache_active(self->cache) && fl_presence_registered(self->presence))
        s_send_requests(self, now);
    return rc;
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
        fl_client_http_publish(self->http); /* when a count changed (fl_client_http.h) */
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
    if (!self->up || !(self->secagg = fl_branch_secagg_new(self->id, self->up, self->cfg.pool)) ||
        (self->cfg.http && !(self->http = fl_client_http_new(self->cfg.http)))) {
        rc = FL_EIO;
        goto out_close;
    }
    fl_log(FL_LOG_INFO, "start", "branch=%s key=%s coordinator=%s samples=%zu", self->id->name,
           self->endpoint_id, self->cfg.coordinator, s_samples(self));
    fl_presence_start(self->presence, (uint64_t)fl_now_ms());
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
    fl_branch_secagg_destroy(&self->secagg);
    fl_client_http_destroy(&self->http);
    fl_uplink_destroy(&self->up);
    fl_basecache_destroy(&self->cache);
    return rc;
}

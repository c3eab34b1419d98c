/* fl_coord: the coordinator's event loop: sockets, dispatch of messages to the round core
 * (fl_round), the intake (fl_intake) and the base distribution (fl_basedist), the actions the
 * round core asks for (sent through fl_outbox, recorded by fl_ledger), and the life cycle. */
#include "fl_coord_impl.h"

/* ---- messages ---- */

/* A fresh Challenge to the connection: the answer to every Hello that does not prove its key
 * here, whether the key is enrolled or not (the answer reveals nothing about enrolment). */
static void s_challenge(struct fl_coord *c, const uint8_t *route, size_t route_len)
{
    uint8_t nonce[FL_HELLO_NONCE_BYTES];
    randombytes_buf(nonce, sizeof nonce);
    if (fl_session_challenge(c->sessions, route, route_len, nonce, fl_now_ms()) == 0)
        fl_outbox_challenge(c->outbox, route, route_len, nonce);
}

/* A Hello counts once it carries the branch's signature over this connection's Challenge:
 * the connection is then the branch's, and the key must be enrolled (and, under CURVE, be the
 * one whose X25519 form the connection authenticated with). */
static void s_on_hello(struct fl_coord *c, const uint8_t *route, size_t route_len,
                       const char *user_id, const Fedtl__Hello *h)
{
    const uint8_t *nonce = fl_session_nonce(c->sessions, route, route_len);
    if (!nonce || h->signature.len != FL_SIG_BYTES ||
        fl_verify_hello(h->branch_key.data, c->cfg.federation, nonce, h->signature.data) != 0) {
        s_challenge(c, route, route_len);
        return;
    }
    uint8_t key[FL_SIGN_PK_BYTES];
    char id[FL_KEY_ID_LEN], name[FL_NODE_NAME_MAX];
    memcpy(key, h->branch_key.data, sizeof key);
    fl_key_id(key, id);
    if ((!c->cfg.insecure && !fl_zap_key_ok(key, user_id)) ||
        !fl_allowlist_has(c->allow, key, name)) {
        fl_log(FL_LOG_WARN, "hello_refused",
               "peer=%s reason=\"key not enrolled or not the connection's CurveZMQ key\"", id);
        fl_outbox_bye(c->outbox, route, route_len, FEDTL__BYE_CODE__BYE_NOT_ENROLLED,
                      "refused: key not enrolled");
        return;
    }
    if (fl_session_bind(c->sessions, route, route_len, key) != 0)
        return;
    bool has_base = h->base_hash.len == FL_HASH_BYTES &&
                    memcmp(h->base_hash.data, c->base.hash, FL_HASH_BYTES) == 0;
    /* A Hello starts a new session: its download may start afresh. */
    fl_basedist_restart(c->basedist, key);
    fl_round_hello(c->round, key, name, h->samples, has_base, fl_now_ms());
}

static int s_send_chunk(void *arg, const uint8_t key[FL_SIGN_PK_BYTES], uint64_t offset,
                        const uint8_t *data, size_t len)
{
    struct fl_coord *c = arg;
    fl_metrics_base_chunk(c->metrics, len);
    return fl_outbox_chunk(c->outbox, key, offset, data, len);
}

static void s_on_base_request(struct fl_coord *c, const uint8_t *peer, size_t peer_len,
                              const Fedtl__BaseRequest *q)
{
    const struct fl_round_branch *b = fl_round_find(c->round, peer, peer_len);
    if (!b) {
        fl_outbox_bye_branch(c->outbox, peer, FEDTL__BYE_CODE__BYE_SAY_HELLO,
                             "refused: say hello first");
        return;
    }
    fl_metrics_base_request(c->metrics, q->offset);
    if (memcmp(q->base_hash.data, c->base.hash, FL_HASH_BYTES) != 0 ||
        fl_basedist_request(c->basedist, peer, q->offset, q->credit, fl_now_ms(), s_send_chunk,
                            c) != 0)
        fl_log(FL_LOG_WARN, "base_request_bad", "peer=%s offset=%llu", b->id,
               (unsigned long long)q->offset);
}

static void s_on_heartbeat(struct fl_coord *c, const uint8_t *peer, size_t peer_len)
{
    if (fl_round_find(c->round, peer, peer_len))
        fl_outbox_heartbeat(c->outbox, peer, fl_round_completed(c->round));
    else
        fl_outbox_bye_branch(c->outbox, peer, FEDTL__BYE_CODE__BYE_SAY_HELLO,
                             "unknown branch: say hello");
}

/* A Bye from the connection that serves the branch: it ends that connection, and the branch
 * leaves unless it holds a task of the open round. */
static void s_on_bye(struct fl_coord *c, const uint8_t *route, size_t route_len,
                     const uint8_t *peer, size_t peer_len, const Fedtl__Bye *bye)
{
    fl_session_drop(c->sessions, route, route_len);
    const struct fl_round_branch *b = fl_round_find(c->round, peer, peer_len);
    if (!b)
        return;
    char name[2 * FL_NODE_NAME_MAX], reason[1100];
    fl_log(FL_LOG_INFO, "branch_left", "peer=%s branch=%s code=%s reason=%s", b->id,
           fl_log_str(b->name, name, sizeof name), fl_wire_bye_name(bye->code),
           fl_log_str(bye->reason, reason, sizeof reason));
    if (fl_round_bye(c->round, peer))
        fl_basedist_forget(c->basedist, peer);
}

static void s_on_update(struct fl_coord *c, const uint8_t *peer, size_t peer_len,
                        const Fedtl__SealedUpdate *u, size_t frame_bytes)
{
    fl_ledger_traffic(c->ledger, frame_bytes, 0);
    struct fl_ledger_update a = {0};
    double t0 = fl_now_s();
    enum fl_reject why = fl_intake_take(c->intake, c->allow, peer, peer_len, u, &a);
    fl_metrics_intake(c->metrics, t0);
    if (why != FL_REJECT_NONE)
        return; /* logged, recorded and answered through s_on_rejected */
    fl_metrics_accepted(c->metrics, peer, &a);
    char id[FL_KEY_ID_LEN], name[2 * FL_NODE_NAME_MAX];
    fl_key_id(peer, id);
    fl_log_str(a.branch, name, sizeof name);
    if (fl_ledger_accept(c->ledger, &a) != 0)
        fl_log(FL_LOG_ERROR, "ledger_failed", "peer=%s reason=\"out of memory\"", id);
    if (a.weight < a.samples)
        fl_log(FL_LOG_WARN, "update_weight_capped",
               "peer=%s branch=%s round=%u claimed=%llu used=%llu max_samples=%llu "
               "max_samples_ratio=%g",
               id, name, u->round, (unsigned long long)a.samples, (unsigned long long)a.weight,
               (unsigned long long)c->limits.max_samples, c->limits.max_samples_ratio);
    fl_log(FL_LOG_INFO, "update_accepted",
           "peer=%s branch=%s round=%u samples=%llu weight=%llu distance=%.4g train_loss=%.4f "
           "eval_accuracy=%.4f",
           id, name, u->round, (unsigned long long)a.samples, (unsigned long long)a.weight,
           a.distance, a.train_loss, a.eval_accuracy);
    fl_outbox_receipt(c->outbox, peer, u->round, true, "");
}

static void s_on_message(struct fl_coord *c, const uint8_t *route, size_t route_len,
                         const char *user_id, Fedtl__Envelope *env, size_t bytes)
{
    if (env->body_case == FEDTL__ENVELOPE__BODY_HELLO) {
        s_on_hello(c, route, route_len, user_id, env->hello);
        return;
    }
    /* Anything else is from the key this connection proved, or from nobody yet. */
    const uint8_t *proven = fl_session_key(c->sessions, route, route_len);
    if (!proven) {
        if (env->body_case == FEDTL__ENVELOPE__BODY_BYE)
            fl_session_drop(c->sessions, route, route_len);
        else
            fl_outbox_bye(c->outbox, route, route_len, FEDTL__BYE_CODE__BYE_SAY_HELLO,
                          "unknown branch: say hello");
        return;
    }
    uint8_t peer[FL_SIGN_PK_BYTES];
    const size_t peer_len = sizeof peer;
    memcpy(peer, proven, sizeof peer);
    fl_round_heard(c->round, peer, peer_len, fl_now_ms());
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_HEARTBEAT:
        s_on_heartbeat(c, peer, peer_len);
        break;
    case FEDTL__ENVELOPE__BODY_BASE_REQUEST:
        s_on_base_request(c, peer, peer_len, env->base_request);
        break;
    case FEDTL__ENVELOPE__BODY_UPDATE:
        s_on_update(c, peer, peer_len, env->update, bytes);
        break;
    case FEDTL__ENVELOPE__BODY_BYE:
        s_on_bye(c, route, route_len, peer, peer_len, env->bye);
        break;
    case FEDTL__ENVELOPE__BODY_SA_KEYS:
    case FEDTL__ENVELOPE__BODY_SA_SHARES:
    case FEDTL__ENVELOPE__BODY_SA_MASKED:
    case FEDTL__ENVELOPE__BODY_SA_CONSISTENCY:
    case FEDTL__ENVELOPE__BODY_SA_REVEAL:
        fl_ledger_traffic(c->ledger, bytes, 0);
        if (c->secagg)
            fl_coord_secagg_recv(c->secagg, peer, env);
        else
            fl_log(FL_LOG_WARN, "message_rejected", "peer=%s reason=\"secure aggregation is off\"",
                   fl_round_find(c->round, peer, peer_len)
                       ? fl_round_find(c->round, peer, peer_len)->id
                       : "unknown");
        break;
    default: {
        char id[FL_KEY_ID_LEN];
        fl_key_id(peer, id);
        fl_log(FL_LOG_WARN, "message_rejected", "peer=%s reason=\"unexpected message type %d\"", id,
               (int)env->body_case);
    }
    }
}

#ifdef FEDTL_TESTING
/* Test builds only: the frame, as the decoder saw it, into FEDTL_TEST_RECORD_DIR's record
 * (fl_coord_record.h), tagged with the key the connection proved (proven, or NULL) and the
 * message type (env, or NULL when it did not decode). */
static void s_record(struct fl_coord *c, const uint8_t *proven, const char *id,
                     const Fedtl__Envelope *env, const uint8_t *frame, size_t bytes)
{
    const struct fl_round_branch *b =
        proven ? fl_round_find(c->round, proven, FL_SIGN_PK_BYTES) : NULL;
    if (frame)
        fl_coord_record_frame(c->record, id, b ? b->name : "?", env ? (int)env->body_case : -1,
                              fl_round_info(c->round)->round, frame, bytes);
}
#define S_FRAME(c, frame) ((c)->record ? (frame) : NULL)
#else
#define S_FRAME(c, frame) NULL
#endif

static void s_read_router(struct fl_coord *c)
{
    for (int i = 0; i < 256; i++) {
        uint8_t peer[FL_NET_PEER_MAX], *frame = NULL;
        size_t peer_len = 0, bytes = 0;
        Fedtl__Envelope *env = NULL;
        char user_id[FL_ZAP_USER_ID_LEN], id[FL_KEY_ID_LEN] = "unknown";
        int rc = fl_net_recv_from(c->router, peer, &peer_len, user_id, sizeof user_id, &env, &bytes,
                                  S_FRAME(c, &frame));
        if (rc == 1)
            return;
        const uint8_t *proven = fl_session_key(c->sessions, peer, peer_len);
        if (proven)
            fl_key_id(proven, id);
#ifdef FEDTL_TESTING
        s_record(c, proven, id, env, frame, bytes);
#endif
        free(frame);
        if (rc < 0) {
            char reason[512];
            fl_log(FL_LOG_WARN, "message_rejected", "peer=%s bytes=%zu reason=%s", id, bytes,
                   fl_log_str(fl_error_msg(), reason, sizeof reason));
            if (fl_round_phase(c->round) == FL_ROUND_RUNNING)
                fl_ledger_traffic(c->ledger, bytes, 0);
            continue;
        }
        s_on_message(c, peer, peer_len, user_id, env, bytes);
        fl_wire_free(&env);
    }
}

/* ---- the loop ---- */

/* SIGHUP: a fresh allow-list; registered branches whose key left it are told and forgotten. */
static void s_reload(struct fl_coord *c)
{
    char path[2 * FL_COORD_PATH_MAX], reason[512];
    fl_log_str(c->cfg.allow, path, sizeof path);
    fl_allowlist_t *fresh = fl_allowlist_load(c->cfg.allow);
    if (!fresh) {
        fl_log(FL_LOG_ERROR, "allowlist_reload_failed", "path=%s reason=%s keeping=old", path,
               fl_log_str(fl_error_msg(), reason, sizeof reason));
        return;
    }
    fl_allowlist_destroy(&c->allow);
    c->allow = fresh;
    fl_round_set_enrolled(c->round, fl_allowlist_size(c->allow));
    size_t n = fl_round_nbranches(c->round), nrevoked = 0;
    uint8_t(*revoked)[FL_SIGN_PK_BYTES] = malloc((n ? n : 1) * sizeof *revoked);
    for (size_t i = 0; revoked && i < n; i++) {
        const struct fl_round_branch *b = fl_round_branch_at(c->round, i);
        if (fl_allowlist_has(c->allow, b->key, NULL))
            continue;
        char name[2 * FL_NODE_NAME_MAX];
        fl_log(FL_LOG_WARN, "branch_revoked", "peer=%s branch=%s", b->id,
               fl_log_str(b->name, name, sizeof name));
        fl_outbox_bye_branch(c->outbox, b->key, FEDTL__BYE_CODE__BYE_REVOKED,
                             "refused: key revoked");
        memcpy(revoked[nrevoked++], b->key, FL_SIGN_PK_BYTES);
    }
    for (size_t i = 0; i < nrevoked; i++) {
        fl_round_revoke(c->round, revoked[i]);
        fl_basedist_forget(c->basedist, revoked[i]);
        fl_session_forget(c->sessions, revoked[i]);
    }
    free(revoked);
    fl_log(FL_LOG_INFO, "allowlist_reloaded", "path=%s keys=%zu", path,
           fl_allowlist_size(c->allow));
}

/* Tick until the phase settles: a round that just ended starts the next at once. */
static int s_tick(struct fl_coord *c)
{
    enum fl_round_phase before, now;
    int rc;
    do {
        if (c->dp_spent)
            fl_round_stop(c->round); /* the privacy budget is spent */
        before = fl_round_phase(c->round);
        if (c->secagg) /* a phase due ends before the round's deadline is looked at */
            fl_coord_secagg_tick(c->secagg, fl_now_ms());
        rc = fl_round_tick(c->round, fl_now_ms());
        now = fl_round_phase(c->round);
        if (rc == 0 && c->secagg)
            fl_coord_secagg_tick(c->secagg, fl_now_ms());
    } while (rc == 0 && (now != before || (c->dp_spent && now == FL_ROUND_WAITING)) &&
             now != FL_ROUND_DONE);
    return rc;
}

/* Leaving: say why, and tell every branch that does not hold the final adapter. */
static void s_stop(struct fl_coord *c, int rc, bool signalled)
{
    enum fl_round_phase phase = fl_round_phase(c->round);
    if (phase == FL_ROUND_RUNNING) {
        char reason[512];
        fl_log(FL_LOG_WARN, "round_abandoned", "round=%u reason=%s",
               fl_round_completed(c->round) + 1,
               fl_log_str(signalled ? "shutting down" : fl_error_msg(), reason, sizeof reason));
    }
    for (size_t i = 0; i < fl_round_nbranches(c->round); i++) {
        const struct fl_round_branch *b = fl_round_branch_at(c->round, i);
        if (!(phase == FL_ROUND_DONE && b->final_sent))
            fl_outbox_bye_branch(c->outbox, b->key, FEDTL__BYE_CODE__BYE_SHUTDOWN,
                                 "coordinator shutting down");
    }
    fl_log(FL_LOG_INFO, "coordinator_stop", "round=%u reason=%s", fl_round_completed(c->round),
           rc ? "error" : (signalled ? "signal" : "done"));
}

int fl_coord_run(fl_coord_t *c, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    int rc = 0;
    while (!*stop) {
        if (*reload) {
            *reload = 0;
            s_reload(c);
        }
        zmq_pollitem_t items[4] = {{c->router, 0, ZMQ_POLLIN, 0},
                                   {fl_status_socket(c->status), 0, ZMQ_POLLIN, 0},
                                   {c->zap ? fl_zap_socket(c->zap) : NULL, 0, ZMQ_POLLIN, 0}};
        int nitems = c->zap ? 3 : 2;
        if (c->http) /* its epoll set, after the sockets (fl_coord_http.h) */
            items[nitems++] = (zmq_pollitem_t){NULL, fl_http_fd(c->http), ZMQ_POLLIN, 0};
        if (zmq_poll(items, nitems, c->http ? fl_http_poll_ms(c->http, 50) : 50) < 0 &&
            errno != EINTR) {
            rc = fl_fail(FL_EIO, "poll: %s", zmq_strerror(errno));
            break;
        }
        if (c->zap && (items[2].revents & ZMQ_POLLIN))
            fl_zap_answer(c->zap, c->allow);
        if (items[0].revents & ZMQ_POLLIN)
            s_read_router(c);
        if (c->http) /* not blocking: answers what is ready (fl_coord_http.h) */
            fl_http_run(c->http);
        if (items[1].revents & ZMQ_POLLIN)
            fl_status_answer(c->status, c->round, c->cfg.federation, c->strategy_desc,
                             c->cfg.rounds, fl_ledger_last(c->ledger), fl_now_ms());
        if ((rc = s_tick(c)) != 0)
            break;
        /* Give the final adapter a moment to leave before exiting. */
        if (fl_round_phase(c->round) == FL_ROUND_DONE && c->cfg.exit_when_done &&
            fl_now_ms() - c->done_at > 1000)
            break;
    }
    s_stop(c, rc, *stop);
    return rc;
}

/* ---- life cycle ---- */

/* The parts that hold no socket: keys, allow-list, base, global adapter, ledger, rules. */
static int s_open_state(struct fl_coord *c)
{
    if (sodium_init() < 0 || fl_fs_mkdirs(c->cfg.state_dir, 0755) != 0 ||
        !(c->id = fl_identity_load(c->cfg.key)) || !(c->allow = fl_allowlist_load(c->cfg.allow)) ||
        fl_base_read(c->cfg.base, &c->base) != 0 ||
        fl_sign_base(c->id, c->base.hash, c->base_sig) != 0 ||
        fl_coord_config_strategy(&c->cfg, &c->scfg) != 0 ||
        !(c->global = fl_global_new(&c->cfg, &c->base, c->pool)) || fl_coord_privacy_open(c) != 0 ||
        !(c->strategy = fl_strategy_new(&c->scfg)))
        return FL_EINVAL;
    fl_strategy_set_pool(c->strategy, c->pool);
    fl_strategy_config_str(&c->scfg, c->strategy_desc, sizeof c->strategy_desc);
    if (!(c->ledger = fl_ledger_new(c->cfg.state_dir, c->cfg.federation)))
        return FL_ENOMEM;
    uint32_t completed = fl_global_adapter(c->global)->meta.round;
    fl_ledger_sweep(c->ledger);
    fl_ledger_mend(c->ledger, completed);
    if (fl_coord_strategy_resume(c, completed) != 0)
        return FL_EINVAL;
    if (!(c->sessions = fl_session_new()))
        return FL_ENOMEM;
    if (fl_ledger_load_run_id(c->ledger, c->run_id) != 0) {
        /* A new run: its id goes into state.json now, so that a restart keeps it. */
        randombytes_buf(c->run_id, sizeof c->run_id);
        struct fl_ledger_state st = {.round = completed,
                                     .rounds = c->cfg.rounds,
                                     .strategy = fl_strategy_name(c->strategy),
                                     .strategy_config = c->strategy_desc,
                                     .seed = c->cfg.seed,
                                     .base_hash = c->base.hash,
                                     .run_id = c->run_id};
        fl_ledger_save_state(c->ledger, &st);
    }
    struct fl_round_rules rules = {.rounds = c->cfg.rounds,
                                   .clients_per_round = c->cfg.clients_per_round,
                                   .fraction = c->cfg.fraction,
                                   .min_clients = c->cfg.min_clients,
                                   .min_start = c->cfg.min_start,
                                   .start_grace_s = c->cfg.start_grace_s,
                                   .deadline_s = c->cfg.deadline_s,
                                   .round_retries = c->cfg.round_retries,
                                   .seed = c->cfg.seed,
                                   .heartbeat_ms = c->cfg.heartbeat_ms};
    c->round = fl_round_new(&rules, completed, fl_allowlist_size(c->allow), &fl_coord_round_ops, c);
    c->limits = (struct fl_admit_limits){.max_samples = c->cfg.max_samples,
                                         .max_samples_ratio = c->cfg.max_samples_ratio,
                                         .max_update_norm = c->cfg.max_update_norm};
    struct fl_intake_env env = {.round = c->round,
                                .id = c->id,
                                .federation = c->cfg.federation,
                                .run_id = c->run_id,
                                .base_hash = c->base.hash,
                                .global = fl_global_adapter(c->global),
                                .strategy = c->strategy,
                                .limits = &c->limits,
                                .pool = c->pool,
                                .personal_head = c->cfg.personal_head};
    if (c->cfg.secure_aggregation && !(c->secagg = fl_coord_secagg_new(c)))
        return FL_ENOMEM;
    if (!c->round || !(c->intake = fl_intake_new(&env)) ||
        !(c->basedist = fl_basedist_new(c->base.map, c->base.map_len, c->cfg.chunk_size,
                                        c->cfg.heartbeat_ms)))
        return FL_ENOMEM;
    return 0;
}

/* The sockets: ZAP first (it must be bound before the first handshake), status, router. */
static int s_open_sockets(struct fl_coord *c)
{
    if (!(c->ctx = zmq_ctx_new()))
        return fl_fail(FL_EIO, "zmq: %s", zmq_strerror(errno));
    if (!c->cfg.insecure) {
        if (!(c->zap = fl_zap_new(c->ctx)))
            return FL_EIO;
    } else {
        fl_log(FL_LOG_WARN, "insecure",
               "reason=\"--insecure: traffic is not encrypted and branches are not "
               "authenticated at the transport\"");
    }
    if (!(c->status = fl_status_new(c->ctx, c->cfg.control)))
        return FL_EIO;
    if (!(c->router = fl_net_router(c->ctx, c->cfg.insecure ? NULL : c->id, c->cfg.endpoint)))
        return FL_EIO;
    float clip = c->scfg.bound == FL_BOUND_FIXED ? (float)c->scfg.norm_bound : 0;
    struct fl_outbox_env env = {.router = c->router,
                                .sessions = c->sessions,
                                .run_id = c->run_id,
                                .ledger = c->ledger,
                                .cfg = &c->cfg,
                                .base = &c->base,
                                .base_sig = c->base_sig,
                                .global = c->global,
                                .prox_mu = (float)c->scfg.prox_mu,
                                .secagg_norm_bound = clip,
                                .dp_noise = c->privacy ? fl_privacy_noise(c->privacy) : 0};
    return (c->outbox = fl_outbox_new(&env)) ? 0 : FL_ENOMEM;
}

fl_coord_t *fl_coord_new(const struct fl_coord_config *cfg, fl_pool_t *pool)
{
    struct fl_coord *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->pool = pool;
    if (!c->cfg.control[0]) {
        int n = snprintf(c->cfg.control, sizeof c->cfg.control, "ipc://%.900s/control.sock",
                         c->cfg.state_dir);
        if (n < 0 || (size_t)n >= sizeof c->cfg.control || strlen(c->cfg.state_dir) > 900) {
            fl_error_set("state_dir is too long for the control socket path");
            free(c);
            return NULL;
        }
    }
    fl_error_set("%s", "");
    if (s_open_state(c) != 0 || s_open_sockets(c) != 0 || fl_coord_http_open(c) != 0)
        goto out_destroy;
#ifdef FEDTL_TESTING
    c->record = fl_coord_record_open();
#endif
    if (c->privacy && fl_privacy_epsilon(c->privacy) > 0) /* resumed: what is already spent */
        fl_metrics_privacy(c->metrics, fl_privacy_epsilon(c->privacy), c->cfg.dp_delta);
    struct fl_strategy_state st;
    fl_strategy_get_state(c->strategy, &st);
    char hex[2 * FL_HASH_BYTES + 1], fed[2 * FL_NODE_NAME_MAX + 8], ep[600], strat[600];
    fl_hash_hex(c->base.hash, hex);
    fl_log(FL_LOG_INFO, "coordinator_start",
           "federation=%s endpoint=%s base=%s method=%s rounds=%d resumed_round=%u "
           "enrolled=%zu curve=%d threads=%d strategy=%s personal_head=%d "
           "personalize_epochs=%d strategy_steps=%llu",
           fl_log_str(c->cfg.federation, fed, sizeof fed),
           fl_log_str(c->cfg.endpoint, ep, sizeof ep), hex,
           fl_adapter_kind_name(fl_global_adapter(c->global)->meta.kind), c->cfg.rounds,
           fl_round_completed(c->round), fl_allowlist_size(c->allow), !c->cfg.insecure,
           fl_pool_size(c->pool), fl_log_str(c->strategy_desc, strat, sizeof strat),
           (int)c->cfg.personal_head, c->cfg.personalize_epochs, (unsigned long long)st.steps);
    return c;
out_destroy:
    if (!fl_error_msg()[0])
        fl_error_set("coordinator start-up failed");
    fl_coord_destroy(&c);
    return NULL;
}

void fl_coord_destroy(fl_coord_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    struct fl_coord *c = *self_p;
    fl_coord_http_close(c);
    if (c->router) {
        int linger = 2000; /* let Byes and the final adapter leave */
        zmq_setsockopt(c->router, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(c->router);
    }
    fl_status_destroy(&c->status);
    fl_zap_destroy(&c->zap);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    fl_outbox_destroy(&c->outbox);
    fl_basedist_destroy(&c->basedist);
    fl_coord_secagg_destroy(&c->secagg);
#ifdef FEDTL_TESTING
    fl_coord_record_close(&c->record);
#endif
    fl_intake_destroy(&c->intake);
    fl_round_destroy(&c->round);
    fl_session_destroy(&c->sessions);
    fl_ledger_destroy(&c->ledger);
    fl_global_destroy(&c->global);
    fl_strategy_destroy(&c->strategy);
    fl_privacy_destroy(&c->privacy);
    fl_base_close(&c->base);
    fl_allowlist_destroy(&c->allow);
    fl_identity_destroy(&c->id);
    free(c);
    *self_p = NULL;
}

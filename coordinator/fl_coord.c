/* fl_coord: the coordinator's event loop and federation state machine. */
#include "fl_coord.h"
#include "fl_allowlist.h"
#include "fl_codec.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_keys.h"
#include "fl_method.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_net.h"
#include "fl_rng.h"
#include "fl_seal.h"
#include "fl_strategy.h"
#include "fl_time.h"
#include "fl_train.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_REJECTS 64
#define S_LOST_BEATS  5

enum s_phase { S_WAITING, S_ROUND, S_DONE };

/* One enrolled branch that has said Hello. */
struct s_branch {
    uint8_t key[FL_SIGN_PK_BYTES]; /* Ed25519 key = routing id */
    char name[FL_NODE_NAME_MAX];   /* from the allow-list */
    char id[FL_KEY_ID_LEN];        /* short key id for logs */
    uint64_t samples;              /* records it reported */
    bool has_base;                 /* holds our base */
    int64_t last_seen;             /* ms, monotonic */
    uint32_t selected_round;       /* round it was last given a task for */
    uint32_t answered_round;       /* round it last answered */
    bool final_sent;               /* has the final adapter */
    uint64_t base_next;            /* base download: the next byte not yet sent */
    int64_t base_rewind;           /* when it last asked again for bytes already sent (ms) */
};

/* One update the round accepted, for the ledger. */
struct s_accept {
    char name[FL_NODE_NAME_MAX];           /* branch */
    uint64_t samples;                      /* weight */
    float train_loss, eval_loss, eval_acc; /* its metrics */
    uint64_t eval_samples;                 /* its held-out size */
};

struct s_reject {
    char id[FL_KEY_ID_LEN]; /* branch key id */
    char reason[160];       /* why */
};

struct fl_coord {
    struct fl_coord_config cfg;             /* as given */
    struct fl_identity *id;                 /* coordinator identity */
    fl_allowlist_t *allow;                  /* enrolled branches */
    struct fl_base_file base;               /* the base, mapped */
    uint8_t base_sig[FL_SIG_BYTES];         /* our signature over its hash */
    struct fl_adapter_file global;          /* current global adapter (meta.round = rounds done) */
    uint8_t *global_bytes;                  /* its packed file bytes, sent in tasks */
    size_t global_len;                      /* their length */
    fl_strategy_t *strategy;                /* aggregation */
    fl_pool_t *pool;                        /* compute threads (borrowed), or NULL */
    struct fl_plain plain;                  /* the update being ingested, decrypted */
    struct fl_dataset eval;                 /* server-side evaluation data (n = 0: none) */
    fl_model_t *eval_model;                 /* base + global, for evaluation */
    void *ctx, *router, *zap, *control;     /* sockets */
    struct s_branch *branches;              /* registry */
    size_t nbranches, cap;                  /* its size */
    enum s_phase phase;                     /* what the loop is doing */
    uint32_t round;                         /* rounds completed */
    int retries;                            /* retries of the current round */
    int64_t round_start, deadline;          /* ms, monotonic */
    int nselected, nanswered;               /* this round */
    struct s_accept *accepts;               /* accepted updates this round */
    int naccepts;                           /* their count */
    struct s_reject rejects[S_MAX_REJECTS]; /* rejected updates this round (first ones) */
    int nrejects;                           /* their count (may exceed the array) */
    uint64_t bytes_in, bytes_out;           /* this round */
    int64_t done_at;                        /* when the final adapter went out (ms) */
    int64_t ready_since;                    /* when min_start branches were first eligible */
    char *last_ledger;                      /* last ledger line (malloc'd), for status */
    char ledger_path[FL_COORD_PATH_MAX + 32]; /* rounds.jsonl */
};

static char *s_path(const struct fl_coord *c, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", c->cfg.state_dir, name);
    return buf;
}

/* ---- branches ---- */

static struct s_branch *s_branch_find(struct fl_coord *c, const uint8_t *key, size_t len)
{
    if (len != FL_SIGN_PK_BYTES)
        return NULL;
    for (size_t i = 0; i < c->nbranches; i++)
        if (memcmp(c->branches[i].key, key, FL_SIGN_PK_BYTES) == 0)
            return &c->branches[i];
    return NULL;
}

static struct s_branch *s_branch_add(struct fl_coord *c, const uint8_t *key, const char *name)
{
    if (c->nbranches == c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 16;
        struct s_branch *nb = realloc(c->branches, ncap * sizeof *nb);
        if (!nb)
            return NULL;
        c->branches = nb;
        c->cap = ncap;
    }
    struct s_branch *b = &c->branches[c->nbranches++];
    memset(b, 0, sizeof *b);
    memcpy(b->key, key, FL_SIGN_PK_BYTES);
    snprintf(b->name, sizeof b->name, "%s", name);
    fl_key_id(key, b->id);
    return b;
}

static void s_branch_remove(struct fl_coord *c, struct s_branch *b)
{
    size_t i = (size_t)(b - c->branches);
    c->branches[i] = c->branches[--c->nbranches];
}

static bool s_in_round(const struct fl_coord *c, const struct s_branch *b)
{
    return c->phase == S_ROUND && b->selected_round == c->round + 1 &&
           b->answered_round != c->round + 1;
}

/* ---- sending ---- */

/* Send without blocking; a branch whose queue is full loses this message (logged). */
static int s_send(struct fl_coord *c, const uint8_t *peer, Fedtl__Envelope *env)
{
    size_t bytes = 0;
    int rc = fl_net_send(c->router, peer, FL_SIGN_PK_BYTES, env, ZMQ_DONTWAIT, &bytes);
    if (rc != 0) {
        char id[FL_KEY_ID_LEN];
        fl_key_id(peer, id);
        fl_log(FL_LOG_WARN, "send_failed", "peer=%s reason=\"%s\"", id,
               rc != FL_EIO      ? fl_error_msg()
               : errno == EAGAIN ? "queue full"
                                 : zmq_strerror(errno));
        return rc;
    }
    c->bytes_out += bytes;
    return 0;
}

static void s_send_bye(struct fl_coord *c, const uint8_t *peer, size_t peer_len,
                       Fedtl__ByeCode code, const char *reason)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Bye bye = FEDTL__BYE__INIT;
    bye.code = code;
    bye.reason = (char *)reason;
    env.body_case = FEDTL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    fl_net_send(c->router, peer, peer_len, &env, ZMQ_DONTWAIT, NULL);
}

static void s_send_welcome(struct fl_coord *c, const struct s_branch *b)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Welcome w = FEDTL__WELCOME__INIT;
    w.federation = c->cfg.federation;
    w.base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, c->base.hash};
    w.base_size = c->base.map_len;
    w.base_signature = (ProtobufCBinaryData){FL_SIG_BYTES, c->base_sig};
    w.chunk_size = c->cfg.chunk_size;
    w.round = c->round;
    w.heartbeat_ms = (uint32_t)c->cfg.heartbeat_ms;
    env.body_case = FEDTL__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    s_send(c, b->key, &env);
}

static void s_send_task(struct fl_coord *c, struct s_branch *b)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__RoundTask t = FEDTL__ROUND_TASK__INIT;
    Fedtl__TrainParams p = FEDTL__TRAIN_PARAMS__INIT;
    uint32_t r = c->round + 1;
    p.epochs = (uint32_t)c->cfg.epochs;
    p.batch = (uint32_t)c->cfg.batch;
    p.lr = c->cfg.lr;
    p.seed = c->cfg.seed * 1000003u + r;
    t.round = r;
    t.adapter = (ProtobufCBinaryData){c->global_len, c->global_bytes};
    t.params = &p;
    int64_t left = c->deadline - fl_now_ms();
    t.deadline_ms = left > 0 ? (uint64_t)left : 0;
    env.body_case = FEDTL__ENVELOPE__BODY_TASK;
    env.task = &t;
    s_send(c, b->key, &env);
}

static void s_send_final(struct fl_coord *c, struct s_branch *b)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__FinalModel f = FEDTL__FINAL_MODEL__INIT;
    f.round = c->round;
    f.adapter = (ProtobufCBinaryData){c->global_len, c->global_bytes};
    env.body_case = FEDTL__ENVELOPE__BODY_FINAL;
    env.final = &f;
    s_send(c, b->key, &env);
    b->final_sent = true;
}

static void s_send_receipt(struct fl_coord *c, const uint8_t *peer, uint32_t round, bool accepted,
                           const char *reason)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__UpdateReceipt r = FEDTL__UPDATE_RECEIPT__INIT;
    r.round = round;
    r.accepted = accepted;
    r.reason = (char *)reason;
    env.body_case = FEDTL__ENVELOPE__BODY_RECEIPT;
    env.receipt = &r;
    s_send(c, peer, &env);
}

/* ---- global adapter and state ---- */

/* Re-pack the global adapter (after its tensors or round changed). */
static int s_global_repack(struct fl_coord *c)
{
    uint8_t *buf;
    size_t len;
    int rc = fl_adapter_pack(&c->global.meta, c->global.tensors, c->global.ntensors, &buf, &len);
    if (rc)
        return rc;
    free(c->global_bytes);
    c->global_bytes = buf;
    c->global_len = len;
    return 0;
}

/* A fresh global adapter from the configuration (round 0). */
static int s_global_fresh(struct fl_coord *c)
{
    const struct fl_coord_config *g = &c->cfg;
    struct fl_adapter_meta am = {0};
    int rc = fl_adapter_kind_parse(g->method, &am.kind);
    if (rc)
        return rc;
    struct fl_method_overrides mo = {
        .rank = g->rank, .alpha = g->alpha, .lr = g->lr, .targets = g->targets};
    struct fl_method mp;
    if ((rc = fl_method_resolve(&c->base.arch, am.kind, &mo, &mp)) != 0)
        return rc;
    c->cfg.lr = mp.lr;
    fl_method_to_meta(&mp, &am);
    am.seed = g->seed;
    am.created_unix = (int64_t)time(NULL);
    if (g->classes[0]) {
        int n = 0;
        if ((rc = fl_classes_parse(g->classes, am.class_ids, FL_MAX_CLASSES, &n)) != 0)
            return rc;
        am.num_classes = n;
    } else {
        am.num_classes = c->base.arch.num_classes;
        for (int i = 0; i < am.num_classes; i++)
            am.class_ids[i] = i;
    }
    fl_model_t *m = fl_model_from_base(&c->base, c->cfg.base, &am, c->pool);
    if (!m)
        return FL_EINVAL;
    size_t n = fl_model_ntensors(m, FL_SET_ADAPTER);
    struct fl_tensor *ts = calloc(n ? n : 1, sizeof *ts);
    uint8_t *bytes = NULL;
    size_t len = 0;
    rc = ts ? 0 : FL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        ts[i] = *fl_model_tensor(m, FL_SET_ADAPTER, i);
    if (rc == 0)
        rc = fl_adapter_pack(fl_model_adapter_meta(m), ts, n, &bytes, &len);
    if (rc == 0)
        rc = fl_adapter_unpack(bytes, len, "global adapter", &c->global);
    free(bytes);
    free(ts);
    fl_model_destroy(&m);
    return rc;
}

/* Resume from STATE/global.fta when it exists (the commit point of every round). */
static int s_state_load(struct fl_coord *c, bool *resumed)
{
    char path[FL_COORD_PATH_MAX + 32];
    s_path(c, "global.fta", path, sizeof path);
    *resumed = false;
    if (access(path, F_OK) != 0)
        return 0;
    int rc = fl_adapter_read(path, &c->global);
    if (rc)
        return fl_fail(rc, "state %s cannot be resumed: %s (move it away to start over)", path,
                       fl_error_msg());
    if ((rc = fl_adapter_check_base(&c->global, path, c->base.hash, c->cfg.base)) != 0) {
        fl_adapter_close(&c->global);
        return rc;
    }
    c->round = c->global.meta.round;
    *resumed = true;
    return 0;
}

/* Commit the round: global.fta is the commit point (a failure there keeps the previous
 * round); state.json only describes it, so failing to write it is logged, not fatal. */
static int s_state_save(struct fl_coord *c)
{
    char path[FL_COORD_PATH_MAX + 32], json[1024];
    int rc = fl_fs_write_file(s_path(c, "global.fta", path, sizeof path), c->global_bytes,
                              c->global_len, 0644);
    if (rc)
        return rc;
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(c->base.hash, hex);
    int n = snprintf(json, sizeof json,
                     "{\"round\":%u,\"rounds\":%d,\"federation\":\"%s\",\"strategy\":\"%s\","
                     "\"seed\":%llu,\"base\":\"%s\"}\n",
                     c->global.meta.round, c->cfg.rounds, c->cfg.federation,
                     fl_strategy_name(c->strategy), (unsigned long long)c->cfg.seed, hex);
    if (fl_fs_write_file(s_path(c, "state.json", path, sizeof path), json, (size_t)n, 0644) != 0)
        fl_log(FL_LOG_WARN, "state_json_failed",
               "round=%u reason=\"%s\" note=\"round saved in "
               "global.fta\"",
               c->global.meta.round, fl_error_msg());
    return 0;
}

/* ---- rounds ---- */

static bool s_eligible(const struct s_branch *b)
{
    return b->has_base;
}

/* Eligible and heard from lately: a branch that died after its last update is not selected
 * again only to hold the next round until its deadline. */
static bool s_selectable(const struct fl_coord *c, const struct s_branch *b, int64_t now)
{
    return b->has_base && now - b->last_seen <= 3 * (int64_t)c->cfg.heartbeat_ms;
}

static int s_cmp_key(const void *a, const void *b)
{
    return memcmp((*(struct s_branch *const *)a)->key, (*(struct s_branch *const *)b)->key,
                  FL_SIGN_PK_BYTES);
}

static void s_round_start(struct fl_coord *c, int eligible)
{
    uint32_t r = c->round + 1;
    struct s_branch **pool = malloc(sizeof *pool * (size_t)eligible);
    if (!pool)
        return;
    int n = 0;
    int64_t now = fl_now_ms();
    for (size_t i = 0; i < c->nbranches && n < eligible; i++)
        if (s_selectable(c, &c->branches[i], now))
            pool[n++] = &c->branches[i];
    /* Deterministic in (seed, round, enrolled keys): a restarted coordinator chooses alike. */
    qsort(pool, (size_t)n, sizeof *pool, s_cmp_key);
    int k =
        c->cfg.clients_per_round > 0 ? c->cfg.clients_per_round : (int)ceil(c->cfg.fraction * n);
    if (k < c->cfg.min_clients)
        k = c->cfg.min_clients;
    if (k > n)
        k = n;
    struct fl_rng rng;
    fl_rng_seed(&rng, c->cfg.seed ^ (0x9e3779b97f4a7c15ULL * (r + 1000u * (uint32_t)c->retries)));
    for (int i = 0; i < k; i++) {
        int j = i + (int)fl_rng_below(&rng, (uint64_t)(n - i));
        struct s_branch *t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
    }
    c->phase = S_ROUND;
    c->round_start = fl_now_ms();
    c->deadline = c->round_start + (int64_t)(c->cfg.deadline_s * 1000);
    c->nselected = k;
    c->nanswered = 0;
    c->naccepts = 0;
    c->nrejects = 0;
    c->bytes_in = c->bytes_out = 0;
    /* A retried round keeps its number: whoever the failed attempt selected is not selected
     * now unless chosen again (its late update is then stale, not counted). */
    for (size_t i = 0; i < c->nbranches; i++)
        if (c->branches[i].selected_round == r)
            c->branches[i].selected_round = 0;
    free(c->accepts);
    c->accepts = calloc((size_t)(k > 0 ? k : 1), sizeof *c->accepts);
    if (!c->accepts || fl_strategy_begin(c->strategy, c->global.tensors, c->global.ntensors) != 0) {
        fl_log(FL_LOG_ERROR, "round_start_failed", "round=%u reason=\"%s\"", r,
               c->accepts ? fl_error_msg() : "out of memory");
        c->phase = S_WAITING; /* tried again on the next tick */
        free(pool);
        return;
    }
    for (int i = 0; i < k; i++) {
        pool[i]->selected_round = r;
        pool[i]->answered_round = 0; /* a retried round starts afresh */
        s_send_task(c, pool[i]);
    }
    fl_log(FL_LOG_INFO, "round_start", "round=%u selected=%d eligible=%d deadline_s=%g retry=%d", r,
           k, n, c->cfg.deadline_s, c->retries);
    free(pool);
}

static void s_json_str(char *out, size_t len, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            o += (size_t)snprintf(out + o, len - o, "\\%c", ch);
        else if (ch < 0x20)
            o += (size_t)snprintf(out + o, len - o, "\\u%04x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
}

/* Append one line with a single write on an O_APPEND descriptor, then fsync: a crash leaves
 * either the whole line or a partial last line that start-up trims, never two lines glued. */
static void s_ledger_append(struct fl_coord *c, const char *line, size_t len)
{
    int fd = open(c->ledger_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    char *buf = malloc(len + 1);
    int rc = fd < 0 || !buf ? -1 : 0;
    if (rc == 0) {
        memcpy(buf, line, len);
        buf[len] = '\n';
        for (size_t off = 0; off < len + 1 && rc == 0;) {
            ssize_t w = write(fd, buf + off, len + 1 - off);
            if (w < 0 && errno == EINTR)
                continue;
            rc = w < 0 ? -1 : 0;
            off += w > 0 ? (size_t)w : 0;
        }
    }
    if (rc != 0 || fsync(fd) != 0)
        fl_log(FL_LOG_ERROR, "ledger_failed", "path=%s reason=\"%s\"", c->ledger_path,
               strerror(errno));
    free(buf);
    if (fd >= 0)
        close(fd);
}

/* At start-up: drop a partial last line, and add a line for a round the state holds but the
 * ledger lacks (the coordinator stopped between the two writes). */
static void s_ledger_mend(struct fl_coord *c)
{
    unsigned char *text = NULL;
    size_t len = 0;
    if (fl_fs_read_file(c->ledger_path, (size_t)1 << 30, &text, &len) != 0)
        return; /* no ledger yet */
    size_t keep = len;
    while (keep > 0 && text[keep - 1] != '\n')
        keep--;
    if (keep < len) {
        fl_log(FL_LOG_WARN, "ledger_mended",
               "path=%s dropped_bytes=%zu reason=\"partial last "
               "line\"",
               c->ledger_path, len - keep);
        if (truncate(c->ledger_path, (off_t)keep) != 0)
            fl_log(FL_LOG_ERROR, "ledger_failed", "path=%s reason=\"%s\"", c->ledger_path,
                   strerror(errno));
        text[keep] = '\0';
    }
    uint32_t last = 0;
    for (char *p = (char *)text; (p = strstr(p, "{\"round\":")); p++) {
        unsigned r = 0;
        if (sscanf(p, "{\"round\":%u,\"aggregated\":true", &r) == 1 && r > last &&
            strstr(p, "\"aggregated\":true") == strchr(p, ',') + 1)
            last = r;
    }
    free(text);
    for (uint32_t r = last + 1; r <= c->round; r++) {
        char line[160];
        int n = snprintf(line, sizeof line,
                         "{\"round\":%u,\"aggregated\":true,\"recovered\":true,\"note\":\"the "
                         "coordinator stopped after saving this round, before its ledger line\"}",
                         r);
        s_ledger_append(c, line, (size_t)n);
        fl_log(FL_LOG_WARN, "ledger_mended", "round=%u reason=\"saved round had no ledger line\"",
               r);
    }
}

/* Remove temporary files an interrupted atomic write left in the state directory. */
static void s_state_sweep(struct fl_coord *c)
{
    DIR *d = opendir(c->cfg.state_dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "global.fta.tmp.", 15) != 0 &&
            strncmp(e->d_name, "state.json.tmp.", 15) != 0)
            continue;
        char path[FL_COORD_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", c->cfg.state_dir, e->d_name);
        if (unlink(path) == 0)
            fl_log(FL_LOG_INFO, "state_swept", "path=%s reason=\"left by an interrupted write\"",
                   path);
    }
    closedir(d);
}

static void s_ledger(struct fl_coord *c, bool aggregated, double srv_acc, double srv_loss,
                     bool has_srv)
{
    double n = 0, tl = 0, en = 0, ea = 0, el = 0;
    for (int i = 0; i < c->naccepts; i++) {
        const struct s_accept *a = &c->accepts[i];
        n += (double)a->samples;
        tl += (double)a->samples * a->train_loss;
        en += (double)a->eval_samples;
        ea += (double)a->eval_samples * a->eval_acc;
        el += (double)a->eval_samples * a->eval_loss;
    }
    char *line = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&line, &len); /* the line grows with the participants */
    if (!m)
        return;
    fprintf(m, "{\"round\":%u,\"aggregated\":%s,\"retry\":%d,\"selected\":%d,\"participants\":[",
            c->round + (aggregated ? 0 : 1), aggregated ? "true" : "false", c->retries,
            c->nselected);
    for (int i = 0; i < c->naccepts; i++) {
        char name[2 * FL_NODE_NAME_MAX];
        s_json_str(name, sizeof name, c->accepts[i].name);
        fprintf(m,
                "%s{\"branch\":\"%s\",\"samples\":%llu,\"train_loss\":%.5f,\"eval_accuracy\":%.5f}",
                i ? "," : "", name, (unsigned long long)c->accepts[i].samples,
                c->accepts[i].train_loss, c->accepts[i].eval_acc);
    }
    fprintf(m, "],\"rejected\":[");
    for (int i = 0; i < c->nrejects && i < S_MAX_REJECTS; i++) {
        char reason[400];
        s_json_str(reason, sizeof reason, c->rejects[i].reason);
        fprintf(m, "%s{\"branch\":\"%s\",\"reason\":\"%s\"}", i ? "," : "", c->rejects[i].id,
                reason);
    }
    fprintf(m,
            "],\"rejected_total\":%d,\"samples\":%.0f,\"train_loss\":%.5f,"
            "\"fed_eval_accuracy\":%.5f,\"fed_eval_loss\":%.5f",
            c->nrejects, n, n > 0 ? tl / n : 0, en > 0 ? ea / en : 0, en > 0 ? el / en : 0);
    if (has_srv)
        fprintf(m, ",\"server_eval_accuracy\":%.5f,\"server_eval_loss\":%.5f", srv_acc, srv_loss);
    fprintf(m, ",\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_s\":%.3f}",
            (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
            (fl_now_ms() - c->round_start) / 1000.0);
    if (fclose(m) != 0) {
        free(line);
        return;
    }
    free(c->last_ledger);
    c->last_ledger = line;
    s_ledger_append(c, line, len);
}

/* Evaluate the global adapter on the server's data, when it has some. */
static bool s_server_eval(struct fl_coord *c, double *acc, double *loss)
{
    if (!c->eval_model)
        return false;
    struct fl_eval ev;
    if (fl_model_set_adapter(c->eval_model, &c->global, "global adapter") != 0 ||
        fl_evaluate(c->eval_model, &c->eval, &ev) != 0) {
        fl_log(FL_LOG_WARN, "server_eval_failed", "reason=\"%s\"", fl_error_msg());
        return false;
    }
    *acc = ev.accuracy;
    *loss = ev.loss;
    return true;
}

static int s_round_end(struct fl_coord *c)
{
    uint32_t r = c->round + 1;
    int accepted = (int)fl_strategy_count(c->strategy);
    bool enough = accepted >= c->cfg.min_clients;
    if (!enough) {
        fl_log(FL_LOG_WARN, "round_short",
               "round=%u accepted=%d min_clients=%d selected=%d retry=%d of=%d", r, accepted,
               c->cfg.min_clients, c->nselected, c->retries, c->cfg.round_retries);
        s_ledger(c, false, 0, 0, false);
        c->phase = S_WAITING;
        if (++c->retries > c->cfg.round_retries)
            return fl_fail(FL_ERANGE, "round %u: fewer than %d updates after %d retries", r,
                           c->cfg.min_clients, c->cfg.round_retries);
        return 0;
    }
    int rc = fl_strategy_finish(c->strategy, c->global.tensors, c->global.ntensors);
    if (rc)
        return rc;
    /* Evaluate first, then commit the state, then the ledger line: the gap in which a crash
     * leaves a saved round without its line is as short as it can be (and start-up mends it). */
    double sacc = 0, sloss = 0;
    bool has_srv = s_server_eval(c, &sacc, &sloss);
    c->global.meta.round = r;
    if ((rc = s_global_repack(c)) != 0 || (rc = s_state_save(c)) != 0) {
        fl_log(FL_LOG_ERROR, "state_save_failed", "round=%u reason=\"%s\" kept=round-%u", r,
               fl_error_msg(), c->round);
        c->global.meta.round = c->round;
        c->phase = S_WAITING; /* nothing of round r was committed */
        return rc;
    }
    c->round = r;
    s_ledger(c, true, sacc, sloss, has_srv);
    fl_log(FL_LOG_INFO, "round_done",
           "round=%u accepted=%d selected=%d rejected=%d%s%.4f "
           "bytes_in=%llu bytes_out=%llu seconds=%.2f",
           r, accepted, c->nselected, c->nrejects, has_srv ? " server_accuracy=" : " ",
           has_srv ? sacc : 0.0, (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
           (fl_now_ms() - c->round_start) / 1000.0);
    c->retries = 0;
    c->phase = S_WAITING;
    return 0;
}

/* ---- updates ---- */

static void s_reject(struct fl_coord *c, const uint8_t *peer, uint32_t round, const char *id,
                     const char *reason)
{
    fl_log(FL_LOG_WARN, "update_rejected", "peer=%s round=%u current=%u reason=\"%s\"", id, round,
           c->round + 1, reason);
    if (c->nrejects < S_MAX_REJECTS) {
        snprintf(c->rejects[c->nrejects].id, sizeof c->rejects[0].id, "%s", id);
        snprintf(c->rejects[c->nrejects].reason, sizeof c->rejects[0].reason, "%s", reason);
    }
    c->nrejects++;
    s_send_receipt(c, peer, round, false, reason);
}

/* Whether a piece of a tensor is all finite. */
struct s_finite {
    const float *x; /* the tensor's values */
    atomic_int bad; /* a NaN or Inf was seen */
};

static void s_finite_task(void *arg, int t, size_t begin, size_t end)
{
    (void)t;
    struct s_finite *f = arg;
    bool ok = true;
    for (size_t i = begin; i < end; i++)
        ok &= isfinite(f->x[i]) != 0;
    if (!ok)
        atomic_store(&f->bad, 1);
}

int fl_coord_check_adapter(const struct fl_adapter_file *global,
                           const uint8_t base_hash[FL_HASH_BYTES], const struct fl_adapter_file *u,
                           fl_pool_t *pool)
{
    const struct fl_adapter_meta *a = &u->meta, *g = &global->meta;
    if (memcmp(a->base_hash, base_hash, FL_HASH_BYTES) != 0)
        return fl_fail(FL_EMISMATCH, "adapter made for another base");
    bool same = a->kind == g->kind && a->rank == g->rank && a->num_classes == g->num_classes &&
                a->ntargets == g->ntargets &&
                (a->kind != FL_ADAPTER_FFA_LORA || a->seed == g->seed);
    for (int i = 0; same && i < a->ntargets; i++)
        same = strcmp(a->targets[i], g->targets[i]) == 0;
    if (!same)
        return fl_fail(FL_EMISMATCH, "adapter configuration differs from the global adapter's");
    if (u->ntensors != global->ntensors)
        return fl_fail(FL_EMISMATCH, "%zu tensors, expected %zu", u->ntensors, global->ntensors);
    for (size_t i = 0; i < u->ntensors; i++) {
        const struct fl_tensor *t = &u->tensors[i], *want = &global->tensors[i];
        if (strcmp(t->name, want->name) != 0 || !fl_tensor_same_shape(t, want)) {
            char got_s[64], want_s[64];
            fl_tensor_shape_str(t, got_s, sizeof got_s);
            fl_tensor_shape_str(want, want_s, sizeof want_s);
            return fl_fail(FL_EMISMATCH, "tensor %zu is %s %s, expected %s %s", i, t->name, got_s,
                           want->name, want_s);
        }
    }
    for (size_t i = 0; i < u->ntensors; i++) {
        struct s_finite f = {.x = u->tensors[i].data};
        atomic_init(&f.bad, 0);
        fl_pool_for(pool, fl_tensor_numel(&u->tensors[i]), 1u << 16, s_finite_task, &f);
        if (atomic_load(&f.bad))
            return fl_fail(FL_ERANGE, "tensor %s holds NaN or Inf", u->tensors[i].name);
    }
    return 0;
}

static void s_on_update(struct fl_coord *c, const uint8_t *peer, size_t peer_len,
                        const Fedtl__SealedUpdate *u, size_t frame_bytes)
{
    char id[FL_KEY_ID_LEN] = "unknown";
    if (peer_len == FL_SIGN_PK_BYTES)
        fl_key_id(peer, id); /* who sent it, not whom it names */
    uint32_t r = c->round + 1;
    struct s_branch *b = s_branch_find(c, peer, peer_len);
    c->bytes_in += frame_bytes;
    bool own_key =
        peer_len == FL_SIGN_PK_BYTES && memcmp(peer, u->branch_key.data, FL_SIGN_PK_BYTES) == 0;
    if (!b && own_key && fl_allowlist_has(c->allow, peer, NULL) && u->round < r)
        /* A straggler that fell silent so long it was dropped: its round is over. */
        return s_reject(c, peer, u->round, id, "stale round: that round is over");
    if (!b && own_key && fl_allowlist_has(c->allow, peer, NULL))
        return s_reject(c, peer, u->round, id,
                        "not registered (dropped after falling silent): say hello again");
    if (!b || !own_key)
        return s_reject(c, peer, u->round, id, "unknown, revoked or mismatched branch key");
    if (c->phase != S_ROUND || u->round < r)
        return s_reject(c, peer, u->round, id, "stale round: that round is over");
    if (u->round > r)
        return s_reject(c, peer, u->round, id, "future round");
    if (b->selected_round != r)
        return s_reject(c, peer, u->round, id, "branch was not selected for this round");
    if (b->answered_round == r)
        return s_reject(c, peer, u->round, id, "duplicate update in this round");
    if (memcmp(u->base_hash.data, c->base.hash, FL_HASH_BYTES) != 0)
        return s_reject(c, peer, u->round, id, "wrong base hash");
    struct fl_sealed sealed; /* borrows u's ciphertext */
    if (fl_wire_sealed_get(u, &sealed) != 0 ||
        fl_verify_update(&sealed, b->key, c->cfg.federation) != 0)
        return s_reject(c, peer, u->round, id, "bad signature");
    /* A segment that does not open was changed by someone without the update key (the tags
     * are signed): not the branch's answer, which may still arrive intact. */
    if (fl_open_update(c->id, &sealed, b->key, c->cfg.federation, c->pool, &c->plain) != 0)
        return s_reject(c, peer, u->round, id, "cannot decrypt");
    /* Signed by the branch and intact: from here on the branch has answered, well or badly. */
    b->answered_round = r;
    c->nanswered++;
    Fedtl__UpdateBody *body = NULL;
    struct fl_adapter_file af = {0};
    char reason[200] = "";
    if (fl_wire_decode_body(c->plain.data, c->plain.len, &body) != 0)
        snprintf(reason, sizeof reason, "malformed update body: %s", fl_error_msg());
    else if (fl_adapter_view_authenticated(body->adapter.data, body->adapter.len, id, &af) != 0)
        snprintf(reason, sizeof reason, "bad adapter: %s", fl_error_msg());
    else if (fl_coord_check_adapter(&c->global, c->base.hash, &af, c->pool) != 0)
        snprintf(reason, sizeof reason, "%s", fl_error_msg());
    else if (fl_strategy_add(c->strategy, af.tensors, af.ntensors, (double)body->samples) != 0)
        snprintf(reason, sizeof reason, "aggregation refused it: %s", fl_error_msg());
    if (!reason[0] && c->naccepts >= c->nselected)
        snprintf(reason, sizeof reason, "more updates than branches selected");
    if (reason[0]) {
        s_reject(c, peer, u->round, id, reason);
    } else {
        struct s_accept *a = &c->accepts[c->naccepts++];
        snprintf(a->name, sizeof a->name, "%s", b->name);
        a->samples = body->samples;
        a->train_loss = body->train_loss;
        a->eval_loss = body->eval_loss;
        a->eval_acc = body->eval_accuracy;
        a->eval_samples = body->eval_samples;
        fl_log(FL_LOG_INFO, "update_accepted",
               "peer=%s branch=%s round=%u samples=%llu train_loss=%.4f eval_accuracy=%.4f", id,
               b->name, r, (unsigned long long)body->samples, body->train_loss,
               body->eval_accuracy);
        s_send_receipt(c, peer, r, true, "");
    }
    /* Every copy of the decrypted update is wiped before it is freed. */
    for (size_t i = 0; i < af.ntensors; i++)
        if (af.tensors[i].owned) /* else it lies in the body's adapter bytes */
            fl_wipe(af.tensors[i].data, fl_tensor_numel(&af.tensors[i]) * sizeof(float), c->pool);
    if (body && body->adapter.data)
        fl_wipe(body->adapter.data, body->adapter.len, c->pool);
    fl_adapter_close(&af);
    fl_wire_free_body(&body);
    fl_plain_wipe(&c->plain, c->pool);
}

/* ---- other messages ---- */

static void s_on_hello(struct fl_coord *c, const uint8_t *peer, size_t peer_len,
                       const Fedtl__Hello *h)
{
    char id[FL_KEY_ID_LEN], name[FL_NODE_NAME_MAX];
    fl_key_id(h->branch_key.data, id);
    if (peer_len != FL_SIGN_PK_BYTES || memcmp(peer, h->branch_key.data, FL_SIGN_PK_BYTES) ||
        !fl_allowlist_has(c->allow, h->branch_key.data, name)) {
        fl_log(FL_LOG_WARN, "hello_refused",
               "peer=%s reason=\"key not enrolled or routing id "
               "differs from key\"",
               id);
        s_send_bye(c, peer, peer_len, FEDTL__BYE_CODE__BYE_NOT_ENROLLED,
                   "refused: key not enrolled");
        return;
    }
    struct s_branch *b = s_branch_find(c, peer, peer_len);
    bool fresh = !b;
    if (!b && !(b = s_branch_add(c, peer, name)))
        return;
    b->samples = h->samples;
    b->last_seen = fl_now_ms();
    b->base_next = 0; /* a Hello starts a new session: its download may start afresh */
    bool had_base = b->has_base;
    b->has_base = h->base_hash.len == FL_HASH_BYTES &&
                  memcmp(h->base_hash.data, c->base.hash, FL_HASH_BYTES) == 0;
    if (fresh || had_base != b->has_base)
        fl_log(FL_LOG_INFO, "branch_registered",
               "peer=%s branch=%s samples=%llu has_base=%d "
               "branches=%zu",
               id, b->name, (unsigned long long)b->samples, b->has_base, c->nbranches);
    s_send_welcome(c, b);
    if (!b->has_base)
        return;
    if (s_in_round(c, b))
        s_send_task(c, b); /* it re-registered mid-round: it lost the task */
    if (c->phase == S_DONE)
        s_send_final(c, b);
}

static void s_on_base_request(struct fl_coord *c, const uint8_t *peer, size_t peer_len,
                              const Fedtl__BaseRequest *q)
{
    struct s_branch *b = s_branch_find(c, peer, peer_len);
    if (!b)
        return s_send_bye(c, peer, peer_len, FEDTL__BYE_CODE__BYE_SAY_HELLO,
                          "refused: say hello first");
    b->last_seen = fl_now_ms();
    if (memcmp(q->base_hash.data, c->base.hash, FL_HASH_BYTES) != 0 ||
        q->offset >= c->base.map_len) {
        fl_log(FL_LOG_WARN, "base_request_bad", "peer=%s offset=%llu", b->id,
               (unsigned long long)q->offset);
        return;
    }
    /* Credit flow: a branch asks for the bytes after those it asked for before; asking again
     * for bytes already sent (after a loss) is allowed once per stall period, so a branch
     * cannot make the coordinator send the base over and over. */
    int64_t now = fl_now_ms(), stall = 2 * (int64_t)c->cfg.heartbeat_ms;
    if (q->offset < b->base_next) {
        if (now - b->base_rewind < (stall > 1000 ? stall : 1000))
            return;
        b->base_rewind = now;
    }
    uint32_t credit = q->credit < 16 ? q->credit : 16;
    uint64_t off = q->offset;
    for (uint32_t i = 0; i < credit && off < c->base.map_len; i++) {
        size_t n =
            c->base.map_len - off < c->cfg.chunk_size ? c->base.map_len - off : c->cfg.chunk_size;
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
        Fedtl__BaseChunk ch = FEDTL__BASE_CHUNK__INIT;
        ch.base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, c->base.hash};
        ch.offset = off;
        ch.data = (ProtobufCBinaryData){n, (uint8_t *)c->base.map + off};
        env.body_case = FEDTL__ENVELOPE__BODY_BASE_CHUNK;
        env.base_chunk = &ch;
        if (s_send(c, b->key, &env) != 0)
            break; /* its queue is full: the rest would be dropped too */
        off += n;
    }
    b->base_next = off;
}

static void s_on_message(struct fl_coord *c, const uint8_t *peer, size_t peer_len,
                         Fedtl__Envelope *env, size_t bytes)
{
    struct s_branch *b = s_branch_find(c, peer, peer_len);
    if (b)
        b->last_seen = fl_now_ms();
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_HELLO:
        s_on_hello(c, peer, peer_len, env->hello);
        break;
    case FEDTL__ENVELOPE__BODY_HEARTBEAT:
        if (!b) {
            s_send_bye(c, peer, peer_len, FEDTL__BYE_CODE__BYE_SAY_HELLO,
                       "unknown branch: say hello");
        } else {
            Fedtl__Envelope r = FEDTL__ENVELOPE__INIT;
            Fedtl__Heartbeat hb = FEDTL__HEARTBEAT__INIT;
            hb.round = c->round;
            r.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
            r.heartbeat = &hb;
            s_send(c, peer, &r);
        }
        break;
    case FEDTL__ENVELOPE__BODY_BASE_REQUEST:
        s_on_base_request(c, peer, peer_len, env->base_request);
        break;
    case FEDTL__ENVELOPE__BODY_UPDATE:
        s_on_update(c, peer, peer_len, env->update, bytes);
        break;
    case FEDTL__ENVELOPE__BODY_BYE:
        if (b) {
            char reason[2 * 512 + 8];
            s_json_str(reason, sizeof reason, env->bye->reason);
            fl_log(FL_LOG_INFO, "branch_left", "peer=%s branch=%s code=%s reason=\"%s\"", b->id,
                   b->name, fl_wire_bye_name(env->bye->code), reason);
            if (!s_in_round(c, b))
                s_branch_remove(c, b);
        }
        break;
    default: {
        char id[FL_KEY_ID_LEN];
        fl_key_id(peer_len >= FL_SIGN_PK_BYTES
                      ? peer
                      : (const uint8_t *)"????????????????????????????????",
                  id);
        fl_log(FL_LOG_WARN, "message_rejected", "peer=%s reason=\"unexpected message type %d\"", id,
               (int)env->body_case);
    }
    }
}

/* Does the routing id (an Ed25519 key) map to the CurveZMQ key the connection proved? */
static bool s_routing_id_ok(const uint8_t *peer, size_t peer_len, const char *user_id)
{
    uint8_t x[FL_BOX_PK_BYTES];
    char hex[2 * FL_BOX_PK_BYTES + 1];
    if (peer_len != FL_SIGN_PK_BYTES || crypto_sign_ed25519_pk_to_curve25519(x, peer) != 0)
        return false;
    sodium_bin2hex(hex, sizeof hex, x, sizeof x);
    return strcmp(hex, user_id) == 0;
}

static void s_read_router(struct fl_coord *c)
{
    for (int i = 0; i < 256; i++) {
        uint8_t peer[FL_NET_PEER_MAX];
        size_t peer_len = 0, bytes = 0;
        Fedtl__Envelope *env = NULL;
        char user_id[2 * FL_BOX_PK_BYTES + 1];
        int rc =
            fl_net_recv_from(c->router, peer, &peer_len, user_id, sizeof user_id, &env, &bytes);
        if (rc == 1)
            return;
        if (rc == 0 && !c->cfg.insecure && !s_routing_id_ok(peer, peer_len, user_id)) {
            /* The routing id names another enrolled branch than the one whose key opened
             * this connection: someone impersonating a peer. */
            char id[FL_KEY_ID_LEN] = "unknown";
            if (peer_len == FL_SIGN_PK_BYTES)
                fl_key_id(peer, id);
            fl_log(FL_LOG_WARN, "message_rejected",
                   "peer=%s curve_key=%.12s reason=\"routing id "
                   "is not the key that authenticated this connection\"",
                   id, user_id);
            fl_wire_free(&env);
            continue;
        }
        if (rc < 0) {
            char id[FL_KEY_ID_LEN] = "unknown";
            if (peer_len == FL_SIGN_PK_BYTES)
                fl_key_id(peer, id);
            fl_log(FL_LOG_WARN, "message_rejected", "peer=%s bytes=%zu reason=\"%s\"", id, bytes,
                   fl_error_msg());
            if (c->phase == S_ROUND)
                c->bytes_in += bytes;
            continue;
        }
        s_on_message(c, peer, peer_len, env, bytes);
        fl_wire_free(&env);
    }
}

/* ZAP (RFC 27): admit CURVE clients whose key is the X25519 form of an enrolled key. */
static void s_read_zap(struct fl_coord *c)
{
    zmq_msg_t part[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], c->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        more = zmq_msg_more(&part[n]);
        n++;
    }
    if (n < 6) {
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        return;
    }
    const char *mech = zmq_msg_data(&part[5]);
    size_t mech_len = zmq_msg_size(&part[5]);
    bool ok = mech_len == 5 && memcmp(mech, "CURVE", 5) == 0 && n >= 7 &&
              zmq_msg_size(&part[6]) == FL_BOX_PK_BYTES &&
              fl_allowlist_has_curve(c->allow, zmq_msg_data(&part[6]));
    if (!ok) {
        char addr[64] = "";
        size_t al =
            zmq_msg_size(&part[3]) < sizeof addr - 1 ? zmq_msg_size(&part[3]) : sizeof addr - 1;
        memcpy(addr, zmq_msg_data(&part[3]), al);
        fl_log(FL_LOG_WARN, "handshake_refused", "address=%s reason=\"key not enrolled\"", addr);
    }
    /* The User-Id is the client's CurveZMQ key: messages carry it, and the router loop checks
     * it against their routing id. */
    char uid[2 * FL_BOX_PK_BYTES + 1] = "";
    if (ok)
        sodium_bin2hex(uid, sizeof uid, zmq_msg_data(&part[6]), FL_BOX_PK_BYTES);
    zmq_send(c->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(c->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
    zmq_send(c->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(c->zap, ok ? "OK" : "not enrolled", ok ? 2 : 12, ZMQ_SNDMORE);
    zmq_send(c->zap, uid, strlen(uid), ZMQ_SNDMORE);
    zmq_send(c->zap, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static void s_read_control(struct fl_coord *c)
{
    char req[64] = "";
    if (zmq_recv(c->control, req, sizeof req - 1, ZMQ_DONTWAIT) < 0)
        return;
    static const char *phases[] = {"waiting", "round", "done"};
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    if (!m) {
        zmq_send(c->control, "{}", 2, 0);
        return;
    }
    int64_t now = fl_now_ms();
    fprintf(m, "{\"federation\":\"%s\",\"phase\":\"%s\",\"round\":%u,\"rounds\":%d,\"branches\":[",
            c->cfg.federation, phases[c->phase], c->round, c->cfg.rounds);
    for (size_t i = 0; i < c->nbranches; i++) {
        const struct s_branch *b = &c->branches[i];
        char name[2 * FL_NODE_NAME_MAX];
        s_json_str(name, sizeof name, b->name);
        fprintf(
            m,
            "%s{\"name\":\"%s\",\"id\":\"%s\",\"has_base\":%s,\"samples\":%llu,\"idle_ms\":%lld}",
            i ? "," : "", name, b->id, b->has_base ? "true" : "false",
            (unsigned long long)b->samples, (long long)(now - b->last_seen));
    }
    fprintf(m, "],\"last\":%s}", c->last_ledger ? c->last_ledger : "null");
    if (fclose(m) == 0)
        zmq_send(c->control, out, len, 0);
    else
        zmq_send(c->control, "{}", 2, 0);
    free(out);
}

/* ---- the loop ---- */

static void s_expire(struct fl_coord *c)
{
    int64_t now = fl_now_ms(), limit = (int64_t)S_LOST_BEATS * c->cfg.heartbeat_ms;
    for (size_t i = 0; i < c->nbranches;) {
        struct s_branch *b = &c->branches[i];
        bool busy = s_in_round(c, b) && now < c->deadline;
        if (!busy && now - b->last_seen > limit) {
            fl_log(FL_LOG_INFO, "branch_lost", "peer=%s branch=%s silent_ms=%lld", b->id, b->name,
                   (long long)(now - b->last_seen));
            s_branch_remove(c, b);
            continue;
        }
        i++;
    }
}

static int s_tick(struct fl_coord *c)
{
    s_expire(c);
    int eligible = 0;
    for (size_t i = 0; i < c->nbranches; i++)
        eligible += s_selectable(c, &c->branches[i], fl_now_ms());
    switch (c->phase) {
    case S_WAITING:
        if (c->round >= (uint32_t)c->cfg.rounds) {
            c->phase = S_DONE;
            c->done_at = fl_now_ms();
            fl_log(FL_LOG_INFO, "federation_done", "rounds=%u branches=%d", c->round, eligible);
            for (size_t i = 0; i < c->nbranches; i++)
                if (s_eligible(&c->branches[i]))
                    s_send_final(c, &c->branches[i]);
        } else if (eligible >= c->cfg.min_start) {
            /* With a start grace, wait a little for the rest of the enrolled branches. */
            int64_t now = fl_now_ms();
            if (c->ready_since == 0)
                c->ready_since = now;
            bool everyone = (size_t)eligible >= fl_allowlist_size(c->allow);
            if (everyone || now - c->ready_since >= (int64_t)(c->cfg.start_grace_s * 1000)) {
                c->ready_since = 0;
                s_round_start(c, eligible);
            }
        } else {
            c->ready_since = 0;
        }
        return 0;
    case S_ROUND:
        if (c->nanswered >= c->nselected || fl_now_ms() >= c->deadline)
            return s_round_end(c);
        return 0;
    case S_DONE:
        return 0;
    }
    return 0;
}

static void s_reload(struct fl_coord *c)
{
    fl_allowlist_t *fresh = fl_allowlist_load(c->cfg.allow);
    if (!fresh) {
        fl_log(FL_LOG_ERROR, "allowlist_reload_failed", "path=%s reason=\"%s\" keeping=old",
               c->cfg.allow, fl_error_msg());
        return;
    }
    fl_allowlist_destroy(&c->allow);
    c->allow = fresh;
    for (size_t i = 0; i < c->nbranches;) {
        struct s_branch *b = &c->branches[i];
        if (!fl_allowlist_has(c->allow, b->key, NULL)) {
            fl_log(FL_LOG_WARN, "branch_revoked", "peer=%s branch=%s", b->id, b->name);
            s_send_bye(c, b->key, FL_SIGN_PK_BYTES, FEDTL__BYE_CODE__BYE_REVOKED,
                       "refused: key revoked");
            if (s_in_round(c, b))
                c->nselected--; /* it will not answer */
            s_branch_remove(c, b);
            continue;
        }
        i++;
    }
    fl_log(FL_LOG_INFO, "allowlist_reloaded", "path=%s keys=%zu", c->cfg.allow,
           fl_allowlist_size(c->allow));
}

int fl_coord_run(fl_coord_t *c, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    int rc = 0;
    while (!*stop) {
        if (*reload) {
            *reload = 0;
            s_reload(c);
        }
        zmq_pollitem_t items[3] = {{c->router, 0, ZMQ_POLLIN, 0},
                                   {c->control, 0, ZMQ_POLLIN, 0},
                                   {c->zap, 0, ZMQ_POLLIN, 0}};
        int nitems = c->zap ? 3 : 2;
        if (zmq_poll(items, nitems, 50) < 0 && errno != EINTR) {
            rc = fl_fail(FL_EIO, "poll: %s", zmq_strerror(errno));
            break;
        }
        if (nitems == 3 && (items[2].revents & ZMQ_POLLIN))
            s_read_zap(c);
        if (items[0].revents & ZMQ_POLLIN)
            s_read_router(c);
        if (items[1].revents & ZMQ_POLLIN)
            s_read_control(c);
        /* Tick until the phase settles: a round that just ended starts the next at once. */
        enum s_phase before;
        do {
            before = c->phase;
            rc = s_tick(c);
        } while (rc == 0 && c->phase != before && c->phase != S_DONE);
        if (rc)
            break;
        /* Give the final adapter a moment to leave before exiting. */
        if (c->phase == S_DONE && c->cfg.exit_when_done && fl_now_ms() - c->done_at > 1000)
            break;
    }
    if (c->phase == S_ROUND)
        fl_log(FL_LOG_WARN, "round_abandoned", "round=%u reason=\"%s\"", c->round + 1,
               *stop ? "shutting down" : fl_error_msg());
    for (size_t i = 0; i < c->nbranches; i++)
        if (!(c->phase == S_DONE && c->branches[i].final_sent))
            s_send_bye(c, c->branches[i].key, FL_SIGN_PK_BYTES, FEDTL__BYE_CODE__BYE_SHUTDOWN,
                       "coordinator shutting down");
    fl_log(FL_LOG_INFO, "coordinator_stop", "round=%u reason=%s", c->round,
           rc ? "error" : (*stop ? "signal" : "done"));
    return rc;
}

/* ---- life cycle ---- */

static int s_load_eval(struct fl_coord *c)
{
    if (!c->cfg.eval_data[0])
        return 0;
    int rc = fl_dataset_load(&c->eval, c->cfg.eval_data,
                             c->cfg.eval_labels[0] ? c->cfg.eval_labels : NULL);
    if (rc == 0)
        rc = fl_dataset_select_classes(&c->eval, c->global.meta.class_ids,
                                       c->global.meta.num_classes);
    if (rc)
        return rc;
    c->eval_model = fl_model_from_base(&c->base, c->cfg.base, &c->global.meta, c->pool);
    return c->eval_model ? 0 : FL_EINVAL;
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
    s_path(c, "rounds.jsonl", c->ledger_path, sizeof c->ledger_path);
    bool resumed = false;
    if (sodium_init() < 0 || fl_fs_mkdirs(c->cfg.state_dir, 0755) != 0 ||
        !(c->id = fl_identity_load(c->cfg.key)) || !(c->allow = fl_allowlist_load(c->cfg.allow)) ||
        fl_base_read(c->cfg.base, &c->base) != 0 ||
        fl_sign_base(c->id, c->base.hash, c->base_sig) != 0 ||
        !(c->strategy = fl_strategy_new(c->cfg.strategy)) || s_state_load(c, &resumed) != 0 ||
        (!resumed && s_global_fresh(c) != 0) || s_global_repack(c) != 0 || s_load_eval(c) != 0)
        goto out_destroy;
    fl_strategy_set_pool(c->strategy, c->pool);
    s_state_sweep(c);
    s_ledger_mend(c);
    struct fl_method mp; /* a resumed global's method: the learning rate it trains with */
    if (fl_method_resolve(&c->base.arch, c->global.meta.kind,
                          &(struct fl_method_overrides){.lr = c->cfg.lr}, &mp) != 0)
        goto out_destroy;
    c->cfg.lr = mp.lr;
    c->ctx = zmq_ctx_new();
    if (!c->ctx)
        goto out_destroy;
    if (!c->cfg.insecure) {
        /* The ZAP handler must be bound before the first handshake. */
        c->zap = zmq_socket(c->ctx, ZMQ_REP);
        if (!c->zap || zmq_bind(c->zap, "inproc://zeromq.zap.01") != 0) {
            fl_error_set("cannot bind the ZAP handler: %s", zmq_strerror(errno));
            goto out_destroy;
        }
    } else {
        fl_log(FL_LOG_WARN, "insecure",
               "reason=\"--insecure: traffic is not encrypted and "
               "branches are not authenticated at the transport\"");
    }
    c->control = zmq_socket(c->ctx, ZMQ_REP);
    int linger = 0;
    zmq_setsockopt(c->control, ZMQ_LINGER, &linger, sizeof linger);
    if (!c->control || zmq_bind(c->control, c->cfg.control) != 0) {
        fl_error_set("cannot bind the control socket %s: %s", c->cfg.control, zmq_strerror(errno));
        goto out_destroy;
    }
    if (!(c->router = fl_net_router(c->ctx, c->cfg.insecure ? NULL : c->id, c->cfg.endpoint)))
        goto out_destroy;
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(c->base.hash, hex);
    fl_log(FL_LOG_INFO, "coordinator_start",
           "federation=%s endpoint=%s base=%s method=%s rounds=%d resumed_round=%u "
           "enrolled=%zu curve=%d threads=%d",
           c->cfg.federation, c->cfg.endpoint, hex, fl_adapter_kind_name(c->global.meta.kind),
           c->cfg.rounds, c->round, fl_allowlist_size(c->allow), !c->cfg.insecure,
           fl_pool_size(c->pool));
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
    if (c->router) {
        int linger = 2000; /* let Byes and the final adapter leave */
        zmq_setsockopt(c->router, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(c->router);
    }
    if (c->control)
        zmq_close(c->control);
    if (c->zap)
        zmq_close(c->zap);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    fl_model_destroy(&c->eval_model);
    fl_dataset_free(&c->eval);
    fl_strategy_destroy(&c->strategy);
    fl_plain_free(&c->plain);
    free(c->global_bytes);
    free(c->accepts);
    free(c->branches);
    free(c->last_ledger);
    fl_adapter_close(&c->global);
    fl_base_close(&c->base);
    fl_allowlist_destroy(&c->allow);
    fl_identity_destroy(&c->id);
    free(c);
    *self_p = NULL;
}

/* bench_load_branches: the light branches of bench_load, each child process holding a share
 * of them over its own ZeroMQ context (header only, like the other bench helpers). */
#ifndef FEDTL_BENCH_LOAD_BRANCHES_H
#define FEDTL_BENCH_LOAD_BRANCHES_H

#include "bench_fed.h"

#include "fl_codec.h"
#include "fl_keys.h"
#include "fl_net.h"

#include <zmq.h>

#define S_FED  "benchload"
#define S_MAXR 64 /* rounds tracked */

/* One light branch in a child process. */
struct s_br {
    struct fl_identity *id;          /* its key (shared array, read-only) */
    void *sock;                      /* DEALER */
    bool welcomed;                   /* got Welcome */
    bool final;                      /* got FinalModel */
    double hello_at;                 /* last Hello sent (bench clock) */
    uint8_t run_id[FL_RUN_ID_BYTES]; /* from Welcome */
};

/* What one child process tells the parent at its end (one struct over a pipe). */
struct s_report {
    int branches, sockets;                          /* asked for, created */
    int welcomed, finals;                           /* branches that got Welcome, FinalModel */
    int hellos, byes, bad_frames, send_fail;        /* traffic oddities */
    double first_welcome, last_welcome;             /* bench clock (CLOCK_MONOTONIC) */
    int tasks[S_MAXR + 1];                          /* tasks received per round */
    int accepted[S_MAXR + 1], rejected[S_MAXR + 1]; /* receipts per round */
    double first_task[S_MAXR + 1], last_task[S_MAXR + 1]; /* bench clock */
};

/* ---- one child process: a share of the branches ---- */

static int s_send_hello(struct s_br *b, const uint8_t base_hash[FL_HASH_BYTES])
{
    b->hello_at = fl_now_s();
    return s_fed_hello(b->sock, b->id, base_hash, NULL, ZMQ_DONTWAIT);
}

static int s_send_heartbeat(struct s_br *b)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Heartbeat h = FEDTL__HEARTBEAT__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &h;
    return fl_net_send(b->sock, NULL, 0, &env, ZMQ_DONTWAIT, NULL);
}

/* The context a child's branches share. */
struct s_child {
    struct s_br *br;          /* its branches */
    int nb;                   /* their count */
    const uint8_t *hq_box_pk; /* coordinator's X25519 key */
    const uint8_t *base_hash; /* the base */
    struct s_report *rep;     /* what it reports */
};

static void s_on_envelope(struct s_child *ch, struct s_br *b, Fedtl__Envelope *env)
{
    struct s_report *rep = ch->rep;
    double now = fl_now_s();
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_CHALLENGE:
        if (s_fed_hello(b->sock, b->id, ch->base_hash, env->challenge, ZMQ_DONTWAIT) != 0)
            rep->send_fail++;
        break;
    case FEDTL__ENVELOPE__BODY_WELCOME:
        memcpy(b->run_id, env->welcome->run_id.data, FL_RUN_ID_BYTES);
        if (!b->welcomed) {
            b->welcomed = true;
            if (rep->welcomed++ == 0)
                rep->first_welcome = now;
            rep->last_welcome = now;
        }
        break;
    case FEDTL__ENVELOPE__BODY_TASK: {
        uint32_t rn = env->task->round;
        if (rn >= 1 && rn <= S_MAXR) {
            if (rep->tasks[rn]++ == 0)
                rep->first_task[rn] = now;
            rep->last_task[rn] = now;
        }
        if (s_fed_answer(b->sock, b->id, S_FED, b->run_id, env->task, ch->hq_box_pk, ch->base_hash,
                         ZMQ_DONTWAIT) != 0)
            rep->send_fail++;
        break;
    }
    case FEDTL__ENVELOPE__BODY_RECEIPT: {
        uint32_t rn = env->receipt->round;
        if (rn >= 1 && rn <= S_MAXR) {
            if (env->receipt->accepted)
                rep->accepted[rn]++;
            else
                rep->rejected[rn]++;
        }
        if (!env->receipt->accepted)
            fprintf(stderr, "bench_load: %s: update rejected: %s\n", b->id->name,
                    env->receipt->reason);
        break;
    }
    case FEDTL__ENVELOPE__BODY_FINAL:
        if (!b->final) {
            b->final = true;
            rep->finals++;
        }
        break;
    case FEDTL__ENVELOPE__BODY_BYE:
        rep->byes++;
        if (strcasestr(env->bye->reason, "hello")) {
            b->welcomed = false; /* the coordinator forgot us: register again */
            s_send_hello(b, ch->base_hash);
            rep->hellos++;
        }
        break;
    default:
        break;
    }
}

/* Re-send Hello to the unwelcomed after 5 beats; heartbeat the welcomed every beat. */
static void s_child_tick(struct s_child *ch, double beat_s, double *next_beat)
{
    double now = fl_now_s();
    if (now < *next_beat)
        return;
    for (int i = 0; i < ch->nb; i++) {
        struct s_br *b = &ch->br[i];
        if (b->final)
            continue;
        if (b->welcomed) {
            if (s_send_heartbeat(b) != 0)
                ch->rep->send_fail++;
        } else if (now - b->hello_at > 5 * beat_s) {
            s_send_hello(b, ch->base_hash);
            ch->rep->hellos++;
        }
    }
    *next_beat = now + beat_s;
}

static void s_child_loop(struct s_child *ch, zmq_pollitem_t *items, double beat_s, double t_end)
{
    struct s_report *rep = ch->rep;
    double next_beat = fl_now_s() + beat_s;
    while (rep->finals < ch->nb && fl_now_s() < t_end) {
        if (zmq_poll(items, ch->nb, 100) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < ch->nb; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            Fedtl__Envelope *env = NULL;
            int r;
            while ((r = fl_net_recv(ch->br[i].sock, false, NULL, NULL, &env, NULL)) != 1) {
                if (r < 0) {
                    rep->bad_frames++;
                    if (r == FL_EIO)
                        break; /* the socket, not the frame: poll again */
                    continue;
                }
                s_on_envelope(ch, &ch->br[i], env);
                fl_wire_free(&env);
            }
        }
        s_child_tick(ch, beat_s, &next_beat);
    }
}

/* Body of one child: branches [lo, hi) of ids; writes its report to fd. Never returns. */
static void s_child(struct fl_identity *ids, int lo, int hi, const char *ep,
                    const uint8_t hq_box_pk[FL_BOX_PK_BYTES],
                    const uint8_t base_hash[FL_HASH_BYTES], double beat_s, double t_end, int fd)
{
    struct s_report rep;
    memset(&rep, 0, sizeof rep);
    int nb = hi - lo;
    rep.branches = nb;
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, nb + 16);
    struct s_br *br = calloc((size_t)nb, sizeof *br);
    zmq_pollitem_t *items = calloc((size_t)nb, sizeof *items);
    struct s_child ch = {br, 0, hq_box_pk, base_hash, &rep};
    for (int i = 0; ctx && br && items && i < nb; i++) {
        br[i].id = &ids[lo + i];
        if (!(br[i].sock = fl_net_dealer(ctx, br[i].id, hq_box_pk, ep))) {
            fprintf(stderr, "bench_load: branch %d: %s (descriptors?)\n", lo + i, fl_error_msg());
            break;
        }
        items[i] = (zmq_pollitem_t){br[i].sock, 0, ZMQ_POLLIN, 0};
        ch.nb++;
    }
    rep.sockets = ch.nb;
    /* All at once: every Hello queued now goes out as its CURVE handshake completes. */
    for (int i = 0; i < ch.nb; i++) {
        s_send_hello(&br[i], base_hash);
        rep.hellos++;
    }
    if (ch.nb == nb)
        s_child_loop(&ch, items, beat_s, t_end);
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        perror("bench_load: report");
    for (int i = 0; i < ch.nb; i++)
        zmq_close(br[i].sock);
    zmq_ctx_term(ctx);
    _exit(ch.nb == nb && rep.finals == nb ? 0 : 1);
}

#endif

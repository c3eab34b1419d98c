/* bench_hostile: a real fedtl-coordinator process's peak memory (VmHWM) while a hostile peer
 * sends it bomb frames, against the same federation without the attack, with CurveZMQ and with
 * --insecure. Honest branches (light, in this process: CURVE DEALERs that say Hello with the
 * base hash and answer each task after a pause, so that the federation lasts as long as the
 * attack) run --rounds rounds. The attacker, a child process with an enrolled key of its own
 * (under CURVE only enrolled keys connect; under --insecure anyone can), sends --rate frames a
 * second for --seconds: frames of 3-byte unknown fields (fl_test_bomb_frame) of --frame-mib,
 * in turn with no body, as a Hello and as an update. "queued" counts frames the attacker's
 * socket took; "refused" those the coordinator read and refused (under CURVE the attacker's
 * own encryption holds its rate back). */
#include "bench_fed.h"

#include "fl_codec.h"
#include "fl_keys.h"
#include "fl_net.h"
#include "fl_seal.h"

#include <sodium.h>
#include <sys/wait.h>
#include <zmq.h>

#define S_FED  "benchhostile"
#define S_MAXB 64

/* One run's settings and results. */
struct s_run {
    int nb, rounds;       /* honest branches, rounds */
    double seconds, rate; /* attack length and frames per second (rate 0: no attack) */
    size_t frame;         /* bytes per bomb frame */
    bool insecure;        /* --insecure */
    long hwm_kb;          /* coordinator's peak RSS at the end */
    long rss_kb;          /* and its RSS then */
    int finals;           /* branches that got the final adapter */
    int sent, dropped;    /* bomb frames queued on the attacker's socket, not queued (full) */
    int refused;          /* frames the coordinator logged refusing */
};

/* The attacker, in a child process: frames at rate per second for seconds; sends what it
 * sent and dropped down fd. */
static void s_attack(const struct s_run *r, const char *key, const uint8_t *server_box_pk,
                     const char *ep, int fd)
{
    struct fl_identity *id = fl_identity_load(key);
    void *ctx = zmq_ctx_new();
    void *sock = id ? fl_net_dealer(ctx, id, r->insecure ? NULL : server_box_pk, ep) : NULL;
    int counts[2] = {0, 0};
    const int bodies[3] = {0, FEDTL__ENVELOPE__BODY_HELLO, FEDTL__ENVELOPE__BODY_UPDATE};
    uint8_t *frames[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++)
        frames[i] = fl_test_bomb_frame(bodies[i], r->frame, &lens[i]);
    if (sock && frames[0] && frames[1] && frames[2]) {
        usleep(300000);
        double t0 = fl_now_s();
        for (int n = 0; fl_now_s() - t0 < r->seconds; n++) {
            double due = t0 + n / r->rate;
            while (fl_now_s() < due)
                usleep(2000);
            if (zmq_send(sock, frames[n % 3], lens[n % 3], ZMQ_DONTWAIT) >= 0)
                counts[0]++;
            else
                counts[1]++;
        }
    }
    if (write(fd, counts, sizeof counts) != (ssize_t)sizeof counts)
        perror("bench_hostile: report");
    for (int i = 0; i < 3; i++)
        free(frames[i]);
    if (sock)
        zmq_close(sock);
    zmq_ctx_term(ctx);
    fl_identity_destroy(&id);
}

/* One honest branch. */
struct s_br {
    struct fl_identity *id;          /* its key */
    void *sock;                      /* DEALER */
    Fedtl__Envelope *task;           /* a task to answer... */
    double answer_at;                /* ...at this time */
    bool welcomed, final;            /* got Welcome, FinalModel */
    uint8_t run_id[FL_RUN_ID_BYTES]; /* from Welcome: signed into updates */
};

/* The honest branches until they all hold the final adapter (or time runs out). */
static void s_branches(struct s_run *r, const char *dir, const struct fl_identity *hq,
                       const uint8_t *base_hash, const char *ep, pid_t coord)
{
    void *ctx = zmq_ctx_new();
    struct s_br br[S_MAXB] = {{0}};
    zmq_pollitem_t items[S_MAXB];
    char path[1200];
    for (int i = 0; i < r->nb; i++) {
        snprintf(path, sizeof path, "%s/b%03d.key", dir, i);
        br[i].id = fl_identity_load(path);
        br[i].sock =
            br[i].id ? fl_net_dealer(ctx, br[i].id, r->insecure ? NULL : hq->box_pk, ep) : NULL;
        if (!br[i].sock) {
            fprintf(stderr, "bench_hostile: branch %d: %s\n", i, fl_error_msg());
            goto out;
        }
        items[i] = (zmq_pollitem_t){br[i].sock, 0, ZMQ_POLLIN, 0};
    }
    usleep(200000);
    /* Each round lasts about seconds / rounds: the attack spans the federation. */
    double pause = r->seconds / r->rounds, t_end = fl_now_s() + r->seconds + 60, next_beat = 0;
    while (r->finals < r->nb && fl_now_s() < t_end) {
        double now = fl_now_s();
        if (now > next_beat) {
            for (int i = 0; i < r->nb; i++)
                if (!br[i].welcomed)
                    s_fed_hello(br[i].sock, br[i].id, base_hash, NULL, ZMQ_DONTWAIT);
            next_beat = now + 0.5;
        }
        for (int i = 0; i < r->nb; i++)
            if (br[i].task && now >= br[i].answer_at) {
                if (s_fed_answer(br[i].sock, br[i].id, S_FED, br[i].run_id, br[i].task->task,
                                 hq->box_pk, base_hash, 0) != 0)
                    fprintf(stderr, "bench_hostile: answer: %s\n", fl_error_msg());
                fl_wire_free(&br[i].task);
            }
        if (zmq_poll(items, r->nb, 50) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < r->nb; i++) {
            Fedtl__Envelope *env = NULL;
            int rc;
            while ((rc = fl_net_recv(br[i].sock, false, NULL, NULL, &env, NULL)) != 1) {
                if (rc < 0)
                    continue;
                if (env->body_case == FEDTL__ENVELOPE__BODY_CHALLENGE)
                    s_fed_hello(br[i].sock, br[i].id, base_hash, env->challenge, ZMQ_DONTWAIT);
                if (env->body_case == FEDTL__ENVELOPE__BODY_WELCOME) {
                    memcpy(br[i].run_id, env->welcome->run_id.data, FL_RUN_ID_BYTES);
                    br[i].welcomed = true;
                }
                if (env->body_case == FEDTL__ENVELOPE__BODY_FINAL && !br[i].final) {
                    br[i].final = true;
                    r->finals++;
                }
                if (env->body_case == FEDTL__ENVELOPE__BODY_TASK) {
                    fl_wire_free(&br[i].task);
                    br[i].task = env;
                    br[i].answer_at = fl_now_s() + pause;
                    env = NULL;
                }
                fl_wire_free(&env);
            }
        }
    }
    r->hwm_kb = s_fed_proc_status_kb(coord, "VmHWM:");
    r->rss_kb = s_fed_proc_status_kb(coord, "VmRSS:");
out:
    for (int i = 0; i < r->nb; i++) {
        fl_wire_free(&br[i].task);
        if (br[i].sock)
            zmq_close(br[i].sock);
        fl_identity_destroy(&br[i].id);
    }
    zmq_ctx_term(ctx);
}

static int s_one_run(const char *bin, const char *dir, struct s_run *r)
{
    char base[1200], hqkey[1200], allow[1200], state[1200], logp[1200], cmd[1300], evil[1200];
    snprintf(base, sizeof base, "%s/base.ftm", dir);
    snprintf(hqkey, sizeof hqkey, "%s/hq.key", dir);
    snprintf(allow, sizeof allow, "%s/allow", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(logp, sizeof logp, "%s/coord-%d-%d.log", dir, r->insecure, r->rate > 0);
    snprintf(evil, sizeof evil, "%s/b%03d.key", dir, r->nb); /* enrolled, and hostile */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", state);
    if (s_fed_sh(cmd))
        return -1;
    struct fl_base_file bf = {0};
    if (s_bench_random_base(base, "mlp", 64, 10, 0.0f, 1.0f, &bf) != 0)
        return -1;
    uint8_t base_hash[FL_HASH_BYTES];
    memcpy(base_hash, bf.hash, FL_HASH_BYTES);
    fl_base_close(&bf);
    struct fl_identity *hq = fl_identity_load(hqkey);
    if (!hq)
        return -1;
    int port = fl_test_free_port();
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    struct s_fed_cmd coord;
    s_fed_coord_cmd(&coord, bin, hqkey, allow, base, state, ep, S_FED, r->rounds, r->nb, 1000, 120,
                    r->insecure ? "--insecure" : NULL);
    int fds[2] = {-1, -1};
    pid_t attacker = -1;
    if (r->rate > 0) {
        /* Before any ZeroMQ context here: a context does not survive fork. */
        if (pipe(fds) != 0 || (attacker = fork()) < 0)
            return -1;
        if (attacker == 0) {
            close(fds[0]);
            s_attack(r, evil, hq->box_pk, ep, fds[1]);
            _exit(0);
        }
        close(fds[1]);
    }
    pid_t pid = fl_test_spawnv(coord.argv, logp);
    if (pid < 0)
        return -1;
    s_branches(r, dir, hq, base_hash, ep, pid);
    if (attacker > 0) {
        int counts[2] = {0, 0};
        if (read(fds[0], counts, sizeof counts) == (ssize_t)sizeof counts) {
            r->sent = counts[0];
            r->dropped = counts[1];
        }
        close(fds[0]);
        waitpid(attacker, NULL, 0);
        /* The frames still in flight are read or refused within a moment. */
        usleep(500000);
        long hwm = s_fed_proc_status_kb(pid, "VmHWM:");
        if (hwm > r->hwm_kb)
            r->hwm_kb = hwm;
    }
    r->refused = fl_test_count(logp, "message_rejected");
    kill(pid, SIGTERM);
    fl_test_wait(pid, 20);
    fl_identity_destroy(&hq);
    return 0;
}

static void s_print(const struct s_run *r)
{
    printf("bench=hostile transport=%s attack=%s seconds=%.0f rate=%.0f frame_mib=%.1f "
           "queued=%d dropped=%d refused=%d peak_rss_mib=%.1f rss_end_mib=%.1f finals=%d/%d\n",
           r->insecure ? "insecure" : "curve", r->rate > 0 ? "yes" : "no", r->seconds, r->rate,
           r->frame / 1048576.0, r->sent, r->dropped, r->refused, r->hwm_kb / 1024.0,
           r->rss_kb / 1024.0, r->finals, r->nb);
}

int main(int argc, char **argv)
{
    struct s_run base = {.nb = 4, .rounds = 5, .seconds = 60, .rate = 10};
    double frame_mib = 46;
    const char *modes = "curve,insecure";
    bool unknown = false;
    for (int i = 1; i + 1 < argc && !unknown; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            base.seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate"))
            base.rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--frame-mib"))
            frame_mib = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--branches"))
            base.nb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            base.rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--modes"))
            modes = argv[i + 1];
        else
            unknown = true;
    }
    if (unknown || argc % 2 == 0 || base.seconds < 1 || base.rate <= 0 || base.nb < 1 ||
        base.nb > S_MAXB || base.rounds < 1 || frame_mib < 0.01 || frame_mib > 64) {
        fprintf(stderr,
                "usage: bench_hostile [--seconds 60 (>= 1)] [--rate 10 (> 0)] "
                "[--frame-mib 46 (0.01 to 64)] [--branches 4 (1 to %d)] [--rounds 5] "
                "[--modes curve,insecure]\n",
                S_MAXB);
        return 2;
    }
    base.frame = (size_t)(frame_mib * 1048576.0);
    if (sodium_init() < 0)
        return 1;
    fl_log_set_level(FL_LOG_WARN);
    s_fed_machine(stdout);
    char bin[1024];
    s_fed_bin_dir(bin, sizeof bin);
    char *dir = fl_test_tmpdir("hostile");
    if (!dir || s_fed_keys(bin, dir, "b", base.nb + 1) != 0)
        return 1;
    int failed = 0;
    printf("\n%d branches, %d rounds over %.0f s; attack: %.0f frames/s of %.1f MiB\n", base.nb,
           base.rounds, base.seconds, base.rate, frame_mib);
    printf("  %-9s %14s %14s %8s %10s %10s\n", "transport", "peak RSS calm", "under attack",
           "delta", "refused", "finished");
    for (int m = 0; m < 2; m++) {
        bool insecure = m == 1;
        if (!strstr(modes, insecure ? "insecure" : "curve"))
            continue;
        struct s_run calm = base, attack = base;
        calm.insecure = attack.insecure = insecure;
        calm.rate = 0;
        if (s_one_run(bin, dir, &calm) != 0 || s_one_run(bin, dir, &attack) != 0) {
            failed = 1;
            continue;
        }
        s_print(&calm);
        s_print(&attack);
        printf("  %-9s %10.1f MiB %10.1f MiB %4.1f MiB %4d of %-3d %4d/%d, %d/%d\n",
               insecure ? "insecure" : "curve", calm.hwm_kb / 1024.0, attack.hwm_kb / 1024.0,
               (attack.hwm_kb - calm.hwm_kb) / 1024.0, attack.refused, attack.sent, calm.finals,
               calm.nb, attack.finals, attack.nb);
        failed |= calm.finals < calm.nb || attack.finals < attack.nb;
    }
    fl_test_rmtree(dir);
    free(dir);
    return failed;
}

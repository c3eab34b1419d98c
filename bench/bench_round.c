/* bench_round: round overhead of a real fedtl-coordinator process with 100 light branches.
 * Keys come from the real `fedtl keygen`, the allow-list is a directory of 100 .pub files, the
 * base a small random mlp written with fl_base_write. This process runs the 100 branches as
 * 100 CURVE DEALER sockets polled in one zmq_poll loop: each says Hello with the base hash (so
 * nothing is downloaded) and answers every RoundTask at once with a freshly sealed and signed
 * update holding the task's adapter unchanged (the branch's sealing cost is paid here, not
 * pre-computed). The coordinator's time per round is the ledger's duration_s
 * (STATE/rounds.jsonl); its CPU time comes from /proc/PID (all threads, and its main thread
 * apart from ZeroMQ's I/O thread), measured from just before the 100th Hello to the moment
 * every branch holds the final adapter. */
#include "bench_fed.h"

#include "fl_codec.h"
#include "fl_keys.h"
#include "fl_model.h"
#include "fl_net.h"
#include "fl_seal.h"

#include <cJSON.h>
#include <sodium.h>
#include <zmq.h>

#define S_MAXB 1000
#define S_FED  "benchfed"

struct s_br {
    struct fl_identity *id;          /* the branch's key */
    void *sock;                      /* DEALER */
    bool welcomed;                   /* got Welcome */
    bool final;                      /* got FinalModel */
    uint32_t round;                  /* last task's round */
    uint8_t run_id[FL_RUN_ID_BYTES]; /* from Welcome */
};

/* Per-round timings seen by the branches (bench clock). */
struct s_rt {
    double first_task, last_task; /* task arrivals */
    double last_receipt;          /* receipts back */
    int accepted, rejected;       /* receipts */
};

static int s_send_hello(struct s_br *b, const uint8_t base_hash[FL_HASH_BYTES])
{
    return s_fed_hello(b->sock, b->id, base_hash, NULL, 0);
}

/* A number of a ledger line, or 0 when it has none. */
static double s_num(const cJSON *line, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(line, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Ledger: duration_s of every aggregated round into d (at most max); the count. */
static int s_ledger(const char *path, double *d, int max, double *bytes_in, double *bytes_out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *text = NULL;
    size_t cap = 0;
    int n = 0;
    *bytes_in = *bytes_out = 0;
    while (getline(&text, &cap, f) > 0 && n < max) {
        cJSON *line = cJSON_Parse(text);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated"))) {
            d[n++] = s_num(line, "duration_s");
            *bytes_in += s_num(line, "bytes_in");
            *bytes_out += s_num(line, "bytes_out");
        }
        cJSON_Delete(line);
    }
    free(text);
    fclose(f);
    return n;
}

/* Seconds of the day of a log line's "ts=YYYY-MM-DDTHH:MM:SS.mmmZ"; -1 when absent. */
static double s_log_ts(const char *line)
{
    const char *t = strstr(line, "ts=");
    int h, m;
    double sec;
    if (!t || sscanf(t + 3, "%*10[0-9-]T%d:%d:%lfZ", &h, &m, &sec) != 3)
        return -1;
    return h * 3600.0 + m * 60.0 + sec;
}

/* Fallback when the ledger lacks duration_s: round_start -> round_done in the coordinator's
 * log (ms timestamps; round_done is logged just after the ledger line is written and
 * fsync'ed, so this is the ledger's figure plus one ledger write). */
static int s_log_durations(const char *path, double *d, int max, double *bytes_in,
                           double *bytes_out)
{
    *bytes_in = *bytes_out = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[2048];
    double start = -1;
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        if (strstr(line, "event=round_start"))
            start = s_log_ts(line);
        else if (strstr(line, "event=round_done") && start >= 0) {
            double end = s_log_ts(line);
            const char *q;
            if ((q = strstr(line, " bytes_in=")))
                *bytes_in += atof(q + 10);
            if ((q = strstr(line, " bytes_out=")))
                *bytes_out += atof(q + 11);
            d[n++] = end >= start ? end - start : end + 86400 - start;
            start = -1;
        }
    }
    fclose(f);
    return n;
}

/* The result of one coordinator run. */
struct s_result {
    double dur_med, dur_min, dur_max;    /* ledger duration_s, ms */
    double period_med;                   /* first task of r to first task of r+1, ms */
    double gap_med;                      /* last receipt of r to first task of r+1, ms */
    double answer_med;                   /* first to last task arrival, ms */
    double cpu_all, cpu_main, cpu_other; /* coordinator CPU per round, ms */
    double kb_in, kb_out;                /* per round */
    int rounds;                          /* aggregated rounds in the ledger */
};

static int s_one_run(const char *bin, const char *dir, int nb, int rounds, int in_dim,
                     const char *extra, struct s_result *res)
{
    char path[1200], state[1200], ledger[1300], logp[1200], base[1200], hqkey[1200], allow[1200];
    snprintf(base, sizeof base, "%s/base.ftm", dir);
    snprintf(hqkey, sizeof hqkey, "%s/hq.key", dir);
    snprintf(allow, sizeof allow, "%s/allow", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(ledger, sizeof ledger, "%s/rounds.jsonl", state);
    snprintf(logp, sizeof logp, "%s/coord.log", dir);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", state); /* a fresh federation, not a resume */
    if (s_fed_sh(cmd))
        return -1;
    uint8_t base_hash[FL_HASH_BYTES];
    if (s_fed_write_base(base, in_dim, base_hash)) {
        fprintf(stderr, "bench_round: base: %s\n", fl_error_msg());
        return -1;
    }
    struct fl_identity *hq = fl_identity_load(hqkey);
    if (!hq)
        return -1;
    int port = fl_test_free_port();
    char ep[64], extra_flags[300];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    snprintf(extra_flags, sizeof extra_flags, "--exit-when-done %s", extra ? extra : "");
    struct s_fed_cmd coord_cmd;
    s_fed_coord_cmd(&coord_cmd, bin, hqkey, allow, base, state, ep, S_FED, rounds, nb, 1000, 60,
                    extra_flags);
    pid_t pid = fl_test_spawnv(coord_cmd.argv, logp);
    if (pid < 0)
        return -1;

    void *ctx = zmq_ctx_new();
    struct s_br *br = calloc((size_t)nb, sizeof *br);
    zmq_pollitem_t *items = calloc((size_t)nb, sizeof *items);
    struct s_rt *rt = calloc((size_t)rounds + 2, sizeof *rt);
    int rc = -1;
    for (int i = 0; i < nb; i++) {
        snprintf(path, sizeof path, "%s/b%03d.key", dir, i);
        if (!(br[i].id = fl_identity_load(path)) ||
            !(br[i].sock = fl_net_dealer(ctx, br[i].id, hq->box_pk, ep))) {
            fprintf(stderr, "bench_round: branch %d: %s\n", i, fl_error_msg());
            goto out;
        }
        items[i] = (zmq_pollitem_t){br[i].sock, 0, ZMQ_POLLIN, 0};
    }
    /* Give the coordinator a moment to bind; DEALERs reconnect on their own anyway. */
    usleep(200000);
    for (int i = 0; i < nb - 1; i++)
        s_send_hello(&br[i], base_hash);
    int welcomed = 0, finals = 0;
    double cpu0[3] = {0}, cpu1[3] = {0};
    bool last_hello = false;
    double t_end = fl_now_s() + 60 + rounds * 5.0, next_beat = fl_now_s() + 0.5;
    while (finals < nb && fl_now_s() < t_end) {
        if (!last_hello && welcomed == nb - 1) {
            /* Everyone else is registered: the next Hello starts round 1. */
            s_fed_cpu(pid, &cpu0[0], &cpu0[1], &cpu0[2]);
            s_send_hello(&br[nb - 1], base_hash);
            last_hello = true;
        }
        if (zmq_poll(items, nb, 100) < 0 && errno != EINTR)
            break;
        double now = fl_now_s();
        for (int i = 0; i < nb; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            Fedtl__Envelope *env = NULL;
            int r;
            while ((r = fl_net_recv(br[i].sock, false, NULL, NULL, &env, NULL)) != 1) {
                if (r < 0) {
                    fprintf(stderr, "bench_round: bad frame: %s\n", fl_error_msg());
                    continue;
                }
                switch (env->body_case) {
                case FEDTL__ENVELOPE__BODY_CHALLENGE:
                    s_fed_hello(br[i].sock, br[i].id, base_hash, env->challenge, 0);
                    break;
                case FEDTL__ENVELOPE__BODY_WELCOME:
                    memcpy(br[i].run_id, env->welcome->run_id.data, FL_RUN_ID_BYTES);
                    if (!br[i].welcomed && fl_verify_base(hq->sign_pk, base_hash,
                                                          env->welcome->base_signature.data) == 0) {
                        br[i].welcomed = true;
                        welcomed++;
                    }
                    break;
                case FEDTL__ENVELOPE__BODY_TASK: {
                    uint32_t rn = env->task->round;
                    if (rn >= 1 && rn <= (uint32_t)rounds) {
                        struct s_rt *x = &rt[rn];
                        if (x->first_task == 0)
                            x->first_task = now;
                        x->last_task = now;
                    }
                    br[i].round = rn;
                    if (s_fed_answer(br[i].sock, br[i].id, S_FED, br[i].run_id, env->task,
                                     hq->box_pk, base_hash, 0) != 0)
                        fprintf(stderr, "bench_round: answer failed: %s\n", fl_error_msg());
                    break;
                }
                case FEDTL__ENVELOPE__BODY_RECEIPT: {
                    uint32_t rn = env->receipt->round;
                    if (rn >= 1 && rn <= (uint32_t)rounds) {
                        rt[rn].last_receipt = fl_now_s();
                        if (env->receipt->accepted)
                            rt[rn].accepted++;
                        else
                            rt[rn].rejected++;
                    }
                    if (!env->receipt->accepted)
                        fprintf(stderr, "bench_round: rejected: %s\n", env->receipt->reason);
                    break;
                }
                case FEDTL__ENVELOPE__BODY_FINAL:
                    if (!br[i].final) {
                        br[i].final = true;
                        if (++finals == nb)
                            s_fed_cpu(pid, &cpu1[0], &cpu1[1], &cpu1[2]);
                    }
                    break;
                case FEDTL__ENVELOPE__BODY_BYE:
                    fprintf(stderr, "bench_round: bye: %s\n", env->bye->reason);
                    break;
                default:
                    break;
                }
                fl_wire_free(&env);
            }
        }
        if (now > next_beat) {
            /* Idle branches heartbeat, as real ones do. */
            Fedtl__Envelope hb = FEDTL__ENVELOPE__INIT;
            Fedtl__Heartbeat h = FEDTL__HEARTBEAT__INIT;
            hb.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
            hb.heartbeat = &h;
            for (int i = 0; i < nb; i++)
                if (br[i].welcomed)
                    fl_net_send(br[i].sock, NULL, 0, &hb, ZMQ_DONTWAIT, NULL);
            next_beat = now + 0.5;
        }
    }
    if (finals < nb) {
        fprintf(stderr, "bench_round: only %d of %d branches got the final adapter (log: %s)\n",
                finals, nb, logp);
        goto out;
    }
    int st = fl_test_wait(pid, 20);
    pid = -1;
    if (st != 0)
        fprintf(stderr, "bench_round: coordinator exited with %d\n", st);
    double dur[1024], per[1024], gap[1024], ans[1024];
    int nd = s_ledger(ledger, dur, 1024, &res->kb_in, &res->kb_out);
    const char *src = "ledger";
    if (nd < rounds) {
        /* fl_coord.c's ledger line is cut at 4 KiB: with ~50+ participants it loses its
         * summary fields (duration_s, bytes) and is not valid JSON. */
        fprintf(stderr,
                "bench_round: ledger has duration_s for %d of %d rounds; using the log's "
                "round_start/round_done timestamps\n",
                nd, rounds);
        nd = s_log_durations(logp, dur, 1024, &res->kb_in, &res->kb_out);
        src = "log";
    }
    res->rounds = nd;
    int np = 0, na = 0;
    for (int r = 1; r <= rounds; r++) {
        if (rt[r].first_task > 0)
            ans[na++] = (rt[r].last_task - rt[r].first_task) * 1e3;
        if (r < rounds && rt[r + 1].first_task > 0 && rt[r].first_task > 0) {
            per[np] = (rt[r + 1].first_task - rt[r].first_task) * 1e3;
            gap[np++] = (rt[r + 1].first_task - rt[r].last_receipt) * 1e3;
        }
        if (rt[r].accepted != nb)
            fprintf(stderr, "bench_round: round %d: %d accepted, %d rejected\n", r, rt[r].accepted,
                    rt[r].rejected);
    }
    double sorted[1024];
    memcpy(sorted, dur, sizeof(double) * (size_t)nd);
    res->dur_med = s_bench_median(sorted, nd) * 1e3;
    res->dur_min = nd ? sorted[0] * 1e3 : 0;
    res->dur_max = nd ? sorted[nd - 1] * 1e3 : 0;
    res->period_med = s_bench_median(per, np);
    res->gap_med = s_bench_median(gap, np);
    res->answer_med = s_bench_median(ans, na);
    res->cpu_all = (cpu1[0] - cpu0[0]) * 1e3 / rounds;
    res->cpu_main = (cpu1[1] - cpu0[1]) * 1e3 / rounds;
    res->cpu_other = (cpu1[2] - cpu0[2]) * 1e3 / rounds;
    res->kb_in = res->kb_in / 1024.0 / (nd ? nd : 1);
    res->kb_out = res->kb_out / 1024.0 / (nd ? nd : 1);
    printf("bench=round source=%s branches=%d rounds=%d aggregated=%d duration_ms_median=%.1f "
           "min=%.1f "
           "max=%.1f period_ms=%.1f gap_ms=%.1f tasks_spread_ms=%.1f cpu_ms_per_round=%.1f "
           "cpu_main_ms=%.1f cpu_io_ms=%.1f kb_in=%.1f kb_out=%.1f",
           src, nb, rounds, nd, res->dur_med, res->dur_min, res->dur_max, res->period_med,
           res->gap_med, res->answer_med, res->cpu_all, res->cpu_main, res->cpu_other, res->kb_in,
           res->kb_out);
    printf(" durations_ms=");
    for (int i = 0; i < nd; i++)
        printf("%s%.0f", i ? "," : "", dur[i] * 1e3);
    printf("\n");
    fflush(stdout);
    rc = nd == rounds ? 0 : -1;
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        fl_test_wait(pid, 10);
    }
    for (int i = 0; i < nb; i++) {
        if (br[i].sock)
            zmq_close(br[i].sock);
        fl_identity_destroy(&br[i].id);
    }
    zmq_ctx_term(ctx);
    fl_identity_destroy(&hq);
    free(br);
    free(items);
    free(rt);
    return rc;
}

int main(int argc, char **argv)
{
    int nb = 100, rounds = 10, reps = 3, in_dim = 64;
    const char *extra = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--branches"))
            nb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--in-dim"))
            in_dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--coord-args"))
            extra = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_round [--branches 100] [--rounds 10] [--reps 3] "
                            "[--in-dim 64] [--coord-args \"--insecure\"]\n");
            return 2;
        }
    }
    if (nb < 2 || nb > S_MAXB || rounds < 1 || rounds > 1000 || reps < 1 || reps > 64)
        return 2;
    if (sodium_init() < 0)
        return 1;
    fl_log_set_level(FL_LOG_WARN);
    s_fed_machine(stdout);
    char bin[1024];
    s_fed_bin_dir(bin, sizeof bin);
    char *dir = fl_test_tmpdir("round");
    if (!dir || s_fed_keys(bin, dir, "b", nb) != 0)
        return 1;
    struct s_result res[64];
    int ok = 0;
    for (int r = 0; r < reps; r++)
        if (s_one_run(bin, dir, nb, rounds, in_dim, extra, &res[ok]) == 0)
            ok++;
    if (ok > 0) {
        double d[64], c[64], m[64], o[64], p[64], g[64];
        for (int i = 0; i < ok; i++) {
            d[i] = res[i].dur_med;
            c[i] = res[i].cpu_all;
            m[i] = res[i].cpu_main;
            o[i] = res[i].cpu_other;
            p[i] = res[i].period_med;
            g[i] = res[i].gap_med;
        }
        printf("\n%d branches, %d rounds x %d runs (medians over runs of per-run medians)\n", nb,
               rounds, ok);
        printf("  round duration (ledger duration_s) %8.1f ms\n", s_bench_median(d, ok));
        printf("  coordinator CPU per round          %8.1f ms (main thread %.1f, zmq I/O %.1f)\n",
               s_bench_median(c, ok), s_bench_median(m, ok), s_bench_median(o, ok));
        printf("  round period (task to next task)   %8.1f ms (of which idle gap after the last "
               "receipt %.1f ms)\n",
               s_bench_median(p, ok), s_bench_median(g, ok));
        printf("  traffic per round                  %8.1f KiB in, %.1f KiB out\n", res[0].kb_in,
               res[0].kb_out);
    }
    fl_test_rmtree(dir);
    free(dir);
    return ok == reps ? 0 : 1;
}

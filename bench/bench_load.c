/* bench_load: 1,000 light branches connecting at once to one real fedtl-coordinator process.
 * The branches' Ed25519 key pairs are made here with libsodium and enrolled through one
 * allow-list FILE of .pub lines (fl_pubkey_format); the coordinator's key comes from the real
 * `fedtl keygen`. The branches are CURVE DEALER sockets spread over a few child processes
 * (each with its own ZeroMQ context, forked before any context exists): each says Hello with
 * the base hash (nothing downloads), heartbeats while idle, and answers every RoundTask at
 * once with a freshly sealed and signed update holding the task's adapter unchanged.
 * The parent follows the coordinator's log and /proc: connect time (all registered), round
 * times (ledger duration_s), coordinator CPU per round (utime + stime of /proc/PID/stat) and
 * its peak RSS (VmHWM of /proc/PID/status) and open descriptors. The file-descriptor limit is
 * raised to the hard limit here and in the coordinator's process before it execs. */
#include "bench_fed.h"
#include "bench_load_branches.h"

#include "fl_codec.h"
#include "fl_error.h"
#include "fl_allowlist.h"
#include "fl_fs.h"
#include "fl_keys.h"
#include "fl_model.h"
#include "fl_net.h"
#include "fl_seal.h"

#include <cJSON.h>
#include <limits.h>
#include <sodium.h>
#include <sys/resource.h>
#include <time.h>
#include <zmq.h>

#define S_MAXPROCS 64 /* child processes */
#define S_FD_SLACK 64 /* descriptors besides the connections */
#define S_FD_PER   3  /* descriptors per DEALER (TCP, mailbox, slack for reconnects) */

struct s_opts {
    int branches;      /* light branches in all */
    int procs;         /* child processes holding them */
    int rounds;        /* --rounds */
    int in_dim;        /* mlp input features */
    int heartbeat_ms;  /* --heartbeat-ms */
    int deadline_s;    /* --deadline */
    const char *extra; /* more coordinator flags */
};

/* What the parent sees of the coordinator while it runs. */
struct s_watch {
    pid_t pid;                         /* coordinator */
    int max_registered;                /* highest branches= in branch_registered */
    double first_reg, all_reg;         /* bench clock */
    double log_first_reg, log_all_reg; /* log ts seconds of the day */
    double cpu_reg0, cpu_reg1;         /* CPU s at first / all registered */
    long ovf0, ovf1;                   /* ListenOverflows before connecting / when all registered */
    double t_start[S_MAXR + 2], t_done[S_MAXR + 2];         /* bench clock */
    double cpu_start[S_MAXR + 2], cpu_done[S_MAXR + 2];     /* coordinator CPU s */
    int done_rounds;                                        /* round_done lines */
    bool fed_done;                                          /* federation_done seen */
    long hwm_kb, rss_kb;                                    /* VmHWM, last VmRSS */
    int fd_peak;                                            /* open descriptors, peak */
    int warn, error;                                        /* warn / error lines */
    int lost, send_failed, rejected, short_rounds, refused; /* notable events */
    long off;                                               /* log bytes consumed */
};

/* ---- keys, base, allow-list ---- */

/* n key pairs made with libsodium; their .pub lines into allow_path. */
static struct fl_identity *s_make_keys(int n, const char *allow_path)
{
    struct fl_identity *ids = calloc((size_t)n, sizeof *ids);
    FILE *f = fopen(allow_path, "w");
    if (!ids || !f)
        goto out_fail;
    fprintf(f, "# bench_load: %d in-process keys\n", n);
    for (int i = 0; i < n; i++) {
        struct fl_identity *id = &ids[i];
        snprintf(id->name, sizeof id->name, "load%04d", i);
        if (crypto_sign_keypair(id->sign_pk, id->sign_sk) != 0 ||
            crypto_sign_ed25519_pk_to_curve25519(id->box_pk, id->sign_pk) != 0 ||
            crypto_sign_ed25519_sk_to_curve25519(id->box_sk, id->sign_sk) != 0)
            goto out_fail;
        char line[256];
        fl_pubkey_format(id->sign_pk, id->name, line, sizeof line);
        fprintf(f, "%s\n", line);
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto out_fail;
    }
    return ids;
out_fail:
    if (f)
        fclose(f);
    if (ids)
        sodium_memzero(ids, (size_t)n * sizeof *ids);
    free(ids);
    return NULL;
}

static double s_cpu(pid_t pid)
{
    double all = 0, m, o;
    return s_fed_cpu(pid, &all, &m, &o) == 0 ? all : -1;
}

/* ---- the parent: coordinator, log, /proc ---- */

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

static long s_field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? atol(p + strlen(key)) : -1;
}

static void s_watch_line(struct s_watch *w, const char *line, int nb)
{
    double now = fl_now_s();
    if (strstr(line, "level=warn"))
        w->warn++;
    if (strstr(line, "level=error"))
        w->error++;
    if (strstr(line, "event=branch_registered")) {
        long n = s_field(line, " branches=");
        if (w->first_reg == 0) {
            w->first_reg = now;
            w->log_first_reg = s_log_ts(line);
            w->cpu_reg0 = s_cpu(w->pid);
        }
        if (n > w->max_registered)
            w->max_registered = (int)n;
        if (n >= nb && w->all_reg == 0) {
            w->all_reg = now;
            w->log_all_reg = s_log_ts(line);
            w->cpu_reg1 = s_cpu(w->pid);
            w->ovf1 = s_fed_listen_overflows();
        }
    } else if (strstr(line, "event=round_start")) {
        long r = s_field(line, " round=");
        if (r >= 1 && r <= S_MAXR && w->t_start[r] == 0) {
            w->t_start[r] = now;
            w->cpu_start[r] = s_cpu(w->pid);
        }
    } else if (strstr(line, "event=round_done")) {
        long r = s_field(line, " round=");
        if (r >= 1 && r <= S_MAXR) {
            w->t_done[r] = now;
            w->cpu_done[r] = s_cpu(w->pid);
        }
        w->done_rounds++;
    } else if (strstr(line, "event=federation_done")) {
        w->fed_done = true;
    } else if (strstr(line, "event=branch_lost")) {
        w->lost++;
    } else if (strstr(line, "event=send_failed")) {
        w->send_failed++;
    } else if (strstr(line, "event=update_rejected")) {
        w->rejected++;
    } else if (strstr(line, "event=round_short")) {
        w->short_rounds++;
    } else if (strstr(line, "event=handshake_refused") || strstr(line, "event=hello_refused")) {
        w->refused++;
    }
}

/* Consume the complete new lines of the coordinator's log. */
static void s_watch_log(struct s_watch *w, const char *logp, int nb)
{
    FILE *f = fopen(logp, "r");
    if (!f || fseek(f, w->off, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n')
            break; /* partial: read it again next time */
        w->off += n;
        s_watch_line(w, line, nb);
    }
    free(line);
    fclose(f);
}

static void s_watch_proc(struct s_watch *w)
{
    long hwm = s_fed_proc_status_kb(w->pid, "VmHWM:"), rss = s_fed_proc_status_kb(w->pid, "VmRSS:");
    int fds = s_fed_proc_fds(w->pid);
    if (hwm > w->hwm_kb)
        w->hwm_kb = hwm;
    if (rss > 0)
        w->rss_kb = rss;
    if (fds > w->fd_peak)
        w->fd_peak = fds;
}

/* Fork, raise RLIMIT_NOFILE in the child to its hard limit (what `prlimit` would do), exec the
 * coordinator with output to log_path. */
static pid_t s_spawn_coord(char *const argv[], const char *log_path)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    long hard;
    s_fed_raise_nofile(&hard);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execv(argv[0], argv);
    _exit(127);
}

/* Ledger: round, duration_s and participants of every aggregated round; the count. Lines are
 * long (one entry per participant): read with getline. */
static int s_ledger(const char *path, int *round, double *d, int *participants, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *text = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&text, &cap, f) > 0 && n < max) {
        cJSON *line = cJSON_Parse(text);
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(line, "round");
        const cJSON *dur = cJSON_GetObjectItemCaseSensitive(line, "duration_s");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")) &&
            cJSON_IsNumber(r) && cJSON_IsNumber(dur)) {
            round[n] = (int)r->valuedouble;
            d[n] = dur->valuedouble;
            participants[n] =
                cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(line, "participants"));
            n++;
        }
        cJSON_Delete(line);
    }
    free(text);
    fclose(f);
    return n;
}

static double s_diff_day(double a, double b)
{
    if (a < 0 || b < 0)
        return -1;
    return b >= a ? b - a : b + 86400 - a;
}

/* Fork the children, branches split evenly; their pids into kids, report pipes into fds. */
static int s_fork_children(const struct s_opts *o, struct fl_identity *ids, const char *ep,
                           const struct fl_identity *hq, const uint8_t base_hash[FL_HASH_BYTES],
                           double t_end, pid_t *kids, int *fds)
{
    int per = (o->branches + o->procs - 1) / o->procs;
    for (int p = 0; p < o->procs; p++) {
        int lo = p * per, hi = lo + per < o->branches ? lo + per : o->branches;
        int pfd[2];
        if (pipe(pfd) != 0)
            return -1;
        fflush(NULL);
        pid_t k = fork();
        if (k < 0)
            return -1;
        if (k == 0) {
            close(pfd[0]);
            s_child(ids, lo, hi, ep, hq->box_pk, base_hash, o->heartbeat_ms / 1000.0, t_end,
                    pfd[1]);
        }
        close(pfd[1]);
        kids[p] = k;
        fds[p] = pfd[0];
    }
    return 0;
}

/* Merge the children's reports; how many children exited 0. */
static int s_reap_children(int procs, pid_t *kids, int *fds, struct s_report *sum, double timeout_s)
{
    int ok = 0;
    memset(sum, 0, sizeof *sum);
    sum->first_welcome = 1e300;
    for (int p = 0; p < procs; p++) {
        struct s_report r;
        ssize_t got = read(fds[p], &r, sizeof r);
        close(fds[p]);
        int st = fl_test_wait(kids[p], timeout_s);
        ok += st == 0;
        if (got != (ssize_t)sizeof r)
            continue;
        sum->branches += r.branches;
        sum->sockets += r.sockets;
        sum->welcomed += r.welcomed;
        sum->finals += r.finals;
        sum->hellos += r.hellos;
        sum->byes += r.byes;
        sum->bad_frames += r.bad_frames;
        sum->send_fail += r.send_fail;
        if (r.welcomed && r.first_welcome < sum->first_welcome)
            sum->first_welcome = r.first_welcome;
        if (r.last_welcome > sum->last_welcome)
            sum->last_welcome = r.last_welcome;
        for (int i = 0; i <= S_MAXR; i++) {
            sum->tasks[i] += r.tasks[i];
            sum->accepted[i] += r.accepted[i];
            sum->rejected[i] += r.rejected[i];
            if (r.tasks[i] && (sum->first_task[i] == 0 || r.first_task[i] < sum->first_task[i]))
                sum->first_task[i] = r.first_task[i];
            if (r.last_task[i] > sum->last_task[i])
                sum->last_task[i] = r.last_task[i];
        }
    }
    return ok;
}

/* Wait for the federation to finish (or time out), following the log and /proc. */
static void s_follow(struct s_watch *w, const char *logp, int nb, double t_end)
{
    while (fl_now_s() < t_end) {
        s_watch_log(w, logp, nb);
        s_watch_proc(w);
        if (w->fed_done || waitpid(w->pid, NULL, WNOHANG) == w->pid)
            break;
        usleep(20000);
    }
    s_watch_log(w, logp, nb);
    s_watch_proc(w);
}

static bool s_wait_started(const char *logp, pid_t pid, double timeout_s)
{
    double end = fl_now_s() + timeout_s;
    while (fl_now_s() < end) {
        char *buf = NULL;
        size_t len = 0;
        if (fl_fs_read_file(logp, 1 << 20, (unsigned char **)&buf, &len) == 0) {
            bool up = strstr(buf, "event=coordinator_start") != NULL;
            free(buf);
            if (up)
                return true;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return false;
        usleep(20000);
    }
    return false;
}

static long s_ovf(const struct s_watch *w)
{
    return w->ovf0 >= 0 && w->ovf1 >= 0 ? w->ovf1 - w->ovf0 : -1;
}

static void s_report(const struct s_opts *o, const struct s_watch *w, const struct s_report *s,
                     double t_fork, const char *ledger, long soft, long hard, long coord_nofile,
                     int coord_rc, int kids_ok, bool *pass)
{
    int lr[S_MAXR], lp[S_MAXR];
    double ld[S_MAXR], sorted[S_MAXR];
    int nl = s_ledger(ledger, lr, ld, lp, S_MAXR);
    memcpy(sorted, ld, sizeof(double) * (size_t)nl);
    double med = s_bench_median(sorted, nl);
    double cpu_round[S_MAXR + 1], cpu_sorted[S_MAXR + 1];
    int ncpu = 0;
    for (int r = 1; r <= o->rounds && r <= S_MAXR; r++) {
        /* Round r starts as round r-1 ends (one loop turn): measure done(r-1) -> done(r). */
        double c0 = r > 1 && w->cpu_done[r - 1] > 0 ? w->cpu_done[r - 1] : w->cpu_start[r];
        if (w->cpu_done[r] > 0 && c0 >= 0)
            cpu_sorted[ncpu] = cpu_round[ncpu] = w->cpu_done[r] - c0, ncpu++;
    }
    double cpu_med = s_bench_median(cpu_sorted, ncpu);
    double connect_s = s->welcomed ? s->last_welcome - t_fork : -1;
    double reg_log_s = s_diff_day(w->log_first_reg, w->log_all_reg);
    int min_part = nl ? lp[0] : 0;
    for (int i = 1; i < nl; i++)
        if (lp[i] < min_part)
            min_part = lp[i];
    *pass = nl == o->rounds && min_part == o->branches && w->hwm_kb > 0 &&
            w->hwm_kb < 1024L * 1024L && s->finals == o->branches && coord_rc == 0 &&
            kids_ok == o->procs;
    for (int i = 0; i < nl; i++)
        printf("bench=load_round round=%d duration_s=%.3f participants=%d cpu_s=%.3f "
               "accepted_receipts=%d rejected_receipts=%d tasks_spread_ms=%.1f\n",
               lr[i], ld[i], lp[i], i < ncpu ? cpu_round[i] : -1,
               lr[i] >= 1 && lr[i] <= S_MAXR ? s->accepted[lr[i]] : -1,
               lr[i] >= 1 && lr[i] <= S_MAXR ? s->rejected[lr[i]] : -1,
               lr[i] >= 1 && lr[i] <= S_MAXR ? (s->last_task[lr[i]] - s->first_task[lr[i]]) * 1e3
                                             : -1);
    printf("bench=load branches=%d procs=%d rounds=%d aggregated=%d min_participants=%d "
           "connect_s=%.3f registered_log_s=%.3f registered=%d welcomed=%d finals=%d "
           "round_s_median=%.3f cpu_s_per_round_median=%.3f cpu_s_connect=%.3f "
           "rss_peak_mb=%.1f rss_end_mb=%.1f fd_peak=%d nofile_soft=%ld nofile_hard=%ld "
           "coord_nofile=%ld warn_lines=%d error_lines=%d lost=%d send_failed=%d "
           "rejected=%d short_rounds=%d refused=%d hellos=%d byes=%d listen_overflows=%ld "
           "coord_exit=%d pass=%d\n",
           o->branches, o->procs, o->rounds, nl, min_part, connect_s, reg_log_s, w->max_registered,
           s->welcomed, s->finals, med, cpu_med,
           w->cpu_reg1 >= 0 && w->cpu_reg0 >= 0 ? w->cpu_reg1 - w->cpu_reg0 : -1,
           w->hwm_kb / 1024.0, w->rss_kb / 1024.0, w->fd_peak, soft, hard, coord_nofile, w->warn,
           w->error, w->lost, w->send_failed, w->rejected, w->short_rounds, w->refused, s->hellos,
           s->byes, s_ovf(w), coord_rc, *pass);
    printf("\n%d branches in %d processes against one fedtl-coordinator (CURVE on), %d rounds\n",
           o->branches, o->procs, o->rounds);
    printf("  connect: all %d welcomed %.2f s after the sockets were made; the log's first to "
           "last branch_registered %.2f s (coordinator CPU %.2f s)\n",
           s->welcomed, connect_s, reg_log_s,
           w->cpu_reg1 >= 0 && w->cpu_reg0 >= 0 ? w->cpu_reg1 - w->cpu_reg0 : -1);
    printf("  accept queue: %ld connection attempts dropped by full listen queues while they "
           "connected (TcpExt ListenOverflows, machine-wide; ZMQ_BACKLOG defaults to 100)\n",
           s_ovf(w));
    printf("  rounds:  %d of %d aggregated, median duration %.3f s (ledger duration_s), "
           "fewest participants %d\n",
           nl, o->rounds, med, min_part);
    printf("  CPU:     median %.3f s of coordinator CPU per round (utime+stime)\n", cpu_med);
    printf("  memory:  coordinator peak RSS %.1f MiB (VmHWM; target < 1024), %d descriptors at "
           "peak, limit %ld\n",
           w->hwm_kb / 1024.0, w->fd_peak, coord_nofile);
    printf("  result:  %s\n", *pass ? "PASS" : "FAIL");
}

static int s_run(const struct s_opts *o, const char *bin, const char *dir, long soft, long hard)
{
    char allow[1200], base[1200], hqkey[1200], state[1200], ledger[1300], logp[1200], cmd[1400];
    snprintf(allow, sizeof allow, "%s/allow.pub", dir);
    snprintf(base, sizeof base, "%s/base.ftm", dir);
    snprintf(hqkey, sizeof hqkey, "%s/hq.key", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(ledger, sizeof ledger, "%s/rounds.jsonl", state);
    snprintf(logp, sizeof logp, "%s/coord.log", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/fedtl' keygen --out hq --name hq >/dev/null", dir,
             bin);
    double t0 = fl_now_s();
    struct fl_identity *ids = s_make_keys(o->branches, allow);
    uint8_t base_hash[FL_HASH_BYTES];
    struct fl_identity *hq = NULL;
    if (!ids || s_fed_sh(cmd) != 0 || !(hq = fl_identity_load(hqkey)) ||
        s_fed_write_base(base, o->in_dim, base_hash) != 0) {
        fprintf(stderr, "bench_load: set-up failed: %s\n", fl_error_msg());
        free(ids);
        fl_identity_destroy(&hq);
        return 1;
    }
    fl_allowlist_t *al = fl_allowlist_load(allow);
    printf("bench=load_setup keys=%d allow_list_keys=%zu keygen_s=%.3f\n", o->branches,
           fl_allowlist_size(al), fl_now_s() - t0);
    fl_allowlist_destroy(&al);
    int port = fl_test_free_port();
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    struct s_fed_cmd coord_cmd;
    s_fed_coord_cmd(&coord_cmd, bin, hqkey, allow, base, state, ep, S_FED, o->rounds, o->branches,
                    o->heartbeat_ms, o->deadline_s, o->extra);
    fflush(NULL);
    struct s_watch w;
    memset(&w, 0, sizeof w);
    w.pid = s_spawn_coord(coord_cmd.argv, logp);
    if (w.pid < 0 || !s_wait_started(logp, w.pid, 30)) {
        fprintf(stderr, "bench_load: the coordinator did not start (log: %s)\n", logp);
        return 1;
    }
    long coord_nofile = s_fed_proc_nofile(w.pid);
    if (coord_nofile >= 0 && coord_nofile < o->branches + S_FD_SLACK)
        fprintf(stderr,
                "bench_load: WARNING: the coordinator may open %ld files, fewer than the %d "
                "branches + %d it needs: connections will be refused (raise the hard limit: "
                "ulimit -Hn / prlimit / LimitNOFILE)\n",
                coord_nofile, o->branches, S_FD_SLACK);
    double t_end = fl_now_s() + 120 + o->rounds * (o->deadline_s + 30.0);
    pid_t kids[S_MAXPROCS];
    int fds[S_MAXPROCS];
    w.ovf0 = s_fed_listen_overflows();
    double t_fork = fl_now_s();
    if (s_fork_children(o, ids, ep, hq, base_hash, t_end, kids, fds) != 0) {
        perror("bench_load: fork");
        kill(w.pid, SIGKILL);
        return 1;
    }
    s_follow(&w, logp, o->branches, t_end);
    if (!w.fed_done) /* the federation failed: the children would wait until t_end */
        for (int p = 0; p < o->procs; p++)
            kill(kids[p], SIGKILL);
    struct s_report sum;
    int kids_ok = s_reap_children(o->procs, kids, fds, &sum, 30);
    s_watch_proc(&w);
    int coord_rc = -1;
    if (waitpid(w.pid, NULL, WNOHANG) == 0) {
        kill(w.pid, SIGTERM);
        coord_rc = fl_test_wait(w.pid, 20);
    }
    s_watch_log(&w, logp, o->branches);
    bool pass = false;
    s_report(o, &w, &sum, t_fork, ledger, soft, hard, coord_nofile, coord_rc, kids_ok, &pass);
    if (!pass)
        fprintf(stderr, "bench_load: FAIL (log %s, ledger %s)\n", logp, ledger);
    sodium_memzero(ids, (size_t)o->branches * sizeof *ids);
    free(ids);
    fl_identity_destroy(&hq);
    return pass ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct s_opts o = {1000, 4, 3, 8, 2000, 120, NULL};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--branches"))
            o.branches = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--procs"))
            o.procs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            o.rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--in-dim"))
            o.in_dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--heartbeat-ms"))
            o.heartbeat_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--deadline"))
            o.deadline_s = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--coord-args"))
            o.extra = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_load [--branches 1000] [--procs 4] [--rounds 3] "
                            "[--in-dim 8] [--heartbeat-ms 2000] [--deadline 120] "
                            "[--coord-args \"...\"]\n");
            return 2;
        }
    }
    if (o.branches < 2 || o.branches > 100000 || o.procs < 1 || o.procs > S_MAXPROCS ||
        o.procs > o.branches || o.rounds < 1 || o.rounds > S_MAXR || o.in_dim < 1 ||
        o.heartbeat_ms < 10 || o.deadline_s < 1)
        return 2;
    if (sodium_init() < 0)
        return 1;
    fl_log_set_level(FL_LOG_WARN);
    s_fed_machine(stdout);
    long hard = -1, soft = s_fed_raise_nofile(&hard);
    int per = (o.branches + o.procs - 1) / o.procs;
    long need_child = (long)per * S_FD_PER + S_FD_SLACK, need_coord = o.branches + S_FD_SLACK;
    printf("bench=load_fd nofile_soft=%ld nofile_hard=%ld need_per_child=%ld need_coord=%ld\n",
           soft, hard, need_child, need_coord);
    if (soft < 0 || soft < need_child || soft < need_coord) {
        fprintf(stderr,
                "bench_load: the file-descriptor limit is too low: soft %ld (hard %ld) after "
                "raising, need %ld per branch process (%d sockets) and %ld for the coordinator. "
                "Raise the hard limit (ulimit -Hn, prlimit --nofile, LimitNOFILE=) or use more "
                "--procs.\n",
                soft, hard, need_child, per, need_coord);
        return 2;
    }
    char bin[1024];
    s_fed_bin_dir(bin, sizeof bin);
    char *dir = fl_test_tmpdir("load");
    if (!dir)
        return 1;
    int rc = s_run(&o, bin, dir, soft, hard);
    fl_test_rmtree(dir);
    free(dir);
    return rc;
}

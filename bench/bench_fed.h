/* bench_fed: helpers shared by the federation benchmarks (header only, like bench_common.h):
 * keys made with the real `fedtl keygen`, a real fedtl-coordinator process's CPU time from
 * /proc, memory high-water marks. Processes, scratch directories and ports come from the
 * harness the tests use (tests/fl_testutil.h). */
#ifndef FEDTL_BENCH_FED_H
#define FEDTL_BENCH_FED_H

#include "bench_common.h"
#include "fl_net.h"
#include "fl_seal.h"
#include "fl_testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Directory holding this executable (the build directory: fedtl and fedtl-coordinator live
 * next to the bench programs). */
static inline void s_fed_bin_dir(char *out, size_t len)
{
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, len, ".");
        return;
    }
    exe[n] = '\0';
    snprintf(out, len, "%s", dirname(exe));
}

/* Run a shell command; 0 when it exited 0 (what it printed is shown when it did not). */
static inline int s_fed_sh(const char *cmd)
{
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    if (rc != 0)
        fprintf(stderr, "bench: command failed (%d): %s\n%s", rc, cmd, out ? out : "");
    free(out);
    return rc == 0 ? 0 : -1;
}

/* Keys with the real tool: DIR/hq.key|.pub and DIR/<prefix>NNN.key|.pub for NNN < n, the
 * branches' .pub files copied into DIR/allow/. */
static inline int s_fed_keys(const char *bin, const char *dir, const char *prefix, int n)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && mkdir -p allow && %s/fedtl keygen --out hq --name hq >/dev/null && "
             "for i in $(seq -f %%03g 0 %d); do %s/fedtl keygen --out %s$i --name %s$i "
             ">/dev/null || exit 1; cp %s$i.pub allow/; done",
             dir, bin, n - 1, bin, prefix, prefix, prefix);
    return s_fed_sh(cmd);
}

/* The benchmarks' coordinator command: federation fed on ep, LoRA rank 4 on fc1 of an mlp
 * over classes 0-9, `rounds` rounds with all nb branches selected and needed, heartbeat_ms and
 * deadline_s; then the flags of `extra` (space-separated, may be NULL). argv is
 * NULL-terminated; its strings live in the struct. */
struct s_fed_cmd {
    char *argv[64];                                       /* fedtl-coordinator and its flags */
    char coord[1100], rounds[16], nb[16], hb[16], dl[16]; /* their text */
    char extra[512];                                      /* extra, cut at the blanks */
};

static inline void s_fed_coord_cmd(struct s_fed_cmd *c, const char *bin, const char *key,
                                   const char *allow, const char *base, const char *state,
                                   const char *ep, const char *fed, int rounds, int nb,
                                   int heartbeat_ms, int deadline_s, const char *extra)
{
    snprintf(c->coord, sizeof c->coord, "%s/fedtl-coordinator", bin);
    snprintf(c->rounds, sizeof c->rounds, "%d", rounds);
    snprintf(c->nb, sizeof c->nb, "%d", nb);
    snprintf(c->hb, sizeof c->hb, "%d", heartbeat_ms);
    snprintf(c->dl, sizeof c->dl, "%d", deadline_s);
    const char *fixed[] = {c->coord,  "--key",
                           key,       "--allow",
                           allow,     "--base",
                           base,      "--state-dir",
                           state,     "--endpoint",
                           ep,        "--federation",
                           fed,       "--method",
                           "lora",    "--targets",
                           "fc1",     "--rank",
                           "4",       "--classes",
                           "0-9",     "--heartbeat-ms",
                           c->hb,     "--rounds",
                           c->rounds, "--clients-per-round",
                           c->nb,     "--min-start",
                           c->nb,     "--min-clients",
                           c->nb,     "--deadline",
                           c->dl};
    int argc = 0;
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        c->argv[argc++] = (char *)fixed[k];
    snprintf(c->extra, sizeof c->extra, "%s", extra ? extra : "");
    for (char *save = NULL, *t = strtok_r(c->extra, " ", &save); t && argc < 63;
         t = strtok_r(NULL, " ", &save))
        c->argv[argc++] = t;
    c->argv[argc] = NULL;
}

/* A random mlp base of input size in_dim written to path; its content hash to hash. */
static inline int s_fed_write_base(const char *path, int in_dim, uint8_t hash[FL_HASH_BYTES])
{
    struct fl_base_file bf = {0};
    int rc = s_bench_random_base(path, "mlp", in_dim, 10, 0.0f, 1.0f, &bf);
    if (rc == 0)
        memcpy(hash, bf.hash, FL_HASH_BYTES);
    fl_base_close(&bf);
    return rc;
}

/* Say Hello as id on its DEALER sock: with base_hash (or NULL), signed over the Challenge c
 * when one came (else NULL: the coordinator answers with one). flags: 0 or ZMQ_DONTWAIT. */
static inline int s_fed_hello(void *sock, const struct fl_identity *id, const uint8_t *base_hash,
                              const Fedtl__Challenge *c, int flags)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Hello h = FEDTL__HELLO__INIT;
    uint8_t sig[FL_SIG_BYTES];
    h.branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)id->sign_pk};
    h.name = (char *)id->name;
    if (base_hash)
        h.base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, (uint8_t *)base_hash};
    h.samples = 100;
    if (c) {
        int rc = fl_sign_hello(id, c->federation, c->nonce.data, sig);
        if (rc)
            return rc;
        h.signature = (ProtobufCBinaryData){FL_SIG_BYTES, sig};
    }
    env.body_case = FEDTL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    return fl_net_send(sock, NULL, 0, &env, flags, NULL);
}

/* Answer a task as a branch of run run_id of federation fed would, on its DEALER sock: the
 * task's adapter bytes unchanged with fixed metrics, sealed and signed now by id. flags: 0 or
 * ZMQ_DONTWAIT. */
static inline int s_fed_answer(void *sock, const struct fl_identity *id, const char *fed,
                               const uint8_t run_id[FL_RUN_ID_BYTES], const Fedtl__RoundTask *t,
                               const uint8_t hq_box_pk[FL_BOX_PK_BYTES],
                               const uint8_t base_hash[FL_HASH_BYTES], int flags)
{
    Fedtl__UpdateBody body = FEDTL__UPDATE_BODY__INIT;
    body.adapter = t->adapter;
    body.samples = 100;
    body.train_loss = 0.5f;
    body.eval_loss = 0.6f;
    body.eval_accuracy = 0.75f;
    body.eval_samples = 10;
    uint8_t *plain = NULL;
    size_t plain_len;
    struct fl_sealed sealed = {0};
    int rc = fl_wire_encode_body(&body, &plain, &plain_len);
    if (rc == 0)
        rc = fl_seal_update(id, hq_box_pk, fed, run_id, t->round, base_hash, plain, plain_len,
                            &sealed);
    if (rc == 0)
        rc = fl_net_send_update(sock, &sealed, flags, NULL);
    free(plain);
    fl_sealed_free(&sealed);
    return rc;
}

/* CPU time of a process from /proc: *all_s over every thread (utime + stime of
 * /proc/PID/stat, clock ticks), *main_s of its main thread and *other_s of the others
 * (nanoseconds from /proc/PID/task/TID/schedstat). 0 or -1. */
static inline int s_fed_cpu(pid_t pid, double *all_s, double *main_s, double *other_s)
{
    char path[128], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    *all_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    *main_s = *other_s = 0;
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char sp[300];
        snprintf(sp, sizeof sp, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *g = fopen(sp, "r");
        unsigned long long ns = 0;
        if (g) {
            if (fscanf(g, "%llu", &ns) != 1)
                ns = 0;
            fclose(g);
        }
        if (atoi(e->d_name) == (int)pid)
            *main_s += (double)ns * 1e-9;
        else
            *other_s += (double)ns * 1e-9;
    }
    closedir(d);
    return 0;
}

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; the new soft limit, or -1. */
static inline long s_fed_raise_nofile(long *hard)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    *hard = rl.rlim_max == RLIM_INFINITY ? -1 : (long)rl.rlim_max;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}

/* "Max open files" soft limit of a process, from /proc/PID/limits; -1 if unknown. */
static inline long s_fed_proc_nofile(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Max open files", 14) == 0) {
            v = strncmp(line + 26, "unlimited", 9) == 0 ? LONG_MAX : atol(line + 26);
            break;
        }
    fclose(f);
    return v;
}

/* Open descriptors of a process, or -1. */
static inline int s_fed_proc_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A "VmHWM:"-style field of /proc/PID/status (pid 0: this process) in KiB, or -1. */
static inline long s_fed_proc_status_kb(pid_t pid, const char *field)
{
    return fl_test_proc_status_kb(pid, field);
}

/* TcpExt ListenOverflows of /proc/net/netstat (machine-wide): connections dropped because a
 * listener's accept queue (ZMQ_BACKLOG, 100 by default) was full; -1 if unknown. */
static inline long s_fed_listen_overflows(void)
{
    FILE *f = fopen("/proc/net/netstat", "r");
    if (!f)
        return -1;
    char names[4096], values[4096];
    long v = -1;
    while (fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
        if (strncmp(names, "TcpExt:", 7) != 0)
            continue;
        char *sn = NULL, *sv = NULL;
        for (char *n = strtok_r(names, " \n", &sn), *x = strtok_r(values, " \n", &sv); n && x;
             n = strtok_r(NULL, " \n", &sn), x = strtok_r(NULL, " \n", &sv))
            if (strcmp(n, "ListenOverflows") == 0)
                v = atol(x);
    }
    fclose(f);
    return v;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs). */
static inline int s_fed_reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int rc = fputs("5", f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* Parse a comma list of positive integers into v (at most max); the count. */
static inline int s_fed_parse_list(const char *s, long *v, int max)
{
    int n = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < max;
         t = strtok_r(NULL, ",", &save))
        v[n++] = atol(t);
    return n;
}

/* Machine facts for the report: nproc and the CPU model. */
static inline void s_fed_machine(FILE *out)
{
    char model[256] = "?", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        fclose(f);
    }
    double la[3] = {0};
    if (getloadavg(la, 3) < 0)
        la[0] = -1;
    fprintf(out, "bench=machine nproc=%ld cpu=\"%s\" loadavg=%.2f\n", sysconf(_SC_NPROCESSORS_ONLN),
            model, la[0]);
}

#endif

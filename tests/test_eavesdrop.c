/* What a passive eavesdropper on the wire sees: a small federation (scripts/simulate.sh, two
 * branches, two rounds, an mlp base on synthetic data) runs on loopback while tshark records
 * the run's own port; the test then reassembles each TCP direction of each connection from the
 * pcap and searches it for plaintext that must not cross the wire.
 *
 * With CurveZMQ (the default) none of it is there: no 16-byte run of the final global adapter's
 * float32 tensors (sent in FinalModel), no federation name (Welcome), no branch name (Hello), no
 * adapter magic or tensor name. With --insecure the same search finds them downstream (so the
 * search can fail), while upstream, where each update travels as a sealed box, there is still
 * no adapter magic and no tensor name: the UpdateBody stays opaque without CURVE.
 *
 * Needs tshark (apt-get install tshark) and the right to capture on lo; skipped otherwise. */
#include <criterion/criterion.h>

#include "fl_modelfile.h"
#include "fl_rng.h"
#include "fl_testutil.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_STREAMS 64
#define NWIN        6  /* tensor windows searched for */
#define WIN_BYTES   16 /* bytes per window: four float32 */

/* One direction of one TCP connection, payloads concatenated in capture order. */
struct s_stream {
    uint16_t peer_port; /* the branch's (ephemeral) port */
    bool up;            /* branch -> coordinator */
    uint8_t *buf;       /* payload bytes */
    size_t len;         /* bytes in buf */
    size_t cap;         /* allocated */
};

struct s_capture {
    struct s_stream s[MAX_STREAMS]; /* streams seen */
    int n;                          /* streams used */
    size_t bytes_up, bytes_down;    /* payload bytes per direction */
};

static char *s_dir;

/* Four Gaussian classes in 20 dimensions, label first (the CSV layout fedtl reads). */
static void s_write_blobs(const char *path, int n)
{
    struct fl_rng r;
    fl_rng_seed(&r, 77);
    double centre[4][20];
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 20; j++)
            centre[k][j] = fl_rng_normal(&r) * 1.2;
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    for (int i = 0; i < n; i++) {
        int k = (int)fl_rng_below(&r, 4);
        fprintf(fp, "%d", k);
        for (int j = 0; j < 20; j++)
            fprintf(fp, ",%.4f", centre[k][j] + fl_rng_normal(&r) * 1.6);
        fprintf(fp, "\n");
    }
    fclose(fp);
}

/* Skip unless tshark exists; then synthetic data and an mlp base on classes 0-1. */
static void s_setup(void)
{
    char *out = NULL;
    int rc = fl_test_run("command -v tshark", &out);
    free(out);
    if (rc != 0)
        cr_skip_test("tshark is not installed (apt-get install tshark)");
    s_dir = fl_test_tmpdir("eve");
    cr_assert_not_null(s_dir);
    char path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/blobs.csv", s_dir);
    s_write_blobs(path, 1200);
    snprintf(cmd, sizeof cmd,
             "%s/fedtl pretrain --data %s/blobs.csv --classes 0-1 --arch mlp --epochs 2 "
             "--threads 1 --quiet --out %s/base.ftm",
             FEDTL_BIN_DIR, s_dir, s_dir);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out ? out : "");
    free(out);
}

static void s_teardown(void)
{
    if (s_dir && !getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

/* Start tshark on lo for tcp port `port`, writing pcap to `pcap`; returns its pid once the
 * capture has started, or skips the test when capturing on lo is not permitted here. */
static pid_t s_tshark_start(int port, const char *pcap)
{
    char cmd[2048], log[1024];
    snprintf(log, sizeof log, "%s/tshark-%d.log", s_dir, port);
    snprintf(cmd, sizeof cmd, "exec tshark -i lo -f 'tcp port %d' -F pcap -w '%s' -q", port, pcap);
    pid_t pid = fl_test_spawn(cmd, log);
    cr_assert_gt(pid, 0);
    for (int i = 0; i < 200; i++) { /* 10 s */
        struct stat st;
        if (stat(pcap, &st) == 0 && st.st_size >= 24 && fl_test_count(log, "Capture started"))
            return pid;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) { /* tshark gave up: not permitted here */
            char *why = fl_test_slurp(log);
            s_teardown(); /* .fini does not run after a skip */
            cr_skip_test("cannot capture on lo: %s", why ? why : "(no message)");
        }
        usleep(50000);
    }
    kill(pid, SIGKILL);
    fl_test_wait(pid, 5);
    s_teardown();
    cr_skip_test("tshark did not start capturing on lo within 10 s");
    return -1;
}

static void s_tshark_stop(pid_t pid)
{
    kill(pid, SIGINT);
    int rc = fl_test_wait(pid, 15);
    cr_assert(rc == 0 || rc == 128 + SIGINT, "tshark ended with %d", rc);
}

static struct s_stream *s_stream_for(struct s_capture *c, uint16_t peer_port, bool up)
{
    for (int i = 0; i < c->n; i++)
        if (c->s[i].peer_port == peer_port && c->s[i].up == up)
            return &c->s[i];
    cr_assert_lt(c->n, MAX_STREAMS, "more TCP connections than expected");
    struct s_stream *s = &c->s[c->n++];
    memset(s, 0, sizeof *s);
    s->peer_port = peer_port;
    s->up = up;
    return s;
}

static void s_append(struct s_capture *c, uint16_t peer_port, bool up, const uint8_t *p, size_t n)
{
    struct s_stream *s = s_stream_for(c, peer_port, up);
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->buf = realloc(s->buf, s->cap);
        cr_assert_not_null(s->buf);
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    *(up ? &c->bytes_up : &c->bytes_down) += n;
}

static uint16_t s_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* One captured frame: link header, IPv4 or IPv6, TCP; payload appended to its stream. */
static void s_frame(struct s_capture *c, uint32_t linktype, const uint8_t *p, size_t n, int port)
{
    size_t off;
    uint16_t ethertype;
    if (linktype == 1) { /* Ethernet: what Linux gives for lo */
        if (n < 14)
            return;
        ethertype = s_be16(p + 12);
        off = 14;
    } else if (linktype == 113) { /* Linux cooked v1 */
        if (n < 16)
            return;
        ethertype = s_be16(p + 14);
        off = 16;
    } else if (linktype == 276) { /* Linux cooked v2 */
        if (n < 20)
            return;
        ethertype = s_be16(p);
        off = 20;
    } else {
        cr_assert_fail("pcap link type %u not handled", linktype);
        return;
    }
    size_t ip_end;
    if (ethertype == 0x0800) {
        if (n < off + 20 || p[off + 9] != 6)
            return;
        size_t ihl = (size_t)(p[off] & 0x0f) * 4;
        ip_end = off + s_be16(p + off + 2);
        off += ihl;
    } else if (ethertype == 0x86dd) {
        if (n < off + 40 || p[off + 6] != 6)
            return;
        ip_end = off + 40 + s_be16(p + off + 4);
        off += 40;
    } else {
        return;
    }
    if (ip_end > n) /* truncated by the snap length: would be a hole in the stream */
        cr_assert_fail("captured frame truncated (%zu of %zu bytes)", n, ip_end);
    if (ip_end < off + 20)
        return;
    uint16_t sport = s_be16(p + off), dport = s_be16(p + off + 2);
    size_t thl = (size_t)(p[off + 12] >> 4) * 4;
    if (off + thl > ip_end)
        return;
    bool up = dport == port;
    if (!up && sport != port)
        return;
    if (ip_end > off + thl)
        s_append(c, up ? sport : dport, up, p + off + thl, ip_end - off - thl);
}

/* Read a libpcap file (written on this machine: native byte order). */
static void s_read_pcap(const char *path, int port, struct s_capture *c)
{
    memset(c, 0, sizeof *c);
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "%s", path);
    uint8_t gh[24];
    cr_assert_eq(fread(gh, 1, 24, fp), 24u);
    uint32_t magic, linktype;
    memcpy(&magic, gh, 4);
    memcpy(&linktype, gh + 20, 4);
    cr_assert(magic == 0xa1b2c3d4u || magic == 0xa1b23c4du, "not a native pcap: %08x", magic);
    uint8_t rh[16];
    uint8_t *frame = NULL;
    while (fread(rh, 1, 16, fp) == 16) {
        uint32_t incl;
        memcpy(&incl, rh + 8, 4);
        cr_assert_leq(incl, 1u << 20, "implausible pcap record");
        frame = realloc(frame, incl ? incl : 1);
        cr_assert_not_null(frame);
        cr_assert_eq(fread(frame, 1, incl, fp), incl, "pcap truncated");
        s_frame(c, linktype, frame, incl, port);
    }
    free(frame);
    fclose(fp);
}

static void s_capture_free(struct s_capture *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->s[i].buf);
    memset(c, 0, sizeof *c);
}

/* Occurrences of needle in the streams of one direction. */
static int s_found(const struct s_capture *c, bool up, const void *needle, size_t n)
{
    int hits = 0;
    for (int i = 0; i < c->n; i++) {
        const struct s_stream *s = &c->s[i];
        if (s->up != up || s->len < n)
            continue;
        for (size_t j = 0; j + n <= s->len; j++)
            if (memcmp(s->buf + j, needle, n) == 0)
                hits++;
    }
    return hits;
}

static int s_found_str(const struct s_capture *c, bool up, const char *needle)
{
    return s_found(c, up, needle, strlen(needle));
}

/* NWIN 16-byte windows from the middle of the final global adapter's trained tensors, each
 * of four distinct non-zero floats (zeros would match padding anywhere). */
static void s_windows(const char *global, uint8_t win[NWIN][WIN_BYTES])
{
    struct fl_adapter_file a = {0};
    cr_assert_eq(fl_adapter_read(global, &a), 0, "%s", global);
    static const char *names[] = {"fc1.lora_B", "fc2.lora_B", "head.weight"};
    int got = 0;
    for (size_t t = 0; t < 3; t++) {
        const struct fl_tensor *ts = fl_adapter_tensor(&a, names[t]);
        cr_assert_not_null(ts, "%s has no %s", global, names[t]);
        size_t numel = fl_tensor_numel(ts);
        int here = 0;
        for (size_t i = numel / 2; i + 4 <= numel && here < NWIN / 3; i += 8) {
            const float *f = ts->data + i;
            if (f[0] == 0 || f[1] == 0 || f[2] == 0 || f[3] == 0 || f[0] == f[1] || f[1] == f[2] ||
                f[2] == f[3])
                continue;
            memcpy(win[got++], f, WIN_BYTES);
            here++;
        }
        cr_assert_eq(here, NWIN / 3, "%s: too few non-zero values in %s", global, names[t]);
    }
    fl_adapter_close(&a);
}

/* Run the federation under capture; leaves the reassembled streams in *c and the tensor
 * windows of the final global adapter in win. */
static void s_run_captured(const char *run, int port, const char *extra, struct s_capture *c,
                           uint8_t win[NWIN][WIN_BYTES])
{
    char pcap[1024], cmd[8192], *out = NULL;
    snprintf(pcap, sizeof pcap, "%s/%s.pcap", s_dir, run);
    pid_t tshark = s_tshark_start(port, pcap);
    snprintf(cmd, sizeof cmd,
             "FEDTL_BIN=%s %s/scripts/simulate.sh --run %s/%s --base %s/base.ftm "
             "--data %s/blobs.csv --test %s/blobs.csv --base-classes 0-1 --classes 2-3 "
             "--branches 2 --rounds 2 --samples 400 --alpha 0 --epochs 1 --deadline 30 "
             "--port %d --quiet %s",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, s_dir, run, s_dir, s_dir, s_dir, port, extra);
    int rc = fl_test_run(cmd, &out);
    usleep(300000); /* the last segments reach the capture */
    s_tshark_stop(tshark);
    cr_assert_eq(rc, 0, "%s", out ? out : "");
    free(out);
    s_read_pcap(pcap, port, c);
    char global[1024], base[1024];
    snprintf(global, sizeof global, "%s/%s/state/global.fta", s_dir, run);
    s_windows(global, win);
    /* The capture saw the run: at least the base download went downstream. */
    struct stat st;
    snprintf(base, sizeof base, "%s/base.ftm", s_dir);
    cr_assert_eq(stat(base, &st), 0);
    cr_assert_geq(c->bytes_down, (size_t)st.st_size, "captured only %zu bytes downstream",
                  c->bytes_down);
    cr_assert_gt(c->bytes_up, 0u);
}

/* Markers of the adapter file format (magic, tensor names) and of the plaintext fields. */
static const char *s_adapter_marks[] = {"FEDTLAD\n", "fc1.lora_B", "head.weight"};
static const char *s_names[] = {"simulation", "branch-00", "branch-01"};

static int s_port(int k)
{
    return 30000 + (int)((getpid() * 13) % 15000) * 2 + k;
}

Test(eavesdrop, curve_hides_tensors_and_names, .init = s_setup, .fini = s_teardown, .timeout = 180)
{
    struct s_capture c;
    uint8_t win[NWIN][WIN_BYTES];
    s_run_captured("curve", s_port(0), "", &c, win);
    /* It really is CURVE on the wire (the ZMTP greeting names the mechanism in the clear). */
    cr_assert_gt(s_found_str(&c, true, "CURVE"), 0);
    for (int up = 0; up < 2; up++) {
        for (int w = 0; w < NWIN; w++)
            cr_assert_eq(s_found(&c, up, win[w], WIN_BYTES), 0,
                         "tensor window %d of the global adapter seen %s", w,
                         up ? "upstream" : "downstream");
        for (size_t i = 0; i < sizeof s_names / sizeof *s_names; i++)
            cr_assert_eq(s_found_str(&c, up, s_names[i]), 0, "\"%s\" seen in the clear",
                         s_names[i]);
        for (size_t i = 0; i < sizeof s_adapter_marks / sizeof *s_adapter_marks; i++)
            cr_assert_eq(s_found_str(&c, up, s_adapter_marks[i]), 0,
                         "adapter marker \"%s\" seen in the clear", s_adapter_marks[i]);
    }
    s_capture_free(&c);
}

Test(eavesdrop, insecure_shows_tasks_and_names_but_not_sealed_updates, .init = s_setup,
     .fini = s_teardown, .timeout = 180)
{
    struct s_capture c;
    uint8_t win[NWIN][WIN_BYTES];
    s_run_captured("insecure", s_port(1), "--insecure", &c, win);
    cr_assert_eq(s_found_str(&c, true, "CURVE"), 0);
    /* The search works: FinalModel carries the global adapter, Welcome the federation name,
     * Hello the branch names, all readable without CURVE. */
    for (int w = 0; w < NWIN; w++)
        cr_assert_gt(s_found(&c, false, win[w], WIN_BYTES), 0,
                     "tensor window %d of the global adapter not found downstream", w);
    cr_assert_gt(s_found_str(&c, false, "simulation"), 0);
    cr_assert_gt(s_found_str(&c, true, "branch-00"), 0);
    cr_assert_gt(s_found_str(&c, true, "branch-01"), 0);
    for (size_t i = 0; i < sizeof s_adapter_marks / sizeof *s_adapter_marks; i++) {
        /* two rounds of RoundTask and a FinalModel for each of two branches */
        cr_assert_geq(s_found_str(&c, false, s_adapter_marks[i]), 6, "%s", s_adapter_marks[i]);
        /* every update went up as a sealed box: no adapter file in the clear */
        cr_assert_eq(s_found_str(&c, true, s_adapter_marks[i]), 0,
                     "adapter marker \"%s\" seen upstream: an update left unsealed",
                     s_adapter_marks[i]);
    }
    s_capture_free(&c);
}

/* The --http pages of real programs in a real federation on loopback: fedtl-coordinator's
 * /metrics (checked by promtool and by value), its status page as headless Chromium renders it
 * (branch names, rounds, the chart's points), /status.json, fedtl-client's /metrics; and HTTP
 * clients that misbehave (many idle or half-sent connections, oversized requests, other
 * methods, unknown paths, a branch named <script>) while the federation goes on. */
#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_error.h"
#include "fl_http.h"
#include "fl_prom.h"
#include "fl_testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define NB          3
#define ROUNDS      40
#define SCRIPT_NAME "<script>alert(1)</script>"

static const char *const s_names[NB] = {"lisbon", "porto", SCRIPT_NAME};

struct s_fed {
    struct fl_test_fed t; /* the federation: scratch directory, ZeroMQ port, processes */
    int http;             /* coordinator's HTTP port */
    int branch_http;      /* branch 0's HTTP port */
};

/* Keys (the third branch named <script>...), data, a base, shards; the coordinator with
 * --http, then the three branches (branch 0 with --http too). */
static void s_start(struct s_fed *f)
{
    memset(f, 0, sizeof *f);
    /* train.csv and test.csv of four Gaussian classes in 20 dimensions */
    const struct fl_test_fed_opts o = {
        .test_rows = 1200,
        .names = {s_names[0], s_names[1], s_names[2]},
        .shards = "--data train.csv --classes 1-3 --samples 900",
    };
    char *why = NULL;
    int rc = fl_test_fed_setup_opts(&f->t, "http", NB, &o, FEDTL_BIN_DIR, &why);
    cr_assert_eq(rc, 0, "%s", why ? why : "");
    free(why);
    f->http = fl_test_free_port();
    f->branch_http = fl_test_free_port();
    char cmd[4096], log[1024];
    /* Every round waits for all three (min_clients 3) for as long as the test needs. */
    snprintf(cmd, sizeof cmd,
             "cd %s && exec %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--state-dir state --endpoint tcp://127.0.0.1:%d --classes 1-3 --method lora "
             "--epochs 1 --heartbeat-ms 200 --eval-data test.csv --threads 1 --rounds %d "
             "--min-start 3 --min-clients 3 --deadline 600 --http 127.0.0.1:%d",
             f->t.dir, FEDTL_BIN_DIR, f->t.port, ROUNDS, f->http);
    snprintf(log, sizeof log, "%s/coord.log", f->t.dir);
    f->t.coord = fl_test_spawn(cmd, log);
    cr_assert_gt(f->t.coord, 0);
    for (int i = 0; i < NB; i++) {
        char extra[64] = "";
        if (i == 0)
            snprintf(extra, sizeof extra, "--http 127.0.0.1:%d", f->branch_http);
        snprintf(cmd, sizeof cmd,
                 "cd %s && exec %s/fedtl-client --coordinator tcp://127.0.0.1:%d "
                 "--coordinator-key hq.pub --key b%d.key --data shards/client-%02d.csv "
                 "--cache-dir cache%d --out final%d.fta --threads 1 --connect-timeout 30 %s",
                 f->t.dir, FEDTL_BIN_DIR, f->t.port, i, i, i, i, extra);
        snprintf(log, sizeof log, "%s/b%d.log", f->t.dir, i);
        f->t.branch[i] = fl_test_spawn(cmd, log);
        cr_assert_gt(f->t.branch[i], 0);
    }
}

static void s_stop(struct s_fed *f)
{
    for (int i = 0; i < NB; i++)
        if (f->t.branch[i] > 0)
            kill(f->t.branch[i], SIGCONT);
    fl_test_fed_teardown(&f->t);
}

/* SIGTERM the coordinator: it must stop cleanly (and, under ASan, without a leak). */
static void s_stop_coord(struct s_fed *f)
{
    kill(f->t.coord, SIGTERM);
    int rc = fl_test_wait(f->t.coord, 60);
    f->t.coord = 0;
    cr_assert_eq(rc, 0, "the coordinator exited %d on SIGTERM", rc);
}

/* ---- a plain HTTP client ---- */

/* A connection to the loopback port; -1 when refused or not accepted within timeout_s. */
static int s_connect(int port, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = timeout_s}; /* connect() too, on Linux */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* An answer: the status (0: none, the connection closed first), headers and body. */
struct s_reply {
    int status; /* HTTP status */
    char *head; /* status line and headers (malloc'd) */
    char *body; /* body (malloc'd, NUL-terminated) */
};

static void s_reply_free(struct s_reply *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Send request (len bytes) and read the answer until the server closes. */
static struct s_reply s_raw(int port, const char *request, size_t len)
{
    struct s_reply r = {0};
    int fd = s_connect(port, 20);
    cr_assert_geq(fd, 0, "cannot connect to 127.0.0.1:%d", port);
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close before reading it all */
        off += (size_t)n;
    }
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap + 1);
    cr_assert_not_null(buf);
    for (;;) {
        if (got == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1)
        r.status = 0;
    r.head = strndup(buf, sep ? (size_t)(sep - buf) : got);
    r.body = strdup(sep ? sep + 4 : "");
    free(buf);
    return r;
}

static struct s_reply s_request(int port, const char *method, const char *path)
{
    char req[1024];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                 method, path);
    return s_raw(port, req, (size_t)n);
}

/* GET path: 200 expected; the body (malloc'd). */
static char *s_get(int port, const char *path)
{
    struct s_reply r = s_request(port, "GET", path);
    cr_assert_eq(r.status, 200, "GET %s: status %d\n%s", path, r.status, r.head);
    char *body = r.body;
    r.body = NULL;
    s_reply_free(&r);
    return body;
}

/* The value of the sample `series` (a name, or name{labels} as written) in a /metrics page;
 * -1 when it is absent. */
static double s_metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; *line;) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        const char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
    return -1;
}

/* promtool's verdict on a /metrics page (skipped, with a message, without promtool). */
static void s_promtool(struct s_fed *f, const char *text, const char *name)
{
    if (fl_test_run("command -v promtool >/dev/null", NULL) != 0) {
        cr_log_warn("promtool not found (Debian package prometheus; scripts/deps.sh test): the "
                    "exposition format of %s is not checked by it",
                    name);
        return;
    }
    char path[1024], cmd[2048];
    snprintf(path, sizeof path, "%s/%s.prom", f->t.dir, name);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "promtool check metrics on %s:\n%s", name, out ? out : "");
    free(out);
}

static int s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Wait until the port takes connections (the program is up). */
static void s_wait_listening(int port)
{
    for (int i = 0; i < 1200; i++) {
        int fd = s_connect(port, 2);
        if (fd >= 0) {
            close(fd);
            return;
        }
        usleep(50000);
    }
    cr_assert_fail("nothing listens on 127.0.0.1:%d", port);
}

/* Wait until the coordinator has completed at least `rounds` rounds; the value then. */
static int s_wait_rounds(struct s_fed *f, int rounds)
{
    s_wait_listening(f->http);
    for (int i = 0; i < 1200; i++) {
        char *m = s_get(f->http, "/metrics");
        double v = s_metric(m, "fedtl_rounds_completed_total");
        free(m);
        if (v >= rounds)
            return (int)v;
        usleep(25000);
    }
    cr_assert_fail("the coordinator did not complete %d rounds", rounds);
    return -1;
}

/* The branch named `name` in /status.json, as a detached cJSON object (or NULL). */
static cJSON *s_branch(cJSON *status, const char *name)
{
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(status, "branches"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(b, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return (cJSON *)b;
    }
    return NULL;
}

/* Stop branch 2 (SIGSTOP) and wait until the coordinator has not heard from it for 5
 * heartbeats: nothing of it is in flight, and the open round waits for its update (deadline
 * 600 s), so the federation holds still. */
static cJSON *s_freeze(struct s_fed *f)
{
    kill(f->t.branch[2], SIGSTOP);
    for (int i = 0; i < 1200; i++) {
        char *text = s_get(f->http, "/status.json");
        cJSON *st = cJSON_Parse(text);
        free(text);
        cr_assert_not_null(st, "/status.json is not JSON");
        const cJSON *b = s_branch(st, SCRIPT_NAME);
        const cJSON *ago = cJSON_GetObjectItemCaseSensitive(b, "last_seen_s_ago");
        const cJSON *phase = cJSON_GetObjectItemCaseSensitive(st, "phase");
        if (cJSON_IsNumber(ago) && ago->valuedouble > 1.0 && cJSON_IsString(phase) &&
            strcmp(phase->valuestring, "round") == 0)
            return st;
        cJSON_Delete(st);
        usleep(50000);
    }
    cr_assert_fail("the federation did not hold still with branch 2 stopped");
    return NULL;
}

/* Headless Chromium on url: the DOM it rendered (malloc'd), or with screenshot, a PNG of the
 * page written there (and what it printed). */
static char *s_chromium(struct s_fed *f, const char *url, const char *screenshot)
{
    cr_assert_eq(fl_test_run("command -v chromium >/dev/null", NULL), 0,
                 "chromium not found (Debian package chromium; scripts/deps.sh test installs it)");
    char cmd[4096];
    /* --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start; and containers
     * have a small /dev/shm. Its chatter goes to chromium.log, the DOM to stdout. */
    snprintf(cmd, sizeof cmd,
             "HOME=%s timeout 120 chromium --headless --no-sandbox --disable-gpu "
             "--disable-dev-shm-usage --user-data-dir=%s/chromium --hide-scrollbars "
             "--window-size=1000,1050 %s%s %s 2>>%s/chromium.log",
             f->t.dir, f->t.dir, screenshot ? "--screenshot=" : "--dump-dom",
             screenshot ? screenshot : "", url, f->t.dir);
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    if (rc != 0) {
        char log[1024];
        snprintf(log, sizeof log, "%s/chromium.log", f->t.dir);
        char *text = fl_test_slurp(log);
        cr_assert_fail("%s: exit %d\n%s\n%s", cmd, rc, out ? out : "", text ? text : "");
    }
    return out;
}

/* ---- the pages in a federation ---- */

static void s_check_status_page(struct s_fed *f, int completed)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", f->http);
    char *dom = s_chromium(f, url, NULL);
    cr_assert(strstr(dom, "<td class=\"name\">lisbon</td>"), "no lisbon in\n%s", dom);
    cr_assert(strstr(dom, "<td class=\"name\">porto</td>"), "no porto in\n%s", dom);
    /* The name is text in the rendered page, never an element. */
    cr_assert(strstr(dom, "<td class=\"name\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
              "the <script> branch is not shown as text:\n%s", dom);
    cr_assert_null(strstr(dom, "<script"), "a script element in the page:\n%s", dom);
    /* A row per round attempt and, per committed round, a point of each series. */
    cr_assert_eq(s_count(dom, "class=\"point fed\""), completed, "%s", dom);
    cr_assert_eq(s_count(dom, "class=\"point srv\""), completed, "%s", dom);
    for (int k = 1; k <= completed; k++) {
        char row[64], point[64];
        snprintf(row, sizeof row, "<tr class=\"round\" data-round=\"%d\">", k);
        snprintf(point, sizeof point, "data-round=\"%d\" data-accuracy=\"", k);
        cr_assert(strstr(dom, row), "no row for round %d:\n%s", k, dom);
        cr_assert_eq(s_count(dom, point), 2, "round %d's points:\n%s", k, dom);
    }
    /* The open round first, with the two updates it has. */
    char open[256];
    snprintf(open, sizeof open,
             "<tr class=\"round open\" data-round=\"%d\"><td class=\"n\">%d</td><td>open</td>"
             "<td class=\"n\">3</td><td class=\"n\">2</td>",
             completed + 1, completed + 1);
    cr_assert(strstr(dom, open), "no open round %d:\n%s", completed + 1, dom);
    char phase[64];
    snprintf(phase, sizeof phase, "<b id=\"completed\">%d</b>", completed);
    cr_assert(strstr(dom, phase), "%s", dom);
    free(dom);

    char shot[1024];
    snprintf(shot, sizeof shot, "%s/status-page.png", f->t.dir);
    free(s_chromium(f, url, shot));
    char *png = fl_test_slurp(shot);
    cr_assert(png && strncmp(png + 1, "PNG", 3) == 0, "no screenshot at %s", shot);
    free(png);
    const char *keep = getenv("FEDTL_STATUS_SCREENSHOT"); /* docs/status-page.png */
    if (keep) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cp %s %s", shot, keep);
        cr_assert_eq(fl_test_run(cmd, NULL), 0);
    }
}

Test(fl_http, federation_pages, .timeout = 600)
{
    struct s_fed f;
    s_start(&f);
    /* Before any round: the page answers, nothing is made up. */
    s_wait_rounds(&f, 0);
    char *m0 = s_get(f.http, "/metrics");
    s_promtool(&f, m0, "coordinator-start");
    cr_assert_eq(s_metric(m0, "fedtl_branches_enrolled"), NB);
    cr_assert_eq(s_metric(m0, "fedtl_rounds_target"), ROUNDS);
    cr_assert_eq(s_metric(m0, "fedtl_dp_epsilon"), -1, "no DP yet: no epsilon");
    free(m0);

    /* Rounds complete while we watch; then branch 2 stops and the federation holds. */
    s_wait_rounds(&f, 6);
    cJSON *st = s_freeze(&f);
    int completed = cJSON_GetObjectItemCaseSensitive(st, "completed")->valueint;
    cr_assert(completed >= 1 && completed < ROUNDS, "completed %d", completed);
    const cJSON *open = cJSON_GetObjectItemCaseSensitive(st, "open_round");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(open, "round")->valueint, completed + 1);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(open, "selected")->valueint, NB);
    cJSON_Delete(st);
    /* The other two have answered the open round (each of them in milliseconds). */
    for (int i = 0; i < 600; i++) {
        char *text = s_get(f.http, "/metrics");
        double accepted = s_metric(text, "fedtl_updates_accepted_total");
        free(text);
        if (accepted >= NB * completed + 2)
            break;
        usleep(50000);
    }

    char *m = s_get(f.http, "/metrics");
    s_promtool(&f, m, "coordinator");
    cr_assert_eq(s_metric(m, "fedtl_rounds_completed_total"), completed);
    cr_assert_eq(s_metric(m, "fedtl_round_current"), completed + 1);
    cr_assert_eq(s_metric(m, "fedtl_round_phase{phase=\"round\"}"), 1);
    cr_assert_eq(s_metric(m, "fedtl_branches_connected"), NB);
    /* Every committed round took one update of each branch; the open one has two so far. */
    cr_assert_eq(s_metric(m, "fedtl_updates_accepted_total"), NB * completed + 2, "%s", m);
    cr_assert_eq(s_metric(m, "fedtl_updates_rejected_total{reason=\"stale\"}"), 0);
    cr_assert_eq(s_metric(m, "fedtl_round_duration_seconds_count"), completed);
    cr_assert_eq(s_metric(m, "fedtl_update_intake_duration_seconds_count"), NB * completed + 2);
    cr_assert_eq(s_metric(m, "fedtl_base_downloads_total"), NB);
    cr_assert_gt(s_metric(m, "fedtl_base_sent_bytes_total"), 10000);
    cr_assert_gt(s_metric(m, "fedtl_received_bytes_total"), 0);
    cr_assert_gt(s_metric(m, "fedtl_sent_bytes_total"), s_metric(m, "fedtl_base_sent_bytes_total"));
    double acc = s_metric(m, "fedtl_server_accuracy_ratio");
    cr_assert(acc > 0.5 && acc <= 1, "server accuracy %g", acc);
    acc = s_metric(m, "fedtl_federated_accuracy_ratio");
    cr_assert(acc > 0.5 && acc <= 1, "federated accuracy %g", acc);
    free(m);

    /* The branch's own page, while it waits for the next task (once the receipt for its
     * update to the open round has come). */
    char *bm = NULL;
    for (int i = 0; i < 600; i++) {
        free(bm);
        bm = s_get(f.branch_http, "/metrics");
        if (s_metric(bm, "fedtl_branch_updates_accepted_total") >= completed + 1)
            break;
        usleep(50000);
    }
    s_promtool(&f, bm, "branch");
    cr_assert_eq(s_metric(bm, "fedtl_branch_rounds_joined_total"), completed + 1, "%s", bm);
    cr_assert_eq(s_metric(bm, "fedtl_branch_updates_accepted_total"), completed + 1, "%s", bm);
    cr_assert_eq(s_metric(bm, "fedtl_branch_training_duration_seconds_count"), completed + 1);
    acc = s_metric(bm, "fedtl_branch_holdout_accuracy_ratio");
    cr_assert(acc > 0 && acc <= 1, "held-out accuracy %g", acc);
    cr_assert_gt(s_metric(bm, "fedtl_branch_received_bytes_total"), 10000);
    cr_assert_gt(s_metric(bm, "fedtl_branch_sent_update_bytes_total"), 0);
    free(bm);

    s_check_status_page(&f, completed);

    /* Let it finish: every round counted, each with three updates. */
    kill(f.t.branch[2], SIGCONT);
    for (int i = 0; i < NB; i++) {
        int rc = fl_test_wait(f.t.branch[i], 300);
        f.t.branch[i] = 0;
        cr_assert_eq(rc, 0, "branch %d exited %d", i, rc);
    }
    m = s_get(f.http, "/metrics");
    s_promtool(&f, m, "coordinator-done");
    cr_assert_eq(s_metric(m, "fedtl_rounds_completed_total"), ROUNDS);
    cr_assert_eq(s_metric(m, "fedtl_round_phase{phase=\"done\"}"), 1);
    cr_assert_eq(s_metric(m, "fedtl_updates_accepted_total"), NB * ROUNDS);
    free(m);
    s_stop_coord(&f);
    s_stop(&f);
}

/* ---- hostile HTTP clients ---- */

Test(fl_http, hostile_clients, .timeout = 600)
{
    struct s_fed f;
    s_start(&f);
    s_wait_rounds(&f, 0);
    /* Far more connections than the server takes, idle or with half a request, held while
     * the whole federation runs. */
    enum { NCONN = 64 };
    int held[NCONN];
    for (int i = 0; i < NCONN; i++) {
        held[i] = s_connect(f.http, 2);
        if (held[i] >= 0 && i % 2)
            send(held[i], "GET /metr", 9, MSG_NOSIGNAL);
    }
    for (int i = 0; i < NB; i++) {
        int rc = fl_test_wait(f.t.branch[i], 300);
        f.t.branch[i] = 0;
        cr_assert_eq(rc, 0, "branch %d exited %d while HTTP was flooded", i, rc);
    }
    char log[1024];
    snprintf(log, sizeof log, "%s/coord.log", f.t.dir);
    cr_assert_eq(fl_test_count(log, "event=federation_done"), 1);
    for (int i = 0; i < NCONN; i++)
        if (held[i] >= 0)
            close(held[i]);

    /* The server answers again (once it has seen those connections close), with the whole
     * federation counted. */
    struct s_reply again = {0};
    for (int i = 0; i < 600 && again.status != 200; i++) {
        s_reply_free(&again);
        again = s_request(f.http, "GET", "/metrics");
        if (again.status != 200)
            usleep(50000);
    }
    cr_assert_eq(again.status, 200, "the server does not answer after the flood");
    s_reply_free(&again);
    char *m = s_get(f.http, "/metrics");
    cr_assert_eq(s_metric(m, "fedtl_rounds_completed_total"), ROUNDS);
    free(m);

    /* Oversized: headers, then the request line. Refused, and the server goes on. */
    size_t big = 64 * 1024;
    char *req = malloc(big + 256);
    cr_assert_not_null(req);
    int n = snprintf(req, 256, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    struct s_reply r = s_raw(f.http, req, strlen(req));
    cr_assert(r.status != 200, "a 64 KiB header was answered 200");
    cr_assert(r.status == 0 || r.status == 431 || r.status == 413, "status %d", r.status);
    s_reply_free(&r);
    n = snprintf(req, 256, "GET /");
    memset(req + n, 'a', big);
    memcpy(req + n + big, " HTTP/1.1\r\n\r\n", 14);
    r = s_raw(f.http, req, strlen(req));
    cr_assert(r.status == 0 || r.status == 414 || r.status == 431, "status %d", r.status);
    s_reply_free(&r);
    free(req);

    /* GET and HEAD only. */
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        r = s_request(f.http, methods[i], "/metrics");
        cr_assert_eq(r.status, 405, "%s: %d", methods[i], r.status);
        cr_assert(strstr(r.head, "Allow: GET, HEAD"), "%s", r.head);
        s_reply_free(&r);
    }
    r = s_request(f.http, "HEAD", "/");
    cr_assert_eq(r.status, 200);
    cr_assert_str_empty(r.body);
    s_reply_free(&r);
    const char *missing[] = {"/nope", "/metrics/x", "/../etc/passwd", "/status.json/"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        r = s_request(f.http, "GET", missing[i]);
        cr_assert_eq(r.status, 404, "%s: %d", missing[i], r.status);
        s_reply_free(&r);
    }

    /* A branch's name is the branch's choice: text on the page, escaped; verbatim in JSON. */
    char *html = s_get(f.http, "/");
    cr_assert(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"), "%s", html);
    cr_assert_null(strstr(html, "<script"), "%s", html);
    free(html);
    r = s_request(f.http, "GET", "/");
    cr_assert(strstr(r.head, "Content-Security-Policy: default-src 'none'"), "%s", r.head);
    s_reply_free(&r);
    char *json = s_get(f.http, "/status.json");
    cJSON *st = cJSON_Parse(json);
    cr_assert_not_null(s_branch(st, SCRIPT_NAME), "%s", json);
    cJSON_Delete(st);
    free(json);

    /* A bad address is a configuration error naming the option. */
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--http 127.0.0.1:99999 --check-config",
             f.t.dir, FEDTL_BIN_DIR);
    cr_assert_eq(fl_test_run(cmd, &out), 2, "%s", out ? out : "");
    cr_assert(out && strstr(out, "http") && strstr(out, "99999"), "%s", out ? out : "");
    free(out);
    out = NULL;
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl-client --coordinator tcp://127.0.0.1:1 --coordinator-key hq.pub "
             "--key b0.key --data shards/client-00.csv --http example.org:80 --check-config",
             f.t.dir, FEDTL_BIN_DIR);
    cr_assert_eq(fl_test_run(cmd, &out), 2, "%s", out ? out : "");
    cr_assert(out && strstr(out, "http") && strstr(out, "example.org"), "%s", out ? out : "");
    free(out);
    s_stop_coord(&f);
    s_stop(&f);
}

/* ---- the pieces, without processes ---- */

Test(fl_http, addresses)
{
    const char *good[] = {"9464", ":9464", "127.0.0.1:9464", "0.0.0.0:1", "[::1]:9464", ""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(fl_http_check_address(good[i]), 0, "'%s': %s", good[i], fl_error_msg());
    const char *bad[] = {"0",        "65536",     "127.0.0.1:", "localhost:9464",
                         "::1:9464", "[::1]9464", "[::1]:",     "1.2.3:80",
                         "9464x",    "-1",        "[zz]:80",    "127.0.0.1:99999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(fl_http_check_address(bad[i]), FL_EINVAL, "'%s' accepted", bad[i]);
    /* A server on a bad address is not made, and says why. */
    cr_assert_null(fl_http_new_threaded("localhost:9464"));
    cr_assert(strstr(fl_error_msg(), "localhost"), "%s", fl_error_msg());
}

Test(fl_http, threaded_server_serves_published_documents)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", fl_test_free_port());
    fl_http_t *h = fl_http_new_threaded(addr);
    cr_assert_not_null(h, "%s", fl_error_msg());
    int port = atoi(strrchr(addr, ':') + 1);
    struct s_reply r = s_request(port, "GET", "/metrics");
    cr_assert_eq(r.status, 404, "nothing published yet");
    s_reply_free(&r);
    cr_assert_eq(fl_http_publish(h, "/metrics", "text/plain", "a 1\n", 4), 0);
    cr_assert_eq(fl_http_publish(h, "/metrics", "text/plain", "a 2\n", 4), 0);
    r = s_request(port, "GET", "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "a 2\n");
    s_reply_free(&r);
    fl_http_destroy(&h);
    fl_http_destroy(&h);
    cr_assert_null(h);
}

Test(fl_prom, exposition_text)
{
    char *text = NULL, label[128];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    fl_prom_family(f, "x_total", "counter", "a \\ help\nline");
    fl_prom_count(f, "x_total", fl_prom_label(label, sizeof label, "name", "a\"b\\c\nd"), 3);
    static const double bounds[] = {1, 5};
    struct fl_prom_hist h;
    fl_prom_hist_init(&h, bounds, 2);
    fl_prom_hist_observe(&h, 0.5);
    fl_prom_hist_observe(&h, 3);
    fl_prom_hist_observe(&h, 9);
    fl_prom_hist_write(f, "d_seconds", "durations", &h);
    fclose(f);
    cr_assert_str_eq(text, "# HELP x_total a \\\\ help\\nline\n"
                           "# TYPE x_total counter\n"
                           "x_total{name=\"a\\\"b\\\\c\\nd\"} 3\n"
                           "# HELP d_seconds durations\n"
                           "# TYPE d_seconds histogram\n"
                           "d_seconds_bucket{le=\"1\"} 1\n"
                           "d_seconds_bucket{le=\"5\"} 2\n"
                           "d_seconds_bucket{le=\"+Inf\"} 3\n"
                           "d_seconds_sum 12.5\n"
                           "d_seconds_count 3\n");
    free(text);
}

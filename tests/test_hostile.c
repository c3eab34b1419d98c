/* Hostile peers against a real fedtl-coordinator and real fedtl-client processes: a peer that
 * squats on another branch's routing id, a keyless impostor under --insecure, an update
 * replayed into a later run of the same federation, and an Ed25519 key that shares its X25519
 * form with an enrolled one. Each test is the attack, then what the honest branch still gets. */
#include "fl_hostile.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* CSV records for a real client of the harness's base (8 features, classes 0-2). */
static void s_write_data(const char *path, uint32_t seed)
{
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    for (int i = 0; i < 240; i++) {
        int k = i % 3;
        fprintf(fp, "%d", k);
        for (int j = 0; j < 8; j++) {
            seed = seed * 1103515245u + 12345u;
            fprintf(fp, ",%.3f", (j == k ? 2.0 : 0.0) + (double)(seed >> 16) / 65536.0 - 0.5);
        }
        fprintf(fp, "\n");
    }
    fclose(fp);
}

/* A real fedtl-client for key `name` (its data, cache and final adapter in the scratch
 * directory), with extra flags. */
static pid_t s_start_client(struct s_fed *f, const char *name, int port, const char *extra)
{
    char data[1100], cmd[8192], log[1100];
    snprintf(data, sizeof data, "%s/%s.csv", f->dir, name);
    s_write_data(data, 7);
    snprintf(cmd, sizeof cmd,
             "cd %s && exec %s/fedtl-client --coordinator tcp://127.0.0.1:%d --coordinator-key "
             "hq.pub --key %s.key --data %s.csv --cache-dir cache-%s --out final-%s.fta "
             "--threads 1 --connect-timeout 30 %s",
             f->dir, FEDTL_BIN_DIR, port, name, name, name, name, extra);
    snprintf(log, sizeof log, "%s/%s.log", f->dir, name);
    pid_t pid = fl_test_spawn(cmd, log);
    cr_assert_gt(pid, 0);
    return pid;
}

static bool s_exists(struct s_fed *f, const char *name)
{
    char path[1100];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Wait until the coordinator's log holds needle at least n times. */
static void s_wait_log(struct s_fed *f, const char *needle, int n)
{
    for (int i = 0; i < 3000 && fl_test_count(f->path[F_LOG], needle) < n; i++)
        usleep(20000);
    cr_assert_geq(fl_test_count(f->path[F_LOG], needle), n, "coordinator never logged %s", needle);
}

/* Item 1: a peer (here the enrolled b2, with its own CurveZMQ key) connects again and again
 * with b1's key as its routing id. The routing id names nothing at the coordinator any more:
 * b1 finishes every round and saves the final adapter. */
Test(hostile, a_routing_id_squat_does_not_cut_a_branch_off, .timeout = 240)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 5 --min-start 1 --clients-per-round 1 --min-clients 1 "
                    "--deadline 30 --round-retries 5 --epochs 1 --exit-when-done");
    struct s_branch b1;
    s_branch_open(&b1, &f, "b1"); /* for b1's public key */
    pid_t client = s_start_client(&f, "b1", f.port, "");
    s_wait_log(&f, "has_base=1", 1); /* b1 is registered, holding the base */
    int status = -1;
    bool reaped = false;
    struct s_branch squat = {0};
    for (int i = 0; i < 240; i++) {
        if (squat.sock)
            s_branch_close(&squat);
        s_branch_open_as(&squat, &f, "b2", false, b1.id->sign_pk, FL_SIGN_PK_BYTES);
        s_hello_as(&squat, b1.id->sign_pk, &f, NULL);
        if (waitpid(client, &status, WNOHANG) == client) {
            reaped = true;
            break;
        }
        sleep(1);
    }
    if (squat.sock)
        s_branch_close(&squat);
    int rc;
    if (reaped || waitpid(client, &status, WNOHANG) == client)
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    else
        rc = fl_test_wait(client, 60);
    cr_assert_eq(rc, 0, "fedtl-client b1 did not finish (exit %d)", rc);
    cr_assert(s_exists(&f, "final-b1.fta"), "no final adapter");
    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger);
    for (int r = 1; r <= 5; r++)
        cr_assert_eq(fl_test_ledger_lines(ledger, r, 1, NULL), 1, "round %d not aggregated", r);
    cJSON_Delete(ledger);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}

/* Item 7: under --insecure a peer without b1's secret key says Hello as b1. It is challenged
 * like anyone (a Hello naming a key that is not enrolled gets the same answer), cannot answer,
 * is never welcomed and never sees the final adapter, and its Bye ends only its own
 * connection: b1 finishes and exits 0. */
Test(hostile, a_keyless_impostor_is_challenged_and_cannot_end_a_branch, .timeout = 240)
{
    struct s_fed f;
    s_fed_setup(&f, "--insecure --rounds 1 --min-start 2 --clients-per-round 2 --min-clients 2 "
                    "--deadline 60 --epochs 1 --exit-when-done");
    pid_t client = s_start_client(&f, "b1", f.port, "--insecure");
    s_wait_log(&f, "has_base=1", 1); /* b1 is registered, holding the base */
    struct s_branch b1, evil;
    s_branch_open_as(&b1, &f, "b1", true, NULL, 0); /* b1's public key only */
    s_branch_open_as(&evil, &f, "evil", true, NULL, 0);

    /* Enrolled or not, a Hello is answered with a Challenge: no oracle for enrolment. */
    s_hello_as(&evil, b1.id->sign_pk, &f, NULL);
    Fedtl__Envelope *c = s_expect(&evil, FEDTL__ENVELOPE__BODY_CHALLENGE, 10);
    cr_assert_not_null(c, "an unsigned Hello as b1 was not challenged");
    fl_wire_free(&c);
    s_hello_as(&evil, evil.id->sign_pk, &f, NULL);
    c = s_expect(&evil, FEDTL__ENVELOPE__BODY_CHALLENGE, 10);
    cr_assert_not_null(c, "a Hello with a key that is not enrolled was not challenged");
    /* Its own signature over the nonce proves nothing about b1's key. */
    uint8_t sig[FL_SIG_BYTES];
    cr_assert_eq(fl_sign_hello(evil.id, f.federation, c->challenge->nonce.data, sig), 0);
    fl_wire_free(&c);
    s_hello_as(&evil, b1.id->sign_pk, &f, sig);
    cr_assert_null(s_expect(&evil, FEDTL__ENVELOPE__BODY_WELCOME, 1), "impostor welcomed");
    /* Its Bye, as if it were b1, ends nothing but its own connection. */
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Bye bye = FEDTL__BYE__INIT;
    bye.code = FEDTL__BYE_CODE__BYE_STOPPING;
    bye.reason = "b1 stopping";
    env.body_case = FEDTL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    cr_assert_eq(fl_net_send(evil.sock, NULL, 0, &env, 0, NULL), 0);

    /* b2 joins: the round starts with b1 and b2 and ends with the final adapter for both. */
    struct s_branch b2;
    s_branch_open_as(&b2, &f, "b2", true, NULL, 0);
    s_hello(&b2, &f);
    struct fl_adapter_file t;
    uint32_t r = s_task(&b2, &t);
    s_send_update(&b2, &f, NULL, &t, r, 1.0f, 50, S_GOOD, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t);
    Fedtl__Envelope *fin = s_expect(&b2, FEDTL__ENVELOPE__BODY_FINAL, 60);
    cr_assert_not_null(fin, "no final adapter for b2");
    fl_wire_free(&fin);
    cr_assert_eq(fl_test_wait(client, 60), 0, "fedtl-client b1 did not finish");
    cr_assert(s_exists(&f, "final-b1.fta"), "no final adapter for b1");
    cr_assert_null(s_expect(&evil, FEDTL__ENVELOPE__BODY_FINAL, 1), "impostor got the final");
    cr_assert_eq(fl_test_count(f.path[F_LOG], "code=stopping"), 0, "the impostor's Bye counted");
    s_branch_close(&b2);
    s_branch_close(&evil);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}

/* Item 8: b1's signed update of run A is replayed into run B of the same federation (same
 * name, base and coordinator key, a fresh state directory). Each run has its own id, in the
 * signed context: the replay does not verify. */
Test(hostile, an_update_of_an_earlier_run_is_refused, .timeout = 120)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 1 --min-start 1 --clients-per-round 1 --min-clients 1 "
                    "--deadline 30 --epochs 1");
    struct s_branch b1;
    s_branch_open(&b1, &f, "b1");
    s_hello(&b1, &f);
    uint8_t run_a[FL_RUN_ID_BYTES];
    memcpy(run_a, b1.run_id, sizeof run_a);
    struct fl_adapter_file t;
    uint32_t r = s_task(&b1, &t);
    cr_assert_eq(r, 1);
    uint8_t *replay;
    size_t replay_len;
    s_send_update(&b1, &f, NULL, &t, r, 1.0f, 50, S_GOOD, &replay, &replay_len);
    s_expect_receipt(&b1, true, NULL);
    fl_adapter_close(&t);
    s_branch_close(&b1);

    /* Run B: the same coordinator, from an empty state directory. */
    kill(f.coord, SIGKILL);
    fl_test_wait(f.coord, 10);
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f.path[F_STATE]);
    s_run(cmd);
    f.coord = fl_test_spawn(f.cmd, f.path[F_LOG]);
    cr_assert_gt(f.coord, 0);
    s_branch_open(&b1, &f, "b1");
    s_hello(&b1, &f);
    cr_assert_neq(memcmp(run_a, b1.run_id, sizeof run_a), 0, "a new run kept the run id");
    cr_assert_eq(s_task(&b1, &t), 1);
    s_send_raw(&b1, replay, replay_len);
    s_expect_receipt(&b1, false, "signature");
    fl_adapter_close(&t);
    free(replay);
    /* The run id is in state.json, and a restart of run B keeps it. */
    cJSON *state = fl_test_json(f.path[F_STATE_JSON]);
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(state, "run_id");
    cr_assert(cJSON_IsString(run) && strlen(run->valuestring) == 2 * FL_RUN_ID_BYTES);
    char hex[2 * FL_RUN_ID_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, b1.run_id, FL_RUN_ID_BYTES);
    cr_assert_str_eq(run->valuestring, hex);
    cJSON_Delete(state);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}

/* Item 10: the sign-bit twin of b1's Ed25519 key has the same X25519 form, so b1's CurveZMQ
 * key also "is" the twin's. Enrolled as another branch, the twin is still out of b1's reach:
 * a Hello counts only with a signature of the Ed25519 key it names. */
Test(hostile, the_twin_of_an_enrolled_key_is_not_welcomed_without_its_secret, .timeout = 120)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 1 --min-start 3");
    struct s_branch b1;
    s_branch_open(&b1, &f, "b1");
    uint8_t twin[FL_SIGN_PK_BYTES];
    memcpy(twin, b1.id->sign_pk, sizeof twin);
    twin[31] ^= 0x80;
    uint8_t x1[FL_BOX_PK_BYTES], x2[FL_BOX_PK_BYTES];
    cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x1, b1.id->sign_pk), 0);
    cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x2, twin), 0);
    cr_assert_eq(memcmp(x1, x2, sizeof x1), 0, "not twins");
    char b64[sodium_base64_ENCODED_LEN(FL_SIGN_PK_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, twin, sizeof twin, sodium_base64_VARIANT_ORIGINAL);
    char path[1100];
    snprintf(path, sizeof path, "%s/allow/twin.pub", f.dir);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fprintf(fp, "fedtl-ed25519 %s twin\n", b64);
    fclose(fp);
    s_wait_log(&f, "coordinator_start", 1);
    kill(f.coord, SIGHUP);
    s_wait_log(&f, "keys=3", 1); /* allowlist_reloaded with the twin */
    s_branch_close(&b1);

    /* b1's connection, with the twin as the routing id it picks and the key it names. */
    s_branch_open_as(&b1, &f, "b1", false, twin, sizeof twin);
    s_hello_as(&b1, twin, &f, NULL);
    Fedtl__Envelope *c = s_expect(&b1, FEDTL__ENVELOPE__BODY_CHALLENGE, 10);
    cr_assert_not_null(c, "a Hello naming the twin was not challenged");
    uint8_t sig[FL_SIG_BYTES];
    cr_assert_eq(fl_sign_hello(b1.id, f.federation, c->challenge->nonce.data, sig), 0);
    fl_wire_free(&c);
    s_hello_as(&b1, twin, &f, sig);
    cr_assert_null(s_expect(&b1, FEDTL__ENVELOPE__BODY_WELCOME, 1), "welcomed as the twin");
    cr_assert_eq(fl_test_count(f.path[F_LOG], "branch=twin"), 0);
    /* As itself, on the same connection, b1 is welcomed. */
    s_hello(&b1, &f);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}

/* A TCP relay between the branch and the coordinator that, once told, stops relaying its
 * first connection and keeps it open: a connection dead without notice. Later connections
 * are relayed. */
struct s_relay {
    int listen_fd, coord_port, port; /* where it listens, where it relays to */
    atomic_int cut, quit;            /* stop relaying the first connection; stop */
    int fd[16][2];                   /* the branch's end and the coordinator's, per connection */
    int n;                           /* connections */
};

static void s_relay_accept(struct s_relay *r)
{
    int a = accept(r->listen_fd, NULL, NULL);
    if (a < 0 || r->n == 16) {
        if (a >= 0)
            close(a);
        return;
    }
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->coord_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(b, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(a);
        close(b);
        return;
    }
    r->fd[r->n][0] = a;
    r->fd[r->n][1] = b;
    r->n++;
}

static void *s_relay_run(void *arg)
{
    struct s_relay *r = arg;
    while (!atomic_load(&r->quit)) {
        struct pollfd p[33];
        int np = 0;
        p[np++] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
        for (int i = 0; i < r->n; i++)
            for (int j = 0; j < 2; j++)
                p[np++] = (struct pollfd){
                    .fd = (i == 0 && atomic_load(&r->cut)) || r->fd[i][j] < 0 ? -1 : r->fd[i][j],
                    .events = POLLIN};
        if (poll(p, (nfds_t)np, 20) <= 0)
            continue;
        if (p[0].revents & POLLIN)
            s_relay_accept(r);
        for (int k = 1; k < np; k++) {
            if (!(p[k].revents & (POLLIN | POLLHUP)))
                continue;
            int i = (k - 1) / 2, j = (k - 1) % 2;
            char buf[65536];
            ssize_t got = read(r->fd[i][j], buf, sizeof buf);
            if (got <= 0) {
                close(r->fd[i][0]);
                close(r->fd[i][1]);
                r->fd[i][0] = r->fd[i][1] = -1;
                continue;
            }
            for (ssize_t off = 0; off < got;) {
                ssize_t put = write(r->fd[i][1 - j], buf + off, (size_t)(got - off));
                if (put <= 0)
                    break;
                off += put;
            }
        }
    }
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < 2; j++)
            if (r->fd[i][j] >= 0)
                close(r->fd[i][j]);
    close(r->listen_fd);
    return NULL;
}

static void s_relay_start(struct s_relay *r, int coord_port, pthread_t *th)
{
    memset(r, 0, sizeof *r);
    r->coord_port = coord_port;
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    cr_assert_eq(getsockname(r->listen_fd, (struct sockaddr *)&sa, &len), 0);
    r->port = ntohs(sa.sin_port);
    cr_assert_eq(listen(r->listen_fd, 16), 0);
    cr_assert_eq(pthread_create(th, NULL, s_relay_run, r), 0);
}

/* Item 1, the client's part: the branch's connection goes dead without notice (nothing is
 * relayed any more, nothing is closed). The branch hears nothing, drops its socket, connects
 * afresh, proves its key again and finishes the federation. */
Test(hostile, a_branch_whose_connection_goes_dead_connects_afresh, .timeout = 240)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 2 --min-start 1 --clients-per-round 1 --min-clients 1 "
                    "--deadline 5 --round-retries 10 --epochs 1 --exit-when-done");
    struct s_relay relay;
    pthread_t th;
    s_relay_start(&relay, f.port, &th);
    pid_t client = s_start_client(&f, "b1", relay.port, "");
    s_wait_log(&f, "has_base=1", 1); /* registered through the relay's first connection */
    atomic_store(&relay.cut, 1);
    int rc = fl_test_wait(client, 120);
    atomic_store(&relay.quit, 1);
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "fedtl-client b1 did not finish (exit %d)", rc);
    cr_assert_gt(relay.n, 1, "the branch never connected afresh");
    cr_assert(s_exists(&f, "final-b1.fta"), "no final adapter");
    s_fed_teardown(&f);
}

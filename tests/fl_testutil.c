/* The harness for running fedtl's real programs (tests and benchmarks). */
#include "fl_testutil.h"
#include "fl_rng.h"
#include "fl_sizes.h"
#include "fl_time.h"

#include <cJSON.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_FMNIST "/usr/share/datasets/fashion-mnist"

char *fl_test_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/fedtl-%s-XXXXXX", base ? base : "/tmp", tag);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

void fl_test_rmtree(const char *path)
{
    if (!path || strlen(path) < 8 || getenv("FEDTL_KEEP_TMP"))
        return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

char *fl_test_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int fl_test_run(const char *cmd, char **out)
{
    char *full = malloc(strlen(cmd) + 16);
    if (!full)
        return -1;
    sprintf(full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 1024) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    if (buf)
        buf[len] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* In a child just forked: stdout and stderr appended to log_path. */
static void s_redirect(const char *log_path)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
}

/* In the child: output to log_path, and killed with its parent, so that a test that fails
 * half-way (Criterion leaves the test at the failed assertion) leaves no process behind. */
static void s_child(pid_t parent, const char *log_path)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the parent is already gone */
    s_redirect(log_path);
}

pid_t fl_test_spawn(const char *cmd, const char *log_path)
{
    pid_t parent = getpid(), pid = fork();
    if (pid != 0)
        return pid;
    s_child(parent, log_path);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
}

pid_t fl_test_spawnv(char *const argv[], const char *log_path)
{
    pid_t parent = getpid(), pid = fork();
    if (pid != 0)
        return pid;
    s_child(parent, log_path);
    execv(argv[0], argv);
    _exit(127);
}

int fl_test_wait(pid_t pid, double timeout_s)
{
    double end = fl_now_s() + timeout_s;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0)
            return -1;
        if (fl_now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(20000);
    }
}

int fl_test_free_port(void)
{
    int fallback = 20000 + (int)(getpid() % 20000);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fallback;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int port = fallback;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

char *fl_test_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (buf) {
        size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), f);
        buf[got] = '\0';
    }
    fclose(f);
    return buf;
}

int fl_test_count(const char *path, const char *needle)
{
    char *s = fl_test_slurp(path);
    int n = 0;
    for (char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(s);
    return n;
}

long fl_test_proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/status");
    else
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0) {
            v = atol(line + fl);
            break;
        }
    fclose(f);
    return v;
}

static size_t s_put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (unsigned char)(v | 0x80);
    p[n++] = (unsigned char)v;
    return n;
}

unsigned char *fl_test_bomb_frame(int body, size_t len, size_t *out_len)
{
    /* Field 100, varint 0: tag 0xa0 0x06, value 0x00. */
    static const unsigned char unknown[3] = {0xa0, 0x06, 0x00};
    if (len < 32)
        len = 32;
    unsigned char *buf = malloc(len);
    if (!buf)
        return NULL;
    size_t at = s_put_varint(buf, 1 << 3); /* the protocol version spoken */
    at += s_put_varint(buf + at, FL_PROTOCOL_VERSION);
    size_t fill = (len - at - 12) / 3 * 3;
    if (body) {
        at += s_put_varint(buf + at, (uint64_t)body << 3 | 2);
        at += s_put_varint(buf + at, fill);
    }
    for (size_t i = 0; i < fill; i += 3)
        memcpy(buf + at + i, unknown, 3);
    *out_len = at + fill;
    return buf;
}

struct cJSON *fl_test_json(const char *path)
{
    char *text = fl_test_slurp(path);
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    free(text);
    return v;
}

struct cJSON *fl_test_jsonl(const char *path)
{
    char *text = fl_test_slurp(path);
    cJSON *lines = text ? cJSON_CreateArray() : NULL;
    for (char *save = NULL, *l = lines ? strtok_r(text, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save)) {
        cJSON *v = cJSON_Parse(l);
        if (!v || !cJSON_AddItemToArray(lines, v)) {
            cJSON_Delete(v);
            cJSON_Delete(lines);
            lines = NULL;
            break;
        }
    }
    free(text);
    return lines;
}

int fl_test_ledger_lines(const struct cJSON *lines, int round, int aggregated,
                         const struct cJSON **last)
{
    int n = 0;
    const cJSON *line;
    if (last)
        *last = NULL;
    cJSON_ArrayForEach(line, lines)
    {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(line, "round");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(line, "aggregated");
        if (!cJSON_IsNumber(r) || !cJSON_IsBool(a) || (round >= 0 && r->valuedouble != round) ||
            (aggregated >= 0 && cJSON_IsTrue(a) != (aggregated != 0)))
            continue;
        n++;
        if (last)
            *last = line;
    }
    return n;
}

bool fl_test_have_ort(const char *src_dir)
{
    char pkg[4096];
    snprintf(pkg, sizeof pkg, "%s/tests/peers/node_modules/onnxruntime-node/package.json", src_dir);
    return access(pkg, R_OK) == 0 && fl_test_run("node --version >/dev/null 2>&1", NULL) == 0;
}

bool fl_test_have_python(const char *modules)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd / && /usr/bin/python3 -c 'import %s' >/dev/null 2>&1", modules);
    return fl_test_run(cmd, NULL) == 0;
}

int fl_test_write_blobs(const char *path, int n, unsigned long long seed)
{
    struct fl_rng r;
    fl_rng_seed(&r, 77);
    double centre[4][20];
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 20; j++)
            centre[k][j] = fl_rng_normal(&r) * 1.2;
    if (seed != FL_TEST_BLOBS_CENTRES_STREAM)
        fl_rng_seed(&r, seed);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    for (int i = 0; i < n; i++) {
        int k = (int)fl_rng_below(&r, 4);
        fprintf(fp, "%d", k);
        for (int j = 0; j < 20; j++)
            fprintf(fp, ",%.4f", centre[k][j] + fl_rng_normal(&r) * 1.6);
        fprintf(fp, "\n");
    }
    return fclose(fp) == 0 ? 0 : -1;
}

int fl_test_fed_setup(struct fl_test_fed *f, const char *tag, int nb, const char *bin_dir,
                      char **why)
{
    return fl_test_fed_setup_opts(f, tag, nb, NULL, bin_dir, why);
}

/* Write rows of blobs from seed to dir/name; 0, or -1 with *why set. */
static int s_fed_blobs(const char *dir, const char *name, int rows, unsigned long long seed,
                       char **why)
{
    char *path = fl_test_path(dir, name);
    int rc = path ? fl_test_write_blobs(path, rows, seed) : -1;
    free(path);
    if (rc != 0) {
        size_t n = strlen(name) + 32;
        if ((*why = malloc(n)))
            snprintf(*why, n, "%s cannot be written", name);
    }
    return rc;
}

int fl_test_fed_setup_opts(struct fl_test_fed *f, const char *tag, int nb,
                           const struct fl_test_fed_opts *opts, const char *bin_dir, char **why)
{
    static const struct fl_test_fed_opts none;
    const struct fl_test_fed_opts *o = opts ? opts : &none;
    memset(f, 0, sizeof *f);
    *why = NULL;
    if (nb < 1 || nb > FL_TEST_FED_MAX || !(f->dir = fl_test_tmpdir(tag))) {
        *why = strdup("no scratch directory, or a branch count out of range");
        return -1;
    }
    f->nb = nb;
    f->port = fl_test_free_port();
    if (s_fed_blobs(f->dir, "train.csv", 3000, o->blobs_seed ? o->blobs_seed : 1, why) != 0 ||
        (o->test_rows > 0 && s_fed_blobs(f->dir, "test.csv", o->test_rows, 2, why) != 0))
        return -1;
    char cmd[8192];
    size_t at = (size_t)snprintf(cmd, sizeof cmd,
                                 "cd %s && B=%s && mkdir allow && $B/fedtl keygen --out hq "
                                 "--name hq >/dev/null",
                                 f->dir, bin_dir);
    for (int i = 0; i < FL_TEST_FED_MAX && at < sizeof cmd; i++) {
        char name[16];
        snprintf(name, sizeof name, "b%d", i);
        at += (size_t)snprintf(cmd + at, sizeof cmd - at,
                               " && $B/fedtl keygen --out %s --name '%s' >/dev/null", name,
                               o->names[i] ? o->names[i] : name);
    }
    if (at < sizeof cmd)
        at += (size_t)snprintf(
            cmd + at, sizeof cmd - at,
            " && for k in %s; do $B/fedtl keygen --out $k --name $k >/dev/null || exit 1; done && "
            "for k in $(seq 0 %d); do cp b$k.pub allow/; done && $B/fedtl pretrain %s --out "
            "base.ftm && $B/fedtl partition %s --clients %d --dirichlet 1.0 --min-size 60 "
            "--seed 5 --out-dir shards >/dev/null",
            o->more_keys ? o->more_keys : "", nb - 1,
            o->pretrain ? o->pretrain
                        : "--data train.csv --classes 0-2 --arch mlp --epochs 4 --seed 3 "
                          "--threads 1 --quiet",
            o->shards ? o->shards : "--data train.csv --classes 1-3 --samples 1200", nb);
    if (at >= sizeof cmd) {
        *why = strdup("the set-up command is too long");
        return -1;
    }
    char *out = NULL;
    if (fl_test_run(cmd, &out) != 0) {
        *why = out ? out : strdup(cmd);
        return -1;
    }
    free(out);
    return 0;
}

void fl_test_fed_teardown(struct fl_test_fed *f)
{
    for (int i = 0; i < f->nb; i++)
        if (f->branch[i] > 0) {
            kill(f->branch[i], SIGKILL);
            fl_test_wait(f->branch[i], 5);
        }
    if (f->coord > 0) {
        kill(f->coord, SIGKILL);
        fl_test_wait(f->coord, 5);
    }
    fl_test_rmtree(f->dir);
    free(f->dir);
    f->dir = NULL;
}

char *fl_test_fashion_base(const char *tag, int samples, int epochs, const char *bin_dir,
                           char **why)
{
    *why = NULL;
    char *dir = fl_test_tmpdir(tag);
    if (!dir) {
        *why = strdup("no scratch directory");
        return NULL;
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s/fedtl pretrain --data " S_FMNIST "/train-images-idx3-ubyte.gz --labels " S_FMNIST
             "/train-labels-idx1-ubyte.gz --classes 0-4 --samples %d --arch cnn-small "
             "--epochs %d --quiet --out %s/base.ftm",
             bin_dir, samples, epochs, dir);
    char *out = NULL;
    if (fl_test_run(cmd, &out) != 0) {
        *why = out ? out : strdup(cmd);
        fl_test_rmtree(dir);
        free(dir);
        return NULL;
    }
    free(out);
    return dir;
}

/* bench_ingest: the coordinator's update-ingest path, in process, without the network.
 * K signed, encrypted updates of P float parameters go through what fl_intake.c's fl_intake_take
 * does with each SealedUpdate frame after its registry checks: fl_wire_decode of the envelope
 * bytes, fl_verify_update, fl_open_update, fl_wire_decode_body, fl_adapter_view_authenticated,
 * fl_coord_check_adapter (the coordinator's own check), fl_strategy_add (fedavg), and the
 * wipes. The updates come from a small pool of pre-sealed envelopes (from a few distinct branch
 * keys) used cyclically, so K = 1,000 at P = 1M needs ~35 MB, not 4 GB.
 *
 * Each (P, K, threads) case runs in its own child process (this program re-executed), so its
 * peak RSS (VmHWM, reset after the pool is built) shows whether memory grows with K.
 * threads is the size of the fl_pool the coordinator gets from `--threads`: it opens an
 * update's segments, checks values, accumulates FedAvg and wipes; updates are taken one at a
 * time, in order, as the coordinator does, so the aggregate is the same for every thread
 * count. */
#include "bench_fed.h"

#include "fl_codec.h"
#include "fl_coord.h"
#include "fl_intake.h"
#include "fl_keys.h"
#include "fl_pool.h"
#include "fl_seal.h"
#include "fl_strategy.h"

#include <math.h>
#include <sodium.h>
#include <sys/resource.h>

#define S_NT   2                                      /* tensors per adapter (a LoRA pair) */
#define S_RANK 8                                      /* their rank axis */
#define S_FED  "benchfed"                             /* federation name bound into signatures */
static const uint8_t s_run_id[FL_RUN_ID_BYTES] = {1}; /* and its run */
#define S_ROUND 1                                     /* round of every update */

enum { S_DEC, S_VER, S_OPEN, S_BODY, S_UNPACK, S_CHECK, S_ADD, S_FREE, S_NSTAGE };
static const char *s_stage_names[S_NSTAGE] = {"decode", "verify", "open", "body",
                                              "unpack", "check",  "add",  "free"};

/* Everything one child run shares between its workers. */
struct s_run {
    struct fl_identity *hq;             /* the coordinator (opens updates) */
    uint8_t base_hash[FL_HASH_BYTES];   /* the base the adapters fit */
    struct fl_tensor global[S_NT];      /* the global adapter's tensors */
    struct fl_adapter_file global_file; /* the global adapter (what updates are checked against) */
    uint8_t **pool;                     /* pre-encoded SealedUpdate envelopes */
    size_t *pool_len;                   /* their lengths */
    int npool;                          /* pool size */
    long k;                             /* updates to ingest */
    fl_strategy_t *strategy;            /* fedavg */
    fl_pool_t *threads;                 /* opens segments (the coordinator's pool) */
    struct fl_plain plain;              /* the decrypted update (reused, as the coordinator's) */
    int failed;                         /* an update was refused (a bench bug) */
    double stage[S_NSTAGE];             /* seconds per stage */
};

/* The global adapter's configuration: LoRA rank 8 on fc1, tensors A [8, P/16], B [P/16, 8]. */
static void s_meta(struct fl_adapter_meta *am, const uint8_t base_hash[FL_HASH_BYTES])
{
    s_bench_adapter(am, FL_ADAPTER_LORA, S_RANK, 2.0f * S_RANK, "fc1", 5);
    memcpy(am->base_hash, base_hash, 32);
    am->round = S_ROUND - 1;
}

static int s_global_init(struct fl_tensor g[S_NT], long p)
{
    int64_t cols = p / (2 * S_RANK);
    if (fl_tensor_init2(&g[0], "fc1.lora_A", S_RANK, cols) ||
        fl_tensor_init2(&g[1], "fc1.lora_B", cols, S_RANK))
        return FL_ENOMEM;
    return 0;
}

/* One sealed update from branch `who`: its adapter values drawn from seed. */
static int s_make_update(const struct s_run *r, const struct fl_identity *who, uint64_t seed,
                         uint8_t **out, size_t *out_len)
{
    struct fl_tensor ts[S_NT];
    struct fl_rng rng;
    fl_rng_seed(&rng, seed);
    for (int i = 0; i < S_NT; i++) {
        if (fl_tensor_copy(&ts[i], &r->global[i]))
            return FL_ENOMEM;
        for (size_t j = 0; j < fl_tensor_numel(&ts[i]); j++)
            ts[i].data[j] = (float)(fl_rng_uniform(&rng) - 0.5) * 0.02f;
    }
    struct fl_adapter_meta am;
    s_meta(&am, r->base_hash);
    uint8_t *abuf = NULL, *plain = NULL;
    size_t alen, plain_len;
    struct fl_sealed sealed = {0};
    int rc = fl_adapter_pack(&am, ts, S_NT, &abuf, &alen);
    for (int i = 0; i < S_NT; i++)
        fl_tensor_free(&ts[i]);
    if (rc)
        return rc;
    Fedtl__UpdateBody body = FEDTL__UPDATE_BODY__INIT;
    body.adapter = (ProtobufCBinaryData){alen, abuf};
    body.samples = 50 + seed % 100;
    body.train_loss = 0.5f;
    body.eval_accuracy = 0.75f;
    body.eval_samples = 10;
    if ((rc = fl_wire_encode_body(&body, &plain, &plain_len)) == 0)
        rc = fl_seal_update(who, r->hq->box_pk, S_FED, s_run_id, S_ROUND, r->base_hash, plain,
                            plain_len, &sealed);
    if (rc == 0)
        rc = fl_wire_encode_update(&sealed, out, out_len);
    free(abuf);
    free(plain);
    fl_sealed_free(&sealed);
    return rc;
}

/* Ingest update number idx the way fl_intake.c's fl_intake_take does (after its registry
 * checks). Stage times go to st. */
static int s_ingest_one(struct s_run *r, long idx, double st[S_NSTAGE])
{
    const uint8_t *buf = r->pool[idx % r->npool];
    size_t len = r->pool_len[idx % r->npool];
    Fedtl__Envelope *env = NULL;
    Fedtl__UpdateBody *body = NULL;
    struct fl_adapter_file af = {0};
    int rc;
    double t0 = fl_now_s(), t1;
#define S_LAP(stage) (t1 = fl_now_s(), st[stage] += t1 - t0, t0 = t1)
    rc = fl_wire_decode(buf, len, &env);
    S_LAP(S_DEC);
    if (rc || env->body_case != FEDTL__ENVELOPE__BODY_UPDATE)
        goto out;
    const Fedtl__SealedUpdate *u = env->update;
    if (memcmp(u->base_hash.data, r->base_hash, 32) != 0) {
        rc = FL_EMISMATCH;
        goto out;
    }
    struct fl_sealed sealed;
    rc = fl_wire_sealed_get(u, &sealed);
    if (rc == 0)
        rc = fl_verify_update(&sealed, u->branch_key.data, S_FED, s_run_id);
    S_LAP(S_VER);
    if (rc)
        goto out;
    rc = fl_open_update(r->hq, &sealed, u->branch_key.data, S_FED, s_run_id, r->threads, &r->plain);
    S_LAP(S_OPEN);
    if (rc)
        goto out;
    rc = fl_wire_decode_body(r->plain.data, r->plain.len, &body);
    S_LAP(S_BODY);
    if (rc)
        goto out;
    char id[FL_KEY_ID_LEN];
    fl_key_id(u->branch_key.data, id);
    rc = fl_adapter_view_authenticated(body->adapter.data, body->adapter.len, id, &af);
    S_LAP(S_UNPACK);
    if (rc)
        goto out;
    rc = fl_coord_check_adapter(&r->global_file, r->base_hash, &af, r->threads, NULL);
    S_LAP(S_CHECK);
    if (rc)
        goto out;
    char uid[40]; /* keys repeat across the bench's updates; a round's ids do not */
    snprintf(uid, sizeof uid, "%s-%ld", id, idx);
    rc = fl_strategy_add(r->strategy, af.tensors, af.ntensors, (double)body->samples, uid);
    S_LAP(S_ADD);
out:
    if (rc) {
        fprintf(stderr, "bench_ingest: update %ld refused: %s (%s)\n", idx, fl_strerror(rc),
                fl_error_msg());
        r->failed = 1;
    }
    t0 = fl_now_s();
    /* The coordinator's wipes: every decrypted copy. */
    for (size_t i = 0; i < af.ntensors; i++)
        if (af.tensors[i].owned) /* else it lies in the body's adapter bytes */
            fl_wipe(af.tensors[i].data, fl_tensor_numel(&af.tensors[i]) * sizeof(float),
                    r->threads);
    if (body && body->adapter.data)
        fl_wipe(body->adapter.data, body->adapter.len, r->threads);
    fl_adapter_close(&af);
    fl_wire_free_body(&body);
    fl_plain_wipe(&r->plain, r->threads);
    fl_wire_free(&env);
    S_LAP(S_FREE);
#undef S_LAP
    return rc;
}

/* One case, in this (child) process; prints one "bench=ingest" line. */
static int s_child(long p, long k, int npool, int nkeys, int threads)
{
    if (sodium_init() < 0)
        return 1;
    char *dir = fl_test_tmpdir("ingest");
    if (!dir)
        return 1;
    struct s_run r;
    memset(&r, 0, sizeof r);
    struct fl_identity *keys[64] = {0};
    char path[1200], name[32];
    int rc = 0;
    nkeys = nkeys < 1 ? 1 : nkeys > 64 ? 64 : nkeys;
    for (int i = -1; i < nkeys && rc == 0; i++) {
        snprintf(name, sizeof name, i < 0 ? "hq" : "b%03d", i);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = fl_keygen(path, name);
        snprintf(path, sizeof path, "%s/%s.key", dir, name);
        struct fl_identity *id = rc ? NULL : fl_identity_load(path);
        if (!id)
            rc = FL_EINVAL;
        else if (i < 0)
            r.hq = id;
        else
            keys[i] = id;
    }
    fl_test_rmtree(dir);
    free(dir);
    if (rc) {
        fprintf(stderr, "bench_ingest: keys: %s\n", fl_error_msg());
        return 1;
    }
    randombytes_buf(r.base_hash, sizeof r.base_hash);
    if (s_global_init(r.global, p))
        return 1;
    s_meta(&r.global_file.meta, r.base_hash);
    r.global_file.tensors = r.global;
    r.global_file.ntensors = S_NT;
    r.npool = npool;
    r.k = k;
    r.pool = calloc((size_t)npool, sizeof *r.pool);
    r.pool_len = calloc((size_t)npool, sizeof *r.pool_len);
    for (int i = 0; i < npool; i++)
        if (s_make_update(&r, keys[i % nkeys], 1000 + (uint64_t)i, &r.pool[i], &r.pool_len[i])) {
            fprintf(stderr, "bench_ingest: cannot build update: %s\n", fl_error_msg());
            return 1;
        }
    struct fl_strategy_config sc;
    if (fl_strategy_config_default(&sc, "fedavg") != 0)
        return 1;
    r.strategy = fl_strategy_new(&sc);
    threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;
    if (!r.strategy || fl_strategy_begin(r.strategy, r.global, S_NT) ||
        !(r.threads = fl_pool_new(threads)))
        return 1;
    fl_strategy_set_pool(r.strategy, r.threads);
    long rss_before = s_fed_proc_status_kb(0, "VmRSS:");
    int hwm_reset = s_fed_reset_hwm() == 0;
    double bytes = 0;
    for (long i = 0; i < k; i++)
        bytes += (double)r.pool_len[i % npool];

    double t0 = fl_now_s();
    for (long i = 0; i < k && !r.failed; i++)
        s_ingest_one(&r, i, r.stage);
    if (fl_strategy_finish(r.strategy, r.global, S_NT))
        r.failed = 1;
    double secs = fl_now_s() - t0;

    long hwm = s_fed_proc_status_kb(0, "VmHWM:");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* A fingerprint of the aggregate: equal across thread counts when the order is kept. */
    uint8_t fp[8];
    crypto_generichash(fp, sizeof fp, (const uint8_t *)r.global[0].data,
                       fl_tensor_numel(&r.global[0]) * sizeof(float), NULL, 0);
    printf("bench=ingest params=%ld updates=%ld threads=%d pool=%d keys=%d update_bytes=%zu "
           "seconds=%.4f gbps=%.3f updates_per_s=%.1f rss_before_kb=%ld hwm_kb=%ld "
           "hwm_reset=%d maxrss_kb=%ld failed=%d agg=%02x%02x%02x%02x%02x%02x%02x%02x",
           p, k, threads, npool, nkeys, r.pool_len[0], secs, bytes / secs / 1e9, (double)k / secs,
           rss_before, hwm, hwm_reset, ru.ru_maxrss, r.failed, fp[0], fp[1], fp[2], fp[3], fp[4],
           fp[5], fp[6], fp[7]);
    for (int i = 0; i < S_NSTAGE; i++)
        printf(" ms_%s=%.4f", s_stage_names[i], r.stage[i] * 1e3 / (double)k);
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < npool; i++)
        free(r.pool[i]);
    free(r.pool);
    free(r.pool_len);
    for (int i = 0; i < S_NT; i++)
        fl_tensor_free(&r.global[i]);
    fl_strategy_destroy(&r.strategy);
    fl_pool_destroy(&r.threads);
    fl_plain_free(&r.plain);
    for (int i = 0; i < nkeys; i++)
        fl_identity_destroy(&keys[i]);
    fl_identity_destroy(&r.hq);
    return r.failed ? 1 : 0;
}

/* One parsed child line. */
struct s_res {
    double gbps, ups, secs, ms[S_NSTAGE];
    long hwm_kb, rss_before_kb, update_bytes;
    char agg[17];
};

static int s_run_child(const char *self, long p, long k, int npool, int nkeys, int threads,
                       struct s_res *res)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --child %ld %ld %d %d %d", self, p, k, npool, nkeys, threads);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[4096] = "";
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "bench=ingest", 12) != 0)
            continue;
        fputs(line, stdout);
        fflush(stdout);
        memset(res, 0, sizeof *res);
        char *q;
        if ((q = strstr(line, " gbps=")))
            res->gbps = atof(q + 6);
        if ((q = strstr(line, " updates_per_s=")))
            res->ups = atof(q + 15);
        if ((q = strstr(line, " seconds=")))
            res->secs = atof(q + 9);
        if ((q = strstr(line, " hwm_kb=")))
            res->hwm_kb = atol(q + 8);
        if ((q = strstr(line, " rss_before_kb=")))
            res->rss_before_kb = atol(q + 15);
        if ((q = strstr(line, " update_bytes=")))
            res->update_bytes = atol(q + 14);
        if ((q = strstr(line, " agg=")))
            snprintf(res->agg, sizeof res->agg, "%.16s", q + 5);
        for (int i = 0; i < S_NSTAGE; i++) {
            char key[32];
            snprintf(key, sizeof key, " ms_%s=", s_stage_names[i]);
            if ((q = strstr(line, key)))
                res->ms[i] = atof(q + strlen(key));
        }
        got = 1;
    }
    int st = pclose(f);
    return got && st == 0 ? 0 : -1;
}

/* Single-core speed of the primitives the path is made of, on a buffer of one update's size:
 * the ceiling any ingest design faces. GB/s, median of 7. */
static void s_primitives(size_t len)
{
    uint8_t *a = malloc(len + 64), *b = malloc(len + 64), h[FL_HASH_BYTES];
    uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES] = {1};
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    if (!a || !b) {
        free(a);
        free(b);
        return;
    }
    randombytes_buf(a, len);
    double v[4][7];
    size_t m = len - crypto_aead_xchacha20poly1305_ietf_ABYTES;
    for (int r = 0; r < 7; r++) {
        double t = fl_now_s();
        crypto_generichash(h, sizeof h, a, len, NULL, 0);
        v[0][r] = len / (fl_now_s() - t) / 1e9;
        crypto_aead_xchacha20poly1305_ietf_encrypt(b, NULL, a, m, NULL, 0, NULL, nonce, key);
        t = fl_now_s();
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(a, NULL, NULL, b, len, NULL, 0, nonce,
                                                       key) != 0)
            v[1][r] = 0;
        else
            v[1][r] = len / (fl_now_s() - t) / 1e9;
        t = fl_now_s();
        memcpy(b, a, len);
        v[2][r] = len / (fl_now_s() - t) / 1e9;
        v[3][r] = 0;
        if (crypto_aead_aes256gcm_is_available()) {
            uint8_t n2[crypto_aead_aes256gcm_NPUBBYTES] = {0};
            crypto_aead_aes256gcm_encrypt(b, NULL, a, m, NULL, 0, NULL, n2, key);
            t = fl_now_s();
            if (crypto_aead_aes256gcm_decrypt(a, NULL, NULL, b, len, NULL, 0, n2, key) == 0)
                v[3][r] = len / (fl_now_s() - t) / 1e9;
        }
    }
    printf("bench=primitives bytes=%zu blake2b_gbps=%.3f xchacha20poly1305_open_gbps=%.3f "
           "memcpy_gbps=%.3f aes256gcm_open_gbps=%.3f\n",
           len, s_bench_median(v[0], 7), s_bench_median(v[1], 7), s_bench_median(v[2], 7),
           s_bench_median(v[3], 7));
    free(a);
    free(b);
}

static void s_usage(void)
{
    fputs("usage: bench_ingest [--params 8192,1048576] [--updates 100,1000] [--threads 1,2]\n"
          "                    [--rounds 3] [--pool 8] [--keys 4]\n",
          stderr);
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "--child") == 0)
        return s_child(atol(argv[2]), atol(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    long ps[8] = {8192, 1048576}, ks[8] = {100, 1000}, ths[8] = {1, 2};
    int nps = 2, nks = 2, nth = 2, rounds = 3, npool = 8, nkeys = 4;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            s_usage();
            return 2;
        }
        if (!strcmp(a, "--params"))
            nps = s_fed_parse_list(v, ps, 8);
        else if (!strcmp(a, "--updates"))
            nks = s_fed_parse_list(v, ks, 8);
        else if (!strcmp(a, "--threads"))
            nth = s_fed_parse_list(v, ths, 8);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--pool"))
            npool = atoi(v);
        else if (!strcmp(a, "--keys"))
            nkeys = atoi(v);
        else {
            s_usage();
            return 2;
        }
    }
    for (int i = 0; i < nps; i++)
        if (ps[i] < 2 * S_RANK || ps[i] % (2 * S_RANK)) {
            fprintf(stderr, "bench_ingest: --params must be multiples of %d\n", 2 * S_RANK);
            return 2;
        }
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        return 1;
    self[sl] = '\0';
    s_fed_machine(stdout);
    if (sodium_init() < 0)
        return 1;
    s_primitives(4u << 20);
    int ncase = nps * nks * nth;
    struct s_res *res = calloc((size_t)(ncase * rounds), sizeof *res);
    /* Rounds outermost: every case sees the same machine conditions in turn. */
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < ncase; c++) {
            int pi = c / (nks * nth), ki = (c / nth) % nks, ti = c % nth;
            if (s_run_child(self, ps[pi], ks[ki], npool, nkeys, (int)ths[ti],
                            &res[c * rounds + r]) != 0) {
                fprintf(stderr, "bench_ingest: case P=%ld K=%ld threads=%ld failed\n", ps[pi],
                        ks[ki], ths[ti]);
                return 1;
            }
        }
    printf("\n%-9s %-6s %-7s %-11s %-9s %-11s %-10s %-10s %s\n", "params", "K", "threads",
           "update MB", "GB/s", "updates/s", "HWM MB", "pool MB", "aggregate");
    for (int c = 0; c < ncase; c++) {
        int pi = c / (nks * nth), ki = (c / nth) % nks, ti = c % nth;
        double g[64], u[64], h[64];
        for (int r = 0; r < rounds; r++) {
            g[r] = res[c * rounds + r].gbps;
            u[r] = res[c * rounds + r].ups;
            h[r] = (double)res[c * rounds + r].hwm_kb;
        }
        const struct s_res *x = &res[c * rounds];
        printf("%-9ld %-6ld %-7ld %-11.3f %-9.3f %-11.1f %-10.1f %-10.1f %s\n", ps[pi], ks[ki],
               ths[ti], x->update_bytes / 1e6, s_bench_median(g, rounds), s_bench_median(u, rounds),
               s_bench_median(h, rounds) / 1024.0, x->rss_before_kb / 1024.0, x->agg);
    }
    printf("\nper-update stage times, ms (median over rounds; threads=1 cases):\n%-9s %-6s",
           "params", "K");
    for (int i = 0; i < S_NSTAGE; i++)
        printf(" %-8s", s_stage_names[i]);
    printf("\n");
    for (int c = 0; c < ncase; c++) {
        int pi = c / (nks * nth), ki = (c / nth) % nks, ti = c % nth;
        if (ths[ti] != 1)
            continue;
        printf("%-9ld %-6ld", ps[pi], ks[ki]);
        for (int i = 0; i < S_NSTAGE; i++) {
            double v[64];
            for (int r = 0; r < rounds; r++)
                v[r] = res[c * rounds + r].ms[i];
            printf(" %-8.4f", s_bench_median(v, rounds));
        }
        printf("\n");
    }
    free(res);
    return 0;
}

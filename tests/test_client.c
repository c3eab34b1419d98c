/* Tests of the branch client (client/fl_branch, client/fl_basecache, fedtl-client) with real
 * keys, files and sockets: a test thread plays a minimal coordinator on a CURVE ROUTER that
 * serves the chunks of a real base file, hands out a task and a final model, and records
 * what the branch sent. */
/* The client's modules are not in a library: compile them into the test. */
#include "fl_basecache.h"
#include "fl_branch.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_keys.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_net.h"
#include "fl_seal.h"
#include "fl_testutil.h"
#include "fl_time.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define CHUNK      16384 /* the fake coordinator's chunk size: the base is ~9 chunks */
#define RECORDS    300   /* local records, 100 per class */
#define FEDERATION "testfed"

static char *s_dir;                    /* scratch directory */
static char s_cache[600], s_base[600]; /* cache dir, the base file */
static char s_data[600], s_out[600];   /* local CSV, final adapter path */
static char s_bkey[600], s_cpub[600];  /* branch key, coordinator .pub */
static struct fl_identity *s_coord;    /* the coordinator's identity */
static uint8_t *s_base_bytes;          /* the base file's bytes */
static size_t s_base_len;
static uint8_t s_hash[FL_HASH_BYTES]; /* its content hash */

static void s_write_data(void)
{
    FILE *f = fopen(s_data, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < RECORDS; i++) {
        int y = i % 3;
        fprintf(f, "%d", y);
        for (int j = 0; j < 8; j++)
            fprintf(f, ",%.3f", (j == y ? 3.0 : 0.0) + 0.1 * ((i * 7 + j * 3) % 10) - 0.45);
        fprintf(f, "\n");
    }
    fclose(f);
}

static void s_write_base(void)
{
    struct fl_arch arch;
    cr_assert_eq(fl_arch_builtin("mlp", 8, 3, &arch), 0);
    fl_model_t *m = fl_model_new(&arch, 1, NULL);
    cr_assert_not_null(m);
    struct fl_base_meta meta = {.nclasses = 3, .class_ids = {0, 1, 2}, .created_unix = 1};
    snprintf(meta.data_desc, sizeof meta.data_desc, "test blobs");
    cr_assert_eq(fl_model_write_base(m, &meta, s_base, s_hash), 0);
    fl_model_destroy(&m);
    cr_assert_eq(fl_fs_read_file(s_base, 1u << 24, &s_base_bytes, &s_base_len), 0);
}

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("client");
    cr_assert_not_null(s_dir);
    snprintf(s_cache, sizeof s_cache, "%s/cache", s_dir);
    snprintf(s_base, sizeof s_base, "%s/base.ftm", s_dir);
    snprintf(s_data, sizeof s_data, "%s/data.csv", s_dir);
    snprintf(s_out, sizeof s_out, "%s/out/final.fta", s_dir);
    snprintf(s_bkey, sizeof s_bkey, "%s/branch.key", s_dir);
    snprintf(s_cpub, sizeof s_cpub, "%s/coord.pub", s_dir);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/coord", s_dir);
    cr_assert_eq(fl_keygen(prefix, "coord"), 0, "%s", fl_error_msg());
    snprintf(prefix, sizeof prefix, "%s/branch", s_dir);
    cr_assert_eq(fl_keygen(prefix, "branch-a"), 0, "%s", fl_error_msg());
    snprintf(prefix, sizeof prefix, "%s/coord.key", s_dir);
    s_coord = fl_identity_load(prefix);
    cr_assert_not_null(s_coord);
    s_write_data();
    s_write_base();
}

static void s_teardown(void)
{
    fl_identity_destroy(&s_coord);
    free(s_base_bytes);
    s_base_bytes = NULL;
    fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(fl_branch, .init = s_setup, .fini = s_teardown, .timeout = 30);
TestSuite(fl_basecache, .init = s_setup, .fini = s_teardown, .timeout = 30);
TestSuite(fedtl_client, .init = s_setup, .fini = s_teardown, .timeout = 30);

static uint64_t s_ms(void)
{
    return (uint64_t)fl_now_ms();
}

/* An adapter for the base (head over classes 0 and 2), as the coordinator would send it. */
static void s_make_adapter(uint8_t **buf, size_t *len)
{
    struct fl_base_file bf;
    cr_assert_eq(fl_base_read(s_base, &bf), 0);
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_HEAD, .num_classes = 2, .seed = 5};
    am.class_ids[0] = 0;
    am.class_ids[1] = 2;
    fl_model_t *m = fl_model_from_base(&bf, s_base, &am, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    cr_assert_eq(fl_model_pack_adapter(m, fl_model_adapter_meta(m)->round, buf, len), 0);
    fl_model_destroy(&m);
    fl_base_close(&bf);
}

/* ---- the fake coordinator ---- */

struct fake {
    /* set up by the test */
    void *ctx, *router, *zap;            /* its context, ROUTER, ZAP handler (or NULL) */
    char endpoint[128];                  /* where it listens */
    uint8_t sig[FL_SIG_BYTES];           /* signature sent in Welcome */
    uint8_t run_id[FL_RUN_ID_BYTES];     /* run id sent in Welcome */
    uint8_t nonce[FL_HELLO_NONCE_BYTES]; /* the Challenge sent */
    uint8_t key[FL_SIGN_PK_BYTES];       /* the key the branch proved */
    int challenges;                      /* Challenges sent */
    int corrupt_chunk;                   /* index of a chunk to damage, -1 for none */
    const char *zap_status;              /* ZAP answer, e.g. "400" */
    uint8_t *task;                       /* adapter of a round-1 task, or NULL */
    size_t task_len;
    uint8_t *final; /* final adapter, or NULL */
    size_t final_len;
    bool garbage;       /* send junk before the task / final */
    uint8_t *junk_task; /* with garbage: the junk task's adapter (NULL: not one) */
    size_t junk_task_len;
    volatile sig_atomic_t *stop; /* set once the branch is ready */
    const char *bye_first;       /* answer the first Hello with a Bye with this text */
    Fedtl__ByeCode bye_code;     /* and this code */
    atomic_int quit;             /* the test is done */
    /* observed */
    int hellos, ready_hellos, requests, chunks, updates;
    uint64_t first_offset;
    bool update_ok;
    uint64_t upd_samples, upd_eval_samples;
    float upd_accuracy;
    char bye[128];
    Fedtl__ByeCode bye_got; /* the code of the branch's Bye */
    atomic_int got_bye;
    bool task_sent, final_sent, junk_sent;
};

static void s_fake_send(struct fake *f, const uint8_t *peer, size_t plen, Fedtl__Envelope *env)
{
    cr_assert_eq(fl_net_send(f->router, peer, plen, env, ZMQ_DONTWAIT, NULL), 0);
}

static void s_fake_welcome(struct fake *f, const uint8_t *peer, size_t plen)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Welcome w = FEDTL__WELCOME__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    w.federation = FEDERATION;
    w.base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, s_hash};
    w.base_size = s_base_len;
    w.base_signature = (ProtobufCBinaryData){FL_SIG_BYTES, f->sig};
    w.chunk_size = CHUNK;
    w.heartbeat_ms = 200;
    w.run_id = (ProtobufCBinaryData){FL_RUN_ID_BYTES, f->run_id};
    s_fake_send(f, peer, plen, &env);
}

static void s_fake_task(struct fake *f, const uint8_t *peer, size_t plen, uint8_t *adapter,
                        size_t len)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__RoundTask t = FEDTL__ROUND_TASK__INIT;
    Fedtl__TrainParams p = FEDTL__TRAIN_PARAMS__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_TASK;
    env.task = &t;
    t.round = 1;
    t.adapter = (ProtobufCBinaryData){len, adapter};
    t.params = &p;
    t.deadline_ms = 10000;
    p.epochs = 3;
    p.batch = 32;
    p.lr = 0.01f;
    p.seed = 3;
    s_fake_send(f, peer, plen, &env);
}

static void s_fake_final(struct fake *f, const uint8_t *peer, size_t plen)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__FinalModel m = FEDTL__FINAL_MODEL__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_FINAL;
    env.final = &m;
    m.round = 1;
    m.adapter = (ProtobufCBinaryData){f->final_len, f->final};
    s_fake_send(f, peer, plen, &env);
    f->final_sent = true;
}

/* Challenge the connection (a fresh nonce) unless the Hello proves its key over the last one. */
static bool s_fake_proven(struct fake *f, const uint8_t *peer, size_t plen, const Fedtl__Hello *h)
{
    if (f->challenges > 0 && h->signature.len == FL_SIG_BYTES &&
        fl_verify_hello(h->branch_key.data, FEDERATION, f->nonce, h->signature.data) == 0) {
        memcpy(f->key, h->branch_key.data, FL_SIGN_PK_BYTES);
        return true;
    }
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Challenge c = FEDTL__CHALLENGE__INIT;
    randombytes_buf(f->nonce, sizeof f->nonce);
    c.nonce = (ProtobufCBinaryData){FL_HELLO_NONCE_BYTES, f->nonce};
    c.federation = FEDERATION;
    env.body_case = FEDTL__ENVELOPE__BODY_CHALLENGE;
    env.challenge = &c;
    s_fake_send(f, peer, plen, &env);
    f->challenges++;
    return false;
}

static void s_fake_hello(struct fake *f, const uint8_t *peer, size_t plen, const Fedtl__Hello *h)
{
    if (!s_fake_proven(f, peer, plen, h))
        return;
    if (f->hellos++ == 0 && f->bye_first) {
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
        Fedtl__Bye b = FEDTL__BYE__INIT;
        env.body_case = FEDTL__ENVELOPE__BODY_BYE;
        env.bye = &b;
        b.reason = (char *)f->bye_first;
        b.code = f->bye_code;
        s_fake_send(f, peer, plen, &env);
        return;
    }
    s_fake_welcome(f, peer, plen);
    if (h->base_hash.len != FL_HASH_BYTES)
        return;
    f->ready_hellos++;
    if (f->garbage && !f->junk_sent) {
        zmq_send(f->router, peer, plen, ZMQ_SNDMORE);
        zmq_send(f->router, "\x08\x01\xff\xff junk", 9, 0);
        uint8_t nonsense[16] = "not an adapter";
        if (f->junk_task)
            s_fake_task(f, peer, plen, f->junk_task, f->junk_task_len);
        else
            s_fake_task(f, peer, plen, nonsense, sizeof nonsense);
        f->junk_sent = true;
    }
    if (f->stop)
        *f->stop = 1;
    if (f->task && !f->task_sent) {
        s_fake_task(f, peer, plen, f->task, f->task_len);
        f->task_sent = true;
    } else if (f->final && !f->final_sent && !f->task) {
        s_fake_final(f, peer, plen);
    }
}

static void s_fake_request(struct fake *f, const uint8_t *peer, size_t plen,
                           const Fedtl__BaseRequest *r)
{
    if (f->requests++ == 0)
        f->first_offset = r->offset;
    for (uint32_t i = 0; i < r->credit; i++) {
        uint64_t off = r->offset + (uint64_t)i * CHUNK;
        if (off >= s_base_len)
            break;
        size_t n = s_base_len - off < CHUNK ? s_base_len - off : CHUNK;
        uint8_t buf[CHUNK];
        memcpy(buf, s_base_bytes + off, n);
        if ((int)(off / CHUNK) == f->corrupt_chunk)
            buf[n / 2] ^= 0x40;
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
        Fedtl__BaseChunk c = FEDTL__BASE_CHUNK__INIT;
        env.body_case = FEDTL__ENVELOPE__BODY_BASE_CHUNK;
        env.base_chunk = &c;
        c.base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, s_hash};
        c.offset = off;
        c.data = (ProtobufCBinaryData){n, buf};
        s_fake_send(f, peer, plen, &env);
        f->chunks++;
    }
}

/* Check the update as the real coordinator must: signature first, then open, decode, parse. */
static void s_fake_update(struct fake *f, const uint8_t *peer, size_t plen,
                          const Fedtl__SealedUpdate *u)
{
    f->updates++;
    struct fl_sealed sealed;
    (void)peer;
    (void)plen;
    bool ok = u->round == 1 && memcmp(u->branch_key.data, f->key, FL_SIGN_PK_BYTES) == 0 &&
              memcmp(u->base_hash.data, s_hash, FL_HASH_BYTES) == 0 &&
              fl_wire_sealed_get(u, &sealed) == 0 &&
              fl_verify_update(&sealed, u->branch_key.data, FEDERATION, f->run_id) == 0;
    struct fl_plain plain = {0};
    Fedtl__UpdateBody *b = NULL;
    struct fl_adapter_file a = {0};
    ok = ok && fl_open_update(s_coord, &sealed, u->branch_key.data, FEDERATION, f->run_id, NULL,
                              &plain) == 0;
    ok = ok && fl_wire_decode_body(plain.data, plain.len, &b) == 0;
    ok = ok && fl_adapter_unpack(b->adapter.data, b->adapter.len, "update", &a) == 0;
    ok = ok && fl_adapter_check_base(&a, "update", s_hash, "base") == 0 && a.meta.round == 1 &&
         a.meta.num_classes == 2;
    if (ok) {
        f->upd_samples = b->samples;
        f->upd_eval_samples = b->eval_samples;
        f->upd_accuracy = b->eval_accuracy;
    }
    f->update_ok = ok;
    fl_adapter_close(&a);
    fl_wire_free_body(&b);
    fl_plain_free(&plain);
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__UpdateReceipt r = FEDTL__UPDATE_RECEIPT__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_RECEIPT;
    env.receipt = &r;
    r.round = 1;
    r.accepted = ok;
    r.reason = ok ? "" : "bad update";
    s_fake_send(f, peer, plen, &env);
    if (f->final)
        s_fake_final(f, peer, plen);
}

static void s_fake_zap(struct fake *f)
{
    char frames[8][256];
    size_t lens[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        int r = zmq_recv(f->zap, frames[n], sizeof frames[n], 0);
        lens[n++] = r < 0 ? 0 : (size_t)r;
        size_t sz = sizeof more;
        zmq_getsockopt(f->zap, ZMQ_RCVMORE, &more, &sz);
    }
    zmq_send(f->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(f->zap, frames[1], lens[1], ZMQ_SNDMORE);
    zmq_send(f->zap, f->zap_status, 3, ZMQ_SNDMORE);
    zmq_send(f->zap, "refused", 7, ZMQ_SNDMORE);
    zmq_send(f->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(f->zap, "", 0, 0);
}

static void *s_fake_run(void *arg)
{
    struct fake *f = arg;
    uint64_t quit_at = 0;
    for (;;) {
        if (atomic_load(&f->quit)) {
            if (!quit_at)
                quit_at = s_ms();
            if (atomic_load(&f->got_bye) || s_ms() - quit_at > 300)
                break;
        }
        zmq_pollitem_t items[2] = {{f->router, 0, ZMQ_POLLIN, 0}, {f->zap, 0, ZMQ_POLLIN, 0}};
        zmq_poll(items, f->zap ? 2 : 1, 20);
        if (f->zap && (items[1].revents & ZMQ_POLLIN))
            s_fake_zap(f);
        for (;;) {
            uint8_t peer[FL_NET_PEER_MAX];
            size_t plen = 0;
            Fedtl__Envelope *env = NULL;
            int rc = fl_net_recv(f->router, true, peer, &plen, &env, NULL);
            if (rc == 1 || rc == FL_EIO)
                break;
            if (rc < 0)
                continue;
            switch (env->body_case) {
            case FEDTL__ENVELOPE__BODY_HELLO:
                s_fake_hello(f, peer, plen, env->hello);
                break;
            case FEDTL__ENVELOPE__BODY_BASE_REQUEST:
                s_fake_request(f, peer, plen, env->base_request);
                break;
            case FEDTL__ENVELOPE__BODY_HEARTBEAT:
                s_fake_send(f, peer, plen, env);
                break;
            case FEDTL__ENVELOPE__BODY_UPDATE:
                s_fake_update(f, peer, plen, env->update);
                break;
            case FEDTL__ENVELOPE__BODY_BYE:
                snprintf(f->bye, sizeof f->bye, "%s", env->bye->reason);
                f->bye_got = env->bye->code;
                atomic_store(&f->got_bye, 1);
                break;
            default:
                break;
            }
            fl_wire_free(&env);
        }
    }
    return NULL;
}

/* A fake coordinator on a fresh port; CURVE with s_coord's key. */
static void s_fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->corrupt_chunk = -1;
    cr_assert_eq(fl_sign_base(s_coord, s_hash, f->sig), 0);
    randombytes_buf(f->run_id, sizeof f->run_id);
    f->ctx = zmq_ctx_new();
    cr_assert_not_null(f->ctx);
}

static void s_fake_start(struct fake *f, pthread_t *th)
{
    if (f->zap_status) {
        f->zap = zmq_socket(f->ctx, ZMQ_REP);
        cr_assert_eq(zmq_bind(f->zap, "inproc://zeromq.zap.01"), 0);
    }
    f->router = fl_net_router(f->ctx, s_coord, "tcp://127.0.0.1:*");
    cr_assert_not_null(f->router, "%s", fl_error_msg());
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    cr_assert_eq(pthread_create(th, NULL, s_fake_run, f), 0);
}

static void s_fake_stop(struct fake *f, pthread_t th)
{
    atomic_store(&f->quit, 1);
    pthread_join(th, NULL);
    zmq_close(f->router);
    if (f->zap)
        zmq_close(f->zap);
    zmq_ctx_term(f->ctx);
}

static struct fl_branch_config s_config(const char *endpoint)
{
    return (struct fl_branch_config){
        .coordinator = endpoint,
        .coordinator_key = s_cpub,
        .key = s_bkey,
        .data = s_data,
        .holdout = 0.25,
        .cache_dir = s_cache,
        .out = s_out,
        .connect_timeout_s = 5,
    };
}

/* Run a branch against the fake; returns fl_branch_run's result. */
static int s_run_branch(struct fake *f, const struct fl_branch_config *cfg,
                        volatile sig_atomic_t *stop)
{
    pthread_t th;
    s_fake_start(f, &th);
    fl_branch_t *b = fl_branch_new(cfg);
    cr_assert_not_null(b, "%s", fl_error_msg());
    int rc = fl_branch_run(b, stop);
    fl_branch_destroy(&b);
    s_fake_stop(f, th);
    return rc;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void s_cache_path(const char *ext, char *out, size_t len)
{
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(s_hash, hex);
    snprintf(out, len, "%s/%s%s", s_cache, hex, ext);
}

static void s_assert_file_equals(const char *path, const uint8_t *want, size_t want_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(fl_fs_read_file(path, 1u << 26, &buf, &len), 0, "%s", path);
    cr_assert_eq(len, want_len);
    cr_assert_eq(memcmp(buf, want, len), 0);
    free(buf);
}

static size_t s_nchunks(void)
{
    return (s_base_len + CHUNK - 1) / CHUNK;
}

/* ---- the branch against the fake coordinator ---- */

Test(fl_branch, downloads_verifies_and_saves_the_final_adapter)
{
    struct fake f;
    s_fake_init(&f);
    s_make_adapter(&f.final, &f.final_len);
    struct fl_branch_config cfg = s_config(f.endpoint);
    int rc = s_run_branch(&f, &cfg, NULL);
    cr_assert_eq(rc, 0, "%s", fl_error_msg());
    cr_assert_eq(f.first_offset, 0);
    cr_assert_eq(f.chunks, (int)s_nchunks(), "every chunk once");
    cr_assert_geq(f.requests, 2, "credit comes in several requests");
    cr_assert_geq(f.ready_hellos, 1);
    char ftm[700], part[700];
    s_cache_path(".ftm", ftm, sizeof ftm);
    s_cache_path(".part", part, sizeof part);
    s_assert_file_equals(ftm, s_base_bytes, s_base_len);
    cr_assert(!s_exists(part));
    s_assert_file_equals(s_out, f.final, f.final_len);
    cr_assert_str_eq(f.bye, "branch done");
    cr_assert_eq(f.bye_got, FEDTL__BYE_CODE__BYE_DONE);
    free(f.final);
}

Test(fl_branch, cached_base_means_no_base_request)
{
    struct fake f;
    s_fake_init(&f);
    s_make_adapter(&f.final, &f.final_len);
    char ftm[700];
    s_cache_path(".ftm", ftm, sizeof ftm);
    cr_assert_eq(fl_fs_mkdirs(s_cache, 0755), 0);
    cr_assert_eq(fl_fs_write_file(ftm, s_base_bytes, s_base_len, 0644), 0);
    struct fl_branch_config cfg = s_config(f.endpoint);
    cr_assert_eq(s_run_branch(&f, &cfg, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(f.requests, 0);
    cr_assert_eq(f.chunks, 0);
    cr_assert_geq(f.ready_hellos, 1);
    s_assert_file_equals(s_out, f.final, f.final_len);
    free(f.final);
}

Test(fl_branch, resumes_from_a_partial_download)
{
    struct fake f;
    s_fake_init(&f);
    s_make_adapter(&f.final, &f.final_len);
    char part[700], ftm[700];
    s_cache_path(".part", part, sizeof part);
    s_cache_path(".ftm", ftm, sizeof ftm);
    cr_assert_eq(fl_fs_mkdirs(s_cache, 0755), 0);
    /* An interrupted download: two chunks and half of the third. */
    cr_assert_eq(fl_fs_write_file(part, s_base_bytes, 2 * CHUNK + CHUNK / 2, 0644), 0);
    struct fl_branch_config cfg = s_config(f.endpoint);
    cr_assert_eq(s_run_branch(&f, &cfg, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(f.first_offset, 2 * CHUNK, "resumes at the last whole chunk");
    cr_assert_eq(f.chunks, (int)s_nchunks() - 2);
    s_assert_file_equals(ftm, s_base_bytes, s_base_len);
    free(f.final);
}

Test(fl_branch, rejects_a_corrupted_chunk)
{
    struct fake f;
    s_fake_init(&f);
    f.corrupt_chunk = 1;
    struct fl_branch_config cfg = s_config(f.endpoint);
    int rc = s_run_branch(&f, &cfg, NULL);
    cr_assert_eq(rc, FL_EHASH, "rc %d: %s", rc, fl_error_msg());
    char part[700], ftm[700];
    s_cache_path(".part", part, sizeof part);
    s_cache_path(".ftm", ftm, sizeof ftm);
    cr_assert(!s_exists(part) && !s_exists(ftm), "the bad file is deleted");
    cr_assert_eq(f.ready_hellos, 0);
}

Test(fl_branch, rejects_a_base_signed_by_another_key)
{
    struct fake f;
    s_fake_init(&f);
    struct fl_identity *other = fl_identity_load(s_bkey);
    cr_assert_not_null(other);
    cr_assert_eq(fl_sign_base(other, s_hash, f.sig), 0);
    fl_identity_destroy(&other);
    struct fl_branch_config cfg = s_config(f.endpoint);
    int rc = s_run_branch(&f, &cfg, NULL);
    cr_assert_eq(rc, FL_ECRYPTO, "rc %d: %s", rc, fl_error_msg());
    cr_assert(strstr(fl_error_msg(), "signature"), "%s", fl_error_msg());
    cr_assert_eq(f.requests, 0, "nothing is downloaded for an unsigned base");
}

Test(fl_branch, trains_a_round_and_sends_a_sealed_signed_update)
{
    struct fake f;
    s_fake_init(&f);
    s_make_adapter(&f.task, &f.task_len);
    s_make_adapter(&f.final, &f.final_len);
    struct fl_branch_config cfg = s_config(f.endpoint);
    cr_assert_eq(s_run_branch(&f, &cfg, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(f.updates, 1);
    cr_assert(f.update_ok, "signature verifies, box opens, adapter fits the base");
    /* Classes 0 and 2 of 3: 200 records, a quarter held out. */
    cr_assert_eq(f.upd_samples + f.upd_eval_samples, 200);
    cr_assert_gt(f.upd_eval_samples, 30);
    cr_assert_gt(f.upd_samples, 100);
    cr_assert_gt(f.upd_accuracy, 0.9f, "separable data: accuracy %f", (double)f.upd_accuracy);
    s_assert_file_equals(s_out, f.final, f.final_len);
    free(f.task);
    free(f.final);
}

Test(fl_branch, ignores_malformed_messages)
{
    struct fake f;
    s_fake_init(&f);
    f.garbage = true;
    s_make_adapter(&f.final, &f.final_len);
    struct fl_branch_config cfg = s_config(f.endpoint);
    cr_assert_eq(s_run_branch(&f, &cfg, NULL), 0, "%s", fl_error_msg());
    cr_assert(f.junk_sent);
    cr_assert_eq(f.updates, 0, "a task with a bad adapter is ignored");
    s_assert_file_equals(s_out, f.final, f.final_len);
    free(f.final);
}

/* A LoRA adapter for the base whose target layer is named by a forged log line. */
#define S_FORGED "x\nts=1 level=error event=forged" /* fits a target name */
static void s_make_forged_adapter(uint8_t **buf, size_t *len)
{
    struct fl_base_file bf;
    cr_assert_eq(fl_base_read(s_base, &bf), 0);
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_LORA,
                                 .rank = 2,
                                 .alpha = 4,
                                 .num_classes = 2,
                                 .seed = 5,
                                 .ntargets = 1,
                                 .class_ids = {0, 2}};
    snprintf(am.targets[0], sizeof am.targets[0], "fc1");
    fl_model_t *m = fl_model_from_base(&bf, s_base, &am, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    struct fl_adapter_meta meta = *fl_model_adapter_meta(m);
    snprintf(meta.targets[0], sizeof meta.targets[0], "%s", S_FORGED);
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(m, FL_SET_ADAPTER, &n);
    cr_assert_not_null(ts);
    cr_assert_eq(fl_adapter_pack(&meta, ts, n, buf, len), 0, "%s", fl_error_msg());
    free(ts);
    fl_model_destroy(&m);
    fl_base_close(&bf);
}

Test(fl_branch, a_coordinator_string_cannot_forge_a_line_of_the_branch_log)
{
    struct fake f;
    s_fake_init(&f);
    f.garbage = true;
    s_make_forged_adapter(&f.junk_task, &f.junk_task_len);
    s_make_adapter(&f.final, &f.final_len);
    struct fl_branch_config cfg = s_config(f.endpoint);
    char log[700];
    snprintf(log, sizeof log, "%s/branch.log", s_dir);
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = s_run_branch(&f, &cfg, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(rc, 0, "%s", fl_error_msg());
    /* The task's error names the target layer: escaped, on its event's own line. */
    cr_assert_eq(fl_test_count(log, "event=forged"), 1, "the forged name was not logged");
    char *text = fl_test_slurp(log);
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        cr_assert(strncmp(l, "ts=1 ", 5) != 0, "a forged log line: %s", l);
    free(text);
    free(f.junk_task);
    free(f.final);
}

Test(fl_branch, stops_on_request_with_a_bye)
{
    struct fake f;
    s_fake_init(&f);
    volatile sig_atomic_t stop = 0;
    f.stop = &stop;
    struct fl_branch_config cfg = s_config(f.endpoint);
    cr_assert_eq(s_run_branch(&f, &cfg, &stop), 0, "%s", fl_error_msg());
    cr_assert_str_eq(f.bye, "branch stopping");
    cr_assert_eq(f.bye_got, FEDTL__BYE_CODE__BYE_STOPPING);
}

Test(fl_branch, a_bye_is_read_by_its_code_never_by_its_text)
{
    /* The texts are deliberately misleading: only the code may decide. */
    static const struct {
        Fedtl__ByeCode code;
        const char *text;
        bool stops;
    } byes[] = {{FEDTL__BYE_CODE__BYE_NOT_ENROLLED, "say hello, all is well", true},
                {FEDTL__BYE_CODE__BYE_REVOKED, "coordinator shutting down", true},
                {FEDTL__BYE_CODE__BYE_SHUTDOWN, "refused: key revoked", false},
                {FEDTL__BYE_CODE__BYE_SAY_HELLO, "refused: key not enrolled", false},
                {FEDTL__BYE_CODE__BYE_DONE, "refused", false}};
    for (size_t i = 0; i < sizeof byes / sizeof byes[0]; i++) {
        struct fake f;
        s_fake_init(&f);
        f.bye_first = byes[i].text;
        f.bye_code = byes[i].code;
        s_make_adapter(&f.final, &f.final_len);
        struct fl_branch_config cfg = s_config(f.endpoint);
        cfg.heartbeat_ms = 100;
        int rc = s_run_branch(&f, &cfg, NULL);
        if (byes[i].stops) {
            cr_assert_eq(rc, FL_ECRYPTO, "code %d: %s", byes[i].code, fl_error_msg());
            cr_assert(strstr(fl_error_msg(), "refused"), "%s", fl_error_msg());
            cr_assert_eq(f.hellos, 1);
        } else {
            cr_assert_eq(rc, 0, "code %d: %s", byes[i].code, fl_error_msg());
            cr_assert_geq(f.hellos, byes[i].code == FEDTL__BYE_CODE__BYE_DONE ? 2 : 3,
                          "registered again after code %d", byes[i].code);
        }
        free(f.final);
    }
}

Test(fl_branch, refused_key_exits_fast)
{
    struct fake f;
    s_fake_init(&f);
    f.zap_status = "400";
    struct fl_branch_config cfg = s_config(f.endpoint);
    cfg.connect_timeout_s = 60; /* far beyond a refusal, even on a loaded machine */
    uint64_t t0 = s_ms();
    int rc = s_run_branch(&f, &cfg, NULL);
    cr_assert_lt(rc, 0);
    /* the refusal itself, not the connect timeout's "no answer" */
    cr_assert(strstr(fl_error_msg(), "allow-list"), "%s", fl_error_msg());
    cr_assert_lt(s_ms() - t0, 30000, "no waiting for the connect timeout");
    cr_assert_eq(f.hellos, 0);
}

Test(fl_branch, wrong_coordinator_key_does_not_hang)
{
    struct fake f;
    s_fake_init(&f);
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s/other", s_dir);
    cr_assert_eq(fl_keygen(prefix, "other"), 0);
    snprintf(prefix, sizeof prefix, "%s/other.pub", s_dir);
    struct fl_branch_config cfg = s_config(f.endpoint);
    cfg.coordinator_key = prefix;
    cfg.connect_timeout_s = 3;
    uint64_t t0 = s_ms();
    int rc = s_run_branch(&f, &cfg, NULL);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(fl_error_msg(), "coordinator-key"), "%s", fl_error_msg());
    cr_assert_lt(s_ms() - t0, 4500);
    cr_assert_eq(f.hellos, 0);
}

Test(fl_branch, gives_up_when_nobody_answers)
{
    struct fl_branch_config cfg = s_config("tcp://127.0.0.1:1");
    cfg.connect_timeout_s = 1;
    fl_branch_t *b = fl_branch_new(&cfg);
    cr_assert_not_null(b);
    uint64_t t0 = s_ms();
    int rc = fl_branch_run(b, NULL);
    fl_branch_destroy(&b);
    cr_assert_eq(rc, FL_EIO);
    cr_assert(strstr(fl_error_msg(), "no answer from tcp://127.0.0.1:1"), "%s", fl_error_msg());
    cr_assert_lt(s_ms() - t0, 3000);
}

/* ---- the cache on its own ---- */

static fl_basecache_t *s_cache_offer(struct fl_base_offer *o)
{
    memcpy(o->hash, s_hash, FL_HASH_BYTES);
    o->size = s_base_len;
    o->chunk_size = CHUNK;
    cr_assert_eq(fl_sign_base(s_coord, s_hash, o->signature), 0);
    fl_basecache_t *c = fl_basecache_new(s_cache, s_coord->sign_pk);
    cr_assert_not_null(c);
    return c;
}

Test(fl_basecache, keeps_credit_in_flight_and_ignores_stray_chunks)
{
    struct fl_base_offer o;
    fl_basecache_t *c = s_cache_offer(&o);
    struct fl_base_file bf;
    cr_assert_eq(fl_basecache_open(c, &o, &bf), FL_ENOTFOUND);
    cr_assert_eq(fl_basecache_begin(c, &o, 0), 0);
    uint64_t off;
    uint32_t credit;
    cr_assert(fl_basecache_next_request(c, 0, &off, &credit));
    cr_assert_eq(off, 0);
    cr_assert_eq(credit, FL_BASECACHE_CREDIT);
    cr_assert(!fl_basecache_next_request(c, 1, &off, &credit), "8 in flight: wait");
    uint8_t other[FL_HASH_BYTES] = {1};
    cr_assert_eq(fl_basecache_chunk(c, other, FL_HASH_BYTES, 0, s_base_bytes, CHUNK, 2), 0);
    cr_assert_eq(
        fl_basecache_chunk(c, s_hash, FL_HASH_BYTES, CHUNK, s_base_bytes + CHUNK, CHUNK, 2), 0,
        "an out-of-order chunk is ignored");
    uint64_t have, size;
    fl_basecache_progress(c, &have, &size);
    cr_assert_eq(have, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(fl_basecache_chunk(c, s_hash, FL_HASH_BYTES, (uint64_t)i * CHUNK,
                                        s_base_bytes + (size_t)i * CHUNK, CHUNK, 3),
                     0);
    cr_assert(fl_basecache_next_request(c, 4, &off, &credit), "half arrived: ask for more");
    cr_assert_eq(off, (uint64_t)FL_BASECACHE_CREDIT * CHUNK);
    cr_assert_eq(credit,
                 s_nchunks() - FL_BASECACHE_CREDIT < 4 ? s_nchunks() - FL_BASECACHE_CREDIT : 4);
    /* Nothing more arrives: after the stall time the missing bytes are asked for again. */
    fl_basecache_set_stall_ms(c, 100);
    cr_assert(fl_basecache_next_request(c, 500, &off, &credit));
    cr_assert_eq(off, 4 * CHUNK);
    fl_basecache_destroy(&c);
    fl_basecache_destroy(&c);
}

Test(fl_basecache, whole_part_file_needs_no_chunks_and_corrupt_cache_is_dropped)
{
    struct fl_base_offer o;
    fl_basecache_t *c = s_cache_offer(&o);
    char part[700], ftm[700];
    s_cache_path(".part", part, sizeof part);
    s_cache_path(".ftm", ftm, sizeof ftm);
    cr_assert_eq(fl_fs_write_file(part, s_base_bytes, s_base_len, 0644), 0);
    cr_assert_eq(fl_basecache_begin(c, &o, 0), 1, "crashed before the rename: just finish");
    struct fl_base_file bf;
    cr_assert_eq(fl_basecache_finish(c, &bf), 0, "%s", fl_error_msg());
    cr_assert_eq(memcmp(bf.hash, s_hash, FL_HASH_BYTES), 0);
    fl_base_close(&bf);
    cr_assert(s_exists(ftm) && !s_exists(part));
    /* Damage the cached copy: it is removed and reported as missing. */
    uint8_t *bad = malloc(s_base_len);
    memcpy(bad, s_base_bytes, s_base_len);
    bad[s_base_len - 3] ^= 1;
    cr_assert_eq(fl_fs_write_file(ftm, bad, s_base_len, 0644), 0);
    free(bad);
    cr_assert_eq(fl_basecache_open(c, &o, &bf), FL_ENOTFOUND);
    cr_assert(!s_exists(ftm));
    /* A signature by another key is refused before anything is read or fetched. */
    o.signature[0] ^= 1;
    cr_assert_eq(fl_basecache_begin(c, &o, 0), FL_ECRYPTO);
    fl_basecache_destroy(&c);
}

/* ---- the program ---- */

static int s_client(const char *args, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/fedtl-client %s", FEDTL_BIN_DIR, args);
    return fl_test_run(cmd, out);
}

Test(fedtl_client, check_config_accepts_a_good_command_line)
{
    char args[3000], *out = NULL;
    snprintf(args, sizeof args,
             "--coordinator tcp://127.0.0.1:7777 --coordinator-key %s --key %s --data %s "
             "--cache-dir %s --check-config",
             s_cpub, s_bkey, s_data, s_cache);
    int rc = s_client(args, &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "configuration OK") && strstr(out, "300 records") &&
                  strstr(out, "branch-a"),
              "%s", out);
    free(out);
}

Test(fedtl_client, check_config_reads_an_ini_file_and_flags_win)
{
    char ini[700], args[3000], *out = NULL;
    snprintf(ini, sizeof ini, "%s/client.ini", s_dir);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[coordinator]\nrounds = 3\n[client]\ncoordinator = tcp://10.0.0.1:7777\n"
            "coordinator_key = %s\nkey = %s\ndata = /nonexistent.csv\nholdout = 0.1\n"
            "heartbeat-ms = 500\ninsecure = yes\n",
            s_cpub, s_bkey);
    fclose(f);
    snprintf(args, sizeof args, "--config %s --data %s --check-config", ini, s_data);
    int rc = s_client(args, &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "tcp://10.0.0.1:7777") && strstr(out, "500 ms") &&
                  strstr(out, "--insecure") && strstr(out, "0.1"),
              "%s", out);
    free(out);
}

Test(fedtl_client, bad_options_are_usage_errors)
{
    char args[3000], *out = NULL;
    /* --data missing */
    snprintf(args, sizeof args,
             "--coordinator tcp://x:1 --coordinator-key %s --key %s "
             "--check-config",
             s_cpub, s_bkey);
    cr_assert_eq(s_client(args, &out), 2, "%s", out);
    cr_assert(strstr(out, "required") && strstr(out, "usage:"), "%s", out);
    free(out);
    snprintf(args, sizeof args,
             "--coordinator tcp://x:1 --coordinator-key %s --key %s "
             "--data %s --holdout 1.5 --check-config",
             s_cpub, s_bkey, s_data);
    cr_assert_eq(s_client(args, &out), 2, "%s", out);
    free(out);
    cr_assert_eq(s_client("--bogus", &out), 2, "%s", out);
    free(out);
    cr_assert_eq(s_client("--help", &out), 0, "%s", out);
    free(out);
}

Test(fedtl_client, unreadable_key_or_data_is_an_error)
{
    char args[3000], *out = NULL;
    snprintf(args, sizeof args,
             "--coordinator tcp://x:1 --coordinator-key %s --key %s/nope.key "
             "--data %s --check-config",
             s_cpub, s_dir, s_data);
    cr_assert_eq(s_client(args, &out), 1, "%s", out);
    free(out);
    snprintf(args, sizeof args,
             "--coordinator tcp://x:1 --coordinator-key %s --key %s "
             "--data %s/nope.csv --check-config",
             s_cpub, s_bkey, s_dir);
    cr_assert_eq(s_client(args, &out), 1, "%s", out);
    free(out);
}

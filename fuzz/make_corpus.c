/* make_corpus: writes the seed corpus of every fuzz target (fuzz/corpus/<target>/) from the
 * real fedtl code: a tiny mlp, conv (fl_model_new, fl_base_write) and graph base (corpus_graph.c),
 * one adapter per method on the mlp base (fl_model_from_base, fl_adapter_pack), one Envelope per
 * message type and a real sealed update (fl_wire_encode, fl_seal_update), IDX pairs and CSV
 * files (raw and gzip), coordinator and client configurations. Output is byte-for-byte
 * reproducible: libsodium's randomness is replaced by a seeded stream and every timestamp is fixed.
 * usage: make_corpus OUTDIR   (OUTDIR/<target>/ are created) */
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_seal.h"
#include "fuzz_util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define S_CREATED 1700000000 /* fixed creation time of every file */

static const char *s_out;

/* ---- deterministic randomness (sealed boxes draw an ephemeral key) ---- */

static uint64_t s_rng_counter;

static void s_rng_buf(void *buf, size_t size)
{
    uint8_t seed[randombytes_SEEDBYTES] = {0};
    s_rng_counter++;
    memcpy(seed, &s_rng_counter, sizeof s_rng_counter);
    randombytes_buf_deterministic(buf, size, seed);
}

static uint32_t s_rng_random(void)
{
    uint32_t v;
    s_rng_buf(&v, sizeof v);
    return v;
}

static const char *s_rng_name(void)
{
    return "fuzz-corpus-deterministic";
}

static randombytes_implementation s_rng = {
    .implementation_name = s_rng_name, .random = s_rng_random, .buf = s_rng_buf};

/* ---- output ---- */

static void s_die(const char *what)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, fl_error_msg());
    exit(1);
}

static void s_mkdir(const char *sub)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", s_out, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
}

static void s_write(const char *target, const char *name, const void *buf, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", s_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* gzip (RFC 1952, zlib's fixed header: mtime 0) of buf into a malloc'd buffer. */
static uint8_t *s_gzip(const uint8_t *buf, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        exit(1);
    size_t cap = deflateBound(&z, len) + 32;
    uint8_t *out = malloc(cap);
    if (!out)
        exit(1);
    z.next_in = (Bytef *)buf;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        exit(1);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

/* ---- models ---- */

static struct fl_layer_spec s_dense(const char *name, int in, int out)
{
    struct fl_layer_spec l = {.kind = FL_LAYER_DENSE, .in_features = in, .out_features = out};
    snprintf(l.name, sizeof l.name, "%s", name);
    return l;
}

static struct fl_layer_spec s_simple(enum fl_layer_kind kind, const char *name, int k, int s)
{
    struct fl_layer_spec l = {.kind = kind, .kernel = k, .stride = s};
    snprintf(l.name, sizeof l.name, "%s", name);
    return l;
}

/* mlp 4 -> 8 -> 8 -> 3: the built-in mlp's shape, narrowed so the files stay small. */
static void s_arch_mlp(struct fl_arch *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "mlp");
    a->in_h = a->in_w = 1, a->in_c = 4, a->num_classes = 3;
    a->layers[a->nlayers++] = s_dense("fc1", 4, 8);
    a->layers[a->nlayers++] = s_simple(FL_LAYER_RELU, "relu1", 0, 0);
    a->layers[a->nlayers++] = s_dense("fc2", 8, 8);
    a->layers[a->nlayers++] = s_simple(FL_LAYER_RELU, "relu2", 0, 0);
    a->layers[a->nlayers++] = s_dense("fc3", 8, 3);
}

/* 6x6x1 -> conv 3x3 (2 channels, pad 1) -> relu -> maxpool 2 -> flatten -> dense 3. */
static void s_arch_cnn(struct fl_arch *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "cnn-tiny");
    a->in_h = a->in_w = 6, a->in_c = 1, a->num_classes = 3;
    struct fl_layer_spec conv = {
        .kind = FL_LAYER_CONV2D, .in_ch = 1, .out_ch = 2, .kernel = 3, .stride = 1, .pad = 1};
    snprintf(conv.name, sizeof conv.name, "conv1");
    a->layers[a->nlayers++] = conv;
    a->layers[a->nlayers++] = s_simple(FL_LAYER_RELU, "relu1", 0, 0);
    a->layers[a->nlayers++] = s_simple(FL_LAYER_MAXPOOL, "pool1", 2, 2);
    a->layers[a->nlayers++] = s_simple(FL_LAYER_FLATTEN, "flatten", 0, 0);
    a->layers[a->nlayers++] = s_dense("fc1", 3 * 3 * 2, 3);
}

static void s_base(const struct fl_arch *arch, const char *name)
{
    fl_model_t *m = fl_model_new(arch, 7, NULL); /* no pool: one thread */
    if (!m)
        s_die("fl_model_new");
    struct fl_base_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.data_desc, sizeof meta.data_desc, "fuzz seed: %s, classes 0-2", arch->name);
    meta.created_unix = S_CREATED;
    meta.nclasses = 3;
    for (int i = 0; i < 3; i++)
        meta.class_ids[i] = i;
    char path[1024];
    snprintf(path, sizeof path, "%s/base/%s", s_out, name);
    if (fl_model_write_base(m, &meta, path, NULL) != 0)
        s_die(path);
    fl_model_destroy(&m);
}

/* An adapter of the given method over bf, packed into *buf (caller frees). */
static void s_adapter(const struct fl_base_file *bf, enum fl_adapter_kind kind, uint8_t **buf,
                      size_t *len)
{
    struct fl_adapter_meta am;
    memset(&am, 0, sizeof am);
    am.kind = kind;
    am.rank = kind == FL_ADAPTER_LORA ? 2 : kind == FL_ADAPTER_FFA_LORA ? 4 : 0;
    am.alpha = 2.0f * (float)am.rank;
    am.seed = 11;
    am.num_classes = 2;
    am.class_ids[0] = 3, am.class_ids[1] = 4;
    am.created_unix = S_CREATED;
    if (kind != FL_ADAPTER_HEAD) {
        snprintf(am.targets[am.ntargets++], FL_TARGET_NAME_MAX, "fc1");
        snprintf(am.targets[am.ntargets++], FL_TARGET_NAME_MAX, "fc2");
    }
    fl_model_t *m = fl_model_from_base(bf, "mlp.ftm", &am, NULL);
    if (!m)
        s_die("fl_model_from_base");
    /* Non-zero values, so a round trip that loses data shows. */
    for (size_t i = 0; i < fl_model_ntensors(m, FL_SET_ADAPTER); i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_ADAPTER, i);
        for (size_t j = 0; j < fl_tensor_numel(t); j++)
            if (t->data[j] == 0.0f)
                t->data[j] = 0.001f * (float)(j + 1);
    }
    if (fl_model_pack_adapter(m, fl_model_adapter_meta(m)->round, buf, len) != 0)
        s_die("fl_model_pack_adapter");
    fl_model_destroy(&m);
}

/* ---- wire ---- */

static void s_envelope(Fedtl__Envelope *env, const char *name)
{
    uint8_t *buf;
    size_t len;
    if (fl_wire_encode(env, &buf, &len) != 0)
        s_die(name);
    Fedtl__Envelope *check;
    if (fl_wire_decode(buf, len, &check) != 0)
        s_die(name);
    fl_wire_free(&check);
    s_write("wire", name, buf, len);
    free(buf);
}

static ProtobufCBinaryData s_bin(const uint8_t *p, size_t len)
{
    ProtobufCBinaryData b = {.len = len, .data = (uint8_t *)p};
    return b;
}

static void s_wire(const uint8_t base_hash[FL_HASH_BYTES], const uint8_t *head, size_t head_len,
                   const uint8_t *lora, size_t lora_len)
{
    struct fl_identity branch, coord;
    fuzz_branch_identity(&branch);
    fuzz_coord_identity(&coord);
    uint8_t sig[FL_SIG_BYTES];
    memset(sig, 0x5A, sizeof sig);
    if (fl_sign_base(&coord, base_hash, sig) != 0)
        s_die("fl_sign_base");

    Fedtl__Hello hello = FEDTL__HELLO__INIT;
    hello.branch_key = s_bin(branch.sign_pk, sizeof branch.sign_pk);
    hello.name = "fuzz-branch";
    hello.base_hash = s_bin(base_hash, FL_HASH_BYTES);
    hello.samples = 120;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    s_envelope(&env, "hello");
    hello.base_hash = s_bin(NULL, 0);
    s_envelope(&env, "hello-nobase");
    uint8_t nonce[FL_HELLO_NONCE_BYTES], hello_sig[FL_SIG_BYTES];
    memset(nonce, 0x4E, sizeof nonce);
    if (fl_sign_hello(&branch, FUZZ_FEDERATION, nonce, hello_sig) != 0)
        s_die("fl_sign_hello");
    hello.signature = s_bin(hello_sig, sizeof hello_sig);
    s_envelope(&env, "hello-signed");

    Fedtl__Challenge challenge = FEDTL__CHALLENGE__INIT;
    challenge.nonce = s_bin(nonce, sizeof nonce);
    challenge.federation = FUZZ_FEDERATION;
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_CHALLENGE;
    env.challenge = &challenge;
    s_envelope(&env, "challenge");

    Fedtl__Welcome welcome = FEDTL__WELCOME__INIT;
    welcome.federation = FUZZ_FEDERATION;
    welcome.base_hash = s_bin(base_hash, FL_HASH_BYTES);
    welcome.base_size = 2048;
    welcome.base_signature = s_bin(sig, sizeof sig);
    welcome.chunk_size = 256u << 10;
    welcome.round = FUZZ_ROUND;
    welcome.heartbeat_ms = 1000;
    welcome.run_id = s_bin(FUZZ_RUN_ID, FL_RUN_ID_BYTES);
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_WELCOME;
    env.welcome = &welcome;
    s_envelope(&env, "welcome");

    Fedtl__Heartbeat hb = FEDTL__HEARTBEAT__INIT;
    hb.round = FUZZ_ROUND;
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_envelope(&env, "heartbeat");

    Fedtl__BaseRequest req = FEDTL__BASE_REQUEST__INIT;
    req.base_hash = s_bin(base_hash, FL_HASH_BYTES);
    req.offset = 1024;
    req.credit = 4;
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_BASE_REQUEST;
    env.base_request = &req;
    s_envelope(&env, "base_request");

    Fedtl__BaseChunk chunk = FEDTL__BASE_CHUNK__INIT;
    chunk.base_hash = s_bin(base_hash, FL_HASH_BYTES);
    chunk.offset = 0;
    chunk.data = s_bin(head, head_len < 96 ? head_len : 96);
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_BASE_CHUNK;
    env.base_chunk = &chunk;
    s_envelope(&env, "base_chunk");

    Fedtl__TrainParams params = FEDTL__TRAIN_PARAMS__INIT;
    params.epochs = 2;
    params.batch = 32;
    params.lr = 0.002f;
    params.seed = 99;
    Fedtl__RoundTask task = FEDTL__ROUND_TASK__INIT;
    task.round = FUZZ_ROUND;
    task.adapter = s_bin(head, head_len);
    task.params = &params;
    task.deadline_ms = 120000;
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_TASK;
    env.task = &task;
    s_envelope(&env, "task");

    /* The real thing: a lora adapter in an UpdateBody, sealed to the coordinator and signed. */
    Fedtl__UpdateBody body = FEDTL__UPDATE_BODY__INIT;
    body.adapter = s_bin(lora, lora_len);
    body.samples = 96;
    body.train_loss = 0.52f;
    body.eval_loss = 0.61f;
    body.eval_accuracy = 0.8f;
    body.eval_samples = 24;
    uint8_t *plain;
    size_t plain_len;
    struct fl_sealed sealed;
    if (fl_wire_encode_body(&body, &plain, &plain_len) != 0)
        s_die("fl_wire_encode_body");
    s_write("wire", "update_body", plain, plain_len);
    if (fl_seal_update(&branch, coord.box_pk, FUZZ_FEDERATION, FUZZ_RUN_ID, FUZZ_ROUND, base_hash,
                       plain, plain_len, &sealed) != 0)
        s_die("fl_seal_update");
    Fedtl__SealedUpdate upd = FEDTL__SEALED_UPDATE__INIT;
    fl_wire_sealed_put(&sealed, &upd);
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &upd;
    s_envelope(&env, "update");
    free(plain);
    fl_sealed_free(&sealed);

    Fedtl__UpdateReceipt receipt = FEDTL__UPDATE_RECEIPT__INIT;
    receipt.round = FUZZ_ROUND;
    receipt.accepted = false;
    receipt.reason = "stale round";
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_RECEIPT;
    env.receipt = &receipt;
    s_envelope(&env, "receipt");

    Fedtl__FinalModel fin = FEDTL__FINAL_MODEL__INIT;
    fin.round = 10;
    fin.adapter = s_bin(head, head_len);
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_FINAL;
    env.final = &fin;
    s_envelope(&env, "final");

    Fedtl__Bye bye = FEDTL__BYE__INIT;
    bye.code = FEDTL__BYE_CODE__BYE_SHUTDOWN;
    bye.reason = "shutdown";
    env = (Fedtl__Envelope)FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    s_envelope(&env, "bye");
}

/* ---- IDX ---- */

/* Growable byte buffer. */
struct s_bytes {
    uint8_t b[4096]; /* contents */
    size_t n;        /* used */
};

static void s_put(struct s_bytes *o, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--)
        o->b[o->n++] = (uint8_t)(v >> (8 * i));
}

static void s_idx_header(struct s_bytes *o, uint8_t type, int ndims, const uint32_t *dims)
{
    o->n = 0;
    s_put(o, 0, 2);
    s_put(o, type, 1);
    s_put(o, (uint64_t)ndims, 1);
    for (int i = 0; i < ndims; i++)
        s_put(o, dims[i], 4);
}

/* Elements 0..n of type, big-endian, values that make sense for it. */
static void s_idx_values(struct s_bytes *o, uint8_t type, size_t n, int mod)
{
    for (size_t i = 0; i < n; i++) {
        int v = mod ? (int)(i % (size_t)mod) : (int)(i * 7 % 256);
        switch (type) {
        case 0x08:
        case 0x09:
            s_put(o, (uint8_t)(type == 0x09 && !mod ? v - 128 : v), 1);
            break;
        case 0x0B:
            s_put(o, (uint16_t)(int16_t)(mod ? v : v - 300), 2);
            break;
        case 0x0C:
            s_put(o, (uint32_t)(int32_t)(mod ? v : v * 1000), 4);
            break;
        case 0x0D: {
            float f = (float)v / 16.0f - 3.5f;
            uint32_t u;
            memcpy(&u, &f, sizeof u);
            s_put(o, u, 4);
            break;
        }
        case 0x0E: {
            double d = (double)v / 8.0 - 1.25;
            uint64_t u;
            memcpy(&u, &d, sizeof u);
            s_put(o, u, 8);
            break;
        }
        }
    }
}

/* One fuzz_idx input: u32le length of the images part, images, labels. */
static void s_idx_pair(const char *name, uint8_t itype, int indims, const uint32_t *idims,
                       uint8_t ltype, bool gz)
{
    struct s_bytes im, lb;
    size_t per = 1;
    for (int i = 1; i < indims; i++)
        per *= idims[i];
    s_idx_header(&im, itype, indims, idims);
    s_idx_values(&im, itype, idims[0] * per, 0);
    uint32_t ldims[1] = {idims[0]};
    s_idx_header(&lb, ltype, 1, ldims);
    s_idx_values(&lb, ltype, idims[0], 3);
    uint8_t *ip = im.b, *lp = lb.b;
    size_t il = im.n, ll = lb.n;
    if (gz) {
        ip = s_gzip(im.b, im.n, &il);
        lp = s_gzip(lb.b, lb.n, &ll);
    }
    size_t total = 4 + il + ll;
    uint8_t *out = malloc(total);
    if (!out)
        exit(1);
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(il >> (8 * i));
    memcpy(out + 4, ip, il);
    memcpy(out + 4 + il, lp, ll);
    s_write("idx", name, out, total);
    free(out);
    if (gz) {
        free(ip);
        free(lp);
    }
}

static void s_idx(void)
{
    const uint32_t img[3] = {3, 2, 2}, flat[2] = {4, 3}, one[1] = {5};
    s_idx_pair("ubyte-3d", 0x08, 3, img, 0x08, false);
    s_idx_pair("ubyte-3d.gz", 0x08, 3, img, 0x08, true);
    s_idx_pair("float-2d", 0x0D, 2, flat, 0x0C, false);
    s_idx_pair("float-2d.gz", 0x0D, 2, flat, 0x0C, true);
    s_idx_pair("sbyte-int16", 0x09, 2, flat, 0x0B, false);
    s_idx_pair("int16-sbyte", 0x0B, 3, img, 0x09, false);
    s_idx_pair("int32-ubyte.gz", 0x0C, 2, flat, 0x08, true);
    s_idx_pair("double-1d", 0x0E, 1, one, 0x08, false);
}

/* ---- CSV and configs ---- */

/* The text seeds: CSV files and the programs' INI files. */
static const struct {
    const char *target, *name, *text;
} s_texts[] = {
    {"csv", "plain.csv", "0,1,2,3\n1,4,5,6\n2,7,8,9\n"},
    {"csv", "header.csv", "label,a,b,c\n0,0.5,1.5,2.5\n2,-1,1e-3,7\n1,3,+4,.5\n"},
    {"csv", "crlf.csv", "label,x,y\r\n1,10,20\r\n0,30,40\r\n\r\n3,50,60\r\n"},
    {"csv", "spaces.csv", "  0 , 1.25 ,\t2\n\n1,3,4\n   \n2 ,5, 6"},
    {"csv", "wide.csv",
     "7,255,0,128,64,32,16,8,4,2,1,0.0039215689\n65535,1,2,3,4,5,6,7,8,9,10,11\n"},
    {"config", "full.ini",
     "; a coordinator with every setting\n"
     "[coordinator]\n"
     "federation = clinics\n"
     "endpoint = tcp://0.0.0.0:7777\n"
     "control = ipc:///tmp/fedtl-control.sock\n"
     "key = keys/coord.key\n"
     "allow = keys/allow\n"
     "base = base.ftm\n"
     "state_dir = state\n"
     "eval_data = eval-images.idx.gz\n"
     "eval_labels = eval-labels.idx.gz\n"
     "rounds = 20\n"
     "clients_per_round = 4\n"
     "fraction = 0.5\n"
     "min_clients = 2\n"
     "min_start = 3\n"
     "deadline = 90.5\n"
     "round_retries = 2\n"
     "epochs = 3\n"
     "batch = 64\n"
     "lr = 0.002\n"
     "method = ffa-lora\n"
     "rank = 16\n"
     "alpha = 32\n"
     "targets = conv2,fc1\n"
     "classes = 5-9\n"
     "seed = 12345678901234567890\n"
     "heartbeat_ms = 500\n"
     "chunk_size = 1048576\n"
     "strategy = fedavg\n"
     "insecure = false\n"
     "exit_when_done = yes\n"
     "threads = 2\n"},
    {"config", "minimal.ini",
     "[coordinator]\nbase = base.ftm\nallow = allow.pub\nkey = coord.key\n"},
    {"config", "federation-section.ini",
     "# the [federation] section and dashed keys are accepted too\n"
     "[federation]\n"
     "rounds=5\n"
     "exit-when-done=on\n"
     "min-clients = 1\n"
     "[coordinator]\n"
     "base=b.ftm\n"
     "allow=a\n"
     "insecure=1\n"
     "method=bitfit\n"},
    {"config", "crlf.ini",
     "[coordinator]\r\nbase = base.ftm\r\nallow = allow\r\nkey = k.key\r\n"
     "fraction = 1\r\ndeadline = 0.1\r\n"},
    {"client_config", "full.ini",
     "; a branch with every option\n"
     "[client]\n"
     "coordinator = tcp://hq.example:7777\n"
     "coordinator_key = keys/hq.pub\n"
     "key = keys/branch-03.key\n"
     "data = train-images.idx.gz\n"
     "labels = train-labels.idx.gz\n"
     "holdout = 0.15\n"
     "cache-dir = /var/cache/fedtl\n"
     "out = final.fta\n"
     "keep_updates = rounds\n"
     "insecure = no\n"
     "threads = 2\n"
     "heartbeat_ms = 750\n"
     "connect_timeout = 0\n"},
    {"client_config", "shared.ini",
     "# one file for both programs: the client reads only [client]\n"
     "[coordinator]\nrounds = 3\n[client]\ncoordinator=tcp://127.0.0.1:7777\n"
     "coordinator-key=hq.pub\nkey=b.key\ndata=local.csv\ninsecure=YES\n"},
    {"client_config", "crlf.ini",
     "[client]\r\ncoordinator = ipc:///tmp/hq\r\nkey = b.key\r\nholdout = 0\r\n"},
};

static void s_texts_write(void)
{
    for (size_t i = 0; i < sizeof s_texts / sizeof s_texts[0]; i++)
        s_write(s_texts[i].target, s_texts[i].name, s_texts[i].text, strlen(s_texts[i].text));
    const char *gz = "0,1,2\n1,3,4\n1,5,6\n";
    size_t len;
    uint8_t *z = s_gzip((const uint8_t *)gz, strlen(gz), &len);
    s_write("csv", "plain.csv.gz", z, len);
    free(z);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus OUTDIR\n");
        return 2;
    }
    s_out = argv[1];
    if (randombytes_set_implementation(&s_rng) != 0 || sodium_init() < 0)
        return 1;
    const char *targets[] = {"wire", "adapter", "base", "idx", "csv", "config", "client_config"};
    if (mkdir(s_out, 0755) != 0 && errno != EEXIST) {
        perror(s_out);
        return 1;
    }
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        s_mkdir(targets[i]);

    struct fl_arch mlp, cnn;
    s_arch_mlp(&mlp);
    s_arch_cnn(&cnn);
    s_base(&mlp, "mlp.ftm");
    s_base(&cnn, "cnn-tiny.ftm");
    if (corpus_graph_base(s_out, S_CREATED) != 0)
        s_die("graph-tiny.ftm");
    char path[1024];
    snprintf(path, sizeof path, "%s/base/mlp.ftm", s_out);
    struct fl_base_file bf;
    if (fl_base_read(path, &bf) != 0)
        s_die(path);
    static const struct {
        enum fl_adapter_kind kind;
        const char *file;
    } methods[] = {{FL_ADAPTER_HEAD, "head.fta"},
                   {FL_ADAPTER_LORA, "lora.fta"},
                   {FL_ADAPTER_FFA_LORA, "ffa-lora.fta"},
                   {FL_ADAPTER_BITFIT, "bitfit.fta"}};
    uint8_t *bytes[4];
    size_t lens[4];
    for (int i = 0; i < 4; i++) {
        s_adapter(&bf, methods[i].kind, &bytes[i], &lens[i]);
        s_write("adapter", methods[i].file, bytes[i], lens[i]);
    }
    s_wire(bf.hash, bytes[0], lens[0], bytes[1], lens[1]);
    corpus_secagg(s_write);
    for (int i = 0; i < 4; i++)
        free(bytes[i]);
    fl_base_close(&bf);
    s_idx();
    s_texts_write();
    return 0;
}

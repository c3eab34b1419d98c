/* fl_codec: protobuf-c encoding of the federation protocol (proto/fedtl_wire.proto), with
 * the size limits checked before parsing and every decoded field's length checked after. */
#include "fl_codec.h"
#include "fl_codec_secagg.h"
#include "fl_error.h"
#include "fl_protobuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool s_len_ok(ProtobufCBinaryData b, size_t want)
{
    return b.len == want;
}

static bool s_len_max(ProtobufCBinaryData b, size_t max)
{
    return b.len <= max;
}

static bool s_str_ok(const char *s)
{
    return s && strlen(s) < FL_NODE_NAME_MAX;
}

/* Per-message field checks: lengths of keys, hashes, signatures and blobs. */
static int s_wire_check(const Fedtl__Envelope *e)
{
    switch (e->body_case) {
    case FEDTL__ENVELOPE__BODY_HELLO: {
        const Fedtl__Hello *m = e->hello;
        if (!s_len_ok(m->branch_key, FL_SIGN_PK_BYTES) || !s_str_ok(m->name) ||
            !(m->base_hash.len == 0 || s_len_ok(m->base_hash, FL_HASH_BYTES)) ||
            !(m->signature.len == 0 || s_len_ok(m->signature, FL_SIG_BYTES)))
            return fl_fail(FL_EFORMAT, "hello: bad key, name, base hash or signature length");
        return 0;
    }
    case FEDTL__ENVELOPE__BODY_WELCOME: {
        const Fedtl__Welcome *m = e->welcome;
        if (!s_str_ok(m->federation) || !s_len_ok(m->base_hash, FL_HASH_BYTES) ||
            !s_len_ok(m->base_signature, FL_SIG_BYTES) || m->chunk_size == 0 ||
            m->chunk_size > FL_WIRE_MAX_CHUNK || !s_len_ok(m->run_id, FL_RUN_ID_BYTES))
            return fl_fail(FL_EFORMAT,
                           "welcome: bad federation, hash, signature, chunk size or run id");
        return 0;
    }
    case FEDTL__ENVELOPE__BODY_HEARTBEAT:
        return 0;
    case FEDTL__ENVELOPE__BODY_BASE_REQUEST:
        if (!s_len_ok(e->base_request->base_hash, FL_HASH_BYTES) || e->base_request->credit == 0 ||
            e->base_request->credit > 64)
            return fl_fail(FL_EFORMAT, "base request: bad hash or credit");
        return 0;
    case FEDTL__ENVELOPE__BODY_BASE_CHUNK:
        if (!s_len_ok(e->base_chunk->base_hash, FL_HASH_BYTES) ||
            !s_len_max(e->base_chunk->data, FL_WIRE_MAX_CHUNK))
            return fl_fail(FL_EFORMAT, "base chunk: bad hash or oversized data");
        return 0;
    case FEDTL__ENVELOPE__BODY_TASK:
        if (e->task->round == 0 || !e->task->params || e->task->adapter.len == 0 ||
            !s_len_max(e->task->adapter, FL_ADAPTER_MAX_BYTES))
            return fl_fail(FL_EFORMAT, "task: bad round, parameters or adapter size");
        return 0;
    case FEDTL__ENVELOPE__BODY_UPDATE: {
        const Fedtl__SealedUpdate *m = e->update;
        if (!s_len_ok(m->branch_key, FL_SIGN_PK_BYTES) || !s_len_ok(m->base_hash, FL_HASH_BYTES) ||
            !s_len_ok(m->signature, FL_SIG_BYTES) || !s_len_ok(m->sealed_key, FL_SEAL_KEY_BYTES) ||
            m->segment_size < FL_SEAL_MIN_SEGMENT || m->segment_size > FL_SEAL_MAX_SEGMENT ||
            m->ciphertext.len == 0 ||
            !s_len_max(m->ciphertext, FL_ADAPTER_MAX_BYTES + FL_WIRE_SEAL_SLACK))
            return fl_fail(FL_EFORMAT, "update: bad key, hash, signature, sealed key, segment size "
                                       "or ciphertext length");
        return 0;
    }
    case FEDTL__ENVELOPE__BODY_RECEIPT:
        if (!e->receipt->reason || strlen(e->receipt->reason) > 512)
            return fl_fail(FL_EFORMAT, "receipt: reason too long");
        return 0;
    case FEDTL__ENVELOPE__BODY_FINAL:
        if (e->final->adapter.len == 0 || !s_len_max(e->final->adapter, FL_ADAPTER_MAX_BYTES))
            return fl_fail(FL_EFORMAT, "final: bad adapter size");
        return 0;
    case FEDTL__ENVELOPE__BODY_BYE:
        if (!e->bye->reason || strlen(e->bye->reason) > 512)
            return fl_fail(FL_EFORMAT, "bye: reason too long");
        if (!fl_wire_bye_known(e->bye->code))
            return fl_fail(FL_EFORMAT, "bye: unknown code %d", (int)e->bye->code);
        return 0;
    case FEDTL__ENVELOPE__BODY_CHALLENGE:
        if (!s_len_ok(e->challenge->nonce, FL_HELLO_NONCE_BYTES) ||
            !s_str_ok(e->challenge->federation))
            return fl_fail(FL_EFORMAT, "challenge: bad nonce or federation");
        return 0;
    default:
        return fl_wire_secagg_check(e); /* or "unknown message type" */
    }
}

/* ---- before parsing: the frame's shape, read from its bytes without allocating ---- */

#define S_SMALL_MSG                                                                                \
    (4u << 10)                  /* Hello, Challenge, Welcome, Heartbeat, BaseRequest, Receipt, Bye \
                                 */
#define S_ENV_SLACK  (4u << 10) /* an Envelope's own bytes around a large body */
#define S_MAX_FIELDS 64         /* fields in the Envelope or in its body (each has <= 10) */
#define S_BUDGET_PAD (64u << 10) /* what a decode may allocate beyond the frame's own size */
#define S_FIELD_COST 128         /* and per field of a body allowed more than S_MAX_FIELDS */

/* A varint at *p (advanced past it); false when truncated or longer than 10 bytes. */
static bool s_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* One field at *p (advanced past it): its number, and for a length-delimited field where its
 * value lies. False when truncated, or a group (this protocol has none). */
static bool s_field(const uint8_t **p, const uint8_t *end, uint64_t *num, const uint8_t **val,
                    size_t *val_len)
{
    uint64_t tag, n;
    if (!s_varint(p, end, &tag))
        return false;
    *num = tag >> 3;
    *val = NULL;
    *val_len = 0;
    switch (tag & 7) {
    case 0:
        return s_varint(p, end, &n);
    case 1:
        n = 8;
        break;
    case 5:
        n = 4;
        break;
    case 2:
        if (!s_varint(p, end, &n))
            return false;
        *val = *p;
        *val_len = (size_t)n;
        break;
    default:
        return false;
    }
    if (n > (uint64_t)(end - *p))
        return false;
    *p += n;
    return true;
}

/* The largest frame a message type may come in: only the update, the task, the final model
 * and a base chunk carry bulk; everything else is a few hundred bytes. 0: no such type. */
static size_t s_type_max(uint64_t body)
{
    switch (body) {
    case FEDTL__ENVELOPE__BODY_HELLO:
    case FEDTL__ENVELOPE__BODY_CHALLENGE:
    case FEDTL__ENVELOPE__BODY_WELCOME:
    case FEDTL__ENVELOPE__BODY_HEARTBEAT:
    case FEDTL__ENVELOPE__BODY_BASE_REQUEST:
    case FEDTL__ENVELOPE__BODY_RECEIPT:
    case FEDTL__ENVELOPE__BODY_BYE:
        return S_SMALL_MSG;
    case FEDTL__ENVELOPE__BODY_BASE_CHUNK:
        return FL_WIRE_MAX_CHUNK + S_ENV_SLACK;
    case FEDTL__ENVELOPE__BODY_TASK:
    case FEDTL__ENVELOPE__BODY_FINAL:
        return FL_ADAPTER_MAX_BYTES + S_ENV_SLACK;
    case FEDTL__ENVELOPE__BODY_UPDATE:
        return FL_ADAPTER_MAX_BYTES + FL_WIRE_SEAL_SLACK + S_ENV_SLACK;
    default:
        return fl_wire_secagg_type_max(body); /* 0: no such type */
    }
}

/* Fields in a message's bytes, or -1 when they do not parse as protobuf. */
static int s_count_fields(const uint8_t *p, const uint8_t *end, int max)
{
    int n = 0;
    while (p < end) {
        uint64_t num;
        const uint8_t *val;
        size_t val_len;
        if (!s_field(&p, end, &num, &val, &val_len) || num == 0 || ++n > max)
            return -1;
    }
    return n;
}

/* The most fields a body may hold: secure aggregation's lists may hold more than S_MAX_FIELDS. */
static int s_body_fields(uint64_t type)
{
    int n = fl_wire_secagg_max_fields(type);
    return n > S_MAX_FIELDS ? n : S_MAX_FIELDS;
}

/* The Envelope's shape checked from its bytes, before protobuf-c allocates anything: one body
 * of a known type, the frame within that type's limit, few fields at both levels. So a Hello
 * of 60 MiB or a frame of millions of unknown fields is refused at the cost of a scan. */
static int s_wire_prescan(const uint8_t *buf, size_t len, uint64_t *type_out)
{
    const uint8_t *p = buf, *end = buf + len, *body = NULL;
    size_t body_len = 0;
    uint64_t type = 0;
    int fields = 0;
    while (p < end) {
        uint64_t num;
        const uint8_t *val;
        size_t val_len;
        if (!s_field(&p, end, &num, &val, &val_len) || num == 0)
            return fl_fail(FL_EFORMAT, "malformed protobuf frame (%zu bytes)", len);
        if (++fields > S_MAX_FIELDS)
            return fl_fail(FL_EFORMAT, "frame of %zu bytes: more than %d fields", len,
                           S_MAX_FIELDS);
        if (s_type_max(num) == 0)
            continue; /* the version, or a field of a later protocol */
        if (body || !val)
            return fl_fail(FL_EFORMAT,
                           "frame of %zu bytes: two bodies or a body that is not "
                           "a message",
                           len);
        type = num;
        body = val;
        body_len = val_len;
    }
    if (!body)
        return fl_fail(FL_EFORMAT, "frame of %zu bytes has no message body", len);
    if (len > s_type_max(type))
        return fl_fail(FL_ERANGE, "message type %d in a frame of %zu bytes (its limit is %zu)",
                       (int)type, len, s_type_max(type));
    int max_fields = s_body_fields(type);
    if (s_count_fields(body, body + body_len, max_fields) < 0)
        return fl_fail(FL_EFORMAT, "message type %d: malformed, or more than %d fields", (int)type,
                       max_fields);
    *type_out = type;
    return 0;
}

/* ---- parsing with a budget ---- */

/* What one decode may still allocate. */
struct s_budget {
    size_t left; /* bytes */
};

static void *s_budget_alloc(void *data, size_t size)
{
    struct s_budget *b = data;
    if (size > b->left)
        return NULL; /* protobuf-c then frees what it took and fails the decode */
    b->left -= size;
    return malloc(size);
}

static void s_budget_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

/* A decode may allocate the frame's size plus a little: honest messages copy their bytes
 * fields once and add a few structs. Freed with free() (fl_wire_free passes no allocator). */
static ProtobufCAllocator s_budget_allocator(struct s_budget *b, size_t len)
{
    b->left = len + S_BUDGET_PAD;
    return (ProtobufCAllocator){
        .alloc = s_budget_alloc, .free = s_budget_free, .allocator_data = b};
}

int fl_wire_decode(const uint8_t *buf, size_t len, Fedtl__Envelope **env)
{
    *env = NULL;
    if (len > FL_WIRE_MAX_MSG)
        return fl_fail(FL_ERANGE, "frame of %zu bytes exceeds the %u-byte limit", len,
                       FL_WIRE_MAX_MSG);
    uint64_t type = 0;
    int rc = s_wire_prescan(buf, len, &type);
    if (rc)
        return rc;
    struct s_budget budget; /* each field of a long list costs protobuf-c a struct or pointer */
    int fields = s_body_fields(type);
    ProtobufCAllocator a = s_budget_allocator(
        &budget, len + (fields > S_MAX_FIELDS ? (size_t)fields * S_FIELD_COST : 0));
    Fedtl__Envelope *e = fedtl__envelope__unpack(&a, len, buf);
    if (!e)
        return fl_fail(FL_EFORMAT, "malformed protobuf frame (%zu bytes)", len);
    if (e->version != FL_PROTOCOL_VERSION) {
        uint32_t v = e->version;
        fedtl__envelope__free_unpacked(e, NULL);
        return fl_fail(FL_EVERSION, "protocol version %u, this fedtl speaks %d", v,
                       FL_PROTOCOL_VERSION);
    }
    rc = s_wire_check(e);
    if (rc) {
        fedtl__envelope__free_unpacked(e, NULL);
        return rc;
    }
    *env = e;
    return 0;
}

int fl_wire_encode(Fedtl__Envelope *env, uint8_t **buf, size_t *len)
{
    env->version = FL_PROTOCOL_VERSION;
    return fl_protobuf_pack(&env->base, "message", buf, len);
}

void fl_wire_free(Fedtl__Envelope **env)
{
    if (env && *env) {
        fedtl__envelope__free_unpacked(*env, NULL);
        *env = NULL;
    }
}

int fl_wire_decode_body(const uint8_t *buf, size_t len, Fedtl__UpdateBody **body)
{
    *body = NULL;
    if (len > FL_ADAPTER_MAX_BYTES + 1024)
        return fl_fail(FL_ERANGE, "update body of %zu bytes is too large", len);
    if (s_count_fields(buf, buf + len, S_MAX_FIELDS) < 0)
        return fl_fail(FL_EFORMAT, "malformed update body, or more than %d fields", S_MAX_FIELDS);
    struct s_budget budget;
    ProtobufCAllocator a = s_budget_allocator(&budget, len);
    Fedtl__UpdateBody *b = fedtl__update_body__unpack(&a, len, buf);
    if (!b)
        return fl_fail(FL_EFORMAT, "malformed update body");
    if (b->adapter.len == 0 || !s_len_max(b->adapter, FL_ADAPTER_MAX_BYTES) || b->samples == 0 ||
        !isfinite(b->train_loss) || !isfinite(b->eval_loss) || !isfinite(b->eval_accuracy)) {
        fedtl__update_body__free_unpacked(b, NULL);
        return fl_fail(FL_EFORMAT, "update body: empty adapter, zero samples or bad metrics");
    }
    *body = b;
    return 0;
}

int fl_wire_encode_body(const Fedtl__UpdateBody *body, uint8_t **buf, size_t *len)
{
    return fl_protobuf_pack(&body->base, "update body", buf, len);
}

void fl_wire_free_body(Fedtl__UpdateBody **body)
{
    if (body && *body) {
        fedtl__update_body__free_unpacked(*body, NULL);
        *body = NULL;
    }
}

void fl_wire_sealed_put(const struct fl_sealed *s, Fedtl__SealedUpdate *u)
{
    u->round = s->round;
    u->branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)s->branch_key};
    u->base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, (uint8_t *)s->base_hash};
    u->sealed_key = (ProtobufCBinaryData){FL_SEAL_KEY_BYTES, (uint8_t *)s->sealed_key};
    u->segment_size = s->segment;
    u->ciphertext = (ProtobufCBinaryData){s->ct_len, s->ct};
    u->signature = (ProtobufCBinaryData){FL_SIG_BYTES, (uint8_t *)s->sig};
}

int fl_wire_sealed_get(const Fedtl__SealedUpdate *u, struct fl_sealed *s)
{
    memset(s, 0, sizeof *s);
    if (!s_len_ok(u->branch_key, FL_SIGN_PK_BYTES) || !s_len_ok(u->base_hash, FL_HASH_BYTES) ||
        !s_len_ok(u->signature, FL_SIG_BYTES) || !s_len_ok(u->sealed_key, FL_SEAL_KEY_BYTES) ||
        !u->ciphertext.data)
        return fl_fail(FL_EFORMAT, "update: bad key, hash, signature or sealed key length");
    s->round = u->round;
    memcpy(s->branch_key, u->branch_key.data, FL_SIGN_PK_BYTES);
    memcpy(s->base_hash, u->base_hash.data, FL_HASH_BYTES);
    memcpy(s->sealed_key, u->sealed_key.data, FL_SEAL_KEY_BYTES);
    memcpy(s->sig, u->signature.data, FL_SIG_BYTES);
    s->segment = u->segment_size;
    s->ct = u->ciphertext.data;
    s->ct_len = u->ciphertext.len;
    return 0;
}

bool fl_wire_bye_known(int code)
{
    switch (code) {
    case FEDTL__BYE_CODE__BYE_NOT_ENROLLED:
    case FEDTL__BYE_CODE__BYE_REVOKED:
    case FEDTL__BYE_CODE__BYE_SAY_HELLO:
    case FEDTL__BYE_CODE__BYE_SHUTDOWN:
    case FEDTL__BYE_CODE__BYE_DONE:
    case FEDTL__BYE_CODE__BYE_STOPPING:
        return true;
    default:
        return false;
    }
}

const char *fl_wire_bye_name(int code)
{
    switch (code) {
    case FEDTL__BYE_CODE__BYE_NOT_ENROLLED:
        return "not_enrolled";
    case FEDTL__BYE_CODE__BYE_REVOKED:
        return "revoked";
    case FEDTL__BYE_CODE__BYE_SAY_HELLO:
        return "say_hello";
    case FEDTL__BYE_CODE__BYE_SHUTDOWN:
        return "shutdown";
    case FEDTL__BYE_CODE__BYE_DONE:
        return "done";
    case FEDTL__BYE_CODE__BYE_STOPPING:
        return "stopping";
    default:
        return "unknown";
    }
}

int fl_wire_encode_update(const struct fl_sealed *s, uint8_t **buf, size_t *len)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SealedUpdate u = FEDTL__SEALED_UPDATE__INIT;
    fl_wire_sealed_put(s, &u);
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    return fl_wire_encode(&env, buf, len);
}

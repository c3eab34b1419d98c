/* fl_codec's protocol half: size limits before parsing, version, message types and every
 * field's length checked before a caller sees a message. */
#include <criterion/criterion.h>

#include "fl_codec.h"
#include "fl_error.h"
#include "fl_testutil.h"

#include <stdlib.h>
#include <string.h>

static uint8_t s_key[32], s_hash[32], s_sig[64];

static void s_hello(Fedtl__Envelope *env, Fedtl__Hello *h, size_t key_len)
{
    fedtl__envelope__init(env);
    fedtl__hello__init(h);
    h->branch_key = (ProtobufCBinaryData){key_len, s_key};
    h->name = "b1";
    env->body_case = FEDTL__ENVELOPE__BODY_HELLO;
    env->hello = h;
}

Test(fl_wire, round_trip_of_a_hello)
{
    Fedtl__Envelope env, *out = NULL;
    Fedtl__Hello h;
    s_hello(&env, &h, 32);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode(buf, len, &out), 0, "%s", fl_error_msg());
    cr_assert_eq(out->version, FL_PROTOCOL_VERSION);
    cr_assert_eq(out->body_case, FEDTL__ENVELOPE__BODY_HELLO);
    cr_assert_str_eq(out->hello->name, "b1");
    fl_wire_free(&out);
    cr_assert_null(out);
    /* Every truncation of a valid frame is refused or decodes to something valid. */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = fl_wire_decode(buf, cut, &out);
        if (rc == 0)
            fl_wire_free(&out);
        else
            cr_assert(rc == FL_EFORMAT || rc == FL_EVERSION, "cut %zu: rc %d", cut, rc);
    }
    free(buf);
}

Test(fl_wire, another_protocol_version_is_refused)
{
    Fedtl__Envelope env, *out = NULL;
    Fedtl__Hello h;
    s_hello(&env, &h, 32);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_eq(buf[0], 0x08); /* field 1 (version), varint */
    cr_assert_eq(buf[1], FL_PROTOCOL_VERSION);
    /* Version 1 (updates as one sealed box), version 2 (Byes without a code), version 3
     * (Hellos that prove nothing, updates not bound to the run) and a future version 5 are
     * refused. */
    buf[1] = 1;
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EVERSION);
    cr_assert(strstr(fl_error_msg(), "version 1"), "%s", fl_error_msg());
    cr_assert_null(out);
    buf[1] = 2;
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EVERSION);
    cr_assert(strstr(fl_error_msg(), "version 2"), "%s", fl_error_msg());
    buf[1] = 3;
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EVERSION);
    cr_assert(strstr(fl_error_msg(), "version 3, this fedtl speaks 4"), "%s", fl_error_msg());
    buf[1] = 5;
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EVERSION);
    cr_assert(strstr(fl_error_msg(), "version 5"), "%s", fl_error_msg());
    free(buf);
}

Test(fl_wire, a_bye_carries_a_known_code)
{
    static const struct {
        int code;
        int rc;
    } cases[] = {{FEDTL__BYE_CODE__BYE_NOT_ENROLLED, 0},
                 {FEDTL__BYE_CODE__BYE_STOPPING, 0},
                 {FEDTL__BYE_CODE__BYE_UNSPECIFIED, FL_EFORMAT},
                 {7, FL_EFORMAT},
                 {-1, FL_EFORMAT}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT, *out = NULL;
        Fedtl__Bye bye = FEDTL__BYE__INIT;
        bye.code = (Fedtl__ByeCode)cases[i].code;
        bye.reason = "words that mean nothing to the receiver";
        env.body_case = FEDTL__ENVELOPE__BODY_BYE;
        env.bye = &bye;
        uint8_t *buf;
        size_t len;
        cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
        cr_expect_eq(fl_wire_decode(buf, len, &out), cases[i].rc, "code %d", cases[i].code);
        if (cases[i].rc == 0)
            cr_expect_eq(out->bye->code, cases[i].code);
        else
            cr_expect(strstr(fl_error_msg(), "bye: unknown code"), "%s", fl_error_msg());
        fl_wire_free(&out);
        free(buf);
    }
}

Test(fl_wire, oversized_frames_are_refused_before_parsing)
{
    Fedtl__Envelope *out = NULL;
    /* Not even read: the length alone decides. */
    static const uint8_t byte = 0;
    cr_assert_eq(fl_wire_decode(&byte, (size_t)FL_WIRE_MAX_MSG + 1, &out), FL_ERANGE);
    cr_assert(strstr(fl_error_msg(), "exceeds"), "%s", fl_error_msg());
}

Test(fl_wire, each_message_type_has_a_size_limit_checked_before_parsing)
{
    Fedtl__Envelope *out = NULL;
    /* A Hello, a Heartbeat, a BaseRequest or a Bye is a few hundred bytes: 8 KiB is refused
     * from its first bytes, as is any size over the update's limit. */
    const int small[] = {FEDTL__ENVELOPE__BODY_HELLO, FEDTL__ENVELOPE__BODY_HEARTBEAT,
                         FEDTL__ENVELOPE__BODY_BASE_REQUEST, FEDTL__ENVELOPE__BODY_BYE};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        size_t len;
        uint8_t *buf = fl_test_bomb_frame(small[i], 8 << 10, &len);
        cr_assert_not_null(buf);
        cr_assert_eq(fl_wire_decode(buf, len, &out), FL_ERANGE, "type %d", small[i]);
        cr_assert(strstr(fl_error_msg(), "its limit is 4096"), "%s", fl_error_msg());
        cr_assert_null(out);
        free(buf);
    }
    /* An update of the largest adapter still decodes: the limits leave honest room. */
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SealedUpdate u = FEDTL__SEALED_UPDATE__INIT;
    size_t ct_len = FL_ADAPTER_MAX_BYTES + FL_WIRE_SEAL_SLACK;
    uint8_t *ct = calloc(1, ct_len), *buf;
    size_t len;
    cr_assert_not_null(ct);
    u.round = 1;
    u.branch_key = (ProtobufCBinaryData){32, s_key};
    u.base_hash = (ProtobufCBinaryData){32, s_hash};
    u.sealed_key = (ProtobufCBinaryData){FL_SEAL_KEY_BYTES, ct};
    u.segment_size = FL_SEAL_MIN_SEGMENT;
    u.ciphertext = (ProtobufCBinaryData){ct_len, ct};
    u.signature = (ProtobufCBinaryData){64, s_sig};
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_leq(len, FL_WIRE_MAX_MSG);
    cr_assert_eq(fl_wire_decode(buf, len, &out), 0, "%s", fl_error_msg());
    cr_assert_eq(out->update->ciphertext.len, ct_len);
    fl_wire_free(&out);
    free(buf);
    free(ct);
}

Test(fl_wire, frames_of_unknown_fields_are_refused_before_parsing)
{
    Fedtl__Envelope *out = NULL;
    /* Millions of 3-byte unknown fields, in the Envelope (no body) or in an update's body:
     * refused by the scan, before protobuf-c allocates per field. */
    const int bodies[] = {0, FEDTL__ENVELOPE__BODY_UPDATE, FEDTL__ENVELOPE__BODY_TASK};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        size_t len;
        uint8_t *buf = fl_test_bomb_frame(bodies[i], 40 << 20, &len);
        cr_assert_not_null(buf);
        cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT, "body %d", bodies[i]);
        cr_assert(strstr(fl_error_msg(), "more than 64 fields"), "%s", fl_error_msg());
        cr_assert_null(out);
        free(buf);
    }
    /* A few unknown fields (a later protocol's) are fine. */
    size_t len;
    uint8_t *buf = fl_test_bomb_frame(FEDTL__ENVELOPE__BODY_HEARTBEAT, 64, &len);
    cr_assert_eq(fl_wire_decode(buf, len, &out), 0, "%s", fl_error_msg());
    cr_assert_eq(out->body_case, FEDTL__ENVELOPE__BODY_HEARTBEAT);
    fl_wire_free(&out);
    free(buf);
    /* Two bodies, or a body that is not length-delimited, are refused. */
    const uint8_t two[] = {0x08, 0x03, 0x62, 0x00, 0x62, 0x00};
    cr_assert_eq(fl_wire_decode(two, sizeof two, &out), FL_EFORMAT);
    const uint8_t varint_body[] = {0x08, 0x03, 0x60, 0x01};
    cr_assert_eq(fl_wire_decode(varint_body, sizeof varint_body, &out), FL_EFORMAT);
}

Test(fl_wire, wrong_field_lengths_and_missing_bodies_are_refused)
{
    Fedtl__Envelope env, *out = NULL;
    Fedtl__Hello h;
    uint8_t *buf;
    size_t len;
    s_hello(&env, &h, 31); /* a 31-byte key */
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "hello"), "%s", fl_error_msg());
    free(buf);
    /* An update whose signature is 63 bytes, whose sealed key is 79 or whose segment size is
     * out of bounds. */
    static uint8_t sealed_key[FL_SEAL_KEY_BYTES];
    Fedtl__SealedUpdate u = FEDTL__SEALED_UPDATE__INIT;
    u.round = 1;
    u.branch_key = (ProtobufCBinaryData){32, s_key};
    u.base_hash = (ProtobufCBinaryData){32, s_hash};
    u.ciphertext = (ProtobufCBinaryData){32, s_key};
    u.signature = (ProtobufCBinaryData){63, s_sig};
    u.sealed_key = (ProtobufCBinaryData){FL_SEAL_KEY_BYTES, sealed_key};
    u.segment_size = FL_SEAL_MIN_SEGMENT;
    fedtl__envelope__init(&env);
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT);
    free(buf);
    u.signature.len = 64;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode(buf, len, &out), 0, "%s", fl_error_msg());
    fl_wire_free(&out);
    free(buf);
    const struct {
        size_t key_len;
        uint32_t segment;
    } bad[] = {{FL_SEAL_KEY_BYTES - 1, FL_SEAL_MIN_SEGMENT},
               {0, FL_SEAL_MIN_SEGMENT},
               {FL_SEAL_KEY_BYTES, 0},
               {FL_SEAL_KEY_BYTES, FL_SEAL_MIN_SEGMENT - 1},
               {FL_SEAL_KEY_BYTES, FL_SEAL_MAX_SEGMENT + 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        u.sealed_key.len = bad[i].key_len;
        u.segment_size = bad[i].segment;
        cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
        cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT, "case %zu", i);
        cr_assert(strstr(fl_error_msg(), "sealed key, segment size"), "%s", fl_error_msg());
        free(buf);
    }
    /* An envelope without a body: refused before parsing. */
    fedtl__envelope__init(&env);
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "no message body"), "%s", fl_error_msg());
    free(buf);
    /* A base chunk over the chunk limit. */
    Fedtl__BaseChunk ch = FEDTL__BASE_CHUNK__INIT;
    ch.base_hash = (ProtobufCBinaryData){32, s_hash};
    size_t big = FL_WIRE_MAX_CHUNK + 1;
    uint8_t *data = calloc(1, big);
    ch.data = (ProtobufCBinaryData){big, data};
    fedtl__envelope__init(&env);
    env.body_case = FEDTL__ENVELOPE__BODY_BASE_CHUNK;
    env.base_chunk = &ch;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "oversized"), "%s", fl_error_msg());
    free(buf);
    free(data);
}

Test(fl_wire, update_bodies_need_an_adapter_samples_and_finite_metrics)
{
    Fedtl__UpdateBody b = FEDTL__UPDATE_BODY__INIT, *out = NULL;
    uint8_t *buf;
    size_t len;
    b.adapter = (ProtobufCBinaryData){32, s_key};
    b.samples = 10;
    cr_assert_eq(fl_wire_encode_body(&b, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode_body(buf, len, &out), 0);
    fl_wire_free_body(&out);
    free(buf);
    b.eval_accuracy = __builtin_nanf("");
    cr_assert_eq(fl_wire_encode_body(&b, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode_body(buf, len, &out), FL_EFORMAT);
    free(buf);
    b.eval_accuracy = 0.5f;
    b.samples = 0;
    cr_assert_eq(fl_wire_encode_body(&b, &buf, &len), 0);
    cr_assert_eq(fl_wire_decode_body(buf, len, &out), FL_EFORMAT);
    free(buf);
}

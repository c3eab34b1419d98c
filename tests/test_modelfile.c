/* Tests of fl_modelfile (and the fl_codec headers inside it) on real files in a temp dir:
 * round trips, truncation, corruption, wrong versions and kinds, forged tables; and of
 * fl_modelio: a model rebuilt from its files computes what the model in memory computes. */
#include "fl_codec.h"
#include "fl_filecodec.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("modelfile");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(fl_modelfile, .init = s_setup, .fini = s_teardown);

/* A small MLP: fc1 (5 -> 8), relu, fc2 (8 -> 3). */
static void s_make_arch(struct fl_arch *arch)
{
    memset(arch, 0, sizeof *arch);
    strcpy(arch->name, "mlp");
    arch->in_h = 1;
    arch->in_w = 1;
    arch->in_c = 5;
    arch->num_classes = 3;
    arch->nlayers = 3;
    arch->layers[0] = (struct fl_layer_spec){
        .kind = FL_LAYER_DENSE, .name = "fc1", .in_features = 5, .out_features = 8};
    arch->layers[1] = (struct fl_layer_spec){.kind = FL_LAYER_RELU, .name = "relu1"};
    arch->layers[2] = (struct fl_layer_spec){
        .kind = FL_LAYER_DENSE, .name = "fc2", .in_features = 8, .out_features = 3};
}

static void s_make_meta(struct fl_base_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    strcpy(meta->data_desc, "synthetic blobs, 3 classes, 600 samples");
    meta->created_unix = 1700000000;
    meta->nclasses = 3;
    meta->class_ids[0] = 7;
    meta->class_ids[1] = 2;
    meta->class_ids[2] = 9;
}

#define S_NBASE 4

/* The base's tensors; sizes chosen so blobs need padding (160 bytes, 32, 96, 12). */
static void s_make_base_tensors(struct fl_tensor t[S_NBASE], float salt)
{
    static const char *names[S_NBASE] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    static const int64_t rows[S_NBASE] = {8, 8, 3, 3}, cols[S_NBASE] = {5, 0, 8, 0};
    for (int i = 0; i < S_NBASE; i++) {
        cr_assert_eq(fl_tensor_init2(&t[i], names[i], rows[i], cols[i]), 0);
        size_t n = fl_tensor_numel(&t[i]);
        for (size_t k = 0; k < n; k++)
            t[i].data[k] = salt + (float)i * 100.0f + (float)k * 0.25f - 3.0f;
    }
}

static void s_free_tensors(struct fl_tensor *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fl_tensor_free(&t[i]);
}

/* Write a base model to dir/name; returns the path (caller frees). */
static char *s_write_base(const char *name, float salt, uint8_t hash[FL_HASH_BYTES])
{
    struct fl_arch arch;
    struct fl_base_meta meta;
    struct fl_tensor t[S_NBASE];
    s_make_arch(&arch);
    s_make_meta(&meta);
    s_make_base_tensors(t, salt);
    char *path = fl_test_path(s_dir, name);
    int rc = fl_base_write(path, &arch, &meta, t, S_NBASE, hash);
    cr_assert_eq(rc, 0, "fl_base_write: %s", fl_error_msg());
    s_free_tensors(t, S_NBASE);
    return path;
}

#define S_NADAPTER 4

static void s_make_adapter(struct fl_adapter_meta *meta, struct fl_tensor t[S_NADAPTER],
                           const uint8_t base_hash[FL_HASH_BYTES])
{
    memset(meta, 0, sizeof *meta);
    meta->kind = FL_ADAPTER_LORA;
    meta->rank = 2;
    meta->alpha = 4.0f;
    meta->seed = 0x123456789abcdefull;
    meta->ntargets = 2;
    strcpy(meta->targets[0], "fc1");
    strcpy(meta->targets[1], "fc2");
    meta->num_classes = 4;
    for (int i = 0; i < 4; i++)
        meta->class_ids[i] = 10 + i;
    memcpy(meta->base_hash, base_hash, FL_HASH_BYTES);
    meta->created_unix = 1700000123;
    meta->round = 5;
    static const char *names[S_NADAPTER] = {"fc1.lora_A", "fc1.lora_B", "head.weight", "head.bias"};
    static const int64_t rows[S_NADAPTER] = {2, 8, 4, 4}, cols[S_NADAPTER] = {5, 2, 8, 0};
    for (int i = 0; i < S_NADAPTER; i++) {
        cr_assert_eq(fl_tensor_init2(&t[i], names[i], rows[i], cols[i]), 0);
        for (size_t k = 0; k < fl_tensor_numel(&t[i]); k++)
            t[i].data[k] = (float)i - (float)k / 7.0f;
    }
}

static char *s_write_adapter(const char *name, const uint8_t base_hash[FL_HASH_BYTES],
                             uint8_t hash[FL_HASH_BYTES])
{
    struct fl_adapter_meta meta;
    struct fl_tensor t[S_NADAPTER];
    s_make_adapter(&meta, t, base_hash);
    char *path = fl_test_path(s_dir, name);
    int rc = fl_adapter_write(path, &meta, t, S_NADAPTER, hash);
    cr_assert_eq(rc, 0, "fl_adapter_write: %s", fl_error_msg());
    s_free_tensors(t, S_NADAPTER);
    return path;
}

static void s_read_bytes(const char *path, uint8_t **buf, size_t *len)
{
    cr_assert_eq(fl_fs_read_file(path, (size_t)1 << 30, buf, len), 0, "%s", fl_error_msg());
}

static void s_write_bytes(const char *path, const uint8_t *buf, size_t len)
{
    cr_assert_eq(fl_fs_write_file(path, buf, len, 0644), 0, "%s", fl_error_msg());
}

static uint64_t s_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* The content hash as the format defines it, computed independently of fl_modelfile. */
static void s_hash_bytes(const uint8_t *buf, size_t len, uint8_t out[FL_HASH_BYTES])
{
    cr_assert_geq(sodium_init(), 0);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    crypto_generichash_update(&st, buf, 24);
    crypto_generichash_update(&st, buf + 56, len - 56);
    crypto_generichash_final(&st, out, FL_HASH_BYTES);
}

/* Write a base file whose header is given as table rows, with a valid hash, so that only the
 * layout or header validation can reject it. The file is total bytes long (zero blobs). */
static char *s_forge_base(const char *name, const struct fl_tensor_entry *e, size_t n, size_t total)
{
    struct fl_arch arch;
    struct fl_base_meta meta;
    s_make_arch(&arch);
    s_make_meta(&meta);
    uint8_t *hdr;
    size_t hlen;
    cr_assert_eq(fl_codec_pack_base_header(&arch, &meta, e, n, "forge", &hdr, &hlen), 0, "%s",
                 fl_error_msg());
    if (total < 56 + hlen)
        total = 56 + hlen;
    uint8_t *buf = calloc(1, total);
    memcpy(buf, "FEDTLBM\n", 8);
    buf[8] = 1;
    for (int i = 0; i < 8; i++)
        buf[16 + i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 56, hdr, hlen);
    s_hash_bytes(buf, total, buf + 24);
    char *path = fl_test_path(s_dir, name);
    s_write_bytes(path, buf, total);
    free(buf);
    free(hdr);
    return path;
}

static bool s_all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void s_assert_msg_has(const char *needle)
{
    cr_assert_not_null(strstr(fl_error_msg(), needle), "message '%s' lacks '%s'", fl_error_msg(),
                       needle);
}

Test(fl_modelfile, base_round_trip_keeps_everything)
{
    uint8_t hash[FL_HASH_BYTES];
    char *path = s_write_base("base.ftm", 0.5f, hash);

    struct fl_base_file f;
    int rc = fl_base_read(path, &f);
    cr_assert_eq(rc, 0, "fl_base_read: %s", fl_error_msg());

    struct fl_arch arch;
    struct fl_base_meta meta;
    s_make_arch(&arch);
    s_make_meta(&meta);
    cr_assert_str_eq(f.arch.name, arch.name);
    cr_assert_eq(f.arch.in_c, 5);
    cr_assert_eq(f.arch.num_classes, 3);
    cr_assert_eq(f.arch.nlayers, arch.nlayers);
    cr_assert_eq(memcmp(f.arch.layers, arch.layers, sizeof arch.layers), 0);
    cr_assert_str_eq(f.meta.data_desc, meta.data_desc);
    cr_assert_eq(f.meta.created_unix, meta.created_unix);
    cr_assert_eq(f.meta.nclasses, 3);
    cr_assert_eq(memcmp(f.meta.class_ids, meta.class_ids, sizeof meta.class_ids), 0);

    struct fl_tensor want[S_NBASE];
    s_make_base_tensors(want, 0.5f);
    cr_assert_eq(f.ntensors, S_NBASE);
    for (int i = 0; i < S_NBASE; i++) {
        const struct fl_tensor *t = fl_base_tensor(&f, want[i].name);
        cr_assert_not_null(t, "%s missing", want[i].name);
        cr_assert(fl_tensor_same_shape(t, &want[i]));
        cr_assert_not(t->owned);
        cr_assert_eq((uintptr_t)t->data % 64, 0, "%s blob not 64-aligned", t->name);
        cr_assert_eq(((const uint8_t *)t->data - (const uint8_t *)f.map) % 64, 0);
        cr_assert_eq(memcmp(t->data, want[i].data, fl_tensor_numel(t) * sizeof(float)), 0);
    }
    cr_assert_null(fl_base_tensor(&f, "fc3.weight"));
    s_free_tensors(want, S_NBASE);

    /* The identity is the hash write returned, and it is the hash of the bytes on disk. */
    cr_assert_eq(memcmp(f.hash, hash, FL_HASH_BYTES), 0);
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    uint8_t recomputed[FL_HASH_BYTES];
    s_hash_bytes(buf, len, recomputed);
    cr_assert_eq(memcmp(recomputed, hash, FL_HASH_BYTES), 0);
    cr_assert_eq(memcmp(buf, "FEDTLBM\n\x01\0\0\0\0\0\0\0", 16), 0);
    cr_assert_eq(memcmp(buf + 24, hash, FL_HASH_BYTES), 0);
    cr_assert_eq(len, f.map_len);
    free(buf);

    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(hash, hex);
    cr_assert_eq(strlen(hex), 64);

    fl_base_close(&f);
    cr_assert_null(f.map);
    fl_base_close(&f); /* twice is fine */
    free(path);
}

Test(fl_modelfile, same_content_same_hash_different_content_different_hash)
{
    uint8_t h1[FL_HASH_BYTES], h2[FL_HASH_BYTES], h3[FL_HASH_BYTES];
    char *p1 = s_write_base("a.ftm", 1.0f, h1);
    char *p2 = s_write_base("b.ftm", 1.0f, h2);
    char *p3 = s_write_base("c.ftm", 2.0f, h3);
    cr_assert_eq(memcmp(h1, h2, FL_HASH_BYTES), 0);
    cr_assert_neq(memcmp(h1, h3, FL_HASH_BYTES), 0);
    free(p1);
    free(p2);
    free(p3);
}

Test(fl_modelfile, adapter_round_trip_file_and_memory)
{
    uint8_t base_hash[FL_HASH_BYTES], hash[FL_HASH_BYTES];
    char *base = s_write_base("base.ftm", 0.0f, base_hash);
    char *path = s_write_adapter("a.fta", base_hash, hash);

    struct fl_adapter_meta meta;
    struct fl_tensor want[S_NADAPTER];
    s_make_adapter(&meta, want, base_hash);

    struct fl_adapter_file a;
    int rc = fl_adapter_read(path, &a);
    cr_assert_eq(rc, 0, "fl_adapter_read: %s", fl_error_msg());
    cr_assert_eq(a.meta.kind, FL_ADAPTER_LORA);
    cr_assert_eq(a.meta.rank, 2);
    cr_assert_float_eq(a.meta.alpha, 4.0f, 0.0f);
    cr_assert_eq(a.meta.seed, meta.seed);
    cr_assert_eq(a.meta.ntargets, 2);
    cr_assert_str_eq(a.meta.targets[0], "fc1");
    cr_assert_str_eq(a.meta.targets[1], "fc2");
    cr_assert_eq(a.meta.num_classes, 4);
    cr_assert_eq(memcmp(a.meta.class_ids, meta.class_ids, sizeof meta.class_ids), 0);
    cr_assert_eq(memcmp(a.meta.base_hash, base_hash, FL_HASH_BYTES), 0);
    cr_assert_eq(a.meta.created_unix, meta.created_unix);
    cr_assert_eq(a.meta.round, 5);
    cr_assert_eq(memcmp(a.hash, hash, FL_HASH_BYTES), 0);
    cr_assert_eq(a.ntensors, S_NADAPTER);
    for (int i = 0; i < S_NADAPTER; i++) {
        const struct fl_tensor *t = fl_adapter_tensor(&a, want[i].name);
        cr_assert_not_null(t);
        cr_assert(t->owned);
        cr_assert(fl_tensor_same_shape(t, &want[i]));
        cr_assert_eq(memcmp(t->data, want[i].data, fl_tensor_numel(t) * sizeof(float)), 0);
    }
    cr_assert_null(fl_adapter_tensor(&a, "nope"));
    cr_assert_eq(fl_adapter_check_base(&a, path, base_hash, base), 0);

    /* pack gives exactly the file's bytes; unpack of them gives the same adapter. */
    uint8_t *packed, *disk;
    size_t plen, dlen;
    cr_assert_eq(fl_adapter_pack(&meta, want, S_NADAPTER, &packed, &plen), 0);
    s_read_bytes(path, &disk, &dlen);
    cr_assert_eq(plen, dlen);
    cr_assert_eq(memcmp(packed, disk, plen), 0);
    cr_assert_eq(memcmp(packed, "FEDTLAD\n", 8), 0);
    struct fl_adapter_file b;
    cr_assert_eq(fl_adapter_unpack(packed, plen, "peer-7", &b), 0, "%s", fl_error_msg());
    free(packed); /* b holds copies */
    cr_assert_eq(memcmp(b.hash, hash, FL_HASH_BYTES), 0);
    cr_assert_eq(b.ntensors, S_NADAPTER);
    for (size_t i = 0; i < b.ntensors; i++)
        cr_assert_eq(memcmp(b.tensors[i].data, a.tensors[i].data,
                            fl_tensor_numel(&a.tensors[i]) * sizeof(float)),
                     0);
    /* The table in the header places every blob 64-aligned, after the header. */
    uint64_t hlen = s_u64le(disk + 16);
    struct fl_adapter_meta hm;
    struct fl_tensor_entry *e;
    size_t ne;
    cr_assert_eq(fl_codec_unpack_adapter_header(disk + 56, hlen, "hdr", &hm, &e, &ne), 0);
    cr_assert_eq(ne, S_NADAPTER);
    for (size_t i = 0; i < ne; i++) {
        cr_assert_eq(e[i].offset % 64, 0);
        cr_assert_geq(e[i].offset, 56 + hlen);
    }
    cr_assert_eq(e[ne - 1].offset + e[ne - 1].nbytes, dlen);
    free(e);

    fl_adapter_close(&b);
    fl_adapter_close(&a);
    fl_adapter_close(&a);
    s_free_tensors(want, S_NADAPTER);
    free(disk);
    free(path);
    free(base);
}

/* The authenticated view borrows the tensors' bytes where they are aligned, copies them where
 * they are not, and gives the same adapter either way. */
Test(fl_modelfile, authenticated_view_borrows_aligned_tensors)
{
    uint8_t base_hash[FL_HASH_BYTES];
    struct fl_adapter_meta meta;
    struct fl_tensor want[S_NADAPTER];
    memset(base_hash, 7, sizeof base_hash);
    s_make_adapter(&meta, want, base_hash);
    uint8_t *packed;
    size_t plen;
    cr_assert_eq(fl_adapter_pack(&meta, want, S_NADAPTER, &packed, &plen), 0);
    uint8_t *shifted = malloc(plen + 1); /* the same bytes one past an aligned address */
    cr_assert_not_null(shifted);
    memcpy(shifted + 1, packed, plen);
    const uint8_t *bufs[2] = {packed, shifted + 1};
    for (int k = 0; k < 2; k++) {
        struct fl_adapter_file v;
        cr_assert_eq(fl_adapter_view_authenticated(bufs[k], plen, "peer", &v), 0, "%s",
                     fl_error_msg());
        cr_assert_eq(v.ntensors, S_NADAPTER);
        for (size_t i = 0; i < v.ntensors; i++) {
            const struct fl_tensor *t = &v.tensors[i];
            bool inside =
                (const uint8_t *)t->data >= bufs[k] && (const uint8_t *)t->data < bufs[k] + plen;
            cr_assert_eq(t->owned, k == 1, "tensor %zu: owned %d", i, t->owned);
            cr_assert_eq(inside, k == 0, "tensor %zu borrows iff aligned", i);
            cr_assert_str_eq(t->name, want[i].name);
            cr_assert(fl_tensor_same_shape(t, &want[i]));
            cr_assert_eq(memcmp(t->data, want[i].data, fl_tensor_numel(t) * sizeof(float)), 0);
        }
        fl_adapter_close(&v); /* frees only what it owns */
    }
    free(shifted);
    free(packed);
    s_free_tensors(want, S_NADAPTER);
}

Test(fl_modelfile, adapter_without_tensors_round_trips)
{
    struct fl_adapter_meta meta;
    struct fl_tensor t[S_NADAPTER];
    uint8_t zero[FL_HASH_BYTES] = {0};
    s_make_adapter(&meta, t, zero);
    meta.kind = FL_ADAPTER_HEAD;
    meta.ntargets = 0;
    meta.num_classes = 0;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_adapter_pack(&meta, NULL, 0, &buf, &len), 0, "%s", fl_error_msg());
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_unpack(buf, len, "mem", &a), 0, "%s", fl_error_msg());
    cr_assert_eq(a.ntensors, 0);
    cr_assert_eq(a.meta.kind, FL_ADAPTER_HEAD);
    fl_adapter_close(&a);
    free(buf);
    s_free_tensors(t, S_NADAPTER);
}

Test(fl_modelfile, adapter_for_another_base_is_a_mismatch_naming_both)
{
    uint8_t h1[FL_HASH_BYTES], h2[FL_HASH_BYTES], ha[FL_HASH_BYTES];
    char *base1 = s_write_base("one.ftm", 1.0f, h1);
    char *base2 = s_write_base("two.ftm", 2.0f, h2);
    char *path = s_write_adapter("for-one.fta", h1, ha);
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_read(path, &a), 0, "%s", fl_error_msg());
    int rc = fl_adapter_check_base(&a, path, h2, base2);
    cr_assert_eq(rc, FL_EMISMATCH);
    s_assert_msg_has(path);
    s_assert_msg_has(base2);
    char hex1[2 * FL_HASH_BYTES + 1], hex2[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(h1, hex1);
    fl_hash_hex(h2, hex2);
    hex1[12] = hex2[12] = '\0';
    s_assert_msg_has(hex1);
    s_assert_msg_has(hex2);
    cr_assert_eq(fl_adapter_check_base(&a, path, h1, base1), 0);
    fl_adapter_close(&a);
    free(base1);
    free(base2);
    free(path);
}

Test(fl_modelfile, truncated_base_is_rejected_naming_the_file)
{
    char *path = s_write_base("base.ftm", 0.0f, NULL);
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    size_t hend = 56 + (size_t)s_u64le(buf + 16);
    cr_assert_lt(hend + 100, len);
    const size_t cuts[] = {0,        4,    8,         30,        55,     56, 56 + (hend - 56) / 2,
                           hend - 1, hend, hend + 70, len - 100, len - 1};
    char *cut_path = fl_test_path(s_dir, "cut.ftm");
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        s_write_bytes(cut_path, buf, cuts[i]);
        struct fl_base_file f;
        memset(&f, 0xab, sizeof f);
        int rc = fl_base_read(cut_path, &f);
        cr_assert(rc == FL_ETRUNC || rc == FL_EFORMAT, "cut at %zu: rc %d (%s)", cuts[i], rc,
                  fl_error_msg());
        s_assert_msg_has(cut_path);
        cr_assert(s_all_zero(&f, sizeof f), "cut at %zu: out not zeroed", cuts[i]);
        if (getenv("FEDTL_TEST_VERBOSE"))
            fprintf(stderr, "cut %zu: %s\n", cuts[i], fl_error_msg());
        if (cuts[i] >= hend) /* inside the blobs: the table says where the file should end */
            s_assert_msg_has("truncated");
    }
    free(cut_path);
    free(buf);
    free(path);
}

Test(fl_modelfile, truncated_adapter_bytes_are_rejected_naming_the_origin)
{
    uint8_t zero[FL_HASH_BYTES] = {0};
    char *path = s_write_adapter("a.fta", zero, NULL);
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    for (size_t cut = 0; cut < len; cut += 13) {
        struct fl_adapter_file a;
        int rc = fl_adapter_unpack(buf, cut, "peer 10.0.0.7", &a);
        cr_assert(rc == FL_ETRUNC || rc == FL_EFORMAT, "cut at %zu: rc %d (%s)", cut, rc,
                  fl_error_msg());
        s_assert_msg_has("peer 10.0.0.7");
        cr_assert(s_all_zero(&a, sizeof a));
    }
    free(buf);
    free(path);
}

/* Flip one byte of a file at `at` and expect fl_base_read to refuse it as corrupted. */
static void s_expect_corrupt_base(const char *path, size_t at, bool hash_only)
{
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    cr_assert_lt(at, len);
    buf[at] ^= 0x20;
    char *bad = fl_test_path(s_dir, "bad.ftm");
    s_write_bytes(bad, buf, len);
    struct fl_base_file f;
    int rc = fl_base_read(bad, &f);
    if (hash_only)
        cr_assert_eq(rc, FL_EHASH, "flip at %zu: rc %d (%s)", at, rc, fl_error_msg());
    else
        cr_assert(rc == FL_EHASH || rc == FL_EFORMAT || rc == FL_ETRUNC, "flip at %zu: rc %d (%s)",
                  at, rc, fl_error_msg());
    s_assert_msg_has(bad);
    if (rc == FL_EHASH)
        s_assert_msg_has("content hash mismatch");
    cr_assert(s_all_zero(&f, sizeof f));
    free(bad);
    free(buf);
}

Test(fl_modelfile, flipped_byte_is_a_hash_mismatch)
{
    char *path = s_write_base("base.ftm", 0.0f, NULL);
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    size_t hend = 56 + (size_t)s_u64le(buf + 16);
    char *desc = memmem(buf, len, "synthetic", 9);
    cr_assert_not_null(desc);
    size_t in_desc = (size_t)((uint8_t *)desc - buf);
    free(buf);

    s_expect_corrupt_base(path, len - 1, true);   /* last blob byte */
    s_expect_corrupt_base(path, hend + 10, true); /* padding or first blob */
    s_expect_corrupt_base(path, in_desc, true);   /* header text */
    s_expect_corrupt_base(path, 30, true);        /* the stored hash itself */
    for (size_t at = 56; at < hend; at += 7)      /* anywhere in the header */
        s_expect_corrupt_base(path, at, false);
    free(path);
}

Test(fl_modelfile, flipped_adapter_byte_is_a_hash_mismatch)
{
    uint8_t zero[FL_HASH_BYTES] = {0};
    struct fl_adapter_meta meta;
    struct fl_tensor t[S_NADAPTER];
    s_make_adapter(&meta, t, zero);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_adapter_pack(&meta, t, S_NADAPTER, &buf, &len), 0);
    buf[len - 3] ^= 1;
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_unpack(buf, len, "peer-3", &a), FL_EHASH);
    s_assert_msg_has("peer-3");
    cr_assert(s_all_zero(&a, sizeof a));
    free(buf);
    s_free_tensors(t, S_NADAPTER);
}

Test(fl_modelfile, unknown_version_is_refused)
{
    char *path = s_write_base("base.ftm", 0.0f, NULL);
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    buf[8] = 7;
    s_write_bytes(path, buf, len);
    struct fl_base_file f;
    cr_assert_eq(fl_base_read(path, &f), FL_EVERSION);
    s_assert_msg_has(path);
    s_assert_msg_has("format version 7, this fedtl reads version 1");
    cr_assert(s_all_zero(&f, sizeof f));
    free(buf);
    free(path);
}

Test(fl_modelfile, wrong_kind_of_file_is_named)
{
    uint8_t zero[FL_HASH_BYTES] = {0};
    char *base = s_write_base("base.ftm", 0.0f, NULL);
    char *adapter = s_write_adapter("a.fta", zero, NULL);
    struct fl_base_file f;
    struct fl_adapter_file a;

    cr_assert_eq(fl_base_read(adapter, &f), FL_EFORMAT);
    s_assert_msg_has(adapter);
    s_assert_msg_has("is an adapter file, not a base model");
    cr_assert_eq(fl_adapter_read(base, &a), FL_EFORMAT);
    s_assert_msg_has(base);
    s_assert_msg_has("is a base model file, not an adapter");

    char *text = fl_test_path(s_dir, "notes.txt");
    const char *junk = "this is not a model at all, just some text that is long enough\n";
    s_write_bytes(text, (const uint8_t *)junk, strlen(junk));
    cr_assert_eq(fl_base_read(text, &f), FL_EFORMAT);
    s_assert_msg_has("not a fedtl base model (bad magic)");
    cr_assert_eq(fl_adapter_read(text, &a), FL_EFORMAT);
    s_assert_msg_has("bad magic");

    char *missing = fl_test_path(s_dir, "missing.ftm");
    cr_assert_eq(fl_base_read(missing, &f), FL_EIO);
    s_assert_msg_has(missing);
    free(missing);
    free(text);
    free(base);
    free(adapter);
}

/* A base and a LoRA adapter written from models in memory and read back (fl_modelio) build a
 * model whose logits are bit for bit those of the model in memory. */
Test(fl_modelfile, a_model_rebuilt_from_its_files_computes_the_same_logits)
{
    struct fl_arch arch;
    struct fl_base_meta meta;
    s_make_arch(&arch);
    s_make_meta(&meta);
    fl_model_t *fresh = fl_model_new(&arch, 11, NULL);
    cr_assert_not_null(fresh, "%s", fl_error_msg());
    const float mean[5] = {0.5f, -1.0f, 2.0f, 0.0f, 0.25f}, std[5] = {1.0f, 2.0f, 0.5f, 3.0f, 1.5f};
    cr_assert_eq(fl_model_set_norm(fresh, mean, std, 5), 0);
    char *base_path = fl_test_path(s_dir, "model.ftm");
    uint8_t base_hash[FL_HASH_BYTES];
    cr_assert_eq(fl_model_write_base(fresh, &meta, base_path, base_hash), 0, "%s", fl_error_msg());

    /* In memory: a frozen base over the fresh model's tensors, its adapter given values. */
    struct fl_adapter_meta am = {
        .kind = FL_ADAPTER_LORA, .rank = 2, .alpha = 4.0f, .seed = 5, .num_classes = 4};
    am.ntargets = 1;
    strcpy(am.targets[0], "fc1");
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(fresh, FL_SET_BASE, &n);
    cr_assert_not_null(ts);
    fl_model_t *mem = fl_model_new_frozen(&arch, ts, n, base_hash, "memory", &am, NULL);
    cr_assert_not_null(mem, "%s", fl_error_msg());
    for (size_t i = 0; i < fl_model_ntensors(mem, FL_SET_ADAPTER); i++) {
        struct fl_tensor *t = fl_model_tensor(mem, FL_SET_ADAPTER, i);
        for (size_t k = 0; k < fl_tensor_numel(t); k++)
            t->data[k] = 0.01f * (float)((k * 7 + i * 3) % 23) - 0.1f;
    }
    char *adapter_path = fl_test_path(s_dir, "model.fta");
    cr_assert_eq(fl_model_write_adapter(mem, adapter_path, NULL), 0, "%s", fl_error_msg());

    /* From the files. */
    struct fl_base_file bf;
    struct fl_adapter_file af;
    cr_assert_eq(fl_base_read(base_path, &bf), 0, "%s", fl_error_msg());
    cr_assert_eq(memcmp(bf.hash, base_hash, FL_HASH_BYTES), 0);
    cr_assert_eq(fl_adapter_read(adapter_path, &af), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_adapter_check_base(&af, adapter_path, bf.hash, base_path), 0);
    fl_model_t *file = fl_model_from_base(&bf, base_path, &af.meta, NULL);
    cr_assert_not_null(file, "%s", fl_error_msg());
    cr_assert_eq(fl_model_set_adapter(file, &af, adapter_path), 0, "%s", fl_error_msg());

    float x[3 * 5], z_mem[3 * 4], z_file[3 * 4];
    for (int i = 0; i < 3 * 5; i++)
        x[i] = (float)(i % 7) * 0.3f - 1.0f;
    cr_assert_eq(fl_model_forward(mem, x, 3, z_mem), 0);
    cr_assert_eq(fl_model_forward(file, x, 3, z_file), 0);
    cr_assert_arr_eq(z_mem, z_file, sizeof z_mem);

    fl_model_destroy(&file);
    fl_adapter_close(&af);
    fl_base_close(&bf);
    fl_model_destroy(&mem);
    free(ts);
    fl_model_destroy(&fresh);
    free(adapter_path);
    free(base_path);
}

Test(fl_modelfile, atomic_writes_leave_no_temporary_files)
{
    uint8_t h1[FL_HASH_BYTES], h2[FL_HASH_BYTES];
    char *path = s_write_base("base.ftm", 1.0f, h1);
    free(s_write_base("base.ftm", 2.0f, h2)); /* replaces the first */
    free(s_write_adapter("a.fta", h2, NULL));
    free(s_write_adapter("a.fta", h1, NULL));

    struct fl_base_file f;
    cr_assert_eq(fl_base_read(path, &f), 0, "%s", fl_error_msg());
    cr_assert_eq(memcmp(f.hash, h2, FL_HASH_BYTES), 0);
    fl_base_close(&f);

    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        cr_assert_null(strstr(de->d_name, ".tmp."), "left behind: %s", de->d_name);
        files++;
    }
    closedir(d);
    cr_assert_eq(files, 2);
    free(path);
}

Test(fl_modelfile, invalid_input_is_refused_and_writes_nothing)
{
    struct fl_arch arch;
    struct fl_base_meta meta;
    struct fl_tensor t[S_NBASE];
    s_make_arch(&arch);
    s_make_meta(&meta);
    s_make_base_tensors(t, 0.0f);
    char *path = fl_test_path(s_dir, "bad.ftm");

    arch.nlayers = FL_ARCH_MAX_LAYERS + 1;
    cr_assert_eq(fl_base_write(path, &arch, &meta, t, S_NBASE, NULL), FL_EINVAL);
    s_make_arch(&arch);
    arch.layers[1].kind = (enum fl_layer_kind)42;
    cr_assert_eq(fl_base_write(path, &arch, &meta, t, S_NBASE, NULL), FL_EINVAL);
    s_make_arch(&arch);
    strcpy(t[1].name, t[0].name); /* duplicate tensor name */
    cr_assert_eq(fl_base_write(path, &arch, &meta, t, S_NBASE, NULL), FL_EINVAL);
    s_assert_msg_has("appears twice");

    FILE *fp = fopen(path, "rb");
    cr_assert_null(fp, "a refused write left a file");
    s_free_tensors(t, S_NBASE);
    free(path);
}

/* Table rows of a plausible file: two tensors right after a header of under 400 bytes. */
static void s_forge_entries(struct fl_tensor_entry e[2])
{
    memset(e, 0, 2 * sizeof *e);
    strcpy(e[0].name, "fc1.weight");
    e[0].ndim = 2;
    e[0].shape[0] = 8;
    e[0].shape[1] = 5;
    e[0].offset = 512;
    e[0].nbytes = 160;
    strcpy(e[1].name, "fc1.bias");
    e[1].ndim = 1;
    e[1].shape[0] = 8;
    e[1].offset = 704;
    e[1].nbytes = 32;
}

Test(fl_modelfile, forged_but_consistent_file_is_accepted)
{
    struct fl_tensor_entry e[2];
    s_forge_entries(e);
    char *path = s_forge_base("ok.ftm", e, 2, 736);
    struct fl_base_file f;
    cr_assert_eq(fl_base_read(path, &f), 0, "%s", fl_error_msg());
    cr_assert_eq(f.ntensors, 2);
    fl_base_close(&f);
    free(path);
}

Test(fl_modelfile, tensor_outside_the_file_is_refused)
{
    struct fl_tensor_entry e[2];
    s_forge_entries(e);
    e[1].offset = 1 << 20;
    char *path = s_forge_base("outside.ftm", e, 2, 736);
    struct fl_base_file f;
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT); /* hash fine: the table is wrong */
    s_assert_msg_has(path);
    s_assert_msg_has("lies outside the file");
    cr_assert(s_all_zero(&f, sizeof f));

    s_forge_entries(e);
    e[0].offset = UINT64_MAX - 8; /* offset + nbytes wraps */
    free(path);
    path = s_forge_base("wrap.ftm", e, 2, 736);
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT);
    s_assert_msg_has(path);
    free(path);
}

Test(fl_modelfile, misplaced_tensors_are_refused)
{
    struct fl_tensor_entry e[2];
    struct fl_base_file f;
    s_forge_entries(e);
    e[1].offset = 700; /* not 64-aligned */
    char *path = s_forge_base("unaligned.ftm", e, 2, 736);
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT);
    s_assert_msg_has("aligned");
    free(path);

    s_forge_entries(e);
    e[1].offset = 640; /* overlaps fc1.weight */
    path = s_forge_base("overlap.ftm", e, 2, 736);
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT);
    s_assert_msg_has("overlaps");
    free(path);

    s_forge_entries(e);
    e[0].offset = 0; /* inside the preamble */
    path = s_forge_base("in-preamble.ftm", e, 2, 736);
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT);
    free(path);

    s_forge_entries(e);
    path = s_forge_base("trailing.ftm", e, 2, 800); /* 64 bytes after the last blob */
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT);
    s_assert_msg_has("after the last tensor");
    cr_assert(s_all_zero(&f, sizeof f));
    free(path);
}

Test(fl_modelfile, nbytes_disagreeing_with_shape_is_refused)
{
    /* The codec will not encode such a table; splice the wrong byte count in by hand. */
    struct fl_tensor_entry e[2];
    s_forge_entries(e);
    char *path = s_forge_base("ok.ftm", e, 2, 736);
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    size_t hend = 56 + (size_t)s_u64le(buf + 16);
    /* TensorInfo.nbytes = 32 is field 4, varint: bytes 0x20 0x20; make it 28. */
    uint8_t *p = memmem(buf + 56, hend - 56, "\x20\x20", 2);
    cr_assert_not_null(p);
    p[1] = 28;
    s_hash_bytes(buf, len, buf + 24);
    s_write_bytes(path, buf, len);
    struct fl_base_file f;
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT);
    s_assert_msg_has(path);
    s_assert_msg_has("fc1.bias");
    s_assert_msg_has("shape");
    free(buf);
    free(path);
}

Test(fl_modelfile, header_validation_catches_bad_layers_and_duplicates)
{
    /* Splice an unknown layer kind into a well-hashed header. */
    struct fl_tensor_entry e[2];
    s_forge_entries(e);
    char *path = s_forge_base("kind.ftm", e, 2, 736);
    uint8_t *buf;
    size_t len;
    s_read_bytes(path, &buf, &len);
    size_t hend = 56 + (size_t)s_u64le(buf + 16);
    /* LayerSpec for relu1: kind field 1 = 2 (0x08 0x02), then name "relu1". */
    uint8_t *p = memmem(buf + 56, hend - 56, "\x08\x02\x12\x05relu1", 9);
    cr_assert_not_null(p);
    p[1] = 9;
    s_hash_bytes(buf, len, buf + 24);
    s_write_bytes(path, buf, len);
    struct fl_base_file f;
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT);
    s_assert_msg_has("unknown kind 9");
    free(buf);
    free(path);

    /* Duplicate tensor names: forge two distinct names of equal length, then make them equal. */
    s_forge_entries(e);
    strcpy(e[0].name, "tensorA");
    strcpy(e[1].name, "tensorB");
    path = s_forge_base("dup.ftm", e, 2, 736);
    s_read_bytes(path, &buf, &len);
    hend = 56 + (size_t)s_u64le(buf + 16);
    p = memmem(buf + 56, hend - 56, "tensorB", 7);
    cr_assert_not_null(p);
    p[6] = 'A';
    s_hash_bytes(buf, len, buf + 24);
    s_write_bytes(path, buf, len);
    cr_assert_eq(fl_base_read(path, &f), FL_EFORMAT, "%s", fl_error_msg());
    s_assert_msg_has("'tensorA' appears twice");
    free(buf);
    free(path);
}

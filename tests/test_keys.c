/* Tests of fl_keys on real files in a temp dir: keygen, the .key/.pub formats, permission and
 * corruption checks, and the coordinator's allow-list. */
#include "fl_allowlist.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_keys.h"
#include "fl_testutil.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *s_dir;

static void s_setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    s_dir = fl_test_tmpdir("keys");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(fl_keys, .init = s_setup, .fini = s_teardown);

/* Path in the scratch dir; a few live at once, so rotate static buffers. */
static const char *s_path(const char *name)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", s_dir, name);
    return b;
}

static void s_write(const char *path, const char *text, mode_t mode)
{
    cr_assert_eq(fl_fs_write_file(path, text, strlen(text), mode), 0, "%s", fl_error_msg());
}

static char *s_read(const char *path)
{
    unsigned char *buf;
    size_t len;
    cr_assert_eq(fl_fs_read_file(path, 1 << 20, &buf, &len), 0, "%s", fl_error_msg());
    return (char *)buf;
}

/* A .key file for a fixed seed, written by hand: it documents the format. */
static void s_write_seed_key(const char *path, const uint8_t seed[32], const char *name)
{
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, seed, 32, sodium_base64_VARIANT_ORIGINAL);
    char text[256];
    snprintf(text, sizeof text, "fedtl-secret-ed25519-v1\n%s\n%s\n", b64, name);
    s_write(path, text, 0600);
}

static void s_gen(const char *prefix, const char *name, struct fl_pubkey *pk)
{
    char path[1100];
    snprintf(path, sizeof path, "%s", s_path(prefix));
    cr_assert_eq(fl_keygen(path, name), 0, "%s", fl_error_msg());
    if (pk) {
        strcat(path, ".pub");
        cr_assert_eq(fl_pubkey_load(path, pk), 0, "%s", fl_error_msg());
    }
}

Test(fl_keys, keygen_writes_secret_0600_and_pub_line)
{
    cr_assert_eq(fl_keygen(s_path("node"), "branch-01"), 0, "%s", fl_error_msg());
    struct stat st;
    cr_assert_eq(stat(s_path("node.key"), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", (unsigned)(st.st_mode & 0777));
    cr_assert_eq(stat(s_path("node.pub"), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0644, "mode %o", (unsigned)(st.st_mode & 0777));

    char *pub = s_read(s_path("node.pub"));
    cr_expect_eq(strncmp(pub, "fedtl-ed25519 ", 14), 0, "%s", pub);
    cr_expect_eq(strlen(pub), 14 + 44 + 1 + strlen("branch-01") + 1, "'%s'", pub);
    cr_expect_str_eq(pub + 14 + 44, " branch-01\n");

    char *key = s_read(s_path("node.key"));
    cr_expect_eq(strncmp(key, "fedtl-secret-ed25519-v1\n", 24), 0);
    cr_expect_str_eq(key + 24 + 44, "\nbranch-01\n");
    free(key);

    struct fl_pubkey pk;
    cr_assert_eq(fl_pubkey_parse(pub, "node.pub", &pk), 0, "%s", fl_error_msg());
    cr_expect_str_eq(pk.name, "branch-01");
    char line[256];
    fl_pubkey_format(pk.sign_pk, pk.name, line, sizeof line);
    cr_expect_eq(strncmp(line, pub, strlen(line)), 0);
    cr_expect_eq(strlen(line) + 1, strlen(pub));
    free(pub);
}

Test(fl_keys, keygen_default_name_is_usable)
{
    /* The host name of a test machine may not be a valid key name; when it is, it is used. */
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    int rc = fl_keygen(s_path("host"), NULL);
    if (rc == 0) {
        struct fl_pubkey pk;
        cr_assert_eq(fl_pubkey_load(s_path("host.pub"), &pk), 0, "%s", fl_error_msg());
        cr_expect_str_eq(pk.name, host);
    } else {
        cr_expect_eq(rc, FL_EINVAL);
        cr_expect_not_null(strstr(fl_error_msg(), "host name"), "%s", fl_error_msg());
    }
}

Test(fl_keys, keygen_rejects_bad_names)
{
    cr_expect_eq(fl_keygen(s_path("a"), "two words"), FL_EINVAL);
    cr_expect_eq(fl_keygen(s_path("a"), "tab\there"), FL_EINVAL);
    cr_expect_eq(fl_keygen(s_path("a"), "bell\a"), FL_EINVAL);
    char longname[FL_NODE_NAME_MAX + 1];
    memset(longname, 'x', FL_NODE_NAME_MAX);
    longname[FL_NODE_NAME_MAX] = '\0';
    cr_expect_eq(fl_keygen(s_path("a"), longname), FL_EINVAL);
    longname[FL_NODE_NAME_MAX - 1] = '\0'; /* 63 characters: the longest allowed */
    cr_expect_eq(fl_keygen(s_path("a"), longname), 0, "%s", fl_error_msg());
    struct stat st;
    cr_expect_eq(stat(s_path("b.key"), &st), -1);
}

Test(fl_keys, keygen_refuses_to_overwrite_a_key)
{
    s_gen("node", "n1", NULL);
    char *before = s_read(s_path("node.key"));
    cr_assert_eq(fl_keygen(s_path("node"), "n2"), FL_EINVAL);
    cr_expect_not_null(strstr(fl_error_msg(), "node.key: exists; remove it first"), "%s",
                       fl_error_msg());
    char *after = s_read(s_path("node.key"));
    cr_expect_str_eq(before, after);
    free(before);
    free(after);
}

Test(fl_keys, load_round_trip_matches_pub_and_libsodium)
{
    struct fl_pubkey pk;
    s_gen("node", "coord", &pk);
    struct fl_identity *id = fl_identity_load(s_path("node.key"));
    cr_assert_not_null(id, "%s", fl_error_msg());
    cr_expect_eq(memcmp(id->sign_pk, pk.sign_pk, FL_SIGN_PK_BYTES), 0);
    cr_expect_eq(memcmp(id->box_pk, pk.box_pk, FL_BOX_PK_BYTES), 0);
    cr_expect_str_eq(id->name, "coord");

    uint8_t box_pk[crypto_box_PUBLICKEYBYTES], box_sk[crypto_box_SECRETKEYBYTES];
    cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(box_pk, id->sign_pk), 0);
    cr_assert_eq(crypto_sign_ed25519_sk_to_curve25519(box_sk, id->sign_sk), 0);
    cr_expect_eq(memcmp(box_pk, id->box_pk, sizeof box_pk), 0);
    cr_expect_eq(sodium_memcmp(box_sk, id->box_sk, sizeof box_sk), 0);
    /* box_sk and box_pk are a pair: scalarmult_base(sk) == pk */
    uint8_t derived[crypto_scalarmult_BYTES];
    cr_assert_eq(crypto_scalarmult_base(derived, id->box_sk), 0);
    cr_expect_eq(memcmp(derived, id->box_pk, sizeof derived), 0);
    /* the secret signs what the public key verifies */
    uint8_t sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const uint8_t *)"hi", 2, id->sign_sk);
    cr_expect_eq(crypto_sign_verify_detached(sig, (const uint8_t *)"hi", 2, pk.sign_pk), 0);
    sodium_memzero(box_sk, sizeof box_sk);

    fl_identity_destroy(&id);
    cr_expect_null(id);
    fl_identity_destroy(&id); /* twice is fine */
    fl_identity_destroy(NULL);
}

Test(fl_keys, known_answer_seed_file)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(i * 7 + 1);
    s_write_seed_key(s_path("fixed.key"), seed, "fixed-node");

    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, seed);
    struct fl_identity *id = fl_identity_load(s_path("fixed.key"));
    cr_assert_not_null(id, "%s", fl_error_msg());
    cr_expect_eq(memcmp(id->sign_pk, pk, sizeof pk), 0);
    cr_expect_eq(sodium_memcmp(id->sign_sk, sk, sizeof sk), 0);
    cr_expect_str_eq(id->name, "fixed-node");

    /* RFC 8032 test 1: this seed gives this public key, whatever the file says. */
    static const uint8_t rfc_seed[32] = {0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60,
                                         0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
                                         0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
                                         0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
    static const uint8_t rfc_pk[32] = {0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7,
                                       0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
                                       0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25,
                                       0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};
    s_write_seed_key(s_path("rfc.key"), rfc_seed, "rfc8032");
    struct fl_identity *rfc = fl_identity_load(s_path("rfc.key"));
    cr_assert_not_null(rfc, "%s", fl_error_msg());
    cr_expect_eq(memcmp(rfc->sign_pk, rfc_pk, 32), 0);
    char kid[FL_KEY_ID_LEN];
    fl_key_id(rfc->sign_pk, kid);
    cr_expect_str_eq(kid, "d75a980182b1");
    char line[256];
    fl_pubkey_format(rfc->sign_pk, rfc->name, line, sizeof line);
    cr_expect_str_eq(line, "fedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= rfc8032");
    fl_identity_destroy(&rfc);
    fl_identity_destroy(&id);
}

Test(fl_keys, refuses_a_key_readable_by_others)
{
    s_gen("node", "n", NULL);
    cr_assert_eq(chmod(s_path("node.key"), 0644), 0);
    cr_expect_null(fl_identity_load(s_path("node.key")));
    cr_expect_not_null(strstr(fl_error_msg(), "node.key: permissions 0644 are too open; chmod 600"),
                       "%s", fl_error_msg());
    cr_assert_eq(chmod(s_path("node.key"), 0640), 0);
    cr_expect_null(fl_identity_load(s_path("node.key")));
    cr_assert_eq(chmod(s_path("node.key"), 0400), 0);
    struct fl_identity *id = fl_identity_load(s_path("node.key"));
    cr_expect_not_null(id, "%s", fl_error_msg());
    fl_identity_destroy(&id);
}

static void s_expect_bad_key(const char *text, const char *needle)
{
    s_write(s_path("bad.key"), text, 0600);
    cr_expect_null(fl_identity_load(s_path("bad.key")), "accepted: %s", text);
    cr_expect_not_null(strstr(fl_error_msg(), "bad.key"), "%s", fl_error_msg());
    cr_expect_not_null(strstr(fl_error_msg(), needle), "'%s' lacks '%s'", fl_error_msg(), needle);
}

Test(fl_keys, corrupted_key_files_are_refused)
{
    static const char good_b64[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    char text[512];
    snprintf(text, sizeof text, "fedtl-secret-ed25519-v1\n%s\nn\n", good_b64);
    s_write(s_path("good.key"), text, 0600);
    struct fl_identity *id = fl_identity_load(s_path("good.key"));
    cr_assert_not_null(id, "%s", fl_error_msg());
    fl_identity_destroy(&id);

    snprintf(text, sizeof text, "fedtl-secret-ed25519-v2\n%s\nn\n", good_b64);
    s_expect_bad_key(text, "first line");
    s_expect_bad_key("", "first line");
    snprintf(text, sizeof text, "ssh-ed25519 %s n\n", good_b64);
    s_expect_bad_key(text, "first line");
    s_expect_bad_key(
        "fedtl-secret-ed25519-v1\nAQID!!!EBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fIA=\nn\n",
        "not valid base64");
    s_expect_bad_key("fedtl-secret-ed25519-v1\nAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA\nn\n",
                     "not valid base64"); /* missing padding */
    s_expect_bad_key("fedtl-secret-ed25519-v1\nAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e\nn\n",
                     "30 bytes, expected 32");
    s_expect_bad_key("fedtl-secret-ed25519-v1\nAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh\nn\n",
                     "33 bytes, expected 32");
    s_expect_bad_key("fedtl-secret-ed25519-v1\n\nn\n", "line 2");
    snprintf(text, sizeof text, "fedtl-secret-ed25519-v1\n%s\n", good_b64);
    s_expect_bad_key(text, "line 3");
    snprintf(text, sizeof text, "fedtl-secret-ed25519-v1\n%s\nn\nextra\n", good_b64);
    s_expect_bad_key(text, "unexpected text");

    cr_expect_null(fl_identity_load(s_path("missing.key")));
    cr_expect_not_null(strstr(fl_error_msg(), "missing.key"), "%s", fl_error_msg());
}

static void s_expect_bad_pub(const char *line, const char *needle)
{
    struct fl_pubkey pk;
    int rc = fl_pubkey_parse(line, "keys.txt:7", &pk);
    cr_expect_eq(rc, FL_EFORMAT, "accepted: %s", line);
    cr_expect_not_null(strstr(fl_error_msg(), "keys.txt:7: "), "%s", fl_error_msg());
    cr_expect_not_null(strstr(fl_error_msg(), needle), "'%s' lacks '%s'", fl_error_msg(), needle);
}

Test(fl_keys, pubkey_parse_errors_name_the_origin)
{
    const char *good = "fedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= rfc8032";
    struct fl_pubkey pk;
    cr_assert_eq(fl_pubkey_parse(good, "x", &pk), 0, "%s", fl_error_msg());
    cr_expect_str_eq(pk.name, "rfc8032");
    cr_assert_eq(
        fl_pubkey_parse("fedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\r\n", "x", &pk),
        0, "%s", fl_error_msg());
    cr_expect_str_eq(pk.name, "d75a980182b1"); /* unnamed: the key id */

    s_expect_bad_pub("ssh-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= x",
                     "not a fedtl public key");
    s_expect_bad_pub("", "not a fedtl public key");
    s_expect_bad_pub("fedtl-ed25519", "missing");
    s_expect_bad_pub("fedtl-ed25519 11qYAYKx*rfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= x",
                     "not valid base64");
    s_expect_bad_pub("fedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcH x",
                     "30 bytes, expected 32");
    s_expect_bad_pub("fedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo x",
                     "not valid base64"); /* no padding */
    s_expect_bad_pub("fedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURoA x",
                     "33 bytes, expected 32");
    s_expect_bad_pub("fedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= a b",
                     "unexpected text");
    /* the point of order 1 is no one's key */
    s_expect_bad_pub("fedtl-ed25519 AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= x",
                     "not a valid Ed25519");
}

Test(fl_keys, key_id_and_z85)
{
    uint8_t key[32] = {0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67};
    char id[FL_KEY_ID_LEN];
    fl_key_id(key, id);
    cr_expect_str_eq(id, "abcdef012345");
    /* The Z85 test vector of the ZeroMQ RFC 32/Z85: 86 4f d2 6f b5 59 f7 5b -> HelloWorld */
    uint8_t z[32] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
    char out[FL_Z85_KEY_LEN];
    fl_key_z85(z, out);
    cr_expect_eq(strlen(out), 40);
    cr_expect_eq(strncmp(out, "HelloWorld", 10), 0, "%s", out);
}

Test(fl_keys, allowlist_from_directory)
{
    struct fl_pubkey a, b, other;
    cr_assert_eq(fl_fs_mkdirs(s_path("enrolled"), 0755), 0);
    s_gen("enrolled/a", "alpha", &a);
    s_gen("enrolled/b", "bravo", &b);
    s_gen("other", "outsider", &other);
    /* the .key files in the directory and other files are ignored */
    s_write(s_path("enrolled/README"), "not a key\n", 0644);
    s_write(s_path("enrolled/notes.pub.bak"), "garbage\n", 0644);
    cr_assert_eq(fl_fs_mkdirs(s_path("enrolled/sub.pub"), 0755), 0);

    fl_allowlist_t *al = fl_allowlist_load(s_path("enrolled"));
    cr_assert_not_null(al, "%s", fl_error_msg());
    cr_expect_eq(fl_allowlist_size(al), 2);
    char name[FL_NODE_NAME_MAX] = "";
    cr_expect(fl_allowlist_has(al, a.sign_pk, name));
    cr_expect_str_eq(name, "alpha");
    cr_expect(fl_allowlist_has(al, b.sign_pk, name));
    cr_expect_str_eq(name, "bravo");
    cr_expect(fl_allowlist_has(al, a.sign_pk, NULL));
    cr_expect_not(fl_allowlist_has(al, other.sign_pk, name));
    cr_expect(fl_allowlist_has_curve(al, a.box_pk));
    cr_expect(fl_allowlist_has_curve(al, b.box_pk));
    cr_expect_not(fl_allowlist_has_curve(al, other.box_pk));
    cr_expect_not(fl_allowlist_has_curve(al, a.sign_pk)); /* the Ed25519 form is not it */
    fl_allowlist_destroy(&al);
    cr_expect_null(al);
    fl_allowlist_destroy(&al);

    /* a bad .pub file in the directory is an error naming it and its line */
    s_write(s_path("enrolled/c.pub"), "# comment\nfedtl-ed25519 garbage c\n", 0644);
    cr_expect_null(fl_allowlist_load(s_path("enrolled")));
    cr_expect_not_null(strstr(fl_error_msg(), "enrolled/c.pub:2: "), "%s", fl_error_msg());
}

Test(fl_keys, allowlist_from_file_with_comments_and_duplicates)
{
    struct fl_pubkey a, b, other;
    s_gen("a", "alpha", &a);
    s_gen("b", "bravo", &b);
    s_gen("other", "outsider", &other);
    char la[256], lb[256], text[1024];
    fl_pubkey_format(a.sign_pk, a.name, la, sizeof la);
    fl_pubkey_format(b.sign_pk, b.name, lb, sizeof lb);
    snprintf(text, sizeof text, "# enrolled branches\n\n%s\n   \n%s\r\n# again\n%s\n", la, lb, la);
    s_write(s_path("authorized"), text, 0644);

    fl_allowlist_t *al = fl_allowlist_load(s_path("authorized"));
    cr_assert_not_null(al, "%s", fl_error_msg());
    cr_expect_eq(fl_allowlist_size(al), 2);
    char name[FL_NODE_NAME_MAX];
    cr_expect(fl_allowlist_has(al, a.sign_pk, name));
    cr_expect_str_eq(name, "alpha");
    cr_expect(fl_allowlist_has(al, b.sign_pk, name));
    cr_expect_str_eq(name, "bravo");
    cr_expect_not(fl_allowlist_has(al, other.sign_pk, NULL));
    cr_expect(fl_allowlist_has_curve(al, b.box_pk));
    cr_expect_not(fl_allowlist_has_curve(al, other.box_pk));
    fl_allowlist_destroy(&al);

    snprintf(text, sizeof text, "%s\n# ok\n%s\nfedtl-ed25519 AAAA x\n", la, lb);
    s_write(s_path("broken"), text, 0644);
    cr_expect_null(fl_allowlist_load(s_path("broken")));
    cr_expect_not_null(strstr(fl_error_msg(), "broken:4: "), "%s", fl_error_msg());

    cr_expect_null(fl_allowlist_load(s_path("nonexistent")));
    cr_expect_not_null(strstr(fl_error_msg(), "nonexistent"), "%s", fl_error_msg());
    s_write(s_path("empty"), "# nobody yet\n", 0644);
    cr_expect_null(fl_allowlist_load(s_path("empty")));
    cr_expect_not_null(strstr(fl_error_msg(), "no public keys"), "%s", fl_error_msg());
}

Test(fl_keys, allowlist_of_ten_thousand_keys)
{
    enum { N = 10000 };
    char *path = fl_test_path(s_dir, "many");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], seed[32] = {0};
    uint8_t probe[3][crypto_sign_PUBLICKEYBYTES];
    for (int i = 0; i < N; i++) {
        memcpy(seed, &i, sizeof i);
        crypto_sign_seed_keypair(pk, sk, seed);
        if (i == 0 || i == N / 2 || i == N - 1)
            memcpy(probe[i == 0 ? 0 : i == N / 2 ? 1 : 2], pk, sizeof pk);
        char line[256], name[32];
        snprintf(name, sizeof name, "b%05d", i);
        fl_pubkey_format(pk, name, line, sizeof line);
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    fl_allowlist_t *al = fl_allowlist_load(path);
    cr_assert_not_null(al, "%s", fl_error_msg());
    cr_expect_eq(fl_allowlist_size(al), N);
    char name[FL_NODE_NAME_MAX];
    cr_expect(fl_allowlist_has(al, probe[1], name));
    cr_expect_str_eq(name, "b05000");
    for (int i = 0; i < 3; i++) {
        uint8_t box[crypto_box_PUBLICKEYBYTES];
        cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(box, probe[i]), 0);
        cr_expect(fl_allowlist_has(al, probe[i], NULL));
        cr_expect(fl_allowlist_has_curve(al, box));
    }
    seed[0] = 0xff, seed[5] = 1;
    crypto_sign_seed_keypair(pk, sk, seed);
    cr_expect_not(fl_allowlist_has(al, pk, NULL));
    fl_allowlist_destroy(&al);
    free(path);
}

Test(fl_keys, pubkey_load_reads_the_first_key_line)
{
    struct fl_pubkey pk;
    s_write(s_path("c.pub"),
            "# coordinator\nfedtl-ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= coord\n",
            0644);
    cr_assert_eq(fl_pubkey_load(s_path("c.pub"), &pk), 0, "%s", fl_error_msg());
    cr_expect_str_eq(pk.name, "coord");
    s_write(s_path("d.pub"), "# nothing\n\n", 0644);
    cr_expect_eq(fl_pubkey_load(s_path("d.pub"), &pk), FL_EFORMAT);
    cr_expect_not_null(strstr(fl_error_msg(), "d.pub"), "%s", fl_error_msg());
    s_write(s_path("e.pub"), "\nfedtl-ed25519 bad e\n", 0644);
    cr_expect_eq(fl_pubkey_load(s_path("e.pub"), &pk), FL_EFORMAT);
    cr_expect_not_null(strstr(fl_error_msg(), "e.pub:2: "), "%s", fl_error_msg());
}

/* Keys seen by s_collect, and after how many it stops the walk. */
struct s_seen {
    struct fl_pubkey keys[4]; /* in the order given */
    int n;                    /* how many */
    int stop_after;           /* return 1 after this many (0: never) */
};

static int s_collect(void *ctx, const struct fl_pubkey *pk)
{
    struct s_seen *s = ctx;
    if (s->n < 4)
        s->keys[s->n] = *pk;
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

Test(fl_keys, pubkey_each_walks_every_key_in_file_order)
{
    struct fl_pubkey a, b;
    s_gen("each_a", "alpha", &a);
    s_gen("each_b", "beta", &b);
    char la[256], lb[256], text[700];
    fl_pubkey_format(a.sign_pk, a.name, la, sizeof la);
    fl_pubkey_format(b.sign_pk, b.name, lb, sizeof lb);
    snprintf(text, sizeof text, "# two keys\n%s\n\n  # indented comment\n%s\n", lb, la);
    s_write(s_path("each.keys"), text, 0644);
    struct s_seen seen = {0};
    cr_assert_eq(fl_pubkey_each(s_path("each.keys"), s_collect, &seen), 0, "%s", fl_error_msg());
    cr_assert_eq(seen.n, 2);
    cr_expect_str_eq(seen.keys[0].name, "beta");
    cr_expect_str_eq(seen.keys[1].name, "alpha");
    cr_expect_eq(memcmp(seen.keys[1].box_pk, a.box_pk, FL_BOX_PK_BYTES), 0);
    /* The callback's non-zero return stops the walk and is returned. */
    struct s_seen first = {.stop_after = 1};
    cr_assert_eq(fl_pubkey_each(s_path("each.keys"), s_collect, &first), 1);
    cr_assert_eq(first.n, 1);
    /* A bad line is an error naming the file and line, not a skip. */
    snprintf(text, sizeof text, "%s\nnot a key\n%s\n", la, lb);
    s_write(s_path("bad.keys"), text, 0644);
    struct s_seen bad = {0};
    cr_assert_eq(fl_pubkey_each(s_path("bad.keys"), s_collect, &bad), FL_EFORMAT);
    cr_expect_not_null(strstr(fl_error_msg(), "bad.keys:2"), "%s", fl_error_msg());
    cr_expect_eq(bad.n, 1);
}

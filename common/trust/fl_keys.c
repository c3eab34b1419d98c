/* fl_keys: Ed25519 node identities and their files (.key, .pub). */
#include "fl_keys.h"
#include "fl_error.h"
#include "fl_fs.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define S_KEY_HEADER   "fedtl-secret-ed25519-v1"
#define S_PUB_PREFIX   "fedtl-ed25519"
#define S_SEED_BYTES   crypto_sign_SEEDBYTES
#define S_B64_LEN(n)   sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL)
#define S_KEY_FILE_MAX 4096        /* a .key file is ~130 bytes */
#define S_PUB_FILE_MAX (64u << 20) /* an authorized_keys file of ~500,000 keys */
#define S_LINE_MAX     1024        /* longest .pub line accepted */

_Static_assert(FL_SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "sign pk size");
_Static_assert(FL_SIGN_SK_BYTES == crypto_sign_SECRETKEYBYTES, "sign sk size");
_Static_assert(FL_BOX_PK_BYTES == crypto_box_PUBLICKEYBYTES, "box pk size");
_Static_assert(FL_BOX_SK_BYTES == crypto_box_SECRETKEYBYTES, "box sk size");
_Static_assert(FL_SIG_BYTES == crypto_sign_BYTES, "signature size");
_Static_assert(FL_BOX_PK_BYTES == crypto_scalarmult_curve25519_BYTES, "curve key size");

static int s_sodium_ready(void)
{
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium: initialisation failed");
    return 0;
}

/* A node name: 1..FL_NODE_NAME_MAX-1 bytes, no whitespace or control characters. */
static bool s_name_ok(const char *name, size_t len)
{
    if (len == 0 || len >= FL_NODE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static int s_check_name(const char *name)
{
    if (!s_name_ok(name, strlen(name)))
        return fl_fail(FL_EINVAL,
                       "key name '%.80s': must be 1 to %d characters without spaces or control "
                       "characters",
                       name, FL_NODE_NAME_MAX - 1);
    return 0;
}

static char *s_concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 1);
    if (p) {
        memcpy(p, a, la);
        memcpy(p + la, b, lb + 1);
    }
    return p;
}

void fl_pubkey_format(const uint8_t sign_pk[FL_SIGN_PK_BYTES], const char *name, char *out,
                      size_t len)
{
    char b64[S_B64_LEN(FL_SIGN_PK_BYTES)];
    sodium_bin2base64(b64, sizeof b64, sign_pk, FL_SIGN_PK_BYTES, sodium_base64_VARIANT_ORIGINAL);
    if (name && name[0])
        snprintf(out, len, S_PUB_PREFIX " %s %s", b64, name);
    else
        snprintf(out, len, S_PUB_PREFIX " %s", b64);
}

void fl_key_id(const uint8_t sign_pk[FL_SIGN_PK_BYTES], char out[FL_KEY_ID_LEN])
{
    sodium_bin2hex(out, 13, sign_pk, 6);
}

void fl_key_z85(const uint8_t key[32], char out[FL_Z85_KEY_LEN])
{
    if (!zmq_z85_encode(out, key, 32))
        out[0] = '\0';
}

/* Secret material while a key is generated or loaded, in guarded memory. */
struct s_secret {
    uint8_t seed[S_SEED_BYTES];        /* Ed25519 seed */
    uint8_t sk[FL_SIGN_SK_BYTES];      /* expanded secret key */
    uint8_t decoded[2 * S_SEED_BYTES]; /* base64 decode target (length check) */
    char text[S_B64_LEN(S_SEED_BYTES) + 64 + FL_NODE_NAME_MAX]; /* .key file contents */
};

static int s_write_key_file(const char *path, struct s_secret *s, const char *name)
{
    /* Build the whole file in guarded memory and write it unbuffered (fl_fs_write_file), so
     * no stdio buffer ever holds the seed. */
    size_t hdr = strlen(S_KEY_HEADER);
    memcpy(s->text, S_KEY_HEADER "\n", hdr + 1);
    sodium_bin2base64(s->text + hdr + 1, S_B64_LEN(S_SEED_BYTES), s->seed, S_SEED_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    size_t n = strlen(s->text);
    int w = snprintf(s->text + n, sizeof s->text - n, "\n%s\n", name);
    if (w < 0 || (size_t)w >= sizeof s->text - n)
        return fl_fail(FL_EINVAL, "%s: key name too long", path);
    n += (size_t)w;
    return fl_fs_write_file(path, s->text, n, 0600);
}

static int s_write_pub_file(const char *path, const uint8_t pk[FL_SIGN_PK_BYTES], const char *name)
{
    char line[S_LINE_MAX];
    fl_pubkey_format(pk, name, line, sizeof line - 1);
    size_t n = strlen(line);
    line[n++] = '\n';
    return fl_fs_write_file(path, line, n, 0644);
}

static int s_default_name(char *out, size_t len)
{
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        return fl_fail(FL_EINVAL, "cannot read the host name (%s); give a key name",
                       strerror(errno));
    if (!s_name_ok(host, strlen(host)))
        return fl_fail(FL_EINVAL,
                       "host name '%.80s' is not a usable key name (at most %d characters, no "
                       "spaces); give a key name",
                       host, FL_NODE_NAME_MAX - 1);
    snprintf(out, len, "%.*s", FL_NODE_NAME_MAX - 1, host); /* s_name_ok: it fits */
    return 0;
}

int fl_keygen(const char *prefix, const char *name)
{
    char node[FL_NODE_NAME_MAX];
    int rc = s_sodium_ready();
    if (rc)
        return rc;
    if (!prefix || !prefix[0])
        return fl_fail(FL_EINVAL, "keygen: empty output prefix");
    if (name && name[0]) {
        if ((rc = s_check_name(name)) != 0)
            return rc;
        snprintf(node, sizeof node, "%s", name);
    } else if ((rc = s_default_name(node, sizeof node)) != 0) {
        return rc;
    }

    char *key_path = s_concat(prefix, ".key");
    char *pub_path = s_concat(prefix, ".pub");
    struct s_secret *s = sodium_malloc(sizeof *s);
    if (!key_path || !pub_path || !s) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", prefix);
        goto out_free;
    }
    struct stat st;
    if (lstat(key_path, &st) == 0) {
        rc = fl_fail(FL_EINVAL, "%s: exists; remove it first", key_path);
        goto out_free;
    }
    uint8_t pk[FL_SIGN_PK_BYTES];
    randombytes_buf(s->seed, sizeof s->seed);
    if (crypto_sign_seed_keypair(pk, s->sk, s->seed) != 0) {
        rc = fl_fail(FL_ECRYPTO, "%s: key generation failed", key_path);
        goto out_free;
    }
    if ((rc = s_write_key_file(key_path, s, node)) != 0)
        goto out_free;
    if ((rc = s_write_pub_file(pub_path, pk, node)) != 0) {
        unlink(key_path); /* we just created it: leave no key without its .pub */
        goto out_free;
    }
out_free:
    sodium_free(s); /* zeroes it */
    free(pub_path);
    free(key_path);
    return rc;
}

/* Read a whole key file into guarded memory after checking its permissions on the open
 * descriptor (no race between the check and the read). */
static int s_read_key_file(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd;
    struct stat st;
    int rc = fl_fs_open_regular(path, &fd, &st);
    if (rc)
        return rc;
    if (st.st_mode & 077) {
        rc = fl_fail(FL_EINVAL, "%s: permissions %04o are too open; chmod 600 it", path,
                     (unsigned)(st.st_mode & 07777));
        goto out_close;
    }
    if (st.st_size > S_KEY_FILE_MAX) {
        rc = fl_fail(FL_EFORMAT, "%s: %lld bytes is too large for a key file", path,
                     (long long)st.st_size);
        goto out_close;
    }
    size_t n = (size_t)st.st_size;
    char *p = sodium_malloc(n + 1);
    if (!p) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
        goto out_close;
    }
    if (fl_fs_read_fd(fd, p, n) != n) {
        sodium_free(p);
        rc = fl_fail(FL_ETRUNC, "%s: short read", path);
        goto out_close;
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
out_close:
    close(fd);
    return rc;
}

/* Next line of buf[*pos..len): returns its start and length (without '\n' or '\r\n'),
 * or NULL at the end. */
static const char *s_next_line(const char *buf, size_t len, size_t *pos, size_t *line_len)
{
    if (*pos >= len)
        return NULL;
    const char *start = buf + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - start) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line_len = n;
    return start;
}

static int s_parse_key_file(const char *path, const char *buf, size_t len, struct s_secret *s,
                            struct fl_identity *id)
{
    if (memchr(buf, '\0', len))
        return fl_fail(FL_EFORMAT, "%s: not a fedtl key file (NUL byte)", path);
    size_t pos = 0, n = 0;
    const char *line = s_next_line(buf, len, &pos, &n);
    if (!line || n != strlen(S_KEY_HEADER) || memcmp(line, S_KEY_HEADER, n) != 0)
        return fl_fail(FL_EFORMAT, "%s: not a fedtl key file (first line is not '%s')", path,
                       S_KEY_HEADER);
    if (!(line = s_next_line(buf, len, &pos, &n)) || n == 0)
        return fl_fail(FL_EFORMAT, "%s: line 2: missing the base64 seed", path);
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_base642bin(s->decoded, sizeof s->decoded, line, n, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != line + n)
        return fl_fail(FL_EFORMAT, "%s: line 2: seed is not valid base64", path);
    if (bin_len != S_SEED_BYTES)
        return fl_fail(FL_EFORMAT, "%s: line 2: seed is %zu bytes, expected %d", path, bin_len,
                       (int)S_SEED_BYTES);
    memcpy(s->seed, s->decoded, S_SEED_BYTES);
    if (!(line = s_next_line(buf, len, &pos, &n)) || !s_name_ok(line, n))
        return fl_fail(FL_EFORMAT,
                       "%s: line 3: missing or invalid key name (1 to %d characters, no spaces)",
                       path, FL_NODE_NAME_MAX - 1);
    memcpy(id->name, line, n);
    id->name[n] = '\0';
    while ((line = s_next_line(buf, len, &pos, &n)) != NULL)
        if (n != 0)
            return fl_fail(FL_EFORMAT, "%s: unexpected text after the key name", path);
    if (crypto_sign_seed_keypair(id->sign_pk, id->sign_sk, s->seed) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(id->box_pk, id->sign_pk) != 0 ||
        crypto_sign_ed25519_sk_to_curve25519(id->box_sk, id->sign_sk) != 0)
        return fl_fail(FL_ECRYPTO, "%s: cannot derive the key pair", path);
    return 0;
}

struct fl_identity *fl_identity_load(const char *key_path)
{
    if (s_sodium_ready() != 0)
        return NULL;
    if (!key_path || !key_path[0]) {
        fl_fail(FL_EINVAL, "identity: no key file given");
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    if (s_read_key_file(key_path, &buf, &len) != 0)
        return NULL;
    struct fl_identity *id = sodium_malloc(sizeof *id);
    struct s_secret *s = sodium_malloc(sizeof *s);
    if (!id || !s) {
        fl_fail(FL_ENOMEM, "%s: out of memory", key_path);
        goto out_fail;
    }
    memset(id, 0, sizeof *id);
    if (s_parse_key_file(key_path, buf, len, s, id) != 0)
        goto out_fail;
    sodium_free(s);
    sodium_free(buf);
    return id;
out_fail:
    fl_identity_destroy(&id);
    sodium_free(s);
    sodium_free(buf); /* sodium_free zeroes before unmapping */
    return NULL;
}

void fl_identity_destroy(struct fl_identity **self_p)
{
    if (!self_p || !*self_p)
        return;
    sodium_memzero(*self_p, sizeof **self_p);
    sodium_free(*self_p);
    *self_p = NULL;
}

/* Split off the next whitespace-separated token of line[*pos..len). */
static const char *s_token(const char *line, size_t len, size_t *pos, size_t *tok_len)
{
    while (*pos < len && (line[*pos] == ' ' || line[*pos] == '\t'))
        (*pos)++;
    if (*pos >= len)
        return NULL;
    size_t start = *pos;
    while (*pos < len && line[*pos] != ' ' && line[*pos] != '\t')
        (*pos)++;
    *tok_len = *pos - start;
    return line + start;
}

/* Parse one .pub line of len bytes (no newline). */
static int s_parse_pub(const char *line, size_t len, const char *origin, struct fl_pubkey *pk)
{
    size_t pos = 0, n = 0;
    const char *tok = s_token(line, len, &pos, &n);
    if (!tok || n != strlen(S_PUB_PREFIX) || memcmp(tok, S_PUB_PREFIX, n) != 0)
        return fl_fail(FL_EFORMAT, "%s: not a fedtl public key (expected '%s <base64> <name>')",
                       origin, S_PUB_PREFIX);
    if (!(tok = s_token(line, len, &pos, &n)))
        return fl_fail(FL_EFORMAT, "%s: missing the base64 key", origin);
    uint8_t bin[2 * FL_SIGN_PK_BYTES];
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_base642bin(bin, sizeof bin, tok, n, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != tok + n)
        return fl_fail(FL_EFORMAT, "%s: key is not valid base64", origin);
    if (bin_len != FL_SIGN_PK_BYTES)
        return fl_fail(FL_EFORMAT, "%s: key is %zu bytes, expected %d", origin, bin_len,
                       FL_SIGN_PK_BYTES);
    memset(pk, 0, sizeof *pk);
    memcpy(pk->sign_pk, bin, FL_SIGN_PK_BYTES);
    if (crypto_sign_ed25519_pk_to_curve25519(pk->box_pk, pk->sign_pk) != 0)
        return fl_fail(FL_EFORMAT, "%s: not a valid Ed25519 public key", origin);
    if ((tok = s_token(line, len, &pos, &n)) != NULL) {
        if (!s_name_ok(tok, n))
            return fl_fail(FL_EFORMAT,
                           "%s: invalid key name (at most %d characters, no control characters)",
                           origin, FL_NODE_NAME_MAX - 1);
        memcpy(pk->name, tok, n);
        pk->name[n] = '\0';
    } else {
        fl_key_id(pk->sign_pk, pk->name); /* unnamed key: its id names it in logs */
    }
    if (s_token(line, len, &pos, &n))
        return fl_fail(FL_EFORMAT, "%s: unexpected text after the key name", origin);
    return 0;
}

int fl_pubkey_parse(const char *line, const char *origin, struct fl_pubkey *pk)
{
    if (!origin)
        origin = "public key";
    if (!line)
        return fl_fail(FL_EINVAL, "%s: no key", origin);
    if (s_sodium_ready() != 0)
        return FL_ECRYPTO;
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    return s_parse_pub(line, len, origin, pk);
}

/* Is this line blank or a '#' comment? */
static bool s_skip_line(const char *line, size_t n)
{
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i == n || line[i] == '#';
}

/* Call fn for every key line of the file at path; origin "path:line" in messages.
 * Stops after the first key when only_first. */
static int s_each_pub_line(const char *path, bool only_first, fl_pubkey_fn *fn, void *ctx)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = fl_fs_read_file(path, S_PUB_FILE_MAX, &buf, &len);
    if (rc)
        return rc;
    size_t pos = 0, n = 0, lineno = 0, keys = 0;
    const char *line;
    char origin[4096 + 32];
    while ((line = s_next_line((const char *)buf, len, &pos, &n)) != NULL) {
        lineno++;
        if (s_skip_line(line, n))
            continue;
        snprintf(origin, sizeof origin, "%s:%zu", path, lineno);
        if (n > S_LINE_MAX) {
            rc = fl_fail(FL_EFORMAT, "%s: line longer than %d bytes", origin, S_LINE_MAX);
            break;
        }
        if (memchr(line, '\0', n)) {
            rc = fl_fail(FL_EFORMAT, "%s: NUL byte in line", origin);
            break;
        }
        struct fl_pubkey pk;
        if ((rc = s_parse_pub(line, n, origin, &pk)) != 0 || (rc = fn(ctx, &pk)) != 0)
            break;
        keys++;
        if (only_first)
            break;
    }
    free(buf);
    if (rc == 0 && only_first && keys == 0)
        rc = fl_fail(FL_EFORMAT, "%s: no public key in the file", path);
    return rc;
}

static int s_copy_first(void *ctx, const struct fl_pubkey *pk)
{
    *(struct fl_pubkey *)ctx = *pk;
    return 0;
}

int fl_pubkey_load(const char *path, struct fl_pubkey *pk)
{
    if (s_sodium_ready() != 0)
        return FL_ECRYPTO;
    return s_each_pub_line(path, true, s_copy_first, pk);
}

int fl_pubkey_each(const char *path, fl_pubkey_fn *fn, void *ctx)
{
    if (s_sodium_ready() != 0)
        return FL_ECRYPTO;
    return s_each_pub_line(path, false, fn, ctx);
}

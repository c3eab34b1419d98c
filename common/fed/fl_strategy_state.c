/* fl_strategy_state: the server optimiser's state in a file of its own, a StrategyState
 * message (proto/fedtl_model.proto), written atomically beside the global adapter. This file
 * is the message's codec: nothing else packs or unpacks it. Every byte read is checked before
 * use (sizes, names, finite values, the digest), so a truncated, garbled or foreign file is an
 * error naming it, never a crash nor a silently wrong optimiser. */
#include "fl_strategy_impl.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_protobuf.h"
#include "fl_sizes.h"

#include "fedtl_model.pb-c.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_FILE    (1u << 30) /* bytes: 2 x 128 M parameters' moments */
#define S_MAX_TENSORS 4096       /* as an adapter file's header */

static void s_hash_u64(crypto_generichash_state *h, uint64_t x)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(x >> (8 * i));
    crypto_generichash_update(h, b, sizeof b);
}

static void s_hash_floats(crypto_generichash_state *h, const float *x, size_t n)
{
    s_hash_u64(h, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        s_hash_u64(h, u);
    }
}

/* The digest: BLAKE2b-256 over the config string, round, steps, tensor count and, per
 * tensor, its name, m and v, each string and array preceded by its length (little-endian
 * 64-bit integers; a float is hashed as its bits in one such integer). */
static void s_digest(const Fedtl__StrategyState *st, unsigned char out[FL_HASH_BYTES])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, FL_HASH_BYTES);
    const char *cfg = st->config ? st->config : "";
    s_hash_u64(&h, strlen(cfg));
    crypto_generichash_update(&h, (const unsigned char *)cfg, strlen(cfg));
    s_hash_u64(&h, st->round);
    s_hash_u64(&h, st->steps);
    s_hash_u64(&h, st->n_tensors);
    for (size_t i = 0; i < st->n_tensors; i++) {
        const Fedtl__StrategyMoments *t = st->tensors[i];
        const char *name = t->name ? t->name : "";
        s_hash_u64(&h, strlen(name));
        crypto_generichash_update(&h, (const unsigned char *)name, strlen(name));
        s_hash_floats(&h, t->m, t->n_m);
        s_hash_floats(&h, t->v, t->n_v);
    }
    crypto_generichash_final(&h, out, FL_HASH_BYTES);
}

int fl_strategy_save_file(const fl_strategy_t *s, const char *path, uint32_t round)
{
    char config[256];
    fl_strategy_config_str(&s->cfg, config, sizeof config);
    struct fl_strategy_state cur;
    fl_strategy_get_state(s, &cur);
    Fedtl__StrategyState st = FEDTL__STRATEGY_STATE__INIT;
    st.config = config;
    st.round = round;
    st.steps = cur.steps;
    Fedtl__StrategyMoments *mom = calloc(cur.n ? cur.n : 1, sizeof *mom);
    Fedtl__StrategyMoments **ptr = calloc(cur.n ? cur.n : 1, sizeof *ptr);
    unsigned char digest[FL_HASH_BYTES];
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    if (!mom || !ptr) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
        goto out_free;
    }
    for (size_t i = 0; i < cur.n; i++) {
        fedtl__strategy_moments__init(&mom[i]);
        mom[i].name = (char *)cur.m[i].name;
        mom[i].n_m = fl_tensor_numel(&cur.m[i]);
        mom[i].m = cur.m[i].data;
        if (cur.v) {
            mom[i].n_v = fl_tensor_numel(&cur.v[i]);
            mom[i].v = cur.v[i].data;
        }
        ptr[i] = &mom[i];
    }
    st.n_tensors = cur.n;
    st.tensors = ptr;
    s_digest(&st, digest);
    st.digest.data = digest;
    st.digest.len = sizeof digest;
    if ((rc = fl_protobuf_pack(&st.base, path, &buf, &len)) != 0)
        goto out_free;
    rc = fl_fs_write_file(path, buf, len, 0644);
out_free:
    free(buf);
    free(ptr);
    free(mom);
    return rc;
}

/* The decoded message's shape: counts, names and values fit what this strategy keeps. */
static int s_check(const fl_strategy_t *s, const Fedtl__StrategyState *st, const char *path)
{
    unsigned char digest[FL_HASH_BYTES];
    if (st->digest.len != FL_HASH_BYTES)
        return fl_fail(FL_ETRUNC, "%s: no digest: the strategy state is cut short", path);
    s_digest(st, digest);
    if (sodium_memcmp(digest, st->digest.data, FL_HASH_BYTES) != 0)
        return fl_fail(FL_EHASH, "%s: the strategy state does not match its digest (corrupt)",
                       path);
    char want[256], shown[256], ours[256];
    fl_strategy_config_str(&s->cfg, want, sizeof want);
    if (!st->config || strcmp(st->config, want) != 0)
        return fl_fail(FL_EMISMATCH, "%s: saved by strategy %s, this one is %s", path,
                       fl_log_str(st->config ? st->config : "", shown, sizeof shown),
                       fl_log_str(want, ours, sizeof ours));
    bool has_m = fl_strategy_opt_has_m(s->cfg.opt), has_v = fl_strategy_opt_has_v(s->cfg.opt);
    if (st->n_tensors > S_MAX_TENSORS || (!has_m && st->n_tensors))
        return fl_fail(FL_EFORMAT, "%s: %zu tensors of optimiser state", path, st->n_tensors);
    for (size_t i = 0; i < st->n_tensors; i++) {
        const Fedtl__StrategyMoments *t = st->tensors[i];
        size_t nl = t->name ? strlen(t->name) : 0;
        if (nl == 0 || nl >= FL_NAME_MAX)
            return fl_fail(FL_EFORMAT, "%s: tensor %zu has no name or one too long", path, i);
        if (t->n_m == 0 || t->n_m > (size_t)INT64_MAX || (has_v ? t->n_v != t->n_m : t->n_v))
            return fl_fail(FL_EFORMAT, "%s: tensor %zu has %zu first and %zu second moments", path,
                           i, t->n_m, t->n_v);
    }
    return 0;
}

int fl_strategy_load_file(fl_strategy_t *s, const char *path, uint32_t *round)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = fl_fs_read_file(path, S_MAX_FILE, &buf, &len);
    if (rc)
        return rc;
    Fedtl__StrategyState *st = fedtl__strategy_state__unpack(NULL, len, buf);
    free(buf);
    if (!st)
        return fl_fail(FL_EFORMAT, "%s: not a strategy state (truncated or garbled)", path);
    struct fl_tensor *m = NULL, *v = NULL;
    size_t n = st->n_tensors;
    if ((rc = s_check(s, st, path)) != 0)
        goto out_free;
    m = calloc(n ? n : 1, sizeof *m);
    v = calloc(n ? n : 1, sizeof *v);
    if (!m || !v) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
        goto out_free;
    }
    /* views of the message's arrays: set_state copies (and checks) them */
    for (size_t i = 0; i < n; i++) {
        const Fedtl__StrategyMoments *t = st->tensors[i];
        snprintf(m[i].name, sizeof m[i].name, "%s", t->name);
        m[i].ndim = 1;
        m[i].shape[0] = (int64_t)t->n_m;
        m[i].data = t->m;
        v[i] = m[i];
        v[i].data = t->v;
    }
    struct fl_strategy_state state = {
        .steps = st->steps, .n = n, .m = m, .v = fl_strategy_opt_has_v(s->cfg.opt) ? v : NULL};
    if ((rc = fl_strategy_set_state(s, &state)) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fl_error_msg());
        rc = fl_fail(rc, "%s: %s", path, msg);
        goto out_free;
    }
    if (round)
        *round = st->round;
out_free:
    free(m);
    free(v);
    fedtl__strategy_state__free_unpacked(st, NULL);
    return rc;
}

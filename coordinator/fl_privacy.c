/* fl_privacy: the coordinator's privacy accountant and its state file (fl_privacy.h). The file
 * is JSON: the round, the noise multiplier, the clip, the orders and the RDP spent at each,
 * written with 17 significant digits so that a restart reads back the same doubles. RDP does
 * not depend on delta, so delta may change across a restart; the orders and z may not. */
#include "fl_privacy.h"
#include "fl_dp.h"
#include "fl_error.h"
#include "fl_fs.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PATH_MAX  1100
#define S_STATE_MAX (64 * 1024)

struct fl_privacy {
    struct fl_privacy_settings set; /* as configured, noise resolved */
    struct fl_dp_account acc;       /* spent so far */
    char dir[S_PATH_MAX];           /* the state directory */
};

static void s_path(const fl_privacy_t *p, uint32_t round, char *buf, size_t len)
{
    snprintf(buf, len, "%s/privacy-%u.state", p->dir, round);
}

static cJSON *s_raw(double v)
{
    char t[40];
    snprintf(t, sizeof t, "%.17g", v);
    return cJSON_CreateRaw(t);
}

/* The number o has under key, or NAN. */
static double s_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Read the account of `path` into p; z from the file when none is configured. */
static int s_load(fl_privacy_t *p, const char *path, uint32_t round)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = fl_fs_read_file(path, S_STATE_MAX, &buf, &len);
    if (rc)
        return fl_fail(FL_EINVAL,
                       "%s cannot be read (%s): the privacy budget spent by round %u and the "
                       "sums unmasked since is unknown, and a restart must not reset it (move "
                       "the state directory away to start over)",
                       path, fl_error_msg(), round);
    cJSON *o = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    const cJSON *orders = cJSON_GetObjectItemCaseSensitive(o, "orders");
    const cJSON *rdp = cJSON_GetObjectItemCaseSensitive(o, "rdp");
    double z = s_num(o, "noise_multiplier"), r = s_num(o, "round"), n = s_num(o, "released");
    rc = FL_EFORMAT;
    if (!cJSON_IsObject(o) || r != round || !(z > 0 && isfinite(z)) ||
        !(n >= 0 && n <= UINT32_MAX && n == floor(n)) ||
        cJSON_GetArraySize(orders) != FL_DP_NORDERS || cJSON_GetArraySize(rdp) != FL_DP_NORDERS)
        goto out_format;
    for (int k = 0; k < FL_DP_NORDERS; k++) {
        const cJSON *a = cJSON_GetArrayItem(orders, k), *v = cJSON_GetArrayItem(rdp, k);
        if (!cJSON_IsNumber(a) || a->valuedouble != fl_dp_orders()[k] || !cJSON_IsNumber(v))
            goto out_format;
        p->acc.rdp[k] = v->valuedouble;
    }
    p->acc.rounds = (uint32_t)n;
    if (fl_dp_account_check(&p->acc) != 0)
        goto out_format;
    if (p->set.noise > 0 && p->set.noise != z) {
        rc = fl_fail(FL_EINVAL,
                     "%s: the federation ran with noise multiplier %.17g, the configuration says "
                     "%.17g (configure the saved one to resume)",
                     path, z, p->set.noise);
        goto out;
    }
    p->set.noise = z;
    cJSON_Delete(o);
    return 0;
out_format:
    rc = fl_fail(FL_EFORMAT, "%s is not a privacy account of round %u", path, round);
out:
    cJSON_Delete(o);
    return rc;
}

fl_privacy_t *fl_privacy_new(const struct fl_privacy_settings *s, const char *state_dir,
                             uint32_t completed)
{
    if (strlen(state_dir) >= S_PATH_MAX - 64) {
        fl_error_set("privacy: the state directory's path is too long");
        return NULL;
    }
    fl_privacy_t *p = calloc(1, sizeof *p);
    if (!p) {
        fl_error_set("privacy: out of memory");
        return NULL;
    }
    p->set = *s;
    snprintf(p->dir, sizeof p->dir, "%s", state_dir);
    char path[S_PATH_MAX + 32];
    s_path(p, completed, path, sizeof path);
    /* before round 1 commits, the file exists once a sum of round 1 could be unmasked */
    if (completed > 0 || access(path, F_OK) == 0) {
        if (s_load(p, path, completed) != 0)
            goto out_free;
    } else if (p->set.noise <= 0 &&
               fl_dp_calibrate(s->epsilon, s->delta, s->q, s->rounds, &p->set.noise) != 0) {
        goto out_free;
    }
    return p;
out_free:
    free(p);
    return NULL;
}

void fl_privacy_destroy(fl_privacy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

double fl_privacy_noise(const fl_privacy_t *self)
{
    return self->set.noise;
}

double fl_privacy_delta(const fl_privacy_t *self)
{
    return self->set.delta;
}

double fl_privacy_epsilon(const fl_privacy_t *self)
{
    return fl_dp_account_epsilon(&self->acc, self->set.delta);
}

bool fl_privacy_affords(const fl_privacy_t *self, double q, double *after)
{
    double e = fl_dp_account_epsilon_after(&self->acc, q, self->set.noise, self->set.delta);
    if (after)
        *after = e;
    return self->set.epsilon <= 0 || e <= self->set.epsilon;
}

int fl_privacy_spend(fl_privacy_t *self, double q)
{
    return fl_dp_account_spend(&self->acc, q, self->set.noise);
}

int fl_privacy_release(fl_privacy_t *self, double q, uint32_t completed)
{
    int rc = fl_privacy_spend(self, q);
    return rc ? rc : fl_privacy_save(self, completed);
}

int fl_privacy_save(const fl_privacy_t *self, uint32_t round)
{
    char path[S_PATH_MAX + 32];
    s_path(self, round, path, sizeof path);
    cJSON *o = cJSON_CreateObject(), *orders = cJSON_CreateArray(), *rdp = cJSON_CreateArray();
    bool ok = o && orders && rdp && cJSON_AddItemToObject(o, "orders", orders);
    if (ok)
        orders = NULL; /* o owns it */
    ok = ok && cJSON_AddItemToObject(o, "rdp", rdp);
    if (ok) {
        const cJSON *ord = cJSON_GetObjectItemCaseSensitive(o, "orders");
        rdp = NULL;
        cJSON_AddNumberToObject(o, "round", round);
        cJSON_AddNumberToObject(o, "released", self->acc.rounds);
        cJSON_AddItemToObject(o, "noise_multiplier", s_raw(self->set.noise));
        cJSON_AddItemToObject(o, "clip", s_raw(self->set.clip));
        cJSON_AddItemToObject(o, "delta", s_raw(self->set.delta));
        cJSON_AddItemToObject(o, "epsilon", s_raw(fl_privacy_epsilon(self)));
        cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rdp");
        for (int k = 0; k < FL_DP_NORDERS; k++) {
            cJSON_AddItemToArray((cJSON *)ord, cJSON_CreateNumber(fl_dp_orders()[k]));
            cJSON_AddItemToArray(r, s_raw(self->acc.rdp[k]));
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    cJSON_Delete(orders);
    cJSON_Delete(rdp);
    if (!text)
        return fl_fail(FL_ENOMEM, "%s: out of memory", path);
    int rc = fl_fs_write_file(path, text, strlen(text), 0644);
    cJSON_free(text);
    return rc;
}

void fl_privacy_prune(const fl_privacy_t *self, uint32_t round)
{
    if (round < 2)
        return;
    char path[S_PATH_MAX + 32];
    s_path(self, round - 2, path, sizeof path);
    unlink(path);
}

/* fl_intake: verify, open, decode, check, aggregate. */
#include "fl_intake.h"
#include "fl_error.h"
#include "fl_seal.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fl_intake {
    struct fl_intake_env env; /* as given */
    struct fl_plain plain;    /* the update being taken in, decrypted */
    uint32_t median_round;    /* the round attempt whose median is below: its number, */
    int median_retry;         /* its retry count */
    int64_t median_started;   /* and when it started */
    uint64_t median;          /* median sample count that attempt's selected branches declared */
};

fl_intake_t *fl_intake_new(const struct fl_intake_env *env)
{
    fl_intake_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->env = *env;
    return self;
}

void fl_intake_destroy(fl_intake_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_plain_free(&(*self_p)->plain);
    free(*self_p);
    *self_p = NULL;
}

int fl_coord_check_adapter(const struct fl_adapter_file *global,
                           const uint8_t base_hash[FL_HASH_BYTES], const struct fl_adapter_file *u,
                           fl_pool_t *pool, double *distance)
{
    const struct fl_adapter_meta *a = &u->meta, *g = &global->meta;
    if (memcmp(a->base_hash, base_hash, FL_HASH_BYTES) != 0)
        return fl_fail(FL_EMISMATCH, "adapter made for another base");
    bool same = a->kind == g->kind && a->rank == g->rank && a->num_classes == g->num_classes &&
                a->ntargets == g->ntargets &&
                (a->kind != FL_ADAPTER_FFA_LORA || a->seed == g->seed);
    for (int i = 0; same && i < a->ntargets; i++)
        same = strcmp(a->targets[i], g->targets[i]) == 0;
    if (!same)
        return fl_fail(FL_EMISMATCH, "adapter configuration differs from the global adapter's");
    if (u->ntensors != global->ntensors)
        return fl_fail(FL_EMISMATCH, "%zu tensors, expected %zu", u->ntensors, global->ntensors);
    for (size_t i = 0; i < u->ntensors; i++) {
        const struct fl_tensor *t = &u->tensors[i], *want = &global->tensors[i];
        if (strcmp(t->name, want->name) != 0 || !fl_tensor_same_shape(t, want)) {
            char got_s[64], want_s[64];
            fl_tensor_shape_str(t, got_s, sizeof got_s);
            fl_tensor_shape_str(want, want_s, sizeof want_s);
            return fl_fail(FL_EMISMATCH, "tensor %zu is %s %s, expected %s %s", i, t->name, got_s,
                           want->name, want_s);
        }
    }
    double d = 0;
    int rc = fl_admit_distance(global->tensors, u->tensors, u->ntensors, pool, &d);
    if (rc == 0 && distance)
        *distance = d;
    return rc;
}

/* The median of the sample counts the open round's selected branches declared in their
 * Hello, worked out once per round attempt (every selected branch is marked by then). */
static uint64_t s_round_median(fl_intake_t *self)
{
    const struct fl_round_info *info = fl_round_info(self->env.round);
    if (self->median_round == info->round && self->median_retry == info->retry &&
        self->median_started == info->started_ms)
        return self->median;
    size_t n = fl_round_nbranches(self->env.round), k = 0;
    uint64_t *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return 0; /* no ratio cap for this update; the next one tries again */
    for (size_t i = 0; i < n; i++) {
        const struct fl_round_branch *b = fl_round_branch_at(self->env.round, i);
        if (b->selected_round == info->round && b->samples)
            v[k++] = b->samples;
    }
    self->median = fl_admit_median(v, k);
    free(v);
    self->median_round = info->round;
    self->median_retry = info->retry;
    self->median_started = info->started_ms;
    return self->median;
}

/* A personal head's figures, as the held-out ones are checked (fl_admit_check_metrics). */
static int s_check_personal(const Fedtl__UpdateBody *b)
{
    if (!isfinite(b->personal_loss) || b->personal_loss < 0)
        return fl_fail(FL_ERANGE, "personal_loss %g is not a loss (finite, >= 0)",
                       (double)b->personal_loss);
    if (!(b->personal_accuracy >= 0 && b->personal_accuracy <= 1))
        return fl_fail(FL_ERANGE, "personal_accuracy %g is outside [0, 1]",
                       (double)b->personal_accuracy);
    return 0;
}

/* The checks of a signed and intact update's contents, in order, then the aggregate with the
 * update's bounded weight (out->weight). */
static enum fl_reject s_fold_in(fl_intake_t *self, const char *id, uint64_t declared,
                                Fedtl__UpdateBody **body, struct fl_adapter_file *af,
                                struct fl_ledger_update *out, char *detail, size_t len)
{
    const struct fl_intake_env *e = &self->env;
    enum fl_reject why = FL_REJECT_NONE;
    if (fl_wire_decode_body(self->plain.data, self->plain.len, body) != 0)
        why = FL_REJECT_MALFORMED;
    else if (fl_admit_check_metrics(
                 &(struct fl_admit_metrics){.samples = (*body)->samples,
                                            .train_loss = (*body)->train_loss,
                                            .eval_loss = (*body)->eval_loss,
                                            .eval_accuracy = (*body)->eval_accuracy,
                                            .eval_samples = (*body)->eval_samples}) != 0)
        why = FL_REJECT_METRICS;
    else if (s_check_personal(*body) != 0)
        why = FL_REJECT_METRICS;
    else if (fl_adapter_view_authenticated((*body)->adapter.data, (*body)->adapter.len, id, af) !=
             0)
        why = FL_REJECT_BAD_ADAPTER;
    else if (fl_coord_check_adapter(e->global, e->base_hash, af, e->pool, &out->distance) != 0)
        why = FL_REJECT_MISMATCH;
    else if (fl_admit_check_distance(e->limits, out->distance) != 0)
        why = FL_REJECT_TOO_FAR;
    if (why == FL_REJECT_NONE) {
        out->weight = fl_admit_weight(e->limits, (*body)->samples, declared, s_round_median(self));
        if (fl_strategy_add(e->strategy, af->tensors, af->ntensors, (double)out->weight, id) != 0)
            why = FL_REJECT_AGGREGATION;
    }
    if (why != FL_REJECT_NONE)
        snprintf(detail, len, "%s", fl_error_msg());
    return why;
}

/* Wipe every copy of the decrypted update, then free it. */
static void s_wipe(fl_intake_t *self, Fedtl__UpdateBody **body, struct fl_adapter_file *af)
{
    for (size_t i = 0; i < af->ntensors; i++)
        if (af->tensors[i].owned) /* else it lies in the body's adapter bytes */
            fl_wipe(af->tensors[i].data, fl_tensor_numel(&af->tensors[i]) * sizeof(float),
                    self->env.pool);
    if (*body && (*body)->adapter.data)
        fl_wipe((*body)->adapter.data, (*body)->adapter.len, self->env.pool);
    fl_adapter_close(af);
    fl_wire_free_body(body);
    fl_plain_wipe(&self->plain, self->env.pool);
}

enum fl_reject fl_intake_take(fl_intake_t *self, const fl_allowlist_t *allow, const uint8_t *peer,
                              size_t peer_len, const Fedtl__SealedUpdate *u,
                              struct fl_ledger_update *out)
{
    const struct fl_intake_env *e = &self->env;
    bool own_key =
        peer_len == FL_SIGN_PK_BYTES && memcmp(peer, u->branch_key.data, FL_SIGN_PK_BYTES) == 0;
    bool enrolled = own_key && fl_allowlist_has(allow, peer, NULL);
    enum fl_reject why = fl_round_admit(e->round, peer, peer_len, own_key, enrolled, u->round);
    if (why != FL_REJECT_NONE)
        return why;
    const struct fl_round_branch *b = fl_round_find(e->round, peer, peer_len);
    char id[FL_KEY_ID_LEN];
    snprintf(id, sizeof id, "%s", b->id);
    uint64_t declared = b->samples;
    snprintf(out->branch, sizeof out->branch, "%s", b->name);
    snprintf(out->id, sizeof out->id, "%s", b->id);
    struct fl_sealed sealed; /* borrows u's ciphertext */
    if (memcmp(u->base_hash.data, e->base_hash, FL_HASH_BYTES) != 0)
        why = FL_REJECT_WRONG_BASE;
    else if (fl_wire_sealed_get(u, &sealed) != 0 ||
             fl_verify_update(&sealed, peer, e->federation, e->run_id) != 0)
        why = FL_REJECT_SIGNATURE;
    /* A segment that does not open was changed by someone without the update key (the tags
     * are signed): not the branch's answer, which may still arrive intact. */
    else if (fl_open_update(e->id, &sealed, peer, e->federation, e->run_id, e->pool,
                            &self->plain) != 0)
        why = FL_REJECT_DECRYPT;
    if (why != FL_REJECT_NONE) {
        fl_round_reject(e->round, peer, peer_len, u->round, why, NULL);
        return why;
    }
    /* Signed by the branch and intact: from here on the branch has answered, well or badly. */
    fl_round_answered(e->round, peer);
    Fedtl__UpdateBody *body = NULL;
    struct fl_adapter_file af = {0};
    char detail[200] = "";
    why = s_fold_in(self, id, declared, &body, &af, out, detail, sizeof detail);
    if (why == FL_REJECT_NONE)
        why = fl_round_accept(e->round, peer, peer_len, u->round);
    else
        fl_round_reject(e->round, peer, peer_len, u->round, why, detail);
    if (why == FL_REJECT_NONE) {
        out->samples = body->samples;
        out->train_loss = body->train_loss;
        out->eval_loss = body->eval_loss;
        out->eval_accuracy = body->eval_accuracy;
        out->eval_samples = body->eval_samples;
        out->personal = e->personal_head;
        out->personal_accuracy = e->personal_head ? body->personal_accuracy : 0;
        out->personal_loss = e->personal_head ? body->personal_loss : 0;
    }
    s_wipe(self, &body, &af);
    return why;
}

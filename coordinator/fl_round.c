/* fl_round: the round rules, driven by events, acting through callbacks. */
#include "fl_round.h"
#include "fl_error.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LOST_BEATS       5 /* forgotten after this many heartbeats of silence */
#define S_SELECTABLE_BEATS 3 /* selected only if heard from within this many */

struct fl_round {
    struct fl_round_rules rules;      /* as given */
    struct fl_round_ops ops;          /* callbacks */
    void *arg;                        /* their argument */
    size_t enrolled;                  /* keys on the allow-list */
    struct fl_round_branch *branches; /* the registry */
    size_t nbranches, cap;            /* its size and capacity */
    enum fl_round_phase phase;        /* what the federation is doing */
    uint32_t completed;               /* rounds completed */
    int retries;                      /* attempts of the next round that fell short */
    struct fl_round_info info;        /* the open (or last opened) round */
    int answered;                     /* selected branches that answered it */
    int64_t deadline;                 /* when it ends at the latest (ms) */
    bool ready;                       /* min_start branches are ready... */
    int64_t ready_since;              /* ...since then (ms) */
};

fl_round_t *fl_round_new(const struct fl_round_rules *rules, uint32_t completed, size_t enrolled,
                         const struct fl_round_ops *ops, void *arg)
{
    fl_round_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->rules = *rules;
    if (ops)
        self->ops = *ops;
    self->arg = arg;
    self->enrolled = enrolled;
    self->completed = completed;
    self->phase = FL_ROUND_WAITING;
    return self;
}

void fl_round_destroy(fl_round_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->branches);
    free(*self_p);
    *self_p = NULL;
}

void fl_round_set_enrolled(fl_round_t *self, size_t enrolled)
{
    self->enrolled = enrolled;
}

/* ---- the registry ---- */

static struct fl_round_branch *s_find(const fl_round_t *self, const uint8_t *key, size_t len)
{
    if (!key || len != FL_SIGN_PK_BYTES)
        return NULL;
    for (size_t i = 0; i < self->nbranches; i++)
        if (memcmp(self->branches[i].key, key, FL_SIGN_PK_BYTES) == 0)
            return &self->branches[i];
    return NULL;
}

static struct fl_round_branch *s_add(fl_round_t *self, const uint8_t *key, const char *name)
{
    if (self->nbranches == self->cap) {
        size_t ncap = self->cap ? 2 * self->cap : 16;
        struct fl_round_branch *nb = realloc(self->branches, ncap * sizeof *nb);
        if (!nb)
            return NULL;
        self->branches = nb;
        self->cap = ncap;
    }
    struct fl_round_branch *b = &self->branches[self->nbranches++];
    memset(b, 0, sizeof *b);
    memcpy(b->key, key, FL_SIGN_PK_BYTES);
    snprintf(b->name, sizeof b->name, "%s", name);
    fl_key_id(key, b->id);
    return b;
}

static void s_remove(fl_round_t *self, struct fl_round_branch *b)
{
    size_t i = (size_t)(b - self->branches);
    self->branches[i] = self->branches[--self->nbranches];
}

/* Holds a task of the open round and has not answered it. */
static bool s_busy(const fl_round_t *self, const struct fl_round_branch *b)
{
    uint32_t r = self->completed + 1;
    return self->phase == FL_ROUND_RUNNING && b->selected_round == r && b->answered_round != r;
}

/* Holds the base and was heard from lately: a branch that died after its last update is not
 * selected again only to hold the next round until its deadline. */
static bool s_selectable(const fl_round_t *self, const struct fl_round_branch *b, int64_t now)
{
    return b->has_base &&
           now - b->last_seen <= S_SELECTABLE_BEATS * (int64_t)self->rules.heartbeat_ms;
}

static void s_send_task(fl_round_t *self, const struct fl_round_branch *b, int64_t now)
{
    int64_t left = self->deadline - now;
    if (self->ops.task)
        self->ops.task(self->arg, b, self->completed + 1, left > 0 ? left : 0);
}

static void s_send_final(fl_round_t *self, struct fl_round_branch *b)
{
    if (self->ops.final)
        self->ops.final(self->arg, b);
    b->final_sent = true;
}

int fl_round_hello(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES], const char *name,
                   uint64_t samples, bool has_base, int64_t now)
{
    struct fl_round_branch *b = s_find(self, key, FL_SIGN_PK_BYTES);
    bool fresh = !b;
    if (!b && !(b = s_add(self, key, name)))
        return fl_fail(FL_ENOMEM, "out of memory");
    bool had_base = b->has_base;
    b->samples = samples;
    b->last_seen = now;
    b->has_base = has_base;
    if ((fresh || had_base != has_base) && self->ops.registered)
        self->ops.registered(self->arg, b, self->nbranches);
    if (self->ops.welcome)
        self->ops.welcome(self->arg, b);
    if (!b->has_base)
        return 0;
    if (s_busy(self, b))
        s_send_task(self, b, now); /* it registered again mid-round: it lost the task */
    if (self->phase == FL_ROUND_DONE)
        s_send_final(self, b);
    return 0;
}

bool fl_round_heard(fl_round_t *self, const uint8_t *key, size_t key_len, int64_t now)
{
    struct fl_round_branch *b = s_find(self, key, key_len);
    if (b)
        b->last_seen = now;
    return b != NULL;
}

bool fl_round_bye(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES])
{
    struct fl_round_branch *b = s_find(self, key, FL_SIGN_PK_BYTES);
    if (!b || s_busy(self, b))
        return false;
    s_remove(self, b);
    return true;
}

void fl_round_revoke(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES])
{
    struct fl_round_branch *b = s_find(self, key, FL_SIGN_PK_BYTES);
    if (!b)
        return;
    if (s_busy(self, b))
        self->info.selected--; /* it will not answer */
    s_remove(self, b);
}

/* ---- updates ---- */

static const char *const s_reasons[] = {
    [FL_REJECT_NONE] = "accepted",
    [FL_REJECT_STALE] = "stale round: that round is over",
    [FL_REJECT_UNREGISTERED] = "not registered (dropped after falling silent): say hello again",
    [FL_REJECT_UNKNOWN_KEY] = "unknown, revoked or mismatched branch key",
    [FL_REJECT_FUTURE] = "future round",
    [FL_REJECT_NOT_SELECTED] = "branch was not selected for this round",
    [FL_REJECT_DUPLICATE] = "duplicate update in this round",
    [FL_REJECT_WRONG_BASE] = "wrong base hash",
    [FL_REJECT_SIGNATURE] = "bad signature",
    [FL_REJECT_DECRYPT] = "cannot decrypt",
    [FL_REJECT_MALFORMED] = "malformed update body",
    [FL_REJECT_METRICS] = "implausible metrics",
    [FL_REJECT_BAD_ADAPTER] = "bad adapter",
    [FL_REJECT_MISMATCH] = "adapter does not fit the global adapter",
    [FL_REJECT_TOO_FAR] = "update too far from the global adapter",
    [FL_REJECT_AGGREGATION] = "aggregation refused it",
    [FL_REJECT_TOO_MANY] = "more updates than branches selected",
};

void fl_round_reject_text(enum fl_reject why, const char *detail, char *out, size_t len)
{
    const char *base = (size_t)why < sizeof s_reasons / sizeof s_reasons[0] && s_reasons[why]
                           ? s_reasons[why]
                           : "rejected";
    if (!detail || !detail[0])
        snprintf(out, len, "%s", base);
    else if (why == FL_REJECT_MISMATCH) /* the check's own words say what differs */
        snprintf(out, len, "%s", detail);
    else
        snprintf(out, len, "%s: %s", base, detail);
}

void fl_round_reject(fl_round_t *self, const uint8_t *peer, size_t peer_len, uint32_t round,
                     enum fl_reject why, const char *detail)
{
    char id[FL_KEY_ID_LEN] = "unknown", text[200];
    if (peer && peer_len == FL_SIGN_PK_BYTES)
        fl_key_id(peer, id); /* who sent it, not whom it names */
    fl_round_reject_text(why, detail, text, sizeof text);
    struct fl_round_rejection r = {.peer = peer,
                                   .peer_len = peer_len,
                                   .id = id,
                                   .round = round,
                                   .current = self->completed + 1,
                                   .why = why,
                                   .text = text};
    if (self->ops.rejected)
        self->ops.rejected(self->arg, &r);
}

/* The rules an update meets before anything is verified, in order. */
static enum fl_reject s_admission(const fl_round_t *self, const struct fl_round_branch *b,
                                  bool own_key, bool enrolled, uint32_t round)
{
    uint32_t r = self->completed + 1;
    if (!b && own_key && enrolled && round < r)
        return FL_REJECT_STALE; /* a straggler so long silent it was dropped: its round is over */
    if (!b && own_key && enrolled)
        return FL_REJECT_UNREGISTERED;
    if (!b || !own_key)
        return FL_REJECT_UNKNOWN_KEY;
    if (self->phase != FL_ROUND_RUNNING || round < r)
        return FL_REJECT_STALE;
    if (round > r)
        return FL_REJECT_FUTURE;
    if (b->selected_round != r)
        return FL_REJECT_NOT_SELECTED;
    if (b->answered_round == r)
        return FL_REJECT_DUPLICATE;
    return FL_REJECT_NONE;
}

enum fl_reject fl_round_admit(fl_round_t *self, const uint8_t *peer, size_t peer_len, bool own_key,
                              bool enrolled, uint32_t round)
{
    const struct fl_round_branch *b = s_find(self, peer, peer_len);
    enum fl_reject why = s_admission(self, b, own_key, enrolled, round);
    if (why != FL_REJECT_NONE)
        fl_round_reject(self, peer, peer_len, round, why, NULL);
    return why;
}

void fl_round_answered(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES])
{
    struct fl_round_branch *b = s_find(self, key, FL_SIGN_PK_BYTES);
    if (!b || !s_busy(self, b))
        return;
    b->answered_round = self->completed + 1;
    self->answered++;
}

enum fl_reject fl_round_accept(fl_round_t *self, const uint8_t *peer, size_t peer_len,
                               uint32_t round)
{
    if (self->info.accepted >= self->info.selected) {
        fl_round_reject(self, peer, peer_len, round, FL_REJECT_TOO_MANY, NULL);
        return FL_REJECT_TOO_MANY;
    }
    self->info.accepted++;
    return FL_REJECT_NONE;
}

/* ---- the phases ---- */

static int s_cmp_key(const void *a, const void *b)
{
    return memcmp((*(struct fl_round_branch *const *)a)->key,
                  (*(struct fl_round_branch *const *)b)->key, FL_SIGN_PK_BYTES);
}

/* How many to select from n selectable branches. */
static int s_quota(const struct fl_round_rules *rules, int n)
{
    int k =
        rules->clients_per_round > 0 ? rules->clients_per_round : (int)ceil(rules->fraction * n);
    if (k < rules->min_clients)
        k = rules->min_clients;
    return k > n ? n : k;
}

/* Choose k of the n selectable branches into pool[0..k). Deterministic in (seed, round, retry,
 * the selectable keys): a restarted coordinator chooses alike. */
static void s_draw(const fl_round_t *self, struct fl_round_branch **pool, int n, int k)
{
    uint32_t r = self->completed + 1;
    qsort(pool, (size_t)n, sizeof *pool, s_cmp_key);
    struct fl_rng rng;
    fl_rng_seed(&rng,
                self->rules.seed ^ (0x9e3779b97f4a7c15ULL * (r + 1000u * (uint32_t)self->retries)));
    for (int i = 0; i < k; i++) {
        int j = i + (int)fl_rng_below(&rng, (uint64_t)(n - i));
        struct fl_round_branch *t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
    }
}

static void s_start(fl_round_t *self, int eligible, int64_t now)
{
    uint32_t r = self->completed + 1;
    struct fl_round_branch **pool = malloc(sizeof *pool * (size_t)(eligible > 0 ? eligible : 1));
    if (!pool)
        return; /* tried again on the next tick */
    int n = 0;
    for (size_t i = 0; i < self->nbranches && n < eligible; i++)
        if (s_selectable(self, &self->branches[i], now))
            pool[n++] = &self->branches[i];
    int k = s_quota(&self->rules, n);
    s_draw(self, pool, n, k);
    self->phase = FL_ROUND_RUNNING;
    self->info = (struct fl_round_info){
        .round = r, .retry = self->retries, .selected = k, .eligible = n, .started_ms = now};
    self->answered = 0;
    self->deadline = now + (int64_t)(self->rules.deadline_s * 1000);
    /* A retried round keeps its number: whoever the failed attempt selected is not selected
     * now unless chosen again (its late update is then stale, not counted). */
    for (size_t i = 0; i < self->nbranches; i++)
        if (self->branches[i].selected_round == r)
            self->branches[i].selected_round = 0;
    if (self->ops.begin && self->ops.begin(self->arg, &self->info) != 0) {
        self->phase = FL_ROUND_WAITING; /* tried again on the next tick */
        free(pool);
        return;
    }
    for (int i = 0; i < k; i++) {
        pool[i]->selected_round = r;
        pool[i]->answered_round = 0; /* a retried round starts afresh */
        s_send_task(self, pool[i], now);
    }
    free(pool);
}

static int s_end(fl_round_t *self)
{
    uint32_t r = self->completed + 1;
    self->phase = FL_ROUND_WAITING;
    if (self->info.accepted < self->rules.min_clients) {
        if (self->ops.fell_short)
            self->ops.fell_short(self->arg, &self->info);
        if (++self->retries > self->rules.round_retries)
            return fl_fail(FL_ERANGE, "round %u: fewer than %d updates after %d retries", r,
                           self->rules.min_clients, self->rules.round_retries);
        return 0;
    }
    int rc = self->ops.commit ? self->ops.commit(self->arg, &self->info) : 0;
    if (rc)
        return rc; /* nothing of round r was committed */
    self->completed = r;
    self->retries = 0;
    return 0;
}

static void s_finish(fl_round_t *self, int ready)
{
    self->phase = FL_ROUND_DONE;
    if (self->ops.done)
        self->ops.done(self->arg, self->completed, ready);
    for (size_t i = 0; i < self->nbranches; i++)
        if (self->branches[i].has_base)
            s_send_final(self, &self->branches[i]);
}

static int s_waiting(fl_round_t *self, int ready, int64_t now)
{
    if (self->completed >= (uint32_t)self->rules.rounds) {
        s_finish(self, ready);
        return 0;
    }
    if (ready < self->rules.min_start) {
        self->ready = false;
        return 0;
    }
    /* With a start grace, wait a little for the rest of the enrolled branches. */
    if (!self->ready) {
        self->ready = true;
        self->ready_since = now;
    }
    bool everyone = (size_t)ready >= self->enrolled;
    if (!everyone && now - self->ready_since < (int64_t)(self->rules.start_grace_s * 1000))
        return 0;
    self->ready = false;
    s_start(self, ready, now);
    return 0;
}

static void s_expire(fl_round_t *self, int64_t now)
{
    int64_t limit = (int64_t)S_LOST_BEATS * self->rules.heartbeat_ms;
    for (size_t i = 0; i < self->nbranches;) {
        struct fl_round_branch *b = &self->branches[i];
        bool busy = s_busy(self, b) && now < self->deadline;
        if (!busy && now - b->last_seen > limit) {
            if (self->ops.lost)
                self->ops.lost(self->arg, b, now - b->last_seen);
            s_remove(self, b);
            continue;
        }
        i++;
    }
}

int fl_round_tick(fl_round_t *self, int64_t now)
{
    s_expire(self, now);
    int ready = 0;
    for (size_t i = 0; i < self->nbranches; i++)
        ready += s_selectable(self, &self->branches[i], now);
    switch (self->phase) {
    case FL_ROUND_WAITING:
        return s_waiting(self, ready, now);
    case FL_ROUND_RUNNING:
        if (self->answered >= self->info.selected || now >= self->deadline)
            return s_end(self);
        return 0;
    case FL_ROUND_DONE:
        return 0;
    }
    return 0;
}

void fl_round_stop(fl_round_t *self)
{
    if (self->phase != FL_ROUND_RUNNING && self->completed < (uint32_t)self->rules.rounds)
        self->rules.rounds = (int)self->completed;
}

/* ---- what callers read ---- */

enum fl_round_phase fl_round_phase(const fl_round_t *self)
{
    return self->phase;
}

const char *fl_round_phase_name(enum fl_round_phase phase)
{
    static const char *const names[] = {"waiting", "round", "done"};
    return (size_t)phase < 3 ? names[phase] : "unknown";
}

uint32_t fl_round_completed(const fl_round_t *self)
{
    return self->completed;
}

const struct fl_round_info *fl_round_info(const fl_round_t *self)
{
    return &self->info;
}

size_t fl_round_nbranches(const fl_round_t *self)
{
    return self->nbranches;
}

const struct fl_round_branch *fl_round_branch_at(const fl_round_t *self, size_t i)
{
    return i < self->nbranches ? &self->branches[i] : NULL;
}

const struct fl_round_branch *fl_round_find(const fl_round_t *self, const uint8_t *key,
                                            size_t key_len)
{
    return s_find(self, key, key_len);
}

bool fl_round_busy(const fl_round_t *self, const struct fl_round_branch *b)
{
    return s_busy(self, b);
}

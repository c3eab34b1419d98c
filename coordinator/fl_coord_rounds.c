/* fl_coord_rounds: what the round core (fl_round) asks the coordinator to do: welcome, send
 * tasks and the final adapter, forget silent branches, record rejections, begin, abandon and
 * commit rounds (the strategy's result into the global adapter, the ledger and the state), and
 * the strategy's own state (its optimiser's moments) kept beside the global adapter. */
#include "fl_coord_impl.h"
#include "fl_secagg.h"

#include <math.h>
#include <unistd.h>

/* ---- the strategy's state ---- */

void fl_coord_strategy_path(const struct fl_coord *c, uint32_t round, char *buf, size_t len)
{
    snprintf(buf, len, "%s/strategy-%u.state", c->cfg.state_dir, round);
}

/* The configuration the state directory was made with must be this one. */
static int s_same_strategy(struct fl_coord *c)
{
    char saved[256];
    if (fl_ledger_load_strategy(c->ledger, saved, sizeof saved) != 0 ||
        strcmp(saved, c->strategy_desc) == 0)
        return 0;
    return fl_fail(FL_EINVAL,
                   "%s/state.json was saved with the strategy \"%s\", the configuration says "
                   "\"%s\": configure the saved one to resume, or move the state directory "
                   "away to start over",
                   c->cfg.state_dir, saved, c->strategy_desc);
}

int fl_coord_strategy_resume(struct fl_coord *c, uint32_t completed)
{
    int rc = s_same_strategy(c);
    if (rc || completed == 0)
        return rc;
    char path[FL_COORD_PATH_MAX + 64];
    fl_coord_strategy_path(c, completed, path, sizeof path);
    /* the moments, or the rounds a decaying server learning rate counts */
    bool keeps_state = c->scfg.opt != FL_SERVER_OPT_NONE || c->scfg.server_lr_decay != 1;
    if (access(path, F_OK) != 0) {
        if (!keeps_state)
            return 0;
        return fl_fail(FL_EINVAL,
                       "%s is missing: the %s strategy's state after round %u, the round "
                       "global.fta holds (move the state directory away to start over)",
                       path, c->scfg.name, completed);
    }
    uint32_t round = 0;
    if ((rc = fl_strategy_load_file(c->strategy, path, &round)) != 0)
        return fl_fail(rc, "%s: %s", path, fl_error_msg());
    if (round != completed)
        return fl_fail(FL_EINVAL, "%s holds the strategy's state after round %u, not %u", path,
                       round, completed);
    return 0;
}

/* ---- differential privacy ---- */

int fl_coord_privacy_open(struct fl_coord *c)
{
    if (c->cfg.dp_noise <= 0 && c->cfg.dp_epsilon <= 0)
        return 0;
    /* The planned rate: the quota of fl_round's selection over every enrolled branch. */
    double enrolled = (double)fl_allowlist_size(c->allow);
    double k =
        c->cfg.clients_per_round > 0 ? c->cfg.clients_per_round : ceil(c->cfg.fraction * enrolled);
    k = k < c->cfg.min_clients ? c->cfg.min_clients : k;
    k = k > enrolled ? enrolled : k;
    double drawn = enrolled > 0 ? k / enrolled : 1;
    /* Under secure aggregation the guarantee is owed to HQ too, which draws the selection and
     * sees who takes part: no amplification by sampling is credited. */
    struct fl_privacy_settings ps = {.noise = c->cfg.dp_noise,
                                     .clip = c->cfg.dp_clip,
                                     .epsilon = c->cfg.dp_epsilon,
                                     .delta = c->cfg.dp_delta,
                                     .rounds = (uint32_t)c->cfg.rounds,
                                     .q = c->cfg.secure_aggregation ? 1 : drawn};
    uint32_t completed = fl_global_adapter(c->global)->meta.round;
    if (!(c->privacy = fl_privacy_new(&ps, c->cfg.state_dir, completed)))
        return FL_EINVAL;
    c->scfg.dp_noise = fl_privacy_noise(c->privacy);
    c->scfg.dp_distributed = c->cfg.secure_aggregation;
    double sigma = 0; /* the branches' shares fit the encoding, even split in two */
    if (c->cfg.secure_aggregation &&
        fl_secagg_dp_check(c->scfg.dp_noise, (float)c->cfg.dp_clip, 2, &sigma) != 0)
        return fl_fail(FL_EINVAL, "--secure-aggregation with DP: %s", fl_error_msg());
    double first = 0;
    c->dp_spent = !fl_privacy_affords(c->privacy, ps.q, &first); /* resumed with it spent */
    if (c->dp_spent && completed == 0)
        return fl_fail(
            FL_EINVAL,
            "--dp-noise %g spends epsilon %.4g (delta %g) in the first round at sampling "
            "rate %.4g, above the budget --dp-epsilon %g: raise the noise or the budget",
            fl_privacy_noise(c->privacy), first, c->cfg.dp_delta, ps.q, c->cfg.dp_epsilon);
    if (c->cfg.secure_aggregation && drawn < 1)
        fl_log(FL_LOG_INFO, "privacy_sampling",
               "planned_sampling_rate=1 selection_rate=%.6g reason=\"under secure aggregation "
               "the accountant credits no amplification by sampling: the coordinator draws the "
               "selection and sees who takes part (docs/PRIVACY.md)\"",
               drawn);
    else if (ps.q < 1)
        fl_log(FL_LOG_WARN, "privacy_sampling",
               "planned_sampling_rate=%.6g reason=\"the accountant credits amplification by "
               "Poisson sampling hidden from observers; fedtl selects a fixed number of "
               "branches drawn from the federation's seed (docs/PRIVACY.md)\"",
               ps.q);
    fl_log(FL_LOG_INFO, "privacy",
           "mechanism=dp-fedavg noise=%s noise_multiplier=%.6g clip=%g budget_epsilon=%g "
           "delta=%g planned_rounds=%d planned_sampling_rate=%.6g spent_epsilon=%.6f chosen=%d "
           "spent=%d",
           c->cfg.secure_aggregation ? "distributed" : "central", fl_privacy_noise(c->privacy),
           c->cfg.dp_clip, c->cfg.dp_epsilon, c->cfg.dp_delta, c->cfg.rounds, ps.q,
           fl_privacy_epsilon(c->privacy), c->cfg.dp_noise <= 0, c->dp_spent);
    return 0;
}

/* Whether the budget pays for the round about to start (the rate it samples at is known
 * now); when it does not, the federation stops with the rounds done. */
static bool s_privacy_affords(struct fl_coord *c, const struct fl_round_info *info)
{
    if (!c->privacy)
        return true;
    double after = 0;
    c->dp_q = info->eligible > 0 && !c->cfg.secure_aggregation
                  ? (double)info->selected / info->eligible
                  : 1; /* fl_coord_privacy_open: none credited against HQ */
    if (fl_privacy_affords(c->privacy, c->dp_q, &after))
        return true;
    c->dp_spent = true;
    fl_log(FL_LOG_WARN, "privacy_budget_spent",
           "round=%u epsilon=%.6f delta=%g budget=%g epsilon_after_round=%.6f "
           "sampling_rate=%.6g: the federation stops after round %u",
           info->round, fl_privacy_epsilon(c->privacy), c->cfg.dp_delta, c->cfg.dp_epsilon, after,
           c->dp_q, info->round - 1);
    return false;
}

int fl_coord_privacy_release(struct fl_coord *c, uint32_t round)
{
    if (!c->privacy || c->dp_released)
        return 0;
    c->dp_released = true;
    int rc = fl_privacy_release(c->privacy, c->dp_q, round - 1);
    fl_metrics_privacy(c->metrics, fl_privacy_epsilon(c->privacy), fl_privacy_delta(c->privacy));
    char reason[512];
    if (rc)
        fl_log(FL_LOG_ERROR, "privacy_save_failed", "round=%u epsilon=%.6f reason=%s", round,
               fl_privacy_epsilon(c->privacy), fl_log_str(fl_error_msg(), reason, sizeof reason));
    else
        fl_log(FL_LOG_INFO, "privacy_release", "round=%u epsilon=%.6f delta=%g sampling_rate=%.6g",
               round, fl_privacy_epsilon(c->privacy), fl_privacy_delta(c->privacy), c->dp_q);
    return rc;
}

/* Save the strategy's state after `round` (before global.fta commits the round). */
static int s_save_strategy(struct fl_coord *c, uint32_t round)
{
    char path[FL_COORD_PATH_MAX + 64];
    fl_coord_strategy_path(c, round, path, sizeof path);
    int rc = fl_strategy_save_file(c->strategy, path, round);
    return rc || !c->privacy ? rc : fl_privacy_save(c->privacy, round);
}

/* Once round `round` is committed, the state before the previous one is not needed. */
static void s_prune_strategy(struct fl_coord *c, uint32_t round)
{
    if (c->privacy)
        fl_privacy_prune(c->privacy, round);
    if (round < 3)
        return;
    char path[FL_COORD_PATH_MAX + 64];
    fl_coord_strategy_path(c, round - 2, path, sizeof path);
    unlink(path);
}

/* A log line and a ledger entry per update the strategy did not keep as sent. */
static void s_record_verdicts(struct fl_coord *c, uint32_t round)
{
    size_t n = 0;
    const struct fl_verdict *v = fl_strategy_verdicts(c->strategy, &n);
    for (size_t i = 0; v && i < n; i++) {
        if (v[i].kind == FL_VERDICT_KEPT)
            continue;
        const char *kind = v[i].kind == FL_VERDICT_CLIPPED ? "clipped" : "dropped";
        char name[2 * FL_NODE_NAME_MAX], why[256], id[2 * sizeof v[i].id];
        fl_log_str(v[i].id, id, sizeof id);
        fl_log_str(fl_ledger_branch_of(c->ledger, v[i].id), name, sizeof name);
        fl_log(FL_LOG_INFO, v[i].kind == FL_VERDICT_CLIPPED ? "update_clipped" : "update_dropped",
               "round=%u peer=%s branch=%s norm=%.6g scale=%.6g score=%.6g why=%s", round, id, name,
               v[i].norm, v[i].scale, v[i].score, fl_log_str(v[i].why, why, sizeof why));
        struct fl_ledger_verdict lv = {.kind = kind,
                                       .norm = v[i].norm,
                                       .scale = v[i].scale,
                                       .score = v[i].score,
                                       .why = v[i].why};
        snprintf(lv.id, sizeof lv.id, "%.*s", (int)sizeof lv.id - 1, v[i].id);
        fl_ledger_verdict(c->ledger, &lv);
    }
}

/* ---- the round core's actions ---- */

static void s_on_registered(void *arg, const struct fl_round_branch *b, size_t nbranches)
{
    char name[2 * FL_NODE_NAME_MAX];
    fl_log(FL_LOG_INFO, "branch_registered",
           "peer=%s branch=%s samples=%llu has_base=%d branches=%zu", b->id,
           fl_log_str(b->name, name, sizeof name), (unsigned long long)b->samples, b->has_base,
           nbranches);
}

static void s_on_welcome(void *arg, const struct fl_round_branch *b)
{
    struct fl_coord *c = arg;
    fl_outbox_welcome(c->outbox, b->key, fl_round_completed(c->round));
}

static void s_on_task(void *arg, const struct fl_round_branch *b, uint32_t round,
                      int64_t deadline_ms)
{
    struct fl_coord *c = arg;
    uint32_t selected = (uint32_t)fl_round_info(c->round)->selected;
    fl_outbox_task(
        c->outbox, b->key, round, deadline_ms,
        fl_secagg_dp_shares(selected, (uint32_t)c->cfg.min_clients, c->cfg.secagg_dropout));
}

static void s_on_final(void *arg, const struct fl_round_branch *b)
{
    struct fl_coord *c = arg;
    fl_outbox_final(c->outbox, b->key, fl_round_completed(c->round));
}

static void s_on_lost(void *arg, const struct fl_round_branch *b, int64_t silent_ms)
{
    struct fl_coord *c = arg;
    char name[2 * FL_NODE_NAME_MAX];
    fl_log(FL_LOG_INFO, "branch_lost", "peer=%s branch=%s silent_ms=%lld", b->id,
           fl_log_str(b->name, name, sizeof name), (long long)silent_ms);
    fl_basedist_forget(c->basedist, b->key);
    fl_session_forget(c->sessions, b->key);
}

static void s_on_rejected(void *arg, const struct fl_round_rejection *r)
{
    struct fl_coord *c = arg;
    char reason[512];
    fl_log(FL_LOG_WARN, "update_rejected", "peer=%s round=%u current=%u reason=%s", r->id, r->round,
           r->current, fl_log_str(r->text, reason, sizeof reason));
    fl_ledger_reject(c->ledger, r->id, r->text);
    fl_metrics_rejected(c->metrics, r);
    fl_outbox_receipt(c->outbox, r->peer, r->round, false, r->text);
}

static int s_on_begin(void *arg, const struct fl_round_info *info)
{
    struct fl_coord *c = arg;
    struct fl_adapter_file *g = fl_global_adapter(c->global);
    if (!s_privacy_affords(c, info))
        return FL_ERANGE;
    c->dp_released = false;
    fl_metrics_begin(c->metrics, c->ledger); /* before the ledger forgets the traffic */
    fl_ledger_begin(c->ledger);
    int rc = fl_strategy_begin(c->strategy, g->tensors, g->ntensors);
    if (rc == 0 && c->privacy) /* DP-FedAvg's fixed denominator */
        rc = fl_strategy_set_expected(c->strategy, (uint32_t)info->selected);
    if (rc) {
        char reason[512];
        fl_log(FL_LOG_ERROR, "round_start_failed", "round=%u reason=%s", info->round,
               fl_log_str(fl_error_msg(), reason, sizeof reason));
        return rc;
    }
    fl_log(FL_LOG_INFO, "round_start", "round=%u selected=%d eligible=%d deadline_s=%g retry=%d",
           info->round, info->selected, info->eligible, c->cfg.deadline_s, info->retry);
    return 0;
}

/* The round attempt's ledger line. */
static void s_ledger_line(struct fl_coord *c, const struct fl_round_info *info, bool aggregated,
                          bool has_srv, double srv_acc, double srv_loss, double eta)
{
    struct fl_ledger_round lr = {.round = info->round,
                                 .aggregated = aggregated,
                                 .retry = info->retry,
                                 .selected = info->selected,
                                 .has_server_eval = has_srv,
                                 .server_accuracy = srv_acc,
                                 .server_loss = srv_loss,
                                 .duration_s = (fl_now_ms() - info->started_ms) / 1000.0,
                                 .strategy = c->scfg.name,
                                 .server_lr = eta,
                                 .secagg = c->secagg ? fl_coord_secagg_record(c->secagg) : NULL};
    if (c->privacy) {
        lr.has_dp = true;
        lr.dp_epsilon = fl_privacy_epsilon(c->privacy);
        lr.dp_delta = fl_privacy_delta(c->privacy);
        lr.dp_noise = fl_privacy_noise(c->privacy);
        lr.dp_q = c->dp_q;
    }
    fl_ledger_write(c->ledger, &lr);
}

static void s_on_fell_short(void *arg, const struct fl_round_info *info)
{
    struct fl_coord *c = arg;
    fl_log(FL_LOG_WARN, "round_short",
           "round=%u accepted=%d min_clients=%d selected=%d retry=%d of=%d", info->round,
           info->accepted, c->cfg.min_clients, info->selected, info->retry, c->cfg.round_retries);
    s_ledger_line(c, info, false, false, 0, 0, 0);
    fl_metrics_round_end(c->metrics, info, false, false, 0, 0);
}

/* Aggregate, evaluate, save the strategy's state for the round, commit the global adapter
 * (global.fta is the commit point: a restart resumes the strategy state of the round it
 * holds, and the previous one is kept for a crash between the two), then state.json and the
 * ledger line: the gap in which a crash leaves a saved round without its line is as short as
 * it can be (and start-up mends it). */
static int s_on_commit(void *arg, const struct fl_round_info *info)
{
    struct fl_coord *c = arg;
    struct fl_adapter_file *g = fl_global_adapter(c->global);
    double eta = fl_strategy_server_lr(c->strategy); /* the step finish takes */
    int rc = fl_strategy_finish(c->strategy, g->tensors, g->ntensors);
    /* the noisy aggregate is out of the strategy: count it, unless its release was counted */
    if (rc == 0 && c->privacy && !c->dp_released)
        rc = fl_privacy_spend(c->privacy, c->dp_q);
    if (rc)
        return rc;
    s_record_verdicts(c, info->round);
    double sacc = 0, sloss = 0;
    bool has_srv = fl_global_evaluate(c->global, &sacc, &sloss);
    if ((rc = s_save_strategy(c, info->round)) != 0 ||
        (rc = fl_global_commit(c->global, info->round)) != 0) {
        char reason[512];
        fl_log(FL_LOG_ERROR, "state_save_failed", "round=%u reason=%s kept=round-%u", info->round,
               fl_log_str(fl_error_msg(), reason, sizeof reason), info->round - 1);
        return rc;
    }
    s_prune_strategy(c, info->round);
    struct fl_ledger_state st = {.round = info->round,
                                 .rounds = c->cfg.rounds,
                                 .strategy = fl_strategy_name(c->strategy),
                                 .strategy_config = c->strategy_desc,
                                 .seed = c->cfg.seed,
                                 .base_hash = c->base.hash,
                                 .run_id = c->run_id};
    fl_ledger_save_state(c->ledger, &st);
    s_ledger_line(c, info, true, has_srv, sacc, sloss, eta);
    fl_metrics_round_end(c->metrics, info, true, has_srv, sacc, sloss);
    if (c->privacy)
        fl_metrics_privacy(c->metrics, fl_privacy_epsilon(c->privacy),
                           fl_privacy_delta(c->privacy));
    uint64_t bytes_in, bytes_out;
    fl_ledger_bytes(c->ledger, &bytes_in, &bytes_out);
    char srv[48] = "";
    if (has_srv)
        snprintf(srv, sizeof srv, " server_accuracy=%.4f", sacc);
    fl_log(FL_LOG_INFO, "round_done",
           "round=%u accepted=%d selected=%d rejected=%d%s bytes_in=%llu bytes_out=%llu "
           "seconds=%.2f strategy=%s server_lr=%g",
           info->round, info->accepted, info->selected, fl_ledger_rejected(c->ledger), srv,
           (unsigned long long)bytes_in, (unsigned long long)bytes_out,
           (fl_now_ms() - info->started_ms) / 1000.0, c->scfg.name, eta);
    return 0;
}

static void s_on_done(void *arg, uint32_t rounds, int ready)
{
    struct fl_coord *c = arg;
    c->done_at = fl_now_ms();
    fl_log(FL_LOG_INFO, "federation_done", "rounds=%u branches=%d", rounds, ready);
}

const struct fl_round_ops fl_coord_round_ops = {
    .registered = s_on_registered,
    .welcome = s_on_welcome,
    .task = s_on_task,
    .final = s_on_final,
    .lost = s_on_lost,
    .rejected = s_on_rejected,
    .begin = s_on_begin,
    .fell_short = s_on_fell_short,
    .commit = s_on_commit,
    .done = s_on_done,
};

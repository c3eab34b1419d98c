/* fl_coord_rounds: what the round core (fl_round) asks the coordinator to do: welcome, send
 * tasks and the final adapter, forget silent branches, record rejections, begin, abandon and
 * commit rounds (the strategy's result into the global adapter, the ledger and the state). */
#include "fl_coord_impl.h"

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
    fl_outbox_task(c->outbox, b->key, round, deadline_ms);
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
    fl_metrics_begin(c->metrics, c->ledger); /* before the ledger forgets the traffic */
    fl_ledger_begin(c->ledger);
    int rc = fl_strategy_begin(c->strategy, g->tensors, g->ntensors);
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
                          bool has_srv, double srv_acc, double srv_loss)
{
    struct fl_ledger_round lr = {.round = info->round,
                                 .aggregated = aggregated,
                                 .retry = info->retry,
                                 .selected = info->selected,
                                 .has_server_eval = has_srv,
                                 .server_accuracy = srv_acc,
                                 .server_loss = srv_loss,
                                 .duration_s = (fl_now_ms() - info->started_ms) / 1000.0};
    fl_ledger_write(c->ledger, &lr);
}

static void s_on_fell_short(void *arg, const struct fl_round_info *info)
{
    struct fl_coord *c = arg;
    fl_log(FL_LOG_WARN, "round_short",
           "round=%u accepted=%d min_clients=%d selected=%d retry=%d of=%d", info->round,
           info->accepted, c->cfg.min_clients, info->selected, info->retry, c->cfg.round_retries);
    s_ledger_line(c, info, false, false, 0, 0);
    fl_metrics_round_end(c->metrics, info, false, false, 0, 0);
}

/* Aggregate, evaluate, commit the global adapter (global.fta is the commit point), then
 * state.json and the ledger line: the gap in which a crash leaves a saved round without its
 * line is as short as it can be (and start-up mends it). */
static int s_on_commit(void *arg, const struct fl_round_info *info)
{
    struct fl_coord *c = arg;
    struct fl_adapter_file *g = fl_global_adapter(c->global);
    int rc = fl_strategy_finish(c->strategy, g->tensors, g->ntensors);
    if (rc)
        return rc;
    double sacc = 0, sloss = 0;
    bool has_srv = fl_global_evaluate(c->global, &sacc, &sloss);
    if ((rc = fl_global_commit(c->global, info->round)) != 0) {
        char reason[512];
        fl_log(FL_LOG_ERROR, "state_save_failed", "round=%u reason=%s kept=round-%u", info->round,
               fl_log_str(fl_error_msg(), reason, sizeof reason), info->round - 1);
        return rc;
    }
    struct fl_ledger_state st = {.round = info->round,
                                 .rounds = c->cfg.rounds,
                                 .strategy = fl_strategy_name(c->strategy),
                                 .seed = c->cfg.seed,
                                 .base_hash = c->base.hash,
                                 .run_id = c->run_id};
    fl_ledger_save_state(c->ledger, &st);
    s_ledger_line(c, info, true, has_srv, sacc, sloss);
    fl_metrics_round_end(c->metrics, info, true, has_srv, sacc, sloss);
    uint64_t bytes_in, bytes_out;
    fl_ledger_bytes(c->ledger, &bytes_in, &bytes_out);
    char srv[48] = "";
    if (has_srv)
        snprintf(srv, sizeof srv, " server_accuracy=%.4f", sacc);
    fl_log(FL_LOG_INFO, "round_done",
           "round=%u accepted=%d selected=%d rejected=%d%s bytes_in=%llu bytes_out=%llu "
           "seconds=%.2f",
           info->round, info->accepted, info->selected, fl_ledger_rejected(c->ledger), srv,
           (unsigned long long)bytes_in, (unsigned long long)bytes_out,
           (fl_now_ms() - info->started_ms) / 1000.0);
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

/* fl_coord_http: the coordinator's pages, rendered on the loop thread from its live state. */
#include "fl_coord_impl.h"
#include "fl_http.h"
#include "fl_prom.h"
#include "fl_statuspage.h"

static void s_live(struct fl_coord *c, struct fl_metrics_live *live)
{
    uint64_t in, out;
    fl_ledger_bytes(c->ledger, &in, &out);
    *live = (struct fl_metrics_live){
        .federation = c->cfg.federation,
        .phase = fl_round_phase(c->round),
        .completed = fl_round_completed(c->round),
        .rounds = c->cfg.rounds,
        .enrolled = fl_allowlist_size(c->allow),
        .connected = fl_round_nbranches(c->round),
        .bytes_in = in,
        .bytes_out = out,
        .now = fl_now_ms(),
        .open = fl_round_phase(c->round) == FL_ROUND_RUNNING ? fl_round_info(c->round) : NULL};
}

static void s_on_request(void *arg, const char *path, struct fl_http_reply *reply)
{
    struct fl_coord *c = arg;
    struct fl_metrics_live live;
    s_live(c, &live);
    fl_metrics_sync(c->metrics, c->round);
    if (strcmp(path, "/metrics") == 0) {
        reply->body = fl_metrics_prometheus(c->metrics, &live, &reply->len);
        reply->content_type = FL_PROM_CONTENT_TYPE;
    } else if (strcmp(path, "/") == 0) {
        reply->body = fl_statuspage_html(c->metrics, &live, &reply->len);
        reply->content_type = "text/html; charset=utf-8";
    } else if (strcmp(path, "/status.json") == 0) {
        reply->body = fl_statuspage_json(c->metrics, &live, &reply->len);
        reply->content_type = "application/json";
    } else {
        return; /* 404 */
    }
    reply->status = reply->body ? 200 : 500;
}

int fl_coord_http_open(struct fl_coord *c)
{
    if (!c->cfg.http[0])
        return 0;
    if (!(c->metrics = fl_metrics_new()))
        return fl_fail(FL_ENOMEM, "out of memory");
    if (!(c->http = fl_http_new(c->cfg.http, s_on_request, c)))
        return FL_EIO;
    fl_log(FL_LOG_INFO, "http_listening", "address=%s paths=\"/ /metrics /status.json\"",
           fl_http_where(c->http));
    return 0;
}

void fl_coord_http_close(struct fl_coord *c)
{
    fl_http_destroy(&c->http);
    fl_metrics_destroy(&c->metrics);
}

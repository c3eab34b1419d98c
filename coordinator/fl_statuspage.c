/* fl_statuspage: the status page (HTML, inline SVG) and /status.json. */
#include "fl_statuspage.h"
#include "fl_http.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The chart's frame, in SVG user units. */
#define S_W      640
#define S_H      240
#define S_LEFT   48
#define S_RIGHT  16
#define S_TOP    12
#define S_BOTTOM 32

static const char s_style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:60em;color:#222}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .6em;"
    "border-bottom:1px solid #ddd}th{background:#f4f4f4}td.n{text-align:right}"
    ".yes{color:#176f2c}.no{color:#a33}code{font-size:.95em}"
    "svg{background:#fafafa;border:1px solid #ddd}polyline{fill:none;stroke-width:2}"
    "polyline.fed{stroke:#1f5fbf}circle.fed{fill:#1f5fbf}span.fed{color:#1f5fbf}"
    "polyline.srv{stroke:#d9730d}circle.srv{fill:#d9730d}span.srv{color:#d9730d}"
    ".axis{stroke:#888}.grid{stroke:#e4e4e4}text{font-size:11px;fill:#555}"
    "footer{margin-top:2em;color:#777;font-size:.9em}";

/* The chart's scales: rounds 1..maxround across, accuracy ymin..1 up. */
struct s_scale {
    uint32_t maxround; /* the last round shown */
    double ymin;       /* the accuracy at the bottom: the lowest point's tenth, down */
};

static double s_x(uint32_t round, uint32_t maxround)
{
    double span = maxround > 1 ? (double)(maxround - 1) : 1.0;
    double x0 = S_LEFT + 12, x1 = S_W - S_RIGHT - 12;
    return maxround > 1 ? x0 + (x1 - x0) * (double)(round - 1) / span : (x0 + x1) / 2;
}

static double s_y(double acc, double ymin)
{
    acc = acc < ymin ? ymin : acc > 1 ? 1 : acc;
    return S_TOP + (1.0 - acc) / (1.0 - ymin) * (S_H - S_TOP - S_BOTTOM);
}

/* One series (federated or server accuracy of the committed rounds): a line and its points. */
static void s_series(FILE *f, const fl_metrics_t *m, bool server, const struct s_scale *sc)
{
    const char *cls = server ? "srv" : "fed";
    fprintf(f, "<polyline class=\"%s\" points=\"", cls);
    for (size_t i = 0; i < fl_metrics_nrounds(m); i++) {
        const struct fl_metrics_round *r = fl_metrics_round_at(m, i);
        if (r->aggregated && (server ? r->has_server : r->has_fed))
            fprintf(f, "%.1f,%.1f ", s_x(r->round, sc->maxround),
                    s_y(server ? r->server_accuracy : r->fed_accuracy, sc->ymin));
    }
    fputs("\"/>", f);
    for (size_t i = 0; i < fl_metrics_nrounds(m); i++) {
        const struct fl_metrics_round *r = fl_metrics_round_at(m, i);
        if (!r->aggregated || !(server ? r->has_server : r->has_fed))
            continue;
        double acc = server ? r->server_accuracy : r->fed_accuracy;
        fprintf(f,
                "<circle class=\"point %s\" r=\"3.5\" cx=\"%.1f\" cy=\"%.1f\" data-round=\"%u\" "
                "data-accuracy=\"%.4f\"><title>round %u: %s accuracy %.4f</title></circle>",
                cls, s_x(r->round, sc->maxround), s_y(acc, sc->ymin), r->round, acc, r->round,
                server ? "server" : "federated", acc);
    }
}

static void s_chart(FILE *f, const fl_metrics_t *m)
{
    struct s_scale sc = {.maxround = 1, .ymin = 0.9};
    for (size_t i = 0; i < fl_metrics_nrounds(m); i++) {
        const struct fl_metrics_round *r = fl_metrics_round_at(m, i);
        if (r->round > sc.maxround)
            sc.maxround = r->round;
        if (r->aggregated && r->has_fed && r->fed_accuracy < sc.ymin)
            sc.ymin = r->fed_accuracy;
        if (r->aggregated && r->has_server && r->server_accuracy < sc.ymin)
            sc.ymin = r->server_accuracy;
    }
    sc.ymin = sc.ymin > 0 ? floor(sc.ymin * 10) / 10 : 0;
    uint32_t maxround = sc.maxround;
    fprintf(f,
            "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"accuracy per round\">",
            S_W, S_H, S_W, S_H);
    for (int t = 0; t <= 4; t++) {
        double v = sc.ymin + (1.0 - sc.ymin) * t / 4.0, y = s_y(v, sc.ymin);
        fprintf(f,
                "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>",
                S_LEFT, S_W - S_RIGHT, y, y, S_LEFT - 6, y + 4, v);
    }
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", S_LEFT,
            S_W - S_RIGHT, S_H - S_BOTTOM, S_H - S_BOTTOM);
    uint32_t step = maxround <= 10 ? 1 : (maxround + 9) / 10;
    for (uint32_t r = 1; r <= maxround; r += step)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%u</text>", s_x(r, maxround),
                S_H - S_BOTTOM + 16, r);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">round</text>", (S_LEFT + S_W) / 2,
            S_H - 2);
    s_series(f, m, false, &sc);
    s_series(f, m, true, &sc);
    fputs("</svg><p><span class=\"fed\">&#9679;</span> federated (branches' held-out records) "
          "&nbsp; <span class=\"srv\">&#9679;</span> server evaluation</p>",
          f);
}

static void s_branches(FILE *f, const fl_metrics_t *m, int64_t now)
{
    fputs("<h2>Branches</h2><table id=\"branches\"><tr><th>Name</th><th>Key fingerprint</th>"
          "<th>Connected</th><th>Last seen</th><th>Rounds joined</th><th>Rejections</th></tr>",
          f);
    for (size_t i = 0; i < fl_metrics_nbranches(m); i++) {
        const struct fl_metrics_branch *b = fl_metrics_branch_at(m, i);
        fputs("<tr class=\"branch\"><td class=\"name\">", f);
        fl_http_html(f, b->name);
        fprintf(f, "</td><td><code class=\"fingerprint\">%s</code></td>", b->id);
        fprintf(f, "<td class=\"%s\">%s</td>", b->connected ? "yes" : "no",
                b->connected ? "yes" : "no");
        if (b->last_seen)
            fprintf(f, "<td class=\"n\">%.1f s ago</td>", (double)(now - b->last_seen) / 1000.0);
        else
            fputs("<td class=\"n\">&ndash;</td>", f);
        fprintf(f, "<td class=\"n joined\">%u</td><td class=\"n rejected\">%u</td></tr>",
                b->rounds_joined, b->rejected);
    }
    fputs("</table>", f);
}

static void s_metric_cell(FILE *f, bool has, double v)
{
    if (has)
        fprintf(f, "<td class=\"n\">%.4f</td>", v);
    else
        fputs("<td class=\"n\">&ndash;</td>", f);
}

static void s_rounds(FILE *f, const fl_metrics_t *m, const struct fl_metrics_live *live)
{
    fputs("<h2>Rounds</h2><table id=\"rounds\"><tr><th>Round</th><th>Outcome</th>"
          "<th>Selected</th><th>Accepted</th><th>Rejected</th><th>Federated accuracy</th>"
          "<th>Server accuracy</th><th>Seconds</th></tr>",
          f);
    const struct fl_round_info *o = live->open;
    if (o) /* the open round first, with its counts so far */
        fprintf(f,
                "<tr class=\"round open\" data-round=\"%u\"><td class=\"n\">%u</td><td>open%s</td>"
                "<td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td>"
                "<td class=\"n\">&ndash;</td><td class=\"n\">&ndash;</td>"
                "<td class=\"n\">%.1f so far</td></tr>",
                o->round, o->round, o->retry ? " (retry)" : "", o->selected, o->accepted,
                fl_metrics_open_rejected(m), (double)(live->now - o->started_ms) / 1000.0);
    for (size_t k = fl_metrics_nrounds(m); k-- > 0;) { /* newest first */
        const struct fl_metrics_round *r = fl_metrics_round_at(m, k);
        fprintf(f, "<tr class=\"round\" data-round=\"%u\"><td class=\"n\">%u</td><td>%s", r->round,
                r->round, r->aggregated ? "aggregated" : "fell short");
        if (r->retry)
            fprintf(f, " (retry %d)", r->retry);
        fprintf(f, "</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td>",
                r->selected, r->accepted, r->rejected);
        s_metric_cell(f, r->has_fed, r->fed_accuracy);
        s_metric_cell(f, r->has_server, r->server_accuracy);
        fprintf(f, "<td class=\"n\">%.2f</td></tr>", r->duration_s);
    }
    fputs("</table>", f);
}

char *fl_statuspage_html(const fl_metrics_t *m, const struct fl_metrics_live *live, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    fprintf(f,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"refresh\" content=\"%d\"><title>fedtl: ",
            FL_STATUSPAGE_REFRESH_S);
    fl_http_html(f, live->federation);
    fprintf(f,
            "</title><style>%s</style></head><body><h1>fedtl coordinator: <span "
            "id=\"federation\">",
            s_style);
    fl_http_html(f, live->federation);
    uint32_t current = live->phase == FL_ROUND_RUNNING ? live->completed + 1 : live->completed;
    fprintf(f,
            "</span></h1><p id=\"summary\">Phase <b id=\"phase\">%s</b>, round <b "
            "id=\"round\">%u</b> of <b id=\"rounds\">%d</b>; <b id=\"completed\">%u</b> "
            "completed. Branches: <b id=\"connected\">%zu</b> connected of <b "
            "id=\"enrolled\">%zu</b> enrolled.</p>",
            fl_round_phase_name(live->phase), current, live->rounds, live->completed,
            live->connected, live->enrolled);
    fputs("<h2>Accuracy per round</h2>", f);
    s_chart(f, m);
    s_branches(f, m, live->now);
    s_rounds(f, m, live);
    fprintf(f,
            "<footer>Reloads every %d s. Also: <a href=\"/metrics\">/metrics</a> (Prometheus), "
            "<a href=\"/status.json\">/status.json</a>.</footer></body></html>\n",
            FL_STATUSPAGE_REFRESH_S);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- JSON ---- */

static cJSON *s_json_branches(const fl_metrics_t *m, int64_t now)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < fl_metrics_nbranches(m); i++) {
        const struct fl_metrics_branch *b = fl_metrics_branch_at(m, i);
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(o, "name", b->name);
        cJSON_AddStringToObject(o, "fingerprint", b->id);
        cJSON_AddBoolToObject(o, "connected", b->connected);
        if (b->last_seen)
            cJSON_AddNumberToObject(o, "last_seen_s_ago", (double)(now - b->last_seen) / 1000.0);
        cJSON_AddNumberToObject(o, "rounds_joined", b->rounds_joined);
        cJSON_AddNumberToObject(o, "rejected", b->rejected);
    }
    return arr;
}

static cJSON *s_json_rounds(const fl_metrics_t *m)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < fl_metrics_nrounds(m); i++) {
        const struct fl_metrics_round *r = fl_metrics_round_at(m, i);
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddNumberToObject(o, "round", r->round);
        cJSON_AddBoolToObject(o, "aggregated", r->aggregated);
        cJSON_AddNumberToObject(o, "retry", r->retry);
        cJSON_AddNumberToObject(o, "selected", r->selected);
        cJSON_AddNumberToObject(o, "accepted", r->accepted);
        cJSON_AddNumberToObject(o, "rejected", r->rejected);
        if (r->has_fed) {
            cJSON_AddNumberToObject(o, "fed_accuracy", r->fed_accuracy);
            cJSON_AddNumberToObject(o, "fed_loss", r->fed_loss);
        }
        if (r->has_server) {
            cJSON_AddNumberToObject(o, "server_accuracy", r->server_accuracy);
            cJSON_AddNumberToObject(o, "server_loss", r->server_loss);
        }
        cJSON_AddNumberToObject(o, "duration_s", r->duration_s);
    }
    return arr;
}

char *fl_statuspage_json(const fl_metrics_t *m, const struct fl_metrics_live *live, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "federation", live->federation);
    cJSON_AddStringToObject(o, "phase", fl_round_phase_name(live->phase));
    cJSON_AddNumberToObject(o, "completed", live->completed);
    cJSON_AddNumberToObject(o, "rounds", live->rounds);
    cJSON_AddNumberToObject(o, "connected", (double)live->connected);
    cJSON_AddNumberToObject(o, "enrolled", (double)live->enrolled);
    cJSON *open = live->open ? cJSON_AddObjectToObject(o, "open_round") : NULL;
    if (open) {
        cJSON_AddNumberToObject(open, "round", live->open->round);
        cJSON_AddNumberToObject(open, "retry", live->open->retry);
        cJSON_AddNumberToObject(open, "selected", live->open->selected);
        cJSON_AddNumberToObject(open, "accepted", live->open->accepted);
        cJSON_AddNumberToObject(open, "rejected", fl_metrics_open_rejected(m));
        cJSON_AddNumberToObject(open, "seconds",
                                (double)(live->now - live->open->started_ms) / 1000.0);
    }
    cJSON *b = s_json_branches(m, live->now), *r = s_json_rounds(m);
    char *text = NULL;
    if (b && cJSON_AddItemToObject(o, "branches", b)) {
        b = NULL;
        if (r && cJSON_AddItemToObject(o, "rounds_kept", r)) {
            r = NULL;
            text = cJSON_PrintUnformatted(o);
        }
    }
    cJSON_Delete(b);
    cJSON_Delete(r);
    cJSON_Delete(o);
    if (text)
        *len = strlen(text);
    return text;
}

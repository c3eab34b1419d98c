/* fl_ledger: state.json and rounds.jsonl through cJSON. */
#include "fl_ledger.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_modelfile.h"

#include <dirent.h>
#include <sodium.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MAX_REJECTS 64 /* rejections listed per line (all are counted) */

/* One rejected update. */
struct s_reject {
    char id[FL_KEY_ID_LEN]; /* sender's key id */
    char reason[160];       /* why */
};

/* One verdict of the strategy. */
struct s_verdict {
    char id[FL_KEY_ID_LEN]; /* the update's key id */
    char kind[12];          /* clipped, dropped */
    double norm, scale;     /* its change's norm, the bound's factor */
    double score;           /* Krum score */
    char why[128];          /* the strategy's words */
};

struct fl_ledger {
    char *dir;                                /* the state directory */
    char *federation;                         /* its name */
    char *path;                               /* STATE/rounds.jsonl */
    struct fl_ledger_update *accepts;         /* the open round's accepted updates */
    int naccepts, cap;                        /* their count and room */
    struct s_reject rejects[S_MAX_REJECTS];   /* its rejected updates (the first ones) */
    int nrejects;                             /* their count (may exceed the array) */
    struct s_verdict verdicts[S_MAX_REJECTS]; /* the strategy's verdicts (the first ones) */
    int nverdicts;                            /* their count (may exceed the array) */
    uint64_t bytes_in, bytes_out;             /* its traffic */
    cJSON *last;                              /* the last line written */
};

fl_ledger_t *fl_ledger_new(const char *state_dir, const char *federation)
{
    fl_ledger_t *self = calloc(1, sizeof *self);
    size_t n = strlen(state_dir) + sizeof "/rounds.jsonl";
    if (!self || !(self->dir = strdup(state_dir)) || !(self->federation = strdup(federation)) ||
        !(self->path = malloc(n))) {
        fl_ledger_destroy(&self);
        fl_error_set("out of memory");
        return NULL;
    }
    snprintf(self->path, n, "%s/rounds.jsonl", state_dir);
    return self;
}

void fl_ledger_destroy(fl_ledger_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_ledger_t *self = *self_p;
    cJSON_Delete(self->last);
    free(self->accepts);
    free(self->path);
    free(self->federation);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* ---- JSON values ---- */

/* A number cut to `decimals` places, as the ledger has always written it ("%.5f"); NaN and
 * infinities (a peer's metrics are not checked) become null. */
static void s_add_fixed(cJSON *obj, const char *key, double v, int decimals)
{
    double scale = pow(10, decimals);
    cJSON_AddNumberToObject(obj, key, round(v * scale) / scale);
}

void fl_json_add_u64(cJSON *obj, const char *key, uint64_t v)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRIu64, v);
    cJSON_AddRawToObject(obj, key, digits);
}

/* ---- rounds.jsonl ---- */

/* Append one line with a single write on an O_APPEND descriptor, then fsync: a crash leaves
 * either the whole line or a partial last line that start-up trims, never two lines glued. */
static void s_append(fl_ledger_t *self, const cJSON *line)
{
    char shown[512];
    char *text = cJSON_PrintUnformatted(line);
    size_t len = text ? strlen(text) : 0;
    char *buf = text ? malloc(len + 1) : NULL;
    if (!buf) {
        cJSON_free(text);
        fl_log(FL_LOG_ERROR, "ledger_failed", "path=%s reason=\"out of memory\"",
               fl_log_str(self->path, shown, sizeof shown));
        return;
    }
    memcpy(buf, text, len);
    buf[len] = '\n';
    cJSON_free(text);
    int fd = open(self->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : 0;
    for (size_t off = 0; rc == 0 && off < len + 1;) {
        ssize_t w = write(fd, buf + off, len + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        rc = w < 0 ? -1 : 0;
        off += w > 0 ? (size_t)w : 0;
    }
    if (rc != 0 || fsync(fd) != 0)
        fl_log(FL_LOG_ERROR, "ledger_failed", "path=%s reason=\"%s\"",
               fl_log_str(self->path, shown, sizeof shown), strerror(errno));
    free(buf);
    if (fd >= 0)
        close(fd);
}

/* The highest round the ledger's text records as aggregated (0: none). */
static uint32_t s_last_aggregated(char *text)
{
    uint32_t last = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line); /* a line that does not parse records nothing */
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "round");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "aggregated")) && cJSON_IsNumber(r) &&
            r->valuedouble > last && r->valuedouble <= UINT32_MAX)
            last = (uint32_t)r->valuedouble;
        cJSON_Delete(o);
    }
    return last;
}

void fl_ledger_mend(fl_ledger_t *self, uint32_t completed)
{
    unsigned char *text = NULL;
    size_t len = 0;
    if (fl_fs_read_file(self->path, (size_t)1 << 30, &text, &len) != 0)
        return; /* no ledger yet */
    size_t keep = len;
    while (keep > 0 && text[keep - 1] != '\n')
        keep--;
    if (keep < len) {
        char shown[512];
        fl_log_str(self->path, shown, sizeof shown);
        fl_log(FL_LOG_WARN, "ledger_mended",
               "path=%s dropped_bytes=%zu reason=\"partial last line\"", shown, len - keep);
        if (truncate(self->path, (off_t)keep) != 0)
            fl_log(FL_LOG_ERROR, "ledger_failed", "path=%s reason=\"%s\"", shown, strerror(errno));
        text[keep] = '\0';
    }
    const char *tail = keep > 0 ? (const char *)text + keep - 1 : NULL;
    while (tail && tail > (const char *)text && tail[-1] != '\n')
        tail--; /* the last line: what the status shows until this run writes one */
    cJSON *prev = tail ? cJSON_Parse(tail) : NULL;
    if (cJSON_IsObject(prev) && !self->last)
        self->last = prev;
    else
        cJSON_Delete(prev);
    uint32_t last = s_last_aggregated((char *)text);
    free(text);
    for (uint32_t r = last + 1; r <= completed; r++) {
        cJSON *line = cJSON_CreateObject();
        if (!line)
            return;
        cJSON_AddNumberToObject(line, "round", r);
        cJSON_AddTrueToObject(line, "aggregated");
        cJSON_AddTrueToObject(line, "recovered");
        cJSON_AddStringToObject(line, "note",
                                "the coordinator stopped after saving this round, before its "
                                "ledger line");
        cJSON_AddStringToObject(line, "federation", self->federation);
        s_append(self, line);
        cJSON_Delete(line);
        fl_log(FL_LOG_WARN, "ledger_mended", "round=%u reason=\"saved round had no ledger line\"",
               r);
    }
}

void fl_ledger_sweep(fl_ledger_t *self)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "global.fta.tmp.", 15) != 0 &&
            strncmp(e->d_name, "state.json.tmp.", 15) != 0 &&
            !((strncmp(e->d_name, "strategy-", 9) == 0 || strncmp(e->d_name, "privacy-", 8) == 0) &&
              strstr(e->d_name, ".state.tmp.")))
            continue;
        char path[PATH_MAX + 300], shown[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", self->dir, e->d_name);
        if (unlink(path) == 0)
            fl_log(FL_LOG_INFO, "state_swept", "path=%s reason=\"left by an interrupted write\"",
                   fl_log_str(path, shown, sizeof shown));
    }
    closedir(d);
}

/* ---- the open round's record ---- */

void fl_ledger_begin(fl_ledger_t *self)
{
    self->naccepts = 0;
    self->nrejects = 0;
    self->nverdicts = 0;
    self->bytes_in = self->bytes_out = 0;
}

int fl_ledger_accept(fl_ledger_t *self, const struct fl_ledger_update *u)
{
    if (self->naccepts == self->cap) {
        int ncap = self->cap ? 2 * self->cap : 16;
        struct fl_ledger_update *na = realloc(self->accepts, (size_t)ncap * sizeof *na);
        if (!na)
            return fl_fail(FL_ENOMEM, "out of memory");
        self->accepts = na;
        self->cap = ncap;
    }
    self->accepts[self->naccepts++] = *u;
    return 0;
}

void fl_ledger_verdict(fl_ledger_t *self, const struct fl_ledger_verdict *v)
{
    if (self->nverdicts < S_MAX_REJECTS) {
        struct s_verdict *d = &self->verdicts[self->nverdicts];
        snprintf(d->id, sizeof d->id, "%s", v->id);
        snprintf(d->kind, sizeof d->kind, "%s", v->kind);
        snprintf(d->why, sizeof d->why, "%s", v->why ? v->why : "");
        d->norm = v->norm;
        d->scale = v->scale;
        d->score = v->score;
    }
    self->nverdicts++;
}

const char *fl_ledger_branch_of(const fl_ledger_t *self, const char *id)
{
    for (int i = 0; i < self->naccepts; i++)
        if (strcmp(self->accepts[i].id, id) == 0)
            return self->accepts[i].branch;
    return "?";
}

void fl_ledger_reject(fl_ledger_t *self, const char *id, const char *reason)
{
    if (self->nrejects < S_MAX_REJECTS) {
        struct s_reject *r = &self->rejects[self->nrejects];
        snprintf(r->id, sizeof r->id, "%s", id);
        snprintf(r->reason, sizeof r->reason, "%s", reason);
    }
    self->nrejects++;
}

void fl_ledger_traffic(fl_ledger_t *self, uint64_t bytes_in, uint64_t bytes_out)
{
    self->bytes_in += bytes_in;
    self->bytes_out += bytes_out;
}

int fl_ledger_rejected(const fl_ledger_t *self)
{
    return self->nrejects;
}

void fl_ledger_bytes(const fl_ledger_t *self, uint64_t *bytes_in, uint64_t *bytes_out)
{
    *bytes_in = self->bytes_in;
    *bytes_out = self->bytes_out;
}

/* What the strategy did not keep as sent: one object per verdict (only when there are any). */
static void s_add_verdicts(const fl_ledger_t *self, cJSON *line)
{
    if (self->nverdicts == 0)
        return;
    cJSON *arr = cJSON_AddArrayToObject(line, "verdicts");
    for (int i = 0; arr && i < self->nverdicts && i < S_MAX_REJECTS; i++) {
        const struct s_verdict *v = &self->verdicts[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            break;
        }
        cJSON_AddStringToObject(o, "branch", fl_ledger_branch_of(self, v->id));
        cJSON_AddStringToObject(o, "id", v->id);
        cJSON_AddStringToObject(o, "kind", v->kind);
        s_add_fixed(o, "norm", v->norm, 5);
        s_add_fixed(o, "scale", v->scale, 5);
        s_add_fixed(o, "score", v->score, 5);
        cJSON_AddStringToObject(o, "why", v->why);
    }
    cJSON_AddNumberToObject(line, "verdicts_total", self->nverdicts);
}

/* The participants and rejections of the open round, as arrays. */
static void s_add_lists(const fl_ledger_t *self, cJSON *line)
{
    cJSON *parts = cJSON_AddArrayToObject(line, "participants");
    for (int i = 0; parts && i < self->naccepts; i++) {
        const struct fl_ledger_update *a = &self->accepts[i];
        cJSON *p = cJSON_CreateObject();
        if (!p || !cJSON_AddItemToArray(parts, p)) {
            cJSON_Delete(p);
            break;
        }
        cJSON_AddStringToObject(p, "branch", a->branch);
        fl_json_add_u64(p, "samples", a->samples);
        fl_json_add_u64(p, "weight", a->weight);
        s_add_fixed(p, "distance", a->distance, 5);
        s_add_fixed(p, "train_loss", a->train_loss, 5);
        s_add_fixed(p, "eval_accuracy", a->eval_accuracy, 5);
        if (a->personal) {
            s_add_fixed(p, "personal_accuracy", a->personal_accuracy, 5);
            s_add_fixed(p, "personal_loss", a->personal_loss, 5);
        }
    }
    s_add_verdicts(self, line);
    cJSON *rej = cJSON_AddArrayToObject(line, "rejected");
    for (int i = 0; rej && i < self->nrejects && i < S_MAX_REJECTS; i++) {
        cJSON *r = cJSON_CreateObject();
        if (!r || !cJSON_AddItemToArray(rej, r)) {
            cJSON_Delete(r);
            break;
        }
        cJSON_AddStringToObject(r, "branch", self->rejects[i].id);
        cJSON_AddStringToObject(r, "reason", self->rejects[i].reason);
    }
}

/* The means of the participants' metrics, weighted as the aggregate weighed them (held-out
 * counts bounded by the weight too, so that no claim outweighs the others here either). */
static void s_add_means(const fl_ledger_t *self, cJSON *line)
{
    double n = 0, tl = 0, en = 0, ea = 0, el = 0;
    for (int i = 0; i < self->naccepts; i++) {
        const struct fl_ledger_update *a = &self->accepts[i];
        double ev = (double)(a->eval_samples < a->weight ? a->eval_samples : a->weight);
        n += (double)a->weight;
        tl += (double)a->weight * a->train_loss;
        en += ev;
        ea += ev * a->eval_accuracy;
        el += ev * a->eval_loss;
    }
    s_add_fixed(line, "samples", n, 0);
    s_add_fixed(line, "train_loss", n > 0 ? tl / n : 0, 5);
    s_add_fixed(line, "fed_eval_accuracy", en > 0 ? ea / en : 0, 5);
    s_add_fixed(line, "fed_eval_loss", en > 0 ? el / en : 0, 5);
}

void fl_ledger_write(fl_ledger_t *self, const struct fl_ledger_round *r)
{
    cJSON *line = cJSON_CreateObject();
    if (!line) {
        fl_log(FL_LOG_ERROR, "ledger_failed", "reason=\"out of memory\"");
        return;
    }
    cJSON_AddNumberToObject(line, "round", r->round);
    cJSON_AddBoolToObject(line, "aggregated", r->aggregated);
    cJSON_AddNumberToObject(line, "retry", r->retry);
    cJSON_AddNumberToObject(line, "selected", r->selected);
    s_add_lists(self, line);
    cJSON_AddNumberToObject(line, "rejected_total", self->nrejects);
    s_add_means(self, line);
    if (r->has_server_eval) {
        s_add_fixed(line, "server_eval_accuracy", r->server_accuracy, 5);
        s_add_fixed(line, "server_eval_loss", r->server_loss, 5);
    }
    fl_json_add_u64(line, "bytes_in", self->bytes_in);
    fl_json_add_u64(line, "bytes_out", self->bytes_out);
    s_add_fixed(line, "duration_s", r->duration_s, 3);
    cJSON_AddStringToObject(line, "federation", self->federation);
    if (r->strategy)
        cJSON_AddStringToObject(line, "strategy", r->strategy);
    if (r->server_lr > 0)
        cJSON_AddNumberToObject(line, "server_lr", r->server_lr);
    if (r->has_dp) {
        s_add_fixed(line, "dp_epsilon", r->dp_epsilon, 6);
        cJSON_AddNumberToObject(line, "dp_delta", r->dp_delta);
        cJSON_AddNumberToObject(line, "dp_noise_multiplier", r->dp_noise);
        s_add_fixed(line, "dp_sampling_rate", r->dp_q, 6);
    }
    if (r->secagg)
        cJSON_AddItemToObject(line, "secure_aggregation", cJSON_Duplicate(r->secagg, true));
    s_append(self, line);
    cJSON_Delete(self->last);
    self->last = line;
}

const cJSON *fl_ledger_last(const fl_ledger_t *self)
{
    return self->last;
}

/* ---- state.json ---- */

void fl_ledger_save_state(fl_ledger_t *self, const struct fl_ledger_state *st)
{
    char hex[2 * FL_HASH_BYTES + 1], reason[512];
    fl_hash_hex(st->base_hash, hex);
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o) {
        cJSON_AddNumberToObject(o, "round", st->round);
        cJSON_AddNumberToObject(o, "rounds", st->rounds);
        cJSON_AddStringToObject(o, "federation", self->federation);
        cJSON_AddStringToObject(o, "strategy", st->strategy);
        if (st->strategy_config)
            cJSON_AddStringToObject(o, "strategy_config", st->strategy_config);
        fl_json_add_u64(o, "seed", st->seed);
        cJSON_AddStringToObject(o, "base", hex);
        if (st->run_id) {
            char run[2 * FL_RUN_ID_BYTES + 1];
            sodium_bin2hex(run, sizeof run, st->run_id, FL_RUN_ID_BYTES);
            cJSON_AddStringToObject(o, "run_id", run);
        }
        text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    size_t n = strlen(self->dir) + sizeof "/state.json", len = text ? strlen(text) : 0;
    char *path = malloc(n), *body = text ? malloc(len + 1) : NULL;
    int rc = path && body ? 0 : fl_fail(FL_ENOMEM, "out of memory");
    if (rc == 0) {
        snprintf(path, n, "%s/state.json", self->dir);
        memcpy(body, text, len);
        body[len] = '\n';
        rc = fl_fs_write_file(path, body, len + 1, 0644);
    }
    if (rc != 0)
        fl_log(FL_LOG_WARN, "state_json_failed",
               "round=%u reason=%s note=\"round saved in global.fta\"", st->round,
               fl_log_str(fl_error_msg(), reason, sizeof reason));
    cJSON_free(text);
    free(body);
    free(path);
}

/* state.json, parsed (cJSON_Delete it), or NULL when there is none or it is not JSON. */
static cJSON *s_load_state(fl_ledger_t *self)
{
    size_t n = strlen(self->dir) + sizeof "/state.json", len = 0;
    char *path = malloc(n);
    unsigned char *buf = NULL;
    cJSON *o = NULL;
    if (path) {
        snprintf(path, n, "%s/state.json", self->dir);
        if (fl_fs_read_file(path, 1u << 20, &buf, &len) == 0)
            o = cJSON_ParseWithLength((const char *)buf, len);
    }
    free(buf);
    free(path);
    return o;
}

int fl_ledger_load_run_id(fl_ledger_t *self, uint8_t run_id[FL_RUN_ID_BYTES])
{
    cJSON *o = s_load_state(self);
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "run_id");
    size_t got = 0;
    int rc = cJSON_IsString(run) && strlen(run->valuestring) == 2 * FL_RUN_ID_BYTES &&
                     sodium_hex2bin(run_id, FL_RUN_ID_BYTES, run->valuestring, 2 * FL_RUN_ID_BYTES,
                                    NULL, &got, NULL) == 0 &&
                     got == FL_RUN_ID_BYTES
                 ? 0
                 : FL_ENOTFOUND;
    cJSON_Delete(o);
    return rc;
}

int fl_ledger_load_strategy(fl_ledger_t *self, char *buf, size_t len)
{
    cJSON *o = s_load_state(self);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "strategy_config");
    int rc = cJSON_IsString(sc) ? 0 : FL_ENOTFOUND;
    if (rc == 0)
        snprintf(buf, len, "%s", sc->valuestring);
    cJSON_Delete(o);
    return rc;
}

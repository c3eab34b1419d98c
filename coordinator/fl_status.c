/* fl_status: the status socket and its JSON, through cJSON. */
#include "fl_status.h"
#include "fl_error.h"
#include "fl_ledger.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct fl_status {
    void *sock; /* REP */
};

/* The registered branches, as an array. */
static cJSON *s_branches(const fl_round_t *round, int64_t now)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < fl_round_nbranches(round); i++) {
        const struct fl_round_branch *b = fl_round_branch_at(round, i);
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(o, "name", b->name);
        cJSON_AddStringToObject(o, "id", b->id);
        cJSON_AddBoolToObject(o, "has_base", b->has_base);
        fl_json_add_u64(o, "samples", b->samples);
        cJSON_AddNumberToObject(o, "idle_ms", (double)(now - b->last_seen));
    }
    return arr;
}

char *fl_status_json(const fl_round_t *round, const char *federation, const char *strategy,
                     int rounds, const cJSON *last, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char *text = NULL;
    cJSON_AddStringToObject(o, "federation", federation);
    if (strategy)
        cJSON_AddStringToObject(o, "strategy", strategy);
    cJSON_AddStringToObject(o, "phase", fl_round_phase_name(fl_round_phase(round)));
    cJSON_AddNumberToObject(o, "round", fl_round_completed(round));
    cJSON_AddNumberToObject(o, "rounds", rounds);
    cJSON *branches = s_branches(round, now);
    /* The ledger keeps its line: the reply refers to its members. */
    cJSON *ref = last ? cJSON_CreateObjectReference(last->child) : cJSON_CreateNull();
    bool ok = branches && ref && cJSON_AddItemToObject(o, "branches", branches);
    if (ok)
        branches = NULL; /* o owns it */
    ok = ok && cJSON_AddItemToObject(o, "last", ref);
    if (ok) {
        ref = NULL;
        text = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(branches);
    cJSON_Delete(ref);
    cJSON_Delete(o);
    return text;
}

fl_status_t *fl_status_new(void *ctx, const char *endpoint)
{
    fl_status_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->sock = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    if (!self->sock || zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(self->sock, endpoint) != 0) {
        fl_error_set("cannot bind the control socket %s: %s", endpoint, zmq_strerror(errno));
        fl_status_destroy(&self);
        return NULL;
    }
    return self;
}

void fl_status_destroy(fl_status_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->sock)
        zmq_close((*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

void *fl_status_socket(fl_status_t *self)
{
    return self->sock;
}

void fl_status_answer(fl_status_t *self, const fl_round_t *round, const char *federation,
                      const char *strategy, int rounds, const cJSON *last, int64_t now)
{
    char req[64];
    if (zmq_recv(self->sock, req, sizeof req, ZMQ_DONTWAIT) < 0)
        return;
    char *text = fl_status_json(round, federation, strategy, rounds, last, now);
    if (text)
        zmq_send(self->sock, text, strlen(text), 0);
    else
        zmq_send(self->sock, "{}", 2, 0);
    cJSON_free(text);
}

/* fedtl status: ask a running coordinator (over its local control socket) for its strategy,
 * its round, its connected branches and its last round's metrics. */
#include "fedtl.h"

#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static const struct fl_option s_status_options[] = {
    TOOL_PATH("state_dir", state_dir, 0, "DIR",
              "the coordinator's state directory (its socket: ipc://DIR/control.sock)"),
    TOOL_TEXT("control", control, 0, "ENDPOINT", "the coordinator's control socket"),
    {"timeout", .type = FL_OPTION_DOUBLE, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(timeout),
     .range.d = {0.001, 86400}, .def = "3", .metavar = "SECONDS", .help = "wait this long"},
};

const struct fl_options_spec tool_status_spec = TOOL_SPEC(
    "status",
    "Prints the coordinator's status as one JSON object: federation, strategy (its full\n"
    "description), phase, round, rounds,\n"
    "connected branches (name, key id, base held, samples, ms since last heard) and the last\n"
    "round's ledger line. Give --state-dir or --control. With --state-dir, a coordinator that\n"
    "is not running (a finished federation, say) is read from its state directory instead:\n"
    "state.json and the ledger's last line, with \"running\": false and phase done or stopped.\n",
    s_status_options);

/* The last line of a text file (malloc'd), or NULL when it has none. */
static char *s_last_line(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *line = NULL, *last = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        free(last);
        last = strdup(line);
    }
    free(line);
    fclose(f);
    return last;
}

/* A coordinator that is not running: its state directory's state.json (the last committed
 * round, strategy, seed, base and run) and the ledger's last line, as one JSON object with
 * "running": false. 1 when the directory holds no state. */
static int s_offline(const char *dir, const char *why)
{
    char path[1100];
    snprintf(path, sizeof path, "%.1000s/state.json", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr,
                "fedtl status: the coordinator of %s is not running (%s) and %s cannot be "
                "read: %s (is this its state directory?)\n",
                dir, why, path, strerror(errno));
        return 1;
    }
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cJSON *st = cJSON_ParseWithLength(buf, len);
    if (!cJSON_IsObject(st)) {
        cJSON_Delete(st);
        fprintf(stderr, "fedtl status: %s is not a JSON object\n", path);
        return 3;
    }
    cJSON_AddBoolToObject(st, "running", false);
    const cJSON *round = cJSON_GetObjectItem(st, "round"),
                *rounds = cJSON_GetObjectItem(st, "rounds");
    bool done = cJSON_IsNumber(round) && cJSON_IsNumber(rounds) &&
                round->valuedouble >= rounds->valuedouble;
    cJSON_AddStringToObject(st, "phase", done ? "done" : "stopped");
    snprintf(path, sizeof path, "%.1000s/rounds.jsonl", dir);
    char *last = s_last_line(path);
    cJSON *line = last ? cJSON_Parse(last) : NULL;
    free(last);
    if (cJSON_IsObject(line))
        cJSON_AddItemToObject(st, "last_round", line);
    else
        cJSON_Delete(line);
    char *text = cJSON_PrintUnformatted(st);
    cJSON_Delete(st);
    if (!text)
        return 1;
    printf("%s\n", text);
    free(text);
    return 0;
}

int cmd_status(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_status_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!o.state_dir == !o.control)
        return tool_usage_error(&tool_status_spec, "give one of --state-dir and --control");
    char endpoint[1100];
    if (o.state_dir)
        snprintf(endpoint, sizeof endpoint, "ipc://%.1000s/control.sock", o.state_dir);
    else
        snprintf(endpoint, sizeof endpoint, "%.1000s", o.control);
    /* A coordinator that has stopped leaves no socket file behind (or a stale one, which
     * does not answer): its state directory still tells how the federation ended. */
    char sock[1100];
    snprintf(sock, sizeof sock, "%.1000s/control.sock", o.state_dir ? o.state_dir : "");
    if (o.state_dir && access(sock, F_OK) != 0)
        return s_offline(o.state_dir, "no control socket");
    double timeout = o.timeout;
    void *ctx = zmq_ctx_new();
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, ms = (int)(timeout * 1000);
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &ms, sizeof ms);
    rc = 1;
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    if (zmq_connect(req, endpoint) == 0 && zmq_send(req, "status", 6, 0) == 6 &&
        zmq_msg_recv(&reply, req, 0) >= 0) {
        /* Print the answer as it came, once a JSON parser has read it as one object. */
        const char *text = zmq_msg_data(&reply);
        size_t len = zmq_msg_size(&reply);
        cJSON *status = cJSON_ParseWithLength(text, len);
        if (cJSON_IsObject(status)) {
            printf("%.*s\n", (int)len, text);
            rc = 0;
        } else {
            fprintf(stderr, "fedtl status: the answer from %s is not a JSON object\n", endpoint);
            rc = 3;
        }
        cJSON_Delete(status);
    }
    zmq_msg_close(&reply);
    zmq_close(req);
    zmq_ctx_term(ctx);
    if (rc == 1 && o.state_dir)
        return s_offline(o.state_dir, "no answer on its control socket");
    if (rc == 1)
        fprintf(stderr,
                "fedtl status: no answer from %s within %gs (is the coordinator "
                "running?)\n",
                endpoint, timeout);
    return rc ? 1 : 0;
}

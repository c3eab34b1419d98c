/* fedtl status: ask a running coordinator (over its local control socket) for its strategy,
 * its round, its connected branches and its last round's metrics. */
#include "fedtl.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    "round's ledger line. Give --state-dir or --control.\n",
    s_status_options);

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
    if (rc == 1)
        fprintf(stderr,
                "fedtl status: no answer from %s within %gs (is the coordinator "
                "running, and is this its state directory?)\n",
                endpoint, timeout);
    zmq_msg_close(&reply);
    zmq_close(req);
    zmq_ctx_term(ctx);
    return rc ? 1 : 0;
}

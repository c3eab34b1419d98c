/* fedtl status: ask a running coordinator (over its local control socket) for its round, its
 * connected branches and its last round's metrics. */
#include "fedtl.h"

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
    "Prints the coordinator's status as one JSON object: federation, phase, round, rounds,\n"
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
    char *buf = malloc(1 << 20);
    if (buf && zmq_connect(req, endpoint) == 0 && zmq_send(req, "status", 6, 0) == 6) {
        int n = zmq_recv(req, buf, (1 << 20) - 1, 0);
        if (n >= 0) {
            buf[n < (1 << 20) - 1 ? n : (1 << 20) - 1] = '\0';
            printf("%s\n", buf);
            rc = 0;
        }
    }
    if (rc)
        fprintf(stderr,
                "fedtl status: no answer from %s within %gs (is the coordinator "
                "running, and is this its state directory?)\n",
                endpoint, timeout);
    free(buf);
    zmq_close(req);
    zmq_ctx_term(ctx);
    return rc;
}

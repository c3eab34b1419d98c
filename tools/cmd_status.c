/* fedtl status: ask a running coordinator (over its local control socket) for its round, its
 * connected branches and its last round's metrics. */
#include "fedtl.h"

#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char s_usage[] =
    "usage: fedtl status [--state-dir DIR | --control ENDPOINT] [--timeout SECONDS]\n"
    "Prints the coordinator's status as one JSON object: federation, phase, round, rounds,\n"
    "connected branches (name, key id, base held, samples, ms since last heard) and the last\n"
    "round's ledger line. The control socket is ipc://DIR/control.sock by default.\n";

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {{"state-dir", required_argument, 0, 's'},
                                         {"control", required_argument, 0, 'c'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    char endpoint[1100] = "";
    double timeout = 3;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            snprintf(endpoint, sizeof endpoint, "ipc://%.1000s/control.sock", optarg);
            break;
        case 'c':
            snprintf(endpoint, sizeof endpoint, "%.1000s", optarg);
            break;
        case 't':
            timeout = atof(optarg);
            break;
        case 'h':
            fputs(s_usage, stdout);
            return 0;
        default:
            fputs(s_usage, stderr);
            return 2;
        }
    }
    if (!endpoint[0] || optind < argc || !(timeout > 0)) {
        fputs(s_usage, stderr);
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, ms = (int)(timeout * 1000);
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &ms, sizeof ms);
    int rc = 1;
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

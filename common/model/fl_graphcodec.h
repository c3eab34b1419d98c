/* fl_graphcodec: the Graph message of a base model header (proto/fedtl_model.proto), for
 * fl_filecodec, which packs and unpacks the header: a graph description (fl_graphdef) checked
 * and viewed as protobuf-c messages, and a decoded message checked and copied into one. A
 * file is hostile until checked: counts, names (non-empty, < FL_GRAPH_NAME_MAX bytes, unique
 * node names and outputs), ops, attribute ranges and the input shape are all bounded here;
 * whether the nodes connect (names resolve, no cycle, shapes fit) is the engine's to check
 * when it builds the graph. Nothing outside the model layer's codec includes it. */
#ifndef FL_GRAPHCODEC_H
#define FL_GRAPHCODEC_H

#include "fedtl_model.pb-c.h"
#include "fl_graphdef.h"

/* Protobuf views of a description: msg borrows the description's names; freed by
 * fl_graphcodec_view_free. */
struct fl_graphcodec_view {
    Fedtl__Graph msg;        /* the message to put in BaseHeader.graph */
    Fedtl__GraphNode **ptrs; /* what msg.nodes points at */
    void *nodes;             /* one block holding every node's message and arrays */
    int64_t dims[3];         /* msg.input_dims */
};

/* Check d (err is the code for a bad description: FL_EINVAL when writing, FL_EFORMAT when
 * reading; messages start with origin). */
int fl_graphcodec_check(const struct fl_graphdef *d, const char *origin, int err);
/* Check d and fill v. 0, FL_EINVAL or FL_ENOMEM. */
int fl_graphcodec_view(const struct fl_graphdef *d, const char *origin,
                       struct fl_graphcodec_view *v);
void fl_graphcodec_view_free(struct fl_graphcodec_view *v);
/* Decode and check a Graph message into a malloc'd description *out (free it with
 * fl_graphcodec_free). 0, FL_EFORMAT or FL_ENOMEM; *out is NULL on failure. */
int fl_graphcodec_read(const Fedtl__Graph *p, const char *origin, struct fl_graphdef **out);
/* Free a description made by fl_graphcodec_read; accepts NULL, sets *d_p to NULL. */
void fl_graphcodec_free(struct fl_graphdef **d_p);

#endif

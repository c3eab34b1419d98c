/* fl_protobuf: packing a protobuf-c message of any type. */
#include "fl_protobuf.h"
#include "fl_error.h"

#include <stdlib.h>

int fl_protobuf_pack(const ProtobufCMessage *msg, const char *what, uint8_t **buf, size_t *len)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return fl_fail(FL_ENOMEM, "%s: out of memory", what);
    if (protobuf_c_message_pack(msg, p) != size) {
        free(p);
        return fl_fail(FL_EINVAL, "%s: encoding failed", what);
    }
    *buf = p;
    *len = size;
    return 0;
}

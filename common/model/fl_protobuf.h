/* fl_protobuf: what fedtl's two protobuf-c codecs share, the model files' headers
 * (fl_filecodec) and the wire protocol (wire/fl_codec): a message packed into a buffer of its
 * own. The codecs alone call it; everything else sees their structs. */
#ifndef FL_PROTOBUF_H
#define FL_PROTOBUF_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* msg serialised into a malloc'd *buf of *len bytes (caller frees). 0, FL_ENOMEM, or
 * FL_EINVAL when protobuf-c packs fewer bytes than it promised; what names the message in
 * the error. */
int fl_protobuf_pack(const ProtobufCMessage *msg, const char *what, uint8_t **buf, size_t *len);

#endif

/* fl_codec_secagg: the field checks and size limits of the secure-aggregation messages, for
 * fl_codec (which alone packs and unpacks them). Internal to the wire layer. */
#ifndef FL_CODEC_SECAGG_H
#define FL_CODEC_SECAGG_H

#include "fedtl_wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* Check a decoded secure-aggregation message's fields (keys, signatures, shares, counts).
 * 0, or FL_EFORMAT naming what is wrong (also for a body that is no secure-aggregation one). */
int fl_wire_secagg_check(const Fedtl__Envelope *e);
/* The largest frame a secure-aggregation body may come in; 0 for any other field number. */
size_t fl_wire_secagg_type_max(uint64_t body);
/* The most fields its body may hold (its repeated fields count once per element). */
int fl_wire_secagg_max_fields(uint64_t body);

#endif

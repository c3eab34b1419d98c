/* fl_allowlist: the coordinator's allow-list, the keys of the nodes it enrols: a directory of
 * .pub files or one authorized_keys-style file (one .pub line per key; '#' comments and blank
 * lines ignored). Looked up by a key's Ed25519 form (signatures) or X25519 form (CurveZMQ). */
#ifndef FL_ALLOWLIST_H
#define FL_ALLOWLIST_H

#include "fl_keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fl_allowlist fl_allowlist_t;
/* Load; NULL on error with the file and line named. An unparsable line is an error, not a
 * silent skip. */
fl_allowlist_t *fl_allowlist_load(const char *path);
void fl_allowlist_destroy(fl_allowlist_t **self_p);
size_t fl_allowlist_size(const fl_allowlist_t *a);
/* Is this Ed25519 key enrolled? If so, and name is not NULL, copy its name. */
bool fl_allowlist_has(const fl_allowlist_t *a, const uint8_t sign_pk[FL_SIGN_PK_BYTES],
                      char name[FL_NODE_NAME_MAX]);
/* Is this X25519 (CurveZMQ) key the form of an enrolled key? (For the ZAP handler.) */
bool fl_allowlist_has_curve(const fl_allowlist_t *a, const uint8_t box_pk[FL_BOX_PK_BYTES]);

#endif

/* fl_coord_config: the coordinator's option table (fl_options). It drives fedtl-coordinator's
 * flags, its INI file (sections [coordinator] and [federation]), --help and --check-config,
 * and the fl_coord_config_* functions of fl_coord.h. */
#ifndef FL_COORD_CONFIG_H
#define FL_COORD_CONFIG_H

#include "fl_coord.h"
#include "fl_options.h"

/* fedtl-coordinator's options; fields of struct fl_coord_config. Action 0 is --daemon. */
extern const struct fl_options_spec fl_coord_config_spec;
#define FL_COORD_ACTION_DAEMON (1u << 0)

#endif

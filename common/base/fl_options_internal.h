/* fl_options_internal: what the option engine's files (fl_options.c, fl_options_read.c,
 * fl_options_help.c) share and nothing else includes. */
#ifndef FL_OPTIONS_INTERNAL_H
#define FL_OPTIONS_INTERNAL_H

#include "fl_options.h"

/* The first n bytes of a name the user typed are option `name`, '-' and '_' alike. */
bool fl_options_name_eq(const char *typed, size_t n, const char *name);
/* Text for a message: control characters and backslashes escaped as \xNN, long text cut. */
void fl_options_quote(const char *text, char *buf, size_t len);
/* Read text as o's value and store it into cfg; who names the option in messages. A refused
 * value changes nothing; an empty one unsets text (its default, or none). 0 or an FL_E code. */
int fl_options_set_entry(const struct fl_option *o, void *cfg, const char *text, const char *who);

#endif

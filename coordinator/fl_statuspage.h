/* fl_statuspage: the coordinator's status page for a browser, one self-contained HTML document
 * (inline style and SVG chart of accuracy per round; no script, style sheet or font from
 * anywhere; it reloads itself with a meta refresh), and the same facts as JSON. Shows the
 * branches (name, key fingerprint, connected, last seen, rounds joined, rejections) and the
 * rounds; never key material or data. Every peer-chosen string is HTML-escaped (JSON: cJSON). */
#ifndef FL_STATUSPAGE_H
#define FL_STATUSPAGE_H

#include "fl_metrics.h"

#include <stddef.h>

#define FL_STATUSPAGE_REFRESH_S 5 /* the page reloads itself this often */

/* The HTML page (malloc'd, its length in *len), or NULL when out of memory. */
char *fl_statuspage_html(const fl_metrics_t *m, const struct fl_metrics_live *live, size_t *len);
/* The JSON view (malloc'd, its length in *len), or NULL when out of memory. */
char *fl_statuspage_json(const fl_metrics_t *m, const struct fl_metrics_live *live, size_t *len);

#endif

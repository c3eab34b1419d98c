/* fl_status: the coordinator's status socket (a ZeroMQ REP socket on a local endpoint, by
 * default ipc://STATE/control.sock) and the JSON object it answers every request with: the
 * federation, its strategy, the phase, rounds done and to run, the registered branches and the
 * last ledger line. `fedtl status` asks it. */
#ifndef FL_STATUS_H
#define FL_STATUS_H

#include "fl_round.h"

#include <cJSON.h>
#include <stdint.h>

/* The status as one line of JSON (malloc'd; NULL when out of memory). strategy: its
 * description (fl_strategy_config_str), or NULL. last: the last ledger line, or NULL. now: the
 * clock the round core is told (for each branch's idle time). */
char *fl_status_json(const fl_round_t *round, const char *federation, const char *strategy,
                     int rounds, const cJSON *last, int64_t now);

typedef struct fl_status fl_status_t;

/* Bind a REP socket on endpoint in the ZeroMQ context ctx. NULL with the message set. */
fl_status_t *fl_status_new(void *ctx, const char *endpoint);
void fl_status_destroy(fl_status_t **self_p);
/* The socket, to poll for requests. */
void *fl_status_socket(fl_status_t *self);
/* Answer the pending request, if any, with fl_status_json ("{}" when out of memory). */
void fl_status_answer(fl_status_t *self, const fl_round_t *round, const char *federation,
                      const char *strategy, int rounds, const cJSON *last, int64_t now);

#endif

/* fl_final: what a branch does with the federation's final adapter (FinalModel), once it has
 * checked that it was made for its base: fine-tune it on the local records when the
 * coordinator asks for a personalisation (checked like any peer's numbers: at most 1000
 * epochs, a task's training parameters), then save it: the personalised adapter as the
 * branch's final adapter with the global one beside it, or the global one alone. No sockets. */
#ifndef FL_FINAL_H
#define FL_FINAL_H

#include "fl_codec.h"
#include "fl_localtrain.h"
#include "fl_modelfile.h"

#include <stddef.h>

/* Where the final adapters go. */
struct fl_final_paths {
    const char *out;    /* the branch's final adapter (--out) */
    const char *global; /* the global one, when the final adapter is personalised */
};

/* Personalise (when f asks for it and base, the base the branch holds, is not NULL) and save
 * f's adapter. A refused or failed personalisation is logged and the global adapter saved
 * alone. *personalized: whether the saved final adapter is personalised; `shown` gets what
 * it measured as " key=value ..." for the branch's final log line. 0, or the error of saving
 * (fl_error_msg says why). Blocks for the whole fine-tuning. */
int fl_final_save(fl_localtrain_t *local, const struct fl_base_file *base, const char *base_name,
                  const struct fl_final_paths *paths, const Fedtl__FinalModel *f, int *personalized,
                  char *shown, size_t len);

#endif

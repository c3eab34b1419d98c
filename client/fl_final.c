/* fl_final: the final adapter, personalised or not, saved. */
#include "fl_final.h"
#include "fl_error.h"
#include "fl_fs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write a final adapter to path, creating its directory. */
static int s_save(const char *path, const uint8_t *buf, size_t len)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        fl_fs_mkdirs(dir, 0755);
    }
    return fl_fs_write_file(path, buf, len, 0644);
}

/* FinalModel.personalize, checked: 0 when none is asked for, 1 when one is, else FL_EINVAL
 * (the coordinator is a peer: its numbers are checked like any other). */
static int s_asked(const Fedtl__FinalModel *f)
{
    const Fedtl__TrainParams *p = f->personalize;
    if (!p || p->epochs == 0)
        return 0;
    if (p->epochs > 1000)
        return fl_fail(FL_EINVAL, "personalisation epochs %u above 1000", p->epochs);
    return 1;
}

/* Fine-tune f's adapter on the local records (with the branch's own head when the federation
 * kept them); save it to paths->out and the global one to paths->global. */
static int s_personalize(fl_localtrain_t *local, const struct fl_base_file *base,
                         const char *base_name, const struct fl_final_paths *paths,
                         const Fedtl__FinalModel *f, char *shown, size_t len_shown)
{
    if (!base)
        return fl_fail(FL_EINVAL, "no base to fine-tune on");
    struct fl_localtrain_final lf = {.adapter = f->adapter.data,
                                     .adapter_len = f->adapter.len,
                                     .round = f->round,
                                     .epochs = f->personalize->epochs,
                                     .batch = f->personalize->batch,
                                     .lr = f->personalize->lr,
                                     .seed = f->personalize->seed,
                                     .personal_head = f->personal_head};
    uint8_t *buf = NULL;
    size_t len = 0;
    struct fl_localtrain_metrics m;
    int rc = fl_localtrain_personalize(local, base, base_name, &lf, &buf, &len, &m);
    if (rc == 0)
        rc = s_save(paths->global, f->adapter.data, f->adapter.len);
    if (rc == 0)
        rc = s_save(paths->out, buf, len);
    free(buf);
    char gp[2 * PATH_MAX];
    if (rc == 0)
        snprintf(shown, len_shown,
                 " epochs=%u personal_head=%d global_accuracy=%.4f personal_accuracy=%.4f "
                 "global_loss=%.4f personal_loss=%.4f eval_samples=%zu global_path=%s",
                 lf.epochs, (int)lf.personal_head, m.eval_accuracy, m.personal_accuracy,
                 m.eval_loss, m.personal_loss, m.eval_samples,
                 fl_log_str(paths->global, gp, sizeof gp));
    return rc;
}

int fl_final_save(fl_localtrain_t *local, const struct fl_base_file *base, const char *base_name,
                  const struct fl_final_paths *paths, const Fedtl__FinalModel *f, int *personalized,
                  char *shown, size_t len)
{
    char msg[512];
    shown[0] = '\0';
    int asked = s_asked(f);
    if (asked == 1 && s_personalize(local, base, base_name, paths, f, shown, len) != 0) {
        fl_log(FL_LOG_WARN, "personalize_failed", "round=%u reason=%s saving=global", f->round,
               fl_log_str(fl_error_msg(), msg, sizeof msg));
        asked = 0;
        shown[0] = '\0';
    } else if (asked < 0) {
        fl_log(FL_LOG_WARN, "personalize_refused", "round=%u reason=%s saving=global", f->round,
               fl_log_str(fl_error_msg(), msg, sizeof msg));
        asked = 0;
    }
    *personalized = asked;
    return asked ? 0 : s_save(paths->out, f->adapter.data, f->adapter.len);
}

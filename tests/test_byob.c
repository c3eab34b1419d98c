/* Bring your own base, end to end with real processes: a torchvision ResNet-18 pretrained in
 * PyTorch on Fashion-MNIST classes 0-4 and exported to ONNX is imported (fedtl import), adapted
 * to classes 5-9 by a federation of ten branches training LoRA on its last stage
 * (scripts/simulate.sh --base), and the final adapter, merged and exported (fedtl export), is
 * run by ONNX Runtime, which must predict what fedtl predict does. Needs the peers
 * (scripts/peers.sh: PyTorch, torchvision, onnx, ONNX Runtime) and skips without them. */
#include <criterion/criterion.h>

#include "fl_testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FMNIST   "/usr/share/datasets/fashion-mnist"
#define S_N      256 /* test records run by both runtimes */
#define S_LAST   "/layer4/layer4.0/conv1/Conv,/layer4/layer4.0/conv2/Conv,"
#define S_LAST_2 "/layer4/layer4.1/conv1/Conv,/layer4/layer4.1/conv2/Conv"

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("byob");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
}

static void s_need_peers(void)
{
    if (!fl_test_have_python("torch, torchvision, onnx, numpy"))
        cr_skip_test("PyTorch, torchvision or onnx is missing for /usr/bin/python3: run "
                     "scripts/peers.sh");
    if (!fl_test_have_ort(FEDTL_SRC_DIR))
        cr_skip_test("no ONNX Runtime peer (node, tests/peers/node_modules/onnxruntime-node): "
                     "run scripts/peers.sh");
}

/* Run a shell command in the test's directory; it must succeed. Output in *out if wanted. */
static void s_ok(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_ok(char **out, const char *fmt, ...)
{
    char cmd[8192], *text = NULL;
    int len = snprintf(cmd, sizeof cmd, "cd '%s' && ", s_dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + len, sizeof cmd - (size_t)len, fmt, ap);
    va_end(ap);
    int rc = fl_test_run(cmd, &text);
    cr_assert_eq(rc, 0, "%s\n=> exit %d\n%s", cmd, rc, text ? text : "");
    if (out)
        *out = text;
    else
        free(text);
}

static double s_json_num(const char *text, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    cr_assert_not_null(p, "no %s in %s", key, text);
    return atof(p + strlen(pat));
}

Test(byob, resnet18_from_pytorch_federated_and_back_to_onnx, .init = s_setup, .fini = s_teardown,
     .timeout = 1500)
{
    s_need_peers();
    char *out = NULL;
    /* PyTorch: the organisation's own base. */
    s_ok(&out,
         "/usr/bin/python3 %s/tests/peers/torch_pretrain.py --arch resnet18 --classes 0-4 "
         "--samples 3000 --epochs 1 --threads 2 --out r18.onnx 2>/dev/null",
         FEDTL_SRC_DIR);
    cr_log_info("pytorch: %s", out);
    double torch_acc = s_json_num(out, "test_accuracy");
    cr_assert_gt(torch_acc, 0.5, "%s", out);
    free(out);

    /* 1,000 test records of the new classes, for the coordinator's evaluation each round. */
    s_ok(NULL,
         "/usr/bin/python3 %s/tests/peers/idx_slice.py " FMNIST "/t10k-images-idx3-ubyte.gz " FMNIST
         "/t10k-labels-idx1-ubyte.gz 5-9 1000 new",
         FEDTL_SRC_DIR);

    /* fedtl import: the ONNX file as a base, raw pixels scaled as PyTorch saw them. */
    s_ok(&out, "%s/fedtl import r18.onnx --out base.ftm --mean 0 --std 255 --classes 0-4 --json",
         FEDTL_BIN_DIR);
    cr_assert_eq((int)s_json_num(out, "classes"), 5, "%s", out);
    cr_assert(strstr(out, "\"head\":\"/fc/Gemm\""), "%s", out);
    free(out);
    /* The imported base scores PyTorch's accuracy on the same 5,000 test images of 0-4. */
    s_ok(&out,
         "%s/fedtl eval --base base.ftm --data " FMNIST
         "/t10k-images-idx3-ubyte.gz --labels " FMNIST "/t10k-labels-idx1-ubyte.gz --json",
         FEDTL_BIN_DIR);
    double base_acc = s_json_num(out, "accuracy");
    cr_log_info("imported base on classes 0-4: %.4f (PyTorch %.4f)", base_acc, torch_acc);
    cr_assert_leq(fabs(base_acc - torch_acc), 0.002, "fedtl %.4f, PyTorch %.4f", base_acc,
                  torch_acc);
    free(out);

    /* A federation of ten branches adapts the last stage to classes 5-9. */
    s_ok(&out,
         "FEDTL_BIN=%s %s/scripts/simulate.sh --run sim --base base.ftm --branches 10 --rounds 3 "
         "--samples 1500 --alpha 1.0 --epochs 2 --deadline 120 --method lora --targets " S_LAST
             S_LAST_2 " --test new.csv --port %d --quiet 2>&1",
         FEDTL_BIN_DIR, FEDTL_SRC_DIR, fl_test_free_port());
    free(out);
    char ledger[2048];
    snprintf(ledger, sizeof ledger, "%s/sim/state/rounds.jsonl", s_dir);
    cr_assert_eq(fl_test_count(ledger, "\"aggregated\":true"), 3);
    s_ok(&out, "%s/fedtl eval --base base.ftm --adapter sim/state/global.fta --data new.csv --json",
         FEDTL_BIN_DIR);
    double fed_acc = s_json_num(out, "accuracy");
    cr_log_info("federated LoRA on classes 5-9: %.4f", fed_acc);
    cr_assert_gt(fed_acc, 0.6, "%s", out); /* chance is 0.2 */
    free(out);

    /* fedtl export: the merged model; ONNX Runtime predicts what fedtl predict does. */
    s_ok(NULL,
         "%s/fedtl export --base base.ftm --adapter sim/state/global.fta --out merged.onnx "
         "--peft peft",
         FEDTL_BIN_DIR);
    s_ok(NULL,
         "/usr/bin/python3 %s/tests/peers/idx_slice.py " FMNIST "/t10k-images-idx3-ubyte.gz " FMNIST
         "/t10k-labels-idx1-ubyte.gz 5-9 %d test",
         FEDTL_SRC_DIR, S_N);
    s_ok(NULL, "node %s/tests/peers/ort_run.js merged.onnx test.f32 %d,1,28,28 ort.f32",
         FEDTL_SRC_DIR, S_N);
    s_ok(&out, "%s/fedtl predict --base base.ftm --adapter sim/state/global.fta --data test.csv",
         FEDTL_BIN_DIR);
    char path[2048];
    snprintf(path, sizeof path, "%s/ort.f32", s_dir);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static float logits[S_N * 5];
    cr_assert_eq(fread(logits, sizeof(float), S_N * 5, f), (size_t)S_N * 5);
    fclose(f);
    int same = 0, close_calls = 0;
    char *line = out;
    for (int i = 0; i < S_N; i++) {
        int best = 0, second = -1;
        for (int k = 1; k < 5; k++)
            if (logits[i * 5 + k] > logits[i * 5 + best])
                best = k;
        for (int k = 0; k < 5; k++)
            if (k != best && (second < 0 || logits[i * 5 + k] > logits[i * 5 + second]))
                second = k;
        cr_assert_not_null(line, "fedtl predict printed fewer than %d lines", S_N);
        int fedtl_label = atoi(line);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
        if (fedtl_label == best + 5)
            same++;
        else if (logits[i * 5 + best] - logits[i * 5 + second] < 1e-4f)
            close_calls++; /* a tie to float rounding: either answer is the model's */
    }
    free(out);
    cr_log_info("ONNX Runtime and fedtl predict agree on %d of %d (%d ties)", same, S_N,
                close_calls);
    cr_assert_eq(same + close_calls, S_N, "ONNX Runtime and fedtl predict agree on %d of %d", same,
                 S_N);
    snprintf(path, sizeof path, "%s/peft/adapter_config.json", s_dir);
    cr_assert_eq(access(path, R_OK), 0);
}

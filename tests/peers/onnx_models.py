#!/usr/bin/python3
"""ONNX files and PyTorch's answers for tests/test_onnx.c.

Usage: onnx_models.py OUTDIR

Writes into OUTDIR, every array raw little-endian (float32 unless said):
  <net>_<size>_<f|u>.onnx  torchvision resnet18 / mobilenet_v2 / mobilenet_v3_small (10
                           classes, random weights, randomised eval-mode BatchNorm statistics)
                           exported by torch.onnx.export with constant folding on (f: BatchNorm
                           fused by the exporter, dynamic batch) or off (u: BatchNormalization
                           nodes kept, for the importer to fold; static batch)
  <same>.in / .out         an input batch [8, 3, size, size] and PyTorch's logits [8, 10]
  lora_<net>.onnx          the net with every BatchNorm fused into its conv in PyTorch (as the
                           importer and the exporter's folding do, so that LoRA acts on the
                           fused weight on both sides); .in, .labels (int32),
                           .nodes (the ONNX names of the LoRA'd convs, one a line), and for the
                           k-th conv .A<k> .B<k> (the LoRA factors set) and .gA<k> .gB<k>
                           (PyTorch's gradients of the mean cross-entropy)
  helper.onnx              built with onnx.helper: opset 9, Constant nodes with float_data,
                           dynamic height and width, Shape-Slice-Concat-Reshape before a Gemm;
                           .in [2, 1, 28, 28] / .out
  view_static.onnx         x.view(x.size(0), -1) exported with a static batch of 8 and constant
                           folding (Reshape to [8, -1]); view_dynamic.onnx the same with a
                           dynamic batch, unfolded (Shape, Gather, Unsqueeze, Concat); .in / .out
  dtypes.onnx              float16 and float64 weights (one through a Cast); .in / .out
  ops.onnx                 the other ops and attributes: a BatchNormalization that stays (its
                           conv's output has another reader), auto_pad SAME_UPPER, Clip with
                           constant inputs, MaxPool ceil_mode, AveragePool count_include_pad,
                           Concat, Sub/Div/Mul with constants, Sigmoid, Unsqueeze and Squeeze
                           of an activation, MatMul + Add, Dropout, a final LogSoftmax;
                           .in / .out (the logits before the LogSoftmax)
  ext/model.onnx           weights in ext/weights.bin (external data); .in / .out beside it
  ext/escape_dotdot.onnx   external data at ../weights_out.bin (outside the folder)
  ext/escape_abs.onnx      external data at an absolute path
"""
import os
import shutil
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
import torchvision
from onnx import TensorProto, external_data_helper, helper, numpy_helper

OUT = sys.argv[1]
RANK, ALPHA = 4, 8.0


def save(path, arr, dtype=np.float32):
    np.ascontiguousarray(arr, dtype=dtype).astype(dtype).tofile(path)


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)


def make_net(name, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(num_classes=10)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        randomise_bn(model, gen)
    return model.eval()


def export(model, x, path, fold, opset, dynamic_batch):
    # EVAL fuses BatchNorm into the convs whatever the folding; PRESERVE (the model is in eval
    # mode) keeps BatchNormalization nodes for the importer to fold.
    mode = torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE
    kw = {"keep_initializers_as_inputs": opset == 9}  # as older exporters wrote it
    if dynamic_batch:
        kw["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"],
                      do_constant_folding=fold, opset_version=opset,
                      training=mode, **kw)


# (net, opset when unfolded, opset when folded): Clip as attributes (9) and as inputs (13),
# HardSwish as HardSigmoid x Mul (13) and as its own op (14).
NETS = [("resnet18", 17, 12), ("mobilenet_v2", 9, 13), ("mobilenet_v3_small", 13, 14)]


def logits_files():
    for i, (name, op_u, op_f) in enumerate(NETS):
        model = make_net(name, 10 + i)
        for size in (32, 64):
            x = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(size + i))
            with torch.no_grad():
                y = model(x)
            for fold in (False, True):
                base = os.path.join(OUT, "%s_%d_%s" % (name, size, "f" if fold else "u"))
                export(model, x, base + ".onnx", fold, op_f if fold else op_u, fold)
                save(base + ".in", x.numpy())
                save(base + ".out", y.numpy())


def fuse_bn(module):
    """Fuse every BatchNorm2d that directly follows a Conv2d among a module's children."""
    kids = list(module.named_children())
    for (n0, m0), (n1, m1) in zip(kids, kids[1:]):
        if isinstance(m0, torch.nn.Conv2d) and isinstance(m1, torch.nn.BatchNorm2d):
            setattr(module, n0, torch.nn.utils.fusion.fuse_conv_bn_eval(m0, m1))
            setattr(module, n1, torch.nn.Identity())
    for _, m in module.named_children():
        fuse_bn(m)


LORA = [("resnet18", ["layer1.0.conv1", "layer3.0.downsample.0", "layer4.1.conv2"]),
        ("mobilenet_v2", ["features.2.conv.0.0", "features.17.conv.2", "features.18.0"])]


def lora_files():
    for i, (name, targets) in enumerate(LORA):
        model = make_net(name, 20 + i)
        fuse_bn(model)
        x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(30 + i))
        labels = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(40 + i))
        base = os.path.join(OUT, "lora_" + name)
        export(model, x, base + ".onnx", True, 13, False)
        save(base + ".in", x.numpy())
        save(base + ".labels", labels.numpy(), np.int32)
        graph = onnx.load(base + ".onnx").graph
        names = []
        rng = np.random.default_rng(50 + i)
        factors = []
        for k, t in enumerate(targets):
            conv = model.get_submodule(t)
            node = [n for n in graph.node if n.op_type == "Conv" and n.input[1] == t + ".weight"]
            assert len(node) == 1 and conv.groups == 1, t
            names.append(node[0].name)
            w = conv.weight
            cols = w[0].numel()
            a = torch.tensor(rng.normal(0, 1 / np.sqrt(cols), (RANK, cols)), dtype=torch.float32,
                             requires_grad=True)
            b = torch.tensor(rng.normal(0, 0.05, (w.shape[0], RANK)), dtype=torch.float32,
                             requires_grad=True)
            save("%s.A%d" % (base, k), a.detach().numpy())
            save("%s.B%d" % (base, k), b.detach().numpy())
            factors.append((a, b))

            def fwd(inp, conv=conv, a=a, b=b):
                weff = conv.weight + (ALPHA / RANK) * (b @ a).view_as(conv.weight)
                return conv._conv_forward(inp, weff, conv.bias)

            conv.forward = fwd
        with open(base + ".nodes", "w") as f:
            f.write("\n".join(names) + "\n")
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        for k, (a, b) in enumerate(factors):
            save("%s.gA%d" % (base, k), a.grad.numpy())
            save("%s.gB%d" % (base, k), b.grad.numpy())


def const_node(name, arr):
    arr = np.asarray(arr)
    if arr.dtype == np.int64:
        t = helper.make_tensor(name + "_t", TensorProto.INT64, arr.shape, arr.flatten().tolist())
    else:
        t = helper.make_tensor(name + "_t", TensorProto.FLOAT, arr.shape,
                               arr.astype(np.float32).flatten().tolist())  # float_data
    return helper.make_node("Constant", [], [name], value=t)


def helper_file():
    rng = np.random.default_rng(7)
    w1 = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, (4,)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (10, 4 * 14 * 14)).astype(np.float32)
    b2 = rng.normal(0, 0.1, (10,)).astype(np.float32)
    nodes = [
        const_node("w1", w1), const_node("b1", b1), const_node("w2", w2), const_node("b2", b2),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),  # no name: the importer names it
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Shape", ["p1"], ["s"], name="shape"),
        helper.make_node("Slice", ["s"], ["s0"], name="slice", starts=[0], ends=[1]),
        const_node("minus1", np.array([-1], dtype=np.int64)),
        helper.make_node("Concat", ["s0", "minus1"], ["newshape"], name="concat", axis=0),
        helper.make_node("Reshape", ["p1", "newshape"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "w2", "b2"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "helper",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)],
                              producer_name="onnx.helper")
    onnx.save(model, os.path.join(OUT, "helper.onnx"))
    x = rng.normal(0, 1, (2, 1, 28, 28)).astype(np.float32)
    t = F.conv2d(torch.from_numpy(x), torch.from_numpy(w1), torch.from_numpy(b1), padding=1)
    t = F.max_pool2d(F.relu(t), 2, 2).flatten(1)
    y = F.linear(t, torch.from_numpy(w2), torch.from_numpy(b2))
    save(os.path.join(OUT, "helper.in"), x)
    save(os.path.join(OUT, "helper.out"), y.numpy())


def ops_file():
    rng = np.random.default_rng(11)
    f32 = lambda *shape: rng.normal(0, 0.5, shape).astype(np.float32)
    w1, b1, w2, b2, off = f32(4, 3, 3, 3), f32(4), f32(72, 6), f32(6), f32(8, 1, 1)
    scale, bias, mean = f32(4) + 1.0, f32(4), f32(4)
    var = (rng.random(4) + 0.5).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (off, "off"), (scale, "bn.scale"),
        (bias, "bn.bias"), (mean, "bn.mean"), (var, "bn.var"),
        (np.array(-0.5, np.float32), "lo"), (np.array(1.0, np.float32), "hi"),
        (np.array(2.0, np.float32), "two"), (np.array([2], np.int64), "axis2"))]
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", auto_pad="SAME_UPPER", strides=[2, 2]),
        mk("BatchNormalization", ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["b"],
           name="bn", epsilon=1e-3),
        mk("Add", ["b", "c1"], ["a"], name="add"),
        mk("Clip", ["a", "lo", "hi"], ["k"], name="clip"),
        mk("MaxPool", ["k"], ["mp"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2],
           ceil_mode=1),
        mk("AveragePool", ["k"], ["ap"], name="avgpool", kernel_shape=[3, 3], strides=[2, 2],
           pads=[1, 1, 1, 1], count_include_pad=1),
        mk("Concat", ["mp", "ap"], ["cat"], name="concat", axis=1),
        mk("Sub", ["cat", "off"], ["sub"], name="sub"),
        mk("Div", ["sub", "two"], ["div"], name="div"),
        mk("Sigmoid", ["div"], ["sig"], name="sigmoid"),
        mk("Mul", ["sig", "cat"], ["mul"], name="mul"),
        mk("Flatten", ["mul"], ["flat"], name="flatten"),
        mk("Unsqueeze", ["flat", "axis2"], ["flat3"], name="unsqueeze"),
        mk("Squeeze", ["flat3", "axis2"], ["flat2"], name="squeeze"),
        mk("MatMul", ["flat2", "w2"], ["mm"], name="matmul"),
        mk("Add", ["mm", "b2"], ["g"], name="bias"),
        mk("Dropout", ["g"], ["d"], name="dropout"),
        mk("LogSoftmax", ["d"], ["y"], name="logsoftmax", axis=1),
    ]
    graph = helper.make_graph(nodes, "ops",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N", 3, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, os.path.join(OUT, "ops.onnx"))
    x = rng.normal(0, 1, (4, 3, 9, 9)).astype(np.float32)
    t = lambda a: torch.from_numpy(a)
    c1 = F.conv2d(t(x), t(w1), t(b1), stride=2, padding=1)
    b = F.batch_norm(c1, t(mean), t(var), t(scale), t(bias), False, 0.0, 1e-3)
    k = torch.clamp(b + c1, -0.5, 1.0)
    mp = F.max_pool2d(k, 2, 2, ceil_mode=True)
    ap = F.avg_pool2d(k, 3, 2, padding=1, count_include_pad=True)
    cat = torch.cat([mp, ap], 1)
    mul = torch.sigmoid((cat - t(off)) / 2.0) * cat
    g = mul.flatten(1) @ t(w2) + t(b2)
    save(os.path.join(OUT, "ops.in"), x)
    save(os.path.join(OUT, "ops.out"), g.numpy())


class ViewNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def view_files():
    torch.manual_seed(3)
    model = ViewNet().eval()
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        y = model(x)
    for tag, fold, opset in (("static", True, 13), ("dynamic", False, 11)):
        export(model, x, os.path.join(OUT, "view_%s.onnx" % tag), fold, opset, not fold)
        save(os.path.join(OUT, "view_%s.in" % tag), x.numpy())
        save(os.path.join(OUT, "view_%s.out" % tag), y.numpy())


def small_model(rng, w_conv, b_conv, w_fc, b_fc, cast_fc):
    """Conv 3x3 (2 -> 3) + Relu + Flatten + Gemm (3*6*6 -> 5) on [N, 2, 6, 6]."""
    inits = [numpy_helper.from_array(w_conv, "conv.weight"),
             numpy_helper.from_array(b_conv, "conv.bias"),
             numpy_helper.from_array(w_fc, "fc.weight"), numpy_helper.from_array(b_fc, "fc.bias")]
    fcw = "fc.weight"
    nodes = [helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten")]
    if cast_fc:
        nodes.append(helper.make_node("Cast", ["fc.weight"], ["fc.weight.f32"], name="cast",
                                      to=TensorProto.FLOAT))
        fcw = "fc.weight.f32"
    nodes.append(helper.make_node("Gemm", ["f", fcw, "fc.bias"], ["y"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "small",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def small_ref(x, w_conv, b_conv, w_fc, b_fc):
    t = F.conv2d(torch.from_numpy(x), torch.from_numpy(w_conv.astype(np.float32)),
                 torch.from_numpy(b_conv.astype(np.float32)), padding=1)
    t = F.relu(t).flatten(1)
    return F.linear(t, torch.from_numpy(w_fc.astype(np.float32)),
                    torch.from_numpy(b_fc.astype(np.float32))).numpy()


def dtype_and_external_files():
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, (3, 2, 6, 6)).astype(np.float32)
    w_conv = rng.normal(0, 0.5, (3, 2, 3, 3)).astype(np.float16)
    b_conv = rng.normal(0, 0.1, (3,)).astype(np.float64)
    w_fc = rng.normal(0, 0.2, (5, 108)).astype(np.float64)
    b_fc = rng.normal(0, 0.1, (5,)).astype(np.float16)
    onnx.save(small_model(rng, w_conv, b_conv, w_fc, b_fc, True), os.path.join(OUT, "dtypes.onnx"))
    save(os.path.join(OUT, "dtypes.in"), x)
    save(os.path.join(OUT, "dtypes.out"), small_ref(x, w_conv, b_conv, w_fc, b_fc))

    ext = os.path.join(OUT, "ext")
    os.makedirs(ext, exist_ok=True)
    ws = [a.astype(np.float32) for a in (w_conv, b_conv, w_fc, b_fc)]
    model = small_model(rng, *ws, False)
    external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save(model, os.path.join(ext, "model.onnx"))
    save(os.path.join(ext, "model.in"), x)
    save(os.path.join(ext, "model.out"), small_ref(x, *ws))
    shutil.copy(os.path.join(ext, "weights.bin"), os.path.join(OUT, "weights_out.bin"))
    for tag, where in (("dotdot", "../weights_out.bin"),
                       ("abs", os.path.abspath(os.path.join(OUT, "weights_out.bin")))):
        m = onnx.load(os.path.join(ext, "model.onnx"), load_external_data=False)
        for t in m.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = where
        onnx.save(m, os.path.join(ext, "escape_%s.onnx" % tag))


if __name__ == "__main__":
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    helper_file()
    ops_file()
    view_files()
    dtype_and_external_files()
    lora_files()
    logits_files()
    print("onnx_models: done")

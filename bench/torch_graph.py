#!/usr/bin/python3
"""PyTorch reference for bench_graph: LoRA fine-tuning and inference of resnet18 / mobilenet_v2.

The networks are torchvision's (resnet18, mobilenet_v2), random weights, BatchNorm in eval
mode (frozen statistics; fedtl folds it into the convs). Fine-tuning: the base is frozen; LoRA
(rank r, scale alpha/r) sits on the same convs as in fedtl, as a merged weight
conv(x, W + scale * (B A).view(W.shape)) (B zeros, A uniform +-1/sqrt(fan_in)); the head (fc /
classifier.1) is new and trainable; only A, B and the head train, plain SGD, cross-entropy,
one fixed random batch. Inference: model(x) under torch.inference_mode(). Prints one
machine-readable line per (mode, threads[, batch]):
  bench=graph impl=torch arch=A hw=H mode=train threads=T batch=B images_per_s=X
from the median step time after the warm-up. --export-onnx PATH writes the eval-mode model
(BatchNorm folded by the exporter) for bench/ort_graph.js instead of timing anything.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class LoRAConv2d(nn.Module):
    def __init__(self, base: nn.Conv2d, rank: int, alpha: float):
        super().__init__()
        self.base = base
        fan_in = base.in_channels // base.groups * base.kernel_size[0] * base.kernel_size[1]
        self.A = nn.Parameter(torch.empty(rank, fan_in).uniform_(-fan_in ** -0.5, fan_in ** -0.5))
        self.B = nn.Parameter(torch.zeros(base.out_channels, rank))
        self.scale = alpha / rank

    def forward(self, x):
        b = self.base
        w = b.weight + self.scale * (self.B @ self.A).view(b.weight.shape)
        return F.conv2d(x, w, b.bias, b.stride, b.padding, b.dilation, b.groups)


def lora_targets(arch: str):
    if arch == "resnet18":
        return [f"layer4.{i}.conv{j}" for i in (0, 1) for j in (1, 2)]
    return [f"features.{i}.conv.{j}" for i in (15, 16, 17) for j in ("0.0", "2")]


def build(arch: str, classes: int):
    return getattr(torchvision.models, arch)(num_classes=classes)


def with_lora(model: nn.Module, arch: str, rank: int, alpha: float):
    for p in model.parameters():
        p.requires_grad_(False)
    for name in lora_targets(arch):
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, leaf, LoRAConv2d(getattr(parent, leaf), rank, alpha))
    head = model.fc if arch == "resnet18" else model.classifier[1]
    new = nn.Linear(head.in_features, head.out_features)
    if arch == "resnet18":
        model.fc = new
    else:
        model.classifier[1] = new
    model.eval()  # BatchNorm uses its frozen statistics, dropout is off
    return model


def time_steps(fn, warmup: int, steps: int) -> float:
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_train(args, threads: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = with_lora(build(args.arch, args.classes), args.arch, args.rank, args.alpha)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3)
    x = torch.rand(args.batch, 3, args.hw, args.hw)
    y = torch.randint(0, args.classes, (args.batch,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return args.batch / time_steps(step, args.warmup, args.steps)


def bench_infer(args, threads: int, batch: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = build(args.arch, args.classes).eval()
    x = torch.rand(batch, 3, args.hw, args.hw)

    def step():
        with torch.inference_mode():
            model(x)

    steps = args.steps if batch > 1 else 4 * args.steps
    return batch / time_steps(step, args.warmup, steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "mobilenet_v2"])
    ap.add_argument("--hw", type=int, default=32, help="input height = width")
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts")
    ap.add_argument("--mode", default="train,infer", help="train, infer or both")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per figure")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--export-onnx", metavar="PATH", help="write the eval model as ONNX and exit")
    args = ap.parse_args()
    if args.export_onnx:
        model = build(args.arch, args.classes).eval()
        torch.onnx.export(model, torch.rand(1, 3, args.hw, args.hw), args.export_onnx,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=13)
        return
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"mkldnn={torch.backends.mkldnn.is_available()}", flush=True)
    modes = args.mode.split(",")
    for t in (int(s) for s in args.threads.split(",")):
        figures = []
        if "train" in modes:
            figures.append(("train", args.batch, bench_train(args, t)))
        if "infer" in modes:
            figures += [("infer", b, bench_infer(args, t, b)) for b in (1, args.batch)]
        for mode, b, ips in figures:
            print(f"bench=graph impl=torch arch={args.arch} hw={args.hw} mode={mode} "
                  f"threads={t} batch={b} images_per_s={ips:.1f}", flush=True)


if __name__ == "__main__":
    main()

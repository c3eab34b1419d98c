#!/usr/bin/python3
"""PyTorch reference for bench_throughput: one LoRA fine-tuning step of cnn-small.

The same model as fedtl's cnn-small (NCHW here): conv3x3(1->16,pad1)-ReLU-maxpool2 ->
conv3x3(16->32,pad1)-ReLU-maxpool2 -> flatten(1568) -> dense(1568->128)-ReLU -> head(128->5).
The base is frozen; LoRA (rank r, scale alpha/r) sits on conv2 and fc1, and the head is new:
- fc1:   y = x W^T + b + scale * (x A^T) B^T          (loralib's parallel path)
- conv2: conv(x, W + scale * (B A).view(W.shape)) + b  (loralib's ConvLoRA, merged per step)
Adam over A, B and the head; batch 64 drawn at random from a random 6,400-record set and
normalised on the fly, as fedtl's fl_train does. Prints one machine-readable line per thread
count: bench=throughput impl=torch threads=N samples_per_s=X (from the median step time;
mean_samples_per_s = steps * batch / total time, comparable to fedtl's per-epoch figure).
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.A = nn.Parameter(torch.empty(rank, base.in_features).uniform_(
            -base.in_features ** -0.5, base.in_features ** -0.5))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + self.scale * F.linear(F.linear(x, self.A), self.B)


class LoRAConv2d(nn.Module):
    def __init__(self, base: nn.Conv2d, rank: int, alpha: float):
        super().__init__()
        self.base = base
        fan_in = base.in_channels * base.kernel_size[0] * base.kernel_size[1]
        self.A = nn.Parameter(torch.empty(rank, fan_in).uniform_(-fan_in ** -0.5, fan_in ** -0.5))
        self.B = nn.Parameter(torch.zeros(base.out_channels, rank))
        self.scale = alpha / rank

    def forward(self, x):
        w = self.base.weight + self.scale * (self.B @ self.A).view(self.base.weight.shape)
        return F.conv2d(x, w, self.base.bias, self.base.stride, self.base.padding)


def build(rank: int, alpha: float, classes: int) -> nn.Module:
    conv1 = nn.Conv2d(1, 16, 3, padding=1)
    conv2 = nn.Conv2d(16, 32, 3, padding=1)
    fc1 = nn.Linear(7 * 7 * 32, 128)
    for p in list(conv1.parameters()) + list(conv2.parameters()) + list(fc1.parameters()):
        p.requires_grad_(False)
    return nn.Sequential(
        conv1, nn.ReLU(), nn.MaxPool2d(2),
        LoRAConv2d(conv2, rank, alpha), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        LoRALinear(fc1, rank, alpha), nn.ReLU(),
        nn.Linear(128, classes))


def bench(threads: int, args) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = build(args.rank, args.alpha, args.classes)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    data = torch.rand(args.records, 1, 28, 28)
    labels = torch.randint(0, args.classes, (args.records,))
    mean, std = 0.5, 0.29
    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        idx = torch.randint(0, args.records, (args.batch,))
        x = (data[idx] - mean) / std
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    return (args.batch / statistics.median(times), args.batch / min(times),
            args.batch * len(times) / sum(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per thread count")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--records", type=int, default=6400)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=8.0)
    ap.add_argument("--classes", type=int, default=5)
    args = ap.parse_args()
    print(f"# torch {torch.__version__}, mkldnn={torch.backends.mkldnn.is_available()}, "
          f"interop_threads={torch.get_num_interop_threads()}", flush=True)
    for t in (int(s) for s in args.threads.split(",")):
        med, best, mean = bench(t, args)
        print(f"bench=throughput impl=torch threads={t} samples_per_s={med:.1f} "
              f"best_samples_per_s={best:.1f} mean_samples_per_s={mean:.1f} "
              f"steps={args.steps} batch={args.batch}", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Pretrain a torchvision network in PyTorch on some Fashion-MNIST classes and export it to ONNX,
as an organisation would make the base it brings to fedtl (`fedtl import`).

The network is torchvision's, with its first convolution taking one grey channel (the usual
change for MNIST-like data) and `--classes` outputs. Inputs are the raw pixels divided by 255
(so `fedtl import --mean 0 --std 255` gives fedtl the same input). Training is plain SGD with
momentum on a random subset; BatchNorm is trained, then folded by the exporter (eval mode).
Prints one progress line per epoch on stderr and a last JSON line on stdout:
{"onnx": PATH, "train_accuracy": A, "test_accuracy": T, "seconds": S}.
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

from idx import parse_classes, read_idx


def build(arch, classes):
    if arch == "resnet18":
        m = torchvision.models.resnet18(num_classes=classes)
        m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    elif arch == "mobilenet_v2":
        m = torchvision.models.mobilenet_v2(num_classes=classes)
        m.features[0][0] = nn.Conv2d(1, 32, kernel_size=3, stride=2, padding=1, bias=False)
    else:
        sys.exit(f"torch_pretrain.py: unknown --arch {arch} (resnet18, mobilenet_v2)")
    return m


def subset(images, labels, classes, n, rng):
    keep = np.nonzero(np.isin(labels, classes))[0]
    if n and n < len(keep):
        keep = rng.choice(keep, n, replace=False)
    remap = {c: i for i, c in enumerate(classes)}
    x = torch.from_numpy(images[keep].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.tensor([remap[int(c)] for c in labels[keep]])
    return x, y


def accuracy(m, x, y):
    m.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), 256):
            hits += (m(x[i:i + 256]).argmax(1) == y[i:i + 256]).sum().item()
    return hits / max(1, len(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--classes", default="0-4")
    ap.add_argument("--samples", type=int, default=10000, help="training records (0: all)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    classes = parse_classes(a.classes)
    d = a.data
    x, y = subset(read_idx(f"{d}/train-images-idx3-ubyte.gz"),
                  read_idx(f"{d}/train-labels-idx1-ubyte.gz"), classes, a.samples, rng)
    tx, ty = subset(read_idx(f"{d}/t10k-images-idx3-ubyte.gz"),
                    read_idx(f"{d}/t10k-labels-idx1-ubyte.gz"), classes, 0, rng)
    m = build(a.arch, len(classes))
    opt = torch.optim.SGD(m.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.epochs * (
        (len(x) + a.batch - 1) // a.batch))
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.time()
    for epoch in range(a.epochs):
        m.train()
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            loss = loss_fn(m(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"torch_pretrain: {a.arch} epoch {epoch + 1}/{a.epochs} loss {total / len(x):.4f} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    train_acc = accuracy(m, x, y)
    test_acc = accuracy(m, tx, ty)
    m.eval()
    torch.onnx.export(m, torch.zeros(1, 1, 28, 28), a.out, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(json.dumps({"onnx": a.out, "train_accuracy": train_acc, "test_accuracy": test_acc,
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()

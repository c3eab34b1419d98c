#!/usr/bin/python3
"""Write the first N records of some classes of an IDX images/labels pair twice: as raw
float32 pixels ([N, 1, H, W], little-endian, the values 0-255 as fedtl reads them) for ONNX
Runtime, and as a CSV (label, pixels) for fedtl. Usage: idx_slice.py IMAGES LABELS CLASSES N OUT
writes OUT.f32 and OUT.csv; CLASSES is 5-9 or 5,7."""
import gzip
import sys

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    images, labels, classes, n, out = sys.argv[1:]
    if "-" in classes:
        lo, hi = classes.split("-")
        keep = list(range(int(lo), int(hi) + 1))
    else:
        keep = [int(c) for c in classes.split(",")]
    x, y = read_idx(images), read_idx(labels)
    idx = np.nonzero(np.isin(y, keep))[0][:int(n)]
    x, y = x[idx], y[idx]
    x.astype("<f4").tofile(out + ".f32")
    with open(out + ".csv", "w") as f:
        for i in range(len(x)):
            f.write("%d,%s\n" % (y[i], ",".join(str(int(v)) for v in x[i].ravel())))
    print(len(x))


if __name__ == "__main__":
    main()

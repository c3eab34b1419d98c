#!/usr/bin/python3
"""Write the first N records of some classes of an IDX images/labels pair twice: as raw
float32 pixels ([N, 1, H, W], little-endian, the values 0-255 as fedtl reads them) for ONNX
Runtime, and as a CSV (label, pixels) for fedtl. Usage: idx_slice.py IMAGES LABELS CLASSES N OUT
writes OUT.f32 and OUT.csv; CLASSES is 5-9 or 5,7."""
import sys

import numpy as np

from idx import parse_classes, read_idx


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    images, labels, classes, n, out = sys.argv[1:]
    keep = parse_classes(classes)
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

"""IDX files (Fashion-MNIST's format) and class lists as fedtl's options write them, for the
Python peers of the tests and benchmarks."""
import gzip

import numpy as np


def read_idx(path):
    """The uint8 array of an IDX file, raw or gzip-compressed."""
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def parse_classes(text):
    """"0-4" or "3,5,7" as a list of labels."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(c) for c in text.split(",")]

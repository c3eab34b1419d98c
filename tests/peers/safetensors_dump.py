"""Read a safetensors file with json and struct alone (no safetensors package) and print it as
JSON: {name: {"dtype", "shape", "values"}} plus "__metadata__". Checks what a reader relies on:
the header length, the JSON header, float32 data whose offsets tile the data area in order.
Usage: python3 safetensors_dump.py adapter_model.safetensors"""
import json
import struct
import sys

def main(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    assert 8 + hlen <= len(blob), "header longer than the file"
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = blob[8 + hlen:]
    out = {"__metadata__": header.pop("__metadata__", None)}
    end = 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        assert t["dtype"] == "F32", t["dtype"]
        begin, stop = t["data_offsets"]
        assert begin == end, "a hole or an overlap before %s" % name
        count = 1
        for d in t["shape"]:
            count *= d
        assert stop - begin == 4 * count, "%s: %d bytes for %d floats" % (name, stop - begin, count)
        values = list(struct.unpack("<%df" % count, data[begin:stop]))
        out[name] = {"dtype": t["dtype"], "shape": t["shape"], "values": values}
        end = stop
    assert end == len(data), "data area of %d bytes, tensors end at %d" % (len(data), end)
    print(json.dumps(out))

if __name__ == "__main__":
    main(sys.argv[1])

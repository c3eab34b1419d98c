"""Check a PEFT LoRA export against the merged model with PyTorch: for each target module of
adapter_config.json, PEFT's forward (the base layer plus lora_B(lora_A(x)) * lora_alpha / r,
lora_A a conv with the base conv's stride, padding and dilation, lora_B a 1x1 conv; or two
Linear layers) must equal the layer with the merged weight. The weights come from the base and
merged ONNX files (onnx.numpy_helper), the LoRA tensors from adapter_model.safetensors read with
json and struct. Prints the largest relative difference; exits 1 above 1e-5.
Usage: python3 peft_torch_check.py base.onnx merged.onnx peft_dir"""
import json
import os
import struct
import sys

import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    header.pop("__metadata__", None)
    data = blob[8 + hlen:]
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        values = struct.unpack("<%df" % ((end - begin) // 4), data[begin:end])
        out[name] = torch.tensor(values, dtype=torch.float32).reshape(t["shape"])
    return out


def initializers(model):
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}


def node_reading(model, name):
    for node in model.graph.node:
        if len(node.input) > 1 and node.input[1] == name:
            return node, {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    raise SystemExit("no node reads %s" % name)


def main(base_path, merged_path, peft_dir):
    base, merged = onnx.load(base_path), onnx.load(merged_path)
    wb, wm = initializers(base), initializers(merged)
    lora = read_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        config = json.load(f)
    scale = config["lora_alpha"] / config["r"]
    torch.manual_seed(0)
    worst = 0.0
    for module in config["target_modules"]:
        weight = module + ".weight"
        node, attrs = node_reading(base, weight)
        mnode, _ = node_reading(merged, weight)
        a = lora["base_model.model.%s.lora_A.weight" % module]
        b = lora["base_model.model.%s.lora_B.weight" % module]
        w, w_merged = wb[weight], wm[mnode.input[1]]
        if node.op_type == "Conv":
            pads = attrs.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3], "PyTorch pads symmetrically"
            kw = dict(stride=tuple(attrs.get("strides", [1, 1])), padding=(pads[0], pads[1]),
                      dilation=tuple(attrs.get("dilations", [1, 1])))
            x = torch.randn(2, w.shape[1], 9, 9)
            peft = F.conv2d(x, w, **kw) + F.conv2d(F.conv2d(x, a, **kw), b) * scale
            ours = F.conv2d(x, w_merged, **kw)
        else:
            assert node.op_type == "Gemm" and attrs.get("transB", 0) == 1, node.op_type
            x = torch.randn(2, w.shape[1])
            peft = F.linear(x, w) + F.linear(F.linear(x, a), b) * scale
            ours = F.linear(x, w_merged)
        rel = ((peft - ours).abs().max() / peft.abs().max()).item()
        print("%s (%s): max relative difference %.3g" % (module, node.op_type, rel))
        worst = max(worst, rel)
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main(*sys.argv[1:4])

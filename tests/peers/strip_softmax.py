"""Write an ONNX model without its final Softmax, so that a runtime returns the logits that
fedtl computes (fedtl drops a final Softmax in favour of the loss).
Usage: strip_softmax.py in.onnx out.onnx"""
import sys

import onnx

model = onnx.load(sys.argv[1])
graph = model.graph
last = graph.node[-1]
if last.op_type != "Softmax" or last.output[0] != graph.output[0].name:
    sys.exit(f"{sys.argv[1]}: the last node is {last.op_type}, not the output's Softmax")
logits = last.input[0]
graph.node.remove(last)
del graph.output[:]
graph.output.append(onnx.helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None))
onnx.save(model, sys.argv[2])

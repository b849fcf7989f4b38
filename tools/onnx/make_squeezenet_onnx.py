#!/usr/bin/env python3
"""Builds an ONNX file of the real ImageNet-pretrained SqueezeNet 1.1 from the
per-layer .npy weights in the shared material (ONNX model zoo squeezenet1.1-7
tensors), and checks it with onnxruntime against the three reference sets.

    python3 tools/onnx/make_squeezenet_onnx.py [--weights DIR] [--opset N] [--out FILE]

The graph is torchvision's SqueezeNet 1.1: conv 3x3/2 -> relu -> maxpool
3x3/2 (ceil) -> 8 Fire modules (squeeze 1x1, expand 1x1 and 3x3, concat) with
two more pools -> dropout -> conv 1x1 (1000) -> relu -> global average pool ->
flatten. Initializers keep the file names (squeezenet0_conv<i>_weight/_bias).
Needs numpy and onnx (onnxruntime for the check; --no-check skips it).
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FIRES = [(64, 16, 64, 64), (128, 16, 64, 64), "pool", (128, 32, 128, 128), (256, 32, 128, 128), "pool",
         (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), (512, 64, 256, 256)]


def build(weights_dir, opset):
    nodes, inits = [], []
    conv_index = [0]

    def conv(x, kernel, stride=1, pad=0):
        i = conv_index[0]
        conv_index[0] += 1
        w = np.load(os.path.join(weights_dir, f"squeezenet0_conv{i}_weight.npy"))
        b = np.load(os.path.join(weights_dir, f"squeezenet0_conv{i}_bias.npy"))
        assert w.shape[2] == w.shape[3] == kernel, (i, w.shape, kernel)
        wn, bn = f"squeezenet0_conv{i}_weight", f"squeezenet0_conv{i}_bias"
        inits.append(numpy_helper.from_array(w.astype(np.float32), wn))
        inits.append(numpy_helper.from_array(b.astype(np.float32), bn))
        y = f"conv{i}"
        nodes.append(helper.make_node("Conv", [x, wn, bn], [y], name=y, kernel_shape=[kernel, kernel],
                                      strides=[stride, stride], pads=[pad] * 4))
        return y

    def relu(x):
        y = x + "_relu"
        nodes.append(helper.make_node("Relu", [x], [y], name=y))
        return y

    def pool(x, n):
        y = f"pool{n}"
        nodes.append(helper.make_node("MaxPool", [x], [y], name=y, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1))
        return y

    h = pool(relu(conv("data", 3, stride=2)), 0)
    for n, f in enumerate(FIRES):
        if f == "pool":
            h = pool(h, n)
            continue
        s = relu(conv(h, 1))
        e1, e3 = relu(conv(s, 1)), relu(conv(s, 3, pad=1))
        h = f"fire{n}_concat"
        nodes.append(helper.make_node("Concat", [e1, e3], [h], name=h, axis=1))
    nodes.append(helper.make_node("Dropout", [h], ["drop"], name="drop"))
    h = relu(conv("drop", 1))
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["logits"], name="flatten", axis=1))
    assert conv_index[0] == 26
    graph = helper.make_graph(nodes, "squeezenet1.1",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="graft")
    model.ir_version = 8 if opset <= 17 else 9
    onnx.checker.check_model(model)
    return model


def check(model_path, sets_dir):
    import onnxruntime as ort
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    worst = 0.0
    for k in range(3):
        d = os.path.join(sets_dir, f"test_data_set_{k}")
        x, ref = np.load(os.path.join(d, "input_0.npy")), np.load(os.path.join(d, "output_0.npy"))
        out = sess.run(None, {"data": x})[0]
        err = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
        worst = max(worst, err)
        print(f"reference set {k}: relative error {err:.2e}")
    if worst > 1e-4:
        sys.exit(f"onnxruntime does not reproduce the reference sets (worst {worst:.2e})")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_root = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "pretrained", "squeezenet1.1"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=os.path.join(default_root, "weights"))
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--out", default="squeezenet1.1.onnx")
    ap.add_argument("--no-check", action="store_true")
    a = ap.parse_args()
    if not 10 <= a.opset <= 24:
        ap.error("--opset must lie in 10..24 (MaxPool's ceil_mode arrived in opset 10)")
    model = build(a.weights, a.opset)
    tmp = a.out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, a.out)  # never a half-written file under the real name
    print(f"wrote {a.out} (opset {a.opset}, {sum(np.prod(t.dims) for t in model.graph.initializer)} parameters)")
    if not a.no_check:
        check(a.out, os.path.dirname(os.path.normpath(a.weights)))


if __name__ == "__main__":
    main()

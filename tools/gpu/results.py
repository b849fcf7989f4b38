#!/usr/bin/env python3
"""Turns bench_cuda's Google Benchmark JSON into the results format of
DESIGN.md ("Benchmark results: one format") and prints a short table.

  python3 tools/gpu/results.py --bench bench.json [--tests tests.json]
                               [--commit abc1234] [--out-dir bench/results]

- name: the benchmark's name without Google Benchmark's suffixes
  ("/manual_time", "/repeats:N" ..., and bare argument values after the
  three parts "<kernel>/<dtype>/<shape>" of bench/cuda/harness.h);
- value/unit: GB/s from bytes_per_second (set_bytes), TFLOP/s from the
  "flops" counter (set_flops), otherwise the time per iteration;
- ceilings: copy_GBps is the best "copy_d2d/..." result of the same run,
  bf16_gemm_TFLOPs the best "gemm_ceiling/bf16/..." one where present;
- fraction_of_ceiling: GB/s results over copy_GBps, bf16 TFLOP/s results
  over bf16_gemm_TFLOPs;
- baselines: "<name>@<baseline>" pairs with "<name>": baseline,
  baseline_value and ratio_vs_baseline (ours / theirs for throughput,
  theirs / ours for times: higher is better either way). A baseline without
  its pair stays a result of its own.
The file is bench/results/<device>-<yyyymmdd>-<commit>.json (device "h100"
from the GPU's name). A truncated JSON file (the program died half-way) is
repaired up to its last complete benchmark. Standard library only.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

SUFFIX = re.compile(r"^(manual_time|real_time|process_time|(iterations|repeats|threads|min_time|min_warmup_time):[^/]*)$")
ARG = re.compile(r"^-?\d+$")


def load_bench(path):
    text = open(path).read()
    try:
        return json.loads(text), False
    except json.JSONDecodeError:
        pass
    # Google Benchmark writes each run as it finishes, each object closing
    # with "\n    }": keep the complete ones.
    cut = text.rfind("\n    }")
    if cut < 0 or '"benchmarks"' not in text:
        start = text.find('"context"')
        ctx = {}
        if start >= 0:
            end = text.find("\n  },", start)
            if end >= 0:
                try:
                    ctx = json.loads("{" + text[start:end + 4] + "}")["context"]
                except json.JSONDecodeError:
                    pass
        return {"context": ctx, "benchmarks": []}, True
    return json.loads(text[:cut + 6] + "\n  ]\n}\n"), True


def clean_name(name):
    """Drops Google Benchmark's suffixes; bare numbers (Arg values) only past "<kernel>/<dtype>/<shape>"."""
    parts = name.split("/")
    while len(parts) > 1 and (SUFFIX.match(parts[-1]) or (len(parts) > 3 and ARG.match(parts[-1]))):
        parts.pop()
    return "/".join(parts)


def to_result(b):
    if "error_occurred" in b and b["error_occurred"]:
        return None
    if b.get("bytes_per_second"):
        return b["bytes_per_second"] / 1e9, "GB/s"
    if b.get("flops"):
        return b["flops"] / 1e12, "TFLOP/s"
    unit = b.get("time_unit", "ns")
    return b.get("real_time", 0.0), {"us": "us", "ms": "ms", "s": "s", "ns": "ns"}.get(unit, unit)


def pick_runs(benchmarks):
    """One run per name: the median aggregate where repetitions ran, else the (last) iteration run."""
    chosen = {}
    order = []
    for b in benchmarks:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = clean_name(b.get("run_name") or b["name"])
        if name not in chosen:
            order.append(name)
        if name in chosen and chosen[name].get("run_type") == "aggregate":
            continue
        chosen[name] = b
    return [(n, chosen[n]) for n in order]


def device_slug(name):
    m = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Z]?)\b", name or "")
    if m:
        return m.group(1).lower()
    s = re.sub(r"[^a-z0-9]+", "-", (name or "gpu").lower()).strip("-")
    return s or "gpu"


def find_commit(explicit, repo):
    if explicit:
        return explicit
    if os.environ.get("GRAFT_COMMIT"):
        return os.environ["GRAFT_COMMIT"].strip()
    try:
        out = subprocess.run(["git", "-C", repo, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    f = os.path.join(repo, ".gbench", "commit")
    if os.path.exists(f):
        return open(f).read().strip() or "unknown"
    return "unknown"


def test_counts(path):
    if not path or not os.path.exists(path):
        return None
    try:
        data = json.load(open(path))
    except (OSError, json.JSONDecodeError):
        return {"passed": 0, "failed": 0, "skipped": 0, "failed_names": [], "note": "unreadable report"}
    passed = failed = skipped = 0
    failed_names = []
    for suite in data.get("testsuites", []):
        for t in suite.get("testsuite", []):
            if t.get("failures"):
                failed += 1
                failed_names.append(suite.get("name", "?") + "." + t.get("name", "?"))
            elif t.get("result") == "SKIPPED":
                skipped += 1
            else:
                passed += 1
    return {"passed": passed, "failed": failed, "skipped": skipped, "failed_names": failed_names}


def build(bench, commit):
    ctx = bench.get("context", {})
    runs = []
    for name, b in pick_runs(bench.get("benchmarks", [])):
        r = to_result(b)
        if r is None:
            runs.append({"name": name, "value": None, "unit": "error", "error": b.get("error_message", "")})
            continue
        runs.append({"name": name, "value": round(r[0], 4), "unit": r[1]})

    ceilings = {}
    copies = [r["value"] for r in runs if r["name"].startswith("copy_d2d/") and r["unit"] == "GB/s"]
    if copies:
        ceilings["copy_GBps"] = round(max(copies), 1)
    gemms = [r["value"] for r in runs if r["name"].startswith("gemm_ceiling/bf16/") and r["unit"] == "TFLOP/s"]
    if gemms:
        ceilings["bf16_gemm_TFLOPs"] = round(max(gemms), 1)

    by_name = {r["name"]: r for r in runs}
    paired = set()
    results = []
    for r in runs:
        if "@" in r["name"]:
            continue
        out = dict(r)
        if r["value"] is not None:
            if r["unit"] == "GB/s" and "copy_GBps" in ceilings:
                out["fraction_of_ceiling"] = round(r["value"] / ceilings["copy_GBps"], 3)
            elif r["unit"] == "TFLOP/s" and "bf16_gemm_TFLOPs" in ceilings and "/bf16/" in "/" + r["name"] + "/":
                out["fraction_of_ceiling"] = round(r["value"] / ceilings["bf16_gemm_TFLOPs"], 3)
        for other in runs:
            if other["name"].startswith(r["name"] + "@"):
                paired.add(other["name"])
                if "baseline" in out:
                    continue  # the first baseline listed is the one compared
                out["baseline"] = other["name"].split("@", 1)[1]
                out["baseline_value"] = other["value"]
                if r["value"] and other["value"] and other["unit"] == r["unit"]:
                    throughput = r["unit"] in ("GB/s", "TFLOP/s")
                    ratio = r["value"] / other["value"] if throughput else other["value"] / r["value"]
                    out["ratio_vs_baseline"] = round(ratio, 3)
        results.append(out)
    for r in runs:  # baselines without their pair
        if "@" in r["name"] and r["name"] not in paired:
            results.append(dict(r))

    now = datetime.datetime.now(datetime.timezone.utc)
    doc = {
        "device": ctx.get("gpu_name", "unknown GPU"),
        "commit": commit,
        "date": now.strftime("%Y-%m-%d"),
        "ceilings": ceilings,
        "context": {k: ctx[k] for k in ("gpu_sms", "gpu_cc", "gpu_l2_bytes", "cuda_runtime", "cuda_driver", "cudnn",
                                         "host_name", "num_cpus") if k in ctx},
        "results": results,
    }
    if bench.get("graft_failed"):  # tools/gpu/run_bench.py: benchmarks that died or did not run
        doc["failed"] = bench["graft_failed"]
    return doc, now


def fmt(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"


def print_table(doc, tests, truncated):
    res = doc["results"] if doc else []
    if res:
        w = max(30, min(60, max(len(r["name"]) for r in res)))
        print(f"\n{'name':<{w}} {'value':>10} {'unit':<8} {'of ceiling':>10} {'vs baseline':>12}")
        for r in res:
            base = ""
            if "ratio_vs_baseline" in r:
                base = f"{r['ratio_vs_baseline']:.2f} {r['baseline']}"
            elif "baseline" in r:
                base = f"? {r['baseline']}"
            print(f"{r['name'][:w]:<{w}} {fmt(r['value'], 1):>10} {r['unit']:<8} "
                  f"{fmt(r.get('fraction_of_ceiling'), 2):>10} {base:>12}")
        print("ceilings: " + (", ".join(f"{k} {v}" for k, v in doc["ceilings"].items()) or "none measured"))
        for f in doc.get("failed", [])[:20]:
            print(f"FAILED benchmark {clean_name(f['name'])}: {f['reason']}")
        if truncated:
            print("NOTE: the benchmark JSON was truncated (bench_cuda died or was stopped): results above are partial")
    else:
        print("\nno benchmark results" + (" (the JSON was truncated before the first benchmark)" if truncated else ""))
    if tests is None:
        print("tests: no report")
    else:
        print(f"tests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped")
        for n in tests["failed_names"][:20]:
            print(f"  FAILED {n}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", help="Google Benchmark JSON from bench_cuda")
    ap.add_argument("--extra", action="append", default=[],
                    help="more benchmark JSON in the same format (e.g. PyTorch baselines measured by a script); "
                         "its runs join bench_cuda's, so '<name>@torch_sdpa' pairs with '<name>'")
    ap.add_argument("--tests", help="GoogleTest JSON report from graft_tests_cuda (for the table)")
    ap.add_argument("--commit", help="short commit (default: GRAFT_COMMIT, git, .gbench/commit)")
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--out-dir", help="where the results file goes (default: <repo>/bench/results)")
    args = ap.parse_args()

    tests = test_counts(args.tests)
    doc, truncated, path = None, False, None
    if args.bench and os.path.exists(args.bench) and os.path.getsize(args.bench) > 0:
        bench, truncated = load_bench(args.bench)
        for extra in args.extra:
            if os.path.exists(extra) and os.path.getsize(extra) > 0:
                more, _ = load_bench(extra)
                bench.setdefault("benchmarks", []).extend(more.get("benchmarks", []))
        doc, now = build(bench, find_commit(args.commit, args.repo))
        if tests is not None:
            doc["tests"] = {k: tests[k] for k in ("passed", "failed", "skipped")}
        if doc["results"] or doc.get("failed"):
            out_dir = args.out_dir or os.path.join(args.repo, "bench", "results")
            os.makedirs(out_dir, exist_ok=True)
            path = os.path.join(out_dir, f"{device_slug(doc['device'])}-{now.strftime('%Y%m%d')}-{doc['commit']}.json")
            with open(path, "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
    print_table(doc, tests, truncated)
    if path:
        print(f"results: {os.path.normpath(path)}")
        print(f"RESULTS_FILE={os.path.normpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

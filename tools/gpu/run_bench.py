#!/usr/bin/env python3
"""Runs bench_cuda so that one failing benchmark does not lose the others.

  python3 tools/gpu/run_bench.py BENCH_CUDA --out bench.json --log bench.log
                                 [--min-time 0.05] [--filter REGEX] [--timeout 240]

bench_cuda stops at the first CUDA error (bench/cuda/harness.h exits), and a
kernel fault poisons the process's CUDA context anyway. So: list the
benchmarks, run them all in one process; if it dies, note the benchmark it
died in (the first one listed that has no result), and run the rest in a fresh
process, until none are left or the time is spent. The JSON of every run is
merged into --out (the first run's context), with a "graft_failed" list of
{name, reason}. Baselines and ceilings stay in the same process as the
results they pair with unless a crash splits them. Exit status: 0 when every
benchmark ran, 1 otherwise, 2 when nothing could be run. Standard library only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ERE_META = set(".[]()*+?{}|^$\\")


def ere_escape(s):
    return "".join("\\" + c if c in ERE_META else c for c in s)


def load_partial(path):
    """The benchmarks a (possibly truncated) Google Benchmark JSON holds."""
    if not os.path.exists(path):
        return None, []
    text = open(path).read()
    try:
        doc = json.loads(text)
        return doc.get("context"), doc.get("benchmarks", [])
    except json.JSONDecodeError:
        pass
    cut = text.rfind("\n    }")
    ctx = None
    s = text.find('"context"')
    if s >= 0:
        e = text.find("\n  },", s)
        if e >= 0:
            try:
                ctx = json.loads("{" + text[s:e + 4] + "}")["context"]
            except json.JSONDecodeError:
                ctx = None
    if cut < 0 or '"benchmarks"' not in text:
        return ctx, []
    try:
        return ctx, json.loads(text[:cut + 6] + "\n  ]\n}\n").get("benchmarks", [])
    except json.JSONDecodeError:
        return ctx, []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--min-time", default="0.05")
    ap.add_argument("--filter", default=".")
    ap.add_argument("--timeout", type=float, default=240.0)
    ap.add_argument("--max-restarts", type=int, default=8)
    a = ap.parse_args()

    deadline = time.monotonic() + a.timeout
    log = open(a.log, "w")
    listed = subprocess.run([a.bench, "--benchmark_list_tests=true", f"--benchmark_filter={a.filter}"],
                            capture_output=True, text=True, timeout=60)
    log.write(listed.stdout + listed.stderr)
    if "no usable GPU" in listed.stdout:
        print(listed.stdout.strip())
        return 0
    if listed.returncode != 0:
        print(f"run_bench: bench_cuda --benchmark_list_tests failed (exit {listed.returncode}):\n{listed.stderr[-2000:]}")
        return 2
    names = [l.strip() for l in listed.stdout.splitlines() if l.strip()]
    print(f"run_bench: {len(names)} benchmarks")

    context, results, failed = None, [], []
    remaining = list(names)
    run = 0
    while remaining and run <= a.max_restarts:
        left = deadline - time.monotonic()
        if left < 5:
            failed += [{"name": n, "reason": "not run: the time for benchmarks was spent"} for n in remaining]
            break
        part = f"{a.out}.part{run}"
        if os.path.exists(part):
            os.remove(part)
        flt = a.filter if run == 0 else "^(" + "|".join(ere_escape(n) for n in remaining) + ")$"
        cmd = [a.bench, f"--benchmark_filter={flt}", f"--benchmark_min_time={a.min_time}",
               f"--benchmark_out={part}", "--benchmark_out_format=json"]
        if shutil.which("stdbuf"):  # line-buffered console: every finished benchmark is in the log if it dies
            cmd = ["stdbuf", "-oL", "-eL"] + cmd
        log.write(f"\n==== run {run}: {len(remaining)} benchmarks\n")
        log.flush()
        console = part + ".log"
        try:
            with open(console, "w") as out:
                rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=left).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        text = open(console).read()
        log.write(text)
        log.flush()
        ctx, got = load_partial(part)
        context = context or ctx
        results += got
        in_json = {b.get("run_name") or b.get("name") for b in got}
        # The console names every benchmark that finished (the JSON file's
        # buffer may be lost when the program exits early).
        finished = {line.split()[0] for line in text.splitlines() if line.strip()} & set(remaining)
        if rc == 0 and all(n in in_json for n in remaining):
            remaining = []
            break
        unfinished = [n for n in remaining if n not in finished and n not in in_json]
        if not unfinished:  # died after the last one finished
            failed.append({"name": "(after the last benchmark)", "reason": f"bench_cuda exit status {rc}"})
            remaining = [n for n in remaining if n not in in_json]  # finished but lost from the JSON: again
            run += 1
            if not remaining:
                break
            continue
        culprit = unfinished[0]
        remaining = [n for n in remaining if n not in in_json and n != culprit]
        errors = [l.strip() for l in text.splitlines() if "error" in l.lower()]
        reason = ("stopped: the time for benchmarks was spent" if rc == "timeout" else
                  f"bench_cuda died in it (exit status {rc})" + (f": {errors[-1][:300]}" if errors else ""))
        failed.append({"name": culprit, "reason": reason})
        print(f"run_bench: FAILED {culprit}: {reason}; {len(remaining)} left")
        if rc == "timeout":
            failed += [{"name": n, "reason": "not run: the time for benchmarks was spent"} for n in remaining]
            remaining = []
            break
        run += 1
    if remaining:
        failed += [{"name": n, "reason": "not run: too many restarts"} for n in remaining]

    with open(a.out, "w") as f:
        json.dump({"context": context or {}, "benchmarks": results, "graft_failed": failed}, f, indent=2)
    print(f"run_bench: {len({b.get('run_name') or b.get('name') for b in results})} of {len(names)} benchmarks ran"
          + (f", {len(failed)} failed or not run" if failed else ""))
    for x in failed[:20]:
        print(f"  FAILED {x['name']}: {x['reason']}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

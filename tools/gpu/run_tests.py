#!/usr/bin/env python3
"""Runs graft_tests_cuda so that a test that crashes or hangs the program does
not hide the tests after it.

  python3 tools/gpu/run_tests.py TESTS --out tests.json --log tests.log
                                 [--filter GTEST_FILTER] [--timeout 300]

Runs the program with --gtest_output=json. If it dies (signal, abort, or past
the time left), the test it died in is the last "[ RUN      ]" without an
end line; it counts as failed, and the program runs again without it and
without the tests already done. The GoogleTest JSON reports are merged into
--out (their "testsuites"; a crashed test gets a failure saying how it died).
Exit status: 0 when every test passed or skipped, 1 otherwise. Standard library only.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

RUN = re.compile(r"^\[ RUN      \] (\S+)")
END = re.compile(r"^\[ +(OK|FAILED|SKIPPED) +\] (\S+?)(?: \(| ?$)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tests")
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--filter", default="*")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--max-restarts", type=int, default=10)
    a = ap.parse_args()

    deadline = time.monotonic() + a.timeout
    log = open(a.log, "w")
    suites, excluded, crashed = [], [], []
    status = 0
    for run in range(a.max_restarts + 1):
        left = deadline - time.monotonic()
        if left < 5:
            crashed.append(("(the tests not yet run)", "not run: the time for tests was spent"))
            break
        part = f"{a.out}.part{run}"
        if os.path.exists(part):
            os.remove(part)
        flt = a.filter + ("-" + ":".join(excluded) if excluded else "")
        if excluded and "-" in a.filter:  # gtest takes one negative section: join them
            flt = a.filter + ":" + ":".join(excluded)
        log.write(f"\n==== run {run}: --gtest_filter={flt[:300]}{'...' if len(flt) > 300 else ''}\n")
        log.flush()
        console = part + ".log"
        try:
            with open(console, "w") as out:
                rc = subprocess.run([a.tests, f"--gtest_filter={flt}", f"--gtest_output=json:{part}"],
                                    stdout=out, stderr=subprocess.STDOUT, timeout=left).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        text = open(console, errors="replace").read()
        log.write(text)
        log.flush()
        if os.path.exists(part):
            try:
                suites += json.load(open(part)).get("testsuites", [])
            except (OSError, json.JSONDecodeError):
                pass
        if rc in (0, 1) and os.path.exists(part):  # finished: 1 = some test failed
            status = max(status, rc)
            break
        # Died: find the test it died in, and the tests that ended before it.
        started, ended = [], set()
        for line in text.splitlines():
            m = RUN.match(line)
            if m:
                started.append(m.group(1))
                continue
            m = END.match(line)
            if m:
                ended.add(m.group(2))
        open_tests = [t for t in started if t not in ended]
        how = "ran past the time left and was stopped" if rc == "timeout" else f"the program died in it (exit status {rc})"
        if not open_tests:
            crashed.append(("(outside any test)", how))
            break
        culprit = open_tests[-1]
        crashed.append((culprit, how))
        print(f"run_tests: CRASHED {culprit}: {how}; running the rest")
        # The tests that ended are in no JSON (the program died before writing it): record them from the log.
        done = []
        for line in text.splitlines():
            m = END.match(line)
            if m and m.group(2) in started:
                done.append(m.group(2))
                suite, name = m.group(2).split(".", 1)
                entry = {"name": name, "result": "SKIPPED" if m.group(1) == "SKIPPED" else "COMPLETED"}
                if m.group(1) == "FAILED":
                    entry["failures"] = [{"failure": "failed (see the log)"}]
                suites.append({"name": suite, "testsuite": [entry]})
        excluded += done + [culprit]
        if rc == "timeout":
            crashed.append(("(the tests after it)", "not run: the time for tests was spent"))
            break
    for name, how in crashed:
        suite, _, test = name.partition(".")
        suites.append({"name": suite, "testsuite": [{"name": test or name, "result": "COMPLETED",
                                                      "failures": [{"failure": how}]}]})
    if crashed:
        status = 1
    with open(a.out, "w") as f:
        json.dump({"testsuites": suites}, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())

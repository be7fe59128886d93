"""Benchmark: Hermite coefficients of every registered activation (+ "step").

Targets: all activations to order 20 in under COLD_TARGET_S cold (empty
cache, fresh process) and under WARM_TARGET_S warm.

    python benchmarks/bench_hermite.py [--order 20] [--exact]

Uses a private temporary cache folder (RFTHEORY_CACHE_DIR), so the user's
cache is neither read nor touched.  Prints

* import time of rftheory.theory.hermite;
* cold: first computation of all activations (empty memory and disk cache;
  includes the lazy scipy/mpmath imports the computation triggers);
* warm: the same calls again in the same process (memory cache), best of 20;
* disk-warm: the same calls in a fresh process that finds the JSON cache;

and PASS/FAIL against the two targets.  Exit status 0 on PASS.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

COLD_TARGET_S = 5.0  # a first `rftheory hermite` call, imports included, stays interactive
WARM_TARGET_S = 0.010  # cached calls must be negligible inside loops over activations and orders

_DISK_SNIPPET = """
import time, sys
t0 = time.perf_counter()
from rftheory.theory.hermite import hermite_coefficients
from rftheory.models.activations import known_activations
t1 = time.perf_counter()
for name in known_activations() + ["step"]:
    hermite_coefficients(name, {order}, exact={exact})
t2 = time.perf_counter()
print(f"{{t1 - t0:.6f}} {{t2 - t1:.6f}}")
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", type=int, default=20)
    ap.add_argument("--exact", action="store_true", help="time the exact (SymPy) path instead (no target)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rftheory-bench-") as tmp:
        os.environ["RFTHEORY_CACHE_DIR"] = tmp
        t0 = time.perf_counter()
        from rftheory.models.activations import known_activations  # noqa: PLC0415
        from rftheory.theory.hermite import clear_cache, hermite_coefficients  # noqa: PLC0415

        t_import = time.perf_counter() - t0
        clear_cache(disk=True)
        names = known_activations() + ["step"]

        per = {}
        t0 = time.perf_counter()
        for name in names:
            t1 = time.perf_counter()
            hermite_coefficients(name, args.order, exact=args.exact)
            per[name] = time.perf_counter() - t1
        t_cold = time.perf_counter() - t0

        warm = []
        for _ in range(20):
            t0 = time.perf_counter()
            for name in names:
                hermite_coefficients(name, args.order, exact=args.exact)
            warm.append(time.perf_counter() - t0)
        t_warm = min(warm)

        snippet = _DISK_SNIPPET.format(order=args.order, exact=args.exact)
        proc = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode == 0:
            disk_import, disk_calls = (float(v) for v in proc.stdout.split())
            disk_line = f"{disk_calls * 1e3:8.2f} ms  (fresh process reading the JSON cache; its import {disk_import:.3f} s)"
        else:
            disk_line = "failed: " + proc.stderr.strip().splitlines()[-1]

    print(f"Hermite coefficients, order {args.order}, exact={args.exact}, {len(names)} activations, "
          f"{os.cpu_count()} CPU(s) visible")
    for name in names:
        print(f"  {name:<12} cold {per[name] * 1e3:9.2f} ms")
    print(f"import rftheory.theory.hermite : {t_import:8.3f} s")
    print(f"cold (all, empty cache) : {t_cold:8.3f} s   target < {COLD_TARGET_S:g} s")
    print(f"cold incl. import       : {t_cold + t_import:8.3f} s")
    print(f"warm (all, memory)      : {t_warm * 1e3:8.3f} ms  target < {WARM_TARGET_S * 1e3:g} ms (best of 20)")
    print(f"disk-warm (all)         : {disk_line}")
    if args.exact:
        print("(no targets for the exact path)")
        return 0
    ok_cold = t_cold + t_import < COLD_TARGET_S
    ok_warm = t_warm < WARM_TARGET_S
    print(f"cold:  {'PASS' if ok_cold else 'FAIL'}")
    print(f"warm:  {'PASS' if ok_warm else 'FAIL'}")
    return 0 if ok_cold and ok_warm else 1


if __name__ == "__main__":
    sys.exit(main())

"""The engine's threads: atomic counters, helper hand-off, the bell, BLAS pinning, and its one door."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from rftheory._engine import kernels
from rftheory.attack.loss import projection_loss
from rftheory._engine.panel import (
    panel_kernels_available,
)
from rftheory._engine import make_loss, sum_of_squares
from rftheory.attack.reconstruct import random_sphere
from _panel_ref import _model, engine_loss, needs_numba


@needs_numba
def test_atomic_counters_count_every_increment_across_threads():
    import threading

    from numba import njit

    from rftheory._engine.spin import atomic_add, atomic_load, atomic_store, cpu_relax, yield_processor

    @njit(nogil=True)
    def hammer(ctl, times):
        for _ in range(times):
            atomic_add(ctl, 0, 1)
            cpu_relax()
        yield_processor()
        atomic_store(ctl, 1, 7)
        return atomic_load(ctl, 1)

    ctl = np.zeros(2, np.int64)
    threads = [threading.Thread(target=hammer, args=(ctl, 50_000)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ctl[0] == 200_000 and ctl[1] == 7  # a lost update would leave fewer


def _evaluation_arguments(monkeypatch, model, X):
    """Run one two-thread evaluation whose helper does nothing; return (result, the shared arguments)."""
    from rftheory._engine import panel_loss

    seen = []
    def post(args, errors, wanted):
        seen.append(args)
        return np.zeros(panel_loss.CONTROLS, np.int64)  # the bell nobody listens to

    monkeypatch.setattr(panel_loss, "_share_with_helpers", post)
    res = engine_loss(model, X, threads=2)
    monkeypatch.undo()
    return res, seen[0]


@needs_numba
def test_a_late_helper_finds_nothing_to_do_and_the_lead_stops_on_abort(monkeypatch):
    from rftheory._engine import panel_loss

    model = _model(5000, 30)
    X = random_sphere(7, 30, np.random.default_rng(9), np, np.float32)
    res, args = _evaluation_arguments(monkeypatch, model, X)
    ref = projection_loss(X, model.theta, model)
    assert res[0] == ref.loss and np.array_equal(res[1], ref.grad)  # the lead did every piece alone
    G, ctl = args[0].G, args[-1]  # args = (workspace, with_grad, ctl)
    before = G.copy()
    assert panel_loss._evaluation_share(*args, False) == 1  # arrives after the work: claims nothing
    assert np.array_equal(G, before)
    # a helper that claimed piece 0 and died: without the abort flag the lead would wait forever
    ctl[:] = 0
    ctl[panel_loss.CLAIM_1] = 1
    ctl[panel_loss.ABORT] = 1
    assert panel_loss._evaluation_share(*args, True) == -1


def test_a_failing_helper_raises_the_abort_flag_and_its_error(monkeypatch):
    import time

    from rftheory._engine import panel_loss

    def share(*args):  # the lead: waits for the abort flag, as the compiled lead does
        while not args[-2][panel_loss.ABORT]:
            time.sleep(1e-3)
        return -1

    def share_then_wait(*args):  # a helper
        raise ValueError("helper failed")

    def lead(X_rows, tangent, theta_sq, bell, *args):
        return share(*args, True), None, None, None

    monkeypatch.setattr(panel_loss, "_share_then_wait", share_then_wait)
    monkeypatch.setattr(panel_loss, "_lead", lead)
    ctl = np.zeros(panel_loss.CONTROLS, np.int64)
    errors = []
    assert panel_loss._helper((None, ctl), errors, 1, np.zeros(panel_loss.CONTROLS, np.int64)) is False
    assert ctl[panel_loss.ABORT] == 1 and isinstance(errors[0], ValueError)
    if panel_kernels_available():
        model = _model(5000, 30)
        X = random_sphere(7, 30, np.random.default_rng(9), np, np.float32)
        with pytest.raises(ValueError, match="helper failed"):
            engine_loss(model, X, threads=2)


@needs_numba
def test_await_bell_returns_on_a_ring_or_after_its_spins():
    import threading
    import time

    from rftheory._engine import panel_loss

    bell = np.zeros(panel_loss.CONTROLS, np.int64)
    bell[0] = 5
    assert panel_loss._await_bell(bell, 4, 0)  # already past: no spin needed
    assert not panel_loss._await_bell(bell, 5, 100)  # nobody rings: gives up
    from numba import njit

    from rftheory._engine.spin import atomic_add

    @njit(nogil=True)
    def ring(bell):
        atomic_add(bell, 0, 1)

    ring(np.zeros(1, np.int64))  # compiled before the clock starts
    ringer = threading.Thread(target=lambda: (time.sleep(0.05), ring(bell)))
    ringer.start()
    assert panel_loss._await_bell(bell, 5, 1 << 40)  # a ring from another thread ends the spin
    ringer.join()
    assert bell[0] == 6


@needs_numba
def test_consecutive_two_thread_evaluations_ring_the_bell_and_agree():
    """Back-to-back evaluations (the attack's loop, where the helper spins between them): each
    rings the helpers' bell once and every result is bitwise the one-thread one."""
    from rftheory._engine import panel_loss

    model = _model(20000, 100)
    X = random_sphere(20, 100, np.random.default_rng(4), np, np.float32)
    ref = engine_loss(model, X, threads=1)
    theta = np.asarray(model.theta, np.float64)
    evaluate = make_loss(model, theta, sum_of_squares(theta), threads=2)
    evaluate(X[None], True)
    before = int(panel_loss._HELPERS.bell[0])
    for _ in range(20):
        loss, grad, alpha = evaluate(X[None], True)
        assert loss[0] == ref[0] and np.array_equal(grad[0], ref[1]) and np.array_equal(alpha[0], ref[2])
    assert panel_loss._HELPERS.bell[0] == before + 20


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("panel_on", [True, False])
@pytest.mark.parametrize("p", [400, 12000])
def test_nothing_stays_pinned_after_the_attack(panel_on, p, monkeypatch):
    """The loss pins BLAS per evaluation only (small problems and the panel kernels): after reconstruct
    the BLAS limits are what they were, on both paths and either side of SMALL_PROBLEM_FLOPS."""
    from rftheory.attack.reconstruct import reconstruct

    monkeypatch.setitem(kernels.NUMBA_DEFAULT, "panel", panel_on)
    model = _model(p, 60, dtype=np.float64)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        # tol 0: never at tol, so re-seeding runs; strategy "restarts" keeps the global moves out of a thread test
        reconstruct(model.theta, model, 8, restarts=2, max_iter=5, reseed=True, tol=0.0, seed=4, strategy="restarts")
        assert _blas_threads() == before == [2] * len(before)
    before = _blas_threads()
    reconstruct(model.theta, model, 8, restarts=1, max_iter=3, tol=0.0, seed=1, strategy="restarts")
    assert _blas_threads() == before


def test_blas_path_runs_small_problems_on_one_blas_thread(monkeypatch):
    """σ sees BLAS at one thread inside a small BLAS-path evaluation, at the limit as set in a large one."""
    from rftheory._engine.threads import blas_limit
    from rftheory.models.activations import Activation

    seen = []

    def relu(z):
        seen.append(blas_limit())
        return np.maximum(z, 0)

    probe = Activation("probe", relu, lambda z: (z > 0).astype(z.dtype))
    with threadpool_limits(limits=2, user_api="blas"):
        for p, expected in ((300, 1), (30000, 2)):  # 4·n̂·d·p below and above SMALL_PROBLEM_FLOPS
            model = _model(p, 40, dtype=np.float32)
            model.activation = probe
            seen.clear()
            projection_loss(random_sphere(5, 40, np.random.default_rng(0), np, np.float32), model.theta, model)
            assert seen and set(seen) == {expected}
        assert _blas_threads() == [2] * len(_blas_threads())


def test_serial_blas_is_counted_across_threads():
    """The pin is process-wide, so overlapping users share it: the last one out restores the limits."""
    from rftheory._engine.threads import serial_blas

    with threadpool_limits(limits=2, user_api="blas"):
        with serial_blas:
            assert set(_blas_threads()) == {1}
            with serial_blas:  # re-entrant
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


def test_the_engine_has_one_door_and_no_import_cycle():
    """Only rftheory/attack/loss.py imports rftheory._engine; the σ kernel and the panel kernels share
    their constants through _engine.tanh and _engine.target, not through each other."""
    import ast
    from pathlib import Path

    import rftheory

    root = Path(rftheory.__file__).parent
    importers = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] == "_engine":
            continue
        package = (rftheory.__name__,) + rel.parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else ()
                name = ".".join(base + ((node.module,) if node.module else ()))
                names = [name] + [f"{name}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == "rftheory._engine" or n.startswith("rftheory._engine.") for n in names):
                importers.add(str(rel))
    assert importers == {"attack/loss.py"}
    code = ("import sys, rftheory._engine.kernels as k; assert 'rftheory._engine.panel' not in sys.modules; "
            "import rftheory._engine.panel; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]

"""Fuzzing the CLI's numeric options (hypothesis): whatever the values, every run ends in success
(exit 0, or 1 for `check` when a check fails) or in exit 2 with a one-line message on stderr —
never another exception, never a hang.

Each option is absent, a small valid value (so that accepted runs are tiny), or a hostile text
(negative, zero, NaN, ±inf, overflowing, huge, non-integral, not a number).  Every example runs
in-process (rftheory.cli.main) under an alarm of ALARM_S seconds.  The fast suite runs a fixed,
derandomised set of examples; the slow one a larger random search.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rftheory.cli import main  # noqa: E402

ALARM_S = 30
HOSTILE = ["-1", "0", "-0", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e308", "1e12", "1e30", "2.5", "1e-320",
           "99999999999999999999999999", "abc", "", " ", "[]", "0x10", "1e", "--", "3e0", "+2"]


def _ints(lo, hi):
    return st.integers(lo, hi).map(str)


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(repr)


# per command: the base argv (a tiny run; the defaults of --ratio keep p small for these n and d) and, per numeric option, the strategy of its valid values
COMMANDS = {
    "reconstruct": (["reconstruct", "--n", "2", "--d", "3", "--restarts", "1", "--max-iter", "5"], {
        "--n": _ints(1, 3), "--d": _ints(1, 4), "--p": _ints(1, 40), "--ratio": _floats(0.05, 4.0),
        "--seed": _ints(0, 3), "--restarts": _ints(1, 2), "--max-iter": _ints(1, 20), "--tol": _floats(0, 1),
        "--lr": _floats(1e-3, 1e3), "--momentum": _floats(0, 0.99), "--threshold": _floats(1e-3, 1),
        "--reseed-candidates": _ints(1, 8), "--n-guess": _ints(1, 3)}),
    "check": (["check", "--n", "2", "--d", "3", "--starts", "2", "--max-iter", "5", "--order", "4"], {
        "--n": _ints(1, 3), "--d": _ints(1, 4), "--p": _ints(1, 40), "--ratio": _floats(0.05, 4.0),
        "--seed": _ints(0, 3), "--delta": _floats(0.01, 1.4), "--eps": _floats(0.01, 1.4), "--starts": _ints(1, 3),
        "--max-iter": _ints(1, 10), "--order": _ints(1, 6)}),
    "signs": (["signs", "relu", "--n", "3", "--d", "4", "--points", "3", "--flips", "1",
               "--samples", "1", "--order", "4"], {
        "--n": _ints(1, 4), "--d": _ints(1, 5), "--p": _ints(1, 60), "--ratio": _floats(0.05, 5.0),
        "--seed": _ints(0, 3), "--v-seed": _ints(0, 3), "--order": _ints(0, 6), "--tol": _floats(0, 1),
        "--rtol": _floats(1e-12, 1), "--flips": _ints(1, 2), "--points": _ints(2, 4), "--samples": _ints(1, 3)}),
    "hermite": (["hermite", "relu", "--order", "3", "--no-cache"], {
        "--order": _ints(0, 6), "--tol": _floats(0, 1), "--dps": _ints(5, 20), "--timeout": _floats(0.1, 5)}),
    "law": (["law", "--sizes", "2x3", "--ratios", "3", "--seeds", "0", "--restarts", "1", "--max-iter", "5",
             "--n-boot", "5", "--workers", "1", "--no-progress"], {
        "--ratios": _floats(0.05, 4.0), "--seeds": _ints(0, 3), "--restarts": _ints(1, 2),
        "--max-iter": _ints(1, 10), "--threshold": _floats(1e-3, 1), "--noise": _floats(0, 10),
        "--n-boot": _ints(1, 20), "--level": _floats(0.01, 0.99), "--boot-seed": _ints(0, 3),
        "--sizes": st.tuples(st.integers(1, 3), st.integers(1, 4)).map(lambda t: f"{t[0]}x{t[1]}")}),
}


@st.composite
def invocations(draw):
    command = draw(st.sampled_from(sorted(COMMANDS)))
    base, options = COMMANDS[command]
    argv = list(base)
    # mostly valid values (runs that must succeed or be refused for a stated reason), one hostile value,
    # or hostile values anywhere
    mode = draw(st.sampled_from(("valid", "valid", "one hostile", "one hostile", "many hostile")))
    hostile_one = draw(st.sampled_from(sorted(options))) if mode == "one hostile" else None
    for option, valid in options.items():
        if option == hostile_one:
            kind = "hostile"
        else:
            kind = draw(st.sampled_from(("absent", "absent", "valid") + (("hostile",) if mode == "many hostile" else ())))
        if kind == "absent":
            continue
        value = draw(valid) if kind == "valid" else draw(st.sampled_from(HOSTILE))
        argv += [f"{option}={value}"]  # '=' so that values such as '-1' and '--' stay values
    if command == "reconstruct" and draw(st.booleans()):
        argv += ["--optimizer", "momentum"]
    if command == "hermite" and draw(st.booleans()):
        argv += ["--numeric", "mpmath"]
    return argv


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {ALARM_S} s")


pytestmark = pytest.mark.usefixtures("private_hermite_cache")


def _check_outcome(argv):
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        if argv[0] == "law":
            argv = argv + ["--out", os.path.join(tmp, "t.db")]
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(ALARM_S)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = main(argv)
                except SystemExit as exc:  # argparse's refusal (or --help)
                    status = exc.code
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    text = err.getvalue()
    ok = (0, 1) if argv[0] == "check" else (0,)
    assert status in ok + (2,), (argv, status, text)
    if status == 2:
        lines = [line for line in text.splitlines() if line.strip() and "notice:" not in line]
        assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in text, (argv, text)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs signal.alarm")
@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(invocations())
def test_cli_numeric_options_fuzz(argv):
    _check_outcome(argv)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs signal.alarm")
@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(invocations())
def test_cli_numeric_options_fuzz_long(argv):
    _check_outcome(argv)

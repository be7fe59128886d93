"""The console script: help texts, a small complete run, one-line errors."""
import subprocess
import sys

import pytest

from rftheory.backend import numba_enabled
from rftheory.cli import build_parser, main


def _commands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def test_reconstruct_is_a_command():
    assert "reconstruct" in _commands() and "hermite" in _commands()


@pytest.mark.parametrize("command", _commands())
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rftheory " + command) and len(out) > 200


def test_small_reconstruct_run_prints_the_report(capsys):
    assert main(["reconstruct", "--n", "3", "--d", "4", "--ratio", "20", "--restarts", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for field in ("p/(dn)", "train residual", "loss", "recovered", "signed", "sign-aware", "entrywise-abs", "wall time"):
        assert field in out
    assert "recovered   3/3" in out
    from rftheory.attack.options import AttackOptions

    assert f"attack      n̂=3, {AttackOptions(restarts=2, seed=1).describe()}" in out  # the record that ran


def test_reconstruct_reports_the_pursuit_after_a_failed_restart(capsys):
    """n=8, d=16, p/(dn)=1.25, seed 0: the first restart stops above tol, the pursuit from it recovers;
    the report names the pursuit's line (not a second restart) and its accepted proposals."""
    assert main(["reconstruct", "--n", "8", "--d", "16", "--ratio", "1.25", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "restart 1/3" in out and "restart 2/3" not in out
    assert "pursuit start (the restart ended above --tol): loss" in out
    assert "accepted pursuit proposal" in out and "recovered   8/8" in out


@pytest.mark.skipif(not numba_enabled("panel"),
                    reason="the reference numbers come from the compiled panel kernels")
def test_default_reconstruct_prints_its_reference_numbers(capsys):
    """The embedded default (n=10, d=20, p=4000, relu+tanh, float32 panel kernels) prints the numbers it
    printed before the package was reorganised: a refactor that changes an iterate changes them.  The
    16-lane kernels produced them; the 8-lane ones round differently."""
    from rftheory._engine.target import VECTOR

    if VECTOR != 16:
        pytest.skip("reference numbers were produced by the 16-lane (AVX-512) kernels")
    assert main(["reconstruct"]) == 0
    out = capsys.readouterr().out
    assert "loss        9.910e-11 after 920 iterations (993 evaluations, 1 re-seeds," in out
    assert "recovered   10/10 = 100%" in out
    assert "signed         0.0001 (0.0005)   1.3625" in out


def _attack_flags(command):
    parser = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    group = next(g for g in parser._action_groups if g.title and g.title.startswith("attack"))
    return {opt: (a.dest, a.default) for a in group._group_actions for opt in a.option_strings}


def test_attack_options_are_one_record_with_its_defaults():
    from rftheory.attack.options import AttackOptions
    from rftheory.cli._types import attack_options

    parser = build_parser()
    assert attack_options(parser.parse_args(["reconstruct"])) == AttackOptions()
    assert attack_options(parser.parse_args(["reconstruct", "--seed", "4"])) == AttackOptions(seed=4)
    assert attack_options(parser.parse_args(["law"])) == AttackOptions()  # law seeds each cell itself
    args = parser.parse_args(["law", "--max-iter", "7", "--no-reseed", "--dtype", "float64", "--batch-restarts",
                              "--momentum", "0.5", "--no-stop-at-tol", "--reseed-candidates", "16"])
    assert attack_options(args) == AttackOptions(max_iter=7, reseed=False, dtype="float64", batch_restarts=True,
                                                 momentum=0.5, stop_at_tol=False, reseed_candidates=16)
    args = parser.parse_args(["reconstruct", "--strategy", "overparam", "--moves", "5", "--extra-rows", "2",
                              "--merge-cos", "0.9"])
    assert attack_options(args) == AttackOptions(strategy="overparam", moves=5, extra_rows=2, merge_cos=0.9)
    # every field of the record but the seed has an option (a new field cannot be forgotten)
    import dataclasses
    fields = {f.name for f in dataclasses.fields(AttackOptions)} - {"seed"}
    assert fields <= set(vars(parser.parse_args(["reconstruct"]))), fields - set(vars(parser.parse_args(["law"])))
    assert fields <= set(vars(parser.parse_args(["law"])))
    # the same options, defaults included, in both commands (law adds its own --threshold and --noise)
    law, rec = _attack_flags("law"), _attack_flags("reconstruct")
    assert {k: v for k, v in law.items() if k not in ("--threshold", "--noise")} == rec


@pytest.mark.parametrize(
    "argv,message",
    [
        (["reconstruct", "--activation", "swish9"], "unknown activation 'swish9'"),
        (["reconstruct", "--n", "30", "--d", "3", "--p", "10"], "p=10 < n=30"),
        (["reconstruct", "--backend", "cupy", "--n", "3", "--d", "3"], "cupy"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    if "cupy" in argv:
        from rftheory.backend import cupy_available

        if cupy_available():
            pytest.skip("a GPU is present, so --backend cupy is not an error")
    assert _exit_status(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rftheory") and "error:" in err and message in err and "\n" not in err


def _exit_status(argv):
    """main's status, or the status of argparse's SystemExit (an option refused while parsing)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_argparse_rejects_bad_numbers(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reconstruct", "--n", "0"])
    assert exc.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "rftheory", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("rftheory ")


@pytest.mark.parametrize("command,ratio", [("reconstruct", 20.0), ("check", 16.0), ("signs", 4.0)])
def test_feature_count_options_are_shared(command, ratio):
    from rftheory.cli._types import feature_count

    parser = build_parser()
    args = parser.parse_args([command, "--ratio", "2.5"])
    assert feature_count(args, 7, 3) == 52  # round(2.5·7·3) = round(52.5) = 52 (banker's rounding)
    assert feature_count(parser.parse_args([command, "--p", "9"]), 7, 3) == 9
    assert parser.parse_args([command]).ratio == ratio
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--p", "9", "--ratio", "2"])  # one or the other

"""Resources and messages checked before any work: huge sizes and counts are refused within seconds
with a one-line error (exit 2) naming the figure and the remedy, every option past its stated
bound is refused naming the option, output paths are checked first, and options that would be
ignored are errors."""
from __future__ import annotations

import os
import time

import pytest

from rftheory.cli import main


def _run(argv):
    """(exit status, stdout, stderr) of the CLI; argparse's refusals arrive as SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _refused(argv, capsys, *needles, seconds=5.0):
    t0 = time.perf_counter()
    status = _run(argv)
    elapsed = time.perf_counter() - t0
    cap = capsys.readouterr()
    assert status == 2, (argv, cap.err)
    assert cap.err.count("\n") == 1 and "error:" in cap.err and "Traceback" not in cap.err, cap.err
    for needle in needles:
        assert needle in cap.err, (needle, cap.err)
    assert elapsed < seconds, f"{argv} took {elapsed:.1f} s to refuse"
    return cap.err


@pytest.mark.parametrize("argv, needles", [
    (["reconstruct", "--p", "1e12"], ["memory", "--stream-weights"]),
    (["reconstruct", "--n", "1000000"], ["memory", "smaller --n"]),
    (["reconstruct", "--stream-weights", "--p", "1e12"], ["smaller --n or --p"]),
    (["reconstruct", "--model", "mlp", "--width", "1e12"], ["memory", "--width"]),
    (["law", "--sizes", "1000000x1000"], ["the largest cell", "memory"]),
    (["law", "--ratios", "1e308", "--sizes", "2x3"], ["--ratios"]),
    (["reconstruct", "--ratio", "1e300"], ["--ratio"]),
    (["check", "--starts", "1e9"], ["--starts", "100000"]),
    (["check", "--p", "1e12"], ["memory"]),
    (["hermite", "relu", "--order", "1e12"], ["--order"]),
    (["hermite", "tanh", "--numeric", "mpmath", "--dps", "1000000"], ["--dps", "100"]),
    (["hermite", "relu", "--order", "100000000"], ["--order", "1000"]),
    (["check", "--order", "100000000"], ["--order"]),
    (["law", "--n-boot", "100000000"], ["--n-boot", "100000"]),
    (["reconstruct", "--restarts", "1000000000"], ["--restarts", "10000"]),
    (["signs", "relu", "--p", "1e13"], ["memory"]),
])
def test_huge_sizes_and_counts_are_refused_up_front(argv, needles, capsys):
    _refused(argv, capsys, *needles)


def test_streamed_weights_are_bounded_by_work(capsys, monkeypatch):
    # with memory to spare, p = 1e12 streamed is still refused: one pass is 2e14 multiply-adds
    from rftheory.cli import _resources

    monkeypatch.setattr(_resources, "available_memory", lambda: 2**70)
    _refused(["reconstruct", "--stream-weights", "--p", "1e12"], capsys, "one pass over the features",
             "multiply-adds")


def test_digits_beyond_the_data_set(capsys):
    _refused(["reconstruct", "--data", "digits", "--n", "100000"], capsys, "--n 100000", "1797")


@pytest.mark.parametrize("argv, needles", [
    (["reconstruct", "--seed", "-1"], ["--seed", "non-negative", "-1"]),
    (["check", "--seed", "-1"], ["--seed", "non-negative"]),
    (["law", "--seeds", "-1"], ["--seeds", "non-negative"]),
    (["reconstruct", "--activation", "1e400*relu"], ["--activation", "1e400", "finite"]),
    (["law", "--activation", "1e400*relu"], ["--activation", "1e400"]),
    (["hermite", "1e400*relu"], ["ACTIVATION", "1e400"]),
    (["signs", "1e400*relu"], ["ACTIVATION", "1e400"]),
    (["check", "--d", "1"], ["--d 1", "d ≥ 2"]),
    (["signs", "relu", "--d", "1"], ["--d 1"]),
    (["law", "--noise", "1e300"], ["--noise"]),
    (["reconstruct", "--data", "digits", "--d", "5"], ["--d 5", "synthetic only"]),
    (["reconstruct", "--width", "8"], ["--width", "--model mlp"]),
    (["reconstruct", "--channels", "8"], ["--channels", "--model resnet"]),
    (["reconstruct", "--train-steps", "8"], ["--train-steps", "--model"]),
    (["reconstruct", "--model", "mlp", "--channels", "3"], ["--channels"]),
    (["signs", "all", "--compare"], ["'all'", "--compare"]),
    (["signs", "relu", "--restarts", "2"], ["--restarts", "--compare"]),
    (["hermite", "relu", "--dps", "40"], ["--dps", "mpmath"]),
])
def test_messages_name_the_option_and_value(argv, needles, capsys):
    _refused(argv, capsys, *needles)


def test_a_diverging_momentum_run_is_reported_in_the_users_terms(capsys):
    err = _refused(["reconstruct", "--n", "3", "--d", "4", "--ratio", "3", "--optimizer", "momentum", "--lr", "1e300",
                    "--restarts", "1", "--max-iter", "50"], capsys, "diverged", "--lr", "lower --lr", seconds=30)
    assert "X_hat" not in err and "non-finite" not in err


def _read_only_folder(tmp_path):
    """A folder this process cannot write in (root writes everywhere but /proc)."""
    if os.geteuid() == 0:
        return "/proc"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return str(ro)


def test_output_paths_are_checked_before_the_computation(tmp_path, capsys):
    ro = _read_only_folder(tmp_path)
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me\n")
    cases = [
        (["reconstruct", "--data", "digits", "--n", "3", "--save-images", ro], "--save-images"),
        (["reconstruct", "--data", "digits", "--n", "3", "--save-images", str(afile)], "is a file, not a folder"),
        (["reconstruct", "--data", "digits", "--n", "3", "--save-images", ""], "--save-images"),
        (["law", "--sizes", "3x4", "--ratios", "0.1", "--seeds", "0", "--out", f"{ro}/t.csv"], "--out"),
        (["law", "--sizes", "3x4", "--ratios", "0.1", "--seeds", "0", "--out", str(tmp_path / "t.db"),
          "--plot", f"{ro}/p.png"], "--plot"),
        (["signs", "relu", "--plot", f"{ro}/p.png"], "--plot"),
        (["signs", "relu", "--plot", str(tmp_path)], "--plot must end"),
        (["signs", "relu", "--plot", str(tmp_path / "missing" / "p.png")], "does not exist"),
    ]
    for argv, needle in cases:
        _refused(argv, capsys, needle)
    assert afile.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "ro") == ["afile.txt"]


def test_signs_plot_prints_the_path_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "barrier.svg"
    assert main(["signs", "tanh", "--n", "3", "--d", "4", "--ratio", "4", "--points", "3", "--flips", "1",
                 "--samples", "1", "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"plot          {path}\n" in out and path.read_bytes().startswith(b"<?xml")


def test_os_and_memory_errors_are_one_line(monkeypatch, capsys):
    import rftheory.cli.hermite as hermite_cli

    def boom(args):
        raise MemoryError

    def disk_full(args):
        raise OSError(28, "No space left on device", "/tmp/x.csv")

    for fn, needle in ((boom, "out of memory"), (disk_full, "No space left on device: /tmp/x.csv")):
        monkeypatch.setattr(hermite_cli, "run", fn)
        _refused(["hermite", "relu"], capsys, needle)

"""benchmarks/bench_gpu.py runs its measurement through the NumPy backend, and says clearly when no GPU is there."""
import pytest

from rftheory.backend import cupy_available

from conftest import load_benchmark


def _load():
    return load_benchmark("bench_gpu")


def test_same_measurement_on_numpy(capsys):
    bench = _load()
    assert bench.main(["--backend", "numpy", "--n", "4", "--d", "6", "--p", "300", "--pairs", "2",
                       "--iterations", "5", "--size", "256"]) == 0
    out = capsys.readouterr().out
    assert out.count("pair ") == 2
    line = out.strip().splitlines()[-1]
    assert line.startswith("per L-BFGS iteration, median fraction") and "p=300: " in line
    fraction = float(line.split("p=300: ")[1].rstrip("%")) / 100
    assert 0 < fraction < 1


def test_matmul_peak_is_flops_over_measured_time(monkeypatch):
    """2·size³ flops per product over the clock's time: a clock that moves 1/64 s per reading and
    min_time = 5/64 s give 5 products in 5/64 s per round."""
    import numpy as np

    bench = _load()
    ticks = iter(range(10**6))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks) / 64)
    assert bench.matmul_peak(np, 64, min_time=5 / 64) == pytest.approx(2 * 64**3 * 5 / (5 / 64) / 1e9, rel=1e-12)


@pytest.mark.skipif(cupy_available(), reason="a GPU is visible: the no-device message does not apply")
def test_no_device_is_a_clear_exit(capsys):
    assert _load().main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_bad_arguments_are_refused():
    bench = _load()
    for argv in (["--pairs", "0"], ["--n", "30", "--p", "20"]):
        with pytest.raises(SystemExit) as info:
            bench.main(["--backend", "numpy", *argv])
        assert info.value.code == 2


@pytest.mark.slow
def test_image_scale_measures_cifar_sized_problems(capsys):
    """--image-scale: n=10, d=3072 at p = 2dn and the authors' p = 100 000 (run here on the CPU path)."""
    bench = _load()
    assert bench.main(["--backend", "numpy", "--image-scale", "--pairs", "1", "--iterations", "2",
                       "--size", "256"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "p=61440: " in line and "p=100000: " in line

"""benchmarks/_common.py: the machine line every benchmark prints first."""
import os

from conftest import load_benchmark


def test_machine_line_names_the_cpu_the_cores_and_the_kernel_width():
    from rftheory._engine import panel

    common = load_benchmark("_common")
    line = common.machine_line()
    model = common.cpu_model()
    assert model and model in line
    assert f"{os.cpu_count()} logical cores" in line
    expected = f"{panel.VECTOR}-lane panel kernels" if panel.panel_kernels_available() else "no Numba"
    assert expected in line

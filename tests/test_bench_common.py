"""benchmarks/_common.py: the machine line every benchmark prints first."""
import importlib.util
import os
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "_common.py"


def _common():
    spec = importlib.util.spec_from_file_location("bench_common", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_machine_line_names_the_cpu_the_cores_and_the_kernel_width():
    from rftheory import panel

    common = _common()
    line = common.machine_line()
    model = common.cpu_model()
    assert model and model in line
    assert f"{os.cpu_count()} logical cores" in line
    expected = f"{panel.VECTOR}-lane panel kernels" if panel.panel_kernels_available() else "no Numba"
    assert expected in line

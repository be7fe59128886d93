"""The package's front door: lazy top-level exports, a light ``import rftheory``, one engine door."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rftheory

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(set(rftheory.__all__) - {"__version__"}))
def test_every_export_resolves_to_its_module(name):
    value = getattr(rftheory, name)
    module = rftheory._EXPORTS[name]
    assert getattr(sys.modules[module], name) is value


def test_all_lists_every_export():
    assert sorted(rftheory.__all__) == sorted(["__version__", *rftheory._EXPORTS])


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rftheory.nope  # noqa: B018


def test_dir_lists_the_exports():
    assert {"RandomFeatures", "reconstruct", "hermite_coefficients", "AttackOptions"} <= set(dir(rftheory))


def test_import_loads_no_heavy_dependency():
    """`import rftheory` must stay light: the exports are imported on first use."""
    code = ("import sys, rftheory; heavy = [m for m in ('numpy', 'scipy', 'numba', 'sympy', 'mpmath', 'sklearn') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_only_the_loss_module_imports_the_engine():
    """The compiled engine has one door, used by rftheory/attack/loss.py alone."""
    pattern = re.compile(r"^\s*(from\s+(\.+|rftheory\.)[\w.]*_engine\b|import\s+rftheory\._engine)", re.M)
    users = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "rftheory").rglob("*.py")
                   if "_engine" not in path.parts and pattern.search(path.read_text()))
    assert users == ["rftheory/attack/loss.py"]

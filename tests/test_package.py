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


def test_one_lbfgs_implementation():
    """The two-loop recursion and the curvature memory live in rftheory/optim only: any L-BFGS-named
    function elsewhere is a wrapper that calls the optimiser of rftheory.optim.lbfgs."""
    import ast

    pattern = re.compile(r"lbfgs|two_loop|curvature", re.I)
    wrappers, stray = [], []
    for path in (ROOT / "rftheory").rglob("*.py"):
        if "optim" in path.relative_to(ROOT / "rftheory").parts:
            continue
        tree = ast.parse(path.read_text())
        optim_names = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                       and (node.module or "").endswith("optim.lbfgs") for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and pattern.search(node.name):
                calls = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
                (wrappers if calls & optim_names else stray).append(f"{path.name}:{node.name}")
    assert not stray, f"L-BFGS code outside rftheory/optim: {stray}"
    assert wrappers  # the attack and the identifiability searches do call it

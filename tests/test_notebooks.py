"""Every notebook in notebooks/ is executed (not imported) at small size, as a
script in a fresh interpreter, and must write its figures to the given folder
and nothing into the working directory.  About a minute in all on a quiet
2-core machine."""
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
HAS_MPL = importlib.util.find_spec("matplotlib") is not None
pytestmark = pytest.mark.skipif(not HAS_MPL, reason="the notebooks draw with matplotlib (pip install 'rftheory[plot]')")

EXPECTED = {
    "01_law.py": ["law_phase_diagram.png", "law_loss.png", "law_success_grid.png", "law_sweep.csv"],
    "02_digits_reconstruction.py": ["digits_above_threshold.png", "digits_below_threshold.png"],
    "03_hermite_and_signs.py": ["hermite_coefficients.png", "sign_barrier.png"],
    "04_theorem_checks.py": ["theorem1_gap.png", "kernel_concentration.png", "residual_paths.png"],
}


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RFTHEORY_NOTEBOOK") and k != "RFTHEORY_CIFAR_DIR"}
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


def _run(name, tmp_path, args=(), env=None):
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run([sys.executable, str(NOTEBOOKS / name), *args], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert list(cwd.iterdir()) == [], f"{name} wrote into the working directory"
    return proc, out


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("[0-9]*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_percent_format(name):
    text = (NOTEBOOKS / name).read_text(encoding="utf-8")
    lines = text.splitlines()
    markers = [ln for ln in lines if ln.startswith("# %%")]
    assert any(m.startswith("# %% [markdown]") for m in markers)
    assert sum(m.strip() == "# %%" for m in markers) >= 3
    assert "format_name: percent" in text
    if importlib.util.find_spec("jupytext") is not None:
        import jupytext

        nb = jupytext.read(NOTEBOOKS / name)
        kinds = {c.cell_type for c in nb.cells}
        assert kinds == {"markdown", "code"}


@pytest.mark.parametrize("name", ["01_law.py", "02_digits_reconstruction.py"])
def test_notebook_runs_small_with_flags(name, tmp_path):
    proc, out = _run(name, tmp_path, args=["--small", "--out", str(tmp_path / "out")])
    assert "size: small" in proc.stdout
    for f in EXPECTED[name]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f"{name} did not write {f}"


@pytest.mark.parametrize("name", ["03_hermite_and_signs.py", "04_theorem_checks.py"])
def test_notebook_runs_small_with_env(name, tmp_path):
    env = _env(RFTHEORY_NOTEBOOK_SIZE="small", RFTHEORY_NOTEBOOK_OUT=str(tmp_path / "out"))
    proc, out = _run(name, tmp_path, env=env)
    assert "size: small" in proc.stdout
    for f in EXPECTED[name]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f"{name} did not write {f}"


def test_notebook_rejects_unknown_size(tmp_path):
    env = _env(RFTHEORY_NOTEBOOK_SIZE="huge", RFTHEORY_NOTEBOOK_OUT=str(tmp_path / "out"))
    proc = subprocess.run([sys.executable, str(NOTEBOOKS / "03_hermite_and_signs.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "RFTHEORY_NOTEBOOK_SIZE" in proc.stderr


@pytest.mark.slow
def test_digits_notebook_with_cifar_folder(tmp_path):
    """The optional CIFAR-10 cell, on a fake folder in the real pickle format (d = 3072: slow)."""
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    for f in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": f.encode(), b"labels": [k % 10 for k in range(20)],
                 b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * 20}
        with open(root / f, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": names}, fh, protocol=2)
    proc, out = _run("02_digits_reconstruction.py", tmp_path, args=["--small", "--out", str(tmp_path / "out"),
                                                                     "--cifar", str(root)])
    assert (out / "cifar_reconstruction.png").is_file()
    assert "CIFAR-10: p=" in proc.stdout

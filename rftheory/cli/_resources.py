"""Checks made before a command computes anything: memory, work and output paths.

Every command estimates, from its sizes alone, the memory its arrays will take
and the arithmetic it will do, and refuses a configuration that cannot finish
(a one-line error naming the figure and the remedy, exit status 2) instead of
failing with a MemoryError after minutes.  The estimates count the large
arrays only (float64 = 8 bytes, float32 = 4):

* V ∈ R^{p×d}: p·d·itemsize when stored (not with ``--stream-weights``, which
  regenerates it in blocks);
* the features Φ = σ(XVᵀ) ∈ R^{n×p} and, in the attack, σ(X̂Vᵀ) with σ' and the
  products of the gradient (a few n×p arrays, per restart when the restarts
  are batched), θ ∈ R^p;
* the Gram ΦΦᵀ ∈ R^{n×n} and its factorisation.

They estimate the peak from the arrays named above (temporaries of a few
smaller arrays aside), so a configuration just below the limit may still
fail; the MemoryError is then reported as a one-line error too
(rftheory.cli.main).

Output paths are checked before the work as well: the folder must exist or be
creatable, be writable (probed by creating and deleting a file, which is what
counts, whatever the permission bits say), and a path must be of the right
kind (a file where a file is written, a folder where a folder is).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["WORK_LIMIT", "PASS_LIMIT", "rf_memory", "rf_pass", "check_rf_resources", "available_memory", "human_bytes", "require_memory", "require_work",
           "check_output_file", "check_output_dir", "same_file"]

# Multiply-adds one command may plan: 1e15 is about a day of a fast CPU core at 1e10 per second, far beyond
# any run of this package's sizes (the default reconstruct does ~1e10), and it keeps absurd sizes
# from running for ever.
WORK_LIMIT = 1e15
# Multiply-adds of one pass over the features (Φ = σ(XVᵀ) and its Gram, n·p·d + n²·p): an attack makes
# thousands of passes, so a pass beyond 1e13 (about 20 minutes at 1e10 per second) cannot finish.
PASS_LIMIT = 1e13
F64 = 8


def rf_pass(n: int, d: int, p: int) -> float:
    """Multiply-adds of one pass over the random features: XVᵀ (n·p·d) and ΦΦᵀ (n²·p)."""
    return float(n) * p * d + float(n) * n * p


def rf_memory(n: int, d: int, p: int, *, stored: bool = True, attack_itemsize: int = 4, restarts: int = 1,
              batch_restarts: bool = False) -> float:
    """Bytes of the large arrays of a random-features fit and attack (see the module docstring), the
    larger of the two phases: the fit holds V (float64), Φ ∈ R^{n×p} in float64 and three n×n arrays
    (the Gram, its factor, a temporary); the attack holds V (and its working copy when it runs in
    float32), θ, and two n×p arrays in the attack's precision per concurrent restart (σ(X̂Vᵀ) and σ')."""
    n, d, p = float(n), float(d), float(p)
    v = p * d * F64 if stored else 0.0
    fit = v + n * p * F64 + 3 * n * n * F64
    live = restarts if batch_restarts else 1
    copy = p * d * attack_itemsize if (stored and attack_itemsize != F64) else 0.0
    attack = v + copy + p * F64 + 2 * live * n * p * attack_itemsize + 3 * n * n * F64
    return max(fit, attack)


def check_rf_resources(n: int, d: int, p: int, *, what: str, stored: bool = True, attack_itemsize: int = 4,
                       restarts: int = 1, batch_restarts: bool = False, copies: int = 1,
                       size_options: str = "--n or --p/--ratio", can_stream: bool = False) -> None:
    """Refuse a random-features configuration whose arrays exceed the available memory or whose one
    pass over the features exceeds :data:`PASS_LIMIT`; ``copies`` runs at once (worker processes)."""
    need = copies * rf_memory(n, d, p, stored=stored, attack_itemsize=attack_itemsize, restarts=restarts,
                              batch_restarts=batch_restarts)
    v_bytes = float(p) * d * F64
    if can_stream and stored and v_bytes > available_memory() / 2:
        remedy = f"V alone is {human_bytes(v_bytes)}: use --stream-weights or a smaller {size_options}"
    else:
        remedy = f"use a smaller {size_options}"
    require_memory(need, what, remedy)
    require_work(rf_pass(n, d, p), f"{what}: one pass over the features", f"use a smaller {size_options}",
                 limit=PASS_LIMIT)


def available_memory() -> int:
    """Bytes of memory available to a new allocation: psutil's ``virtual_memory().available`` when
    psutil is importable, else MemAvailable of /proc/meminfo, else the physical memory
    (``os.sysconf``); 2**63 when none is known (nothing is refused)."""
    try:
        import psutil  # noqa: PLC0415

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - not installed or unsupported platform
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 2**63


def human_bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover - the loop returns at EiB


def require_memory(need: float, what: str, remedy: str) -> None:
    """Raise ValueError when ``need`` bytes exceed the available memory."""
    have = available_memory()
    if need > have:
        raise ValueError(f"{what} needs about {human_bytes(need)} of memory, more than the "
                         f"{human_bytes(have)} available; {remedy}")


def require_work(ops: float, what: str, remedy: str, limit: float = WORK_LIMIT) -> None:
    """Raise ValueError when ``ops`` multiply-adds exceed ``limit`` (:data:`WORK_LIMIT`)."""
    if ops > limit:
        raise ValueError(f"{what} needs about {ops:.2g} multiply-adds, beyond the bound of {limit:.0e}; {remedy}")


def _probe_dir(folder: Path, option: str) -> None:
    """Create and delete a file in ``folder``: the only reliable test that it is writable."""
    try:
        fd, name = tempfile.mkstemp(prefix=".rftheory-probe-", dir=folder)
    except OSError as exc:
        raise ValueError(f"{option}: cannot write in the folder {str(folder)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.remove(name)


def _existing_ancestor(path: Path, option: str) -> Path:
    """The nearest existing ancestor of ``path``, which must be a folder."""
    parent = path
    while True:
        parent = parent.parent
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option}: {str(parent)!r} is a file, not a folder")
            return parent
        if parent == parent.parent:  # pragma: no cover - a root always exists
            return parent


def check_output_file(path, option: str, create_folder: bool = False) -> Path:
    """Check that a file can be written at ``path`` (given as ``option``): non-empty, not a folder,
    writable if it exists, in a folder that is writable and exists (or, with ``create_folder``,
    can be created by the writer)."""
    text = str(path) if path is not None else ""
    if not text.strip():
        raise ValueError(f"{option}: expected a file name, got an empty path")
    p = Path(text)
    if p.is_dir():
        raise ValueError(f"{option}: {text!r} is a folder; give a file name")
    if text.endswith(("/", os.sep)):
        raise ValueError(f"{option}: {text!r} names a folder; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{option}: {text!r} is not writable")
    if not p.parent.exists() and not create_folder:
        raise ValueError(f"{option}: the folder {str(p.parent)!r} of {text!r} does not exist")
    parent = p.parent if p.parent.exists() else _existing_ancestor(p, option)
    if not parent.is_dir():
        raise ValueError(f"{option}: {str(parent)!r} is a file, not a folder")
    _probe_dir(parent, option)
    return p


def check_output_dir(path, option: str) -> Path:
    """Check that files can be written in the folder ``path`` (created if missing)."""
    text = str(path) if path is not None else ""
    if not text.strip():
        raise ValueError(f"{option}: expected a folder, got an empty path")
    p = Path(text)
    if p.exists():
        if not p.is_dir():
            raise ValueError(f"{option}: {text!r} is a file, not a folder")
        _probe_dir(p, option)
    else:
        _probe_dir(_existing_ancestor(p, option), option)
    return p


def same_file(a, b) -> bool:
    """Whether two paths name the same file (existing or not)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def require_matplotlib(option: str = "--plot") -> None:
    """Refuse ``option`` before any work when matplotlib (the ``plot`` extra) cannot be imported."""
    import importlib  # noqa: PLC0415

    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise RuntimeError(f"{option} needs matplotlib: pip install 'rftheory[plot]'") from None

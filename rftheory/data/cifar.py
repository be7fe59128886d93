r"""CIFAR-10 from the standard python-pickle batch files (no download).

Expected files, in a user-given directory (the ``cifar-10-batches-py``
folder of the "CIFAR-10 python version" archive; the folder that contains it
is accepted too):

    data_batch_1 … data_batch_5   (training split, 10 000 images each)
    test_batch                    (test split, 10 000 images)
    batches.meta                  (b'label_names': the ten class names)

Each batch is a pickled dict with b'data' (uint8, N×3072: the 1024 red, then
1024 green, then 1024 blue values of a 32×32 image, each channel row-major),
b'labels' (N ints in 0..9), b'batch_label' and b'filenames'.

The files are pickles, and a pickle can name any Python callable to be run
while it loads.  They are therefore read with a restricted unpickler
(:class:`_CifarUnpickler`, ``encoding="bytes"``) whose ``find_class`` admits
only what the published format needs: NumPy's array and scalar
reconstruction (``numpy.core.multiarray._reconstruct``/``scalar``, also under
``numpy._core``, and ``_frombuffer`` of pickle protocol 5), ``numpy.ndarray``,
``numpy.dtype``, ``_codecs.encode`` with the latin-1 codec only (how protocol
2 writes bytes) and the ``set``/``frozenset`` constructors.  Any other global
(``os.system``, ``builtins.eval``, ``subprocess.Popen``, …) is refused before
it is called: the file is reported as not a CIFAR-10 batch (ValueError) and
nothing of it runs.  Labels must be integers: a float label (even 3.0) is an
invalid file, never truncated.

Class selection (:func:`cifar10`)
---------------------------------
``classes`` lists the classes of the task, each an index 0..9, a name
("cat"), or a tuple of them (a super-class, e.g. vehicles vs animals).

* Two entries: a binary task, labels y = −1 for the first, +1 for the second.
* k ≥ 3 entries (``"all"`` = the ten classes): a multi-class task, labels the
  entry index j ∈ {0..k−1} mapped to y = 2j/(k−1) − 1 (as
  :func:`rftheory.data.digits.digits` does); :func:`one_hot` gives the k-column
  targets when a model fits one output per class.

The n samples are drawn without replacement, balanced over the entries (each
gets ⌊n/k⌋, the first n mod k one more), seeded by ``seed``, and returned in
file order.

Pre-processing (stated in ``Dataset.description``)
--------------------------------------------------
Rows are re-ordered channel-last, so ``X[i].reshape(32, 32, 3)`` is the image
(coordinate (h·32 + w)·3 + c); ``Dataset.image_shape = (32, 32, 3)``, d = 3072.

* ``standardize="per-image"``: each image z ↦ (z − mean z)/std z over its own
  3072 values (population std).  Such a row already has ‖z‖ = √d, i.e. it
  lies on the √d-sphere.  Constant images (std 0) are left out of the pool.
* ``standardize="global"``: each of the 3072 coordinates is standardised with
  its mean and std over every image of the split's files (constant
  coordinates set to 0), then each image is rescaled to norm √d (as
  :func:`rftheory.data.digits.digits`).
"""
from __future__ import annotations

import codecs
import os
import pickle
from dataclasses import dataclass

import numpy as np

from .synthetic import Dataset, project_to_sphere
from ..validation import check_count

__all__ = [
    "CIFAR10_CLASSES",
    "TRAIN_FILES",
    "TEST_FILES",
    "META_FILE",
    "CifarSplit",
    "load_cifar10_split",
    "cifar10",
    "one_hot",
    "STANDARDIZATIONS",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
STANDARDIZATIONS = ("per-image", "global")
IMAGE_SHAPE = (32, 32, 3)
D = 3072
_SUBDIR = "cifar-10-batches-py"


@dataclass
class CifarSplit:
    """Raw images of one split: ``data`` uint8 (N, 3072) in the files' channel-first
    order, ``labels`` int64 (N,), ``label_names`` (10 names)."""

    data: np.ndarray
    labels: np.ndarray
    label_names: tuple
    directory: str
    split: str


def _resolve_directory(directory, needed) -> str:
    if directory is None:
        raise ValueError("give the CIFAR-10 directory (the extracted cifar-10-batches-py folder)")
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(
            f"CIFAR-10 directory {directory!r} does not exist; extract the 'CIFAR-10 python version' archive "
            f"and pass its {_SUBDIR} folder (nothing is downloaded)"
        )
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"CIFAR-10 path {directory!r} is not a directory; pass the {_SUBDIR} folder")
    inner = os.path.join(directory, _SUBDIR)
    if not os.path.exists(os.path.join(directory, needed[0])) and os.path.isdir(inner):
        directory = inner
    missing = [f for f in needed if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 directory {directory!r} lacks {', '.join(missing)}; expected the python-pickle batches "
            f"({', '.join(TRAIN_FILES + TEST_FILES)}, {META_FILE}) of the 'CIFAR-10 python version' archive"
        )
    return directory


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles of bytes use it (``encode(str, "latin1")``), and nothing else."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode is admitted only as encode(str, 'latin1'), got {encoding!r}")
    return codecs.encode(obj, "latin1")


def _numpy_globals() -> dict:
    """The NumPy callables a pickled ndarray names, keyed by every module path NumPy has used."""
    try:
        from numpy._core import multiarray, numeric  # NumPy ≥ 2  # noqa: PLC0415
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray, numeric  # noqa: PLC0415
    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            table[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


class _CifarUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only the globals of the CIFAR-10 python format (module docstring)."""

    _allowed = None

    def find_class(self, module, name):
        if _CifarUnpickler._allowed is None:
            allowed = _numpy_globals()
            allowed[("_codecs", "encode")] = _latin1_encode
            for mod in ("builtins", "__builtin__"):
                allowed[(mod, "set")] = set
                allowed[(mod, "frozenset")] = frozenset
            _CifarUnpickler._allowed = allowed
        try:
            return _CifarUnpickler._allowed[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name}: a CIFAR-10 batch holds only dicts, lists, "
                "bytes, ints and NumPy arrays (the file may be crafted to run code)"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not part of the CIFAR-10 format")


def _unpickle(path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _CifarUnpickler(fh, encoding="bytes").load()
    except OSError:
        raise
    except MemoryError:
        raise ValueError(f"{path} is not a CIFAR-10 python batch file (unpickling needs more memory than available)") from None
    except Exception as exc:  # noqa: BLE001 - whatever a malformed pickle raises, the file is invalid
        raise ValueError(f"{path} is not a CIFAR-10 python batch file (unpickling failed: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR-10 python batch file (holds {type(obj).__name__}, not a dict)")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _read_batch(path):
    batch = _unpickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            extra = " (CIFAR-100 files have 'fine_labels'; this loader is for CIFAR-10)" if "fine_labels" in batch else ""
            raise ValueError(f"{path} is not a CIFAR-10 python batch file: no key b'{key}'{extra}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != D:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, {D}), got {desc}")
    raw_labels = batch["labels"]
    if isinstance(raw_labels, np.ndarray):
        ok = raw_labels.dtype.kind in "iu" or raw_labels.size == 0
    else:  # the published format: a list of Python ints (bool and float are not labels, 3.0 included)
        ok = isinstance(raw_labels, (list, tuple)) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in raw_labels
        )
    if not ok:
        raise ValueError(f"{path}: b'labels' must be a list of integers (a non-integer label is not truncated)")
    try:
        labels = np.asarray(raw_labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{path}: b'labels' must be a list of integers in 0..9") from None
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels.size} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data, labels


def _read_meta(path) -> tuple:
    meta = _unpickle(path)
    names = meta.get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != 10:
        raise ValueError(f"{path}: b'label_names' must list the 10 CIFAR-10 class names")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10_split(directory, split: str = "train") -> CifarSplit:
    """Read every batch of ``split`` ("train": data_batch_1..5, "test":
    test_batch) and batches.meta from ``directory``; no pre-processing.

    Raises FileNotFoundError for a missing directory or file, ValueError for a
    file that is not in the CIFAR-10 python-pickle format.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    files = TRAIN_FILES if split == "train" else TEST_FILES
    directory = _resolve_directory(directory, files + (META_FILE,))
    names = _read_meta(os.path.join(directory, META_FILE))
    parts = [_read_batch(os.path.join(directory, f)) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return CifarSplit(data, labels, names, directory, split)


def _class_groups(classes, names) -> list:
    if isinstance(classes, str):
        if classes != "all":
            raise ValueError(f"classes must be 'all' or a sequence of classes, got {classes!r}")
        classes = tuple(range(10))

    def one(c):
        if isinstance(c, (bool, np.bool_)):
            raise TypeError(f"a class must be an index 0..9 or a name, got {c!r}")
        if isinstance(c, (int, np.integer)):
            if not 0 <= c <= 9:
                raise ValueError(f"class index must lie in 0..9, got {c}")
            return int(c)
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"unknown CIFAR-10 class {c!r}; known: {', '.join(names)}")
            return names.index(c)
        raise TypeError(f"a class must be an index 0..9 or a name, got {c!r}")

    try:
        entries = list(classes)
    except TypeError:
        raise TypeError(f"classes must be a sequence, got {classes!r}") from None
    groups = []
    for entry in entries:
        if isinstance(entry, (list, tuple, set, frozenset)):
            group = tuple(sorted({one(c) for c in entry}))
            if not group:
                raise ValueError("an empty class group")
        else:
            group = (one(entry),)
        groups.append(group)
    if len(groups) < 2:
        raise ValueError(f"need at least two classes (binary) or more (multi-class), got {len(groups)}")
    flat = [c for g in groups for c in g]
    if len(flat) != len(set(flat)):
        raise ValueError(f"classes overlap: {classes!r}")
    return groups


def _global_stats(data):
    """Mean and population std of each coordinate over all rows, in float64,
    accumulated in chunks (the training split is 50 000 × 3072)."""
    total = np.zeros(D)
    total_sq = np.zeros(D)
    for start in range(0, data.shape[0], 4096):
        chunk = data[start:start + 4096].astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += (chunk * chunk).sum(axis=0)
    N = data.shape[0]
    mean = total / N
    var = np.maximum(total_sq / N - mean * mean, 0.0)
    return mean, np.sqrt(var)


def _to_channel_last(rows):
    """(m, 3072) channel-first (R plane, G plane, B plane) → channel-last HWC rows."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(-1, D)


def _group_name(group, names):
    return "+".join(names[c] for c in group) if len(group) > 1 else names[group[0]]


def cifar10(directory, n: int, classes=(0, 1), split: str = "train", standardize: str = "per-image",
            seed: int = 0) -> Dataset:
    """n CIFAR-10 images of the given classes as a :class:`rftheory.data.synthetic.Dataset`.

    Rows lie on the √d-sphere (d = 3072), channel-last, ``image_shape``
    (32, 32, 3); see the module docstring for the class selection, the labels
    and the two standardisations.

    Raises FileNotFoundError for a missing directory/file and ValueError for
    an invalid file, unknown classes or too large an n.
    """
    check_count(n, "n")
    if standardize not in STANDARDIZATIONS:
        raise ValueError(f"standardize must be one of {STANDARDIZATIONS}, got {standardize!r}")
    raw = load_cifar10_split(directory, split)
    groups = _class_groups(classes, raw.label_names)
    k = len(groups)
    data = raw.data
    if standardize == "per-image":
        usable = data.max(axis=1) > data.min(axis=1)  # constant images cannot be standardised
    else:
        usable = np.ones(data.shape[0], dtype=bool)
    rng = np.random.default_rng([seed, 3072])
    counts = [n // k + (1 if j < n % k else 0) for j in range(k)]
    chosen, group_of = [], []
    for j, (group, m) in enumerate(zip(groups, counts)):
        pool = np.flatnonzero(np.isin(raw.labels, group) & usable)
        if m > pool.size:
            raise ValueError(
                f"n={n} needs {m} images of {_group_name(group, raw.label_names)} but the {split} split has "
                f"{pool.size}"
            )
        pick = rng.choice(pool, size=m, replace=False)
        chosen.append(pick)
        group_of.append(np.full(m, j))
    idx = np.concatenate(chosen)
    gidx = np.concatenate(group_of)
    order = np.argsort(idx, kind="stable")
    idx, gidx = idx[order], gidx[order]
    rows = data[idx].astype(np.float64)
    if standardize == "per-image":
        Z = rows - rows.mean(axis=1, keepdims=True)
        Z /= rows.std(axis=1, keepdims=True)
        how = "per-image standardised (own mean/std), rows on √d-sphere"
    else:
        mean, std = _global_stats(data)
        Z = np.where(std > 0, (rows - mean) / np.where(std > 0, std, 1.0), 0.0)
        how = f"globally standardised (per-pixel mean/std over the {data.shape[0]} {split} images), rows on √d-sphere"
    X = project_to_sphere(_to_channel_last(Z))
    y = np.where(gidx == 0, -1.0, 1.0) if k == 2 else 2.0 * gidx / (k - 1) - 1.0
    task = "binary" if k == 2 else f"{k}-class"
    label_desc = " vs ".join(_group_name(g, raw.label_names) for g in groups)
    desc = f"CIFAR-10 {split} n={n} {task} ({label_desc}) seed={seed} ({how}, HWC order)"
    return Dataset(X, y, desc, IMAGE_SHAPE)


def one_hot(y, k: int | None = None) -> np.ndarray:
    """One-hot targets (n×k) from the scalar labels y = 2j/(k−1) − 1 of
    :func:`cifar10` (binary: y = ±1 → columns (−1 → 0, +1 → 1))."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if k is None:
        k = int(np.unique(y).size)
    if k < 2:
        raise ValueError(f"need k ≥ 2 classes, got {k}")
    j = np.rint((y + 1.0) * (k - 1) / 2.0).astype(np.int64)
    if np.any(np.abs(2.0 * j / (k - 1) - 1.0 - y) > 1e-9) or j.min() < 0 or j.max() >= k:
        raise ValueError(f"y does not hold labels 2j/(k−1) − 1 with k={k}")
    out = np.zeros((y.size, k))
    out[np.arange(y.size), j] = 1.0
    return out

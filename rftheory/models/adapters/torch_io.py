"""Load adapters from ``.npz`` files exported from PyTorch state_dicts (no torch needed).

File format
-----------
A NumPy ``.npz`` archive (``numpy.savez``) whose arrays are

* ``<name>``        the trained parameters, one per state_dict entry, with
  PyTorch's names and layouts (Linear weight: out×in; Conv2d weight:
  out×in×3×3);
* ``init.<name>``   the same parameters at initialisation (needed for the
  attacked Θ = (W_L − W_L^init)ᵀ: ``init.head.weight`` is required, any
  other missing ``init.*`` is taken equal to the trained value);
* ``meta.<key>``    optional 0-d string arrays describing the architecture:
  ``meta.architecture`` ("mlp" or "resnet"), ``meta.activation`` (an
  rftheory activation name, e.g. "relu"), ``meta.image_shape`` (e.g.
  "1,8,8"), ``meta.pool`` ("flatten" or "avg").

Key mapping (PyTorch module → rftheory adapter)
-----------------------------------------------
Two-layer MLP (:class:`~rftheory.models.adapters.TwoLayerMLP`)::

    hidden.weight  (m, d)   W₁          hidden.bias  (m,)   b₁   [optional]
    head.weight    (C, m)   W₂ = W_L    head.bias    (C,)   b₂   [optional]

A plain ``nn.Sequential(nn.Linear(d, m), <σ>, nn.Linear(m, C))`` has the keys
``0.weight, 0.bias, 2.weight, 2.bias``; they are recognised and mapped to
``hidden.*`` and ``head.*`` automatically (so are ``0.*, 1.*, 3.*`` of
``nn.Sequential(nn.Linear, nn.BatchNorm1d, <σ>, nn.Linear)``, the BatchNorm
mapped to ``hidden_bn.*``).  Any other naming: pass
``key_map={"their.name": "our.name", ...}`` (prefix renames also work:
``{"fc1.": "hidden.", "fc2.": "head."}``).

Small ResNet (:class:`~rftheory.models.adapters.SmallResNet`)::

    stem.weight               (c, c₀, 3, 3)   stem.bias               (c,)
    blocks.{k}.conv1.weight   (c, c, 3, 3)    blocks.{k}.conv1.bias   (c,)
    blocks.{k}.conv2.weight   (c, c, 3, 3)    blocks.{k}.conv2.bias   (c,)
    head.weight               (C, p_L)        head.bias               (C,)  [optional]

for k = 0..B−1, with Conv2d(kernel 3, stride 1, padding 1) and the forward
pass of :mod:`rftheory.models.adapters.resnet` (stem → σ; per block
a ← σ(a + conv2(σ(conv1(a)))) → flatten (p_L = c·H·W) or global mean
(p_L = c) → head).  The input size (c₀ from stem.weight, H, W from
``meta.image_shape`` or the ``image_shape`` argument) fixes d = c₀·H·W; the
pooling follows from p_L (``head.weight`` columns).

BatchNorm (folded on import)
----------------------------
A BatchNorm directly after a convolution (or after the MLP's hidden Linear),
before its σ or the residual add, is read under the names::

    stem_bn.*          after stem                a₀ = σ(BN(stem(x)))
    blocks.{k}.bn1.*   after blocks.{k}.conv1    v = σ(BN₁(conv1(a)))
    blocks.{k}.bn2.*   after blocks.{k}.conv2    a ← σ(a + BN₂(conv2(v)))
    hidden_bn.*        after hidden (MLP)        h = σ(BN(hidden(x)))

each with ``weight`` γ, ``bias`` β (absent for ``affine=False``: γ = 1,
β = 0), ``running_mean`` μ, ``running_var`` v and ``num_batches_tracked``
(ignored).  In eval mode BN(z) = (z − μ)·γ/√(v + eps) + β per output channel,
an affine map, so it is folded into the layer before it:

    W' = W · s,   b' = (b − μ) · s + β,   s = γ / √(v + eps)   (per output channel c)

(W scaled along its first axis; a layer without bias, the usual
``Conv2d(..., bias=False)`` before a BN, has b = 0).  The loaded model is
the plain adapter with (W', b'); the initial parameters (``init.*``) are
folded the same way.  ``eps`` is not part of a state_dict: it is the
``bn_eps`` argument, else ``meta.bn_eps``, else PyTorch's default 1e-5.
The fold is exact for BN in eval mode (running statistics) only: in train
mode BN normalises with the statistics of the current batch, so every
sample's output, and its gradient, depends on the whole batch and no
per-sample network equals it.  A BN without running statistics
(``track_running_stats=False``) uses batch statistics even in eval mode and
is refused.

:func:`torch_module` builds the equivalent ``torch.nn.Module`` (needs torch;
``batchnorm=True`` inserts these BN layers) and :func:`export_npz` writes an
adapter, or any state_dict, in this format.

The initial weights: copy them before training
----------------------------------------------
``net.state_dict()`` holds references to the live parameter tensors, and the
optimiser updates them in place: ``init = net.state_dict()`` taken before
training holds the *trained* weights afterwards, and Θ = W_L − W_L^init is
the zero matrix.  Save a copy, ``init = copy.deepcopy(net.state_dict())``
(or ``{k: v.detach().clone() for k, v in net.state_dict().items()}``).
:func:`load_npz` refuses a file whose ``init.head.weight`` equals
``head.weight`` (Θ = 0), naming this cause when every ``init.*`` array
equals its trained array.

Reading an untrusted file
-------------------------
:func:`load_npz` never unpickles (``allow_pickle=False``) and reads the
header (shape, dtype) of every member through :mod:`numpy.lib.format` before
loading anything: a member that is not a ``.npy`` array, an object dtype, or
a total decompressed size above ``max_bytes`` (default
:data:`DEFAULT_MAX_BYTES` = 2 GiB; a small compressed archive can declare
arrays of many GiB) is refused up front.  A truncated or corrupt archive is a
ValueError naming the file; so are parameters that are not real numbers,
contain NaN/inf, or have the wrong number of dimensions.
"""
from __future__ import annotations

import math
import os
import warnings
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from ..activations import get_activation
from ...backend import to_numpy
from .mlp import TwoLayerMLP
from .resnet import SmallResNet

__all__ = ["export_npz", "export_state_dict_npz", "fold_batchnorm", "load_npz", "state_dict", "torch_module",
           "BN_EPS"]

DEFAULT_MAX_BYTES = 2 * 1024**3  # cap on the decompressed size of all arrays of one .npz
INIT_PREFIX = "init."
META_PREFIX = "meta."
BN_EPS = 1e-5  # torch.nn.BatchNorm{1,2}d's default eps (eps is not saved in a state_dict)
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")
_SEQUENTIAL_MLP = {"0.weight": "hidden.weight", "0.bias": "hidden.bias",
                   "2.weight": "head.weight", "2.bias": "head.bias"}
# nn.Sequential(nn.Linear(d, m), nn.BatchNorm1d(m), <σ>, nn.Linear(m, C))
_SEQUENTIAL_MLP_BN = {"0.": "hidden.", "1.": "hidden_bn.", "3.": "head."}
DEEP_COPY_FIX = ("save a copy before training: init = copy.deepcopy(net.state_dict()) "
                 "(or {k: v.detach().clone() for k, v in net.state_dict().items()})")


def _to_array(v):
    if hasattr(v, "detach"):  # a torch tensor: no torch import needed
        v = v.detach().cpu().numpy()
    return np.asarray(to_numpy(v))


def export_state_dict_npz(path, state_dict, init_state_dict=None, *, meta=None) -> None:
    """Write ``state_dict`` (name → tensor/array), optionally ``init_state_dict``
    (stored under ``init.<name>``) and ``meta`` (dict → ``meta.<key>`` strings)
    to the ``.npz`` file ``path``.

    From PyTorch: ``init = copy.deepcopy(net.state_dict())`` before training
    (a plain ``net.state_dict()`` would alias the tensors that training
    updates in place), then ``export_state_dict_npz("net.npz",
    net.state_dict(), init, meta={"activation": "relu", "image_shape": "1,8,8"})``
    (add ``"bn_eps"`` for BatchNorm layers whose eps is not PyTorch's default).
    """
    arrays = {}
    for k, v in dict(state_dict).items():
        arrays[str(k)] = _to_array(v)
    for k, v in dict(init_state_dict or {}).items():
        arrays[INIT_PREFIX + str(k)] = _to_array(v)
    for k, v in dict(meta or {}).items():
        if isinstance(v, (tuple, list)):
            v = ",".join(str(x) for x in v)
        arrays[META_PREFIX + str(k)] = np.asarray(str(v))
    np.savez(path, **arrays)


def state_dict(model, which: str = "trained") -> dict:
    """The adapter's parameters as a dict of NumPy arrays with PyTorch names
    (``which`` = "trained" or "init")."""
    if which not in ("trained", "init"):
        raise ValueError(f"which must be 'trained' or 'init', got {which!r}")
    src = model.params if which == "trained" else model.init_params
    return {k: to_numpy(v).copy() for k, v in src.items()}


def _meta_of(model) -> dict:
    meta = {"activation": model.activation.name}
    if isinstance(model, TwoLayerMLP):
        meta["architecture"] = "mlp"
    else:
        meta.update(architecture="resnet", image_shape=model.image_shape, pool=model.pool)
    return meta


def export_npz(model, path) -> None:
    """Write an adapter (trained and initial parameters, and its meta) to ``path``."""
    export_state_dict_npz(path, state_dict(model), state_dict(model, "init"), meta=_meta_of(model))


def _auto_key_map(params: dict):
    """The renaming of a plain ``nn.Sequential`` MLP (with or without a BatchNorm1d), or None."""
    if "hidden.weight" in params or "0.weight" not in params:
        return None
    if "2.weight" in params:
        return _SEQUENTIAL_MLP
    if "3.weight" in params and "1.running_mean" in params:
        return _SEQUENTIAL_MLP_BN
    return None


def _rename(params: dict, key_map: dict | None) -> dict:
    if not key_map:
        return params
    out = {}
    for k, v in params.items():
        new = key_map.get(k)
        if new is None:
            for old_prefix, new_prefix in key_map.items():
                if old_prefix.endswith(".") and k.startswith(old_prefix):
                    new = new_prefix + k[len(old_prefix):]
                    break
        out[new if new is not None else k] = v
    return out


def _looks_like_batchnorm(keys) -> list:
    return sorted(k for k in keys if k.rsplit(".", 1)[-1] in _BN_STATS)


def _shape_check(params: dict, expected: dict, what: str):
    extra = sorted(set(params) - set(expected))
    bn = _looks_like_batchnorm(extra)
    if bn:  # first: a BatchNorm under another name also leaves its layer's bias missing
        layers = sorted({k.rsplit(".", 1)[0] + ".*" for k in bn})
        raise ValueError(
            f"{what}: unexpected parameter(s) {extra}: {layers} look like BatchNorm layers (running_mean/"
            "running_var). A BatchNorm directly after a layer is folded into it (exact in eval mode) when "
            "named stem_bn.*, blocks.{k}.bn1.*, blocks.{k}.bn2.* (ResNet) or hidden_bn.* (MLP): rename "
            "yours with key_map, e.g. {'bn1.': 'stem_bn.'}. A BatchNorm anywhere else (after the residual "
            "add, before the head) has no counterpart in the adapters")
    for k, shape in expected.items():
        if k not in params:
            raise ValueError(f"{what}: missing parameter {k!r}; found {sorted(params)}")
        if tuple(params[k].shape) != tuple(shape):
            raise ValueError(f"{what}: {k!r} has shape {tuple(params[k].shape)}, expected {tuple(shape)}")
    if extra:
        raise ValueError(f"{what}: unexpected parameter(s) {extra} (use key_map to rename)")


# ---- BatchNorm folding ---------------------------------------------------------------------------

def fold_batchnorm(weight, bias, running_mean, running_var, gamma=None, beta=None, eps: float = BN_EPS):
    """Fold an eval-mode BatchNorm into the layer before it (float64 NumPy arrays).

    The layer computes z = W x + b with one output per row of ``weight``
    (Linear: (m, d); Conv2d: (c_out, c_in, kh, kw)); the BatchNorm after it
    computes (z − μ)·γ/√(v + eps) + β per output.  Their composition is the
    layer with

        W' = W · s  (row c scaled by s_c),   b' = (b − μ) · s + β,   s = γ / √(v + eps).

    ``bias`` None means b = 0; ``gamma``/``beta`` None mean γ = 1, β = 0
    (``affine=False``).  Returns (W', b').
    """
    W = np.asarray(weight, dtype=np.float64)
    mu = np.asarray(running_mean, dtype=np.float64)
    var = np.asarray(running_var, dtype=np.float64)
    g = np.ones_like(mu) if gamma is None else np.asarray(gamma, dtype=np.float64)
    beta = np.zeros_like(mu) if beta is None else np.asarray(beta, dtype=np.float64)
    b = np.zeros_like(mu) if bias is None else np.asarray(bias, dtype=np.float64)
    s = g / np.sqrt(var + eps)
    return W * s.reshape((-1,) + (1,) * (W.ndim - 1)), (b - mu) * s + beta


def _bn_layers(architecture: str, params: dict) -> list:
    """(layer, BatchNorm) name pairs that may be folded: the BN directly after each layer."""
    if architecture == "mlp":
        return [("hidden", "hidden_bn")]
    blocks = sorted({k.split(".")[1] for k in params if k.startswith("blocks.") and k.count(".") >= 2})
    pairs = [("stem", "stem_bn")]
    for b in blocks:
        pairs += [(f"blocks.{b}.conv1", f"blocks.{b}.bn1"), (f"blocks.{b}.conv2", f"blocks.{b}.bn2")]
    return pairs


def _fold_all(params: dict, architecture: str, eps: float, what: str):
    """``params`` with every BatchNorm of :func:`_bn_layers` folded into its layer; and the BN names folded.

    BN entries with names other than :data:`BN_KEYS` are left in place (reported as unexpected later)."""
    out = dict(params)
    folded = []
    for layer, bn in _bn_layers(architecture, params):
        found = {k[len(bn) + 1:]: k for k in params if k.startswith(bn + ".")}
        if not found:
            continue
        parts = {name: out.pop(found[name]) for name in BN_KEYS if name in found}
        if "running_mean" not in parts or "running_var" not in parts:
            raise ValueError(
                f"{what}: BatchNorm {bn}.* has no running_mean/running_var: without running statistics "
                "(track_running_stats=False) BatchNorm normalises every batch by its own statistics, even in "
                f"eval mode, so it is no fixed map and cannot be folded into {layer}")
        if layer + ".weight" not in out:
            raise ValueError(f"{what}: BatchNorm {bn}.* follows {layer}, but there is no {layer}.weight to fold it "
                             f"into; found {sorted(params)}")
        W = out[layer + ".weight"]
        if W.ndim < 2:
            raise ValueError(f"{what}: {layer + '.weight'!r} has shape {tuple(W.shape)}: expected a Linear or Conv2d "
                             "weight (outputs first)")
        c = W.shape[0]
        for name in ("weight", "bias", "running_mean", "running_var"):
            if name in parts and tuple(parts[name].shape) != (c,):
                raise ValueError(f"{what}: {bn}.{name} has shape {tuple(parts[name].shape)}, expected ({c},) "
                                 f"(one per output channel of {layer})")
        bias = out.get(layer + ".bias")
        if bias is not None and tuple(bias.shape) != (c,):
            raise ValueError(f"{what}: {layer}.bias has shape {tuple(bias.shape)}, expected ({c},)")
        if np.any(parts["running_var"] + eps <= 0):
            raise ValueError(f"{what}: {bn}.running_var + eps has a value ≤ 0 (a variance is ≥ 0)")
        out[layer + ".weight"], out[layer + ".bias"] = fold_batchnorm(
            W, bias, parts["running_mean"], parts["running_var"], parts.get("weight"), parts.get("bias"), eps)
        folded.append(bn)
    return out, folded


def _zero_theta_message(trained: dict, init: dict, path):
    """Why Θ = W_L − W_L^init is zero (init.head.weight equals head.weight), or None when it is not."""
    head, head0 = trained.get("head.weight"), init.get("head.weight")
    if head is None or head0 is None or head.shape != head0.shape or not np.array_equal(head, head0):
        return None
    common = [k for k in init if k in trained and init[k].shape == trained[k].shape]
    differ = sorted(k for k in common if not np.array_equal(init[k], trained[k]))
    if not differ:
        which = ("every init.* array equals its trained array" if len(common) > 1 else
                 "init.head.weight, the only init.* array, equals head.weight")
        return (f"{path}: {which}, so Θ = W_L − W_L^init is the zero matrix and there is nothing to attack. "
                "Likely cause: the initial weights were saved as init = net.state_dict() before training; a "
                "state_dict holds references to the live tensors, which the optimiser updates in place, so init "
                f"ended up holding the trained weights. Fix: {DEEP_COPY_FIX}")
    return (f"{path}: init.head.weight equals head.weight, so Θ = W_L − W_L^init is the zero matrix and there is "
            f"nothing to attack; other init.* arrays differ from the trained ones ({', '.join(differ[:4])}"
            f"{', ...' if len(differ) > 4 else ''}), so the initial state_dict is a copy, not an alias of the trained "
            "one: the head's weight did not change in training (frozen, left out of the optimiser, or a zero "
            "step). The attack needs a trained head")


def _check_ndim(params: dict, key: str, ndim: int, layout: str) -> None:
    if params[key].ndim != ndim:
        raise ValueError(f"{key!r} must be a {ndim}-D array of shape {layout}, got shape {tuple(params[key].shape)}")


def _build(architecture, params, activation, image_shape, dtype, backend):
    if architecture == "mlp":
        if "hidden.weight" not in params or "head.weight" not in params:
            raise ValueError(f"MLP state_dict needs hidden.weight and head.weight, found {sorted(params)}")
        _check_ndim(params, "hidden.weight", 2, "(m, d) (hidden width × input dimension)")
        _check_ndim(params, "head.weight", 2, "(C, m) (outputs × hidden width)")
        m, d = params["hidden.weight"].shape
        C = params["head.weight"].shape[0]
        model = TwoLayerMLP(int(d), int(m), int(C), activation, bias="hidden.bias" in params,
                            head_bias="head.bias" in params, dtype=dtype, backend=backend)
    else:
        if "stem.weight" not in params or "head.weight" not in params:
            raise ValueError(f"ResNet state_dict needs stem.weight and head.weight, found {sorted(params)}")
        _check_ndim(params, "stem.weight", 4, "(c, c₀, 3, 3)")
        _check_ndim(params, "head.weight", 2, "(C, p_L)")
        c, c0 = params["stem.weight"].shape[:2]
        blocks = len({k.split(".")[1] for k in params if k.startswith("blocks.")})
        if image_shape is None:
            raise ValueError("ResNet: the input image size is needed (meta.image_shape in the file or image_shape=)")
        shape = tuple(int(s) for s in image_shape)
        shape = shape if len(shape) == 3 else (int(c0),) + shape
        if shape[0] != c0:
            raise ValueError(f"image_shape {shape} has {shape[0]} channels but stem.weight has {c0}")
        C, pL = params["head.weight"].shape
        if pL == c * shape[1] * shape[2]:
            pool = "flatten"
        elif pL == c:
            pool = "avg"
        else:
            raise ValueError(f"head.weight has {pL} inputs: neither c·H·W = {c * shape[1] * shape[2]} (flatten) nor c = {c} (avg)")
        model = SmallResNet(shape, int(c), blocks, int(C), activation, pool=pool,
                            head_bias="head.bias" in params, dtype=dtype, backend=backend)
    return model


def _member_header(fh):
    """(shape, dtype) from the header of one ``.npy`` stream, read without loading its data."""
    version = npy_format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(fh)
    else:
        shape, _, dtype = npy_format._read_array_header(fh, version)  # (3, 0): no public reader
    return shape, dtype


class _Refused(ValueError):
    """A well-formed archive that this reader will not load (too large, objects, not arrays)."""


def _size(n: int) -> str:
    return f"{n} bytes" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def _read_npz(path, max_bytes: int) -> dict:
    """Every array of the archive, after checking each member's header and the total decompressed size."""
    name = os.fspath(path)
    total = 0
    try:
        with zipfile.ZipFile(name) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise _Refused(f"member {info.filename!r} is not a .npy array")
                with zf.open(info) as fh:
                    shape, dt = _member_header(fh)
                if dt.hasobject:
                    raise _Refused(f"member {info.filename!r} holds Python objects (dtype {dt}); only numbers are read")
                total += math.prod(shape) * dt.itemsize
                if total > max_bytes:
                    raise _Refused(
                        f"its arrays need {_size(total)} once decompressed (member {info.filename!r} has "
                        f"shape {tuple(shape)}, dtype {dt}), above max_bytes = {_size(max_bytes)}; "
                        "pass a larger max_bytes if the file is trusted"
                    )
        with np.load(name, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except _Refused as exc:
        raise ValueError(f"{name}: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError, NotImplementedError) as exc:
        msg = str(exc) or type(exc).__name__
        raise ValueError(f"{name} is not a readable .npz archive of arrays: {msg}") from None


def _check_values(raw: dict, path) -> None:
    """Parameters must be real numbers and finite (NaN/inf would only surface inside the attack)."""
    for k, v in raw.items():
        if k.startswith(META_PREFIX):
            continue
        if v.dtype.kind not in "biuf":
            raise ValueError(f"{path}: {k!r} has dtype {v.dtype}, expected real numbers")
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise ValueError(f"{path}: {k!r} contains {int(np.sum(~np.isfinite(v)))} non-finite value(s) (NaN or inf)")


def load_npz(path, *, architecture=None, activation=None, image_shape=None, key_map=None,
             missing_init: str = "error", zero_theta: str = "error", bn_eps=None, dtype=np.float64,
             backend="numpy", max_bytes: int = DEFAULT_MAX_BYTES):
    """Load a :class:`TwoLayerMLP` or :class:`SmallResNet` from an ``.npz`` (format above).

    BatchNorm layers under the names of the module docstring are folded into
    the layer before them (exact for BN in eval mode).  The returned model's
    ``origin`` is "loaded from PATH" (its :meth:`describe` says so).

    Parameters
    ----------
    architecture : "mlp", "resnet" or None
        None: from ``meta.architecture``, else guessed from the keys
        (``stem.weight`` → resnet).
    activation : str or None
        σ; None: ``meta.activation`` (required then).
    image_shape : tuple or None
        ResNet input (c₀, H, W) or (H, W); None: ``meta.image_shape``.
    key_map : dict or None
        Renames of the file's keys (full names, or prefixes ending in "."),
        applied to the trained and the ``init.*`` arrays alike.
    missing_init : "error" or "zeros"
        Without ``init.*`` arrays: raise, or take W^init = 0 (then the
        attacked Θ is W_Lᵀ itself, valid only for a zero-initialised head).
    zero_theta : "error" or "warn"
        When Θ = W_L − W_L^init is the zero matrix (``init.head.weight``
        equal to ``head.weight``; the usual cause is an initial state_dict
        saved without ``copy.deepcopy``, see the module docstring): raise,
        or warn and load anyway (the model's forward pass is still valid;
        the attack is not).
    bn_eps : float or None
        eps of the BatchNorm layers; None: ``meta.bn_eps``, else
        :data:`BN_EPS` (PyTorch's default).
    dtype, backend
        Of the returned model.
    max_bytes : int
        Refuse a file whose arrays need more than this many bytes once
        decompressed (read from the members' headers before loading).

    Raises FileNotFoundError for a missing file and ValueError for an
    archive that is corrupt, truncated, too large, or whose arrays are not
    finite real parameters of the expected shapes, or give Θ = 0.
    """
    if missing_init not in ("error", "zeros"):
        raise ValueError(f"missing_init must be 'error' or 'zeros', got {missing_init!r}")
    if zero_theta not in ("error", "warn"):
        raise ValueError(f"zero_theta must be 'error' or 'warn', got {zero_theta!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    raw = _read_npz(path, int(max_bytes))
    _check_values(raw, path)
    meta = {k[len(META_PREFIX):]: str(v) for k, v in raw.items() if k.startswith(META_PREFIX)}
    trained = {k: v for k, v in raw.items() if not k.startswith((INIT_PREFIX, META_PREFIX))}
    key_map = _auto_key_map(trained) if key_map is None else key_map
    trained = _rename(trained, key_map)
    init = _rename({k[len(INIT_PREFIX):]: v for k, v in raw.items() if k.startswith(INIT_PREFIX)}, key_map)
    architecture = architecture or meta.get("architecture") or ("resnet" if "stem.weight" in trained else "mlp")
    if architecture not in ("mlp", "resnet"):
        raise ValueError(f"architecture must be 'mlp' or 'resnet', got {architecture!r}")
    activation = activation or meta.get("activation")
    if activation is None:
        raise ValueError("the activation is not in the file (meta.activation): pass activation=")
    get_activation(activation)
    if image_shape is None and "image_shape" in meta:
        image_shape = tuple(int(s) for s in meta["image_shape"].split(","))
    eps = _bn_eps(bn_eps, meta, path)
    if init:
        if "head.weight" not in init:
            raise ValueError(f"{path} (init.*): missing parameter 'head.weight' (the attacked Θ = W_L − W_L^init "
                             f"needs it); found {sorted(init)}")
        zero = _zero_theta_message(trained, init, path)
        init = {**trained, **init}  # other missing init.* are taken as the trained values
    elif missing_init == "error":
        raise ValueError(f"{path} has no init.* arrays: the attacked Θ = W_L − W_L^init needs the initial "
                         "weights (pass missing_init='zeros' for a zero-initialised head)")
    else:
        head = trained.get("head.weight")
        zero = (f"{path}: head.weight is all zeros and missing_init='zeros' takes W_L^init = 0, so Θ = W_L is the "
                "zero matrix and there is nothing to attack"
                if head is not None and head.size and not np.any(head) else None)
    trained, folded = _fold_all(trained, architecture, eps, f"{path}")
    model = _build(architecture, trained, activation, image_shape, dtype, backend)
    expected = {k: v.shape for k, v in model.params.items()}
    _shape_check(trained, expected, f"{path}")
    if init:
        init, _ = _fold_all(init, architecture, eps, f"{path} (init.*)")
        _shape_check(init, expected, f"{path} (init.*)")
    else:
        init = {k: np.zeros_like(v) for k, v in trained.items()}
    if zero is not None:
        if zero_theta == "error":
            raise ValueError(zero + ". Pass zero_theta='warn' to load it anyway")
        warnings.warn(zero + "; loaded anyway (zero_theta='warn')", UserWarning, stacklevel=2)
    xp, dt = model.xp, model.dtype
    model.params = {k: xp.asarray(trained[k], dtype=dt) for k in expected}
    model.init_params = {k: xp.asarray(init[k], dtype=dt) for k in expected}
    model.origin = f"loaded from {os.fspath(path)}"
    if folded:
        model.origin += f" ({len(folded)} BatchNorm layer{'s' if len(folded) > 1 else ''} folded, eval mode)"
    return model


def _bn_eps(bn_eps, meta: dict, path) -> float:
    """eps of the BatchNorm layers: the argument, else ``meta.bn_eps``, else PyTorch's default."""
    source = "bn_eps"
    if bn_eps is None and "bn_eps" in meta:
        source = "meta.bn_eps"
        try:
            bn_eps = float(meta["bn_eps"])
        except ValueError:
            raise ValueError(f"{path}: meta.bn_eps = {meta['bn_eps']!r} is not a number") from None
    if bn_eps is None:
        return BN_EPS
    if isinstance(bn_eps, bool) or not isinstance(bn_eps, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(bn_eps) and bn_eps >= 0):
        raise ValueError(f"{source} must be a finite number ≥ 0, got {bn_eps!r}")
    return float(bn_eps)


# ---- PyTorch reference modules (torch imported lazily) -----------------------------------------

def _torch_activation(torch, activation):
    import torch.nn.functional as F  # noqa: PLC0415

    from ..activations import LEAKY_SLOPE  # noqa: PLC0415

    base = {
        "relu": torch.relu, "tanh": torch.tanh, "abs": torch.abs, "erf": torch.erf,
        "sigmoid": torch.sigmoid, "softplus": F.softplus, "gelu": F.gelu, "silu": F.silu,
        "leaky_relu": lambda z: F.leaky_relu(z, LEAKY_SLOPE),
    }
    act = get_activation(activation)
    parts = act.parts or ((1.0, act),)
    fns = []
    for c, a in parts:
        if a.name not in base:
            raise ValueError(f"no torch counterpart for activation {a.name!r}")
        fns.append((c, base[a.name]))
    return lambda z: sum(c * f(z) for c, f in fns)


def torch_module(model, which: str = "trained", dtype=None, *, batchnorm: bool = False, bn_eps: float = BN_EPS):
    """A ``torch.nn.Module`` equal to the adapter, built from standard torch.nn
    layers (Linear, Conv2d) and loaded with its weights (``which`` =
    "trained" or "init").  ``module(x)`` takes rows x ∈ R^d (images flattened
    channel-major) and returns f(x); ``module.features(x)`` returns h(x).
    The module is returned in eval mode.

    Its ``state_dict()`` keys are exactly the mapping of this module's
    docstring, so a network defined this way in PyTorch exports directly.

    ``batchnorm=True`` puts a BatchNorm (eps ``bn_eps``) after every
    convolution (``stem_bn``, ``blocks.{k}.bn1``, ``blocks.{k}.bn2``) or after
    the MLP's hidden layer (``hidden_bn``), before σ or the residual add: the
    architecture that :func:`load_npz` folds.  Each is set to the identity in
    eval mode (γ = √(1 + eps), β = 0, running mean 0, running variance 1), so
    the module still equals the adapter up to rounding; set its parameters
    and buffers, or train it, to get a network with non-trivial BatchNorm.
    """
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    sigma = _torch_activation(torch, model.activation)
    ident = nn.Identity

    def bn2d(c):
        return nn.BatchNorm2d(c, eps=bn_eps) if batchnorm else ident()

    if isinstance(model, TwoLayerMLP):
        class TorchMLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = nn.Linear(model.d, model.p, bias="hidden.bias" in model.params)
                if batchnorm:
                    self.hidden_bn = nn.BatchNorm1d(model.p, eps=bn_eps)
                self.head = nn.Linear(model.p, model.outputs, bias="head.bias" in model.params)

            def features(self, x):
                z = self.hidden(x)
                return sigma(self.hidden_bn(z) if batchnorm else z)

            def forward(self, x):
                return self.head(self.features(x))

        module = TorchMLP()
    elif isinstance(model, SmallResNet):
        c0, H, W = model.image_shape
        c = model.channels

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(c, c, 3, padding=1)
                self.bn1 = bn2d(c)
                self.conv2 = nn.Conv2d(c, c, 3, padding=1)
                self.bn2 = bn2d(c)

            def forward(self, a):
                return sigma(a + self.bn2(self.conv2(sigma(self.bn1(self.conv1(a))))))

        class TorchResNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(c0, c, 3, padding=1)
                self.stem_bn = bn2d(c)
                self.blocks = nn.ModuleList([Block() for _ in range(model.blocks)])
                self.head = nn.Linear(model.p, model.outputs, bias="head.bias" in model.params)

            def features(self, x):
                a = sigma(self.stem_bn(self.stem(x.reshape(x.shape[0], c0, H, W))))
                for block in self.blocks:
                    a = block(a)
                return torch.flatten(a, 1) if model.pool == "flatten" else a.mean(dim=(2, 3))

            def forward(self, x):
                return self.head(self.features(x))

        module = TorchResNet()
    else:
        raise TypeError(f"torch_module needs a TwoLayerMLP or SmallResNet, got {type(model).__name__}")
    tdtype = dtype or (torch.float64 if model.dtype == np.float64 else torch.float32)
    module = module.to(tdtype)
    sd = {k: torch.from_numpy(v) for k, v in state_dict(model, which).items()}
    if batchnorm:
        for name, bn in module.named_modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                sd[name + ".weight"] = torch.full_like(bn.weight, math.sqrt(1.0 + bn_eps))
                sd[name + ".bias"] = torch.zeros_like(bn.bias)
                sd[name + ".running_mean"] = torch.zeros_like(bn.running_mean)
                sd[name + ".running_var"] = torch.ones_like(bn.running_var)
                sd[name + ".num_batches_tracked"] = torch.zeros_like(bn.num_batches_tracked)
    module.load_state_dict(sd, strict=True)
    return module.eval()

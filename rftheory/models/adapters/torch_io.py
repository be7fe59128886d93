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
``hidden.*`` and ``head.*`` automatically.  Any other naming: pass
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

:func:`torch_module` builds the equivalent ``torch.nn.Module`` (needs torch)
and :func:`export_npz` writes an adapter, or any state_dict, in this format.

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
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from ..activations import get_activation
from ...backend import to_numpy
from .mlp import TwoLayerMLP
from .resnet import SmallResNet

__all__ = ["export_npz", "export_state_dict_npz", "load_npz", "state_dict", "torch_module"]

DEFAULT_MAX_BYTES = 2 * 1024**3  # cap on the decompressed size of all arrays of one .npz
INIT_PREFIX = "init."
META_PREFIX = "meta."
_SEQUENTIAL_MLP = {"0.weight": "hidden.weight", "0.bias": "hidden.bias",
                   "2.weight": "head.weight", "2.bias": "head.bias"}


def _to_array(v):
    if hasattr(v, "detach"):  # a torch tensor: no torch import needed
        v = v.detach().cpu().numpy()
    return np.asarray(to_numpy(v))


def export_state_dict_npz(path, state_dict, init_state_dict=None, *, meta=None) -> None:
    """Write ``state_dict`` (name → tensor/array), optionally ``init_state_dict``
    (stored under ``init.<name>``) and ``meta`` (dict → ``meta.<key>`` strings)
    to the ``.npz`` file ``path``.

    From PyTorch: ``init = copy.deepcopy(net.state_dict())`` before training,
    then ``export_state_dict_npz("net.npz", net.state_dict(), init,
    meta={"activation": "relu", "image_shape": "1,8,8"})``.
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


def _rename(params: dict, key_map: dict | None) -> dict:
    if key_map is None:
        if "hidden.weight" not in params and "0.weight" in params and "2.weight" in params:
            key_map = _SEQUENTIAL_MLP
        else:
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


def _shape_check(params: dict, expected: dict, what: str, required=None):
    for k, shape in expected.items():
        if k not in params:
            if required is not None and k not in required:
                continue
            raise ValueError(f"{what}: missing parameter {k!r}; found {sorted(params)}")
        if tuple(params[k].shape) != tuple(shape):
            raise ValueError(f"{what}: {k!r} has shape {tuple(params[k].shape)}, expected {tuple(shape)}")
    extra = sorted(set(params) - set(expected))
    if extra:
        raise ValueError(f"{what}: unexpected parameter(s) {extra} (use key_map to rename)")


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
             missing_init: str = "error", dtype=np.float64, backend="numpy", max_bytes: int = DEFAULT_MAX_BYTES):
    """Load a :class:`TwoLayerMLP` or :class:`SmallResNet` from an ``.npz`` (format above).

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
        Renames of the file's keys (full names, or prefixes ending in ".").
    missing_init : "error" or "zeros"
        Without ``init.*`` arrays: raise, or take W^init = 0 (then the
        attacked Θ is W_Lᵀ itself, valid only for a zero-initialised head).
    dtype, backend
        Of the returned model.
    max_bytes : int
        Refuse a file whose arrays need more than this many bytes once
        decompressed (read from the members' headers before loading).

    Raises FileNotFoundError for a missing file and ValueError for an
    archive that is corrupt, truncated, too large, or whose arrays are not
    finite real parameters of the expected shapes.
    """
    if missing_init not in ("error", "zeros"):
        raise ValueError(f"missing_init must be 'error' or 'zeros', got {missing_init!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    raw = _read_npz(path, int(max_bytes))
    _check_values(raw, path)
    meta = {k[len(META_PREFIX):]: str(v) for k, v in raw.items() if k.startswith(META_PREFIX)}
    trained = _rename({k: v for k, v in raw.items() if not k.startswith((INIT_PREFIX, META_PREFIX))}, key_map)
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
    model = _build(architecture, trained, activation, image_shape, dtype, backend)
    expected = {k: v.shape for k, v in model.params.items()}
    _shape_check(trained, expected, f"{path}")
    if init:  # init.head.weight is required; other missing init.* are taken as the trained values
        _shape_check(init, expected, f"{path} (init.*)", required=("head.weight",))
        init = {k: init.get(k, trained[k]) for k in expected}
    elif missing_init == "error":
        raise ValueError(f"{path} has no init.* arrays: the attacked Θ = W_L − W_L^init needs the initial "
                         "weights (pass missing_init='zeros' for a zero-initialised head)")
    else:
        init = {k: np.zeros_like(v) for k, v in trained.items()}
    xp, dt = model.xp, model.dtype
    model.params = {k: xp.asarray(trained[k], dtype=dt) for k in expected}
    model.init_params = {k: xp.asarray(init[k], dtype=dt) for k in expected}
    return model


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


def torch_module(model, which: str = "trained", dtype=None):
    """A ``torch.nn.Module`` equal to the adapter, built from standard torch.nn
    layers (Linear, Conv2d) and loaded with its weights (``which`` =
    "trained" or "init").  ``module(x)`` takes rows x ∈ R^d (images flattened
    channel-major) and returns f(x); ``module.features(x)`` returns h(x).

    Its ``state_dict()`` keys are exactly the mapping of this module's
    docstring, so a network defined this way in PyTorch exports directly.
    """
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    sigma = _torch_activation(torch, model.activation)
    if isinstance(model, TwoLayerMLP):
        class TorchMLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = nn.Linear(model.d, model.p, bias="hidden.bias" in model.params)
                self.head = nn.Linear(model.p, model.outputs, bias="head.bias" in model.params)

            def features(self, x):
                return sigma(self.hidden(x))

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
                self.conv2 = nn.Conv2d(c, c, 3, padding=1)

            def forward(self, a):
                return sigma(a + self.conv2(sigma(self.conv1(a))))

        class TorchResNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(c0, c, 3, padding=1)
                self.blocks = nn.ModuleList([Block() for _ in range(model.blocks)])
                self.head = nn.Linear(model.p, model.outputs, bias="head.bias" in model.params)

            def features(self, x):
                a = sigma(self.stem(x.reshape(x.shape[0], c0, H, W)))
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
    module.load_state_dict(sd, strict=True)
    return module

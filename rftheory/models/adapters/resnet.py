"""Small ResNet adapter (NumPy/CuPy, no torch): convolutions through im2col.

Input: a row x ∈ R^d is an image of shape (c₀, H, W) flattened channel-major
(d = c₀·H·W, the order of ``torch.flatten`` on an N×C×H×W batch).
Network (PyTorch state_dict names in brackets; all convolutions 3×3,
stride 1, zero padding 1, so every map stays H×W):

    a₀ = σ(conv(x; K₀, c₀→c) + β₀)                   ["stem.weight", "stem.bias"]
    for block k = 1..B:                                 ["blocks.{k-1}.conv1.*", "blocks.{k-1}.conv2.*"]
        u = conv(a; K_k1) + β_k1,   v = σ(u)
        a ← σ(a + conv(v; K_k2) + β_k2)                (identity shortcut)
    h(x) = flatten(a) ∈ R^{c·H·W}   (pool="flatten", channel-major)
         or mean_{H,W}(a) ∈ R^c     (pool="avg", global average pooling)
    f(x) = W_L h(x) + b_L ∈ R^C                       ["head.weight", "head.bias"]

so p_L = c·H·W (flatten) or c (avg).  No batch normalisation: a BN after a
convolution, in eval mode, is an affine map per channel and folds into that
convolution's weight and bias
(:func:`~rftheory.models.adapters.torch_io.load_npz` does so on import).

Convolution as a matrix product (im2col): with zero-padded maps, column
(ci, kh, kw) of the patch matrix P ∈ R^{nHW × 9c_in} holds
a_pad[ci, y+kh, x+kw], and conv(a; K) = P K̃ᵀ with K̃ = K.reshape(c_out, 9c_in)
(PyTorch's cross-correlation).  Reverse mode: ∂/∂K̃ = Gᵀ P, ∂/∂β = Σ G, and
∂/∂a scatters G K̃ back through the nine shifted windows (col2im).  Maps are
held as N×H×W×C internally; the flattening of h is channel-major as in
PyTorch.

Initialisation (seeded, host-side): conv weights N(0, 1/(9 c_in)), head
W_L ~ N(0, 1/p_L), biases 0.

Attack: as for every adapter, features are h(x) of the trained body and
Θ = (W_L − W_L^init)ᵀ.  With ``train="last"`` the body is the random
initialisation and Θ lies exactly in span h(X) (a random-features model with
ResNet features); with ``train="all"`` the span holds up to the drift of the
body during training, measured by the loss at the true X (see
:mod:`rftheory.models.adapters.mlp` for the argument).  The law needs p_L ≳ d·n:
with pool="flatten" that is c ≳ c₀·n channels; pool="avg" has p_L = c,
far below d·n for any practical width.
"""
from __future__ import annotations

import math

import numpy as np

from ..activations import get_activation
from ...backend import resolve_backend
from ...validation import check_count
from ._base import FeatureMapModel

__all__ = ["SmallResNet", "conv3x3", "conv3x3_backward", "POOLS"]

POOLS = ("flatten", "avg")
_OFFSETS = tuple((i, j) for i in range(3) for j in range(3))


def _im2col(xp, a):
    """a (n,H,W,c) → patches (n·H·W, 9c), column order (c, kh, kw)."""
    n, H, W, c = a.shape
    ap = xp.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = xp.stack([ap[:, i:i + H, j:j + W, :] for i, j in _OFFSETS], axis=-1)  # (n,H,W,c,9)
    return cols.reshape(n * H * W, c * 9)


def conv3x3(xp, a, K, beta=None):
    """3×3, stride 1, zero-padding-1 cross-correlation (PyTorch's Conv2d).

    a: (n, H, W, c_in) maps; K: (c_out, c_in, 3, 3); beta: (c_out,) or None.
    Returns (out (n, H, W, c_out), patches P (nHW × 9c_in)).
    """
    n, H, W, _ = a.shape
    P = _im2col(xp, a)
    out = P @ K.reshape(K.shape[0], -1).T
    if beta is not None:
        out += beta
    return out.reshape(n, H, W, K.shape[0]), P


def conv3x3_backward(xp, G, K, P=None, need_input=True):
    """Reverse mode of :func:`conv3x3` for the output cotangent G (n,H,W,c_out).

    Returns (∂/∂a (n,H,W,c_in) or None, ∂/∂K (c_out,c_in,3,3) or None when P
    is None, ∂/∂β (c_out,) or None when P is None).
    """
    n, H, W, co = G.shape
    ci = K.shape[1]
    G2 = G.reshape(n * H * W, co)
    dA = None
    if need_input:
        dP = (G2 @ K.reshape(co, ci * 9)).reshape(n, H, W, ci, 9)
        dpad = xp.zeros((n, H + 2, W + 2, ci), dtype=G.dtype)
        for k, (i, j) in enumerate(_OFFSETS):  # col2im: scatter the nine windows back
            dpad[:, i:i + H, j:j + W, :] += dP[..., k]
        dA = dpad[:, 1:H + 1, 1:W + 1, :]
    if P is None:
        return dA, None, None
    return dA, (G2.T @ P).reshape(K.shape), G2.sum(axis=0)


class SmallResNet(FeatureMapModel):
    """Conv stem, ``blocks`` residual blocks of two 3×3 convs, linear head.

    Parameters
    ----------
    image_shape : (c₀, H, W) or (H, W)
        Shape of one input image; d = c₀·H·W (rows of X are flattened
        channel-major).
    channels : int
        c, the width of every convolution.
    blocks : int
        Number of residual blocks B (≥ 0).
    outputs : int
        C, number of outputs.
    activation : str or Activation
        σ after the stem, inside and after each block.
    pool : "flatten" or "avg"
        Last-layer features: the flattened map (p_L = c·H·W) or its global
        average over positions (p_L = c).
    head_bias : bool
        Output bias (trained, not attacked).
    seed, dtype, backend
        As for :class:`~rftheory.models.adapters.mlp.TwoLayerMLP`.
    """

    def __init__(self, image_shape=(1, 8, 8), channels: int = 16, blocks: int = 1, outputs: int = 1,
                 activation="relu", *, pool: str = "flatten", head_bias: bool = True, seed: int = 0,
                 dtype=np.float64, backend="numpy"):
        shape = tuple(int(s) for s in image_shape)
        if len(shape) == 2:
            shape = (1,) + shape
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape must be (channels, H, W) or (H, W) of positive sizes, got {image_shape!r}")
        check_count(channels, "channels")
        check_count(outputs, "outputs")
        check_count(blocks, "blocks", minimum=0)
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype}")
        self.xp = resolve_backend(backend)
        self.activation = get_activation(activation)
        self.image_shape, self.channels, self.blocks, self.pool = shape, int(channels), int(blocks), pool
        self.seed = int(seed)
        c0, H, W = shape
        self.d = c0 * H * W
        self.p = channels * H * W if pool == "flatten" else channels
        c = channels
        self.params = {"stem.weight": self._normal(1, (c, c0, 3, 3), 1 / math.sqrt(9 * c0)),
                       "stem.bias": self.xp.zeros(c, dtype=self.dtype)}
        for k in range(blocks):
            for j, conv in enumerate(("conv1", "conv2")):
                self.params[f"blocks.{k}.{conv}.weight"] = self._normal(10 + 2 * k + j, (c, c, 3, 3), 1 / math.sqrt(9 * c))
                self.params[f"blocks.{k}.{conv}.bias"] = self.xp.zeros(c, dtype=self.dtype)
        self.params["head.weight"] = self._normal(2, (outputs, self.p), 1 / math.sqrt(self.p))
        if head_bias:
            self.params["head.bias"] = self.xp.zeros(outputs, dtype=self.dtype)
        self._freeze_init()

    def describe(self) -> str:
        c0, H, W = self.image_shape
        return (f"ResNet input {c0}×{H}×{W}, stem 3×3 conv → {self.channels} channels, {self.blocks} residual "
                f"block(s) of two 3×3 convs, σ={self.activation.name}, {self.pool} → p_L={self.p} → C={self.outputs}, "
                f"{self._origin_words()}, total p={self.n_params}")

    # ---- body ---------------------------------------------------------------------------
    def _body_forward(self, X, keep: bool):
        xp, act, P_ = self.xp, self.activation, self.params
        c0, H, W = self.image_shape
        n = X.shape[0]
        a = X.reshape(n, c0, H, W).transpose(0, 2, 3, 1)  # NCHW → NHWC
        cache = []
        s, P = conv3x3(xp, a, P_["stem.weight"], P_["stem.bias"])
        a = act.fn(s)
        if keep:
            cache.append((P, s))
        for k in range(self.blocks):
            u, P1 = conv3x3(xp, a, P_[f"blocks.{k}.conv1.weight"], P_[f"blocks.{k}.conv1.bias"])
            v = act.fn(u)
            w, P2 = conv3x3(xp, v, P_[f"blocks.{k}.conv2.weight"], P_[f"blocks.{k}.conv2.bias"])
            s = a + w
            a = act.fn(s)
            if keep:
                cache.append((P1, u, P2, s))
        if self.pool == "flatten":
            Hf = a.transpose(0, 3, 1, 2).reshape(n, self.p)  # channel-major, as torch.flatten
        else:
            Hf = a.mean(axis=(1, 2))
        return Hf, (cache if keep else None)

    def _body_backward(self, cache, G, param_grads: bool):
        xp, act, P_ = self.xp, self.activation, self.params
        c0, H, W = self.image_shape
        c = self.channels
        n = G.shape[0]
        if self.pool == "flatten":
            da = G.reshape(n, c, H, W).transpose(0, 2, 3, 1)
        else:
            da = xp.broadcast_to((G / (H * W))[:, None, None, :], (n, H, W, c))
        grads = {}
        for k in reversed(range(self.blocks)):
            P1, u, P2, s = cache[1 + k]
            ds = da * act.deriv(s)  # a_out = σ(s), s = a_in + conv2(σ(u)), u = conv1(a_in)
            w2, w1 = f"blocks.{k}.conv2", f"blocks.{k}.conv1"
            dv, gK, gb = conv3x3_backward(xp, ds, P_[w2 + ".weight"], P2 if param_grads else None)
            if param_grads:
                grads[w2 + ".weight"], grads[w2 + ".bias"] = gK, gb
            du = dv * act.deriv(u)
            da_conv, gK, gb = conv3x3_backward(xp, du, P_[w1 + ".weight"], P1 if param_grads else None)
            if param_grads:
                grads[w1 + ".weight"], grads[w1 + ".bias"] = gK, gb
            da = ds + da_conv
        P0, s0 = cache[0]
        ds0 = da * act.deriv(s0)
        dx, gK, gb = conv3x3_backward(xp, ds0, P_["stem.weight"], P0 if param_grads else None)
        if param_grads:
            grads["stem.weight"], grads["stem.bias"] = gK, gb
        dX = dx.transpose(0, 3, 1, 2).reshape(n, self.d)  # NHWC → NCHW, flattened
        return dX, grads

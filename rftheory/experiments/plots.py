"""Phase-diagram figure of a :func:`rftheory.experiments.law.sweep` table.

Two panels sharing a logarithmic x axis r = p/(dn):

* top: success probability (fraction of seeds whose cell recovered every
  sample, sign-aware error ≤ threshold) per (activation, n, d): the attack
  (solid) and the identifiability probe at each of its angles (dashed, then
  dotted; :func:`rftheory.experiments.cells.run_probe`), with the counting
  limit of θ identifiability on the sphere, p/(dn) = 1/d + (d − 1)/(dC)
  (1 for one output: wrong X̂ up to p = nd, none from nd + 1), as a thin
  dash-dotted line per (d, C);
* middle: mean over seeds of the mean sign-aware relative error (solid) and of
  the signed error (dotted), log scale, with the recovery threshold;
* bottom (its own x axis, the number of outputs C): the measured critical
  ratios r_c per C with their bootstrap intervals, against the counting curve
  of θ identifiability with C outputs on the sphere, C(p − n) > n(d − 1), i.e.
  p > n + n(d − 1)/C or p/(dn) > 1/d + (d − 1)/(dC) (one curve per d; C = 1
  gives the law's 1), and the span limit (n + d − 1)/(dn) of span
  identifiability (dotted, one per (n, d); no spurious zeros from p = n + d),
  which the counting curve reaches at C = n
  (:func:`rftheory.theory.identifiability.counting_ratio`, :func:`rftheory.theory.identifiability.span_ratio`).

The regimes of the law are shaded: p < n (r < 1/d, no interpolation),
n ≤ p ≲ dn (1/d ≤ r ≲ 1, interpolation without identifiability) and p ≳ dn
(r ≳ 1, reconstruction).  With several d the p < n band is drawn once per d
(lighter where only some sizes are in it).  A critical-ratio estimate, if
given, is a vertical line with its bootstrap interval shaded (solid for the
attack, dashed for a probe), its values listed in a box.

matplotlib is imported only when a figure is drawn (``pip install
'rftheory[plot]'``); no pyplot state is touched (object-oriented Figure with
the Agg canvas), so it is safe in scripts, servers and notebooks.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["plot_phase_diagram", "FORMATS"]

FORMATS = ("png", "svg", "pdf")
PROBE_STYLES = ("--", ":")  # line styles of probe slots 1 and 2
OUTCOME_COLORS = {"attack": "k", "probe1": "0.4", "probe2": "0.6"}  # r_c marks: greys, apart from the sizes' colours


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'rftheory[plot]'") from None
    return Figure, FigureCanvasAgg


def plot_phase_diagram(
    rows: Iterable[dict],
    path=None,
    *,
    critical: Sequence | None = None,
    title: str | None = None,
    dpi: int = 150,
):
    """Draw the phase diagram of sweep ``rows``; save it to ``path`` (format
    from the suffix: .png, .svg or .pdf) if given.  ``critical`` is a list of
    :class:`rftheory.experiments.critical.CriticalRatio` (pooled per activation) to mark.
    Returns the matplotlib Figure."""
    from .cells import PROBE_SLOTS  # noqa: PLC0415
    from .critical import summarize  # noqa: PLC0415

    rows = list(rows)
    if not rows:
        raise ValueError("no rows to plot")
    if path is not None:
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"plot file must end in one of {', '.join('.' + f for f in FORMATS)}, got {path.name!r}")
    Figure, FigureCanvasAgg = _matplotlib()
    from matplotlib.lines import Line2D  # noqa: PLC0415

    summary = summarize(rows)
    curves: dict = {}
    for s in summary:
        curves.setdefault((s["activation"], s["n"], s["d"], s["outputs"]), []).append(s)
    activations = sorted({k[0] for k in curves})
    outputs = sorted({k[3] for k in curves})
    sizes = sorted({(k[1], k[2]) for k in curves})
    ds = sorted({d for _, d in sizes})
    ratios = sorted({r["ratio"] for r in rows})
    thresholds = sorted({r["threshold"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})

    fig = Figure(figsize=(7.5, 9.6), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax_s, ax_e, ax_c = fig.subplots(3, 1, gridspec_kw={"height_ratios": [1.1, 1, 1]})
    ax_e.sharex(ax_s)
    lo, hi = min(ratios) / 1.4, max(ratios) * 1.4
    # regimes
    for ax in (ax_s, ax_e):
        for d in ds:
            ax.axvspan(lo, min(1.0 / d, hi), color="tab:red", alpha=0.14 / len(ds) ** 0.5, lw=0)
        ax.axvspan(max(lo, 1.0 / max(ds)), min(1.0, hi), color="tab:orange", alpha=0.10, lw=0)
        ax.axvspan(max(lo, 1.0), hi, color="tab:green", alpha=0.10, lw=0)
        ax.axvline(1.0, color="0.35", lw=0.8, ls="--")
    ymax = 1.08
    label_y = 1.02
    regimes = [
        (math.sqrt(lo * (1.0 / min(ds))) if lo < 1.0 / min(ds) else None, "p < n"),
        (math.sqrt(max(lo, 1.0 / max(ds)) * 1.0) if lo < 1.0 else None, "n ≤ p ≲ dn"),
        (math.sqrt(max(lo, 1.0) * hi), "p ≳ dn"),
    ]
    for xc, text in regimes:
        if xc is not None:
            ax_s.text(xc, label_y, text, ha="center", va="bottom", fontsize=8.5, color="0.25",
                      transform=ax_s.get_xaxis_transform())

    colors = {}
    cmap = _cmap(len(sizes))
    for i, size in enumerate(sizes):
        colors[size] = cmap[i]
    markers = ["o", "s", "^", "D"]
    slots = [k for k in range(1, PROBE_SLOTS + 1)
             if any(np.isfinite(pt.get(f"probe{k}_success_rate", np.nan)) for pts in curves.values() for pt in pts)]
    for (act, n, d, C), pts in sorted(curves.items()):
        ai = activations.index(act) * len(outputs) + outputs.index(C)
        x = np.array([pt["ratio"] for pt in pts])
        succ = np.array([pt["success_rate"] for pt in pts])
        err = np.array([pt["sign_aware_mean"] for pt in pts])
        sgn = np.array([pt["signed_mean"] for pt in pts])
        label = (f"n={n}, d={d}" + (f", C={C}" if len(outputs) > 1 or C > 1 else "")
                 + (f", σ={act}" if len(activations) > 1 else ""))
        kw = dict(color=colors[(n, d)], marker=markers[ai % len(markers)], ms=4)
        ax_s.plot(x, succ, label=label, ls="-", **kw)
        for k in slots:
            prob = np.array([pt.get(f"probe{k}_success_rate", np.nan) for pt in pts])
            ok = np.isfinite(prob)
            ax_s.plot(x[ok], prob[ok], ls=PROBE_STYLES[(k - 1) % len(PROBE_STYLES)], lw=1.1, alpha=0.85,
                      color=colors[(n, d)], marker=markers[ai % len(markers)], ms=2.5, mfc="none")
        ok = np.isfinite(err)
        ax_e.plot(x[ok], np.maximum(err[ok], 1e-8), ls="-", **kw)
        ok = np.isfinite(sgn)
        ax_e.plot(x[ok], np.maximum(sgn[ok], 1e-8), color=colors[(n, d)], ls=":", lw=0.9, alpha=0.8)
    # the counting limit of θ identifiability on the sphere, p/(dn) = 1/d + (d − 1)/(dC), once per (d, C)
    from ..theory.identifiability.report import counting_ratio  # noqa: PLC0415

    for (d, C) in sorted({(k[2], k[3]) for k in curves}):
        color = colors[next(size for size in sizes if size[1] == d)] if sum(sz[1] == d for sz in sizes) == 1 else "0.3"
        for ax in (ax_s, ax_e):
            ax.axvline(counting_ratio(d, C), color=color, lw=0.9, ls="-.", alpha=0.9)
    for t in thresholds:
        ax_e.axhline(t, color="k", lw=0.8, ls="--")
        ax_e.text(hi / 1.05, t * 1.15, f"threshold {t:g}", ha="right", va="bottom", fontsize=8)

    lines = []
    for cr in critical or ():
        if not math.isfinite(cr.estimate):
            continue
        c_out = getattr(cr, "outputs", 1)
        outcome = getattr(cr, "outcome", "attack")
        ls = "-" if outcome == "attack" else PROBE_STYLES[(int(outcome[-1]) - 1) % len(PROBE_STYLES)]
        color = OUTCOME_COLORS.get(outcome, "k")
        for ax in (ax_s, ax_e):
            if math.isfinite(cr.low) and math.isfinite(cr.high) and cr.high > cr.low:
                ax.axvspan(cr.low, cr.high, color=color, alpha=0.10 if outcome == "attack" else 0.07, lw=0)
            ax.axvline(cr.estimate, color=color, lw=1.5, ls=ls)
        label = getattr(cr, "label", "attack")
        lines.append((f"r_c {label}: {cr.estimate:.3g} [{cr.low:.3g}, {cr.high:.3g}]"
                      + (f", C={c_out}" if len(outputs) > 1 else "")
                      + (f", {cr.activation}" if len(activations) > 1 else ""), color))
    for i, (text, color) in enumerate(reversed(lines)):  # one box per estimate, in its line's colour
        ax_s.text(0.99, 0.04 + 0.08 * i, text, color=color, transform=ax_s.transAxes, fontsize=7.5, va="bottom",
                  ha="right", bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.9))

    ax_s.set_xscale("log")
    ax_s.set_xlim(lo, hi)
    ax_s.set_ylim(-0.04, ymax)
    ax_s.set_ylabel("success probability\n(all samples recovered)")
    sizes_legend = ax_s.legend(loc="upper left", fontsize=8, framealpha=0.9, bbox_to_anchor=(0.0, 0.93))
    style_handles = [Line2D([], [], color="0.2", ls="-", label="attack")]
    angles = {k: sorted({r.get(f"probe{k}_angle", 0.0) for r in rows} - {0.0}) for k in slots}
    for k in slots:
        style_handles.append(Line2D([], [], color="0.2", ls=PROBE_STYLES[(k - 1) % len(PROBE_STYLES)], lw=1.1,
                                    label=f"probe {', '.join(f'{a:g}' for a in angles[k])}°"))
    style_handles.append(Line2D([], [], color="0.3", ls="-.", lw=0.9, label="counting 1/d + (d−1)/(dC)"))
    ax_s.legend(handles=style_handles, loc="upper left", fontsize=7.5, framealpha=0.9, bbox_to_anchor=(0.0, 0.55))
    ax_s.add_artist(sizes_legend)  # the sizes stay; get_legend() returns the styles
    ax_e.set_yscale("log")
    ax_e.set_ylabel("relative error (mean)\n— sign-aware, ··· signed")
    ax_e.set_xlabel("p / (d n)")
    ticks, labels, last = [], [], None
    for r in ratios:  # label every grid ratio not crowding the previous label
        ticks.append(r)
        crowded = last is not None and math.log(r / last) < 0.2
        labels.append("" if crowded else f"{r:g}")
        if not crowded:
            last = r
    ax_e.set_xticks(ticks)
    ax_e.set_xticklabels(labels, fontsize=8)
    ax_e.minorticks_off()
    ax_s.minorticks_off()
    if title is None:
        acts = ", ".join(activations)
        title = (f"Law of data reconstruction: random features, σ = {acts}, {len(seeds)} seeds per point\n"
                 f"success = every sample recovered (sign-aware error ≤ {thresholds[0]:g})\n"
                 "attack: global search from random starts; probe: its local optimiser from the truth rotated per row"
                 + (f"\nr_c: {critical[0].method} estimate, {critical[0].level:.0%} bootstrap interval over seeds"
                    if critical else ""))
    _counting_panel(ax_c, sizes, outputs, activations, critical or (), colors)
    fig.suptitle(title, fontsize=9.5)
    if path is not None:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, format=path.suffix.lower().lstrip("."), metadata=_metadata(path))
    return fig


def _counting_panel(ax, sizes, outputs, activations, critical, colors):
    """Measured r_c against C, with the counting curve 1/d + (d − 1)/(dC) and the span limit (n + d − 1)/(dn)
    (counting on the sphere)."""
    from ..theory.identifiability.report import counting_ratio, span_ratio  # noqa: PLC0415

    c_hi = max(max(outputs), max(n for n, _ in sizes), 2)
    grid = np.geomspace(1.0, c_hi * 1.2, 200)
    for d in sorted({d for _, d in sizes}):
        ax.plot(grid, [counting_ratio(d, c) for c in grid], color="0.2", lw=1.2,
                label=f"counting p = n + n(d−1)/C (d={d})")
    for n, d in sizes:
        ax.axhline(span_ratio(n, d), color=colors[(n, d)], lw=1.0, ls=":",
                   label=f"span limit (n+d−1)/(dn), n={n}, d={d}")
    markers = ["o", "s", "^", "D"]
    labelled = set()
    for cr in critical:
        c_out = getattr(cr, "outputs", 1)
        if not math.isfinite(cr.estimate):
            continue
        low = cr.estimate - cr.low if math.isfinite(cr.low) else 0.0
        high = cr.high - cr.estimate if math.isfinite(cr.high) else 0.0
        ai = activations.index(cr.activation) if cr.activation in activations else 0
        label = getattr(cr, "label", "attack")
        attack = getattr(cr, "outcome", "attack") == "attack"
        key = (label, cr.activation)
        # probes a little to the right of their C, open markers, so the bars do not hide each other
        shift = 1.0 if attack else 1.06 ** int(getattr(cr, "outcome", "probe1")[-1])
        color = OUTCOME_COLORS.get(getattr(cr, "outcome", "attack"), "k")
        text = f"measured r_c, {label} (bootstrap interval)" + (f", σ={cr.activation}" if len(activations) > 1 else "")
        ax.errorbar([c_out * shift], [cr.estimate], yerr=[[max(low, 0.0)], [max(high, 0.0)]],
                    color=color, marker=markers[ai % len(markers)], ms=5, capsize=3, lw=1.0,
                    mfc=color if attack else "white", ls="none", label=text if key not in labelled else None)
        labelled.add(key)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(0.8, c_hi * 1.25)
    ax.set_xlabel("outputs C")
    ax.set_ylabel("critical p / (d n)")
    entries = len(ax.get_legend_handles_labels()[1])
    ax.legend(loc="upper right", fontsize=7.5 if entries <= 6 else 6.5, framealpha=0.9, ncol=1 if entries <= 6 else 2)


def _metadata(path):
    # deterministic files: no creation date / software version stamps that change run to run
    fmt = path.suffix.lower()
    if fmt == ".png":
        return {"Software": None}
    if fmt == ".svg":
        return {"Date": None}
    if fmt == ".pdf":
        return {"CreationDate": None}
    return None


def _cmap(k):
    base = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    return [base[i % len(base)] for i in range(k)]

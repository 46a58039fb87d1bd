"""PNG plots of the comparison reports (matplotlib, Agg canvas, no pyplot state).

* ``heatmap.png`` — the output activation × loss matrix, one panel per dtype × device: the median
  over hidden activations of the worst ``tol_ratio`` (over reduction and flavour), and in each cell
  how many hidden activations fail there (``FAIL`` only where every one does) — a broken hidden
  activation shows as ``1/6 hidden fail`` across its columns, not as every column failing; log
  colour scale, red above the tolerance, grey where the pair is undefined (refused);
* ``heatmap_hidden.png`` — the same per (output + loss) × hidden activation;
* ``training_curves.png`` — the implementation's and torch's training losses overlaid, one panel
  per optimizer × GD mode;
* ``training_ratio.png`` — each lockstep step's ``tol_ratio`` against the tolerance;
* ``gradient_errors.png`` — per parameter: median ``tol_ratio`` with min–max error bars.

Log axes fit their data (failing runs' ratios far above 1 included; an infinite ratio is drawn at
the top, marked ∞) and titles wrap to the figure's width.

Every figure carries the run's metadata in a footer line and in the PNG text chunks.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from PIL import Image
from PIL.PngImagePlugin import PngInfo

__all__ = ["all_plots", "heatmap", "hidden_heatmap", "training_curves", "training_ratio", "gradient_errors"]

FLOOR = 1e-8
_TAB10_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan")
_NORM_MAX = 1.0


def _cmap():
    base = colormaps["viridis"]
    return base.with_extremes(over="#d1242f", under=base(0.0), bad="#e6e6e6")


def _footer(metadata: Mapping[str, str]) -> str:
    keys = ("scratchnet", "numpy", "torch", "python", "devices", "profile", "date", "git_commit")
    return " · ".join(f"{k} {metadata[k]}" for k in keys if metadata.get(k))


_FOOTER_IN = 0.22  # inches kept free at the bottom for the metadata footer


def _figure(width: float, height: float) -> Figure:
    """A constrained-layout figure that leaves room for the footer line."""
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(rect=(0, _FOOTER_IN / height, 1, 1 - _FOOTER_IN / height))
    return fig


def _png(fig: Figure, metadata: Mapping[str, str], title: str) -> bytes:
    fig.text(0.5, 0.04 / fig.get_figheight(), _footer(metadata), ha="center", va="bottom", fontsize=7, color="#555")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    # 256 adaptive colours: a third of the bytes, no visible change (flat colours and text)
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    info = PngInfo()
    for key, value in (("Title", title), ("Software", "scratchnet_reference.reports.plots"),
                       ("Description", json.dumps(dict(metadata), sort_keys=True))):
        info.add_itxt(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True, pnginfo=info)
    return buf.getvalue()


def _clip(values: pd.Series | np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=float), FLOOR, None)


def _log_limits(values: pd.Series | np.ndarray) -> tuple[float, float]:
    """A log axis that shows every finite ratio and the tolerance line at 1: from a third of the
    smallest (not below FLOOR) to three times the largest (at least 10)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo = max(FLOOR, float(v.min()) / 3) if v.size else FLOOR
    hi = max(10.0, float(v.max()) * 3) if v.size else 10.0
    return min(lo, 0.1), hi


def _wrapped(text: str, width_in: float, fontsize: float) -> tuple[str, int]:
    """``text`` wrapped to ``width_in`` inches (about 0.55 em per character), and its line count."""
    import textwrap

    lines = [w for line in text.split("\n") for w in textwrap.wrap(line, int(width_in * 72 / (0.55 * fontsize)))]
    return "\n".join(lines), len(lines)


def _title(fig: Figure, text: str, fontsize: float = 10) -> None:
    """A suptitle wrapped to the figure's width."""
    fig.suptitle(_wrapped(text, fig.get_figwidth(), fontsize)[0], fontsize=fontsize)


def _panels(cases: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(f"{dtype} · {device}", m) for (device, dtype), m in cases.groupby(["device", "dtype"], sort=True)]


def _heat(ax, grid: pd.DataFrame, fails: pd.DataFrame, title: str, annotate: bool):
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    image = ax.imshow(np.ma.masked_invalid(np.clip(values, FLOOR, None)), cmap=_cmap(),
                      norm=LogNorm(vmin=FLOOR, vmax=_NORM_MAX), aspect="auto", interpolation="nearest")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(np.arange(grid.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(grid.shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid.iat[i, j]
            f = fails.iat[i, j]
            failed = f if isinstance(f, str) else (False if pd.isna(f) else bool(f))
            if pd.isna(v) and not failed:
                if annotate:
                    ax.text(j, i, "refused", ha="center", va="center", fontsize=6, color="#888")
                continue
            if failed:
                label = failed if isinstance(failed, str) else "FAIL"
                ax.text(j, i, label, ha="center", va="center", fontsize=6.5 if "/" in label else 7, color="white",
                        fontweight="bold")
            elif annotate:
                light = v < 1e-3
                ax.text(j, i, "0" if v == 0 else f"{v:.0e}", ha="center", va="center", fontsize=6.5,
                        color="white" if light else "black")
    return image


def _colorbar(fig: Figure, image, axes) -> None:
    bar = fig.colorbar(image, ax=axes, extend="max", shrink=0.8, pad=0.02)
    bar.set_label("worst tol_ratio (log; red: > 1, fails)")


def heatmap(matrix: pd.DataFrame, metadata: Mapping[str, str]) -> bytes | None:
    """Output activation (rows) × loss (columns), one panel per dtype × device."""
    cases = matrix[matrix["kind"] == "case"]
    if cases.empty:
        return None
    panels = _panels(cases)
    outputs = sorted(cases["output"].unique())
    losses = sorted(cases["loss"].unique())
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    width = max(6.5, 1.1 * len(losses) * ncols + 2.5)
    heading, lines = _wrapped("tol_ratio per output activation × loss: median over hidden activations of the worst "
                              "over reduction and flavour; 'k/n hidden fail': k of the n hidden activations fail "
                              "there (heatmap_hidden.png shows which)", width, 11)
    fig = _figure(width, 0.42 * len(outputs) * nrows + 1.8 + 0.2 * lines)
    fig.get_layout_engine().set(h_pad=0.15)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax, (title, m) in zip(axes.flat, panels, strict=False):
        per_hidden = (m.assign(f=m["status"] == "fail")
                      .groupby(["output", "loss", "hidden"], sort=False).agg(ratio=("worst_ratio", "max"),
                                                                             f=("f", "max")).reset_index())
        cells = per_hidden.groupby(["output", "loss"]).agg(ratio=("ratio", "median"), k=("f", "sum"),
                                                           n=("f", "size"))
        grid = cells["ratio"].unstack("loss").reindex(index=outputs, columns=losses)
        label = cells.apply(lambda c: "" if c["k"] == 0 else ("FAIL" if c["k"] == c["n"] else
                                                              f"{int(c['k'])}/{int(c['n'])}\nhidden\nfail"), axis=1)
        fails = label.unstack("loss").reindex(index=outputs, columns=losses).replace("", False)
        image = _heat(ax, grid, fails, title, annotate=True)
        ax.set_xlabel("loss")
        ax.set_ylabel("output activation")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _colorbar(fig, image, axes)
    fig.suptitle(heading, fontsize=11)
    return _png(fig, metadata, "heatmap")


def hidden_heatmap(matrix: pd.DataFrame, metadata: Mapping[str, str]) -> bytes | None:
    """(output + loss) rows × hidden activation columns, one panel per dtype × device."""
    cases = matrix[matrix["kind"] == "case"]
    if cases.empty:
        return None
    cases = cases.assign(pair=cases["output"] + " + " + cases["loss"], f=cases["status"] == "fail")
    panels = _panels(cases)
    pairs = sorted(cases["pair"].unique())
    hiddens = sorted(cases["hidden"].unique())
    fig = _figure(0.75 * len(hiddens) * len(panels) + 4.5, 0.22 * len(pairs) + 2.4)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    image = None
    for ax, (title, m) in zip(axes.flat, panels, strict=False):
        grid = m.pivot_table(index="pair", columns="hidden", values="worst_ratio", aggfunc="max", dropna=False)
        fails = m.pivot_table(index="pair", columns="hidden", values="f", aggfunc="max", dropna=False)
        grid = grid.reindex(index=pairs, columns=hiddens)
        fails = fails.reindex(index=pairs, columns=hiddens)
        image = _heat(ax, grid, fails, title, annotate=False)
        ax.set_xlabel("hidden activations")
    axes[0, 0].set_ylabel("output + loss")
    _colorbar(fig, image, axes)
    _title(fig, "worst tol_ratio per hidden activation (over reduction and flavour)", fontsize=11)
    return _png(fig, metadata, "heatmap_hidden")


def training_curves(training: pd.DataFrame, metadata: Mapping[str, str]) -> bytes | None:
    """Losses per step: the implementation as lines, torch as markers; one panel per optimizer ×
    GD mode, one colour per dtype × device (× model when several)."""
    if training.empty:
        return None
    optimizers = list(dict.fromkeys(training["optimizer"]))
    modes = list(dict.fromkeys(training["gd_mode"]))
    width, height = 4.2 * len(modes) + 0.5, 2.1 * len(optimizers) + 1.4
    fig = Figure(figsize=(width, height))  # many panels: a fixed layout, constrained layout costs seconds
    fig.subplots_adjust(left=0.65 / width, right=1 - 0.15 / width, bottom=0.65 / height, top=1 - 1.0 / height,
                        wspace=0.2, hspace=0.42)
    axes = fig.subplots(len(optimizers), len(modes), squeeze=False, sharex=True)
    colours = colormaps["tab10"]
    series = list(dict.fromkeys(zip(training["dtype"], training["device"], training["hidden"], training["sizes"],
                                    training["seed"], strict=True)))
    several_models = len({s[2:] for s in series}) > 1
    labels: dict[str, int] = {}
    for i, opt in enumerate(optimizers):
        for j, mode in enumerate(modes):
            ax = axes[i, j]
            panel = training[(training["optimizer"] == opt) & (training["gd_mode"] == mode)]
            for k, key in enumerate(series):
                curve = panel[(panel["dtype"] == key[0]) & (panel["device"] == key[1]) & (panel["hidden"] == key[2])
                              & (panel["sizes"] == key[3]) & (panel["seed"] == key[4])]
                if curve.empty:
                    continue
                label = f"{key[0]} · {key[1]}" + (f" · {key[2]} {key[3]} seed {key[4]}" if several_models else "")
                colour = colours(k % 10)
                ax.plot(curve["step"], curve["loss_actual"], color=colour, linewidth=max(0.8, 3.0 - 1.1 * k))
                ax.plot(curve["step"], curve["loss_expected"], linestyle="none", marker="x", markersize=4,
                        color=colour, alpha=0.8)
                labels.setdefault(label, k)
                broke = curve["first_break_step"].iloc[0]
                if broke >= 0:
                    ax.axvline(broke, color="#d1242f", linestyle=":", linewidth=1)
            ax.set_title(f"{opt} · {mode}", fontsize=8)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("loss", fontsize=8)
            if i == len(optimizers) - 1:
                ax.set_xlabel("step", fontsize=8)
    named = [f"{_TAB10_NAMES[k % 10]}: {label}" for label, k in labels.items()]
    colour_names = ", ".join(named[:6]) + (f", … ({len(named) - 6} more)" if len(named) > 6 else "")
    _title(fig, "training loss in lockstep: implementation (lines) vs torch (×); red dotted line: first break\n"
           + colour_names, fontsize=10)
    return _png(fig, metadata, "training_curves")


def training_ratio(training: pd.DataFrame, metadata: Mapping[str, str]) -> bytes | None:
    """Per step ``tol_ratio`` (loss and parameters against the step's growing tolerance), one
    line per curve, one panel per dtype × device; the tolerance is the line at 1."""
    if training.empty:
        return None
    groups = list(training.groupby(["dtype", "device"], sort=True))
    fig = _figure(6.0 * len(groups) + 1.0, 4.6)
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)
    styles = {mode: style for mode, style in zip(dict.fromkeys(training["gd_mode"]), ("-", "--", ":", "-."),
                                                 strict=False)}
    colours = colormaps["tab10"]
    optimizers = list(dict.fromkeys(training["optimizer"]))
    handles = {}
    bottom, top = _log_limits(training["tol_ratio"])
    for ax, ((dtype, device), frame) in zip(axes.flat, groups, strict=True):
        for _, curve in frame.groupby(["optimizer", "gd_mode", "hidden", "sizes", "seed"], sort=False):
            opt, mode = curve["optimizer"].iloc[0], curve["gd_mode"].iloc[0]
            ratios = np.minimum(_clip(curve["tol_ratio"]), top)  # ∞ (a NaN loss) at the top of the axis
            line, = ax.plot(curve["step"], ratios, color=colours(optimizers.index(opt) % 10),
                            linestyle=styles.get(mode, "-"), linewidth=1.1, marker="." if len(curve) < 3 else None)
            handles.setdefault(opt, line)
        ax.axhline(1.0, color="#d1242f", linewidth=1.2)
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
        ax.set_title(f"{dtype} · {device}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_ylabel("tol_ratio (log; red line: tolerance)")
    for mode, style in styles.items():
        handles[f"— {mode}"] = axes[0, 0].plot([], [], color="black", linestyle=style)[0]
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside right center", fontsize=7, frameon=False)
    _title(fig, "lockstep training: per-step tol_ratio (colour: optimizer, line style: GD mode)", fontsize=10)
    return _png(fig, metadata, "training_ratio")


def gradient_errors(gradients: pd.DataFrame, metadata: Mapping[str, str]) -> bytes | None:
    """Per parameter and dtype × device: bar at the median gradient tol_ratio over the
    combinations, error bars from the minimum to the maximum."""
    if gradients.empty:
        return None
    params = list(dict.fromkeys(gradients["param"]))
    groups = list(gradients.groupby(["dtype", "device"], sort=True))
    width = 0.8 / len(groups)
    fig = _figure(max(6.0, 1.3 * len(params) + 2.0), 4.4)
    ax = fig.subplots()
    colours = colormaps["tab10"]
    x = np.arange(len(params))
    bottom, top = _log_limits(gradients["tol_ratio"])
    for k, ((dtype, device), frame) in enumerate(groups):
        stats = frame.groupby("param")["tol_ratio"].agg(["min", "median", "max", "size"]).reindex(params)
        # an infinite ratio (a NaN gradient) is drawn at the top of the axis and marked ∞
        med, lo, hi = (np.minimum(_clip(stats[c]), top) for c in ("median", "min", "max"))
        offset = (k - (len(groups) - 1) / 2) * width
        ax.bar(x + offset, med, width=width * 0.9, color=colours(k % 10), alpha=0.85, bottom=FLOOR,
               label=f"{dtype} · {device} (n={int(stats['size'].max())} per parameter)")
        ax.errorbar(x + offset, med, yerr=[med - lo, hi - med], fmt="none", ecolor="black", capsize=3, linewidth=1)
        for i in np.flatnonzero(~np.isfinite(stats["max"].to_numpy(dtype=float))):
            ax.text(x[i] + offset, top, "∞", ha="center", va="top", fontsize=9, color="#d1242f")
    ax.axhline(1.0, color="#d1242f", linewidth=1.2, label="tolerance")
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    ax.set_xticks(x, params, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("gradient tol_ratio (log)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    _title(fig, "per-parameter gradient error: bar = median over combinations, whiskers = min … max", fontsize=10)
    return _png(fig, metadata, "gradient_errors")


def all_plots(matrix: pd.DataFrame, gradients: pd.DataFrame, training: pd.DataFrame,
              metadata: Mapping[str, str]) -> dict[str, bytes]:
    """``{file name: PNG bytes}`` for every plot that has data."""
    made = {
        "heatmap.png": heatmap(matrix, metadata),
        "heatmap_hidden.png": hidden_heatmap(matrix, metadata),
        "training_curves.png": training_curves(training, metadata),
        "training_ratio.png": training_ratio(training, metadata),
        "gradient_errors.png": gradient_errors(gradients, metadata),
    }
    return {name: data for name, data in made.items() if data is not None}

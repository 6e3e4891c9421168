"""``LivePlot``: a Lightning callback that draws training loss, learning rate and val mAP as it trains.

In a Jupyter kernel it keeps ONE output up to date through an IPython display handle (no stacked
outputs, no flicker); elsewhere it writes a PNG at the end of every epoch. Figures are drawn with
matplotlib's object-oriented API on the Agg canvas, so pyplot's global state and interactive
backends are never touched (and nothing is shown twice by the inline backend).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Callable, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

Mode = Literal["auto", "notebook", "file"]
MODES = ("auto", "notebook", "file")
HISTORY_KEYS = ("step", "loss", "loss_ema", "lr", "val_epoch", "val_step", "val_loss", "val_metric")
DEFAULT_FILENAME = "live_plot.png"


def in_notebook() -> bool:
    """Whether this code runs inside a Jupyter kernel (not a terminal IPython, not a script)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LivePlot(Callback):
    """Live training curves: loss per step (raw and EMA-smoothed), learning rate, val metric per epoch.

    Args:
        path: PNG file to write. Default: ``<trainer.log_dir or default_root_dir>/live_plot.png`` in
            file mode; in notebook mode a PNG is written only when a path is given.
        loss_key: logged training loss; read per step as ``f"{loss_key}_step"`` (Lightning's name for
            a value logged with ``on_step=True, on_epoch=True``) or else ``loss_key``.
        metric_key: validation metric read from ``trainer.callback_metrics`` when validation ends.
        val_loss_key: validation loss read at the same time (drawn on the loss axes).
        ema: smoothing factor in [0, 1): ``s_t = ema * s_{t-1} + (1 - ema) * x_t`` with ``s_1 = x_1``;
            0 disables smoothing.
        every_n_steps: redraw the live figure every this many training batches (notebook mode or
            ``render_to``); epoch ends and the end of fit always redraw.
        mode: "notebook" (display handle), "file" (PNG per epoch) or "auto" (notebook inside a Jupyter
            kernel, else file).
        render_to: a callable given the PNG bytes of every redraw instead of an IPython display (the
            training panel passes its image widget's setter). PNG files are still written when
            ``path`` is given.
        figsize: figure size in inches.
        dpi: figure resolution.

    Attributes:
        history: dict of lists. Per training batch: ``step`` (global step), ``loss``, ``loss_ema``,
            ``lr`` (first param group of the first optimizer). Per validation run: ``val_epoch``,
            ``val_step``, ``val_loss``, ``val_metric`` (NaN when not logged).
        renders: how many times the figure was drawn.
        last_png: PNG bytes of the latest drawing (None before the first).

    Example:
        >>> trainer = lightning.Trainer(max_epochs=10, callbacks=[LivePlot()])  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        loss_key: str = "train/loss",
        metric_key: str = "val/mAP",
        val_loss_key: str = "val/loss",
        ema: float = 0.9,
        every_n_steps: int = 10,
        mode: Mode = "auto",
        render_to: Callable[[bytes], Any] | None = None,
        figsize: tuple[float, float] = (12.0, 3.5),
        dpi: int = 80,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"LivePlot(mode={mode!r}): expected one of {list(MODES)}.")
        if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0.0 <= ema < 1.0:
            raise ValueError(f"LivePlot(ema={ema!r}): expected a float in [0, 1) (0.9 smooths over ~10 steps).")
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"LivePlot(every_n_steps={every_n_steps!r}): expected an int >= 1.")
        for name, key in (("loss_key", loss_key), ("metric_key", metric_key), ("val_loss_key", val_loss_key)):
            if not isinstance(key, str) or not key:
                raise ValueError(f"LivePlot({name}={key!r}): expected a logged metric name such as 'train/loss'.")
        if path is not None and Path(path).suffix.lower() != ".png":
            raise ValueError(f"LivePlot(path={str(path)!r}): expected a file name ending in '.png'.")
        if render_to is not None and not callable(render_to):
            raise ValueError(f"LivePlot(render_to={render_to!r}): expected a callable taking PNG bytes, or None.")
        if len(figsize) != 2 or min(figsize) <= 0:
            raise ValueError(f"LivePlot(figsize={figsize!r}): expected (width, height) in inches, both > 0.")
        if not isinstance(dpi, int) or dpi < 10:
            raise ValueError(f"LivePlot(dpi={dpi!r}): expected an int >= 10.")
        self.path = Path(path) if path is not None else None
        self.loss_key, self.metric_key, self.val_loss_key = loss_key, metric_key, val_loss_key
        self.ema = float(ema)
        self.every_n_steps = every_n_steps
        self.mode: Mode = mode
        self.render_to = render_to
        self.figsize, self.dpi = tuple(figsize), dpi
        self.history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self.renders = 0
        self.last_png: bytes | None = None
        self._file: Path | None = None
        self._notebook = False
        self._handle: Any = None
        self._lr = math.nan

    @property
    def state_key(self) -> str:
        return self._generate_state_key(loss_key=self.loss_key, metric_key=self.metric_key)

    # ------------------------------------------------------------------ Lightning hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Resolved on every rank: trainer.log_dir broadcasts, so calling it from rank zero alone would hang.
        self._notebook = self.mode == "notebook" or (self.mode == "auto" and in_notebook())
        if self.path is not None:
            self._file = self.path
        elif self._notebook or self.render_to is not None:
            self._file = None
        else:
            folder = trainer.log_dir or trainer.default_root_dir
            run_dir = getattr(trainer, "run_dir", None)  # AutoTrainer's numbered run folder
            if trainer.logger is None and run_dir is not None:
                folder = run_dir
            self._file = Path(folder) / DEFAULT_FILENAME
        self._handle = None  # a new fit (a new cell) gets its own output

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        # The rate this step trains with: epoch-interval schedulers step before on_train_batch_end.
        self._lr = _current_lr(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        value = metrics.get(f"{self.loss_key}_step", metrics.get(self.loss_key))
        if value is None:
            return
        loss = float(value)
        h = self.history
        h["step"].append(float(trainer.global_step))
        h["loss"].append(loss)
        h["loss_ema"].append(ema_update(h["loss_ema"][-1] if h["loss_ema"] else None, loss, self.ema))
        h["lr"].append(self._lr)
        if self._live() and len(h["step"]) % self.every_n_steps == 0:
            self.redraw()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end runs after the epoch-end logging, so the module's mAP is in callback_metrics.
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        h = self.history
        h["val_epoch"].append(float(trainer.current_epoch))
        h["val_step"].append(float(trainer.global_step))
        h["val_loss"].append(_as_float(metrics.get(self.val_loss_key)))
        h["val_metric"].append(_as_float(metrics.get(self.metric_key)))
        if self._live():
            self.redraw()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.redraw()
            self._write()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.history["step"]:
            self.redraw()
            self._write()

    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        history = state_dict.get("history")
        if not isinstance(history, dict) or set(history) != set(HISTORY_KEYS):
            got = sorted(history) if isinstance(history, dict) else type(history).__name__
            raise ValueError(f"LivePlot state has history keys {got}; expected {sorted(HISTORY_KEYS)}.")
        self.history = {k: [float(x) for x in history[k]] for k in HISTORY_KEYS}

    # ------------------------------------------------------------------ drawing
    def _live(self) -> bool:
        return self._notebook or self.render_to is not None

    def figure(self) -> Any:
        """A new matplotlib ``Figure`` (Agg canvas, not registered with pyplot) of the history."""
        return plot_history(self.history, self.metric_key, self.figsize, self.dpi)

    def redraw(self) -> bytes:
        """Draw the history and push it to the display handle or ``render_to``; returns the PNG bytes."""
        png = figure_png(self.figure())
        self.last_png = png
        self.renders += 1
        if self.render_to is not None:
            self.render_to(png)
        elif self._notebook:
            from IPython.display import Image, display

            image = Image(data=png, format="png")
            if self._handle is None:
                self._handle = display(image, display_id=True)
            else:
                self._handle.update(image)
        return png

    def _write(self) -> None:
        if self._file is None or self.last_png is None:
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        self._file.write_bytes(self.last_png)

    @property
    def file(self) -> Path | None:
        """Where the PNG is written in this fit (resolved at fit start), or None."""
        return self._file


def ema_update(previous: float | None, value: float, ema: float) -> float:
    """One step of ``s_t = ema * s_{t-1} + (1 - ema) * x_t``; the first value (or one after a
    non-finite average) starts the average at ``x_t``."""
    if previous is None or not math.isfinite(previous):
        return value
    return ema * previous + (1.0 - ema) * value


def _current_lr(trainer: L.Trainer) -> float:
    optimizers = trainer.optimizers
    if not optimizers or not optimizers[0].param_groups:
        return math.nan
    return float(optimizers[0].param_groups[0]["lr"])


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def plot_history(history: dict[str, list[float]], metric_key: str = "val/mAP", figsize: tuple[float, float] = (12.0, 3.5), dpi: int = 80) -> Any:
    """Three panels: loss per step (raw, EMA, val loss), learning rate per step, val metric per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_lr, ax_metric = fig.subplots(1, 3)
    h = history
    if h["step"]:
        ax_loss.plot(h["step"], h["loss"], color="tab:blue", alpha=0.3, lw=1, label="train (raw)")
        ax_loss.plot(h["step"], h["loss_ema"], color="tab:blue", lw=2, label="train (EMA)")
        ax_lr.plot(h["step"], h["lr"], color="tab:green", lw=2)
    if any(math.isfinite(v) for v in h["val_loss"]):
        ax_loss.plot(h["val_step"], h["val_loss"], "o-", color="tab:orange", label="val")
    if any(math.isfinite(v) for v in h["val_metric"]):
        epochs = [e + 1 for e in h["val_epoch"]]
        ax_metric.plot(epochs, h["val_metric"], "o-", color="tab:red")
        best = max(v for v in h["val_metric"] if math.isfinite(v))
        ax_metric.set_title(f"{metric_key} (best {best:.3f})")
    else:
        ax_metric.set_title(metric_key)
    ax_loss.set(title="loss", xlabel="step")
    if h["step"]:
        ax_loss.legend(loc="upper right", fontsize="small")
    ax_lr.set(title="learning rate", xlabel="step")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax_metric.set(xlabel="epoch")
    for ax in (ax_loss, ax_lr, ax_metric):
        ax.grid(alpha=0.3)
    return fig


def figure_png(fig: Any) -> bytes:
    """PNG bytes of a matplotlib figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()

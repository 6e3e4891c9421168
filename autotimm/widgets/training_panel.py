"""``TrainingPanel``: start and stop a short fit from a :class:`DetectorBuilder`, with the live plot below.

``fit`` runs in a background thread so the notebook (and the Stop button) stays responsive; Stop sets
``trainer.should_stop``, which Lightning honours after the current training step.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import lightning as L

from autotimm.callbacks.live_plot import LivePlot
from autotimm.widgets._ipywidgets import widgets
from autotimm.widgets.config import trainer_class
from autotimm.widgets.detector_builder import DetectorBuilder

DataSource = Any  # a LightningDataModule, a callable(**data_kwargs) -> LightningDataModule, or an example dataset


def make_datamodule(data: DataSource, data_kwargs: dict[str, Any]) -> L.LightningDataModule:
    """The data module to train on.

    Args:
        data: a ready ``LightningDataModule`` (used as is: its own image and batch size win), an object
            with a ``.datamodule(**kwargs)`` method such as ``autotimm.data.example("shapes")``, or a
            callable taking the builder's data keyword arguments.
        data_kwargs: ``image_size``, ``batch_size`` from the builder.
    """
    if isinstance(data, L.LightningDataModule):
        return data
    factory = getattr(data, "datamodule", data)
    if not callable(factory):
        raise ValueError(
            f"TrainingPanel(data={data!r}): expected a LightningDataModule, an example dataset "
            "(autotimm.data.example('shapes')) or a callable(**data_kwargs) returning a data module."
        )
    dm = factory(**data_kwargs)
    if not isinstance(dm, L.LightningDataModule):
        raise ValueError(f"TrainingPanel(data=...): the factory returned {type(dm).__name__}, not a LightningDataModule.")
    return dm


class TrainingPanel(widgets.VBox):
    """Start/Stop buttons, a status line and the live plot, training the builder's configuration.

    Args:
        builder: the :class:`DetectorBuilder` whose settings are trained (shown above the buttons
            unless ``show_builder=False``).
        data: see :func:`make_datamodule`.
        trainer_kwargs: extra trainer arguments (``default_root_dir``, ``limit_train_batches``,
            ``accelerator``...), on top of the builder's.
        callbacks: extra Lightning callbacks.
        plot_every_n_steps: live plot redraw interval.
        show_builder: include the builder's form in this panel.

    Attributes:
        model, trainer, live_plot, datamodule: those of the latest run (None before the first).
        thread: the background thread of the latest run.
        error: the exception that ended the latest run, if any.

    Example:
        >>> builder = DetectorBuilder("resnet18", image_size=320, batch_size=8, max_epochs=5)  # doctest: +SKIP
        >>> TrainingPanel(builder, autotimm.data.example("shapes"))  # doctest: +SKIP
    """

    def __init__(
        self,
        builder: DetectorBuilder,
        data: DataSource,
        trainer_kwargs: dict[str, Any] | None = None,
        callbacks: list[L.Callback] | None = None,
        plot_every_n_steps: int = 5,
        show_builder: bool = True,
    ) -> None:
        if not isinstance(builder, DetectorBuilder):
            raise ValueError(f"TrainingPanel(builder=...): expected a DetectorBuilder, got {type(builder).__name__}.")
        reserved = {"callbacks"} & set(trainer_kwargs or {})
        if reserved:
            raise ValueError("TrainingPanel(trainer_kwargs=...): pass callbacks through callbacks=[...], not trainer_kwargs.")
        self.builder, self.data = builder, data
        self.extra_trainer_kwargs = dict(trainer_kwargs or {})
        self.extra_callbacks = list(callbacks or [])
        self.plot_every_n_steps = plot_every_n_steps
        self.start_button = widgets.Button(description="Start training", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.status = widgets.HTML("Ready.")
        self.plot = widgets.Image(format="png")
        self.model: Any = None
        self.trainer: L.Trainer | None = None
        self.live_plot: LivePlot | None = None
        self.datamodule: L.LightningDataModule | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._stop_requested = False
        children = [builder] if show_builder else []
        super().__init__(children + [widgets.HBox([self.start_button, self.stop_button]), self.status, self.plot])
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> bool:
        """Build data, model and trainer from the builder and fit in a background thread.

        Returns:
            True when training started; False when it did not (the reason is in ``status``).
        """
        if self.running:
            self._say("Training is already running; press Stop first.", "#8a5a00")
            return False
        self.error, self._stop_requested = None, False
        try:
            config = self.builder.config
            dm = make_datamodule(self.data, config["data"])
            overrides = {"num_classes": dm.num_classes} if getattr(dm, "num_classes", None) else {}
            model = self.builder.build(**overrides)
            live_plot = LivePlot(render_to=self._show_plot, every_n_steps=self.plot_every_n_steps, mode="notebook")
            cls, _ = trainer_class()
            trainer = cls(**{**config["trainer"], **self.extra_trainer_kwargs}, callbacks=[live_plot, *self.extra_callbacks])
        except Exception as err:  # noqa: BLE001 - a widget reports, it does not raise into the notebook
            self.error = err
            self._say(f"Could not start: {type(err).__name__}: {err}", "#b00020")
            return False
        self.model, self.datamodule, self.live_plot, self.trainer = model, dm, live_plot, trainer
        self.thread = threading.Thread(target=self._fit, name="autotimm-fit", daemon=True)
        self.start_button.disabled, self.stop_button.disabled = True, False
        self._say(f"Training for up to {trainer.max_epochs} epochs...", "#1b5e20")
        self.thread.start()
        return True

    def stop(self) -> None:
        """Ask the running fit to stop after its current step."""
        if not self.running or self.trainer is None:
            self._say("Nothing to stop: no training is running.", "#8a5a00")
            return
        self._stop_requested = True
        self.trainer.should_stop = True
        self._say("Stopping after the current step...", "#8a5a00")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the running fit; returns True when it has finished."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    def _fit(self) -> None:
        trainer = self.trainer
        try:
            trainer.fit(self.model, datamodule=self.datamodule)
        except BaseException as err:  # noqa: BLE001 - shown in the panel; the thread must not die silently
            self.error = err
            self._say(f"Training failed: {type(err).__name__}: {err}", "#b00020")
        else:
            how = "Stopped" if self._stop_requested else "Finished"
            self._say(f"{how} after {trainer.current_epoch} epoch(s), {trainer.global_step} steps.", "#1b5e20")
        finally:
            self.start_button.disabled, self.stop_button.disabled = False, True

    def _show_plot(self, png: bytes) -> None:
        self.plot.value = png

    def _say(self, text: str, colour: str) -> None:
        self.status.value = f"<span style='color:{colour}'>{html.escape(text, quote=False)}</span>"


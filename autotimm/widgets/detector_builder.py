"""``DetectorBuilder``: pick a backbone, set the hyperparameters, read the code, build the detector."""

from __future__ import annotations

import html
import inspect
import warnings
from typing import Any

import torch

from autotimm.arch.registry import ARCHITECTURES
from autotimm.models.backbone import FeatureBackboneConfig
from autotimm.optim import OPTIMIZERS, SCHEDULERS
from autotimm.presets import DETECTOR_PRESETS, preset
from autotimm.widgets._ipywidgets import widgets
from autotimm.widgets.backbone_picker import BackbonePicker
from autotimm.widgets.config import check_config, generate_code

def _slider() -> dict[str, Any]:
    # A fresh Layout per widget: layouts are shared models, so one change would move them all.
    return {"continuous_update": False, "style": {"description_width": "170px"}, "layout": widgets.Layout(width="480px")}
MODEL_KEYS = (
    "detection_arch", "num_classes", "lr", "weight_decay", "optimizer", "scheduler", "fpn_channels",
    "head_num_convs", "focal_alpha", "focal_gamma", "cls_loss_weight", "reg_loss_weight",
    "centerness_loss_weight", "score_thresh", "nms_thresh", "max_detections_per_image",
    "freeze_backbone", "compile_model", "deterministic",
)
DATA_KEYS = ("image_size", "batch_size")
TRAINER_KEYS = ("max_epochs",)


def _architectures() -> list[str]:
    preferred = [a for a in ("fcos", "yolox") if a in ARCHITECTURES]
    return preferred + sorted(set(ARCHITECTURES) - set(preferred))


def signature_defaults() -> dict[str, Any]:
    """Keyword defaults of ``ObjectDetector``, ``DetectionDataModule`` and ``AutoTrainer``, read from
    their signatures (the controls start there, so they cannot drift from the classes)."""
    from autotimm.data.datamodule import DetectionDataModule
    from autotimm.detector import ObjectDetector
    from autotimm.training.trainer import AutoTrainer

    defaults: dict[str, Any] = {}
    for init in (AutoTrainer.__init__, DetectionDataModule.__init__, ObjectDetector.__init__):
        params = inspect.signature(init).parameters.values()
        defaults.update({p.name: p.default for p in params if p.default is not inspect.Parameter.empty})
    return defaults


def _make_controls() -> dict[str, widgets.ValueWidget]:
    """One widget per setting, named after its keyword argument, at the classes' defaults (except
    ``num_classes``, which has none, and ``compile_model``, on only where a GPU makes it pay)."""
    log = dict(base=10, step=0.1, readout_format=".1e")
    d = signature_defaults()
    return {
        "preset": widgets.Dropdown(options=["custom", *DETECTOR_PRESETS], value="custom", description="preset", **_slider()),
        "pretrained": widgets.Checkbox(value=True, description="pretrained weights (scratch if unavailable)", indent=False),
        "freeze_backbone": widgets.Checkbox(value=d["freeze_backbone"], description="freeze_backbone", indent=False),
        "detection_arch": widgets.ToggleButtons(options=_architectures(), value=d["detection_arch"], description="detection_arch"),
        "num_classes": widgets.BoundedIntText(value=1, min=1, max=100_000, description="num_classes", **_slider()),
        "fpn_channels": widgets.IntText(value=d["fpn_channels"], description="fpn_channels", **_slider()),
        "head_num_convs": widgets.IntSlider(value=d["head_num_convs"], min=0, max=8, description="head_num_convs", **_slider()),
        "lr": widgets.FloatLogSlider(value=d["lr"], min=-6, max=-1, description="lr", **log, **_slider()),
        "weight_decay": widgets.FloatLogSlider(value=d["weight_decay"], min=-7, max=-1, description="weight_decay", **log, **_slider()),
        "optimizer": widgets.Dropdown(options=list(OPTIMIZERS), value=d["optimizer"], description="optimizer", **_slider()),
        "scheduler": widgets.Dropdown(options=list(SCHEDULERS), value=d["scheduler"], description="scheduler", **_slider()),
        "focal_alpha": widgets.FloatSlider(value=d["focal_alpha"], min=0.0, max=1.0, step=0.05, description="focal_alpha", **_slider()),
        "focal_gamma": widgets.FloatSlider(value=d["focal_gamma"], min=0.0, max=5.0, step=0.25, description="focal_gamma", **_slider()),
        "cls_loss_weight": widgets.FloatSlider(value=d["cls_loss_weight"], min=0.0, max=5.0, step=0.1, description="cls_loss_weight", **_slider()),
        "reg_loss_weight": widgets.FloatSlider(value=d["reg_loss_weight"], min=0.0, max=5.0, step=0.1, description="reg_loss_weight", **_slider()),
        "centerness_loss_weight": widgets.FloatSlider(value=d["centerness_loss_weight"], min=0.0, max=5.0, step=0.1, description="centerness_loss_weight", **_slider()),
        "score_thresh": widgets.FloatSlider(value=d["score_thresh"], min=0.0, max=0.99, step=0.01, description="score_thresh", **_slider()),
        "nms_thresh": widgets.FloatSlider(value=d["nms_thresh"], min=0.05, max=1.0, step=0.05, description="nms_thresh", **_slider()),
        "max_detections_per_image": widgets.IntSlider(value=d["max_detections_per_image"], min=1, max=1000, description="max_detections_per_image", **_slider()),
        "compile_model": widgets.Checkbox(value=torch.cuda.is_available(), description="compile_model (torch.compile)", indent=False),
        "deterministic": widgets.Checkbox(value=d["deterministic"], description="deterministic", indent=False),
        "image_size": widgets.IntSlider(value=d["image_size"], min=64, max=1280, step=32, description="image_size", **_slider()),
        "batch_size": widgets.IntSlider(value=d["batch_size"], min=1, max=128, description="batch_size", **_slider()),
        "max_epochs": widgets.IntSlider(value=d["max_epochs"], min=1, max=300, description="max_epochs", **_slider()),
    }


def _clean(value: Any) -> Any:
    """Slider floats as a person would type them: 3 significant digits (log sliders), no 0.30000000000000004."""
    if isinstance(value, float):
        return float(f"{value:.3g}") if value < 0.01 else round(value, 4)
    return value


class DetectorBuilder(widgets.VBox):
    """A form for :class:`autotimm.ObjectDetector`: backbone picker, architecture, hyperparameters.

    Every setting is a widget named after its keyword argument (``builder.controls["lr"]``). Invalid
    settings or combinations (an unknown backbone, ``fpn_channels=100``, a frozen random backbone) are
    listed in the message area and block building; nothing raises into the notebook.

    Choosing a preset ("nano", "small", "medium"; :mod:`autotimm.presets`) sets the backbone and every
    control it covers, and adds its model arguments that have no control (the pyramid levels
    ``strides``, the per-step warm-up ``scheduler_kwargs``, ...) to the model's arguments; any control
    can still be changed afterwards. Choosing "custom" drops them again.

    Args:
        backbone: the initially chosen timm backbone.
        **values: initial values of any control, by keyword (``num_classes=3, lr=1e-3``,
            ``preset="nano"``).

    Attributes:
        picker: the :class:`BackbonePicker`.
        controls: setting name -> widget.
        message: HTML area with errors, warnings and build results.
        code_view: a Textarea with the generated Python code.
        model: the last built model, or None.

    Example:
        >>> builder = DetectorBuilder("resnet18", num_classes=3); builder  # doctest: +SKIP
        >>> model = builder.build()  # doctest: +SKIP
        >>> trainer = Trainer(**builder.trainer_kwargs)  # doctest: +SKIP
    """

    def __init__(self, backbone: str = "resnet50", **values: Any) -> None:
        self.picker = BackbonePicker(backbone)
        self.controls = _make_controls()
        self.preset_extras: dict[str, Any] = {}  # the chosen preset's model arguments that have no control
        self.controls["preset"].observe(self._on_preset, "value")
        preset_name = values.pop("preset", "custom")
        self.set(preset=preset_name)  # first, so that explicit values win over the preset's
        self.set(**values)
        self.build_button = widgets.Button(description="Build model", button_style="primary", icon="cubes")
        self.message = widgets.HTML()
        self.code_view = widgets.Textarea(layout=widgets.Layout(width="100%", height="420px"))
        self.model: Any = None
        self.notes: list[str] = []
        c = self.controls
        tabs = widgets.Tab([
            widgets.VBox([self.picker, c["pretrained"], c["freeze_backbone"]]),
            widgets.VBox([c[k] for k in ("detection_arch", "num_classes", "fpn_channels", "head_num_convs")]),
            widgets.VBox([c[k] for k in ("focal_alpha", "focal_gamma", "cls_loss_weight", "reg_loss_weight", "centerness_loss_weight")]),
            widgets.VBox([c[k] for k in ("lr", "weight_decay", "optimizer", "scheduler", "max_epochs", "batch_size", "image_size", "compile_model", "deterministic")]),
            widgets.VBox([c[k] for k in ("score_thresh", "nms_thresh", "max_detections_per_image")]),
        ])
        tabs.titles = ("Backbone", "Architecture", "Loss", "Training", "Inference")
        code = widgets.Accordion([self.code_view], titles=("Python code",))
        super().__init__([c["preset"], tabs, widgets.HBox([self.build_button]), self.message, code])
        self.picker.observe(self._on_change, ["value", "error"])
        for widget in self.controls.values():
            widget.observe(self._on_change, "value")
        self.build_button.on_click(self._on_build_click)
        self._on_change()

    # ------------------------------------------------------------------ settings
    def set(self, **values: Any) -> None:
        """Set several controls; unknown names and out-of-range values raise ValueError."""
        for name, value in values.items():
            widget = self.controls.get(name)
            if widget is None:
                raise ValueError(f"DetectorBuilder has no setting {name!r}; valid: {sorted(self.controls)}.")
            low, high = getattr(widget, "min", None), getattr(widget, "max", None)
            if isinstance(widget, widgets.FloatLogSlider):
                low, high = widget.base ** widget.min, widget.base ** widget.max
            if low is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high):
                raise ValueError(f"DetectorBuilder({name}={value!r}): expected a value in [{low:g}, {high:g}].")
            options = getattr(widget, "options", None)
            if options is not None and value not in options:
                raise ValueError(f"DetectorBuilder({name}={value!r}): expected one of {list(options)}.")
            widget.value = value

    def _raw(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        values = {k: _clean(w.value) for k, w in self.controls.items()}
        name = self.picker.value
        backbone = None
        if name:
            backbone = FeatureBackboneConfig(name, pretrained=values["pretrained"], fallback_to_scratch=values["pretrained"])
        model = {"backbone": backbone, **{k: values[k] for k in MODEL_KEYS}, **self.preset_extras}
        if model["scheduler"] == "none":
            model["scheduler"] = None
        return model, {k: values[k] for k in DATA_KEYS}, {k: values[k] for k in TRAINER_KEYS}

    @property
    def errors(self) -> list[str]:
        """Why the current settings cannot be built ([] when they can)."""
        model, data, trainer = self._raw()
        if not self.picker.error:
            return check_config(model, data, trainer)
        # The picker already explains what is wrong with the backbone.
        rest = [e for e in check_config(model, data, trainer) if e != self.picker.error and not e.startswith("backbone=")]
        return [self.picker.error, *rest]

    def _checked(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        errors = self.errors
        if errors:
            raise ValueError("Invalid detector settings: " + " | ".join(errors))
        return self._raw()

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`autotimm.ObjectDetector` (raises ValueError when invalid)."""
        return self._checked()[0]

    @property
    def data_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`autotimm.DetectionDataModule` besides the annotation files."""
        return self._checked()[1]

    @property
    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the trainer."""
        return self._checked()[2]

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        """``{"model": model_kwargs, "data": data_kwargs, "trainer": trainer_kwargs}``."""
        model, data, trainer = self._checked()
        return {"model": model, "data": data, "trainer": trainer}

    @property
    def code(self) -> str:
        """Python code that builds and trains this configuration."""
        return generate_code(*self._checked())

    # ------------------------------------------------------------------ building
    def build(self, **overrides: Any) -> Any:
        """Build the :class:`autotimm.ObjectDetector` of the current settings.

        Args:
            **overrides: keyword arguments that replace settings (the training panel passes the data
                module's ``num_classes``).

        Returns:
            the model; also kept as ``self.model``. Warnings (such as falling back to random
            weights when pretrained ones cannot be downloaded) are shown in the message area and kept
            in ``self.notes``.

        Raises:
            ValueError: invalid settings (also shown in the message area).
        """
        from autotimm.detector import ObjectDetector

        try:
            kwargs = {**self.model_kwargs, **overrides}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = ObjectDetector(**kwargs)
        except (ValueError, RuntimeError, TypeError) as err:
            self._show([str(err)], "#b00020")
            raise ValueError(str(err)) from err
        self.notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
        self.model = model
        params = sum(p.numel() for p in model.parameters()) / 1e6
        self._show([f"Built ObjectDetector ({params:.2f} M parameters)."] + self.notes, "#1b5e20" if not self.notes else "#8a5a00")
        return model

    def _on_build_click(self, _: Any = None) -> None:
        try:
            self.build()
        except ValueError:
            pass  # already shown in the message area: a widget reports, it does not raise into the notebook

    def _on_preset(self, change: dict[str, Any]) -> None:
        """Apply the chosen preset to the picker and the controls ("custom" keeps them as they are)."""
        name = change["new"]
        if name == "custom":
            self.preset_extras = {}
        else:
            chosen = preset(name)
            recipe = chosen.recipe()
            # every model argument without a control (strides, scheduler_kwargs, ...), so none is dropped
            self.preset_extras = {k: v for k, v in recipe.model_kwargs.items() if k not in self.controls}
            self.picker.value = chosen.backbone
            covered = {k: v for k, v in recipe.model_kwargs.items() if k in self.controls}
            covered |= {k: v for k, v in {**recipe.datamodule_kwargs, **recipe.trainer_kwargs}.items() if k in self.controls}
            self.set(**covered)
        if hasattr(self, "code_view"):  # not during __init__: the views are made after the first preset
            self._on_change()

    def _on_change(self, change: dict[str, Any] | None = None) -> None:
        arch = self.controls["detection_arch"].value
        self.controls["centerness_loss_weight"].disabled = arch != "fcos"  # FCOS only
        errors = self.errors
        self.build_button.disabled = bool(errors)
        if errors:
            self._show(errors, "#b00020")
            self.code_view.value = "# Fix these settings first:\n" + "\n".join(f"# - {e}" for e in errors)
        else:
            self._show(["Settings are valid."], "#1b5e20")
            self.code_view.value = generate_code(*self._raw())

    def _show(self, lines: list[str], colour: str) -> None:
        items = "".join(f"<li>{html.escape(line, quote=False)}</li>" for line in lines)
        self.message.value = f"<ul style='color:{colour};margin:0'>{items}</ul>"

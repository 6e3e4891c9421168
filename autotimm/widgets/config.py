"""Plain logic behind the detector builder: checking a configuration and writing it as Python code.

A configuration is three keyword dicts: ``model`` for :class:`autotimm.ObjectDetector`, ``data`` for
:class:`autotimm.DetectionDataModule` (besides the annotation files) and ``trainer`` for the trainer.
"""

from __future__ import annotations

from typing import Any

from autotimm.arch.registry import ARCHITECTURES
from autotimm.models.backbone import FeatureBackboneConfig
from autotimm.widgets.catalog import backbone_info

FPN_CHANNELS_RANGE = (8, 1024)


def trainer_class() -> tuple[type, str]:
    """The trainer to use and its import line: ``autotimm.AutoTrainer`` when present, else Lightning's."""
    try:
        from autotimm.training.trainer import AutoTrainer
    except ImportError:
        from lightning import Trainer

        return Trainer, "from lightning import Trainer"
    return AutoTrainer, "from autotimm import AutoTrainer"


def check_config(model: dict[str, Any], data: dict[str, Any], trainer: dict[str, Any]) -> list[str]:
    """Problems with a configuration, as messages that name the setting, its value and what is valid.

    Besides what :class:`~autotimm.ObjectDetector` itself refuses, this catches combinations that
    would build but not train: a frozen randomly initialised backbone, a zero classification or box
    loss weight, FPN widths the head's GroupNorm handles badly.

    Returns:
        an empty list when the configuration is usable.
    """
    errors: list[str] = []
    backbone = model.get("backbone")
    strides = tuple(model.get("strides", (8, 16, 32, 64, 128)))
    if isinstance(backbone, FeatureBackboneConfig):
        try:
            backbone_info(backbone.model_name, strides)
        except ValueError as err:
            errors.append(str(err))
        if model.get("freeze_backbone") and not backbone.pretrained:
            errors.append(
                "freeze_backbone=True with pretrained=False would train on a frozen random backbone; "
                "tick 'pretrained' or untick 'freeze_backbone'."
            )
    else:
        errors.append(f"backbone={backbone!r}: choose a timm backbone in the picker.")
    arch = model.get("detection_arch")
    if arch not in ARCHITECTURES:
        errors.append(f"detection_arch={arch!r}: expected one of {sorted(ARCHITECTURES)}.")
    channels = model.get("fpn_channels")
    low, high = FPN_CHANNELS_RANGE
    if isinstance(channels, bool) or not isinstance(channels, int) or not low <= channels <= high or channels % 8:
        errors.append(
            f"fpn_channels={channels!r}: expected a multiple of 8 between {low} and {high} "
            "(e.g. 64, 128, 256), so the head's GroupNorm keeps at least 8 groups (it uses gcd(32, fpn_channels))."
        )
    for name in ("cls_loss_weight", "reg_loss_weight"):
        if not model.get(name, 1.0) > 0:
            errors.append(f"{name}={model.get(name)!r}: expected > 0, or the detector cannot learn "
                          f"{'classes' if name.startswith('cls') else 'boxes'}.")
    num_classes = model.get("num_classes")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        errors.append(f"num_classes={num_classes!r}: expected an int >= 1.")
    size = data.get("image_size")
    if not isinstance(size, int) or size < 32 or size % 32:
        errors.append(f"image_size={size!r}: expected a multiple of 32, at least 32.")
    batch = data.get("batch_size")
    if not isinstance(batch, int) or batch < 1:
        errors.append(f"batch_size={batch!r}: expected an int >= 1.")
    epochs = trainer.get("max_epochs")
    if not isinstance(epochs, int) or epochs < 1:
        errors.append(f"max_epochs={epochs!r}: expected an int >= 1.")
    return errors


def _literal(value: Any) -> str:
    if isinstance(value, FeatureBackboneConfig):
        args = [repr(value.model_name), f"pretrained={value.pretrained!r}"]
        if value.fallback_to_scratch:
            args.append("fallback_to_scratch=True")
        return f"FeatureBackboneConfig({', '.join(args)})"
    return repr(value)


def _call(target: str, func: str, kwargs: dict[str, Any], first: list[str] | None = None) -> str:
    lines = [f"{target} = {func}("]
    lines += [f"    {arg}," for arg in first or []]
    lines += [f"    {key}={_literal(value)}," for key, value in kwargs.items()]
    return "\n".join(lines + [")"])


def generate_code(model: dict[str, Any], data: dict[str, Any], trainer: dict[str, Any]) -> str:
    """Python source that builds this model, data module and trainer and starts training.

    ``TRAIN`` and ``VAL`` (the annotation files) are left for the user to set.
    """
    _, trainer_import = trainer_class()
    trainer_name = trainer_import.split()[-1]
    parts = [
        "from autotimm import DetectionDataModule, FeatureBackboneConfig, ObjectDetector",
        trainer_import,
        "",
        'TRAIN, VAL = "train.json", "val.json"  # your annotation files (COCO; see DetectionDataModule)',
        "",
        _call("model", "ObjectDetector", model),
        _call("data", "DetectionDataModule", data, ["train=TRAIN", "val=VAL"]),
        _call("trainer", trainer_name, trainer),
        "trainer.fit(model, datamodule=data)",
    ]
    return "\n".join(parts) + "\n"

"""Benchmark settings: one dataclass, with the ``quick`` and ``full`` presets of ``python -m benchmarks``."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from benchmarks.contenders import ContenderSpec

SECTIONS: tuple[str, ...] = ("speed", "memory", "accuracy", "evaluator", "onnx")
MAX_STRIDE = 128  # P7's stride: benchmark image sizes are multiples of it, so every level's grid is exact

# Speed contenders: autotimm as its users run it (precision "auto"), torchvision as its users run it
# (fp32) and torchvision given the same bf16 + channels_last treatment.
SPEED_CONTENDERS: tuple[str, ...] = (
    "autotimm:fcos:auto", "autotimm:yolox:auto",
    "torchvision:fcos:fp32", "torchvision:fcos:bf16",
    "torchvision:retinanet:fp32", "torchvision:retinanet:bf16",
)  # fmt: skip
# "torchvision:fcos:auto": torchvision given autotimm's precision treatment. The full run adds
# "autotimm:fcos:auto:zeroinit": autotimm FCOS on a timm ResNet with timm's classification init
# (zero_init_last=True), which autotimm turns off from scratch: shows what that choice is worth.
ACCURACY_CONTENDERS: tuple[str, ...] = ("autotimm:fcos:auto", "autotimm:yolox:auto", "torchvision:fcos:auto")


@dataclass
class BenchConfig:
    """What to run and how big.

    Args:
        mode: label of the run ("quick", "full" or "custom"); RESULTS.md keeps one section per mode.
        sections: any of :data:`SECTIONS`.
        backbones: backbones of the speed/efficiency section (torchvision ResNet names).
        image_size / batch_size: speed, efficiency, memory and ONNX input. ``image_size`` (and
            ``accuracy_image_size``) must be a multiple of 128: this config's own rule, so that every
            level P3-P7 (strides 8-128) divides the image exactly for every contender. The detectors
            themselves take any multiple of 32 (P6/P7 come from stride-2 convolutions that round up).
        num_classes / fpn_channels / head_num_convs: detector size for speed, memory and ONNX.
        repeats / warmup: timed and untimed interleaved rounds.
        speed_contenders: "library:arch:precision" keys (see ``ContenderSpec.parse``).
        memory_backbones / memory_steps: peak-RSS probes (one subprocess per contender and backbone).
        memory_contenders: keys of the probed contenders; empty: the speed contenders.
        accuracy_*: the equal-budget training run on the bundled "shapes" data.
        accuracy_contenders: keys of the trained contenders.
        accuracy_fp32_check: also train autotimm FCOS in fp32 and compare its mAP with the fast path.
        accuracy_val_images: validate on the first N val images (None: all 50).
        accuracy_seeds: each accuracy contender trains once per seed (initial weights and batch
            order); the table gives the mean and every seed's mAP.
        eval_images / eval_detections: size of the synthetic set for the evaluator timing.
        onnx_backbones: backbones of the onnxruntime vs eager comparison.
    """

    mode: str = "quick"
    sections: tuple[str, ...] = SECTIONS
    backbones: tuple[str, ...] = ("resnet18", "resnet50")
    image_size: int = 512
    batch_size: int = 2
    num_classes: int = 80
    fpn_channels: int = 256
    head_num_convs: int = 4
    repeats: int = 3
    warmup: int = 1
    speed_contenders: tuple[str, ...] = SPEED_CONTENDERS
    memory_backbones: tuple[str, ...] = ("resnet18",)
    memory_steps: int = 2
    memory_contenders: tuple[str, ...] = ("autotimm:fcos:auto", "torchvision:fcos:fp32", "torchvision:fcos:bf16")
    accuracy_backbone: str = "resnet18"
    accuracy_image_size: int = 256
    accuracy_batch_size: int = 8
    accuracy_steps: int = 120
    accuracy_lr: float = 1e-3
    accuracy_contenders: tuple[str, ...] = ACCURACY_CONTENDERS
    accuracy_fp32_check: bool = False
    accuracy_val_images: int | None = None
    accuracy_workers: int = 1
    accuracy_seeds: tuple[int, ...] = (0,)
    eval_images: int = 200
    eval_detections: int = 100
    onnx_backbones: tuple[str, ...] = ("resnet18",)
    seed: int = 0

    def __post_init__(self) -> None:
        given_seeds = self.accuracy_seeds
        for name in ("sections", "backbones", "speed_contenders", "memory_contenders", "memory_backbones", "accuracy_contenders",
                     "onnx_backbones", "accuracy_seeds"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, str):
                value = tuple(v for v in value.split(",") if v)
            setattr(self, name, tuple(value))
        try:  # seeds given as text ("0,1,2" from the command line) become ints
            self.accuracy_seeds = tuple(int(v) if isinstance(v, str) else v for v in self.accuracy_seeds)
        except ValueError:
            raise ValueError(f"BenchConfig(accuracy_seeds={given_seeds!r}): expected comma-separated ints such as '0,1,2'.") from None
        if not self.accuracy_seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.accuracy_seeds):
            raise ValueError(f"BenchConfig(accuracy_seeds={self.accuracy_seeds!r}): expected one or more ints >= 0.")
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise ValueError(f"BenchConfig(sections={self.sections}): unknown {unknown}; valid sections: {list(SECTIONS)}.")
        for name in ("image_size", "accuracy_image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < MAX_STRIDE or value % MAX_STRIDE:
                raise ValueError(
                    f"BenchConfig({name}={value!r}): expected a multiple of {MAX_STRIDE} such as 128, 256 or 512 (the benchmarks "
                    f"keep every pyramid level P3-P7 exact; the models take any multiple of 32)."
                )
        positive = ("batch_size", "num_classes", "fpn_channels", "repeats", "memory_steps", "accuracy_batch_size",
                    "accuracy_steps", "eval_images", "eval_detections")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BenchConfig({name}={value!r}): expected an int >= 1.")
        for name in ("warmup", "head_num_convs", "accuracy_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"BenchConfig({name}={value!r}): expected an int >= 0.")
        if self.fpn_channels % 32 or self.fpn_channels < 64:
            raise ValueError(
                f"BenchConfig(fpn_channels={self.fpn_channels}): expected a multiple of 32 from 64 up (torchvision's "
                "heads use GroupNorm(32, C), and a 1-channel group on a 1x1 P7 cannot be normalised)."
            )
        if self.accuracy_val_images is not None and self.accuracy_val_images < 1:
            raise ValueError(f"BenchConfig(accuracy_val_images={self.accuracy_val_images!r}): expected None (all) or an int >= 1.")
        if not self.accuracy_lr > 0:
            raise ValueError(f"BenchConfig(accuracy_lr={self.accuracy_lr!r}): expected a positive float.")
        for key in self.speed_contenders + self.memory_contenders + self.accuracy_contenders:
            ContenderSpec.parse(key)  # raises on a bad key

    def with_overrides(self, **overrides: Any) -> "BenchConfig":
        """A copy with the non-None ``overrides`` applied (and validated)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"BenchConfig has no setting {unknown}; settings: {sorted(names)}.")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def quick() -> BenchConfig:
    """Every section at the issue's sizes, 3 repeats, a short accuracy run on one seed: 495 s measured
    on 2 idle cores with 2 threads (2026-11-26)."""
    return BenchConfig(mode="quick")


def full() -> BenchConfig:
    """More repeats, memory for every contender on both backbones, a longer accuracy run (fast path
    and fp32 autotimm FCOS, timm's zero_init_last, torchvision in fp32 and bf16), 1000-image evaluator,
    ONNX for both backbones: roughly 50 minutes on 2 idle cores (estimate)."""
    return BenchConfig(
        mode="full",
        repeats=7,
        warmup=2,
        memory_backbones=("resnet18", "resnet50"),
        memory_contenders=SPEED_CONTENDERS,
        accuracy_image_size=256,
        accuracy_steps=400,
        accuracy_contenders=("autotimm:fcos:auto", "autotimm:fcos:auto:zeroinit", "autotimm:yolox:auto",
                             "torchvision:fcos:fp32", "torchvision:fcos:bf16"),
        accuracy_fp32_check=True,
        accuracy_seeds=(0, 1, 2),
        eval_images=1000,
        onnx_backbones=("resnet18", "resnet50"),
    )


PRESETS = {"quick": quick, "full": full}

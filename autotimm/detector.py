"""ObjectDetector: timm backbone -> FPN -> FCOS/YOLOX head -> losses -> decode + NMS, as a
LightningModule. Constructor, defaults and logged names follow the reference API."""

from __future__ import annotations

import math
import os
import pickle
import warnings
import zipfile
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Iterator, Literal, Sequence

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn

from autotimm.arch.base import LOSS_NAMES, LossWeights, RawOutputs
from autotimm.arch.registry import ARCHITECTURES, build_arch
from autotimm.data.letterbox import to_original_frame
from autotimm.losses.functional import FocalLoss
from autotimm.models.backbone import Backbone, FeatureBackboneConfig
from autotimm.models.heads.layers import check_head_conv
from autotimm.models.neck import FPN, check_strides
from autotimm.ops.points import make_points
from autotimm.ops.targets import PaddedTargets
from autotimm.optim import SCHEDULE_FORMAT, ScheduleArgs, build_optimizer, build_scheduler, resume_scheduler_state
from autotimm.postprocess import PostprocessConfig, detect_padded, unpad
from autotimm.preprocessing import PreprocessingMixin, TransformConfig
from autotimm.utils.validation import check_images, check_targets

_LOADING_CHECKPOINT: ContextVar[bool] = ContextVar("autotimm_loading_checkpoint", default=False)


def _allow_config_classes_in_checkpoints() -> None:
    """Checkpoint hyperparameters hold our config dataclasses; let torch.load(weights_only=True) read them."""
    from autotimm.metrics.logging_config import LoggingConfig
    from autotimm.metrics.manager import MetricConfig

    torch.serialization.add_safe_globals([FeatureBackboneConfig, TransformConfig, MetricConfig, LoggingConfig])


_allow_config_classes_in_checkpoints()


class ObjectDetector(PreprocessingMixin, L.LightningModule):
    """End-to-end anchor-free detector: any timm backbone, FPN (P3-P7), FCOS (or YOLOX) head.

    Args: as in the reference API (``../shared/spec``); the most used:
        backbone: a timm model name or :class:`FeatureBackboneConfig`. A plain name builds the
            backbone with ``pretrained=True`` as in timm; use a config for ``pretrained=False``.
        num_classes: number of object classes (no background class).
        detection_arch: "fcos" or "yolox" (decoupled head with objectness and SimOTA).
        cls_loss_fn / reg_loss_fn: a registered loss name, an ``nn.Module`` or None (focal / GIoU).
        metrics: MetricManager, list of MetricConfig, or None (mAP on val and test).
        strides / regress_ranges: pyramid levels and FCOS size ranges per level.
        head_conv: keyword-only, an addition to the reference API. "dense" (default): every head tower
            layer is a 3x3 conv, as in the reference. "depthwise": each is YOLOX's DWConv pair instead, a
            depthwise 3x3 conv (one filter per channel) + norm + activation, then a pointwise 1x1 conv +
            norm + activation (GroupNorm, and ReLU for FCOS / SiLU for YOLOX, as the dense layers); the
            final prediction convs stay as they are. About 8x fewer FLOPs and parameters per tower layer
            at 64-256 channels: the nano preset's forward at 256 px goes from 1.00 to 0.66 GFLOPs (head
            0.41 -> 0.06) and 1.60 -> 1.47 M parameters. Whether it pays in accuracy per second of
            training is measured by the "nano_dw" config of ``benchmarks/time_to_accuracy.py``.
        compile_model: ``torch.compile`` the network; falls back to eager with a warning.
        seed: makes the initial weights reproducible (without touching the global RNG) and, unless the
            trainer has a seed of its own (``AutoTrainer(seed=...)``), seeds ``trainer.fit``.
        deterministic: deterministic algorithms (warn-only) and no cudnn benchmarking while
            ``trainer.fit`` runs, restored afterwards; ``AutoTrainer(deterministic=...)`` overrides it.

    Frames: ``forward`` and the losses work in the input frame (the letterboxed tensor);
    ``predict`` and the metrics work in the original frame.

    Example:
        >>> model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3)
        >>> detections = model.predict("image.jpg")  # [Detections]: r["boxes"], r["scores"], r["labels"], r.plot()
    """

    def __init__(
        self,
        backbone: str | FeatureBackboneConfig,
        num_classes: int,
        detection_arch: str = "fcos",
        cls_loss_fn: str | nn.Module | None = None,
        reg_loss_fn: str | nn.Module | None = None,
        metrics: Any = None,
        logging_config: Any = None,
        transform_config: TransformConfig | None = None,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        optimizer: str | dict[str, Any] = "adamw",
        optimizer_kwargs: dict[str, Any] | None = None,
        scheduler: str | dict[str, Any] | None = "cosine",
        scheduler_kwargs: dict[str, Any] | None = None,
        fpn_channels: int = 256,
        head_num_convs: int = 4,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        cls_loss_weight: float = 1.0,
        reg_loss_weight: float = 1.0,
        centerness_loss_weight: float = 1.0,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        max_detections_per_image: int = 100,
        freeze_backbone: bool = False,
        strides: tuple[int, ...] = (8, 16, 32, 64, 128),
        regress_ranges: tuple[tuple[int, int], ...] | None = None,
        compile_model: bool = True,
        compile_kwargs: dict[str, Any] | None = None,
        seed: int | None = None,
        deterministic: bool = True,
        *,
        head_conv: Literal["dense", "depthwise"] = "dense",
    ) -> None:
        super().__init__()
        _validate_args(locals())
        # Modules are not hyperparameters: pass them again to load_from_checkpoint if you used custom ones.
        modules = {"metrics": metrics, "cls_loss_fn": cls_loss_fn, "reg_loss_fn": reg_loss_fn}
        self.save_hyperparameters(ignore=[k for k, v in modules.items() if isinstance(v, nn.Module)] or None)
        self.seed, self.deterministic = seed, deterministic
        self._saved_torch_flags: tuple[bool, bool, bool] | None = None
        self._schedule_args: ScheduleArgs | None = None  # what configure_optimizers built the schedule from
        self._old_schedule: dict[str, Any] | None = None  # a format-1 checkpoint's scheduler state, see on_load_checkpoint
        self.num_classes = num_classes
        self.detection_arch = detection_arch
        self.strides = check_strides(strides)
        self._lr = lr
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.max_detections_per_image = max_detections_per_image
        self.transform_config = transform_config
        self.image_size: int | None = None  # set from the data module, kept in checkpoints
        self.class_names: list[str] | None = None
        self.label_to_category_id: dict[int, int] | None = None
        self.tiling: Any = None  # a TileConfig from a tiled data module: validation predicts whole images with it

        if _LOADING_CHECKPOINT.get():  # the checkpoint holds the weights: don't download pretrained ones
            backbone = FeatureBackboneConfig(backbone) if isinstance(backbone, str) else backbone
            backbone = replace(backbone, pretrained=False, weights_file=None)
        with _seeded(seed):  # reproducible initial weights, the global RNG left as it was
            self.backbone = Backbone(backbone, self.strides)
            self.fpn = FPN(self.backbone.channels, self.backbone.reductions, self.strides, fpn_channels)
            self.detection_head = build_arch(
                detection_arch, in_channels=fpn_channels, num_classes=num_classes, strides=self.strides,
                num_convs=head_num_convs, head_conv=head_conv, cls_loss_fn=cls_loss_fn, reg_loss_fn=reg_loss_fn,
                focal_alpha=focal_alpha, focal_gamma=focal_gamma, regress_ranges=regress_ranges,
                weights=LossWeights(cls=cls_loss_weight, box=reg_loss_weight, quality=centerness_loss_weight),
            )
        cfg = self.backbone.data_config
        mean = (transform_config.mean if transform_config and transform_config.mean else cfg["mean"])
        std = (transform_config.std if transform_config and transform_config.std else cfg["std"])
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

        self.metrics = _build_metrics(metrics)
        self.logging_config = _build_logging_config(logging_config)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.compile_model = compile_model
        self.compile_kwargs = dict(compile_kwargs or {})
        self._compiled: Any = None
        self._points_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        self.channels_last = False

    @classmethod
    def from_preset(
        cls, name: str, num_classes: int, *, pretrained: bool = True, fallback_to_scratch: bool = False, **overrides: Any
    ) -> "ObjectDetector":
        """A detector built from a preset of :mod:`autotimm.presets` ("nano", "small" or "medium").

        Args:
            name: the preset's name.
            num_classes: number of object classes.
            pretrained / fallback_to_scratch: as in :class:`FeatureBackboneConfig` for the preset's backbone.
            **overrides: constructor arguments that replace the preset's (e.g. ``lr=5e-4``).

        Example:
            >>> model = ObjectDetector.from_preset("nano", num_classes=3, pretrained=False)
            >>> model.hparams.fpn_channels
            64
        """
        from autotimm.presets import preset

        chosen = preset(name)  # type: ignore[arg-type]  # validates the name
        if "backbone" in overrides:
            raise ValueError(
                f"ObjectDetector.from_preset({name!r}, backbone={overrides['backbone']!r}): the backbone is the "
                f"preset's ({chosen.backbone!r}); use ObjectDetector(backbone, **preset({name!r}).model_kwargs) "
                "to combine another backbone with the preset's settings."
            )
        backbone = FeatureBackboneConfig(chosen.backbone, pretrained=pretrained, fallback_to_scratch=fallback_to_scratch)
        return cls(backbone, num_classes, **{**chosen.recipe().model_kwargs, **overrides})

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> "ObjectDetector":  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``, without downloading pretrained backbone weights that the
        checkpoint is about to overwrite (so it works offline)."""
        _check_checkpoint_file(checkpoint_path)
        token = _LOADING_CHECKPOINT.set(True)
        try:
            model = super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
            raise _unreadable(checkpoint_path, err) from err
        except KeyError as err:  # a torch file without a checkpoint's keys, e.g. a bare state_dict
            if err.args and err.args[0] in ("pytorch-lightning_version", "state_dict", "hyper_parameters"):
                raise _unreadable(checkpoint_path, KeyError(f"no {err.args[0]!r}: a torch file but not a checkpoint")) from err
            raise
        except RuntimeError as err:
            if "PytorchStreamReader" in str(err) or "zip archive" in str(err) or "storage" in str(err).lower():
                raise _unreadable(checkpoint_path, err) from err
            raise
        finally:
            _LOADING_CHECKPOINT.reset(token)
        bad = next((name for name, value in model.state_dict().items()
                    if value.is_floating_point() and not bool(torch.isfinite(value).all())), None)
        if bad is not None:
            warnings.warn(
                f"Checkpoint '{checkpoint_path}' holds non-finite weights (NaN or Inf, first: {bad}); its "
                "predictions are meaningless (usually no boxes). Use an earlier checkpoint of the run.",
                stacklevel=2,
            )
        return model

    # ------------------------------------------------------------------ network
    def raw_outputs(self, images: Tensor) -> RawOutputs:
        """:meth:`forward` run eagerly: no ``torch.compile``, no input checks (what ONNX export traces).

        Args:
            images: Tensor[B, 3, H, W] float, normalised (input frame).

        Returns:
            ``(cls, reg, quality)`` lists over levels, as :meth:`forward`.
        """
        return self.detection_head(self.fpn(self.backbone(images)))

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Raw per-level outputs for a normalised batch.

        Args:
            images: Tensor[B, 3, H, W] float, normalised (see :meth:`preprocess`).

        Returns:
            ``(cls_outputs, reg_outputs, centerness_outputs)``, each a list over pyramid levels:
            Tensor[B, K, H_l, W_l] class logits, Tensor[B, 4, H_l, W_l] box regression and
            Tensor[B, 1, H_l, W_l] quality logits. FCOS: (left, top, right, bottom) distances in
            input-frame pixels and centerness logits. YOLOX: raw (dx, dy, log_w, log_h) relative to
            the stride and OBJECTNESS logits as the third element (the reference's YOLOX returned
            None there because it had no objectness; ours does).
        """
        check_images(images)
        if self.compile_model and self._compiled is not False:
            try:
                if self._compiled is None:
                    self._compiled = torch.compile(self.raw_outputs, **self.compile_kwargs)
                return self._compiled(images)
            except Exception as err:  # noqa: BLE001 - any compiler failure falls back to eager
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:300]}); running eagerly.", stacklevel=2)
                self._compiled = False
        return self.raw_outputs(images)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_compiled"] = None  # compiled callables are neither picklable nor copyable
        return state

    def points(self, outputs: tuple[list[Tensor], ...]) -> tuple[Tensor, Tensor]:
        """Point centres Tensor[P, 2] (input frame) and level ids int64[P] for these outputs."""
        sizes = tuple(tuple(m.shape[-2:]) for m in outputs[0])
        device = outputs[0][0].device
        key = (sizes, str(device))
        if key not in self._points_cache:
            self._points_cache[key] = make_points(sizes, self.strides, device)
        return self._points_cache[key]

    # ------------------------------------------------------------------ losses and decoding
    def compute_loss(self, images: Tensor, targets: Sequence[dict[str, Tensor]], outputs: tuple | None = None) -> dict[str, Tensor]:
        """Losses for a normalised batch and its targets (input frame).

        Returns:
            dict with ``loss``, ``cls_loss``, ``reg_loss``, ``centerness_loss`` (scalars). YOLOX logs its
            objectness loss as ``centerness_loss`` (the reference's name) and also as ``obj_loss``, plus
            ``l1_loss`` in the last epochs.
        """
        check_targets(targets, images.shape[0], images.shape[-2:], self.num_classes)
        outputs = self(images) if outputs is None else outputs
        points, level = self.points(outputs)
        gt = PaddedTargets.from_targets(targets, images.device)
        return self.detection_head.loss(outputs, points, level, gt)

    def detect(
        self,
        outputs: tuple[list[Tensor], ...],
        image_size: tuple[int, int],
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        max_detections: int | None = None,
    ) -> list[dict[str, Tensor]]:
        """Raw outputs -> final detections per image in the input frame (the ONNX graph's post-processing)."""
        points, _ = self.points(outputs)
        config = PostprocessConfig(
            self.score_thresh if score_thresh is None else score_thresh,
            self.nms_thresh if nms_thresh is None else nms_thresh,
            self.max_detections_per_image if max_detections is None else max_detections,
        )
        return unpad(detect_padded(self.detection_head, outputs, points, image_size, config))

    # ------------------------------------------------------------------ inference API
    def predict(
        self,
        inputs: Any,
        image_size: int | None = None,
        batch_size: int = 8,
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        max_detections: int | None = None,
        precision: str = "auto",
        *,
        channels: Literal["rgb", "bgr"] = "rgb",
        stream: bool = False,
        progress: bool | None = None,
        tile: int | Literal["auto"] | None = None,
        overlap: float = 0.2,
        merge: Literal["nms", "wbf"] = "nms",
        full_image: bool = False,
    ) -> Any:
        """Detect objects in images, a folder, a glob or a video.

        Args:
            inputs: an image path, a folder (its images, sorted by name), a glob (``"data/*.jpg"``), a
                video file, a PIL image, an HxWxC uint8 numpy array, a CxHxW tensor (uint8, or float in
                [0, 1]), a batch (BxHxWxC array, BxCxHxW tensor) or a list of these.
            image_size: letterbox size; defaults to the size the model was trained at.
            batch_size: images per forward pass.
            score_thresh / nms_thresh / max_detections: override the model's settings for this call.
            precision: "auto" (bf16 + channels_last where the hardware runs bf16 fast), "bf16" or "fp32".
            channels: channel order of numpy arrays and tensors: "rgb" (the DEFAULT) or "bgr" (what
                OpenCV's ``cv2.imread`` / ``VideoCapture`` return). Files and PIL images are always RGB.
            stream: return a generator that predicts one batch at a time (use it for videos and large
                folders: nothing accumulates in memory; streamed video frames keep their pixels so
                ``r.plot()`` works).
            progress: show a progress bar; default: for 16 images or more, and for videos (tiled: one
                bar per image of 16 tiles or more).
            tile: cut large images into ``tile`` x ``tile`` px tiles run at the model's native scale (use
                the training image_size), so small objects keep their pixels; ``"auto"``: tile (at the
                training size) only images more than 2x longer than it, announced once; None: no
                tiling. Files are read a window at a time (memory bounded by ``batch_size`` tiles);
                see :mod:`autotimm.tiling`.
            overlap: least overlap of neighbouring tiles, a fraction of ``tile`` in [0, 1).
            merge: how detections of overlapping tiles merge: "nms" (class-aware NMS at
                ``nms_thresh``) or "wbf" (box fusion: duplicates averaged, weighted by score).
            full_image: with ``tile``, also run the whole image letterboxed to ``tile`` and merge its
                boxes, for objects larger than a tile. With tiling, ``max_detections`` caps each tile
                and, when given, the merged result (default: every merged box is kept).

        Returns:
            a list (or, with ``stream=True``, a generator) of :class:`autotimm.results.Detections`, one
            per image: ``r["boxes"]`` Tensor[N, 4] x1y1x2y2 in ORIGINAL image pixels, ``r["scores"]``
            Tensor[N], ``r["labels"]`` int64[N] (indices into ``r.names``), on the CPU; plus
            ``r.plot()``, ``r.save(path)``, ``r.to_json()``, ``r.to_coco(image_id)``, ``r.to_fiftyone()``.

        Example:
            >>> results = model.predict("images/")  # doctest: +SKIP
            >>> results[0].plot(score_thresh=0.3)  # doctest: +SKIP
            >>> for r in model.predict("clip.mp4", stream=True): ...  # doctest: +SKIP
            >>> big = model.predict("survey.tif", tile=640, overlap=0.2)[0]  # doctest: +SKIP
        """
        from autotimm.inference import predict

        return predict(self, inputs, image_size=image_size, batch_size=batch_size, score_thresh=score_thresh,
                       nms_thresh=nms_thresh, max_detections=max_detections, precision=precision,
                       channels=channels, stream=stream, progress=progress, tile=tile, overlap=overlap,
                       merge=merge, full_image=full_image)

    def evaluate(
        self,
        data: Any,
        *,
        images_dir: str | None = None,
        format: Literal["coco", "voc", "yolo", "csv"] | None = None,
        split: Literal["val", "test"] = "val",
        gt_field: str = "ground_truth",
        iou_thresh: float = 0.5,
        score_thresh: float | None = None,
        batch_size: int = 8,
        precision: str = "auto",
        progress: bool | None = None,
        tile: int | None = None,
        overlap: float = 0.2,
    ) -> Any:
        """Evaluate on annotated images and return an :class:`autotimm.evaluation.EvaluationReport`.

        Args:
            data: a ``DetectionDataModule`` (its val split, or ``split="test"``), an annotation file
                (COCO json, YOLO data.yaml, CSV, VOC folder; with ``images_dir=...`` when the images are
                elsewhere, ``format=...`` when the suffix does not tell), or a FiftyOne dataset/view
                (``gt_field="ground_truth"``).
            iou_thresh: IoU of the confidence curves, the table's precision/recall and the confusion
                matrix (one of COCO's 0.5, 0.55, ..., 0.95).
            score_thresh: operating point of the table and the confusion matrix; default: best F1.
            batch_size / precision / progress: as in :meth:`predict` (for files and FiftyOne data).
            tile / overlap: evaluate whole images through tiled predict (large images, small
                objects); a tiled ``DetectionDataModule(tile=...)`` does so by itself.

        Returns:
            the report: COCO summary (same numbers as validation, pycocotools' COCOeval), per-class
            table, PR curves, F1 vs confidence, confusion matrix; ``report.save(dir)``,
            ``report.best_threshold()``.

        Example:
            >>> report = model.evaluate(data)  # doctest: +SKIP
            >>> model.score_thresh = report.best_threshold()  # doctest: +SKIP
        """
        from autotimm.evaluation.run import evaluate

        return evaluate(self, data, images_dir=images_dir, format=format, split=split, gt_field=gt_field,
                        iou_thresh=iou_thresh, score_thresh=score_thresh, batch_size=batch_size,
                        precision=precision, progress=progress, tile=tile, overlap=overlap)

    # ------------------------------------------------------------------ Lightning hooks
    def batch_images(self, images: Tensor) -> Tensor:
        """A batch's images as the network takes them: uint8 batches from the data module are
        normalised here, on the model's device (channels_last on the fast path); float ones pass."""
        if images.dtype == torch.uint8:
            images = self.normalize(images)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        return images

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        dm_classes = getattr(dm, "num_classes", None)
        if dm_classes is not None and dm_classes != self.num_classes:
            raise ValueError(
                f"The model has num_classes={self.num_classes} but the data module has {dm_classes} classes "
                f"({getattr(dm, 'class_names', None)}); build the model with num_classes={dm_classes}."
            )
        self.image_size = getattr(dm, "image_size", self.image_size)
        self.tiling = getattr(dm, "tiling", None)
        names = getattr(dm, "class_names", None)
        self.class_names = list(names) if names is not None else self.class_names
        mapping = getattr(dm, "label_to_category_id", None)
        self.label_to_category_id = dict(mapping) if mapping else self.label_to_category_id
        if hasattr(self.metrics, "class_names") and self.class_names:
            self.metrics.class_names = self.class_names

    def on_fit_start(self) -> None:
        trainer = self.trainer
        if self.seed is not None and getattr(trainer, "seed", None) is None:
            L.seed_everything(self.seed, workers=True, verbose=False)
        if self.deterministic and getattr(trainer, "deterministic", None) is None and self._saved_torch_flags is None:
            self._saved_torch_flags = (
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark,
            )
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        precision = str(getattr(self.trainer, "precision", "32-true"))
        self.channels_last = precision.startswith("bf16")
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def teardown(self, stage: str) -> None:
        if self._saved_torch_flags is not None:  # undo on_fit_start's deterministic settings
            enabled, warn_only, benchmark = self._saved_torch_flags
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
            torch.backends.cudnn.benchmark = benchmark
            self._saved_torch_flags = None

    def train(self, mode: bool = True) -> "ObjectDetector":
        super().train(mode)
        if mode and self.freeze_backbone and not any(p.requires_grad for p in self.backbone.parameters()):
            self.backbone.eval()  # frozen backbone keeps its BatchNorm statistics
        return self

    def unfreeze_backbone(self) -> None:
        """Make the backbone trainable again (phase 2 of the two-phase recipe)."""
        self.backbone.requires_grad_(True)
        self.freeze_backbone = False

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["autotimm"] = {
            "image_size": self.image_size,
            "class_names": self.class_names,
            "label_to_category_id": self.label_to_category_id,
            "lr": self._lr,
            "schedule_format": SCHEDULE_FORMAT,  # the scheduler state counts optimizer steps
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get("autotimm", {})
        self.image_size = extra.get("image_size", self.image_size)
        self.class_names = extra.get("class_names", self.class_names)
        self.label_to_category_id = extra.get("label_to_category_id", self.label_to_category_id)
        trainer = self._trainer
        if "schedule_format" not in extra and checkpoint.get("lr_schedulers") and trainer is not None \
                and trainer.state.fn == TrainerFn.FITTING:
            # Written when epoch-length schedules stepped per epoch: its state may count epochs. Lightning must
            # not load it as it is; on_train_start converts it once this fit's schedule and optimizer exist.
            self._old_schedule = {
                "state": checkpoint["lr_schedulers"][0],
                "global_step": int(checkpoint.get("global_step", 0)),
                "source": str(trainer.ckpt_path),
            }
            checkpoint["lr_schedulers"] = []

    def on_train_start(self) -> None:
        old, self._old_schedule = self._old_schedule, None
        configs = self.trainer.lr_scheduler_configs
        if old is None or not configs or self._schedule_args is None:
            return
        scheduler = configs[0].scheduler
        state, lrs = resume_scheduler_state(old["state"], self._schedule_args, scheduler.optimizer,
                                            global_step=old["global_step"], source=old["source"])
        scheduler.load_state_dict(state)
        if lrs is not None:  # the lr the schedule sets at that step (the checkpoint restored the old one)
            for group, lr in zip(scheduler.optimizer.param_groups, lrs):
                group["lr"] = lr

    # ------------------------------------------------------------------ steps
    def _log_losses(self, stage: str, losses: dict[str, Tensor], batch_size: int) -> None:
        sync = stage != "train"
        for name in LOSS_NAMES:
            if name in losses:
                self.log(f"{stage}/{name}", losses[name].detach(), batch_size=batch_size, prog_bar=name == "loss",
                         on_step=stage == "train", on_epoch=True, sync_dist=sync)

    def training_step(self, batch: tuple[Tensor, list[dict[str, Tensor]]], batch_idx: int) -> Tensor:
        images, targets = batch
        images = self.batch_images(images)
        losses = self.compute_loss(images, targets)
        if not torch.isfinite(losses["loss"]):
            ids = [int(t["image_id"]) for t in targets if "image_id" in t]
            raise FloatingPointError(
                f"Non-finite training loss {float(losses['loss'])} at global step {self.global_step} "
                f"(batch {batch_idx}, image ids {ids}); the last good checkpoint is kept. Lower the lr, "
                "enable gradient clipping, or check these images' boxes."
            )
        self._log_losses("train", losses, images.shape[0])
        if self.logging_config is not None and getattr(self.logging_config, "log_learning_rate", False) and self._trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=images.shape[0])
        return losses["loss"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        cfg = self.logging_config
        if cfg is None:
            return
        from autotimm.metrics import logging_config as lc

        if getattr(cfg, "log_gradient_norm", False):
            self.log("train/grad_norm", lc.gradient_norm(self, cfg.norm_type), on_step=True, on_epoch=False)
        if getattr(cfg, "log_weight_norm", False):
            self.log("train/weight_norm", lc.weight_norm(self, cfg.norm_type), on_step=True, on_epoch=False)

    def _eval_step(self, stage: str, batch: tuple[Tensor, list[dict[str, Tensor]]]) -> None:
        images, targets = batch
        if isinstance(images, list):  # whole images of a tiled data module: tiled predict, ORIGINAL frame, no loss
            if self.metrics is not None and self.metrics.has_stage(stage):
                preds = self.detect_whole_images(images)
                gts = [{k: v for k, v in t.items() if k in ("boxes", "labels", "iscrowd", "area", "image_id")} for t in targets]
                for name, value in self.metrics.update(stage, preds, gts).items():
                    self.log(name, value, batch_size=len(preds), **self.metrics.log_kwargs(name))
            return
        images = self.batch_images(images)
        outputs = self(images)
        losses = self.compute_loss(images, targets, outputs=outputs)
        self._log_losses(stage, losses, images.shape[0])
        if self.metrics is not None and self.metrics.has_stage(stage):
            dets = self.detect(outputs, tuple(images.shape[-2:]))
            preds, gts = to_original_frame(dets, targets)
            for name, value in self.metrics.update(stage, preds, gts).items():
                self.log(name, value, batch_size=len(preds), **self.metrics.log_kwargs(name))

    def detect_whole_images(self, images: list[Tensor], tiling: Any = None) -> list[dict[str, Tensor]]:
        """Tiled detections of whole images, as tiled ``predict`` computes them.

        Args:
            images: uint8 Tensor[3, H_i, W_i] each (ORIGINAL frame).
            tiling: a :class:`autotimm.tiling.TileConfig`; default: the data module's (``self.tiling``),
                else tiles of the training image size.

        Returns:
            per image ``boxes`` [N, 4] (ORIGINAL frame), ``scores``, ``labels``, on the model's device.
        """
        from autotimm.inference import _detect_canvases
        from autotimm.tiling import TileConfig, TileReader, detect_tiled

        config = tiling or self.tiling or TileConfig(self.resolved_image_size())
        use_bf16 = bool(self.channels_last)

        def detect(canvas: Tensor) -> list[dict[str, Tensor]]:
            return _detect_canvases(self, canvas, score_thresh=None, nms_thresh=None, max_detections=None, use_bf16=use_bf16)

        out = []
        for image in images:
            det = detect_tiled(TileReader(image.cpu()), detect, config, batch_size=8, iou_thresh=self.nms_thresh,
                               pad_value=getattr(self.transform_config, "pad_value", 114), progress=False)
            out.append({k: v.to(self.device) for k, v in det.items()})
        return out

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def _log_metrics(self, stage: str) -> None:
        if self.metrics is None or not self.metrics.has_stage(stage):
            return
        values = self.metrics.compute(stage)
        for name, value in values.items():
            if value.numel() == 1 and float(value) == -1.0:  # COCOeval's "undefined" (no boxes): not a score
                value = torch.full_like(value, float("nan"), dtype=torch.float32)
            self.log(name, value, **self.metrics.log_kwargs(name), sync_dist=False)
        self.metrics.reset(stage)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Tensor]]:
        """Detections per image: in the original frame when targets carry letterbox info, else input frame."""
        images, targets = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        if isinstance(images, list):  # whole images of a tiled data module: tiled predict, ORIGINAL frame
            return self.detect_whole_images(images)
        images = self.batch_images(images)
        dets = self.detect(self(images), tuple(images.shape[-2:]))
        if targets is None:
            return dets
        return to_original_frame(dets, targets)[0]

    def to_onnx(
        self,
        save_path: str | None = None,
        example_input: Tensor | None = None,
        opset_version: int | None = None,
        dynamic_axes: dict[str, dict[int, str]] | None = None,
        **kwargs: Any,
    ) -> str:
        """Export to one self-contained ONNX file; returns its path (a temp file when ``save_path`` is None).

        Outputs are ``cls_l0..``, ``reg_l0..``, ``ctr_l0..`` per level (``obj_l*`` for YOLOX), or with
        ``include_postprocess=True`` boxes [B, K, 4] (input frame), scores, labels, num_detections.
        The input is the normalised float batch [B, 3, H, W] (input frame); H and W must be multiples
        of the backbone's deepest stride (usually 32); the batch axis is dynamic, H and W too with
        ``dynamic=True``. ``opset_version`` None: the exporter's default (18). ``kwargs`` go to
        :func:`autotimm.export.export_to_onnx` (include_postprocess, image_size, dynamic, half, ...).

        Example:
            >>> path = model.to_onnx("detector.onnx", include_postprocess=True)
        """
        from autotimm.export.onnx import DEFAULT_OPSET, export_to_onnx

        opset = DEFAULT_OPSET if opset_version is None else opset_version
        return export_to_onnx(self, save_path, example_input, opset, dynamic_axes, **kwargs)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = build_optimizer(hp.optimizer, self, self._lr, hp.weight_decay, hp.optimizer_kwargs)
        trainer = self._trainer
        max_epochs = trainer.max_epochs if trainer is not None and trainer.max_epochs and trainer.max_epochs > 0 else 1
        total_steps, steps_per_epoch = _stepping(trainer)
        self._schedule_args = ScheduleArgs(hp.scheduler, hp.scheduler_kwargs, tuple(g["lr"] for g in optimizer.param_groups),
                                           max_epochs, total_steps, steps_per_epoch)
        scheduler = build_scheduler(
            hp.scheduler, optimizer, hp.scheduler_kwargs, max_epochs, total_steps, steps_per_epoch=steps_per_epoch
        )
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def _stepping(trainer: Any) -> tuple[int, int | None]:
    """(optimizer steps of the whole fit, optimizer steps per epoch or None) from an attached Trainer.

    Per epoch: ``ceil(training batches / accumulate_grad_batches)``, as Lightning counts its optimizer
    steps (``limit_train_batches`` included); None without a Trainer or with an unsized loader.
    """
    if trainer is None:
        return 1, None
    total = trainer.estimated_stepping_batches  # also loads the train loader, which sets num_training_batches
    total = int(total) if math.isfinite(total) else 1
    batches = getattr(trainer, "num_training_batches", math.inf)
    if not math.isfinite(batches) or batches < 1:
        return total, None
    return total, math.ceil(int(batches) / max(1, int(trainer.accumulate_grad_batches)))


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Inside, torch's CPU RNG starts from ``seed`` (when given); the global RNG state is restored after."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _unreadable(path: Any, err: BaseException) -> ValueError:
    return ValueError(
        f"'{path}' is not a readable autotimm checkpoint ({type(err).__name__}: {str(err)[:200]}). The file may be "
        "truncated (an interrupted copy or a full disk) or not a checkpoint at all; use another checkpoint of "
        "the run, e.g. <run>/checkpoints/last.ckpt or best-*.ckpt."
    )


def _check_checkpoint_file(path: Any) -> None:
    """Fail with the file's name on a missing, empty or non-zip local file before torch reads it."""
    if not isinstance(path, (str, os.PathLike)) or "://" in str(path):
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: '{path}'. Checkpoints are in <run folder>/checkpoints/.")
    if os.path.getsize(path) == 0:
        raise _unreadable(path, EOFError("the file is empty (0 bytes)"))
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            legacy = f.read(2) == b"\x80\x02"  # torch's pre-1.6 (non-zip) format starts with a pickle header
        if not legacy:
            raise _unreadable(path, ValueError("no zip archive: truncated, or not written by torch.save"))


def _build_metrics(metrics: Any) -> Any:
    from autotimm.metrics.manager import MetricManager

    return MetricManager.from_metrics(metrics)


def _build_logging_config(config: Any) -> Any:
    if config is None:
        return None
    from autotimm.metrics.logging_config import LoggingConfig

    if not isinstance(config, LoggingConfig):
        raise ValueError(f"logging_config must be a LoggingConfig or None, got {type(config).__name__}.")
    return config


def _validate_args(args: dict[str, Any]) -> None:
    def fail(name: str, expected: str) -> None:
        raise ValueError(f"ObjectDetector({name}={args[name]!r}): expected {expected}.")

    if isinstance(args["num_classes"], bool) or not isinstance(args["num_classes"], int) or args["num_classes"] < 1:
        fail("num_classes", "an int >= 1 (object classes, background excluded)")
    if args["detection_arch"] not in ARCHITECTURES:
        fail("detection_arch", f"one of {sorted(ARCHITECTURES)}")
    for name in ("lr",):
        if not args[name] > 0:
            fail(name, "a positive float")
    if args["weight_decay"] < 0:
        fail("weight_decay", "a float >= 0")
    if not isinstance(args["fpn_channels"], int) or args["fpn_channels"] < 1:
        fail("fpn_channels", "a positive int such as 128, 256 or 512")
    if not isinstance(args["head_num_convs"], int) or args["head_num_convs"] < 0:
        fail("head_num_convs", "an int >= 0")
    check_head_conv(args["head_conv"], "ObjectDetector")
    FocalLoss(args["focal_alpha"], args["focal_gamma"])  # validates alpha/gamma
    for name in ("cls_loss_weight", "reg_loss_weight", "centerness_loss_weight"):
        if args[name] < 0:
            fail(name, "a float >= 0")
    if not 0 <= args["score_thresh"] < 1:
        fail("score_thresh", "a float in [0, 1)")
    if not 0 < args["nms_thresh"] <= 1:
        fail("nms_thresh", "a float in (0, 1]")
    if not isinstance(args["max_detections_per_image"], int) or args["max_detections_per_image"] < 1:
        fail("max_detections_per_image", "an int >= 1")
    strides = check_strides(args["strides"])
    ranges = args["regress_ranges"]
    if ranges is not None:
        if len(ranges) != len(strides):
            raise ValueError(
                f"ObjectDetector(regress_ranges=...) has {len(ranges)} ranges but strides {strides} has "
                f"{len(strides)} levels; give one (low, high) pair per stride."
            )
        for i, pair in enumerate(ranges):
            if len(pair) != 2 or not pair[0] < pair[1]:
                raise ValueError(f"regress_ranges[{i}] = {pair!r}: expected a (low, high) pair with low < high.")

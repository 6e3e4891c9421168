"""``DetectionDataModule``: annotation files in any supported format -> Lightning dataloaders.

Batches are ``(images, targets)``: uint8 Tensor[B, 3, S, S] (letterboxed, not normalised) and a
list of B target dicts in the INPUT frame (see :mod:`autotimm.data.dataset`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from autotimm.data.dataset import (
    CACHE_MODES,
    DIFFICULT_POLICIES,
    CacheMode,
    DetectionDataset,
    DifficultPolicy,
    apply_deferred_colour,
    collate_detection,
)
from autotimm.data.readers import FORMATS, AnnotationFormat, read_annotations
from autotimm.data.records import Annotations
from autotimm.data.sampler import EpochShuffleSampler, ResumableLoader
from autotimm.data.tiling import WholeImageDataset, check_training_tiles, collate_whole_images, default_tile_dir, tile_records
from autotimm.data.transforms import Augment, resolve_augment
from autotimm.data.validation import ImageCheck, validate_records
from autotimm.utils.validation import options_text

SPLITS = ("train", "val", "test")
Photometric = Literal["auto", "worker", "device"]
PHOTOMETRIC: tuple[Photometric, ...] = get_args(Photometric)
PathLike = str | os.PathLike


def default_num_workers() -> int:
    """``min(8, usable CPU cores)``: enough to feed a GPU, without flooding a small machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return min(8, cores)


class DetectionDataModule(L.LightningDataModule):
    """Train/val/test detection data from COCO, Pascal VOC, YOLO or CSV annotations.

    Args:
        train, val, test: the split's annotation source: a COCO json, a VOC xml folder or list
            file, a YOLO ``data.yaml`` (the split key is the argument's name) or a csv. At least one.
        format: "coco", "voc", "yolo" or "csv".
        images_dir: folder of the images (one for all splits, or ``{"train": ..., "val": ...}``);
            default: next to the annotation file (see each reader).
        image_size: side S of the square, letterboxed network input.
        batch_size: training batch size.
        num_workers: DataLoader workers; default :func:`default_num_workers`, which ``AutoTrainer``
            replaces at ``fit`` by a count sized to the free cores (see ``AutoTrainer(num_threads=...)``).
        augment: training augmentation: "none", "default", "strong" (mosaic + mixup), an
            ``AugmentConfig`` or a callable on tv_tensors (see ``DetectionDataset``). Validation,
            test and predict always use the plain letterbox.
        strict: raise on unusable images instead of skipping them with one warning.
        class_names: fixed class order for VOC/CSV (for COCO/YOLO it must match the file's).
        val_batch_size: batch size of val/test/predict loaders; default ``batch_size``.
        image_check: up-front image check, "decode" (catches truncated files), "header" or "none".
        difficult: what VOC ``difficult`` boxes become: "ignore" regions, ordinary boxes ("keep")
            or nothing ("drop").
        min_box_size: boxes narrower or lower than this many original pixels are dropped (with one
            warning per file) when reading.
        pin_memory: default: True when CUDA is available.
        persistent_workers: keep workers alive between epochs (when ``num_workers > 0``).
        prefetch_factor: batches prefetched per worker (when ``num_workers > 0``).
        drop_last: drop the last incomplete training batch.
        reader_options: extra reader arguments, e.g. ``{"annotations_dir": ..., "one_based": True}``
            for VOC (see ``autotimm.data.readers.read_voc``).
        shuffle_seed: seed of the training order, which depends only on (seed, epoch) so that a
            resumed run sees the images in the same order as an uninterrupted one. Default: the
            ``seed_everything`` seed when one is set, else a random one; kept in checkpoints.
        cache: "ram" keeps the training images decoded in memory, scaled to fit ``image_size``
            (see ``DetectionDataset``; a memory estimate is printed first); "none" reads per sample.
        tile: large images, small objects: training images longer than ``tile`` px are cut into
            ``tile`` x ``tile`` tiles up front (records per tile, see :mod:`autotimm.data.tiling`;
            use ``tile == image_size`` so tiles train at native scale), and val/test run on whole
            images through the model's tiled predict, so val/mAP is in original pixels. None: off.
        tile_overlap: least overlap of neighbouring tiles, a fraction of ``tile`` in [0, 1).
        min_visible: a box is kept in a tile when at least this fraction of its area lies in it.
        empty_ratio: tiles without boxes kept per tile with boxes (seeded draw).
        tile_dir: folder for the tile images; default: a folder per annotation file and tiling
            under the system temp folder (reused by later runs).
        photometric: where the training colour jitter runs: "worker" (in the DataLoader workers),
            "device" (drawn in the workers, applied batched on the model's device after transfer,
            in ``on_after_batch_transfer``; the workers then only decode and place), or "auto":
            "device" when the trainer's device is not a CPU (on a CPU the cost would only move),
            said once when the training loader is made. Same draws and maps either way (within 2
            levels: the contrast pivot is the exact mean on the device, a 1/16 sample on workers).

    Example:
        >>> dm = DetectionDataModule(train="data/shapes/train.json", val="data/shapes/val.json",
        ...                          image_size=320, batch_size=8)  # doctest: +SKIP
        >>> dm.num_classes, dm.class_names  # doctest: +SKIP
        (3, ['circle', 'square', 'triangle'])
        >>> dm.setup("fit"); images, targets = next(iter(dm.train_dataloader()))  # doctest: +SKIP
    """

    def __init__(
        self,
        train: PathLike | None = None,
        val: PathLike | None = None,
        test: PathLike | None = None,
        format: AnnotationFormat = "coco",
        images_dir: PathLike | Mapping[str, PathLike] | None = None,
        image_size: int = 640,
        batch_size: int = 16,
        num_workers: int | None = None,
        augment: Augment = "default",
        strict: bool = False,
        class_names: Sequence[str] | None = None,
        val_batch_size: int | None = None,
        image_check: ImageCheck = "decode",
        difficult: DifficultPolicy = "ignore",
        min_box_size: float = 1.0,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        prefetch_factor: int | None = None,
        drop_last: bool = False,
        reader_options: Mapping[str, Any] | None = None,
        shuffle_seed: int | None = None,
        cache: CacheMode = "none",
        tile: int | None = None,
        tile_overlap: float = 0.2,
        min_visible: float = 0.5,
        empty_ratio: float = 0.1,
        tile_dir: PathLike | None = None,
        photometric: Photometric = "auto",
    ) -> None:
        super().__init__()
        if photometric not in PHOTOMETRIC:
            raise ValueError(f"photometric must be {options_text(PHOTOMETRIC)}; got {photometric!r}.")
        self.photometric = photometric
        self._said_photometric = False
        if format not in FORMATS:
            raise ValueError(f"Unknown format {format!r}; valid formats: {list(FORMATS)}.")
        self.sources: dict[str, Path] = {}
        for split, source in zip(SPLITS, (train, val, test)):
            if source is None:
                continue
            if not Path(source).exists():
                raise ValueError(f"{split}={str(source)!r}: no such file or folder.")
            self.sources[split] = Path(source)
        if not self.sources:
            raise ValueError("Pass at least one of train=, val=, test= (annotation files of the splits).")
        if isinstance(images_dir, Mapping):
            unknown = set(images_dir) - set(SPLITS)
            if unknown:
                raise ValueError(f"images_dir keys must be among {list(SPLITS)}; got {sorted(unknown)}.")
        if not isinstance(image_size, int) or image_size < 32:
            raise ValueError(f"image_size must be an int >= 32; got {image_size!r}.")
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size or 1)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
            raise ValueError(f"num_workers must be an int >= 0 or None; got {num_workers!r}.")
        if image_check not in get_args(ImageCheck):
            raise ValueError(f"image_check must be {options_text(get_args(ImageCheck))}; got {image_check!r}.")
        if difficult not in DIFFICULT_POLICIES:
            raise ValueError(f"difficult must be {options_text(DIFFICULT_POLICIES)}; got {difficult!r}.")
        resolve_augment(augment)  # fail now on a bad preset name, not at setup
        check_training_tiles(tile, tile_overlap, min_visible, empty_ratio)
        self.tile, self.tile_overlap, self.min_visible, self.empty_ratio = tile, tile_overlap, min_visible, empty_ratio
        self.tile_dir = tile_dir

        self.format = format
        self.images_dir = images_dir
        self.image_size = image_size
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.num_workers_auto = num_workers is None  # AutoTrainer may size them to the free cores
        self.augment = augment
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be {options_text(CACHE_MODES)}; got {cache!r}.")
        self.cache = cache
        self.strict = strict
        self.image_check = image_check
        self.difficult = difficult
        self.min_box_size = min_box_size
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.drop_last = drop_last
        self.reader_options = dict(reader_options or {})
        if shuffle_seed is not None and (isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int)):
            raise ValueError(f"shuffle_seed must be an int or None; got {shuffle_seed!r}.")
        self.shuffle_seed = shuffle_seed
        self._train_sampler: EpochShuffleSampler | None = None
        self._resume_at: tuple[int, int] | None = None
        self._given_class_names = list(class_names) if class_names is not None else None
        self._annotations: dict[str, Annotations] = {}
        self.train_dataset: DetectionDataset | None = None
        self.val_dataset: DetectionDataset | None = None
        self.test_dataset: DetectionDataset | None = None

    # -- alternative constructors -------------------------------------------------------------
    @classmethod
    def from_coco(cls, train: PathLike | None = None, val: PathLike | None = None,
                  test: PathLike | None = None, **kwargs: Any) -> "DetectionDataModule":
        """COCO json files per split (``images_dir=`` when images are not beside the json)."""
        return cls(train=train, val=val, test=test, format="coco", **kwargs)

    @classmethod
    def from_voc(cls, train: PathLike | None = None, val: PathLike | None = None,
                 test: PathLike | None = None, **kwargs: Any) -> "DetectionDataModule":
        """VOC xml folders or ImageSets list files per split."""
        return cls(train=train, val=val, test=test, format="voc", **kwargs)

    @classmethod
    def from_yolo(cls, data_yaml: PathLike, **kwargs: Any) -> "DetectionDataModule":
        """Every split (train/val/test) that the Ultralytics ``data.yaml`` defines."""
        import yaml

        path = Path(data_yaml)
        if not path.is_file():
            raise ValueError(f"YOLO data.yaml not found: '{path}'.")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        splits = {s: path for s in SPLITS if isinstance(data, dict) and data.get(s)}
        if not splits:
            raise ValueError(f"{path}: defines none of the splits {list(SPLITS)}.")
        return cls(**splits, format="yolo", **kwargs)

    @classmethod
    def from_csv(cls, train: PathLike | None = None, val: PathLike | None = None,
                 test: PathLike | None = None, **kwargs: Any) -> "DetectionDataModule":
        """``image_path,x_min,y_min,x_max,y_max,label`` csv files per split."""
        return cls(train=train, val=val, test=test, format="csv", **kwargs)

    # -- classes (available before setup, so a model can be built first) ----------------------
    def annotations(self, split: str) -> Annotations:
        """The parsed annotations of a split (read once, then cached), images not yet checked."""
        if split not in self.sources:
            raise ValueError(f"No '{split}' split was given; available: {list(self.sources)}.")
        if split not in self._annotations:
            reference = self._given_class_names
            first = next(iter(self.sources))
            if reference is None and split != first:
                reference = self.annotations(first).class_names
            images_dir = self.images_dir.get(split) if isinstance(self.images_dir, Mapping) else self.images_dir
            ann = read_annotations(
                self.format, self.sources[split], images_dir, reference, split=split,
                min_size=self.min_box_size, **self.reader_options,
            )
            if split != first and ann.category_ids != self.annotations(first).category_ids:
                raise ValueError(
                    f"{self.sources[split]}: category ids {ann.category_ids} differ from the "
                    f"{first} split's {self.annotations(first).category_ids}."
                )
            self._annotations[split] = ann
        return self._annotations[split]

    @property
    def class_names(self) -> list[str]:
        """K class names; label k is ``class_names[k]``."""
        return list(self.annotations(next(iter(self.sources))).class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def label_to_category_id(self) -> dict[int, int]:
        """Label -> category id of the source dataset (COCO ids for COCO, ``label + 1`` otherwise)."""
        ids = self.annotations(next(iter(self.sources))).category_ids
        return dict(enumerate(ids))

    @property
    def tiling(self) -> Any:
        """The :class:`autotimm.ops.tiles.TileConfig` that validation predicts with, or None without ``tile``."""
        if self.tile is None:
            return None
        from autotimm.ops.tiles import TileConfig

        return TileConfig(self.tile, self.tile_overlap)

    # -- Lightning hooks --------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs; images are checked here, once per split."""
        wanted = {
            "fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test", "val"),
        }.get(stage or "", SPLITS)
        for split in wanted:
            if split in self.sources and getattr(self, f"{split}_dataset") is None:
                setattr(self, f"{split}_dataset", self._build(split))

    def _build(self, split: str) -> DetectionDataset:
        ann = self.annotations(split)
        records = validate_records(ann.records, self.strict, self.image_check, str(self.sources[split]))
        if not records:
            raise ValueError(f"{self.sources[split]}: no usable images are left in the {split} split.")
        if not any(r.num_boxes for r in records):
            message = (
                f"{self.sources[split]}: the {split} split has {len(records)} images but not one box "
                f"(format={self.format!r}). Check that the annotations belong to these images (file names, "
                "image ids, the labels folder) and the format."
            )
            if split == "train":
                raise ValueError(message + " A detector cannot learn from images without boxes.")
            warnings.warn(message + " Its mAP is undefined (logged as NaN), so checkpoints cannot be chosen by it.",
                          stacklevel=2)
        if self.tile is not None and split != "train":
            return WholeImageDataset(records, ann.class_names, self.difficult)  # type: ignore[return-value]
        if self.tile is not None:
            out = self.tile_dir or default_tile_dir(self.sources[split], self.tile, self.tile_overlap)
            records = tile_records(records, self.tile, self.tile_overlap, self.min_visible, self.empty_ratio, out)
        augment = self.augment if split == "train" else "none"
        cache = self.cache if split == "train" else "none"
        return DetectionDataset(records, ann.class_names, self.image_size, augment, self.difficult, cache=cache)

    def _loader(self, dataset: DetectionDataset | None, split: str, train: bool) -> DataLoader:
        if dataset is None:
            if split not in self.sources:
                raise ValueError(f"No '{split}' split was given to DetectionDataModule; available: {list(self.sources)}.")
            raise RuntimeError(f"Call setup() before asking for the {split} dataloader.")
        workers = self.num_workers
        sampler = None
        if not train and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Evaluation splits are sharded without padding, so no image is counted twice in a
            # multi-process mAP (Lightning keeps a DistributedSampler subclass as given).
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        # Training shuffles through the sampler. No `shuffle=` argument then: Lightning reads a given
        # `shuffle=False` as "not shuffled" and would not shuffle its DistributedSampler in DDP.
        order = {"sampler": EpochShuffleSampler(dataset, self._resolve_shuffle_seed)} if train else {"shuffle": False, "sampler": sampler}
        loader = (ResumableLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size if train else self.val_batch_size,
            **order,
            drop_last=train and self.drop_last,
            num_workers=workers,
            collate_fn=collate_whole_images if isinstance(dataset, WholeImageDataset) else collate_detection,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
        )
        if train:
            dataset.colour_on_device = self._colour_on_device(dataset)
            loader.batches_done = self._batches_done
            self._train_sampler = order["sampler"]
            if self._resume_at is not None:
                self._train_sampler.resume_at, self._resume_at = self._resume_at, None
        return loader

    def _colour_on_device(self, dataset: DetectionDataset) -> bool:
        """Whether the training colour jitter is left to the device (``photometric``); "auto" says its choice once."""
        if self.photometric != "auto":
            return self.photometric == "device"
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        on_device = device.type != "cpu"
        if dataset.jitter is not None and not self._said_photometric:
            self._said_photometric = True
            where = f"batched on {device.type}" if on_device else "in the DataLoader workers"
            rank_zero_info(f"DetectionDataModule: colour jitter runs {where} (photometric='auto').")
        return on_device

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the colour jitter that ``photometric="device"`` left to the batch, on its device."""
        if (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], torch.Tensor)
                and isinstance(batch[1], list) and all(isinstance(t, dict) for t in batch[1])):
            return apply_deferred_colour(*batch)
        return batch

    def _batches_done(self) -> int:
        """Training batches completed in the current epoch (Lightning's progress counter), for a resume."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)

    def _resolve_shuffle_seed(self) -> int:
        """The training-order seed, fixed at the first training epoch (see ``shuffle_seed``)."""
        if self.shuffle_seed is None:
            env = os.environ.get("PL_GLOBAL_SEED")
            self.shuffle_seed = int(env) if env is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        return self.shuffle_seed

    def state_dict(self) -> dict[str, Any]:
        """Kept in checkpoints: the training-order seed and the position in the current epoch, so a
        resume continues the same order from the next unseen batch."""
        if self.shuffle_seed is None:
            return {}
        state: dict[str, Any] = {"shuffle_seed": self.shuffle_seed}
        if self._train_sampler is not None:
            state["train_position"] = {"epoch": self._train_sampler.epoch, "batches": self._batches_done()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("shuffle_seed") is not None:
            self.shuffle_seed = int(state_dict["shuffle_seed"])
        position = state_dict.get("train_position")
        if position:
            # Lightning may have built the loader already (to count steps); the sampler reads this at
            # its next epoch start and skips the batches done only when that epoch is the saved one.
            resume = (int(position["epoch"]), int(position["batches"]) * self.batch_size)
            if self._train_sampler is not None:
                self._train_sampler.resume_at = resume
            else:
                self._resume_at = resume

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", train=True)

    def val_dataloader(self) -> DataLoader | list:
        """Letterbox-only val loader; an empty list (Lightning skips validation) without a val split."""
        if "val" not in self.sources:
            return []
        return self._loader(self.val_dataset, "val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split when given, else the val split (letterbox only, targets included)."""
        if self.test_dataset is not None:
            return self._loader(self.test_dataset, "test", train=False)
        return self._loader(self.val_dataset, "val", train=False)

    # -- strong augmentation ----------------------------------------------------------------
    def set_strong_augment(self, enabled: bool) -> None:
        """Turn mosaic/mixup of the training set on or off, also inside running workers."""
        if self.train_dataset is None:
            raise RuntimeError("set_strong_augment() needs the training set: call setup('fit') first.")
        self.train_dataset.set_strong_augment(enabled)

    def summary(self) -> str:
        """A few lines describing the data, for a notebook cell."""
        lines = [
            f"format        {self.format}",
            f"classes       {self.num_classes}: {', '.join(self.class_names[:10])}"
            + (" ..." if self.num_classes > 10 else ""),
            f"image_size    {self.image_size}",
            f"batch_size    {self.batch_size} (val {self.val_batch_size}), workers {self.num_workers}",
            f"augment       {self.augment if isinstance(self.augment, str) else type(self.augment).__name__}",
        ]
        if self.tile is not None:
            lines.append(f"tiles         {self.tile} px, overlap {self.tile_overlap:g}, min_visible {self.min_visible:g}, "
                         f"empty_ratio {self.empty_ratio:g} (val/test: whole images, tiled predict)")
        for split in self.sources:
            ann = self.annotations(split)
            boxes = sum(r.num_boxes for r in ann.records)
            empty = sum(r.num_boxes == 0 for r in ann.records)
            lines.append(f"{split:<13} {len(ann.records)} images, {boxes} boxes, {empty} without boxes")
        return "\n".join(lines)

"""Detection dataset: records -> (letterboxed uint8 image, target dict in the input frame).

Each sample is ``(image, target)``:

* ``image``: uint8 Tensor[3, S, S], RGB, letterboxed, NOT normalised (the model normalises on its
  device with its backbone's mean/std).
* ``target``: ``boxes`` float32 [N, 4] x1y1x2y2 in the INPUT frame, ``labels`` int64 [N],
  ``iscrowd`` int64 [N] (1 = ignore region), ``image_id`` int64 scalar, ``orig_size`` int64 [2]
  ``(H, W)`` and ``letterbox`` float32 [3] ``(scale, pad_x, pad_y)`` with
  ``x_input = x_original * scale + pad``. Without augmentation (validation) this map is exact and
  ``boxes_to_original(boxes, letterbox, orig_size)`` recovers original-frame boxes. Under
  augmentation it describes the final resize/crop only (flips are not in it; for a mosaic,
  ``orig_size`` is the 2S x 2S mosaic canvas).

Augmented samples (any ``AugmentConfig`` but the plain letterbox) read the image header first, draw
their placement, then decode JPEGs at 1/2, 1/4 or 1/8 size where the output scale allows
(``read_pil_reduced``), or take the image from ``cache="ram"``; boxes always map from the original
frame, so they stay exact. The plain letterbox ("none", validation) decodes the full image.

Mosaic and mixup draw their partner images from a small per-worker buffer of recently decoded images
(``partner_buffer``, :mod:`autotimm.data.buffer`), as the fastest detection kits do, so a sample
decodes about one image instead of four or five. Partners are thus drawn from the images the worker
loaded lately rather than from the whole dataset; the order of samples and the probability of each
augmentation are unchanged, and draws come from torch's generator (the same seed, sampler order and
number of workers give the same samples; a mid-epoch resume restarts the buffer empty, so its
first partners differ from an uninterrupted run's).

Strong augmentation (mosaic, mixup) reads a flag kept in a one-element SHARED-MEMORY tensor.
DataLoader workers, persistent ones included, hold the same memory, so
``dataset.set_strong_augment(False)`` in the main process reaches every worker from the next batch
it starts (Lightning resets the loader iterator after ``on_train_epoch_start``, so flipping the flag
in that hook takes effect for that whole epoch).

With ``colour_on_device=True`` the colour jitter is drawn per sample as always (same draws, same
random stream) but not applied: the sample's target carries its factors as ``colour_jitter`` float32
[4], and :func:`apply_deferred_colour` applies a batch's maps at once on the model's device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, Sequence, get_args

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from autotimm.data.buffer import RecentImages
from autotimm.data.color import (JITTER_KEY, Uint8ColorJitter, apply_color_map, colour_region, jitter_batch, jitter_factors,
                                 map_grey, mean_luma, pil_to_tensor, tensor_to_pil)
from autotimm.data.image_io import read_image_size, read_pil, read_pil_reduced
from autotimm.data.letterbox import PAD_VALUE, boxes_to_input, letterbox_image, letterbox_params, resized_hw
from autotimm.data.mosaic import make_mosaic, mixup
from autotimm.data.records import DetectionRecord
from autotimm.data.transforms import (
    Augment,
    AugmentConfig,
    apply_v2,
    hflip,
    place_boxes,
    place_image,
    reduced_placement,
    resolve_augment,
    sample_placement,
)
from autotimm.utils.validation import options_text

DifficultPolicy = Literal["ignore", "keep", "drop"]
DIFFICULT_POLICIES: tuple[DifficultPolicy, ...] = get_args(DifficultPolicy)
CacheMode = Literal["none", "ram"]
CACHE_MODES: tuple[CacheMode, ...] = get_args(CacheMode)
Target = dict[str, Tensor]
# a decoded image: (uint8 Tensor[3, h, w] channels-last, original (H, W), (W_e, H_e) the original frame's extent in it)
Decoded = tuple[Tensor, tuple[int, int], tuple[float, float]]
MIN_HELD = 16  # mosaic / mixup draw partners from the recent images once this many (or all) are held


@dataclass
class PlacedSample:
    """One image placed on the S x S canvas, with its boxes, before it becomes ``(image, target)``.

    Attributes:
        image: uint8 Tensor[3, S, S] (input frame; channels-last memory on the augmented path).
        boxes: float Tensor[N, 4] x1y1x2y2 in the input frame.
        labels: int64 Tensor[N]; iscrowd: int64 Tensor[N] (1 = ignore region).
        letterbox: float32 Tensor[3] ``(scale, pad_x, pad_y)`` of ``x_input = x_original * scale + pad``.
        orig_size: (H, W) of the original frame (for a mosaic, the 2S x 2S mosaic canvas).
        content: ``(x1, y1, x2, y2)`` outside which the image is pad grey, or None (anywhere).
    """

    image: Tensor
    boxes: Tensor
    labels: Tensor
    iscrowd: Tensor
    letterbox: Tensor
    orig_size: tuple[int, int]
    content: tuple[int, int, int, int] | None = None

    @property
    def extra(self) -> dict[str, Tensor]:
        """The per-box fields other than ``boxes``, as the transforms take them."""
        return {"labels": self.labels, "iscrowd": self.iscrowd}

    def with_boxes(self, image: Tensor, boxes: Tensor, extra: dict[str, Tensor]) -> "PlacedSample":
        """A copy with a new image and new boxes (and their per-box fields); the frame is unchanged."""
        return PlacedSample(image, boxes, extra["labels"], extra["iscrowd"], self.letterbox, self.orig_size, self.content)


class DetectionDataset(Dataset):
    """Images and boxes from :class:`DetectionRecord` s, letterboxed to ``image_size``.

    Args:
        records: one record per image (see ``autotimm.data.readers``).
        class_names: K names; labels index into it.
        image_size: side S of the square input.
        augment: "none" (letterbox only, use for validation), "default", "strong", an
            ``AugmentConfig``, or a callable ``(tv_tensors.Image, target) -> (image, target)``
            (e.g. a ``torchvision.transforms.v2.Compose``) applied in the ORIGINAL frame before an
            exact letterbox; its target holds ``boxes`` as ``tv_tensors.BoundingBoxes``, ``labels``
            and ``iscrowd``.
        difficult: VOC ``difficult`` boxes become ignore regions ("ignore", VOC's evaluation rule),
            stay ordinary boxes ("keep"), or are removed ("drop").
        cache: "ram" decodes every image once, up front, scaled to fit ``image_size`` (never
            enlarged), and keeps it in memory for the augmented path (a memory estimate is
            printed first; forked DataLoader workers share the pages, spawned ones each get a
            copy). "none" decodes per sample. The plain letterbox ("none" augment, validation)
            always reads the file.
        partner_buffer: with mosaic or mixup and ``cache="none"``: how many recently decoded
            images (scaled to fit ``image_size``, never enlarged) each DataLoader worker keeps to
            draw the mosaic's three other images and the mixup partner from, as fast detection kits
            do; each sample then decodes about one image instead of four or five. 0 draws partners
            from the whole dataset and decodes them (slower). Partners are drawn uniformly from the
            buffer once it holds 16 images (or every image of a smaller dataset), from the whole
            dataset before that; the probabilities of mosaic and mixup are unchanged. Memory per
            worker: up to ``partner_buffer * 3 * image_size**2`` bytes (~157 MB at 128 x 640 px).
        colour_on_device: leave the colour jitter to :func:`apply_deferred_colour` after the batch
            is on the model's device (the target gets ``colour_jitter``, float32 [4]); the workers
            then only decode and place. An attribute, so it can be set before the loader is made.

    Example:
        >>> records, names, _ = read_coco("data/shapes/val.json")  # doctest: +SKIP
        >>> image, target = DetectionDataset(records, names, image_size=320)[0]  # doctest: +SKIP
    """

    def __init__(
        self,
        records: Sequence[DetectionRecord],
        class_names: Sequence[str],
        image_size: int = 640,
        augment: Augment = "none",
        difficult: DifficultPolicy = "ignore",
        cache: CacheMode = "none",
        partner_buffer: int = 128,
        colour_on_device: bool = False,
    ) -> None:
        if isinstance(partner_buffer, bool) or not isinstance(partner_buffer, int) or partner_buffer < 0:
            raise ValueError(f"partner_buffer must be an int >= 0 (0: no buffer); got {partner_buffer!r}.")
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be {options_text(CACHE_MODES)}; got {cache!r}.")
        if not isinstance(image_size, int) or image_size < 32:
            raise ValueError(f"image_size must be an int >= 32; got {image_size!r}.")
        if difficult not in DIFFICULT_POLICIES:
            raise ValueError(f"difficult must be {options_text(DIFFICULT_POLICIES)}; got {difficult!r}.")
        self.records = list(records)
        self.class_names = list(class_names)
        self.image_size = image_size
        self.difficult = difficult
        self.augment = resolve_augment(augment)
        config = self.augment if isinstance(self.augment, AugmentConfig) else None
        self.config = config
        # the colour jitter runs on the source image when that has fewer pixels than what shows of
        # it (``_single``), else on the shown part of the finished canvas (``__getitem__``)
        jitter = (config.brightness, config.contrast, config.saturation, config.hue) if config else (0.0,)
        self.jitter = Uint8ColorJitter(*(j or None for j in jitter)) if any(jitter) else None
        # shared memory, so persistent DataLoader workers see set_strong_augment() (module docstring)
        self._strong = torch.ones((), dtype=torch.bool).share_memory_()
        self.cache = cache
        self._cached: list[Decoded] | None = None
        self._sizes: dict[int, tuple[int, int]] = {}  # (H, W) per record, read from headers as needed
        if cache == "ram" and self._fast_path():
            self._cached = self._fill_cache()
        self.partner_buffer = partner_buffer
        self.colour_on_device = bool(colour_on_device)
        self._recent: RecentImages[Decoded] | None = None  # made on first use in each process
        self._recent_pid: int | None = None

    # -- strong augmentation switch ---------------------------------------------------------
    @property
    def strong_augment(self) -> bool:
        """Whether mosaic and mixup may fire (they also need a config that enables them)."""
        return bool(self._strong)

    def set_strong_augment(self, enabled: bool) -> None:
        """Switch mosaic and mixup on or off, in this process and in every DataLoader worker."""
        self._strong.fill_(bool(enabled))

    # -- Dataset API ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        record = self.records[index]
        config = self.config
        strong = config is not None and config.uses_strong and self.strong_augment
        colour = self.jitter.make_params([]) if self.jitter is not None else None
        use_mosaic = strong and float(torch.rand(())) < config.mosaic_prob
        use_mixup = strong and float(torch.rand(())) < config.mixup_prob
        coloured = deferred = colour is not None and self.colour_on_device  # drawn, left to the device
        if use_mosaic:
            sample = self._mosaic(index)
        else:
            sample, placed_coloured = self._single(index, colour=None if use_mixup or deferred else colour)
            coloured = coloured or placed_coloured
        if use_mixup:
            other, _ = self._single(self._partners(1)[0])
            extra = {k: torch.cat([sample.extra[k], other.extra[k]]) for k in sample.extra}
            content = None
            if sample.content is not None and other.content is not None:  # pad grey outside both
                a, b = sample.content, other.content
                content = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
            sample = replace(sample.with_boxes(mixup(sample.image, other.image), torch.cat([sample.boxes, other.boxes]), extra),
                             content=content)
        if colour is not None and not coloured:
            if sample.content is not None:  # only what shows: the pad gets the map's image of its grey
                image = colour_region(sample.image, colour, sample.content, PAD_VALUE)
            else:
                image = self.jitter.transform(tv_tensors.Image(sample.image), colour).as_subclass(Tensor)
            sample = sample.with_boxes(image, sample.boxes, sample.extra)
        if config is not None and config.hflip_prob > 0:  # v2.RandomHorizontalFlip's draw, then its sanitising
            image, boxes = sample.image, sample.boxes
            if float(torch.rand(())) < config.hflip_prob:
                image, boxes = hflip(image, boxes)
            keep = ((boxes[:, 2:] - boxes[:, :2]) >= 1.0).all(1)  # as v2.SanitizeBoundingBoxes(min_size=1)
            sample = sample.with_boxes(image, boxes[keep], {k: v[keep] for k, v in sample.extra.items()})
        target = {
            "boxes": sample.boxes.float().reshape(-1, 4),
            "labels": sample.labels.long(),
            "iscrowd": sample.iscrowd.long(),
            "image_id": torch.tensor(record.image_id, dtype=torch.int64),
            "orig_size": torch.tensor(sample.orig_size, dtype=torch.int64),
            "letterbox": sample.letterbox.float(),
        }
        if deferred:
            target[JITTER_KEY] = jitter_factors(colour)
        return sample.image, target

    # -- steps --------------------------------------------------------------------------------
    def load(self, index: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Image and boxes of one record in the ORIGINAL frame.

        Returns:
            (image uint8 Tensor[3, H, W], boxes float32 Tensor[N, 4],
            {"labels": int64 [N], "iscrowd": int64 [N]}), with the ``difficult`` policy applied.
        """
        # one writable copy (np.asarray of a PIL image is read-only), left channels-last: torch's
        # uint8 resize runs several times faster on it, with identical output
        image = pil_to_tensor(read_pil(self.records[index].image_path))
        return (image, *self.load_boxes(index))

    def load_boxes(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Boxes float32 Tensor[N, 4] (ORIGINAL frame) and their labels / iscrowd of one record,
        with the ``difficult`` policy applied."""
        record = self.records[index]
        boxes = torch.from_numpy(record.boxes).float()
        labels = torch.from_numpy(record.labels).long()
        crowd = torch.from_numpy(record.iscrowd)
        difficult = torch.from_numpy(record.difficult)
        if self.difficult == "ignore":
            crowd = crowd | difficult
        elif self.difficult == "drop":
            keep = ~difficult
            boxes, labels, crowd = boxes[keep], labels[keep], crowd[keep]
        return boxes, {"labels": labels, "iscrowd": crowd.long()}

    def _fast_path(self) -> bool:
        """Augmented samples (any config but the plain letterbox) are built from reduced JPEG
        decodes (``read_pil_reduced``), resampled once, straight to their placement."""
        return self.config is not None and self.config != AugmentConfig()

    def _header(self, index: int) -> tuple[int, int]:
        """Original (H, W) of one image, from its header (read once per process) or the RAM cache."""
        if self._cached is not None:
            return self._cached[index][1]
        if index not in self._sizes:
            width, height = read_image_size(self.records[index].image_path)
            self._sizes[index] = (height, width)
        return self._sizes[index]

    def _buffer(self) -> RecentImages[Decoded] | None:
        """This process's recent images (see ``partner_buffer``), or None when partners are not
        drawn from a buffer. A DataLoader worker starts with an empty one, whatever its parent held."""
        config = self.config
        if not self.partner_buffer or self._cached is not None or config is None or not config.uses_strong:
            return None
        if not self.strong_augment:  # switched off (last epochs): no partners, reduced decodes as for "default"
            return None
        if self._recent is None or self._recent_pid != os.getpid():
            self._recent, self._recent_pid = RecentImages(self.partner_buffer), os.getpid()
        return self._recent

    def _partners(self, count: int) -> list[int]:
        """Record indices of ``count`` mosaic / mixup partners: from the recent images when the buffer
        holds enough (``partner_buffer``), else uniformly from the whole dataset."""
        recent = self._buffer()
        if recent is not None and len(recent) >= min(MIN_HELD, recent.capacity, len(self)):
            return recent.draw(count)
        return torch.randint(len(self), (count,)).tolist()

    def _decode(
        self, index: int, need_hw: tuple[int, int] | Callable[[tuple[int, int]], tuple[int, int]],
        colour: Callable[[Image.Image], Image.Image] | None = None,
    ) -> tuple[Tensor, tuple[float, float]]:
        """Decode one image reduced as far as ``need_hw`` (the size it is drawn at) allows.

        Args:
            index: record index.
            need_hw: (h, w) of the image in the output frame, or a function of the original
                (H, W) returning it, called once before the pixels are decoded (the header and
                the pixels are then read in one open of the file).
            colour: optional map applied to the decoded image before it becomes a tensor.

        Returns:
            (image uint8 Tensor[3, h, w] channels-last, possibly reduced; (W_e, H_e): the original
            frame spans ``[0, W_e] x [0, H_e]`` of the image's pixels).
        """
        fitted = self._fitted(index)
        if fitted is not None:
            image, orig_hw, extent = fitted
            if callable(need_hw):
                need_hw(orig_hw)
            return (pil_to_tensor(colour(tensor_to_pil(image))) if colour else image), extent
        if callable(need_hw):
            if index in self._sizes:
                need_hw = need_hw(self._sizes[index])
            else:
                need_of = need_hw

                def need_hw(orig_hw: tuple[int, int]) -> tuple[int, int]:
                    self._sizes[index] = orig_hw
                    return need_of(orig_hw)

        image, extent = read_pil_reduced(self.records[index].image_path, need_hw)
        return pil_to_tensor(colour(image) if colour else image), extent

    def _fitted(self, index: int) -> Decoded | None:
        """The image fitted to S x S from the RAM cache or the partner buffer (decoded into the
        buffer on a miss); None when neither is in use (decode per sample, reduced as needed)."""
        if self._cached is not None:
            return self._cached[index]
        recent = self._buffer()
        if recent is None:
            return None
        decoded = recent.get(index)
        if decoded is None:
            decoded = self._decode_to_fit(index)
            recent.add(index, decoded)
        return decoded

    def _fill_cache(self) -> list[Decoded]:
        """Decode every image once, scaled to fit S x S (never enlarged); print the memory first.

        Returns:
            Per record: ``_decode_to_fit(index)``.
        """
        size = self.image_size
        sizes = [(int(r.height), int(r.width)) for r in self.records]  # the readers' sizes, for the estimate
        fit = [resized_hw(hw, min(1.0, float(letterbox_params(hw, size)[0]))) for hw in sizes]
        megabytes = sum(3 * h * w for h, w in fit) / 2**20
        print(f"DetectionDataset: caching {len(self.records)} images in RAM at up to {size} px: ~{megabytes:.0f} MiB.", flush=True)
        return [self._decode_to_fit(index) for index in range(len(self.records))]

    def _decode_to_fit(self, index: int) -> Decoded:
        """One image decoded (reduced where a JPEG allows) and resampled to fit S x S, never enlarged.

        Returns:
            (uint8 Tensor[3, h, w] channels-last, original (H, W), (W_e, H_e) the original frame's
            extent in its pixels).
        """
        fit = lambda hw: resized_hw(hw, min(1.0, float(letterbox_params(hw, self.image_size)[0])))  # noqa: E731
        if index not in self._sizes:  # the header is read with the pixels, in one open of the file
            found: list[tuple[int, int]] = []
            image, extent = read_pil_reduced(self.records[index].image_path, lambda hw: (found.append(hw), fit(hw))[1])
            self._sizes[index] = found[0]
        else:
            image, extent = read_pil_reduced(self.records[index].image_path, fit(self._sizes[index]))
        orig_hw = self._sizes[index]
        target = fit(orig_hw)
        tensor = pil_to_tensor(image)
        if tuple(tensor.shape[-2:]) != target:  # resample the (reduced) decode to fit S exactly
            tensor = TF.resize(tensor, list(target), antialias=True)
            extent = (extent[0] * target[1] / image.width, extent[1] * target[0] / image.height)
        return tensor, orig_hw, extent

    def _single(self, index: int, colour: dict[str, Any] | None = None) -> tuple[PlacedSample, bool]:
        """One image placed on the S x S canvas (jittered when the config asks for it).

        Args:
            index: record index.
            colour: a ``Uint8ColorJitter.make_params`` draw to apply here when that is cheaper:
                on the decoded source when it has fewer pixels than what shows of it (the colour map
                commutes with the resize; the padding gets the map's image of the pad grey and the
                contrast pivot is the canvas's mean luma, from the source's and the pad's shares).

        Returns:
            (sample, whether ``colour`` was applied).
        """
        size, config = self.image_size, self.config
        if self._fast_path():
            placed: dict[str, Any] = {}

            def place(orig_hw: tuple[int, int]) -> tuple[int, int]:
                """Draw the placement once the size is known (from the header the decode reads)."""
                if config.scale_range == (1.0, 1.0) and not config.translate:
                    params = letterbox_params(orig_hw, size)
                else:
                    params = sample_placement(orig_hw, size, config.scale_range, config.translate)
                new_hw = resized_hw(orig_hw, float(params[0]))
                pad_x, pad_y = int(params[1]), int(params[2])
                shown = [max(0, min(size, p + n) - max(0, p)) for p, n in ((pad_x, new_hw[1]), (pad_y, new_hw[0]))]
                placed.update(orig_hw=orig_hw, params=params, new_hw=new_hw, shown=shown)
                return new_hw

            pad_value, recolour, pads = PAD_VALUE, None, []
            if colour is not None:

                def recolour(source: Image.Image) -> Image.Image:
                    shown = placed["shown"]
                    if source.width * source.height >= shown[0] * shown[1]:
                        return source  # cheaper on the canvas, where only the shown part is coloured
                    share = shown[0] * shown[1] / size**2  # of the canvas covered by the image
                    mean = share * mean_luma(pil_to_tensor(source.reduce(4) if min(source.size) >= 8 else source), 1)
                    matrix, offset = Uint8ColorJitter.color_map(colour, mean + (1.0 - share) * PAD_VALUE)
                    pads.append(map_grey(matrix, offset, PAD_VALUE))
                    return apply_color_map(source, matrix, offset)

            image, extent = self._decode(index, place, recolour)
            orig_hw, params, new_hw = placed["orig_hw"], placed["params"], placed["new_hw"]
            coloured = colour is not None and bool(pads)
            if coloured:
                pad_value = pads[0]
            draw, content_hw = reduced_placement(params, orig_hw, tuple(image.shape[-2:]), extent)
            canvas = place_image(image, draw, size, pad_value, content_hw=content_hw)
            boxes, extra = self.load_boxes(index)
            boxes, keep = place_boxes(boxes, params, size, config.min_visibility, config.min_size)
            pad_x, pad_y = int(params[1]), int(params[2])
            # the pad grey lies outside (a coloured pad is another grey: then None)
            content = None if coloured else (pad_x, pad_y, pad_x + new_hw[1], pad_y + new_hw[0])
            sample = PlacedSample(canvas, boxes[keep], extra["labels"][keep], extra["iscrowd"][keep], params, orig_hw, content)
            return sample, coloured
        image, boxes, extra = self.load(index)
        if callable(self.augment) and not isinstance(self.augment, AugmentConfig):
            image, boxes, extra = apply_v2(self.augment, image, boxes, extra)
            if image.dtype != torch.uint8 or image.ndim != 3:
                raise ValueError(
                    f"The augment callable returned a {image.dtype} image of shape {tuple(image.shape)}; "
                    "it must return uint8 [3, H, W] (leave ToDtype/Normalize out: the model normalises)."
                )
        orig_hw = (int(image.shape[-2]), int(image.shape[-1]))
        canvas, params = letterbox_image(image, size)
        boxes = boxes_to_input(boxes, params)  # inside the image -> inside the canvas
        return PlacedSample(canvas, boxes, extra["labels"], extra["iscrowd"], params, orig_hw), False

    def _mosaic(self, index: int) -> PlacedSample:
        """Four images (this one and three random) on a 2S x 2S mosaic, placed on S x S.

        The placement of the 2S canvas on S x S is drawn first, and ``make_mosaic`` renders the
        four tiles straight into it: each image decoded reduced and resampled once, no 2S canvas.
        """
        config, size = self.config, self.image_size
        side = 2 * size
        params = sample_placement((side, side), size, config.mosaic_scale, translate=True)
        scale, pad_x, pad_y = float(params[0]), int(params[1]), int(params[2])
        indices = [index] + self._partners(3)
        images, hws, extents, boxes, extras = [], [], [], [], []
        for i in indices:
            fitted = self._fitted(i)
            if fitted is not None:
                image, hw, extent = fitted
            else:
                hw = self._header(i)
                image, extent = self._decode(i, resized_hw(hw, float(letterbox_params(hw, size)[0]) * scale))
            box, extra = self.load_boxes(i)
            images.append(image), hws.append(hw), extents.append(extent), boxes.append(box), extras.append(extra)
        canvas, boxes, keeps, tiles = make_mosaic(
            images, boxes, size, min_visibility=config.min_visibility, min_size=config.min_size,
            canvas_scale=scale, offset=(pad_x, pad_y), out_size=size, orig_sizes=hws, extents=extents,
        )
        extra = {k: torch.cat([e[k][keep] for e, keep in zip(extras, keeps)]) for k in extras[0]}
        identity = torch.tensor([1.0, 0.0, 0.0])  # boxes are in the output frame, clipped to their tiles
        boxes, keep = place_boxes(torch.cat(boxes), identity, size, config.min_visibility, config.min_size)
        content = tuple(f(t[k] for t in tiles) for k, f in enumerate((min, min, max, max)))  # pad grey outside the tiles
        return PlacedSample(canvas, boxes[keep], extra["labels"][keep], extra["iscrowd"][keep], params, (side, side), content)


def collate_detection(batch: Sequence[tuple[Tensor, Target]]) -> tuple[Tensor, list[Target]]:
    """Stack images, keep targets as a list.

    Args:
        batch: B samples ``(image uint8 Tensor[3, S, S], target dict)``.

    Returns:
        (images uint8 Tensor[B, 3, S, S], list of B target dicts in the INPUT frame).
    """
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


def apply_deferred_colour(images: Tensor, targets: Sequence[Target]) -> tuple[Tensor, list[Target]]:
    """Apply the colour jitter that ``colour_on_device`` samples carry, to the whole batch at once.

    Args:
        images: uint8 Tensor[B, 3, S, S] (on any device).
        targets: B target dicts; those with ``colour_jitter`` (float32 [4]) get their map.

    Returns:
        (images, targets without ``colour_jitter``); unchanged when no target carries it.
    """
    marked = [JITTER_KEY in t for t in targets]
    if not any(marked):
        return images, list(targets)
    if not all(marked):
        raise ValueError(f"{sum(marked)} of {len(marked)} targets carry {JITTER_KEY!r}: a batch must come from one dataset.")
    factors = torch.stack([t[JITTER_KEY] for t in targets]).to(images.device)
    return jitter_batch(images, factors), [{k: v for k, v in t.items() if k != JITTER_KEY} for t in targets]

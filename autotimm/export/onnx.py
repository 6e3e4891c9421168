"""Export an :class:`~autotimm.detector.ObjectDetector` to one self-contained ONNX file.

Two graphs, both taking the normalised float batch that ``model.forward`` takes (input frame):

* raw (default): the per-level maps ``cls_l0..``, ``reg_l0..``, ``ctr_l0..`` (``obj_l0..`` for
  YOLOX), exactly ``model(images)`` flattened;
* end-to-end (``include_postprocess=True``): decode, score threshold, class-aware NMS and top-K
  inside the graph; outputs ``boxes [B, K, 4]``, ``scores [B, K]``, ``labels [B, K]``,
  ``num_detections [B]``.

The batch axis is dynamic; H and W are fixed at export. Preprocessing settings, class names and
strides travel in the file's metadata, so :class:`~autotimm.export.OnnxDetector` can run it alone.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from autotimm.export.graphs import E2E_OUTPUT_NAMES, INPUT_NAME, EndToEnd, RawOutputs, raw_output_names
from autotimm.export.metadata import ExportMetadata, add_metadata

# 11: first opset with Resize-to-sizes (FPN upsampling), ScatterND and TopK with a tensor k, all
# used by these graphs. 20: the newest opset of torch's TorchScript-based exporter used here.
MIN_OPSET = 11
MAX_OPSET = 20


def export_to_onnx(
    model: nn.Module,
    save_path: str | Path | None = None,
    example_input: Tensor | None = None,
    opset_version: int = 17,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    *,
    include_postprocess: bool = False,
    image_size: int | tuple[int, int] | None = None,
    score_thresh: float | None = None,
    nms_thresh: float | None = None,
    max_detections: int | None = None,
    topk_per_level: int = 1000,
) -> str:
    """Write ``model`` as an ONNX file and return its path.

    Args:
        model: an :class:`~autotimm.detector.ObjectDetector`.
        save_path: where to write; ``None`` writes a new file in the temp folder.
        example_input: a normalised float Tensor[B, 3, H, W] fixing H and W (input frame); H and W
            must be multiples of the largest stride. ``None`` uses a zero batch of shape
            ``(1, 3, S, S)`` with ``S = model.resolved_image_size(image_size)``, the size
            ``predict()`` letterboxes to (training size > TransformConfig > 640), so the file
            reproduces ``predict()``. (The reference API's 224 is not a multiple of stride 128.)
        opset_version: ONNX opset, 11 to 20.
        dynamic_axes: ``{name: {axis: label}}`` for the input ``"images"`` and the outputs; ``None``
            makes axis 0 (batch) of every input and output dynamic. End-to-end graphs accept only a
            dynamic batch axis.
        include_postprocess: end-to-end graph with decode + NMS inside (see module docstring).
        image_size: square size (or (H, W)) of the default example input; ignored when
            ``example_input`` is given.
        score_thresh / nms_thresh / max_detections: post-processing baked into an end-to-end graph
            (and stored as defaults for a raw one); ``None`` takes the model's settings.
        topk_per_level: candidates kept per level before NMS, as in ``model.detect``.

    Returns:
        The path of the written ``.onnx`` file (weights inside; no side ``.data`` file).

    Raises:
        ValueError: an opset outside 11..20, an input whose H or W is not a multiple of the largest
            stride, a wrongly shaped input, or unknown names in ``dynamic_axes``.

    Example:
        >>> path = model.to_onnx("detector.onnx", include_postprocess=True)
        >>> OnnxDetector(path).predict("image.jpg")  # [{"boxes", "scores", "labels"}], original frame
    """
    _check_opset(opset_version)
    example = _example_input(model, example_input, image_size)
    score_thresh = model.score_thresh if score_thresh is None else float(score_thresh)
    nms_thresh = model.nms_thresh if nms_thresh is None else float(nms_thresh)
    max_detections = model.max_detections_per_image if max_detections is None else int(max_detections)
    _check_postprocess(score_thresh, nms_thresh, max_detections, topk_per_level)
    if include_postprocess:
        wrapper: nn.Module = EndToEnd(model, score_thresh, nms_thresh, max_detections, topk_per_level)
        output_names = list(E2E_OUTPUT_NAMES)
    else:
        wrapper = RawOutputs(model)
        output_names = raw_output_names(model.detection_arch, len(model.strides))
    axes = _dynamic_axes(dynamic_axes, output_names, include_postprocess)
    path = _target_path(save_path)

    was_training = model.training
    wrapper.eval()  # the exporter restores the wrapper's mode afterwards, recursively
    try:
        with torch.no_grad():
            shapes = [tuple(t.shape) for t in wrapper(example.to(model.device))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=r".*dynamo=False.*")
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated.*")  # torchvision's NMS while tracing
            torch.onnx.export(
                wrapper,
                (example.to(model.device),),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=output_names,
                opset_version=opset_version,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    meta = _metadata(model, example, include_postprocess, output_names, score_thresh, nms_thresh, max_detections, topk_per_level)
    _finalize(path, meta, dict(zip(output_names, shapes)), axes)
    return str(path)


def _finalize(path: Path, metadata: ExportMetadata, shapes: dict[str, tuple[int, ...]], axes: dict[str, dict[int, str]]) -> None:
    """Declare the static output sizes (the tracer leaves them symbolic), add the metadata, and save
    again as one self-contained file.

    An output axis stays symbolic when ``axes`` names it, when it is the batch axis of a graph with a
    dynamic batch, or when the input's H or W is dynamic (the maps' sizes then follow the input).
    """
    import onnx

    proto = onnx.load(str(path))
    input_axes = axes.get(INPUT_NAME, {})
    if not any(a in input_axes for a in (2, 3)):
        for output in proto.graph.output:
            dynamic = set(axes.get(output.name, {})) | ({0} if 0 in input_axes else set())
            for axis, dim in enumerate(output.type.tensor_type.shape.dim):
                if axis not in dynamic and output.name in shapes:
                    dim.dim_value = shapes[output.name][axis]  # clears the symbolic name
    add_metadata(proto, metadata)
    onnx.save(proto, str(path), save_as_external_data=False)


def _check_opset(opset_version: int) -> None:
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= MAX_OPSET:
        raise ValueError(
            f"opset_version={opset_version!r} is not supported: autotimm exports with opsets "
            f"{MIN_OPSET} to {MAX_OPSET} (opset {MIN_OPSET} is the first with the Resize, ScatterND and "
            "TopK forms these graphs use, including the end-to-end graph's NonMaxSuppression). "
            "Pass opset_version=17 (the default)."
        )


def _example_input(model: nn.Module, example_input: Tensor | None, image_size: int | tuple[int, int] | None) -> Tensor:
    largest = max(model.strides)
    if example_input is None:
        if isinstance(image_size, (tuple, list)):
            h, w = (int(s) for s in image_size)
        else:
            h = w = model.resolved_image_size(image_size)
        where = f"image_size={image_size!r}" if image_size is not None else f"the model's image size ({h})"
        example = torch.zeros(1, 3, h, w)
    else:
        where = "example_input"
        if not isinstance(example_input, Tensor) or example_input.ndim != 4 or example_input.shape[1] != 3:
            got = tuple(example_input.shape) if isinstance(example_input, Tensor) else type(example_input).__name__
            raise ValueError(f"example_input must be a float Tensor[B, 3, H, W] (normalised, input frame); got {got}.")
        if not example_input.is_floating_point():
            raise ValueError(
                f"example_input must be a normalised float tensor, got dtype {example_input.dtype}; "
                "use model.preprocess(image) or model.normalize(uint8_batch)."
            )
        example = example_input.detach().float()
    h, w = example.shape[-2:]
    if h % largest or w % largest:
        fix_h, fix_w = (-(-s // largest) * largest for s in (h, w))
        raise ValueError(
            f"{where} gives an input of H x W = {h} x {w}, but H and W must be multiples of the "
            f"largest stride {largest} (strides {tuple(model.strides)}) so that every pyramid level "
            f"tiles the input exactly; use {fix_h} x {fix_w} (e.g. image_size={fix_h} or "
            f"example_input=torch.zeros(1, 3, {fix_h}, {fix_w}))."
        )
    return example


def _check_postprocess(score_thresh: float, nms_thresh: float, max_detections: int, topk_per_level: int) -> None:
    if not 0 <= score_thresh < 1:
        raise ValueError(f"score_thresh={score_thresh!r}: expected a float in [0, 1).")
    if not 0 < nms_thresh <= 1:
        raise ValueError(f"nms_thresh={nms_thresh!r}: expected a float in (0, 1].")
    if not isinstance(max_detections, int) or max_detections < 1:
        raise ValueError(f"max_detections={max_detections!r}: expected an int >= 1.")
    if not isinstance(topk_per_level, int) or topk_per_level < 1:
        raise ValueError(f"topk_per_level={topk_per_level!r}: expected an int >= 1.")


def _dynamic_axes(
    dynamic_axes: Mapping[str, Mapping[int, str]] | None, output_names: list[str], end_to_end: bool
) -> dict[str, dict[int, str]]:
    names = [INPUT_NAME, *output_names]
    if dynamic_axes is None:
        return {name: {0: "batch"} for name in names}
    unknown = sorted(set(dynamic_axes) - set(names))
    if unknown:
        raise ValueError(f"dynamic_axes names {unknown} are not inputs or outputs of this graph; valid names: {names}.")
    axes = {name: dict(spec) for name, spec in dynamic_axes.items()}
    if end_to_end:
        fixed = {name: sorted(a for a in spec if a != 0) for name, spec in axes.items()}
        fixed = {name: a for name, a in fixed.items() if a}
        if fixed:
            raise ValueError(
                f"dynamic_axes {fixed}: the end-to-end graph bakes the point grid of one input size, so "
                "only axis 0 (batch) may be dynamic. Export a raw graph (include_postprocess=False) "
                "for dynamic H and W, or export once per input size."
            )
    return axes


def _target_path(save_path: str | Path | None) -> Path:
    if save_path is None:
        handle, name = tempfile.mkstemp(prefix="autotimm-", suffix=".onnx")
        os.close(handle)  # the exporter overwrites the empty file
        return Path(name)
    path = Path(save_path)
    if path.is_dir():
        raise ValueError(f"save_path '{path}' is a folder; give a file name such as '{path / 'detector.onnx'}'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _metadata(
    model: nn.Module,
    example: Tensor,
    end_to_end: bool,
    output_names: list[str],
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    topk_per_level: int,
) -> ExportMetadata:
    from autotimm import __version__

    config: dict[str, Any] = model.get_data_config()
    mapping = getattr(model, "label_to_category_id", None)
    names = getattr(model, "class_names", None)
    return ExportMetadata(
        detection_arch=str(model.detection_arch),
        end_to_end=end_to_end,
        num_classes=int(model.num_classes),
        class_names=list(names) if names is not None else None,
        strides=[int(s) for s in model.strides],
        input_size=[int(example.shape[-2]), int(example.shape[-1])],
        mean=[float(v) for v in config["mean"]],
        std=[float(v) for v in config["std"]],
        pad_value=int(config["pad_value"]),
        score_thresh=float(score_thresh),
        nms_thresh=float(nms_thresh),
        max_detections=int(max_detections),
        topk_per_level=int(topk_per_level),
        output_names=list(output_names),
        label_to_category_id={str(k): int(v) for k, v in mapping.items()} if mapping else None,
        autotimm_version=__version__,
    )

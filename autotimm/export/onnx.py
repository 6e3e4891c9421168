"""Export an :class:`~autotimm.detector.ObjectDetector` to one self-contained ONNX file.

Two graphs, both taking the normalised float32 batch that ``model.forward`` takes (input frame):

* raw (default): the per-level maps ``cls_l0..``, ``reg_l0..``, ``ctr_l0..`` (``obj_l0..`` for
  YOLOX), exactly ``model(images)`` flattened;
* end-to-end (``include_postprocess=True``): decode, score threshold, class-aware NMS and top-K
  inside the graph; outputs ``boxes [B, K, 4]``, ``scores [B, K]``, ``labels [B, K]``,
  ``num_detections [B]``.

The batch axis is dynamic; with ``dynamic=True`` H and W are too (any multiple of the backbone's
deepest stride, usually 32): the end-to-end graph then builds its point grid from the feature maps
at run time, so one file serves 320, 416 and 640 px. ``half=True`` runs the network in float16 inside
the graph (for GPU execution providers); inputs and outputs stay float32.

Exporters: torch's ``torch.export``-based exporter (``dynamo=True``) is used first; the file is then
run in ONNX Runtime on a seeded batch and compared with the eager model. If that exporter fails or
its graph does not match, the TorchScript-based exporter (``dynamo=False``, deprecated by torch) is
used instead, with a warning that says why. The file's metadata records which one wrote it.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
from torch import Tensor, nn

from autotimm.export.graphs import E2E_OUTPUT_NAMES, INPUT_NAME, EndToEnd, RawOutputs, raw_output_names
from autotimm.export.metadata import ExportMetadata, add_metadata

# 11: first opset with Resize-to-sizes (FPN upsampling), ScatterND and TopK with a tensor k, all
# used by these graphs. 20: the newest opset of torch's TorchScript-based exporter used here.
# torch.export's exporter writes opset 18 natively and converts other versions.
MIN_OPSET = 11
MAX_OPSET = 20
DEFAULT_OPSET = 18

Exporter = Literal["auto", "dynamo", "torchscript"]
EXPORTERS: tuple[str, ...] = ("auto", "dynamo", "torchscript")
_FALLBACK_REASONS_SHOWN: set[str] = set()  # each reason is explained once per process


def export_to_onnx(
    model: nn.Module,
    save_path: str | Path | None = None,
    example_input: Tensor | None = None,
    opset_version: int = DEFAULT_OPSET,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    *,
    include_postprocess: bool = False,
    image_size: int | tuple[int, int] | None = None,
    dynamic: bool = False,
    half: bool = False,
    exporter: Exporter = "auto",
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
            must be multiples of the backbone's deepest stride (:func:`size_multiple`, usually 32).
            ``None`` uses a zero batch of shape ``(1, 3, S, S)`` with
            ``S = model.resolved_image_size(image_size)``, the size ``predict()`` letterboxes to
            (training size > TransformConfig > 640), so the file reproduces ``predict()``.
        opset_version: ONNX opset, 11 to 20 (default 18, the torch.export exporter's own).
        dynamic_axes: ``{name: {axis: label}}`` for the input ``"images"`` and the outputs; ``None``
            makes axis 0 (batch) dynamic, plus axes 2 and 3 of the input with ``dynamic=True``.
            End-to-end graphs accept dynamic axes 2 and 3 on the input only.
        include_postprocess: end-to-end graph with decode + NMS inside (see module docstring).
        image_size: square size (or (H, W)) of the default example input; ignored when
            ``example_input`` is given. With ``dynamic=True`` it is the default size of the runtime.
        dynamic: dynamic height and width (checked in ONNX Runtime at two sizes).
        half: float16 network inside the graph (float32 inputs and outputs; post-processing in
            float32). Meant for GPU execution providers.
        exporter: "auto" (torch.export, else TorchScript with a warning), "dynamo" or
            "torchscript" (that one only, an error if it fails or does not match).
        score_thresh / nms_thresh / max_detections: post-processing baked into an end-to-end graph
            (and stored as defaults for a raw one); ``None`` takes the model's settings.
        topk_per_level: candidates kept per level before NMS, as in ``model.detect``.

    Returns:
        The path of the written ``.onnx`` file (weights inside; no side ``.data`` file).

    Raises:
        ValueError: an opset outside 11..20, an input whose H or W is not a multiple of
            :func:`size_multiple`, a wrongly shaped input, unknown names in ``dynamic_axes``, or an
            unknown ``exporter``.
        RuntimeError: no exporter produced a graph that matches the eager model.

    Example:
        >>> path = model.to_onnx("detector.onnx", include_postprocess=True, dynamic=True)
        >>> OnnxDetector(path).predict("image.jpg", image_size=416)  # Detections, original frame
    """
    _check_opset(opset_version)
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter={exporter!r}: expected one of {list(EXPORTERS)}.")
    for name, flag in (("dynamic", dynamic), ("half", half), ("include_postprocess", include_postprocess)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name}={flag!r}: expected True or False.")
    example = _example_input(model, example_input, image_size)
    score_thresh = model.score_thresh if score_thresh is None else float(score_thresh)
    nms_thresh = model.nms_thresh if nms_thresh is None else float(nms_thresh)
    max_detections = model.max_detections_per_image if max_detections is None else int(max_detections)
    _check_postprocess(score_thresh, nms_thresh, max_detections, topk_per_level)
    output_names = list(E2E_OUTPUT_NAMES) if include_postprocess else raw_output_names(model.detection_arch, len(model.strides))
    axes = _dynamic_axes(dynamic_axes, output_names, include_postprocess, dynamic)
    path = _target_path(save_path)

    was_training = model.training
    network = copy.deepcopy(model).half() if half else model  # the caller's weights stay float32
    network.eval()
    if include_postprocess:
        wrapper: nn.Module = EndToEnd(network, score_thresh, nms_thresh, max_detections, topk_per_level)
    else:
        wrapper = RawOutputs(network)
    wrapper.eval()
    try:
        example = example.to(model.device)
        with torch.no_grad():
            shapes = [tuple(t.shape) for t in wrapper(example)]
        checks = _check_inputs(example, axes.get(INPUT_NAME, {}), size_multiple(model))
        used = _export(wrapper, example, path, output_names, opset_version, axes, exporter, checks, include_postprocess, half)
    finally:
        model.train(was_training)
    meta = _metadata(model, example, include_postprocess, output_names, score_thresh, nms_thresh, max_detections,
                     topk_per_level, dynamic=bool({2, 3} & set(axes.get(INPUT_NAME, {}))), half=half, exporter=used)
    _finalize(path, meta, dict(zip(output_names, shapes)), axes)
    return str(path)


def size_multiple(model: nn.Module) -> int:
    """H and W of an exported input must be multiples of this: the backbone's deepest stride in use
    (usually 32). Coarser levels (64, 128) come from stride-2 convolutions, which round up, exactly as
    in eager ``predict``."""
    fpn = getattr(model, "fpn", None)
    in_strides = getattr(fpn, "in_strides", None)
    return int(max(in_strides)) if in_strides else int(max(model.strides))


# ---------------------------------------------------------------------- the two exporters
def _export(
    wrapper: nn.Module,
    example: Tensor,
    path: Path,
    output_names: list[str],
    opset_version: int,
    axes: dict[str, dict[int, str]],
    exporter: str,
    checks: list[Tensor],
    end_to_end: bool,
    half: bool,
) -> str:
    """Export with torch.export (then TorchScript as the fallback) and check each file in ONNX Runtime;
    returns the exporter that wrote a matching file: "dynamo" or "torchscript"."""
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(wrapper, example, path, output_names, opset_version, axes)
            failure = _mismatch(wrapper, path, checks, end_to_end, half)
        except Exception as err:  # noqa: BLE001 - any exporter failure falls back, with its reason shown
            failure = f"the torch.export-based exporter failed ({type(err).__name__}: {_first_line(err)})"
        if failure is None:
            return "dynamo"
        if exporter == "dynamo":
            raise RuntimeError(f"{failure}. Try exporter='torchscript' (torch's TorchScript-based exporter).")
        if failure not in _FALLBACK_REASONS_SHOWN:
            _FALLBACK_REASONS_SHOWN.add(failure)
            warnings.warn(
                f"ONNX export: {failure}; exporting with torch's TorchScript-based exporter (dynamo=False) "
                "instead. The file is checked against the eager model all the same.",
                UserWarning,
                stacklevel=3,
            )
    _export_torchscript(wrapper, example, path, output_names, opset_version, axes)
    failure = _mismatch(wrapper, path, checks, end_to_end, half)
    if failure is not None:
        raise RuntimeError(
            f"ONNX export: the TorchScript-based exporter's file does not match the eager model ({failure}). "
            + ("Dynamic H and W of an end-to-end graph need the torch.export-based exporter; export at a fixed size "
               "(dynamic=False) instead." if {2, 3} & set(axes.get(INPUT_NAME, {})) and end_to_end else "")
        )
    return "torchscript"


def _export_dynamo(wrapper: nn.Module, example: Tensor, path: Path, output_names: list[str], opset_version: int,
                   axes: dict[str, dict[int, str]]) -> None:
    dims = {axis: torch.export.Dim.DYNAMIC for axis in axes.get(INPUT_NAME, {})}
    # torch.export specialises axes of size 1 (and what is computed from them): trace a batch of 2, and
    # with dynamic H/W a size whose coarsest level is at least 2x2 (at 128 px P7 is 1x1, and a graph
    # traced there fails at other sizes; the check below would catch it and fall back).
    if 0 in dims and example.shape[0] == 1:
        example = example.expand(2, -1, -1, -1)
    coarsest = max(wrapper.model.strides)
    if {2, 3} & set(dims) and min(example.shape[-2:]) <= coarsest:
        h, w = (max(s, 2 * coarsest) if axis in dims else s for axis, s in ((2, example.shape[-2]), (3, example.shape[-1])))
        example = torch.zeros(example.shape[0], 3, h, w, dtype=example.dtype, device=example.device)
    torch.onnx.export(
        wrapper,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,
        input_names=[INPUT_NAME],
        output_names=output_names,
        opset_version=opset_version,
        dynamic_shapes=(dims,),
        custom_translation_table={torch.ops.autotimm.non_max_suppression.default: _onnx_nms()},
        verbose=False,
    )


def _onnx_nms() -> Any:
    """autotimm's NMS custom op as ONNX ``NonMaxSuppression`` (an onnxscript function)."""
    from onnxscript import opset18 as op

    def non_max_suppression(boxes: Any, scores: Any, max_output_boxes_per_class: int, iou_threshold: float, score_threshold: float) -> Any:
        return op.NonMaxSuppression(
            boxes,
            scores,
            op.Constant(value_ints=[max_output_boxes_per_class]),
            op.Constant(value_floats=[iou_threshold]),
            op.Constant(value_floats=[score_threshold]),
            center_point_box=0,
        )

    return non_max_suppression


def _export_torchscript(wrapper: nn.Module, example: Tensor, path: Path, output_names: list[str], opset_version: int,
                        axes: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings():  # local: the fallback's own warning has already said why it is used
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*dynamo=False.*")
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated.*")  # torchvision's NMS while tracing
        warnings.filterwarnings("ignore", message=r"To copy construct from a tensor")  # torchvision's clip_boxes_to_image, traced
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=output_names,
            opset_version=opset_version,
            dynamic_axes=axes,
            do_constant_folding=True,
        )


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    summary = next((line for line in lines if "Error" in line and line != lines[0]), None)  # torch.export's cause
    return (summary or (lines[0] if lines else ""))[:300]


# ---------------------------------------------------------------------- checking a written file
def _check_inputs(example: Tensor, input_axes: Mapping[int, str], multiple: int) -> list[Tensor]:
    """Seeded normal batches to compare the file with the eager model: the example's shape, and with a
    dynamic H/W a second, smaller (or, at the smallest size, larger) one."""
    g = torch.Generator().manual_seed(0)
    first = torch.randn(tuple(example.shape), generator=g).to(example.device)
    if not {2, 3} & set(input_axes):
        return [first]
    h, w = example.shape[-2:]
    h2 = h - multiple if h > multiple and 2 in input_axes else h + multiple if 2 in input_axes else h
    w2 = w + multiple if 3 in input_axes else w
    return [first, torch.randn(example.shape[0], 3, h2, w2, generator=g).to(example.device)]


def _mismatch(wrapper: nn.Module, path: Path, checks: list[Tensor], end_to_end: bool, half: bool) -> str | None:
    """None when ONNX Runtime reproduces the eager wrapper on every check batch, else what differs."""
    import onnxruntime as ort

    from autotimm.export.parity import pair_detections

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    box_tol, score_tol, raw_tol = (0.5, 1e-2, 5e-2) if half else (1e-2, 1e-4, 1e-3)
    for x in checks:
        size = f"{x.shape[-2]}x{x.shape[-1]}"
        with torch.no_grad():
            expected = [(t.float() if t.is_floating_point() else t).cpu() for t in wrapper(x)]
        try:
            got = [torch.from_numpy(a) for a in session.run(None, {INPUT_NAME: x.float().cpu().numpy()})]
        except Exception as err:  # noqa: BLE001 - onnxruntime's own exception types
            return f"ONNX Runtime cannot run its graph at {size} ({type(err).__name__}: {_first_line(err)})"
        if [tuple(t.shape) for t in got] != [tuple(t.shape) for t in expected]:
            return f"output shapes at {size} differ from the eager model's"
        if end_to_end:
            pairs, n_eager, n_onnx, box_diff, score_diff = pair_detections(_rows(expected), _rows(got), box_tol, score_tol)
            # float16 may flip a detection whose score sits at the threshold or at an NMS tie: allow 5%
            missing = max(n_eager, n_onnx) - pairs
            if missing > (0.05 * max(n_eager, n_onnx) if half else 0):
                return (f"detections at {size} differ from the eager model's ({pairs} of {n_eager} eager / {n_onnx} "
                        f"ONNX detections match; max box diff {box_diff:.3g} px, max score diff {score_diff:.3g})")
        else:
            diff = max(float(((a - b).abs() / b.abs().amax().clamp(min=1.0)).max()) for a, b in zip(got, expected))
            if diff > raw_tol:
                return f"raw outputs at {size} differ from the eager model's by {diff:.3g} (relative)"
    return None


def _rows(padded: list[Tensor]) -> list[dict[str, Tensor]]:
    boxes, scores, labels, counts = padded
    return [{"boxes": b[:n], "scores": s[:n], "labels": l[:n]} for b, s, l, n in zip(boxes, scores, labels, counts.tolist())]


def _finalize(path: Path, metadata: ExportMetadata, shapes: dict[str, tuple[int, ...]], axes: dict[str, dict[int, str]]) -> None:
    """Name the dynamic axes, declare the static output sizes (the TorchScript tracer leaves them
    symbolic), add the metadata, and save again as one self-contained file.

    An output axis stays symbolic when ``axes`` names it, when it is the batch axis of a graph with a
    dynamic batch, or when the input's H or W is dynamic (the maps' sizes then follow the input).
    torch.export names dynamic axes ``s0, s1, ...``: they get the labels of ``axes`` (``batch``,
    ``height``, ``width`` by default), on the input and on every output axis that is the same symbol.
    """
    import onnx

    proto = onnx.load(str(path))
    input_axes = axes.get(INPUT_NAME, {})
    rename: dict[str, str] = {}
    for axis, dim in enumerate(proto.graph.input[0].type.tensor_type.shape.dim):
        if axis in input_axes:
            if dim.dim_param:
                rename[dim.dim_param] = input_axes[axis]
            dim.dim_param = input_axes[axis]
    for output in proto.graph.output:
        named = axes.get(output.name, {})
        dynamic = set(named) | ({0} if 0 in input_axes else set())
        for axis, dim in enumerate(output.type.tensor_type.shape.dim):
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]
            if axis in named and (dim.dim_param or not dim.dim_value):
                dim.dim_param = named[axis]
            elif not {2, 3} & set(input_axes) and axis not in dynamic and output.name in shapes:
                dim.dim_value = shapes[output.name][axis]  # clears the symbolic name
    add_metadata(proto, metadata)
    onnx.save(proto, str(path), save_as_external_data=False)


def _check_opset(opset_version: int) -> None:
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= MAX_OPSET:
        raise ValueError(
            f"opset_version={opset_version!r} is not supported: autotimm exports with opsets "
            f"{MIN_OPSET} to {MAX_OPSET} (opset {MIN_OPSET} is the first with the Resize, ScatterND and "
            "TopK forms these graphs use, including the end-to-end graph's NonMaxSuppression). "
            f"Pass opset_version={DEFAULT_OPSET} (the default)."
        )


def _example_input(model: nn.Module, example_input: Tensor | None, image_size: int | tuple[int, int] | None) -> Tensor:
    multiple = size_multiple(model)
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
    if h % multiple or w % multiple:
        fix_h, fix_w = (-(-s // multiple) * multiple for s in (h, w))
        valid = ", ".join(str(multiple * k) for k in range(max(1, fix_h // multiple - 3), fix_h // multiple + 2))  # around H
        raise ValueError(
            f"{where} gives an input of H x W = {h} x {w}, but H and W must be multiples of {multiple}, the "
            f"backbone's deepest stride (pyramid strides {tuple(model.strides)}), so that its feature maps tile "
            f"the input exactly; valid sizes near it: {valid}, ...; use {fix_h} x {fix_w} (e.g. image_size={fix_h} "
            f"or example_input=torch.zeros(1, 3, {fix_h}, {fix_w}))."
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
    dynamic_axes: Mapping[str, Mapping[int, str]] | None, output_names: list[str], end_to_end: bool, dynamic: bool
) -> dict[str, dict[int, str]]:
    names = [INPUT_NAME, *output_names]
    if dynamic_axes is None:
        axes = {name: {0: "batch"} for name in names}
        if dynamic:
            axes[INPUT_NAME].update({2: "height", 3: "width"})
        return axes
    unknown = sorted(set(dynamic_axes) - set(names))
    if unknown:
        raise ValueError(f"dynamic_axes names {unknown} are not inputs or outputs of this graph; valid names: {names}.")
    axes = {name: dict(spec) for name, spec in dynamic_axes.items()}
    if dynamic:
        given = axes.setdefault(INPUT_NAME, {})
        for axis, label in ((2, "height"), (3, "width")):
            given.setdefault(axis, label)
    if end_to_end:
        fixed = {name: sorted(a for a in spec if a != 0) for name, spec in axes.items() if name != INPUT_NAME}
        fixed = {name: a for name, a in fixed.items() if a}
        if fixed:
            raise ValueError(
                f"dynamic_axes {fixed}: the end-to-end graph's outputs have a fixed number of rows "
                "(max_detections), so only their axis 0 (batch) may be dynamic; make the input's H and W "
                "dynamic with dynamic=True."
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
    *,
    dynamic: bool,
    half: bool,
    exporter: str,
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
        dynamic=dynamic,
        size_multiple=size_multiple(model),
        precision="fp16" if half else "fp32",
        exporter=exporter,
    )

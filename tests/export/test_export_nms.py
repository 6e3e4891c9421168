"""The one post-processing path (autotimm.postprocess), eager and in ONNX Runtime: NonMaxSuppression
on hand-made boxes, and the padded post-processing against a reference written here with torchvision's
batched_nms (the eager algorithm autotimm used before both paths became one)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from torchvision.ops import batched_nms

from autotimm.postprocess import NonMaxSuppression, PostprocessConfig, postprocess_padded, select_topk_per_level

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*torch.jit.script.*:FutureWarning")

# One image, four boxes. IoU(b0, b1) = 81 / 119 = 0.68; IoU(b0, b2) = 50 / 150 = 0.33; b3 is apart.
BOXES = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=torch.float32)
SCORES = torch.tensor(
    [
        [[0.9, 0.8, 0.7, 0.5], [-1.0, 0.95, -1.0, 0.6]],  # image 0: class 0, class 1
        [[0.6, 0.7, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]],  # image 1
    ]
)
# iou 0.5, score > 0.5: image 0 class 0 keeps b0, drops b1 (IoU 0.68 with b0), keeps b2, and b3 scores
# exactly 0.5 (not above); class 1 keeps b1 and b3 (other class: b0 cannot suppress b1). Image 1
# keeps b1 (0.7), which suppresses b0 (0.6).
EXPECTED = {(0, 0, 0), (0, 0, 2), (0, 1, 1), (0, 1, 3), (1, 0, 1)}
EXPECTED_ONE_PER_CLASS = {(0, 0, 0), (0, 1, 1), (1, 0, 1)}


class NMSGraph(nn.Module):
    def __init__(self, max_per_class: int) -> None:
        super().__init__()
        self.max_per_class = max_per_class

    def forward(self, boxes, scores):
        return NonMaxSuppression.apply(boxes, scores, self.max_per_class, 0.5, 0.5)


def onnx_nms(tmp_path, boxes, scores, max_per_class: int) -> set:
    path = str(tmp_path / "nms.onnx")
    torch.onnx.export(NMSGraph(max_per_class), (boxes, scores), path, dynamo=False, opset_version=17, input_names=["boxes", "scores"])
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rows = session.run(None, {"boxes": boxes.numpy(), "scores": scores.numpy()})[0]
    return {tuple(int(v) for v in r) for r in rows}


@pytest.mark.parametrize("max_per_class,expected", [(100, EXPECTED), (1, EXPECTED_ONE_PER_CLASS)])
def test_nms_hand_example_eager_and_onnx(tmp_path, max_per_class, expected):
    boxes = BOXES.expand(2, -1, -1).contiguous()
    eager = NonMaxSuppression.apply(boxes, SCORES, max_per_class, 0.5, 0.5)
    assert eager.dtype == torch.int64 and eager.shape == (len(expected), 3)
    assert {tuple(r) for r in eager.tolist()} == expected
    assert onnx_nms(tmp_path, boxes, SCORES, max_per_class) == expected


def reference_postprocess(scores, boxes, level_sizes, image_size, score_thresh, nms_thresh, max_detections, topk_per_level=1000):
    """Per-level top-k, clip, drop empty boxes, one batched_nms over (image, class) groups, best first."""
    b, _, c = scores.shape
    top_scores, flat = select_topk_per_level(scores, level_sizes, topk_per_level)
    cand = boxes.gather(1, (flat // c)[..., None].expand(-1, -1, 4))
    h, w = image_size
    cand = torch.stack([cand[..., 0].clamp(0, w), cand[..., 1].clamp(0, h), cand[..., 2].clamp(0, w), cand[..., 3].clamp(0, h)], -1)
    label, image = flat % c, torch.arange(b)[:, None].expand_as(flat)
    keep = (top_scores > score_thresh) & (cand[..., 2:] > cand[..., :2]).all(-1)
    fb, fs, fl, fi = cand[keep], top_scores[keep], label[keep], image[keep]
    kept = batched_nms(fb, fs, fi * c + fl, nms_thresh)
    out = []
    for i in range(b):
        idx = kept[fi[kept] == i][:max_detections]
        out.append({"boxes": fb[idx], "scores": fs[idx], "labels": fl[idx]})
    return out


def random_case(b: int = 2, level_sizes=(16, 4, 1), c: int = 3, size: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    p = sum(level_sizes)
    scores = torch.rand(b, p, c, generator=g)  # [B, P, C]
    xy = torch.rand(b, p, 2, generator=g) * size * 1.2 - size * 0.1  # some boxes start outside the image
    wh = torch.rand(b, p, 2, generator=g) * size / 2 + 1
    boxes = torch.cat([xy, xy + wh], -1)  # [B, P, 4]
    boxes[:, 0] = torch.tensor([size + 5.0, 3, size + 9, 12])  # entirely right of the image: empty after clipping
    return scores, boxes, list(level_sizes), (size, size)


@pytest.mark.parametrize("score_thresh,max_dets,topk", [(0.3, 10, 1000), (0.5, 100, 1000), (0.2, 30, 2)])
def test_postprocess_padded_matches_the_reference(score_thresh, max_dets, topk):
    scores, boxes, sizes, hw = random_case()
    expected = reference_postprocess(scores, boxes, sizes, hw, score_thresh, 0.5, max_dets, topk)
    out_boxes, out_scores, out_labels, num = postprocess_padded(scores, boxes, sizes, hw, PostprocessConfig(score_thresh, 0.5, max_dets, topk))
    assert out_boxes.shape == (2, max_dets, 4) and out_scores.shape == out_labels.shape == (2, max_dets)
    assert num.tolist() == [len(d["scores"]) for d in expected]
    for i, det in enumerate(expected):
        n = int(num[i])
        assert 0 < n <= max_dets
        assert torch.equal(out_scores[i, :n], det["scores"])  # distinct random scores: same order
        assert torch.equal(out_boxes[i, :n], det["boxes"]) and torch.equal(out_labels[i, :n], det["labels"])
        assert torch.equal(out_labels[i, n:], torch.full((max_dets - n,), -1))
        assert not out_scores[i, n:].any() and not out_boxes[i, n:].any()
    assert not (expected[0]["boxes"][:, 0] >= 64).any()  # the box right of the image is gone


def test_postprocess_padded_with_nothing_above_threshold():
    scores, boxes, sizes, hw = random_case()
    out_boxes, out_scores, out_labels, num = postprocess_padded(scores * 0.5, boxes, sizes, hw, PostprocessConfig(0.6, 0.5, 5))
    assert num.tolist() == [0, 0]
    assert torch.equal(out_labels, torch.full((2, 5), -1)) and not out_scores.any() and not out_boxes.any()


class PostprocessGraph(nn.Module):
    def __init__(self, sizes, hw, max_dets: int) -> None:
        super().__init__()
        self.sizes, self.hw, self.max_dets = sizes, hw, max_dets

    def forward(self, scores, boxes):
        return postprocess_padded(scores, boxes, self.sizes, self.hw, PostprocessConfig(0.3, 0.5, self.max_dets))


def test_postprocess_padded_in_onnx_runtime_with_another_batch_size(tmp_path):
    scores, boxes, sizes, hw = random_case(b=1)
    path = str(tmp_path / "post.onnx")
    names = ["boxes_out", "scores_out", "labels_out", "num"]
    axes = {n: {0: "batch"} for n in ["scores", "boxes", *names]}
    # 80 output rows > 21 points x 3 classes = 63 candidates: the graph pads with non-detections
    torch.onnx.export(PostprocessGraph(sizes, hw, 80), (scores, boxes), path, dynamo=False, opset_version=17,
                      input_names=["scores", "boxes"], output_names=names, dynamic_axes=axes)
    scores, boxes, _, _ = random_case(b=3, seed=1)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"scores": scores.numpy(), "boxes": boxes.numpy()})
    expected = reference_postprocess(scores, boxes, sizes, hw, 0.3, 0.5, 80)
    assert got[0].shape == (3, 80, 4)
    assert got[3].tolist() == [len(d["scores"]) for d in expected]
    for i, det in enumerate(expected):
        n = len(det["scores"])
        assert np.allclose(got[1][i, :n], det["scores"].numpy(), atol=1e-6)
        assert np.allclose(got[0][i, :n], det["boxes"].numpy(), atol=1e-5)
        assert np.array_equal(got[2][i, :n], det["labels"].numpy())
        assert np.all(got[2][i, n:] == -1)

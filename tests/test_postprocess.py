import torch

from autotimm.postprocess import postprocess


def _run(scores, boxes, **kw):
    args = dict(level_sizes=[scores.shape[1]], image_size=(100, 100), score_thresh=0.05, nms_thresh=0.5, max_detections=100)
    args.update(kw)
    return postprocess(scores, boxes, **args)


def test_nms_is_class_aware_and_per_image():
    box = [10.0, 10.0, 50.0, 50.0]
    boxes = torch.tensor([[box, box, box]])  # [1, 3, 4]: three identical boxes
    scores = torch.tensor([[[0.9, 0.0], [0.8, 0.0], [0.0, 0.7]]])  # two of class 0, one of class 1
    out = _run(scores, boxes)[0]
    assert out["labels"].tolist() == [0, 1]
    assert torch.allclose(out["scores"], torch.tensor([0.9, 0.7]))
    # The same boxes in two images do not suppress each other.
    both = _run(torch.cat([scores, scores]), torch.cat([boxes, boxes]))
    assert [len(d["boxes"]) for d in both] == [2, 2]


def test_score_threshold_max_detections_and_clipping():
    boxes = torch.tensor([[[-5.0, -5.0, 20.0, 20.0], [30.0, 30.0, 140.0, 60.0], [60.0, 60.0, 70.0, 70.0]]])
    scores = torch.tensor([[[0.6], [0.9], [0.01]]])
    out = _run(scores, boxes)[0]
    assert torch.allclose(out["scores"], torch.tensor([0.9, 0.6]))
    assert out["boxes"].tolist() == [[30.0, 30.0, 100.0, 60.0], [0.0, 0.0, 20.0, 20.0]]
    assert len(_run(scores, boxes, max_detections=1)[0]["boxes"]) == 1


def test_topk_per_level_limits_candidates():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [80.0, 80.0, 90.0, 90.0]]])
    scores = torch.tensor([[[0.9], [0.8], [0.7]]])
    out = _run(scores, boxes, level_sizes=[2, 1], topk_per_level=1)[0]
    assert torch.allclose(out["scores"].sort().values, torch.tensor([0.7, 0.9]))


def test_no_detections_gives_empty_tensors():
    out = _run(torch.zeros(2, 5, 3), torch.rand(2, 5, 4))
    assert [tuple(d["boxes"].shape) for d in out] == [(0, 4), (0, 4)]
    assert out[0]["labels"].dtype == torch.int64

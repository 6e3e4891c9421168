"""Smoke test of the YOLOX small-data ablation: two tiny epochs give one metrics row per epoch."""

from __future__ import annotations

import pytest

from benchmarks import yolox_small_data


def test_one_variant_reports_every_epoch(capsys):
    rows = yolox_small_data.run_variant("lr_0.01_no_ema", epochs=2, image_size=64, fpn_channels=16)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0.0 <= r["val/mAP"] <= r["val/mAP_50"] <= 1.0 for r in rows)
    assert rows[0]["lr"] > 0
    assert capsys.readouterr().out.count('"variant": "lr_0.01_no_ema"') == 2


def test_unknown_variant_is_named():
    with pytest.raises(SystemExit):
        yolox_small_data.main(["no_such_variant"])

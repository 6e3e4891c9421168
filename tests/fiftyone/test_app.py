"""The App, served on 127.0.0.1 for a small evaluated dataset and loaded in headless Chromium.

The page must show every sample and both label fields; a screenshot is kept in
test-artifacts/fiftyone_app.png. Every process started here (App server, Chromium) is ended by PID.
"""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest

import autotimm.fiftyone as atfo
from autotimm.data import example
from fo_processes import CHROMIUM, INSTALL, descendants, dump_dom, free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def evaluated(fo, dataset_name, tiny_model):
    dataset = atfo.to_dataset(example("shapes"), "val", name=dataset_name, max_samples=4)
    atfo.add_predictions(dataset, tiny_model, image_size=64, max_detections=3)
    atfo.evaluate(dataset)
    return dataset


def _listening_addresses(pids: list[int], port: int) -> set[str]:
    addresses = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        addresses |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    return addresses


@pytest.mark.slow
def test_app_shows_samples_and_both_label_fields(evaluated, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent; install it with: {INSTALL}")
    before = descendants()
    port = free_port()
    session = atfo.launch(evaluated, port=port, open_browser=False)
    try:
        started = sorted(descendants() - before)
        assert started, "launch() started no App server process"
        assert session.server_address == "127.0.0.1"
        assert _listening_addresses(started, port) == {"127.0.0.1"}  # not reachable from outside
        dom = dump_dom(f"http://127.0.0.1:{port}/", ARTIFACTS / "fiftyone_app.png", tmp_path / "chromium")
    finally:
        ended = atfo.close(session)
    assert set(started) <= set(ended)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in started)
    assert descendants() <= before  # nothing left running: no server, no browser

    assert evaluated.name in dom
    assert dom.count('data-cy="looker"') == len(evaluated) == 4  # one grid tile per sample
    assert dom.count('canvas-loaded="true"') == 4  # ... each drawn
    for field in ("ground_truth", "predictions", "eval_tp", "eval_fp", "eval_fn"):
        assert f'data-cy="{field}-field"' in dom, f"sidebar has no {field}"
    text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)).split())
    assert "4 samples" in text

    from PIL import Image

    with Image.open(ARTIFACTS / "fiftyone_app.png") as shot:
        assert shot.size == (1400, 900)
        grid = shot.convert("RGB").crop((300, 140, 900, 360))  # where the thumbnails are drawn
        assert len(grid.getcolors(maxcolors=1 << 20)) > 500  # images, not an empty page


def test_launch_rejects_bad_arguments(fo):
    with pytest.raises(ValueError, match="port must be an int in 1..65535; got 0"):
        atfo.launch(fo.Dataset(), port=0)
    with pytest.raises(ValueError, match="samples must be a FiftyOne Dataset or DatasetView; got list"):
        atfo.launch([], port=5999)

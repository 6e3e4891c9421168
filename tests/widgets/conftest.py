"""Widget tests run headless: widgets are built and driven from Python, no browser, no kernel."""

from __future__ import annotations

import functools

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these models are tiny, and on a shared 2-core machine two spinning
    OpenMP threads make a 30 ms step take seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_settings() -> dict:
    """DetectorBuilder settings for a small, fast, offline detector."""
    return dict(
        pretrained=False, num_classes=3, fpn_channels=16, head_num_convs=1, deterministic=False,
        compile_model=False, image_size=64, batch_size=4, max_epochs=2,
    )


@pytest.fixture
def shapes_data():
    """The bundled 'shapes' data as a data module factory (no worker processes, no image decode check)."""
    from autotimm.data import example

    return functools.partial(example("shapes").datamodule, num_workers=0, image_check="none")

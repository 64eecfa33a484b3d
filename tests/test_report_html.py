"""report.html in a real browser: one tiny run per domain, loaded in headless Chromium.

Each page must load every ``<img>``, ``<audio>`` and ``<video>`` source, log no console error, and
hold the evaluation chart and the training curves. Needs Debian's ``chromium`` (``.ci/run``
installs it) and the ``playwright`` package (the test extra); without them the browser tests skip
with the reason, and the page-structure test below still runs.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest

import mmdd
from audio_fixtures import write_fsdd
from conftest import TINY
from medical_fixtures import write_adrenalmnist3d, write_breastmnist
from video_fixtures import write_ucf101
from vl_fixtures import write_flickr8k, write_tiny_bert

CHROMIUM = os.environ.get("MMDD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
#: the flags a closed network needs (no background connections) and a root user (no sandbox)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
EVAL = {"epochs": 2, "seeds": 2, "baselines": ["random"]}


def image_recipe(tmp: Path) -> dict:
    return copy.deepcopy(TINY)


def audio_recipe(tmp: Path) -> dict:
    root = write_fsdd(tmp / "fsdd", speakers=("a",), takes=range(7))
    return {"name": "fsdd-tiny", "domain": "audio",
            "dataset": {"name": "fsdd", "root": str(root.parent), "n_mfcc": 12, "n_mels": 24, "clip_seconds": 0.5},
            "budget": {"ipc": 1}, "network": {"name": "convnet", "depth": 2, "width": 8},
            "method": {"name": "dm", "iterations": 3, "batch_real": 8}, "evaluation": EVAL}


def medical_recipe(tmp: Path) -> dict:
    return {"name": "med-tiny", "domain": "medical", "dataset": {"name": "medmnist", "path": str(write_breastmnist(tmp))},
            "budget": {"ipc": 2}, "network": {"name": "convnet", "depth": 2, "width": 4},
            "method": {"name": "dm", "iterations": 3, "batch_real": 8},
            "augment": {"strategy": "crop_flip"}, "tracking": {"every": 1, "epochs": 2, "metric": "auc"},
            "evaluation": EVAL}


def volume_recipe(tmp: Path) -> dict:
    recipe = medical_recipe(tmp)
    recipe["dataset"]["path"] = str(write_adrenalmnist3d(tmp))
    recipe["budget"]["ipc"] = 1
    del recipe["tracking"]
    return recipe


def video_recipe(tmp: Path) -> dict:
    write_ucf101(tmp, clips=3, size=32)
    method = {"name": "dm", "iterations": 2, "lr_inputs": 1.0, "batch_real": 8}
    return {"name": "video-tiny", "domain": "video", "seed": 3,
            "dataset": {"name": "ucf101", "root": str(tmp / "UCF-101"), "split_dir": str(tmp / "ucfTrainTestlist"),
                        "frames": 8, "size": 16, "grayscale": True, "cache_dir": str(tmp / "cache")},
            "network": {"name": "convnet", "depth": 2, "width": 8}, "budget": {"ipc": 1},
            "stages": {"static": {"method": dict(method)}}, "method": method,
            "synthetic": {"teacher_epochs": 1}, "evaluation": {**EVAL, "seeds": 1}}


def vision_language_recipe(tmp: Path) -> dict:
    root = tmp / "flickr8k"
    write_flickr8k(root, n_images=20)
    bert = write_tiny_bert(tmp / "bert")
    return {"name": "vl-tiny", "domain": "vision_language",
            "dataset": {"name": "flickr8k_csv", "root": str(root), "val_fraction": 0.2, "test_fraction": 0.2,
                        "image_size": 8, "text": {"encoder": "hf", "model": str(bert), "pooling": "mean",
                                                  "cache_dir": str(tmp / "cache")}},
            "network": {"name": "dual_encoder", "depth": 1, "width": 4, "embed_dim": 8},
            "method": {"name": "bitm", "iterations": 2, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1,
                       "lr_inputs": 1.0, "lr_text": 1.0},
            "budget": {"ipc": 4}, "experts": {"dir": str(tmp / "experts"), "num_experts": 1, "epochs": 2,
                                              "batch_size": 8},
            "evaluation": {"epochs": 2, "seeds": 2, "baselines": ["random"], "batch_size": 8}}


RECIPES = {"image": image_recipe, "audio": audio_recipe, "medical": medical_recipe, "volume": volume_recipe,
           "video": video_recipe, "vision_language": vision_language_recipe}


def tiny_run(kind: str, tmp: Path) -> Path:
    recipe = RECIPES[kind](tmp)
    if "experts" in recipe:
        from mmdd.experts import generate_experts

        generate_experts(recipe, progress=False)
    mmdd.distill(recipe, output_dir=tmp / "run", progress=False)
    return tmp / "run"


def test_the_page_holds_the_header_the_charts_and_labelled_samples(tmp_path):
    run_dir = tiny_run("medical", tmp_path)
    page = (run_dir / "report.html").read_text()
    for part in ('id="evaluation-chart"', 'id="training-curves"', "<svg", "compression ×", "package versions",
                 ">validation", "malignant", "normal, benign", "auc"):
        assert part in page, part
    import re

    assert not re.search(r"""(src|href)=["']?(https?:|//)|url\(\s*["']?https?:""", page)  # nothing remote
    assert "report.html" in (run_dir / "report.md").read_text()


# --------------------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra: pip install -e .[test]")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def load(browser, page_path: Path) -> dict:
    """Open ``page_path``; wait for every media element; report what failed to load and what the console said."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_path.resolve().as_uri(), wait_until="load")
    page.wait_for_function("() => [...document.querySelectorAll('audio, video')]"
                           ".every(m => m.readyState >= 1 || m.error)", timeout=30_000)
    found = page.evaluate("""() => ({
        images: document.images.length,
        broken: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
        media: document.querySelectorAll('audio, video').length,
        bad_media: [...document.querySelectorAll('audio, video')].filter(m => m.error || m.readyState < 1)
                                                                  .map(m => m.src),
        chart: !!document.querySelector('#evaluation-chart svg'),
        curves: !!document.querySelector('#training-curves svg'),
    })""")
    page.close()
    return {**found, "errors": errors}


@pytest.mark.parametrize("kind", list(RECIPES))
def test_every_source_resolves_in_chromium_with_no_console_error(browser, kind, tmp_path):
    run_dir = tiny_run(kind, tmp_path)
    found = load(browser, run_dir / "report.html")
    assert found["broken"] == [] and found["bad_media"] == [] and found["errors"] == [], found
    assert found["chart"] and found["curves"], found
    assert found["images"] >= 2  # the class rows, GIFs, slice strips or pair images
    if kind == "audio":
        assert found["media"] == found["images"] == 10  # a player and a map per sample (1 per class, 10 digits)


def test_the_check_sees_a_missing_sample(browser, tmp_path):
    run_dir = tiny_run("image", tmp_path)
    missing = sorted((run_dir / "samples").glob("*.png"))[0]
    missing.unlink()
    found = load(browser, run_dir / "report.html")
    assert [Path(src).name for src in found["broken"]] == [missing.name]
    assert any("ERR_FILE_NOT_FOUND" in e for e in found["errors"]), found["errors"]

"""`fau serve` in a real headless Chromium: photos in, boxed faces, AU bars, texts, attention, JSON out.

The model is an untrained tiny VL-FAU saved like `fau train` saves one (it has a language head, so the
page shows generated and template text, and attention maps); the photos are scikit-image's astronaut
(one face) and coffee (no face).  The downloaded JSON is compared byte for byte with ``fau predict``'s.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from fau.aus import BP4D_AUS, au_names
from fau.cli import main
from fau.models import MODELS, build_model
from shared.checkpoint import save_checkpoint
from tests.browser import message, screenshot, start_chromium, wait_for, wait_message


from fau.serve.adapter import load_predictor  # noqa: E402
from fau.serve.app import Limits, build_app  # noqa: E402
from shared.serve import ServerThread  # noqa: E402

LABELS = au_names(BP4D_AUS)
LIMITS = Limits(max_files=4, max_file_mb=1.0, max_megapixels=4.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = MODELS.load_config("vlfau", "vlfau_tiny")
    model = build_model("vlfau", config["model"], num_aus=len(BP4D_AUS))
    meta = {"model": "vlfau", "config": config, "labels": LABELS, "aus": list(BP4D_AUS), "dataset": "bp4d",
            "task": "au", "fold": "part3", "prior": None}
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best", model.state_dict(), meta)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.astronaut()).save(root / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).save(root / "coffee.png")
    (root / "notes.txt").write_text("not a photo\n", encoding="utf-8")
    Image.new("L", (2500, 2000)).save(root / "huge.png")                  # 5 megapixels, a few kB
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "heavy.png")                        # ~1.4 MB
    return root


@pytest.fixture(scope="module")
def server(checkpoint):
    predictor = load_predictor(str(checkpoint), "cpu", None, None, "greedy", None)
    app = build_app(predictor, LIMITS)
    app.state.predictor = predictor
    with ServerThread(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


def open_page(browser, url):
    browser.get(url)
    wait_for(lambda: "AUs" in browser.find_element("id", "model-line").text, what="the model description")


def upload(browser, *paths: Path) -> None:
    browser.execute_script("document.getElementById('message').dataset.kind = ''")
    browser.find_element("id", "files").send_keys("\n".join(str(p) for p in paths))


def predict_cli(photo: Path, out: Path, checkpoint: Path, monkeypatch, *extra: str) -> bytes:
    monkeypatch.chdir(photo.parent)
    assert main(["predict", photo.name, "--checkpoint", str(checkpoint), "--json", str(out), "--device", "cpu",
                 "--no-progress", *extra]) == 0
    return out.read_bytes()


def download(browser) -> bytes:
    href = browser.find_element("id", "download").get_attribute("href")
    with urllib.request.urlopen(href, timeout=30) as response:
        return response.read()


def test_astronaut_face_bars_texts_attention_and_the_json_of_fau_predict(server, browser, photos, checkpoint,
                                                                       tmp_path, monkeypatch):
    _, url = server
    open_page(browser, url)
    assert "32" not in browser.find_element("id", "limits").text          # the server's limits are stated
    assert "4 photos" in browser.find_element("id", "limits").text and "1 MB" in browser.find_element("id", "limits").text
    upload(browser, photos / "astronaut.png")
    assert wait_message(browser, ("ok",))[1].startswith("1 photo(s), 1 face(s)")
    wait_for(lambda: browser.find_elements("css selector", ".photo-wrap .box"), what="the face box")
    cards = browser.find_elements("css selector", ".face-card")
    assert len(cards) == 1
    rows = cards[0].find_elements("css selector", ".au-row")
    assert [r.get_attribute("data-au") for r in rows] == LABELS
    widths = [float(r.find_element("css selector", ".fill").value_of_css_property("width").removesuffix("px"))
              for r in rows]
    assert all(w >= 0 for w in widths) and len(set(widths)) > 1          # bars drawn at the probabilities

    expected = json.loads(predict_cli(photos / "astronaut.png", tmp_path / "cli.json", checkpoint, monkeypatch))
    face = expected[0]["faces"][0]
    active_rows = [r.get_attribute("data-au") for r in rows if "active" in r.get_attribute("class")]
    assert active_rows == face["active"]
    chips = [c.text for c in cards[0].find_elements("css selector", ".active-list .chip")]
    assert chips == face["active"]
    generated = cards[0].find_element("css selector", '[data-text="generated"] .global').text
    template = cards[0].find_element("css selector", '[data-text="template"] .global').text
    assert generated == face["description"]["global"].strip() and template == face["template_description"]["global"]
    tiles = cards[0].find_elements("css selector", ".overlay img")
    assert len(tiles) == len(LABELS)
    assert all(t.get_attribute("naturalWidth") == cards[0].find_element("css selector", ".crop")
               .get_attribute("naturalWidth") for t in tiles)
    box = browser.find_element("css selector", ".photo-wrap .box").rect
    photo = browser.find_element("css selector", ".photo-wrap img").rect
    x0, y0, x1, y1 = face["box"]
    scale = photo["width"] / 512
    assert abs(box["x"] - photo["x"] - x0 * scale) < 3 and abs(box["width"] - (x1 - x0) * scale) < 3

    # "download JSON" is byte for byte what `fau predict --json` writes for the same photo
    assert download(browser) == (tmp_path / "cli.json").read_bytes()
    shot = screenshot(browser, "fau_serve.png")
    assert Image.open(shot).size[0] >= 1000


def test_threshold_slider_relabels_without_the_model_and_the_json_follows(server, browser, photos, checkpoint,
                                                                         tmp_path, monkeypatch):
    app, url = server
    open_page(browser, url)
    upload(browser, photos / "astronaut.png")
    wait_message(browser, ("ok",))
    predictor, calls = app.state.predictor, []
    infer = predictor.infer
    monkeypatch.setattr(predictor, "infer", lambda *a, **k: calls.append(1) or infer(*a, **k))
    slider = browser.find_element("id", "threshold")
    browser.execute_script("arguments[0].value = '0.01'; arguments[0].dispatchEvent(new Event('input'))", slider)
    rows = browser.find_elements("css selector", ".au-row")
    assert all("active" in r.get_attribute("class") for r in rows)         # at once, client side
    wait_for(lambda: browser.execute_script("return document.body.dataset.relabelled"), what="the re-labelled text")
    template = browser.find_element("css selector", '[data-text="template"] .global').text
    (tmp_path / "t.yaml").write_text("\n".join(f"{name}: 0.01" for name in LABELS), encoding="utf-8")
    expected = predict_cli(photos / "astronaut.png", tmp_path / "low.json", checkpoint, monkeypatch,
                           "--threshold", str(tmp_path / "t.yaml"))
    face = json.loads(expected)[0]["faces"][0]
    assert face["active"] == LABELS and template == face["template_description"]["global"]
    assert "threshold=0.01" in browser.find_element("id", "download").get_attribute("href")
    assert download(browser) == expected
    browser.find_element("id", "reset-threshold").click()
    assert browser.find_element("id", "threshold-value").text == "checkpoint"
    assert not calls


def test_bad_inputs_get_visible_messages_and_a_busy_server_says_so(server, browser, photos):
    app, url = server
    open_page(browser, url)
    upload(browser, photos / "notes.txt", photos / "coffee.png", photos / "huge.png", photos / "heavy.png")
    kind, text = wait_message(browser, ("error",))
    assert "4 photo(s), 0 face(s)" in text and "No face found in coffee.png" in text
    errors = {block.get_attribute("data-image"): block.find_element("css selector", ".image-error").text
              for block in browser.find_elements("css selector", ".image-block") if block.find_elements("css selector", ".image-error")}
    assert errors["notes.txt"] == "image 'notes.txt' is not in a readable image format"
    assert errors["huge.png"] == "huge.png: 2500x2000 pixels is above the limit of 4 megapixels"
    assert errors["heavy.png"].startswith("heavy.png: 1.4 MB is larger than the limit of 1 MB")
    assert browser.find_element("css selector", '[data-image="coffee.png"] .no-face').text == "No face found in coffee.png."
    assert not browser.find_elements("css selector", ".face-card")

    upload(browser, *(photos / "astronaut.png" for _ in range(5)))
    assert wait_message(browser, ("error",))[1] == "5 photos: at most 4 per request; pick fewer"

    with app.state.busy.job():                                             # another request is running
        upload(browser, photos / "astronaut.png")
        kind, text = wait_message(browser, ("busy",))
        assert text.startswith("busy: the model is working on another request")
    upload(browser, photos / "astronaut.png")                              # the page is not stuck
    assert wait_message(browser, ("ok",))[0] == "ok"
    assert message(browser)[1].startswith("1 photo(s), 1 face(s)")


def test_fau_serve_command_starts_on_localhost_and_stops_on_ctrl_c(checkpoint, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    log = open(tmp_path / "stderr.txt", "w+", encoding="utf-8")     # a file: a full stderr pipe would block the server
    process = subprocess.Popen([sys.executable, "-m", "fau", "serve", "--checkpoint", str(checkpoint), "--port", "0",
                                "--device", "cpu"], stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("fau serve: vlfau from ") and " at http://127.0.0.1:" in line
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/info", timeout=30) as response:
            assert json.loads(response.read())["labels"] == LABELS
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        assert "<script src=\"/static/app.js\">" in page and "http" not in page.replace(url, "")  # nothing fetched elsewhere
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
        log.close()
    err = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert process.returncode == 130 and err.strip().endswith("fau: interrupted") and "Traceback" not in err


def test_fau_serve_bad_arguments_are_one_line_errors(checkpoint, tmp_path, capsys):
    from shared.serve import bind

    assert main(["serve", "--checkpoint", str(tmp_path / "missing.safetensors"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fau: error: ") and "missing" in err and len(err.splitlines()) == 1
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert main(["serve", "--checkpoint", str(checkpoint), "--port", str(port)]) == 2
        assert capsys.readouterr().err.strip() == f"fau: error: --port {port}: already in use on 127.0.0.1; pick another port"
    finally:
        taken.close()
    assert main(["serve", "--checkpoint", str(checkpoint), "--max-file-mb", "0"]) == 2
    assert capsys.readouterr().err.strip() == "fau: error: --max-file-mb must be positive, got 0.0"

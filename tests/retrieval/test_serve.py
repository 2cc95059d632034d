"""`retrieval serve` in a real headless Chromium: a SynScenes caption in, the gallery hits out as pictures.

A tiny 3SHNet (region variant, one epoch) indexes the 24 test scenes of a tiny SynScenes; what the page
shows is checked against the command line on the same index: the hits of ``retrieval search``, the
captions of ``retrieval search --image`` over a caption bank, the R@K of ``retrieval search --heldout``.
"""

from __future__ import annotations

import json

import pytest
import torch

from retrieval.cli import main
from retrieval.search.explain import words_of
from retrieval.synth.generate import generate
from retrieval.train import CONFIG_DIR, train
from shared.config import load_run_config
from tests.browser import message, screenshot, start_chromium, wait_for, wait_message


from retrieval.serve.adapter import load_gallery  # noqa: E402
from retrieval.serve.app import Limits, build_app  # noqa: E402
from shared.serve import ServerThread  # noqa: E402

FAST = ["train.epochs=1", "train.batch_size=16"]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    scenes = root / "scenes"
    generate(scenes, n_train=48, n_dev=16, n_test=24, seed=5, progress=False)
    checkpoint = train("3shnet", scenes, load_run_config("shnet_tiny", CONFIG_DIR, FAST), root / "run", device="cpu",
                       show_progress=False)
    for extra in ([], ["--captions"]):
        out = root / ("captions" if extra else "index")
        assert main(["index", "build", "--checkpoint", str(checkpoint), "--data", str(scenes), "--out", str(out),
                     "--quiet", "--device", "cpu", *extra]) == 0
    return {"root": root, "scenes": scenes, "index": root / "index", "captions": root / "captions"}


@pytest.fixture(scope="module")
def server(built):
    app = build_app(load_gallery(str(built["index"]), None, None, None, "cpu", 100), Limits())
    with ServerThread(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


def cli_json(tmp_path, *args: str) -> dict:
    out = tmp_path / "cli.json"
    assert main(["search", *args, "--json", str(out), "--device", "cpu"]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def open_page(browser, url):
    browser.get(url)
    wait_for(lambda: "gallery images" in browser.find_element("id", "model-line").text, what="the index description")


def clear_messages(browser) -> None:
    browser.execute_script("document.querySelectorAll('.message').forEach(m => m.dataset.kind = '')")


def search(browser, query: str) -> None:
    clear_messages(browser)
    box = browser.find_element("id", "query")
    box.clear()
    browser.execute_script("arguments[0].value = arguments[1]", box, query)
    browser.find_element("id", "search").click()


def test_a_synscenes_caption_finds_pictures_with_scores_and_explanations(server, browser, built, tmp_path):
    _, url = server
    caption = (built["scenes"] / "synscenes_precomp" / "test_caps.txt").read_text(encoding="utf-8").splitlines()[35]
    open_page(browser, url)
    search(browser, caption)
    kind, text = wait_message(browser, ("ok", "busy", "error"))
    assert kind == "ok" and text.startswith("10 images for") and "10 explained" in text
    cards = browser.find_elements("css selector", ".hit")
    expected = cli_json(tmp_path, "--index", str(built["index"]), caption, "--topk", "10")["results"][0]["hits"]
    assert [c.get_attribute("data-id") for c in cards] == [hit["id"] for hit in expected]
    scores = [float(c.find_element("css selector", ".score").text.split()[1]) for c in cards]
    assert scores == [round(hit["score"], 3) for hit in expected] and scores == sorted(scores, reverse=True)
    pictures = [c.find_element("css selector", "img") for c in cards]
    wait_for(lambda: all(int(p.get_attribute("naturalWidth")) > 0 for p in pictures), what="the hit pictures")
    assert all(int(p.get_attribute("naturalWidth")) == 768 for p in pictures)     # the 192-px render drawn at 4x
    words = cards[0].find_elements("css selector", ".query-words .chip")
    assert [w.text for w in words] == words_of(caption)
    assert len(cards[0].find_elements("css selector", ".query-words .chip.on")) == 3


def test_a_gallery_image_gets_its_best_captions_and_the_heldout_button_its_recall(server, browser, built, tmp_path):
    _, url = server
    caption = (built["scenes"] / "synscenes_precomp" / "test_caps.txt").read_text(encoding="utf-8").splitlines()[35]
    open_page(browser, url)
    search(browser, caption)
    assert wait_message(browser, ("ok",))[0] == "ok"
    thumbs = wait_for(lambda: browser.find_elements("css selector", ".thumb"), what="the gallery")
    assert len(thumbs) == 24
    clear_messages(browser)
    thumbs[3].click()
    kind, text = wait_message_in(browser, "captions-message")
    assert kind == "ok" and text.startswith(f"best captions for image {thumbs[3].get_attribute('title').split()[1]}")
    shown = [span.text for span in browser.find_elements("css selector", "#captions li .text")]
    image_id = thumbs[3].get_attribute("title").split()[1]
    expected = cli_json(tmp_path, "--index", str(built["captions"]), "--image", image_id, "--topk", "5")
    assert shown == [hit["text"] for hit in expected["results"][0]["hits"]]

    n = browser.find_element("id", "heldout-n")
    n.clear()
    n.send_keys("24")
    clear_messages(browser)
    browser.find_element("id", "heldout").click()
    kind, text = wait_message_in(browser, "heldout-message")
    report = cli_json(tmp_path, "--index", str(built["index"]), "--heldout", "24")["heldout"]
    assert kind == "ok"
    assert text.startswith(f"held-out 24 queries: R@1 {report['r1']:.1f}  R@5 {report['r5']:.1f}  R@10 {report['r10']:.1f}")
    assert "chance R@1 is 4.2" in text
    shot = screenshot(browser, "retrieval_serve.png")                     # search, captions and R@K in one picture
    assert shot.stat().st_size > 50_000


def wait_message_in(browser, box_id: str) -> tuple[str, str]:
    def ready():
        box = browser.find_element("id", box_id)
        kind = box.get_attribute("data-kind")
        return (kind, box.text) if kind in ("ok", "busy", "error") else None
    return wait_for(ready, what=f"#{box_id}")


def test_empty_and_huge_queries_and_a_busy_server_get_visible_messages(server, browser):
    app, url = server
    open_page(browser, url)
    search(browser, "   ")
    assert wait_message(browser, ("error",))[1] == "type a sentence first: the query is empty"
    search(browser, "a red cube " * 909 + "x")
    assert wait_message(browser, ("error",))[1] == "the query has 10,000 characters; the limit is 1,000 (a sentence or two)"
    with app.state.busy.job():
        search(browser, "a red cube")
        assert wait_message(browser, ("busy",))[1].startswith("busy: the model is working on another request")
        clear_messages(browser)
        browser.find_element("id", "heldout").click()
        assert wait_message_in(browser, "heldout-message")[0] == "busy"
    search(browser, "a red cube")                                           # the page is not stuck
    assert wait_message(browser, ("ok",))[0] == "ok" and browser.find_elements("css selector", ".hit")
    assert message(browser)[1].startswith("10 images for")


def get_json(url: str, body: dict | None = None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_reranked_gallery_answers_like_search_rerank_and_explains_with_the_reranker(built, tmp_path):
    hire = train("hire_t2i", built["scenes"], load_run_config("hire_t2i_tiny", CONFIG_DIR, FAST), tmp_path / "hire",
                 device="cpu", show_progress=False)
    gallery = load_gallery(str(built["index"]), None, str(hire), str(built["captions"]), "cpu", 8)
    query = "a small cyan cone in front of a large red cube"
    with ServerThread(build_app(gallery)) as url:
        status, info = get_json(url + "api/info")
        assert (info["rerank"], info["shortlist"], info["captions"]) == ("hire_t2i", 8, 120)
        status, answer = get_json(url + "api/search", {"query": query, "topk": 5, "explain": True})
        assert status == 200 and answer["scored_by"] == "hire_t2i re-ranking the top 8 of 3shnet"
        # HiRE explains through its word-region attention (retrieval.explain): every hit has matched words
        assert answer["note"] is None
        assert all(hit["explanation"]["matched_words"] for hit in answer["hits"])
        status, heldout = get_json(url + "api/heldout?n=24")
    expected = cli_json(tmp_path, "--index", str(built["index"]), query, "--topk", "5", "--rerank", str(hire),
                        "--shortlist", "8")["results"][0]["hits"]
    assert [(h["id"], h["score"]) for h in answer["hits"]] == [(h["id"], h["score"]) for h in expected]
    report = cli_json(tmp_path, "--index", str(built["index"]), "--heldout", "24", "--rerank", str(hire),
                      "--shortlist", "10")["heldout"]
    assert heldout == report and 0 <= heldout["shortlist_recall"] <= 100


def test_a_features_gallery_shows_its_photos_and_says_it_has_no_captions(built, tmp_path):
    from PIL import Image
    from skimage import data as skdata

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skdata.astronaut()[::2, ::2]).save(photos / "astronaut.png")
    Image.fromarray(skdata.coffee()[::2, ::2]).save(photos / "coffee.jpg")
    tiny = ["detector.min_size=128", "detector.max_size=160", "detector.rpn_pre_nms_top_n=300",
            "detector.rpn_post_nms_top_n=100"]
    assert main(["features", "--images", str(photos), "--out", str(tmp_path / "gallery"), "--no-progress", *tiny]) == 0
    vsepp = train("vsepp", built["scenes"], load_run_config("vsepp_tiny", CONFIG_DIR, FAST), tmp_path / "vsepp",
                  device="cpu", show_progress=False)
    assert main(["index", "build", "--checkpoint", str(vsepp), "--data", str(tmp_path / "gallery"),
                 "--out", str(tmp_path / "index"), "--quiet", "--device", "cpu"]) == 0
    gallery = load_gallery(str(tmp_path / "index"), None, None, None, "cpu", 100)
    import urllib.request

    with ServerThread(build_app(gallery)) as url:
        status, rows = get_json(url + "api/gallery")
        assert [(r["id"], r["picture"]) for r in rows["rows"]] == [("astronaut.png", True), ("coffee.jpg", True)]
        with urllib.request.urlopen(url + "api/picture/1", timeout=30) as response:
            assert response.read() == (photos / "coffee.jpg").read_bytes()
        status, answer = get_json(url + "api/search", {"query": "a woman in a space suit", "topk": 2})
        assert status == 200 and {h["id"] for h in answer["hits"]} == {"astronaut.png", "coffee.jpg"}
        assert answer["note"] == "no explanation: model 'vsepp' does not explain its outputs (no explain method)"
        assert get_json(url + "api/captions/0") == (400, {"error": "no caption bank: this gallery has no captions; start "
                                                         "the demo with --captions INDEX (`retrieval index build --captions ...`)"})
        status, error = get_json(url + "api/heldout?n=2")
        assert status == 400 and error["error"].endswith("has no captions, so no query has a known answer")
        assert get_json(url + "api/picture/7")[0] == 400 and get_json(url + "api/search", {"query": 3})[0] == 400


def test_retrieval_serve_bad_arguments_are_one_line_errors(built, tmp_path, capsys):
    assert main(["serve", "--index", str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"retrieval: error: index {tmp_path / 'nowhere'}: not an index folder (manifest.json not found)"
    assert main(["serve", "--index", str(built["captions"]), "--port", "0", "--device", "cpu"]) == 2
    assert "a captions index; the demo searches an images index" in capsys.readouterr().err

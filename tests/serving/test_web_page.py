"""The web page in a real headless browser (Debian's chromium + chromedriver, selenium), driven
like a person: search, rate three items, see the recommendations (scripts/page_screenshot.py)."""
import importlib.util
import sys
from pathlib import Path

import pytest

import mamo_l2l as ml

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "page_screenshot.py"


def _page_module():
    spec = importlib.util.spec_from_file_location("mamo_l2l_page_screenshot", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


page = _page_module()


@pytest.fixture(scope="module")
def browser_ready():
    missing = [p for p in (page.CHROMIUM, page.CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/install_browser.sh, run by `make test`, "
                    "installs chromium and chromium-driver as root; or apt-get install -y chromium chromium-driver)")
    pytest.importorskip("selenium", reason="selenium (test extra) is not installed")
    pytest.importorskip("uvicorn", reason="uvicorn (serve extra) is not installed")


def test_rate_three_items_and_see_recommendations(browser_ready, recommend_run, tmp_path):
    rec = ml.load_recommender(recommend_run[0] / "best.pt")
    shot = tmp_path / "page.png"
    with page.running_server(rec) as url, page.chrome(tmp_path / "profile") as driver:
        result = page.rate_and_wait(driver, url, "movie", [5, 4, 1])
        driver.save_screenshot(str(shot))
    rated, recs = result["rated"], result["recs"]
    assert len(rated) == 3
    assert len(recs) == 10
    assert not set(rated) & {i for i, _, _, _ in recs}                   # rated items are left out
    want = rec.recommend(list(rated.items()), k=10)                      # what the page shows = the model's top 10
    assert [i for i, _, _, _ in recs] == list(want["item_id"])
    assert [t for _, t, _, _ in recs] == list(want["title"])
    assert [s for _, _, s, _ in recs] == pytest.approx([round(s, 2) for s in want["score"]], abs=0.006)
    assert [r for _, _, _, r in recs] == pytest.approx([round(r, 2) for r in want["rank_score"]], abs=0.006)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Drive the recommendation page (mamo_l2l/web/index.html) in headless Chromium like a person:
search, rate three items, wait for the top-k, take a screenshot (docs/serving.md).

    python scripts/page_screenshot.py --checkpoint runs/a/best.pt --query star --out docs/recommend-page.png

tests/test_web_page.py uses the same functions. Needs Debian's chromium + chromium-driver
(scripts/install.sh installs them as root) and selenium; only 127.0.0.1 is ever contacted.
"""
from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Sequence

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,900")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(recommender, timeout: float = 20.0):
    """uvicorn serving ``recommender`` on 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    from mamo_l2l.serving.app import create_app
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(recommender), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the server did not start on 127.0.0.1:{port} within {timeout} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@contextmanager
def chrome(profile_dir=None):
    """A headless Chromium through Debian's chromedriver (never a downloaded driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory(prefix="mamo-chrome-") as fresh:
        for flag in FLAGS + (f"--user-data-dir={profile_dir or fresh}",):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def rate_and_wait(driver, base_url: str, query: str, values: Sequence[int], timeout: float = 20.0) -> Dict:
    """Open the page, search ``query``, give the first len(values) results those ratings, wait
    for the recommendations based on them. Returns {"rated": {id: rating},
    "recs": [(id, title, predicted rating, rank score)]}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    wait = WebDriverWait(driver, timeout)
    driver.get(base_url + "/")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#recs li.rec"))       # the unpersonalised list
    box = driver.find_element(By.ID, "q")
    box.send_keys(query)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li.result")) >= len(values))
    rated: Dict[str, int] = {}
    for n, value in enumerate(values):
        row = driver.find_elements(By.CSS_SELECTOR, "#results li.result")[n]
        item = row.get_attribute("data-item-id")
        row.find_element(By.CSS_SELECTOR, f'.star[data-value="{value}"]').click()
        rated[item] = value
    want = f"Based on your {len(values)} rating"
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(want))
    recs: List = []
    for li in driver.find_elements(By.CSS_SELECTOR, "#recs li.rec"):
        recs.append((li.get_attribute("data-item-id"), li.find_element(By.CSS_SELECTOR, ".title").text,
                     float(li.find_element(By.CSS_SELECTOR, ".score").text),
                     float(li.find_element(By.CSS_SELECTOR, ".rank-score").text)))
    return {"rated": rated, "recs": recs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--query", default="star")
    ap.add_argument("--ratings", default="5,4,2", help="ratings for the first results, comma-separated")
    ap.add_argument("--out", default="docs/recommend-page.png")
    args = ap.parse_args()
    import mamo_l2l as ml
    rec = ml.load_recommender(args.checkpoint)
    with running_server(rec) as url, chrome() as driver:
        result = rate_and_wait(driver, url, args.query, [int(v) for v in args.ratings.split(",")])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.out)
    print(f"rated {result['rated']}; top: {result['recs'][:3]}; saved {args.out}")


if __name__ == "__main__":
    main()

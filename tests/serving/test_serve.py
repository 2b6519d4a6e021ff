"""The HTTP service (mamo_l2l/serving/app.py) through FastAPI's TestClient, on the session's fixture run."""
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

import mamo_l2l as ml  # noqa: E402
from mamo_l2l.serving.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def rec(recommend_run):
    return ml.load_recommender(recommend_run[0] / "best.pt")


@pytest.fixture(scope="module")
def client(rec):
    with TestClient(create_app(rec, max_ratings=20, max_k=30)) as c:
        yield c


def test_health_and_page(client, rec):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model"] == "mamo" and h["items"] == len(rec.catalog)
    assert h["rating_range"] == [1.0, 5.0]
    assert h["limits"]["max_ratings"] == 20 and h["limits"]["max_k"] == 30
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="q"' in page.text and "/recommend" in page.text


def test_item_search(client):
    r = client.get("/items", params={"q": "STAR"}).json()
    assert {"item_id": "2", "title": "Star Wars: Episode IV - A New Hope (1977)"} in r["items"]
    r = client.get("/items", params={"q": "movie", "limit": 5}).json()
    assert len(r["items"]) == 5 and all("movie" in i["title"].lower() for i in r["items"])
    assert client.get("/items", params={"q": ""}).json() == {"items": []}
    bad = client.get("/items", params={"q": "a", "limit": 500})
    assert bad.status_code == 400 and "limit must be between 1 and 50" in bad.json()["error"]


def test_recommend_matches_python(client, rec):
    body = {"ratings": [{"item_id": "1", "rating": 5}, {"item_id": 2, "rating": 4}],
            "user": {"gender": "F", "age": None}, "k": 6}
    r = client.post("/recommend", json=body)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    want = rec.recommend([("1", 5), ("2", 4)], user={"gender": "F"}, k=6)
    assert [i["item_id"] for i in items] == list(want["item_id"])
    assert [i["title"] for i in items] == list(want["title"])
    assert [i["score"] for i in items] == pytest.approx(list(want["score"]), abs=1e-9)
    assert [i["rank_score"] for i in items] == pytest.approx(list(want["rank_score"]), abs=1e-9)
    assert [i["rank_score"] for i in items] == sorted((i["rank_score"] for i in items), reverse=True)
    assert not {"1", "2"} & {i["item_id"] for i in items}


@pytest.mark.parametrize("body, status, message", [
    ({"ratings": [{"item_id": "nope", "rating": 4}]}, 400, "unknown item id"),
    ({"ratings": [{"item_id": "1", "rating": 11}]}, 400, "rating range 1..5"),
    ({"ratings": [{"item_id": "1", "rating": "x"}]}, 422, "ratings.0.rating"),
    ({"ratings": [{"item": "1", "rating": 3}]}, 422, "ratings.0.item_id"),
    ({"ratings": [], "k": 0}, 400, "k must be between 1 and 30"),
    ({"ratings": [], "k": 31}, 400, "k must be between 1 and 30"),
    ({"ratings": [{"item_id": str(i), "rating": 3} for i in range(1, 22)]}, 400, "too many ratings (21; at most 20"),
    ({"ratings": [], "user": {"shoe": "42"}}, 400, "unknown user field"),
])
def test_invalid_requests_get_4xx_with_a_message(client, body, status, message):
    r = client.post("/recommend", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_body_size_is_bounded(rec):
    with TestClient(create_app(rec, max_body_bytes=200)) as c:
        r = c.post("/recommend", json={"ratings": [{"item_id": "1", "rating": 3}] * 10})
        assert r.status_code == 413 and "at most 200 bytes" in r.json()["error"]
        assert (
            c.post("/recommend", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
        )


def test_concurrent_requests_answer_as_sequential_ones(client, rec):
    bodies = [
        {
            "ratings": [
                {"item_id": str(1 + (n % 7)), "rating": 1 + n % 5},
                {"item_id": str(20 + n), "rating": 5 - n % 5},
            ],
            "user": {"gender": "MF"[n % 2]},
            "k": 10,
        }
        for n in range(24)
    ]
    before = {k: v.clone() for k, v in rec.model.state_dict().items()}
    sequential = [client.post("/recommend", json=b).json() for b in bodies]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda b: client.post("/recommend", json=b).json(), bodies))
    assert concurrent == sequential
    assert len({tuple(i["item_id"] for i in s["items"]) for s in sequential}) > 1  # the bodies differ
    after = rec.model.state_dict()
    assert all((before[k] == after[k]).all() for k in before)


def test_missing_fastapi_gives_a_clear_message(monkeypatch, tmp_path, recommend_run):
    import builtins

    from click.testing import CliRunner

    from mamo_l2l.cli.main import app

    real_import = builtins.__import__

    def no_fastapi(name, *args, **kwargs):
        if name.split(".")[0] in ("fastapi", "uvicorn"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fastapi)
    res = CliRunner().invoke(app, ["serve", "--checkpoint", str(recommend_run[0] / "best.pt")])
    assert res.exit_code == 1 and "pip install 'mamo_l2l[serve]'" in res.output


def test_several_worker_processes_answer_like_the_library(recommend_run, rec):
    """`mamo-l2l serve --workers 2`: uvicorn worker processes, each loading the checkpoint."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mamo_l2l",
            "serve",
            "--checkpoint",
            str(recommend_run[0] / "best.pt"),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode(errors="replace")[-2000:]
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no answer from the workers within 90 s"
            time.sleep(0.3)
        ids = list(rec.catalog.item_ids[:3])
        body = {"ratings": [{"item_id": i, "rating": r} for i, r in zip(ids, (5, 1, 4))], "k": 5}
        answers = [httpx.post(url + "/recommend", json=body, timeout=30.0).json() for _ in range(4)]
        expected = rec.recommend([(i, r) for i, r in zip(ids, (5, 1, 4))], k=5)
        for answer in answers:  # whichever worker answered
            assert [it["item_id"] for it in answer["items"]] == list(expected["item_id"])
            assert [it["score"] for it in answer["items"]] == pytest.approx(list(expected["score"]), abs=1e-5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_profile_fields_and_values_the_run_does_not_know_answer_400(client, rec):
    known = rec.catalog.user_values()
    r = client.post("/recommend", json={"ratings": [{"item_id": "1", "rating": 5}], "user": {"gender": "Female"}})
    assert r.status_code == 400 and list(r.json()) == ["error"]
    assert "gender=Female is a value this run never saw" in r.json()["error"]
    assert f"known gender values: {', '.join(known['gender'])}" in r.json()["error"]
    r = client.post("/recommend", json={"user": {"shoe": "42"}})
    assert r.status_code == 400 and f"this run knows: {', '.join(known)}" in r.json()["error"]


@pytest.mark.parametrize("method, path, content, status, message", [
    ("post", "/recommend", b'{"ratings": [', 422, "the body is not valid JSON"),
    ("get", "/nope", None, 404, "no such endpoint: GET /nope (this service answers GET /, GET /health"),
    ("get", "/recommend", None, 405, "GET is not allowed on /recommend; use POST"),
    ("post", "/health", b"{}", 405, "POST is not allowed on /health; use GET"),
])
def test_every_error_is_one_plain_error_field(client, method, path, content, status, message):
    kwargs = {} if content is None else {"content": content, "headers": {"content-type": "application/json"}}
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status and list(r.json()) == ["error"]
    assert message in r.json()["error"] and "decode" not in r.json()["error"]


def test_an_internal_error_is_the_same_shape(rec, monkeypatch):
    app = create_app(rec)
    monkeypatch.setattr(rec, "recommend_records", lambda *a, **k: 1 / 0)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/recommend", json={"ratings": []})
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (ZeroDivisionError); the server log has the details"}

"""Recommendation latency: in-process ``recommend`` and the HTTP service (docs/serving.md).

    python benchmarks/bench_recommend.py                       # trains a small MAMO run on ML-1M first
    python benchmarks/bench_recommend.py --checkpoint runs/a/best.pt --seconds 30

1. In-process: ``ItemRecommender.recommend`` for one new user (``--n-ratings`` random ratings)
   over the whole catalogue, ``--calls`` times; p50 / p95 latency.
2. HTTP: `mamo-l2l serve` in a subprocess on 127.0.0.1 (a free port), ``--clients`` client
   threads POSTing /recommend back to back for ``--seconds`` s (keep-alive connections);
   p50 / p95 latency and requests/s. Loopback only; everything stops by itself.
Clients and server share the machine's cores, as they would on one box.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def train_small_run(dataset: str, data_dir, epochs: int, out: Path) -> Path:
    best = out / "best.pt"
    if best.is_file():
        print(f"reusing {best}")
        return best
    import mamo_l2l as ml
    cfg = ml.load_config().override("data", dataset=dataset, data_dir=data_dir)
    cfg = cfg.override("train", epochs=epochs, backend="func", seed=0)
    started = time.perf_counter()
    bundle = ml.load_data(cfg, progress=False)
    ml.fit(bundle, cfg, model_name="mamo", out_dir=out, progress=False)
    print(f"trained mamo on {dataset} for {epochs} epoch(s) in {time.perf_counter() - started:.0f} s -> {best}")
    return best


def random_users(item_ids, n_users: int, n_ratings: int, lo: float, hi: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    levels = np.arange(int(np.ceil(lo)), int(np.floor(hi)) + 1)
    return [[(str(item_ids[i]), float(rng.choice(levels))) for i in rng.choice(len(item_ids), n_ratings, replace=False)]
            for _ in range(n_users)]


def percentiles(seconds):
    ms = np.asarray(seconds) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def bench_in_process(checkpoint: Path, calls: int, n_ratings: int, k: int, backend=None):
    import mamo_l2l as ml
    rec = ml.load_recommender(checkpoint, backend=backend)
    users = random_users(rec.catalog.item_ids, calls + 5, n_ratings, *rec.rating_range)
    for u in users[:5]:                                   # warm-up
        rec.recommend(u, k=k)
    times = []
    for u in users[5:]:
        t0 = time.perf_counter()
        rec.recommend(u, k=k)
        times.append(time.perf_counter() - t0)
    return rec, percentiles(times)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live child processes (Linux
    /proc; NaN elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats = {}
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    text = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = text[text.rindex(")") + 2:].split()
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    except OSError:
        return float("nan")
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _) in stats.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(stats[p][1] for p in tree if p in stats)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(server, url: str, limit_s: float = 120.0) -> None:
    """Until the server answers /health (RuntimeError when it exits or does not answer in time)."""
    import httpx
    deadline = time.monotonic() + limit_s
    while True:
        if server.poll() is not None:
            raise RuntimeError("server exited: " + server.stderr.read().decode(errors="replace")[-2000:])
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer /health within {limit_s:.0f} s")
        time.sleep(0.2)


def bench_http(checkpoint: Path, rec, seconds: float, clients: int, n_ratings: int, k: int, workers: int = 1,
               backend=None):
    import httpx
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--checkpoint", str(checkpoint),
                               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
                              + (["--backend", backend] if backend else []), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(server, url)
        bodies = [{"ratings": [{"item_id": i, "rating": r} for i, r in u], "k": k}
                  for u in random_users(rec.catalog.item_ids, 256, n_ratings, *rec.rating_range, seed=1)]
        with httpx.Client(timeout=10.0) as c:            # warm-up
            for b in bodies[:5]:
                c.post(url + "/recommend", json=b).raise_for_status()
        lat, errors, lock = [], [], threading.Lock()
        stop_at = time.monotonic() + seconds

        def client(n: int) -> None:
            with httpx.Client(timeout=10.0) as c:
                j = n
                while time.monotonic() < stop_at:
                    t0 = time.perf_counter()
                    r = c.post(url + "/recommend", json=bodies[j % len(bodies)])
                    dt = time.perf_counter() - t0
                    with lock:
                        (lat if r.status_code == 200 else errors).append(dt)
                    j += clients
        started = time.monotonic()
        server_cpu0, client_cpu0 = process_tree_cpu(server.pid), sum(os.times()[:2])
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        server_cpu = process_tree_cpu(server.pid) - server_cpu0
        client_cpu = sum(os.times()[:2]) - client_cpu0
        p50, p95 = percentiles(lat)
        n = max(len(lat), 1)
        return {"requests": len(lat), "errors": len(errors), "seconds": elapsed, "rps": len(lat) / elapsed,
                "p50_ms": p50, "p95_ms": p95, "p99_ms": float(np.percentile(np.asarray(lat) * 1000.0, 99)),
                "server_cpu_ms_per_request": 1000.0 * server_cpu / n,
                "client_cpu_ms_per_request": 1000.0 * client_cpu / n}
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="a run's best.pt (default: train a small run first)")
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=None, help="run folder for the trained run [runs/bench-recommend-<dataset>]")
    ap.add_argument("--calls", type=int, default=300, help="in-process recommend calls")
    ap.add_argument("--n-ratings", type=int, default=10, help="ratings per simulated new user")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0, help="HTTP load duration")
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    ap.add_argument("--workers", type=int, default=1, help="server processes (mamo-l2l serve --workers)")
    ap.add_argument("--backend", default=None, help="adapt with this backend [the run's]")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 600 or not 1 <= args.clients <= 64:
        ap.error("--seconds must be in 1..600 and --clients in 1..64")
    checkpoint = Path(args.checkpoint) if args.checkpoint else train_small_run(
        args.dataset, args.data_dir, args.epochs, Path(args.out or f"runs/bench-recommend-{args.dataset}"))
    import torch
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    rec, (p50, p95) = bench_in_process(checkpoint, args.calls, args.n_ratings, args.k, args.backend)
    print(f"catalogue {len(rec.catalog)} items, model {rec.model_name}, backend {rec.backend.name}, "
          f"local steps {rec.inner.steps}, torch threads {torch.get_num_threads()}, "
          f"{args.n_ratings} ratings/user, k={args.k}")
    print(f"in-process recommend: {args.calls} calls, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    http = bench_http(checkpoint, rec, args.seconds, args.clients, args.n_ratings, args.k, args.workers, args.backend)
    print(
        f"HTTP POST /recommend: {args.clients} clients x {http['seconds']:.0f} s, {http['requests']} requests "
        f"({http['errors']} errors), {http['rps']:.0f} requests/s, p50 {http['p50_ms']:.1f} ms, "
        f"p95 {http['p95_ms']:.1f} ms, p99 {http['p99_ms']:.1f} ms"
    )
    print(
        f"CPU per request: server (all its processes) {http['server_cpu_ms_per_request']:.1f} ms, "
        f"clients (this process) {http['client_cpu_ms_per_request']:.1f} ms; load average before: "
        f"{load_before}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "items": len(rec.catalog),
                    "in_process": {"p50_ms": p50, "p95_ms": p95},
                    "http": http,
                    "args": vars(args),
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()

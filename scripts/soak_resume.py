"""Soak test of kill-and-resume (not part of the test suite; docs/operations.md).

One uninterrupted `mamo-l2l train` run is the reference. Then N cycles: start the same run in a
fresh folder, send SIGTERM at a random time within the reference's duration, and `--resume` it
(again killed at random with probability --kill-resumes, until it finishes). Every finished run's
best.pt must equal the reference's bit for bit.

    OMP_NUM_THREADS=1 python scripts/soak_resume.py --n 20 --data-dir ../shared/data/ml-100k

Prints one line per cycle and a summary "K/N resumed runs identical to the uninterrupted run";
exits 1 when any differs.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train_cmd(args, out: Path, resume: bool = False):
    cmd = [sys.executable, "-m", "mamo_l2l", "--quiet", "train", "--out", str(out)]
    if resume:
        return cmd + ["--resume"] + (["--cache-dir", args.cache_dir] if args.cache_dir else [])
    cmd += ["--dataset", args.dataset, "--model", args.model, "--epochs", str(args.epochs), "--patience", "1000",
            "--seed", str(args.seed), "--threads", "1"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.cache_dir:
        cmd += ["--cache-dir", args.cache_dir]
    return cmd


def run_until(cmd, kill_after, env):
    """Run ``cmd``; SIGTERM it after ``kill_after`` seconds (None: never). Returns (rc, killed)."""
    child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = False
    if kill_after is not None:
        try:
            child.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGTERM)
            killed = True
    _, err = child.communicate()
    if child.returncode not in (0, 143, -signal.SIGTERM):
        sys.stderr.write(err.decode(errors="replace"))
    return child.returncode, killed


def saved_epoch(out: Path) -> str:
    """The epoch last.pt holds now ("none" before the first checkpoint)."""
    import torch
    if not (out / "last.pt").is_file():
        return "none"
    return str(torch.load(out / "last.pt", map_location="cpu", weights_only=True)["state"]["epoch"])


def same_best(a: Path, b: Path) -> bool:
    import torch
    x = torch.load(a, map_location="cpu", weights_only=True)["state_dict"]
    y = torch.load(b, map_location="cpu", weights_only=True)["state_dict"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20, help="kill/resume cycles")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--model", default="mamo")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kill-resumes", type=float, default=0.3, help="chance that a resume is killed too")
    p.add_argument("--workdir", default=None)
    p.add_argument("--rng", type=int, default=0, help="seed of the kill times")
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    work = Path(args.workdir or tempfile.mkdtemp(prefix="soak-resume-"))
    rng = random.Random(args.rng)

    ref = work / "reference"
    t0 = time.perf_counter()
    rc, _ = run_until(train_cmd(args, ref), None, env)
    duration = time.perf_counter() - t0
    if rc != 0:
        print(f"reference run failed (exit {rc})")
        return 1
    print(f"reference: {args.model} on {args.dataset}, {args.epochs} epochs, {duration:.0f}s, in {ref}", flush=True)

    identical = 0
    for k in range(1, args.n + 1):
        out = work / f"cycle{k:03d}"
        kills, starts, stops = 0, 0, []
        kill_at = rng.uniform(0.05, 1.0) * duration
        rc, killed = run_until(train_cmd(args, out), kill_at, env)
        starts += 1
        kills += killed
        if rc != 0:
            stops.append(f"exit {rc} at epoch {saved_epoch(out)}")
        while rc != 0:
            if starts > 20:
                break
            kill_at = rng.uniform(0.2, 1.0) * duration if rng.random() < args.kill_resumes else None
            # a kill before the first checkpoint leaves nothing to resume: start the run again
            resume = (out / "last.pt").is_file() or (out / "config.yaml").is_file()
            rc, killed = run_until(train_cmd(args, out, resume=resume), kill_at, env)
            starts += 1
            kills += killed
            if rc != 0:
                stops.append(f"exit {rc} at epoch {saved_epoch(out)}")
        ok = rc == 0 and same_best(ref / "best.pt", out / "best.pt")
        identical += ok
        print(f"cycle {k:>3}: {kills} SIGTERM(s), {starts} start(s) [{'; '.join(stops)}], "
              f"{'identical' if ok else 'DIFFERENT' if rc == 0 else f'failed (exit {rc})'}", flush=True)
    print(f"{identical}/{args.n} resumed runs identical to the uninterrupted run (work folder {work})")
    return 0 if identical == args.n else 1


if __name__ == "__main__":
    sys.exit(main())

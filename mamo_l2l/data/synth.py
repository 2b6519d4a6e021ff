"""Synthetic MovieLens-shaped data sets at any scale, in RecBole atomic format (docs/distributed.md,
"Synthetic data at scale"; the format: docs/data-formats.md).

``write_synthetic(out, scale=10)`` writes ``synth.inter``, ``synth.user`` and ``synth.item`` with
``6040 * scale`` users (ML-1M has 6,040), ``3706 * sqrt(scale)`` items (ML-1M rates 3,706; the
catalogue grows more slowly than the users, as in real services) and about 165 ratings per user
after repeated (user, item) draws are dropped (ML-1M: 1,000,209 / 6,040; ``ratings_per_user``
is the mean number of draws, 200), so about ``1e6 * scale`` ratings. Read it with
``--data-dir OUT --format atomic`` (the generic atomic rules give the features: the user tokens
gender, age, occupation, zip; the item tokens release_year and the genres; the title is display
only).

The ratings have structure a recommender can learn, so that a run on them is a real run:
``rating = round(mu + b_user + b_item + profile x genre affinity + latent dot product + noise)``
clipped to 1..5, where ``b_user`` depends on the user's age group and gender plus an individual
part, ``b_item`` on the item's genres, release year and popularity plus an individual part, and
the affinity of a user's age group and gender to each genre is shared by every user of that group
(so the profile is informative, which is what a cold-start model uses).

Cold-start structure (controllable): ``new_item_share`` of the items are released after
``cutoff_year`` (the protocol's new items, docs/protocol.md) and can only be rated after their
release; ``late_user_share`` of the users join after the cutoff time (their ratings all come
after it). Users are generated in blocks and written as they are made, so memory stays bounded
by a block, whatever the scale; the same arguments give the same bytes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pandas as pd

ML1M_USERS, ML1M_ITEMS, ML1M_RATINGS = 6040, 3706, 1_000_209
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western")
AGES = (1, 18, 25, 35, 45, 50, 56)                      # ML-1M age codes
AGE_SHARE = (0.037, 0.183, 0.347, 0.197, 0.091, 0.082, 0.063)
N_OCCUPATIONS = 21
FIRST_YEAR, LAST_YEAR = 1919, 2000
STEM = "synth"
_DAY = 86_400
_T0 = 946_684_800   # 2000-01-01: ratings lie in [_T0, _T0 + 3 years)


@dataclass
class SynthSummary:
    """What ``write_synthetic`` wrote: counts, the files and the seconds it took."""
    users: int
    items: int
    ratings: int
    new_items: int
    late_users: int
    seconds: float
    files: Dict[str, int]


def write_synthetic(out, scale: float = 1.0, seed: int = 0, items: Optional[int] = None,
                    ratings_per_user: float = 200.0, new_item_share: float = 0.1, cutoff_year: int = 1998,
                    late_user_share: float = 0.2, block_users: int = 5_000) -> SynthSummary:
    """Write a MovieLens-shaped data set of ``round(6040 * scale)`` users to ``out`` (a folder,
    created) as ``synth.inter/.user/.item`` (RecBole atomic, tab-separated)."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0])
    n_users = max(int(round(ML1M_USERS * scale)), 1)
    n_items = int(items) if items is not None else max(int(round(ML1M_ITEMS * math.sqrt(scale))), 20)
    world = _world(rng, n_items, new_item_share, cutoff_year)
    _write_items(out / f"{STEM}.item", world)

    cutoff_t = _T0 + 2 * 365 * _DAY          # the last year of the time span is "late"
    user_file = open(out / f"{STEM}.user", "w", encoding="utf-8", newline="\n")
    inter_file = open(out / f"{STEM}.inter", "w", encoding="utf-8", newline="\n")
    n_ratings = late = 0
    try:
        user_file.write("user_id:token\tage:token\tgender:token\toccupation:token\tzip:token\n")
        inter_file.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for first in range(0, n_users, block_users):
            block = np.arange(first, min(first + block_users, n_users))
            brng = np.random.default_rng([seed, 1, first])      # a block's draws depend only on it
            users = _users(brng, block, late_user_share, cutoff_t)
            late += int(users["late"].sum())
            _write_users(user_file, users)
            n_ratings += _write_ratings(inter_file, brng, users, world, ratings_per_user, cutoff_t)
    finally:
        user_file.close()
        inter_file.close()
    files = {p.name: p.stat().st_size for p in sorted(out.glob(f"{STEM}.*"))}
    return SynthSummary(n_users, n_items, n_ratings, int(world["new"].sum()), late,
                        time.perf_counter() - started, files)


# ------------------------------------------------------------------ the world: items and group effects
def _world(rng: np.random.Generator, n_items: int, new_share: float, cutoff_year: int) -> Dict[str, np.ndarray]:
    n_new = int(round(new_share * n_items))
    old_years = np.clip(np.round(LAST_YEAR - 1 - rng.gamma(1.5, 9.0, n_items - n_new)), FIRST_YEAR, cutoff_year)
    new_years = rng.integers(cutoff_year + 1, LAST_YEAR + 1, n_new)
    year = np.concatenate([old_years, new_years]).astype(np.int64)
    order = rng.permutation(n_items)          # new items are not all at the end of the id range
    year = year[order]
    n_genres = np.minimum(1 + rng.poisson(0.7, n_items), 4)
    genre_p = rng.dirichlet(np.full(len(GENRES), 2.0))
    multi = np.zeros((n_items, len(GENRES)), dtype=bool)
    for k in range(1, 5):                      # vectorised per genre count (4 passes)
        rows = np.flatnonzero(n_genres == k)
        if len(rows):
            keys = rng.random((len(rows), len(GENRES))) ** (1.0 / genre_p)   # weighted sample without replacement
            top = np.argsort(-keys, axis=1)[:, :k]
            multi[rows[:, None], top] = True
    popularity = rng.pareto(2.0, n_items) + 0.05
    popularity[year > cutoff_year] *= 0.5     # newer items have had less time to be rated
    genre_effect = rng.normal(0.0, 0.25, len(GENRES))
    b_item = (multi @ genre_effect) / multi.sum(1) + rng.normal(0.0, 0.4, n_items) + 0.08 * np.log(popularity)
    b_item += 0.004 * (LAST_YEAR - year)      # older films that are still rated are rated higher
    groups = len(AGES) * 2
    affinity = rng.normal(0.0, 0.35, (groups, len(GENRES)))
    item_affinity = (affinity @ multi.T.astype(np.float64)) / multi.sum(1)      # [groups, n_items]
    release = np.where(year > cutoff_year, _T0 + (year - cutoff_year) * 240 * _DAY, _T0)
    return {"year": year, "genres": multi, "cum": np.cumsum(popularity) / popularity.sum(),
            "b_item": b_item.astype(np.float32), "item_affinity": item_affinity.astype(np.float32),
            "latent": rng.normal(0.0, 0.45, (n_items, 4)).astype(np.float32), "release": release,
            "new": year > cutoff_year, "titles": [f"Synthetic Film {i + 1} ({y})" for i, y in enumerate(year)]}


def _users(rng: np.random.Generator, ids: np.ndarray, late_share: float, cutoff_t: int) -> Dict[str, np.ndarray]:
    n = len(ids)
    age = rng.choice(len(AGES), n, p=np.asarray(AGE_SHARE) / sum(AGE_SHARE))
    male = rng.random(n) < 0.72
    late = rng.random(n) < late_share
    join = np.where(late, rng.integers(cutoff_t, cutoff_t + 300 * _DAY, n), rng.integers(_T0, cutoff_t - 30 * _DAY, n))
    return {"id": ids, "age": age, "male": male, "occupation": rng.integers(0, N_OCCUPATIONS, n),
            "zip": rng.integers(10, 100, n), "late": late, "join": join,
            "bias": (rng.normal(0.0, 0.35, n) + 0.05 * (age - 3) - 0.05 * male).astype(np.float32),
            "latent": rng.normal(0.0, 0.45, (n, 4)).astype(np.float32), "group": age * 2 + male}


def _write_items(path: Path, world) -> None:
    names = np.asarray(GENRES)
    lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tgenres:token_seq"]
    for i, (title, year, row) in enumerate(zip(world["titles"], world["year"], world["genres"])):
        lines.append(f"{i + 1}\t{title}\t{year}\t{' '.join(names[row])}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_users(f, u) -> None:
    rows = zip((u["id"] + 1).tolist(), np.asarray(AGES)[u["age"]].tolist(), u["male"].tolist(),
               u["occupation"].tolist(), u["zip"].tolist())
    f.write("".join(f"{i}\t{a}\t{'M' if m else 'F'}\t{o}\t{z}\n" for i, a, m, o, z in rows))


def _write_ratings(f, rng: np.random.Generator, u, world, per_user: float, cutoff_t: int) -> int:
    n = len(u["id"])
    n_items = len(world["year"])
    # ML-1M-like heavy tail: at least 20 ratings each, mean about ``per_user``
    counts = np.minimum(20 + rng.lognormal(math.log(max(per_user - 20, 1.0)) - 0.5, 1.0, n).astype(np.int64),
                        n_items // 2)
    row_user = np.repeat(np.arange(n), counts)
    item = np.searchsorted(world["cum"], rng.random(len(row_user)))
    item = np.minimum(item, n_items - 1)
    key = np.unique(row_user.astype(np.int64) * n_items + item)          # one rating per (user, item), sorted
    row_user, item = key // n_items, key % n_items
    m = len(key)
    score = (3.58 + u["bias"][row_user] + world["b_item"][item]
             + world["item_affinity"][u["group"][row_user], item]
             + (u["latent"][row_user] * world["latent"][item]).sum(1)
             + rng.normal(0.0, 0.75, m).astype(np.float32))
    rating = np.clip(np.rint(score), 1, 5).astype(np.int64)
    start = np.maximum(u["join"][row_user], world["release"][item])
    ts = start + (rng.exponential(60.0, m) * _DAY).astype(np.int64)
    pd.DataFrame({"u": u["id"][row_user] + 1, "i": item + 1, "r": rating, "t": ts}).to_csv(
        f, sep="\t", header=False, index=False, lineterminator="\n")
    return m

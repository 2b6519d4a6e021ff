"""`mamo-l2l recommend` and `mamo-l2l serve` (added to the group in mamo_l2l/cli/main.py; docs/serving.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import click
import pandas as pd

from mamo_l2l.api.load import open_recommender
from mamo_l2l.cli.options import backend_option, load_plugins, plugin_option
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import log
from mamo_l2l.serving import app as service


def parse_user(text: Optional[str]) -> Optional[Dict[str, object]]:
    """'age=25,gender=F' -> {"age": "25", "gender": "F"}; a multi-valued field takes a|b."""
    if not text:
        return None
    out: Dict[str, object] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise MamoError(f"--user: expected field=value pairs separated by commas, got {part.strip()!r}")
        key, value = (s.strip() for s in part.split("=", 1))
        if not key:
            raise MamoError(f"--user: empty field name in {part.strip()!r}")
        out[key] = tuple(v for v in value.split("|") if v) if "|" in value else value
    return out


def read_ratings_csv(path):
    """A ratings CSV: item_id,rating, or user_id,item_id,rating (a header line is required)."""
    path = Path(path)
    if not path.is_file():
        raise MamoError("ratings file not found", path=str(path))
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as e:   # empty file, bad quoting, ...
        raise MamoError(f"not a readable CSV file ({type(e).__name__}: {e})", path=str(path))
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("item_id", "rating") if c not in frame.columns]
    if missing:
        raise MamoError(f"expected a header line with columns item_id,rating or user_id,item_id,rating "
                        f"(missing: {', '.join(missing)})", path=str(path))
    bad = pd.to_numeric(frame["rating"], errors="coerce").isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise MamoError(f"rating {frame['rating'].iloc[row]!r} is not a number", path=str(path), line=row + 2)
    frame["rating"] = pd.to_numeric(frame["rating"])
    return frame


#: the line under each table: what its two numbers are
TABLE_NOTE = ("ordered by rank score (the predicted rating, plus w x the item's choice prior when the run has one; "
              "docs/algorithm.md, Ranking score); predicted rating: clipped to the rating range")


def _table(user: str, n_ratings: int, top) -> str:
    lines = [f"user {user} ({n_ratings} rating{'s' if n_ratings != 1 else ''}): top {len(top)}",
             f"{'rank':>4}  {'rank score':>10}  {'predicted rating':>16}  {'item_id':<12} title"]
    for rank, (i, t, s, r) in enumerate(zip(top["item_id"], top["title"], top["score"], top["rank_score"]), 1):
        lines.append(f"{rank:>4}  {r:>10.3f}  {s:>16.3f}  {str(i):<12} {t}")
    return "\n".join(lines)


@click.command()
@click.option("--checkpoint", type=click.Path(), required=True, help="A run's best.pt, or its folder.")
@click.option("--ratings", "ratings_path", type=click.Path(), required=True,
              help="CSV with a header: item_id,rating (one new user) or user_id,item_id,rating (several).")
@click.option("--user", "user_text", default=None,
              help="Profile fields for every user of the file, e.g. age=25,gender=F (missing fields: unknown).")
@click.option("--k", type=int, default=10, show_default=True, help="Items per user.")
@click.option("--include-rated", is_flag=True, help="Also rank the items the user rated.")
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the recommendations here.")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Only for checkpoints without an item catalogue (older runs): where the data lies.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Data cache (older checkpoints only).")
@backend_option("Backend to adapt with (docs/backends.md). [default: the run's]")
@plugin_option
def recommend(checkpoint, ratings_path, user_text, k, include_rated, json_path, data_dir, cache_dir, backend,
              plugins):
    """Top-k items for new users from their ratings (the model and its memories are not changed)."""
    frame = read_ratings_csv(ratings_path)
    user = parse_user(user_text)
    load_plugins(plugins)
    rec = open_recommender(checkpoint, data_dir=data_dir, cache_dir=cache_dir, backend=backend)
    for problem in rec.catalog.profile_problems(user):
        if problem.startswith("unknown user field"):
            raise MamoError(f"--user: {problem}")
        log.warning(f"warning: --user: {problem}")
    results = []
    if "user_id" in frame.columns:
        top = rec.recommend_batch(frame[["user_id", "item_id", "rating"]], k=k, exclude_rated=not include_rated,
                                  users={u: user for u in frame["user_id"].unique()} if user else None)
        counts = frame.groupby("user_id", sort=False).size()
        for uid, part in top.groupby("user_id", sort=False):
            results.append((str(uid), int(counts[uid]), part))
    else:
        top = rec.recommend(frame[["item_id", "rating"]], user=user, k=k, exclude_rated=not include_rated)
        results.append(("new", len(frame), top))
    for n, (uid, count, part) in enumerate(results):
        if n:
            click.echo("")
        click.echo(_table(uid, count, part))
    click.echo(TABLE_NOTE)
    if json_path:
        doc = {"k": k, "users": [{"user": uid, "items": [
            {"item_id": str(i), "title": str(t), "score": round(float(s), 6), "rank_score": round(float(r), 6)}
            for i, t, s, r in zip(part["item_id"], part["title"], part["score"], part["rank_score"])]}
            for uid, _, part in results]}
        Path(json_path).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        click.echo(f"saved {json_path}")


@click.command()
@click.option("--checkpoint", type=click.Path(), required=True, help="A run's best.pt, or its folder.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default answers this machine only.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--data-dir", type=click.Path(), default=None, help="Only for checkpoints without an item catalogue.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Data cache (older checkpoints only).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes, each with its own copy of the model and one torch thread.")
@backend_option("Backend to adapt with (docs/backends.md). [default: the run's]")
@plugin_option
def serve(checkpoint, host, port, data_dir, cache_dir, workers, backend, plugins):
    """Serve recommendations over HTTP, with a web page at / (needs the `serve` extra: fastapi, uvicorn)."""
    service.require_fastapi()                      # a clear message before the model is loaded
    load_plugins(plugins)
    rec = open_recommender(checkpoint, data_dir=data_dir, cache_dir=cache_dir, backend=backend)
    click.echo(f"serving {rec.model_name} ({len(rec.catalog)} items) on http://{host}:{port}/ "
               f"with {workers} process(es) (Ctrl+C stops)")
    if workers == 1:
        service.serve(rec, host=host, port=port)
    else:   # the model is loaded above once to fail early; each worker loads its own copy
        service.serve_workers(workers, host=host, port=port, checkpoint=str(checkpoint), data_dir=data_dir,
                              cache_dir=cache_dir, backend=backend, plugins=list(plugins or ()))


COMMANDS = (recommend, serve)

"""`mamo-l2l data ...`: inspect the protocol's counts and fetch data sets (a few lines over the library)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from mamo_l2l.core.config import load_config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.fetch import fetch_dataset
from mamo_l2l.data.prepare import prepare
from mamo_l2l.data.protocol import format_counts
from mamo_l2l.data.synth import write_synthetic


@click.group("data")
def data() -> None:
    """Data sets: fetch them, and show what the cold-start protocol makes of them."""


@data.command("info")
@click.option("--dataset", help="data set name (ml-100k, ml-1m, book-crossing, ...); default: the config's")
@click.option("--data-dir", type=click.Path(), help="folder holding the data set's files (skips fetching)")
@click.option(
    "--format", "fmt", help="force a reader instead of detecting the format: a data format name (docs/data-formats.md)"
)
@click.option("--cache-dir", type=click.Path(), help="cache folder (default ~/.cache/mamo_l2l)")
@click.option("--seed", type=int, help="seed of the user split and sampling; default: the config's train.seed")
@click.option("--config", "config_path", type=click.Path(), help="YAML config; its data section sets the protocol")
@click.option("--json", "json_path", type=click.Path(), help="also write the counts as JSON to this file")
@click.option("--quiet", is_flag=True, help="no progress messages")
def info(
    dataset: Optional[str],
    data_dir: Optional[str],
    fmt: Optional[str],
    cache_dir: Optional[str],
    seed: Optional[int],
    config_path: Optional[str],
    json_path: Optional[str],
    quiet: bool,
) -> None:
    """Print users, items and ratings per scenario and split, and the item cutoff used."""
    cfg = load_config(config_path).override("data", dataset=dataset, data_dir=data_dir, format=fmt)
    seed = cfg.train.seed if seed is None else seed
    _, splits, _ = prepare(cfg.data, seed, cache_dir=cache_dir, progress=not quiet)
    click.echo(format_counts(splits.counts))
    if json_path is not None:
        try:
            Path(json_path).write_text(json.dumps(splits.counts, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            raise MamoError(f"cannot write the counts: {e.strerror}", path=json_path)


@data.command("fetch")
@click.argument("name")
@click.option("--cache-dir", type=click.Path(), help="cache folder (default ~/.cache/mamo_l2l)")
def fetch(name: str, cache_dir: Optional[str]) -> None:
    """Download data set NAME into the cache (verifying checksums) and print its folder."""
    click.echo(str(fetch_dataset(name, cache_dir=cache_dir, progress=True)))


@data.command("synth")
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Users = 6040 x scale (MovieLens-1M = 1), about 1e6 x scale ratings.",
)
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Folder to write synth.inter/.user/.item to.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--items", type=int, default=None, help="Items. [default: 3706 x sqrt(scale)]")
@click.option(
    "--new-item-share",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the items released after --cutoff-year (new items).",
)
@click.option("--cutoff-year", type=int, default=1998, show_default=True)
@click.option(
    "--late-user-share",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of the users who join after the cutoff time.",
)
def synth(
    scale: float,
    out_dir: str,
    seed: int,
    items: Optional[int],
    new_item_share: float,
    cutoff_year: int,
    late_user_share: float,
) -> None:
    """Write a synthetic MovieLens-shaped data set in RecBole atomic format (docs/distributed.md);
    train on it with --data-dir OUT --format atomic."""
    if scale <= 0 or not 0 <= new_item_share < 1 or not 0 <= late_user_share < 1:
        raise MamoError("data synth: --scale must be > 0 and the shares in [0, 1)")
    s = write_synthetic(
        out_dir,
        scale=scale,
        seed=seed,
        items=items,
        new_item_share=new_item_share,
        cutoff_year=cutoff_year,
        late_user_share=late_user_share,
    )
    click.echo(
        f"wrote {out_dir}: {s.users:,} users, {s.items:,} items ({s.new_items:,} released after "
        f"{cutoff_year}), {s.ratings:,} ratings, {s.late_users:,} late users in {s.seconds:.1f} s; "
        f"train with --data-dir {out_dir} --format atomic"
    )

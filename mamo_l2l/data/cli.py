"""`mamo-l2l data ...`: inspect the protocol's counts and fetch data sets (a few lines over the library)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from ..config import load_config
from ..errors import MamoError
from .protocol import format_counts


@click.group("data")
def data() -> None:
    """Data sets: fetch them, and show what the cold-start protocol makes of them."""


@data.command("info")
@click.option("--dataset", help="data set name (ml-100k, ml-1m, book-crossing, ...); default: the config's")
@click.option("--data-dir", type=click.Path(), help="folder holding the data set's files (skips fetching)")
@click.option("--format", "fmt", help="force a reader instead of detecting the format: a data format name (docs/data-formats.md)")
@click.option("--cache-dir", type=click.Path(), help="cache folder (default ~/.cache/mamo_l2l)")
@click.option("--seed", type=int, help="seed of the user split and sampling; default: the config's train.seed")
@click.option("--config", "config_path", type=click.Path(), help="YAML config; its data section sets the protocol")
@click.option("--json", "json_path", type=click.Path(), help="also write the counts as JSON to this file")
@click.option("--quiet", is_flag=True, help="no progress messages")
def info(dataset: Optional[str], data_dir: Optional[str], fmt: Optional[str], cache_dir: Optional[str],
         seed: Optional[int], config_path: Optional[str], json_path: Optional[str], quiet: bool) -> None:
    """Print users, items and ratings per scenario and split, and the item cutoff used."""
    from .pipeline import prepare
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
    from .fetch import fetch_dataset
    click.echo(str(fetch_dataset(name, cache_dir=cache_dir, progress=True)))

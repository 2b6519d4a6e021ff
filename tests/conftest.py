"""Shared pytest setup. Keep each group's fixtures together under its own heading."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Dict

import pytest

# =============================================================================================
# Readers, fetching and format fixtures (tests/test_readers.py, test_fetch.py, test_bad_input.py)
# =============================================================================================
_FIXTURE_SCRIPT = Path(__file__).resolve().parent / "fixtures" / "make_fixtures.py"
NETWORK_ENV = "MAMO_L2L_NETWORK_TESTS"


def _load_fixture_script():
    """tests/fixtures/make_fixtures.py as a module (loaded by path: 'fixtures' is also the name
    of an unrelated PyPI package, so it is not imported by name)."""
    spec = importlib.util.spec_from_file_location("mamo_l2l_make_fixtures", _FIXTURE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


make_fixtures_module = _load_fixture_script()


def pytest_configure(config):
    config.addinivalue_line("markers", f"network: needs the package index; runs only with {NETWORK_ENV}=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get(NETWORK_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"network test: set {NETWORK_ENV}=1 to run it")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fixtures_module():
    """The fixture generator module (movie_world, book_world, make_fixtures, constants)."""
    return make_fixtures_module


@pytest.fixture(scope="session")
def format_dirs(tmp_path_factory) -> Dict[str, Path]:
    """{folder name: path} of the tiny data sets in every format, written once per session.
    Treat them as read-only: copy a folder before changing anything in it."""
    return make_fixtures_module.make_fixtures(tmp_path_factory.mktemp("formats"), seed=0)


@pytest.fixture(scope="session")
def ml100k_raw_dir(format_dirs) -> Path:
    return format_dirs["ml-100k-raw"]


@pytest.fixture(scope="session")
def ml1m_raw_dir(format_dirs) -> Path:
    return format_dirs["ml-1m-raw"]


@pytest.fixture(scope="session")
def ml100k_atomic_dir(format_dirs) -> Path:
    return format_dirs["ml-100k-atomic"]


@pytest.fixture(scope="session")
def ml1m_atomic_dir(format_dirs) -> Path:
    return format_dirs["ml-1m-atomic"]


@pytest.fixture(scope="session")
def atomic_dir(format_dirs) -> Path:
    return format_dirs["atomic"]


@pytest.fixture(scope="session")
def book_crossing_dir(format_dirs) -> Path:
    return format_dirs["book-crossing"]


@pytest.fixture(scope="session")
def ml100k_real_dir() -> Path:
    """The real MovieLens-100K (RecBole atomic) in ../shared/data/ml-100k; skips when absent."""
    for candidate in (Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k",
                      Path("/work/shared/data/ml-100k")):
        if (candidate / "ml-100k.inter").is_file():
            return candidate
    pytest.skip("the real MovieLens-100K copy (shared/data/ml-100k) is not present")


# =============================================================================================
# Recommending and serving (tests/test_recommend.py, test_recommend_cli.py, test_serve.py,
# test_web_page.py): one tiny MAMO run on the ML-100K-layout fixture, trained once per session
# =============================================================================================
@pytest.fixture(scope="session")
def recommend_run(tmp_path_factory, ml100k_raw_dir):
    """(run folder, cache dir, config) of a 1-epoch MAMO run on the ml-100k-raw fixture; best.pt
    holds the item catalogue. Read-only: copy best.pt before changing it."""
    import mamo_l2l as ml
    out = tmp_path_factory.mktemp("recommend-run")
    cache = tmp_path_factory.mktemp("recommend-cache")
    cfg = ml.load_config().override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    cfg = cfg.override("model", field_dim=8, embed_dim=8, hidden=16)
    cfg = cfg.override("train", epochs=1, meta_batch_size=16, local_steps=2, seed=0)
    bundle = ml.load_data(cfg, cache_dir=cache, progress=False)
    ml.fit(bundle, cfg, model_name="mamo", out_dir=out, progress=False)
    return out, cache, cfg

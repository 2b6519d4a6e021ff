"""Shared pytest setup. Keep each group's fixtures together under its own heading."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Dict

import pytest

from mamo_l2l.data.fetch import cache_root

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


#: where the real MovieLens-100K may be, in this order (docs/install.md, "Tests on real data")
ML100K_ENV = "MAMO_L2L_ML100K"


def ml100k_candidates():
    """(where, folder) to look for the real MovieLens-100K (RecBole atomic files) in: $MAMO_L2L_ML100K,
    then ../shared/data/ml-100k beside the checkout, then the project's fetch cache
    (`mamo-l2l data fetch ml-100k`: $MAMO_L2L_CACHE or ~/.cache/mamo_l2l)."""
    out = []
    if os.environ.get(ML100K_ENV):
        out.append((f"${ML100K_ENV}", Path(os.environ[ML100K_ENV]).expanduser()))
    out.append(("../shared/data/ml-100k", Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"))
    out.append(("the fetch cache", cache_root() / "ml-100k"))
    return out


def find_ml100k():
    """The first candidate folder holding ml-100k.inter, or None."""
    return next((folder for _, folder in ml100k_candidates() if (folder / "ml-100k.inter").is_file()), None)


@pytest.fixture(scope="session")
def ml100k_real_dir() -> Path:
    """The real MovieLens-100K (RecBole atomic files); skips, saying where it looked, when absent."""
    found = find_ml100k()
    if found is None:
        looked = "; ".join(f"{where} ({folder})" for where, folder in ml100k_candidates())
        pytest.skip(f"real MovieLens-100K not found (looked in {looked}): set ${ML100K_ENV} to a folder with "
                    "ml-100k.inter, or run `mamo-l2l data fetch ml-100k`")
    return found


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

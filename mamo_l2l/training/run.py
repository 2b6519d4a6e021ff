"""What a run is made of, and the machine it runs on: the data bundle and run types, loading
the data, building a fresh model with its backend, the CPU thread policy, the device check and
a portable peak-memory measure. The epoch loop is in fit.py, the run pipeline in mamo_l2l/api/pipeline.py.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from mamo_l2l.algorithms import build_model
from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.backends import backend_info, get_backend
from mamo_l2l.backends.base import Backend, InnerLoop
from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.batching import task_ratings, user_rows
from mamo_l2l.data.fetch import cache_root
from mamo_l2l.data.prepare import prepare
from mamo_l2l.data.types import EncodedDataset, Splits
from mamo_l2l.recommend.recommender import ItemRecommender
from mamo_l2l.training.factor_cache import FactorMemo


@dataclass
class DataBundle:
    """Everything the data side produces for one (data config, seed). ``derived``: what the
    evaluation computes from this data and split alone, kept for every run evaluated on the same
    bundle (compare evaluates each model of a seed on one bundle: the top-N references).
    ``cache_dir``: the cache folder the data came through (load_data), where the evaluation also
    keeps the references' figures for later processes (api/reference_cache.py); None: no disk cache."""
    data: EncodedDataset
    splits: Splits
    encoders: Any
    config: Config
    derived: Dict[str, Any] = field(default_factory=dict)
    cache_dir: Optional[Path] = None


@dataclass
class Run:
    """A trained (or loaded) model with what is needed to evaluate it."""
    model: torch.nn.Module
    algorithm: Algorithm
    backend: Backend
    config: Config
    model_name: str
    bundle: DataBundle
    best_epoch: int = 0
    history: List[Dict[str, float]] = field(default_factory=list)
    pretrain_history: List[Dict[str, float]] = field(default_factory=list)   # train.pretrain_epochs records
    timing: Dict[str, float] = field(default_factory=dict)
    out_dir: Optional[Path] = None
    ranking: Any = None           # ranking.Ranking (catalogue ranking and recommend), or None
    ranking_notes: Optional[Dict[str, Any]] = None   # how its weight was chosen (metrics.json "ranking")
    _recommender: Any = field(default=None, repr=False, compare=False)

    def recommender(self):
        """This run as an ``ItemRecommender`` (mamo_l2l/recommend/recommender.py, docs/serving.md), built once."""
        if self._recommender is None:
            self._recommender = ItemRecommender.from_run(self)
        return self._recommender

    def recommend(self, ratings=(), user=None, k: int = 10, exclude_rated: bool = True, candidates=None):
        """Top-k items for a new user who gave ``ratings`` (see ``ItemRecommender.recommend``)."""
        return self.recommender().recommend(ratings, user=user, k=k, exclude_rated=exclude_rated,
                                            candidates=candidates)

    def recommend_batch(self, frame, k: int = 10, exclude_rated: bool = True, users=None):
        """Top-k for every user of a user_id, item_id, rating frame (``ItemRecommender.recommend_batch``)."""
        return self.recommender().recommend_batch(frame, k=k, exclude_rated=exclude_rated, users=users)

    @property
    def inner(self) -> InnerLoop:
        """The local steps: ``train.local_steps``, or 0 for a model that does not adapt per user
        (it then predicts from its global parameters) or whose start is its whole adaptation
        (``takes_local_steps`` False: TaNP)."""
        t = self.config.train
        takes = getattr(self.algorithm, "adapts", True) and getattr(self.algorithm, "takes_local_steps", True)
        steps = t.local_steps if takes else 0
        return InnerLoop(steps, t.local_lr, t.first_order, t.pair_loss, t.local_clip)


def load_data(config: Config, cache_dir=None, progress: bool = False) -> DataBundle:
    """Read, encode and split the configured data set (cached; see docs/data.md)."""
    data, splits, encoders = prepare(config.data, config.train.seed, cache_dir=cache_dir, progress=progress)
    if not splits.train:
        raise MamoError(f"data set {config.data.dataset!r} gives no training tasks under this protocol "
                        f"(min_ratings={config.data.min_ratings}); check the data or the data config")
    return DataBundle(data, splits, encoders, config, cache_dir=cache_root(cache_dir))


def training_user_rows(bundle: DataBundle) -> torch.Tensor:
    """Feature rows [n, S_u] of the distinct users of the training tasks (in user index order)."""
    return user_rows(bundle.splits.train, bundle.data)


def rating_mean(splits: Splits) -> float:
    return float(task_ratings(splits.train)[1].mean())


_TORCH_DEFAULT_THREADS = torch.get_num_threads()


def threads_for(config: Config) -> int:
    """CPU intra-op threads for a run: ``train.threads``, or with 0 (auto) the backend's
    ``auto_threads`` (backends/__init__.py): one thread for the per-task backends (many small
    ops: more threads do not help them, and two processes each spinning two OpenMP threads on
    two cores slowed training ~100x, measured) and torch's default for the batched func backend
    (large batched ops, which do use the cores)."""
    if config.train.threads > 0:
        return config.train.threads
    return _TORCH_DEFAULT_THREADS if backend_info(config.train.backend).batched else 1


def build_run(bundle: DataBundle, config: Config, model_name: str, fresh: bool = True) -> Run:
    """A freshly initialised model (seeded by config.train.seed) and its backend. ``fresh``: also
    start the item bias and the taste factors from the training ratings; a caller that loads a
    checkpoint's state over the model right away passes False (the ALS start takes seconds).
    ``timing["start_seconds"]``: how long the model's start took (the ALS starts, mostly)."""
    started = time.perf_counter()
    torch.set_num_threads(threads_for(config))
    torch.manual_seed(config.train.seed)
    model, algorithm = build_model(model_name, config.model, bundle.data, rating_mean(bundle.splits))
    init_item_bias = getattr(model, "init_item_bias", None)
    if fresh and init_item_bias is not None:   # training item means, shrunk (docs/algorithm.md); no-op without a bias
        init_item_bias(*task_ratings(bundle.splits.train), bundle.data.item_x, config.model.item_bias_shrinkage)
    init_item_factors = getattr(model, "init_item_factors", None)
    memo = FactorMemo(bundle)   # the ALS fits kept per bundle and in the cache (training/factor_cache.py)
    # ALS on the training ratings (models/factors.py); no-op without factors
    if fresh and init_item_factors is not None:
        init_item_factors(bundle.splits.train, bundle.data.item_x, config.model.taste_scale, config.train.seed,
                          memo=memo)
    init_choice = getattr(model, "init_choice", None)
    if init_choice is not None:   # the catalogue always; implicit ALS only for a fresh start (models/choice.py)
        init_choice(bundle.splits.train, bundle.data.item_x, config.train.seed, factors=fresh, memo=memo)
    model.to(config.train.device)
    run = Run(model, algorithm, get_backend(config.train.backend), config, model_name, bundle)
    run.timing["start_seconds"] = time.perf_counter() - started
    if any(memo.sources.values()):   # ALS fits made now, and read (from this bundle or the cache)
        run.timing["start_factors_fitted"] = memo.sources["fitted"]
        run.timing["start_factors_kept"] = memo.sources["shared"] + memo.sources["cached"]
    return run


def check_device(device: str) -> None:
    """MamoError unless ``device`` names a device torch can use here (checked before any work)."""
    if device == "cpu":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise MamoError(f"config key train.device: {device!r} is not a device; expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MamoError(f"--device {device} was asked for, but torch sees no CUDA device here (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MamoError(f"--device {device}: torch sees only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise MamoError(f"--device {device} was asked for, but torch sees no MPS device here")
    else:
        raise MamoError(f"config key train.device: {device!r} is not supported; expected cpu, cuda or cuda:N")


def peak_memory_mib() -> Optional[float]:
    """Peak resident memory of this process so far (MiB): ``resource`` where it exists (Unix;
    ``ru_maxrss`` is KiB on Linux, bytes on macOS), else psutil's peak working set (Windows) or
    current RSS when psutil is installed, else None (unknown)."""
    try:
        import resource  # optional dependency: Unix only
    except ImportError:
        resource = None
    if resource is not None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0
    try:
        import psutil  # optional dependency
    except ImportError:
        return None
    info = psutil.Process().memory_info()
    return getattr(info, "peak_wset", info.rss) / (1024.0 * 1024.0)


def peak_device_memory_mib(device: str) -> Optional[float]:
    """Peak memory torch allocated on a CUDA ``device`` (MiB); None on other devices."""
    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated(torch.device(device)) / (1024.0 * 1024.0)

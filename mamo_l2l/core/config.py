"""Run configuration: dataclasses for data/protocol, model, inner loop, training and evaluation.

YAML in (``load_config``), validated, every key documented in docs/config.md. Unknown keys and
values of the wrong type raise MamoError naming the key.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import yaml

from mamo_l2l.core.errors import MamoError


@dataclass
class DataConfig:
    """Which data and which cold-start protocol (docs/protocol.md)."""
    dataset: str = "ml-100k"
    data_dir: Optional[str] = None          # folder with files in a supported format
    format: Optional[str] = None            # force a reader (a name in data.readers.FORMATS); None = detect
    min_count: int = 2                      # rarer feature values fold into "other"
    item_id_feature: bool = True            # item identity field for items seen in training
    protocol: str = "melu"
    item_state: str = "year"                # year | first_seen
    new_item_share: float = 0.2
    item_year_cutoff: Optional[float] = None
    existing_user_share: float = 0.8
    valid_user_share: float = 0.1
    min_ratings: int = 13
    max_ratings: int = 100
    over_max: str = "sample"                # sample | drop
    n_query: int = 10
    warm_eval: str = "heldout"              # heldout | seen
    relevant_rating: Optional[float] = None  # catalogue ranking: relevant = rating >= this; null = lo + 0.75 (hi - lo)

    def validate(self) -> None:
        _choice("data.item_state", self.item_state, ("year", "first_seen"))
        _choice("data.over_max", self.over_max, ("sample", "drop"))
        _choice("data.warm_eval", self.warm_eval, ("heldout", "seen"))
        _choice("data.protocol", self.protocol, ("melu",))
        if self.format is not None:
            _registered_choice("data.format", self.format)
        for key in ("new_item_share", "existing_user_share", "valid_user_share"):
            v = getattr(self, key)
            if not 0.0 <= v <= 1.0:
                raise MamoError(f"config key data.{key} must be in [0, 1], got {v}")
        if self.min_ratings < 1 or self.max_ratings < self.min_ratings:
            raise MamoError("config keys data.min_ratings/max_ratings need 1 <= min_ratings <= max_ratings")
        if self.relevant_rating is not None and (isinstance(self.relevant_rating, bool)
                                                 or not isinstance(self.relevant_rating, (int, float))):
            raise MamoError(f"config key data.relevant_rating must be a number or null, got {self.relevant_rating!r}")
        if not 1 <= self.n_query < self.min_ratings:
            raise MamoError("config key data.n_query must be >= 1 and < data.min_ratings "
                            "(every task needs a support set)")

    def protocol_key(self) -> Dict[str, Any]:
        """The fields that change the protocol's output (for cache keys and fingerprints)."""
        d = asdict(self)
        d.pop("data_dir")
        d.pop("relevant_rating")   # a metric setting: the processed data do not depend on it
        return d


@dataclass
class ModelConfig:
    """The recommender and MAMO's memories (docs/algorithm.md: the recommender and the memories)."""
    name: str = "mamo"
    field_dim: int = 32          # d_f
    embed_dim: int = 32          # d
    hidden: int = 64
    memory_slots: int = 3        # K
    alpha: float = 0.5           # profile memory write rate
    beta: float = 0.05           # bias memory write rate
    gamma: float = 0.1           # preference memory write rate
    tau: float = 0.01            # scale of the bias term in the personalised start
    temperature: float = 0.1     # attention softmax temperature T (docs/algorithm.md)
    memory_update: str = "competitive"  # competitive | interpolate | paper (docs/algorithm.md)
    memory_init: str = "kmeans"   # kmeans | random: how the memory keys M_P start (docs/algorithm.md)
    preference_memory: str = "written"  # written | learned: how M_UI changes (docs/algorithm.md)
    item_bias: bool = True       # a learned per-item bias b_i added to the rating (needs data.item_id_feature)
    item_bias_shrinkage: float = 10.0  # b_i starts at the training item mean shrunk by this many pseudo-ratings
    taste_dim: int = 32
    taste_scale: float = 12.0  # q_i starts at this times the ALS item factors of the training ratings
    identity_dropout: float = 0.5  # share of item identities read as UNKNOWN in each training epoch
    choice_prior: bool = True  # rank catalogues by predicted rating + w * item choice prior (w chosen on validation)
    choice_dim: int = 64       # k of the choice head (docs/algorithm.md, "The choice head"); 0: no choice head
    choice_alpha: float = 5.0  # confidence 1 + alpha of a chosen item in the choice head's fold-in and start
    choice_penalty: float = 50.0  # ridge penalty lambda of the choice head's fold-in and start
    choice_identity: str = "fixed"  # the choice head's identity vectors: trained from their start, or fixed at it
    choice_content: str = "either"  # an item's choice factors: identity + content vectors, or "either" one
    # TaNP (docs/models.md, "TaNP"): the authors' published settings
    tanp_clusters: int = 10      # K cluster centres of the task memory
    tanp_alpha: float = 1.0      # degrees of freedom of the Student-t soft assignment
    tanp_lambda: float = 1.0     # weight of the clustering loss
    tanp_z_dim: int = 32         # size of the latent variable z
    tanp_hidden: int = 32        # width of the encoders and the decoder
    tanp_film: str = "film"      # film | gated: how the task embedding modulates the decoder

    def validate(self) -> None:
        for key in ("field_dim", "embed_dim", "hidden", "memory_slots"):
            if getattr(self, key) < 1:
                raise MamoError(f"config key model.{key} must be >= 1")
        for key in ("alpha", "beta", "gamma"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise MamoError(f"config key model.{key} must be in [0, 1]")
        if self.temperature <= 0:
            raise MamoError("config key model.temperature must be > 0")
        if not 0.0 <= self.identity_dropout < 1.0:
            raise MamoError("config key model.identity_dropout must be in [0, 1)")
        if self.item_bias_shrinkage < 0:
            raise MamoError("config key model.item_bias_shrinkage must be >= 0")
        if self.taste_dim < 0 or self.taste_scale < 0:
            raise MamoError("config keys model.taste_dim and model.taste_scale must be >= 0")
        if self.choice_dim < 0 or self.choice_alpha < 0 or self.choice_penalty <= 0:
            raise MamoError("config keys model.choice_dim and model.choice_alpha must be >= 0, "
                            "model.choice_penalty > 0")
        _choice("model.choice_identity", self.choice_identity, ("trained", "fixed"))
        _choice("model.choice_content", self.choice_content, ("sum", "either"))
        _choice("model.memory_update", self.memory_update, ("competitive", "interpolate", "paper"))
        _choice("model.memory_init", self.memory_init, ("kmeans", "random"))
        _choice("model.preference_memory", self.preference_memory, ("learned", "written"))
        for key in ("tanp_clusters", "tanp_z_dim"):
            if getattr(self, key) < 1:
                raise MamoError(f"config key model.{key} must be >= 1")
        if self.tanp_hidden < 2:
            raise MamoError("config key model.tanp_hidden must be >= 2")
        if self.tanp_alpha <= 0 or self.tanp_lambda < 0:
            raise MamoError("config keys model.tanp_alpha must be > 0 and model.tanp_lambda >= 0")
        _choice("model.tanp_film", self.tanp_film, ("film", "gated"))


#: Keys added to the config after runs were first recorded, with the value that reproduces the
#: code before them (read by ``Config.from_recorded`` when a recorded config lacks the key).
ADDED_KEYS: Dict[str, Dict[str, Any]] = {
    "model": {"item_bias": False, "identity_dropout": 0.0, "choice_prior": False, "taste_dim": 0, "taste_scale": 12.0,
              "choice_dim": 0, "choice_content": "sum", "choice_identity": "trained"},
    "train": {"pair_loss": 0.0, "select_metric": "mae", "resample_queries": False, "pretrain_epochs": 0},
}

#: train.select_metric values and whether lower is better
SELECT_METRICS = {"mae": True, "rmse": True, "ndcg@3": False, "ndcg@3+masked": False}


@dataclass
class TrainConfig:
    """Inner and outer loop (docs/algorithm.md: local and global update)."""

    backend: str = "func"  # a name in backends.BACKENDS: func | l2l | higher (docs/backends.md)
    local_steps: int = 1
    local_lr: float = 0.01  # rho
    local_clip: float = 0.0  # largest L2 norm of one local step's gradient per task (docs/algorithm.md); 0 = none
    outer_lr: float = 1e-3  # lambda
    outer_optimizer: str = "adam"  # adam | sgd
    first_order: bool = False
    meta_batch_size: int = 32
    batch_size: int = 256  # ratings per step of the supervised trainer (supervised models)
    epochs: int = 30
    patience: int = 5  # epochs without validation improvement before stopping
    pair_loss: float = 0.0  # weight of a pairwise ranking term on the query set in the outer loss
    # validation metric for early stopping: mae, rmse (lower is better), ndcg@3, ndcg@3+masked (higher)
    select_metric: str = "ndcg@3+masked"
    resample_queries: bool = False  # meta-training: a fresh seeded support/query split of each training task per epoch
    pretrain_epochs: int = 0  # meta-trained models: supervised epochs on the training ratings before meta-training
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # CPU intra-op threads; 0 = auto (1 for l2l/higher, all for func)
    eval_every: int = 1
    log_dir: Optional[str] = None  # TensorBoard event files here (the tensorboard extra); history.csv always

    def validate(self) -> None:
        _registered_choice("train.backend", self.backend)
        _choice("train.outer_optimizer", self.outer_optimizer, ("adam", "sgd"))
        _choice("train.select_metric", self.select_metric, SELECT_METRICS)
        if self.local_steps < 0:
            raise MamoError("config key train.local_steps must be >= 0")
        if self.threads < 0:
            raise MamoError("config key train.threads must be >= 0 (0 = torch's default)")
        if self.meta_batch_size < 1 or self.batch_size < 1 or self.epochs < 0:
            raise MamoError(
                "config keys train.meta_batch_size >= 1, train.batch_size >= 1 and train.epochs >= 0 are required"
            )
        if self.pair_loss < 0:
            raise MamoError("config key train.pair_loss must be >= 0")
        if self.pretrain_epochs < 0:
            raise MamoError("config key train.pretrain_epochs must be >= 0")
        if self.local_lr < 0 or self.outer_lr <= 0 or self.local_clip < 0:
            raise MamoError("config keys train.local_lr >= 0, train.local_clip >= 0 and train.outer_lr > 0 "
                            "are required")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "Config":
        self.data.validate()
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]], source: str = "config") -> "Config":
        d = dict(d or {})
        out = cls()
        for sect in fields(cls):
            sub = d.pop(sect.name, None) or {}
            if not isinstance(sub, dict):
                raise MamoError(f"section '{sect.name}' must be a mapping", path=source)
            setattr(out, sect.name, _build(getattr(out, sect.name), sub, sect.name, source))
        if d:
            raise MamoError(f"unknown section(s) {sorted(d)}; expected data, model, train", path=source)
        try:
            return out.validate()
        except MamoError as e:  # name the file the bad value came from
            if e.path is None and source != "config":
                raise MamoError(e.reason, path=source) from None
            raise

    @classmethod
    def from_recorded(cls, d: Optional[Dict[str, Any]], source: str = "config") -> "Config":
        """The config recorded in a checkpoint or run folder. A key added after the record was
        written takes the value that reproduces what that code did (``ADDED_KEYS``), not today's
        default, so an older run loads and behaves as it was trained (docs/config.md)."""
        d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in dict(d or {}).items()}
        for section, keys in ADDED_KEYS.items():
            sub = d.get(section)
            if isinstance(sub, dict):
                for key, old_value in keys.items():
                    sub.setdefault(key, old_value)
        return cls.from_dict(d, source=source)

    def override(self, section: str, **kwargs: Any) -> "Config":
        """Return a copy with the non-None keyword values set in ``section`` (type- and
        range-checked as YAML values are: MamoError naming the key)."""
        if section not in ("data", "model", "train"):
            raise MamoError(f"unknown config section {section!r}; expected data, model, train")
        new = Config.from_dict(self.to_dict())
        values = {k: v for k, v in kwargs.items() if v is not None}
        setattr(new, section, _build(getattr(new, section), values, section, None))
        return new.validate()


def _build(default: Any, values: Dict[str, Any], section: str, source: str) -> Any:
    known = {f.name: f for f in fields(default)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise MamoError(f"unknown config key {section}.{key}; known keys: {', '.join(sorted(known))}", path=source)
        expected, optional = _field_type(type(default), key)
        if value is None:
            if not optional:
                raise MamoError(f"config key {section}.{key} must be {_TYPE_WORDS[expected]}, got null", path=source)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif expected is bool and not isinstance(value, bool):
            raise MamoError(f"config key {section}.{key} must be true or false, got {value!r}", path=source)
        elif isinstance(value, bool) and expected is not bool:
            raise MamoError(f"config key {section}.{key} must be {_TYPE_WORDS[expected]}, got {value!r}", path=source)
        elif not isinstance(value, expected):
            raise MamoError(
                f"config key {section}.{key} must be {_TYPE_WORDS[expected]}"
                f"{' or null' if optional else ''}, got {value!r}",
                path=source,
            )
        elif expected is float and not math.isfinite(value):
            raise MamoError(f"config key {section}.{key} must be a finite number, got {value!r}", path=source)
        kwargs[key] = value
    return dataclasses.replace(default, **kwargs)


_TYPE_WORDS = {int: "int", float: "float", str: "str", bool: "true or false"}


def _field_type(cls, key: str):
    """(type, may be null) of a config field, from the dataclass annotations (``Optional[float]``)."""
    hint = typing.get_type_hints(cls)[key]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Union and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return hint, False


#: config keys whose values name an entry of a registry in a higher layer (the backends, the data
#: formats): the registry adds itself here when it is imported (``register_choices``), so the
#: config checks the names without importing those layers (docs/architecture.md)
REGISTRIES: Dict[str, Mapping[str, Any]] = {}


def register_choices(key: str, registry: Mapping[str, Any]) -> None:
    """Check the config key ``key`` against the names in ``registry`` (a dict that may grow)."""
    REGISTRIES[key] = registry


def _registered_choice(key: str, value: Any) -> None:
    registry = REGISTRIES.get(key)
    if registry is not None:
        _choice(key, value, registry)


def _choice(key: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise MamoError(f"config key {key} must be one of {', '.join(map(str, allowed))}, got {value!r}")


PACKAGED_DIR = Path(__file__).resolve().parent.parent / "configs"


def packaged_configs() -> Dict[str, Path]:
    """{name: path} of the configs shipped in mamo_l2l/configs (e.g. default, melu-paper, melu-5)."""
    return {p.stem: p for p in sorted(PACKAGED_DIR.glob("*.yaml"))}


def preset_values(name: str) -> Dict[str, Dict[str, Any]]:
    """The keys a packaged config sets, as written ({section: {key: value}}; partial)."""
    path = packaged_configs()[name]
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {section: dict(values or {}) for section, values in data.items()}


def resolve_config_path(path: Union[str, Path]) -> Path:
    """A config path, or the packaged config named by ``path``: a value with no path separator
    and no .yaml/.yml suffix that names a file in mamo_l2l/configs (``--config melu-paper``)."""
    text = str(path)
    if not any(sep in text for sep in ("/", "\\")) and not text.endswith((".yaml", ".yml")):
        packaged = packaged_configs()
        if text in packaged:
            return packaged[text]
    return Path(path)


def load_config(path: Optional[Union[str, Path]] = None, recorded: bool = False) -> Config:
    """Read a YAML config (missing keys keep their defaults); None gives the defaults.

    ``path`` may also name a packaged config (``"melu-paper"``, ``"melu-5"``, ``"default"``).
    ``recorded``: the file is a run's own config.yaml, read with ``Config.from_recorded``."""
    if path is None:
        return Config().validate()
    p = resolve_config_path(path)
    if not p.is_file():
        names = ", ".join(packaged_configs())
        raise MamoError(
            f"config file not found (a packaged config is named without a path or suffix: {names})", path=str(p)
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise MamoError(f"not valid YAML: {e}", path=str(p), line=None if line is None else line + 1)
    if data is not None and not isinstance(data, dict):
        raise MamoError("a config file must hold a mapping with sections data/model/train", path=str(p))
    return (Config.from_recorded if recorded else Config.from_dict)(data, source=str(p))

"""Settings: the one home of every default, and the typed settings built from a config.

The defaults are the ``default:`` values of ``workflow/schemas/config.schema.yaml`` (the
workflow's ``config.yaml`` repeats them for users to read and edit; a test keeps the two
equal). The workflow and the ``bt3d`` command build the same dataclasses from a config dict:
the workflow from its validated ``config``, the command from :func:`load_config` (the
defaults, then ``--config FILE``, then its flags), so identical settings give identical
artifacts.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

from bt3d.errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


@cache
def schema() -> dict[str, Any]:
    """The workflow's config schema (JSON Schema as YAML)."""
    import yaml

    if not SCHEMA.is_file():
        raise ConfigError(f"{SCHEMA}: config schema not found; bt3d runs from its repository")
    with open(SCHEMA, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _defaults(node: Mapping[str, Any]) -> Any:
    if "properties" in node:
        return {key: _defaults(child) for key, child in node["properties"].items()}
    return copy.deepcopy(node.get("default"))


def default_config() -> dict[str, Any]:
    """The complete default config: every key of the schema with its ``default:``."""
    return _defaults(schema())


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, mapping by mapping (as Snakemake's
    ``--configfile`` updates ``config.yaml``)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate(config: Mapping[str, Any], source: str) -> None:
    """ConfigError naming ``source`` and the first offending key unless ``config`` fits the
    schema."""
    import jsonschema

    errors = sorted(
        jsonschema.Draft202012Validator(schema()).iter_errors(config),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        key = ".".join(str(p) for p in errors[0].absolute_path) or "<top level>"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {key}: {errors[0].message}{more}")


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The defaults, updated by the YAML file ``path`` (the workflow's config format), then
    by ``overrides`` (nested like the config); validated against the schema."""
    import yaml

    config = default_config()
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            with open(path, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: YAML syntax error: {' '.join(str(exc).split())}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: a config file must be a mapping of keys, not a list")
        config = merge(config, loaded)
    if overrides:
        config = merge(config, overrides)
        source += " + command-line options"
    validate(config, source)
    return config


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """The value of the dotted config key ``key`` (``"render.n_azimuth"``); KeyError if absent."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping):
            raise KeyError(key)
        node = node[part]
    return node


def config_with(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with the value of each dotted key of ``values`` set."""
    override: dict[str, Any] = {}
    for key, value in values.items():
        *sections, name = key.split(".")
        node = override
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return merge(config, override)


def from_key(key: str, default: Any = MISSING) -> Any:
    """A settings field read from the dotted config key ``key`` instead of ``<section>.<name>``
    (with ``default``, a field that also has a default value, as ``bt3d detect``'s options)."""
    return field(default=default, metadata={"config": key})


class _Settings:
    """Shared constructors of the settings dataclasses: a field is read from the config key
    ``<section>.<field name>`` (``section`` is a class attribute) or the key its
    :func:`from_key` names; a field whose type is itself settings is built from a mapping."""

    section = ""

    @classmethod
    def config_keys(cls) -> dict[str, str]:
        """Field name -> the dotted config key it is read from."""
        return {f.name: f.metadata.get("config", f"{cls.section}.{f.name}") for f in fields(cls)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        """From a whole config (every key required, no fallback)."""
        values = {}
        for name, key in cls.config_keys().items():
            with contextlib.suppress(KeyError):
                values[name] = config_value(config, key)
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        """From :meth:`to_dict`'s layout, e.g. a config section (every key required)."""
        names = [f.name for f in fields(cls)]
        lacking = [n for n in names if n not in values]
        if lacking:
            raise ConfigError(f"{cls.__name__}: settings lack {lacking}")
        types = get_type_hints(cls)
        return cls(**{n: _settings_value(types[n], values[n]) for n in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _settings_value(kind: Any, value: Any) -> Any:
    """``value`` as a field of type ``kind``: settings from their mapping, others unchanged."""
    if isinstance(kind, type) and issubclass(kind, _Settings):
        return kind.from_dict(value)
    return value


@dataclass(frozen=True)
class RenderSettings(_Settings):
    """The view sphere and the renderer (config ``render``)."""

    section = "render"
    n_azimuth: int
    n_polar: int
    image_size: int
    distance: float
    fov: float
    backend: str
    textured: bool


@dataclass(frozen=True)
class BackboneSettings(_Settings):
    """The 2D backbone and how it runs (config ``backbone``)."""

    section = "backbone"
    name: str
    checkpoint: str | None
    layer: str | None
    batch_size: int
    precision: str
    tokens: str
    token_margin: int
    background_stride: int


@dataclass(frozen=True)
class FeatureSettings(_Settings):
    """Everything that changes a shape's back-projected features (:meth:`to_dict` nests the
    render and backbone settings; the workflow's ``features`` params)."""

    section = "features"
    render: RenderSettings = from_key("render")
    backbone: BackboneSettings = from_key("backbone")
    sampling: str
    sigma: float
    normalise: bool = from_key("dataset.normalise")
    visibility_layers: int


@dataclass(frozen=True)
class GeodesicSettings(_Settings):
    """The point cloud's kNN graph, its frame and the files' consistency check."""

    section = "features"
    knn: int
    unreachable: str
    normalise: bool = from_key("dataset.normalise")
    surface_tolerance: float = from_key("dataset.surface_tolerance")


@dataclass(frozen=True)
class PrototypeSettings(_Settings):
    """How the few-shot model is built from the labelled shapes."""

    section = "features"
    reduction: str = from_key("optimiser.prototype_reduction")  # mean | sum (the reference)
    labelled: str  # features.labelled: points | annotated_xyz (the reference)
    sigma: float  # features.sigma, the smoothing among keypoints of annotated_xyz


@dataclass(frozen=True)
class OptimiserSettings(_Settings):
    """The few-shot model and the keypoint optimiser (config ``optimiser``)."""

    section = "optimiser"
    mode: str
    steps: int | None
    lr: float
    alpha: float
    beta: float
    seed: int
    prototype_reduction: str

    def optimise_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`bt3d.optimize.optimise_keypoints` (besides device)."""
        return {
            "mode": self.mode,
            "steps": self.steps,
            "lr": self.lr,
            "alpha": self.alpha,
            "beta": self.beta,
            "seed": self.seed,
        }

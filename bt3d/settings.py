"""Settings: the one home of every default, and the typed settings built from a config.

The defaults are the ``default:`` values of ``workflow/schemas/config.schema.yaml`` (the
workflow's ``config.yaml`` repeats them for users to read and edit; a test keeps the two
equal). The workflow and the ``bt3d`` command build the same dataclasses from a config dict:
the workflow from its validated ``config``, the command from :func:`load_config` (the
defaults, then ``--config FILE``, then its flags), so identical settings give identical
artifacts.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

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


class _Settings:
    """Shared constructors of the settings dataclasses."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        """From the config section of these settings (every key required, no fallback)."""
        names = [f.name for f in fields(cls)]
        lacking = [n for n in names if n not in values]
        if lacking:
            raise ConfigError(f"{cls.__name__}: settings lack {lacking}")
        return cls(**{n: values[n] for n in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RenderSettings(_Settings):
    """The view sphere and the renderer (config ``render``)."""

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

    name: str
    checkpoint: str | None
    layer: str | None
    batch_size: int
    precision: str
    tokens: str
    token_margin: int
    background_stride: int


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that changes a shape's back-projected features."""

    render: RenderSettings
    backbone: BackboneSettings
    sampling: str
    sigma: float
    normalise: bool
    visibility_layers: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeatureSettings:
        return cls.from_dict(
            {
                "render": config["render"],
                "backbone": config["backbone"],
                "sampling": config["features"]["sampling"],
                "sigma": config["features"]["sigma"],
                "normalise": config["dataset"]["normalise"],
                "visibility_layers": config["features"]["visibility_layers"],
            }
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FeatureSettings:
        """From :meth:`to_dict`'s layout (the workflow's ``features`` params)."""
        return cls(
            render=RenderSettings.from_dict(values["render"]),
            backbone=BackboneSettings.from_dict(values["backbone"]),
            sampling=values["sampling"],
            sigma=values["sigma"],
            normalise=values["normalise"],
            visibility_layers=values["visibility_layers"],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GeodesicSettings(_Settings):
    """The point cloud's kNN graph, its frame and the files' consistency check."""

    knn: int
    unreachable: str
    normalise: bool
    surface_tolerance: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GeodesicSettings:
        return cls(
            knn=config["features"]["knn"],
            unreachable=config["features"]["unreachable"],
            normalise=config["dataset"]["normalise"],
            surface_tolerance=config["dataset"]["surface_tolerance"],
        )


@dataclass(frozen=True)
class PrototypeSettings(_Settings):
    """How the few-shot model is built from the labelled shapes."""

    reduction: str  # optimiser.prototype_reduction: mean | sum (the reference)
    labelled: str  # features.labelled: points | annotated_xyz (the reference)
    sigma: float  # features.sigma, the smoothing among keypoints of annotated_xyz

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PrototypeSettings:
        return cls(
            reduction=config["optimiser"]["prototype_reduction"],
            labelled=config["features"]["labelled"],
            sigma=config["features"]["sigma"],
        )


@dataclass(frozen=True)
class OptimiserSettings(_Settings):
    """The few-shot model and the keypoint optimiser (config ``optimiser``)."""

    mode: str
    steps: int | None
    lr: float
    alpha: float
    beta: float
    seed: int
    prototype_reduction: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OptimiserSettings:
        return cls.from_dict(config["optimiser"])

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

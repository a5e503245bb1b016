"""The variants of a run and which artifacts they share.

A config's ``variants`` list names methods to compare in one run, each a partial config
(``render``, ``backbone``, ``features``, ``optimiser`` keys) over the config; without it the
run has one variant, ``bt3d``. Every artifact kind is produced by a set of settings
(:func:`provenance`); two variants with equal settings for a kind share its artifacts, which
live under the name of the first such variant (:func:`stage_keys`), so e.g. two optimiser
settings over one backbone compute the features once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bt3d.errors import ConfigError
from bt3d.settings import (
    FeatureSettings,
    GeodesicSettings,
    OptimiserSettings,
    PrototypeSettings,
    merge,
    validate,
)

DEFAULT_VARIANT = "bt3d"
# The artifact kinds in the order each is computed from the one before.
KINDS = ("geodesics", "features", "prototypes", "predictions")


@dataclass(frozen=True)
class Variant:
    """One method of a run: its ``name`` and its whole (merged, validated) ``config``."""

    name: str
    config: Mapping[str, Any]


def variants_of(config: Mapping[str, Any]) -> list[Variant]:
    """The run's variants: ``config["variants"]`` merged over ``config``, or one named ``bt3d``.

    Raises:
        ConfigError: a repeated name, a merged config the schema refuses (naming the variant
            and the key), or a variant that changes the geodesics (variants are compared on
            the same shapes and distances).
    """
    listed = config["variants"]
    if not listed:
        return [Variant(DEFAULT_VARIANT, config)]
    names = [v["name"] for v in listed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"variants: the names {repeated} are given more than once")
    variants = []
    for i, entry in enumerate(listed):
        merged = merge(config, entry["config"])
        validate(merged, f"variants[{i}] ({entry['name']}).config merged over the config")
        if provenance(merged, "geodesics") != provenance(config, "geodesics"):
            raise ConfigError(
                f"variants[{i}] ({entry['name']}).config changes the geodesics "
                "(features.knn / features.unreachable); variants are compared on the same "
                "distances, so set those keys for the whole run instead"
            )
        variants.append(Variant(entry["name"], merged))
    return variants


def selection_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Which shapes of a category are used and how they are split into shards."""
    dataset = config["dataset"]
    return {
        "shots": dataset["shots"],
        "shot_sets": dataset["shot_sets"],
        "offset": dataset["offset"],
        "max_test_shapes": dataset["max_test_shapes"],
        "missing_shapes": dataset["missing_shapes"],
        "shards": config["shards"],
    }


def provenance(config: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The settings that produce an artifact ``kind`` (its header's config hash is their hash).

    geodesics < features < prototypes < predictions: each kind adds its own settings to
    those of the artifacts it is computed from.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}")
    params: dict[str, Any] = {
        "selection": selection_params(config),
        "geodesic": GeodesicSettings.from_config(config).to_dict(),
    }
    if kind == "geodesics":
        return params
    params["features"] = FeatureSettings.from_config(config).to_dict()
    if kind == "features":
        return params
    prototypes = PrototypeSettings.from_config(config)
    params["reduction"] = prototypes.reduction
    params["labelled"] = prototypes.labelled
    if kind == "prototypes":
        return params
    params["optimiser"] = OptimiserSettings.from_config(config).to_dict()
    return params


def stage_keys(variants: Sequence[Variant]) -> dict[str, dict[str, str]]:
    """variant name -> artifact kind -> the folder name its artifacts of that kind live in:
    the first variant whose settings for the kind are the same."""
    keys: dict[str, dict[str, str]] = {}
    for variant in variants:
        keys[variant.name] = {}
        for kind in KINDS:
            own = provenance(variant.config, kind)
            keys[variant.name][kind] = next(
                v.name for v in variants if provenance(v.config, kind) == own
            )
    return keys

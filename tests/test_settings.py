"""The settings layer: one home for defaults (the schema), configs loaded like the workflow's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bt3d.errors import ConfigError
from bt3d.settings import (
    FeatureSettings,
    GeodesicSettings,
    OptimiserSettings,
    config_value,
    config_with,
    default_config,
    load_config,
    merge,
)

REPO = Path(__file__).resolve().parents[1]


def test_config_yaml_repeats_exactly_the_schema_defaults() -> None:
    # config.yaml is the readable copy of the defaults; the schema is their home
    assert yaml.safe_load((REPO / "config.yaml").read_text()) == default_config()


def test_every_leaf_of_the_schema_has_a_default() -> None:
    def leaves(node: dict, path: str = "") -> list[str]:
        if "properties" in node:
            return [p for k, v in node["properties"].items() for p in leaves(v, f"{path}.{k}")]
        return [] if "default" in node else [path]

    from bt3d.settings import schema

    assert leaves(schema()) == []


def test_load_config_merges_a_file_then_overrides(tmp_path: Path) -> None:
    cfg = load_config(REPO / "config" / "test.yaml", {"render": {"n_polar": 3}})
    assert cfg["backbone"]["name"] == "classical" and cfg["backbone"]["layer"] is None
    assert cfg["render"]["n_azimuth"] == 4 and cfg["render"]["n_polar"] == 3
    assert cfg["render"]["fov"] == default_config()["render"]["fov"]  # untouched default
    settings = FeatureSettings.from_config(cfg)
    assert settings.render.n_polar == 3 and settings.backbone.batch_size == 4
    assert settings.render.backend == "embree" and settings.normalise is True
    assert GeodesicSettings.from_config(cfg).knn == 20
    assert OptimiserSettings.from_config(cfg).optimise_options()["steps"] == 50


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("render:\n  n_azimut: 4\n", "render: Additional properties are not allowed"),
        ("render:\n  n_azimuth: -1\n", "render.n_azimuth: -1 is less than the minimum of 1"),
        ("- a\n- b\n", "must be a mapping"),
        ("render: [\n", "YAML syntax error"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.yaml: config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_merge_updates_mappings_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}
    assert base["a"]["c"] == [1, 2]  # the base is not changed


def test_settings_refuse_a_section_lacking_a_key() -> None:
    cfg = default_config()
    del cfg["optimiser"]["lr"]
    with pytest.raises(ConfigError, match=r"OptimiserSettings: settings lack \['lr'\]"):
        OptimiserSettings.from_config(cfg)


def test_settings_read_each_field_from_its_config_key() -> None:
    assert GeodesicSettings.config_keys() == {
        "knn": "features.knn",
        "unreachable": "features.unreachable",
        "normalise": "dataset.normalise",
        "surface_tolerance": "dataset.surface_tolerance",
    }
    cfg = config_with(default_config(), {"dataset.normalise": False, "render.n_polar": 2})
    assert config_value(cfg, "render.n_polar") == 2 and default_config()["render"]["n_polar"] != 2
    features = FeatureSettings.from_config(cfg)
    assert features.normalise is False and features.render.n_polar == 2
    assert FeatureSettings.from_dict(features.to_dict()) == features  # the workflow's params
    del cfg["render"]["fov"]
    with pytest.raises(ConfigError, match=r"RenderSettings: settings lack \['fov'\]"):
        FeatureSettings.from_config(cfg)

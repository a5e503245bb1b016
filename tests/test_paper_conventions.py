"""The authors' conventions as options (issue 13): each one switched alone changes exactly
what it should, on the real chair and the embedded dataset; config/paper.yaml selects them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from bt3d.backbones import get_backbone
from bt3d.backproject import reference_geodesic_smooth_loop
from bt3d.errors import ConfigError, DataError
from bt3d.fewshot import build_prototypes, keypoint_only_features, labelled_shape
from bt3d.io import KeypointNetDataset
from bt3d.metrics import iou_counts, iou_curve, iou_from_counts, paired_bootstrap_iou
from bt3d.pipeline import backproject_views, extract_shape_features, shape_geodesic
from bt3d.settings import FeatureSettings, GeodesicSettings, load_config

REPO = Path(__file__).resolve().parents[1]
CHAIR = "88382b877be91b2a572f8e1c1caad99e"
# 4 x 1 + 2 poles = 6 views, float32, shapes as stored
CONFIG = load_config(
    overrides={
        "render": {"n_azimuth": 4, "n_polar": 1, "image_size": 112},
        "backbone": {"name": "classical", "layer": None, "precision": "float32"},
        "dataset": {"normalise": False},
    }
)
FEW_VIEWS = FeatureSettings.from_config(CONFIG)
GEODESIC = GeodesicSettings.from_config(CONFIG)


def layers(k) -> FeatureSettings:
    """FEW_VIEWS with ``k`` faces per pixel counted as seen."""
    return replace(FEW_VIEWS, visibility_layers=k)


def geodesics(mesh, points) -> tuple[np.ndarray, np.ndarray]:
    """Raw and normalised geodesics of a shape, as the stages use them."""
    raw = shape_geodesic(mesh, points, GEODESIC, "shape")
    return raw, raw / raw.max()


@pytest.fixture(scope="module")
def classical():
    return get_backbone("classical", "cpu")


@pytest.fixture(scope="module")
def real_chair(shared_data: Path):
    dataset = KeypointNetDataset(shared_data / "keypointnet-sample")
    return (
        dataset.load_mesh("chair", CHAIR),
        dataset.load_points("chair", CHAIR),
        dataset.annotations("chair")[CHAIR],
    )


@pytest.fixture(scope="module")
def chair_by_layers(real_chair, classical):
    """(unsmoothed, counts) of the real chair with 1 and with 5 faces per pixel seen."""
    mesh, points, _ = real_chair
    return {k: backproject_views(mesh, points, classical, layers(k)) for k in (1, 5)}


def test_five_visibility_layers_see_more_and_change_only_those_points(chair_by_layers) -> None:
    (f1, c1), (f5, c5) = chair_by_layers[1], chair_by_layers[5]
    # the 5 layers' faces include the drawn one, so each view sees a superset of points
    assert (c5 >= c1).all()
    assert c5.sum() > 1.3 * c1.sum()  # occluded points count: many more (view, point) pairs
    same = c5 == c1  # superset of equal size = the same views
    assert 0 < same.sum() < len(same)
    np.testing.assert_array_equal(f5[same], f1[same])
    changed = ~same & (c1 > 0)
    assert (np.abs(f5[changed] - f1[changed]).max(axis=1) > 0).all()


def test_visibility_layers_are_refused_in_one_line_naming_the_setting(real_chair, classical):
    mesh, points, _ = real_chair
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match=r"features\.visibility_layers .*got"):
            extract_shape_features(mesh, points, classical, layers(bad), np.zeros((2048, 2048)))


def test_features_at_the_annotated_xyz_are_those_at_point_index(real_chair, classical):
    """The authors back-project at the annotated xyz: on KeypointNet that is the point at
    point_index, so the view averages there are the same numbers."""
    mesh, points, annotation = real_chair
    assert np.abs(annotation.xyz - points[annotation.point_indices]).max() < 1e-6
    at_xyz = backproject_views(mesh, annotation.xyz, classical, layers(5))
    at_points = backproject_views(mesh, points, classical, layers(5))
    np.testing.assert_array_equal(at_xyz[1], at_points[1][annotation.point_indices])
    np.testing.assert_allclose(at_xyz[0], at_points[0][annotation.point_indices], atol=1e-6)


def test_keypoint_only_smoothing_matches_the_reference_loop_on_the_keypoints(
    real_chair, chair_by_layers
) -> None:
    mesh, points, annotation = real_chair
    unsmoothed, counts = chair_by_layers[5]
    _, geodesic = geodesics(mesh, points)
    idx = annotation.point_indices
    ours = keypoint_only_features(unsmoothed, counts, geodesic, idx, sigma=0.01)
    sub = np.ix_(idx, idx)
    loop = reference_geodesic_smooth_loop(unsmoothed[idx], counts[idx], geodesic[sub], 0.01)
    np.testing.assert_allclose(ours, np.asarray(loop), rtol=1e-5, atol=1e-6)
    # "effectively unsmoothed": the chair's keypoints are too far apart for sigma 0.01
    np.testing.assert_allclose(ours, unsmoothed[idx], atol=1e-5)


@pytest.fixture(scope="module")
def embedded_shots(tiny_dataset: Path, classical):
    """The embedded chair's 3 labelled shapes: (features, geodesic, annotation) each."""
    dataset = KeypointNetDataset(tiny_dataset)
    annotations = dataset.annotations("chair")
    shots = [m for c, m in dataset.sample_order() if c == "03001627"][:3]
    out = []
    for m in shots:
        points, mesh = dataset.load_points("chair", m), dataset.load_mesh("chair", m)
        raw, _ = geodesics(mesh, points)
        shape = extract_shape_features(mesh, points, classical, FEW_VIEWS, raw)
        out.append((shape, annotations[m]))
    return out


def _prototypes(shots, labelled: str, reduction: str = "mean"):
    return build_prototypes(
        [
            labelled_shape(
                s.features, s.geodesic_normalised, a.semantic_ids, a.point_indices, a.model_id,
                labelled=labelled, unsmoothed=s.unsmoothed, counts=s.counts, sigma=0.01,
            )
            for s, a in shots
        ],
        reduction=reduction,
    )  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_annotated_xyz_changes_only_the_prototype_features(embedded_shots, reduction) -> None:
    points = _prototypes(embedded_shots, "points", reduction)
    xyz = _prototypes(embedded_shots, "annotated_xyz", reduction)
    np.testing.assert_array_equal(xyz.semantic_ids, points.semantic_ids)
    np.testing.assert_array_equal(xyz.pair_counts, points.pair_counts)
    np.testing.assert_allclose(xyz.target_distances, points.target_distances, rtol=1e-12)
    assert xyz.shot_ids == points.shot_ids
    # every prototype moves: smoothed over the surface vs (nearly) unsmoothed
    assert (np.abs(xyz.features - points.features).max(axis=1) > 1e-3).all()
    # and the unsmoothed one is the mean of the view averages at the keypoints
    first_id = points.semantic_ids[0]
    rows = [s.unsmoothed[a.point_indices[a.semantic_ids == first_id]].mean(axis=0)
            for s, a in embedded_shots if (a.semantic_ids == first_id).any()]  # fmt: skip
    np.testing.assert_allclose(xyz.features[0], np.mean(rows, axis=0), atol=1e-4)


def test_annotated_xyz_without_unsmoothed_features_is_refused(embedded_shots) -> None:
    shape, a = embedded_shots[0]
    with pytest.raises(DataError, match=f"{a.model_id}.*annotated_xyz needs"):
        labelled_shape(shape.features, shape.geodesic_normalised, a.semantic_ids,
                       a.point_indices, a.model_id, labelled="annotated_xyz")  # fmt: skip
    with pytest.raises(ConfigError, match="features.labelled: 'xyz' unknown"):
        labelled_shape(shape.features, shape.geodesic_normalised, a.semantic_ids,
                       a.point_indices, a.model_id, labelled="xyz")  # fmt: skip


def test_paper_config_selects_the_authors_conventions_and_validates() -> None:
    from snakemake.utils import validate

    default = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert default["features"]["visibility_layers"] == 1
    assert default["features"]["labelled"] == "points"
    assert paper["features"]["visibility_layers"] == 5
    assert paper["features"]["labelled"] == "annotated_xyz"
    assert paper["optimiser"]["prototype_reduction"] == "sum"
    assert (paper["optimiser"]["mode"], paper["optimiser"]["steps"]) == ("reference", 5000)
    merged = {**default, **{k: {**default.get(k, {}), **v} if isinstance(v, dict) else v
                            for k, v in paper.items()}}  # fmt: skip
    validate(merged, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    # a config without the new keys gets the defaults of config.yaml from the schema
    for key in ("visibility_layers", "labelled"):
        del default["features"][key]
    validate(default, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert default["features"]["visibility_layers"] == 1
    assert default["features"]["labelled"] == "points"


def test_iou_counts_pool_to_iou_curve(embedded_shots) -> None:
    rng = np.random.default_rng(0)
    geos = [s.geodesic for s, _ in embedded_shots]
    gt = [a.point_indices for _, a in embedded_shots]
    pred = [rng.choice(len(g), size=len(t), replace=False) for g, t in zip(geos, gt, strict=True)]
    counts = iou_counts(pred, gt, geos)
    assert counts.shape == (3, 3, 11)
    np.testing.assert_array_equal(iou_from_counts(counts), iou_curve(pred, gt, geos))


def test_paired_bootstrap_is_zero_for_equal_arms_and_brackets_a_real_gain() -> None:
    rng = np.random.default_rng(1)
    npos = rng.integers(8, 12, size=(20, 1, 1)).repeat(2, axis=2)
    worse = np.concatenate([npos, npos // 2, npos // 2], axis=1)  # (20, 3, 2)
    better = np.concatenate([npos, npos // 4, npos // 4], axis=1)
    groups = np.repeat([0, 1], 10)
    delta, low, high = paired_bootstrap_iou(worse, worse, groups, resamples=200)
    np.testing.assert_array_equal([delta, low, high], 0.0)
    delta, low, high = paired_bootstrap_iou(worse, better, groups, resamples=200)
    assert (low > 0).all() and (low <= delta).all() and (delta <= high).all()
    with pytest.raises(DataError, match="paired counts"):
        paired_bootstrap_iou(worse, better[:5])


def test_cli_visibility_layers_flag(shared_data: Path, tmp_path: Path, capsys) -> None:
    from bt3d.cli import main
    from bt3d.pipeline import load_shape_features

    sample = shared_data / "keypointnet-sample"
    files = [str(sample / "ShapeNetCore.v2.ply/03001627" / f"{CHAIR}.ply"),
             str(sample / "pcds/03001627" / f"{CHAIR}.pcd")]  # fmt: skip
    fast = ["--backbone", "classical", "--layer", "none", "--device", "cpu", "--n-azimuth", "4",
            "--n-polar", "1", "--image-size", "112"]  # fmt: skip
    counts = {}
    for k in (1, 5):
        out = tmp_path / f"vis{k}.npz"
        assert main(["features", *files, "-o", str(out), *fast, "--visibility-layers", str(k)]) == 0
        shape, header = load_shape_features(out)
        counts[k] = shape.counts
    assert (counts[5] >= counts[1]).all() and counts[5].sum() > counts[1].sum()
    capsys.readouterr()
    bad = tmp_path / "bad.npz"
    assert main(["features", *files, "-o", str(bad), *fast, "--visibility-layers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "features.visibility_layers" in err[0]
    assert not bad.exists()


def test_part_features_passes_visibility_layers_and_keeps_unsmoothed_for_shots(
    tiny_dataset: Path, classical, tmp_path: Path
) -> None:
    """The workflow stage: visibility_layers reaches the pipeline; the labelled shapes'
    artifact (part ``shots``) holds the unsmoothed features that annotated_xyz needs."""
    from bt3d.cache import encode_geodesic, load_arrays, save_arrays
    from bt3d.results import Provenance
    from bt3d.stages import part_features

    dataset = KeypointNetDataset(tiny_dataset)
    model_ids = [m for c, m in dataset.sample_order() if c == "03001627"][:2]
    files = [str(p) for m in model_ids
             for p in (dataset.pcd_path("chair", m), dataset.mesh_path("chair", m))]  # fmt: skip
    stored = [
        encode_geodesic(
            geodesics(dataset.load_mesh("chair", m), dataset.load_points("chair", m))[0]
        )
        for m in model_ids
    ]
    arrays = {}
    for k, part in ((1, "shots"), (5, "shots"), (1, "shard-0")):
        settings = layers(k)
        provenance = Provenance("chair", {"geodesics": {}, "features": settings.to_dict()})
        geo = tmp_path / f"geo-{k}-{part}.npz"
        save_arrays(
            geo,
            {
                "geodesic": np.stack([g for g, _ in stored]),
                "scale": np.array([s for _, s in stored]),
                "model_ids": np.array(model_ids),
                "labelled": np.array([part == "shots"] * 2),
            },
            provenance.header("geodesics", part=part, skipped_shapes=0, sample_order="csv"),
        )
        out = tmp_path / f"{k}-{part}.npz"
        part_features(str(geo), files, settings, "cpu", 1, str(out), provenance, part)
        arrays[(k, part)], header = load_arrays(out)
        assert header["visibility_layers"] == k
    one, five, test = arrays[(1, "shots")], arrays[(5, "shots")], arrays[(1, "shard-0")]
    assert (five["counts"] >= one["counts"]).all()
    assert five["counts"].sum() > one["counts"].sum()
    assert "unsmoothed" in one and "unsmoothed" not in test
    np.testing.assert_array_equal(test["features"], one["features"])
    assert one["unsmoothed"].shape == one["features"].shape

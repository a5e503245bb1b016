"""Reading and writing the KeypointNet layout, one module per kind of file:

- :mod:`bt3d.io.pcd`: PCD point clouds; :mod:`bt3d.io.ply`: PLY meshes;
- :mod:`bt3d.io.keypointnet`: category ids, annotation files, the sample order, keypoint
  labels and the dataset folder (:class:`KeypointNetDataset`);
- :mod:`bt3d.io.text`: the strict text/JSON/number-table parsing they share.

Every malformed input raises :class:`bt3d.errors.DataError` naming the file (and the line or
record) and the problem. The names below are the public ones; the few-shot split lives in
:mod:`bt3d.selection`.
"""

from bt3d.io.keypointnet import (
    CATEGORY_IDS,
    OWNER_MARKER,
    KeypointNetDataset,
    annotations_by_model,
    category_of,
    claim_dataset_folder,
    class_id_of,
    dataset_owner,
    load_mesh,
    load_points,
    read_annotations,
    read_keypoint_labels,
    read_sample_order,
    validate_annotation,
    write_annotations,
    write_sample_order,
)
from bt3d.io.pcd import read_pcd, write_pcd
from bt3d.io.ply import check_surface, read_ply, write_ply

__all__ = [
    "CATEGORY_IDS",
    "OWNER_MARKER",
    "KeypointNetDataset",
    "annotations_by_model",
    "category_of",
    "check_surface",
    "claim_dataset_folder",
    "class_id_of",
    "dataset_owner",
    "load_mesh",
    "load_points",
    "read_annotations",
    "read_keypoint_labels",
    "read_pcd",
    "read_ply",
    "read_sample_order",
    "validate_annotation",
    "write_annotations",
    "write_pcd",
    "write_ply",
    "write_sample_order",
]

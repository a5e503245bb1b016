"""The embedded default dataset: procedural airplanes, chairs and tables in KeypointNet layout.

Each shape is a set of closed, subdivided triangle meshes (boxes, swept/tapered boxes and
surfaces of revolution) with per-part colours, normalised like ShapeNet (centred at the
bounding-box centre, bounding-box diagonal 1, y up, front towards -z). Keypoints use the
semantic ids of KeypointNet's label table (``keypoint_labels.json``); a shape without a part
(no arms, no engines, a pedestal instead of legs) lacks its keypoints, as in the real data.
Every keypoint lies on a mesh face (``face_index``, barycentric ``face_uv``) and is one of the
shape's sampled points (``point_index``). Generation is deterministic for a seed: the same
seed gives byte-identical files, and shape ``i`` of a category does not depend on how many
shapes are generated.

Command line: ``python -m bt3d.synthetic OUT_DIR [--seed S] [--shapes N] [--categories ...]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bt3d.errors import ConfigError
from bt3d.io import (
    CATEGORY_IDS,
    class_id_of,
    write_annotations,
    write_pcd,
    write_ply,
    write_sample_order,
)
from bt3d.structures import Mesh, ShapeAnnotation

GENERATED_CATEGORIES = ("airplane", "chair", "table")
EDGE = 0.022  # target edge length before normalisation (shapes span about one unit)

# KeypointNet's descriptions of the semantic ids the generator uses.
KEYPOINT_LABELS: dict[str, dict[int, str]] = {
    "airplane": {
        0: "nose of the airplane",
        1: "cockpit of the airplane",
        2: "tail of the airplane",
        3: "wingtip of the left wing of the airplane",
        4: "wing root of the left wing of the airplane",
        5: "wingtip of the right wing of the airplane",
        6: "wing root of the right wing of the airplane",
        7: "wingtip of the left horizontal stabilizer of the airplane",
        8: "wingtip of the right horizontal stabilizer of the airplane",
        9: "top of vertical stabilizer of the airplane",
        14: "inner turbine of the left wing of the airplane",
        15: "inner turbine of the right wing of the airplane",
        16: "outer turbine of the left wing of the airplane",
        17: "outer turbine of the right wing of the airplane",
    },
    "chair": {
        0: "upper corner of the back of the chair",
        1: "upper corner of the back of the chair",
        2: "lower corner of the back of the chair",
        3: "lower corner of the back of the chair",
        4: "front corner of the seat of the chair",
        5: "front corner of the seat of the chair",
        6: "front corner of the armrest of the chair",
        7: "back corner of the armrest of the chair",
        8: "front corner of the armrest of the chair",
        9: "back corner of the armrest of the chair",
        10: "lower end of the front leg of the chair",
        11: "lower end of the back leg of the chair",
        12: "lower end of the front leg of the chair",
        13: "lower end of the back leg of the chair",
        14: "lower end of the leg of the chair",
        15: "top of the chair cylinder",
        16: "bottom of the chair cylinder",
        17: "lower end of the front leg of the chair",
        18: "lower end of the back leg of the chair",
        19: "lower end of the back leg of the chair",
        20: "lower end of the front leg of the chair",
    },
    "table": {
        0: "corner of the table top",
        1: "corner of the table top",
        2: "corner of the table top",
        3: "corner of the table top",
        4: "end of the table leg",
        5: "end of the table leg",
        6: "end of the table leg",
        7: "end of the table leg",
        8: "end of the stretcher between the table legs",
        9: "end of the stretcher between the table legs",
        10: "end of the stretcher between the table legs",
        11: "end of the stretcher between the table legs",
    },
}

# Left/right counterparts (reflection in the x = 0 plane), as semantic ids.
MIRROR_PAIRS: dict[str, list[tuple[int, int]]] = {
    "airplane": [(3, 5), (4, 6), (7, 8), (14, 15), (16, 17)],
    "chair": [(0, 1), (2, 3), (4, 5), (6, 8), (7, 9), (17, 20), (18, 19)],
    "table": [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)],
}


# ---------------------------------------------------------------------------- primitives


def _orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip all faces of a closed mesh when its signed volume is negative."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    return faces if volume > 0 else faces[:, ::-1].copy()


def _box(segments: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Closed unit cube [-0.5, 0.5]^3, each side an (a, b) grid; (V, 3) and (F, 3) outward."""
    vertices, faces = [], []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        nu, nv = segments[u], segments[v]
        gu, gv = np.meshgrid(np.linspace(-0.5, 0.5, nu + 1), np.linspace(-0.5, 0.5, nv + 1))
        for sign in (-0.5, 0.5):
            grid = np.zeros((gu.size, 3))
            grid[:, u], grid[:, v], grid[:, axis] = gu.ravel(), gv.ravel(), sign
            i, j = np.meshgrid(np.arange(nu), np.arange(nv))
            p = (j * (nu + 1) + i).ravel()
            quads = np.stack([p, p + 1, p + nu + 2, p + nu + 1], axis=1)
            tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
            normal = np.cross(
                grid[tris[:, 1]] - grid[tris[:, 0]], grid[tris[:, 2]] - grid[tris[:, 0]]
            )
            flip = normal[:, axis] * sign < 0
            tris[flip] = tris[flip][:, ::-1]
            offset = sum(len(x) for x in vertices)
            vertices.append(grid)
            faces.append(tris + offset)
    v = np.concatenate(vertices)
    unique, inverse = np.unique(np.round(v * 1e9).astype(np.int64), axis=0, return_inverse=True)
    return unique / 1e9, inverse.reshape(-1)[np.concatenate(faces)]


def box_part(
    size: Sequence[float], deform: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A closed box of ``size`` (centred at 0), optionally mapped through ``deform``."""
    size = np.asarray(size, dtype=np.float64)
    nx, ny, nz = (int(max(1, math.ceil(s / EDGE))) for s in size)
    v, f = _box((nx, ny, nz))
    v = v * size if deform is None else deform(v)
    return v, _orient_outward(v, f)


def lathe_part(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of revolution about the y axis.

    Args:
        profile: (P, 2) rows (radius, y) from bottom to top; the first and last radius must
            be 0 (poles), the others > 0.
    """
    r, y = profile[:, 0], profile[:, 1]
    n = int(np.clip(math.ceil(2 * math.pi * r.max() / EDGE), 8, 64))
    theta = np.linspace(0, 2 * math.pi, n, endpoint=False)
    rings = profile[1:-1]
    ring_v = np.stack(
        [
            np.outer(rings[:, 0], np.cos(theta)),
            np.repeat(rings[:, 1:2], n, axis=1),
            np.outer(rings[:, 0], np.sin(theta)),
        ],
        axis=-1,
    ).reshape(-1, 3)
    bottom, top = len(ring_v), len(ring_v) + 1
    vertices = np.concatenate([ring_v, [[0, y[0], 0], [0, y[-1], 0]]])
    k = np.arange(n)
    faces = [np.stack([np.full(n, bottom), k, (k + 1) % n], axis=1)]
    for ring in range(len(rings) - 1):
        a, b = ring * n + k, ring * n + (k + 1) % n
        faces += [np.stack([a, a + n, b], axis=1), np.stack([b, a + n, b + n], axis=1)]
    last = (len(rings) - 1) * n
    faces.append(np.stack([np.full(n, top), last + (k + 1) % n, last + k], axis=1))
    f = np.concatenate(faces)
    return vertices, _orient_outward(vertices, f)


def _densify(profile: np.ndarray) -> np.ndarray:
    """Insert points along a (P, 2) profile so that no step is longer than EDGE."""
    out = [profile[:1]]
    for a, b in zip(profile[:-1], profile[1:], strict=True):
        steps = int(max(1, math.ceil(np.linalg.norm(b - a) / EDGE)))
        t = np.linspace(0, 1, steps + 1)[1:, None]
        out.append(a + (b - a) * t)
    return np.concatenate(out)


def cylinder_part(radius: float, y0: float, y1: float, taper: float = 1.0):
    """Closed cylinder about the y axis from ``y0`` to ``y1`` (top radius ``radius*taper``)."""
    prof = np.array([[0, y0], [radius, y0], [radius * taper, y1], [0, y1]], dtype=np.float64)
    return lathe_part(_densify(prof))


def _rotate_y_to_z(v: np.ndarray) -> np.ndarray:
    """Rotate about x so that the lathe axis +y becomes +z: (x, y, z) -> (x, -z, y)."""
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)


def _translate(part: tuple[np.ndarray, np.ndarray], t: Sequence[float]):
    return part[0] + np.asarray(t, dtype=np.float64), part[1]


def _mirror_x(part: tuple[np.ndarray, np.ndarray]):
    v = part[0] * np.array([-1.0, 1.0, 1.0])
    return v, _orient_outward(v, part[1])


# ------------------------------------------------------------------------------- shapes


@dataclass
class _Shape:
    """Parts under construction and the keypoints placed on them."""

    parts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    colors: list[np.ndarray] = field(default_factory=list)
    # (semantic id, part index, target position): the keypoint goes to the part's vertex
    # nearest the target.
    keypoints: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    rotation: list[list[int]] = field(default_factory=list)  # semantic ids of rotation groups

    def add(self, part: tuple[np.ndarray, np.ndarray], color: np.ndarray) -> int:
        self.parts.append(part)
        self.colors.append(color)
        return len(self.parts) - 1

    def keypoint(self, semantic_id: int, part: int, target: Sequence[float]) -> None:
        self.keypoints.append((semantic_id, part, np.asarray(target, dtype=np.float64)))


def _palette(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    base = rng.integers(60, 220, size=3)
    return [np.clip(base + rng.integers(-40, 41, size=3), 0, 255) for _ in range(n)]


def _table(rng: np.random.Generator) -> _Shape:
    s = _Shape()
    c_top, c_leg, c_bar = _palette(rng, 3)
    height = rng.uniform(0.45, 0.65)
    thick = rng.uniform(0.025, 0.055)
    round_top = rng.random() < 0.3
    pedestal = round_top and rng.random() < 0.5
    w = rng.uniform(0.55, 1.0)
    d = w if round_top else w * rng.uniform(0.5, 1.0)
    if round_top:
        top = s.add(cylinder_part(w / 2, height - thick, height), c_top)
        corner = w / 2 / math.sqrt(2)
        corners = [(corner, corner), (-corner, corner), (-corner, -corner), (corner, -corner)]
        s.rotation.append([0, 1, 2, 3])
    else:
        top = s.add(_translate(box_part((w, thick, d)), (0, height - thick / 2, 0)), c_top)
        corners = [(w / 2, d / 2), (-w / 2, d / 2), (-w / 2, -d / 2), (w / 2, -d / 2)]
    for k, (x, z) in enumerate(corners):
        s.keypoint(k, top, (x, height, z))
    if pedestal:
        r = rng.uniform(0.03, 0.06)
        s.add(cylinder_part(r, 0.03, height - thick), c_leg)
        s.add(cylinder_part(w * rng.uniform(0.2, 0.35), 0.0, 0.03), c_leg)
        return s
    inset = rng.uniform(0.025, 0.09)
    lx, lz = w / 2 - inset, d / 2 - inset
    if round_top:
        lx = lz = (w / 2 - inset) / math.sqrt(2)
    square_legs = rng.random() < 0.5
    r = rng.uniform(0.015, 0.035)
    legs = []
    for k, (sx, sz) in enumerate([(1, 1), (-1, 1), (-1, -1), (1, -1)]):
        if square_legs:
            part = _translate(
                box_part((2 * r, height - thick, 2 * r)), (0, (height - thick) / 2, 0)
            )
        else:
            part = cylinder_part(r, 0.0, height - thick, taper=rng.uniform(1.0, 1.5))
        legs.append(s.add(_translate(part, (sx * lx, 0, sz * lz)), c_leg))
        s.keypoint(4 + k, legs[-1], (sx * lx, 0.0, sz * lz))
    if rng.random() < 0.4:  # stretchers along z on both sides
        y = rng.uniform(0.1, 0.3) * height
        for sx, ids in ((1, (8, 11)), (-1, (9, 10))):
            bar = s.add(_translate(box_part((r, r, 2 * lz)), (sx * lx, y, 0)), c_bar)
            s.keypoint(ids[0], bar, (sx * lx, y, lz))
            s.keypoint(ids[1], bar, (sx * lx, y, -lz))
    return s


def _chair(rng: np.random.Generator) -> _Shape:
    s = _Shape()
    c_seat, c_back, c_leg, c_arm = _palette(rng, 4)
    w = rng.uniform(0.4, 0.6)
    d = rng.uniform(0.4, 0.55)
    h = rng.uniform(0.4, 0.5)
    t = rng.uniform(0.04, 0.08)
    back_h = rng.uniform(0.35, 0.6)
    bt = rng.uniform(0.03, 0.06)
    seat = s.add(_translate(box_part((w, t, d)), (0, h - t / 2, 0)), c_seat)
    s.keypoint(4, seat, (w / 2, h, -d / 2))
    s.keypoint(5, seat, (-w / 2, h, -d / 2))
    zb = d / 2 - bt / 2
    top = h + back_h
    if rng.random() < 0.4:  # slatted back: two posts, a top rail, vertical slats
        post = rng.uniform(0.03, 0.05)
        rail = rng.uniform(0.05, 0.1)
        backs = []
        for sx in (1, -1):
            part = box_part((post, back_h, bt))
            backs.append(
                s.add(_translate(part, (sx * (w / 2 - post / 2), h + back_h / 2, zb)), c_back)
            )
        backs.append(s.add(_translate(box_part((w, rail, bt)), (0, top - rail / 2, zb)), c_back))
        n_slats = int(rng.integers(2, 5))
        for x in np.linspace(-w / 2, w / 2, n_slats + 2)[1:-1]:
            part = box_part((rng.uniform(0.02, 0.04), back_h - rail, bt * 0.6))
            s.add(_translate(part, (x, h + (back_h - rail) / 2, zb)), c_back)
        s.keypoint(0, backs[2], (w / 2, top, zb))
        s.keypoint(1, backs[2], (-w / 2, top, zb))
        s.keypoint(2, backs[0], (w / 2, h, d / 2 - bt))
        s.keypoint(3, backs[1], (-w / 2, h, d / 2 - bt))
    else:
        lean = rng.uniform(0.0, 0.12)

        def panel(v: np.ndarray) -> np.ndarray:
            y = (v[:, 1] + 0.5) * back_h
            return np.stack([v[:, 0] * w, h + y, zb + v[:, 2] * bt + lean * y / back_h], 1)

        back = s.add(box_part((w, back_h, bt), panel), c_back)
        s.keypoint(0, back, (w / 2, top, zb + lean))
        s.keypoint(1, back, (-w / 2, top, zb + lean))
        s.keypoint(2, back, (w / 2, h, d / 2 - bt))
        s.keypoint(3, back, (-w / 2, h, d / 2 - bt))
    if rng.random() < 0.4:  # armrests on two supports each
        ah = rng.uniform(0.15, 0.25)
        aw = rng.uniform(0.04, 0.07)
        ad = d * rng.uniform(0.8, 1.0)
        for sx, (front_id, back_id) in ((1, (6, 7)), (-1, (8, 9))):
            x = sx * (w / 2 + aw / 2)
            arm = s.add(_translate(box_part((aw, 0.03, ad)), (x, h + ah, zb - ad / 2)), c_arm)
            for z in (zb - ad + 0.03, zb - 0.03):
                s.add(_translate(box_part((0.025, ah, 0.025)), (x, h + ah / 2, z)), c_arm)
            s.keypoint(front_id, arm, (x + sx * aw / 2, h + ah + 0.015, zb - ad))
            s.keypoint(back_id, arm, (x + sx * aw / 2, h + ah + 0.015, zb))
    if rng.random() < 0.2:  # swivel base: column and five star legs with castors' ends
        col = s.add(cylinder_part(rng.uniform(0.025, 0.04), 0.08, h - t), c_leg)
        s.keypoint(15, col, (0, h - t, 0))
        s.keypoint(16, col, (0, 0.08, 0))
        reach = rng.uniform(0.25, 0.32)
        ids = [10, 11, 12, 13, 14]
        phase = rng.uniform(0, 2 * math.pi / 5)
        for k, sid in enumerate(ids):
            a = phase + 2 * math.pi * k / 5
            ca, sa = math.cos(a), math.sin(a)

            def spoke(v: np.ndarray, ca: float = ca, sa: float = sa) -> np.ndarray:
                along = (v[:, 0] + 0.5) * reach
                y = 0.02 + v[:, 1] * 0.04 + 0.04 * (1 - along / reach)
                side = v[:, 2] * 0.04
                return np.stack([along * ca - side * sa, y, along * sa + side * ca], axis=1)

            leg = s.add(box_part((reach, 0.04, 0.04), spoke), c_leg)
            s.keypoint(sid, leg, (reach * ca, 0.0, reach * sa))
        s.rotation.append(ids)
        return s
    splay = rng.uniform(0.0, 0.05)
    r = rng.uniform(0.015, 0.03)
    square = rng.random() < 0.5
    inset = rng.uniform(0.0, 0.04) + r
    for sid, sx, sz in ((17, 1, -1), (18, 1, 1), (19, -1, 1), (20, -1, -1)):
        x0, z0 = sx * (w / 2 - inset), sz * (d / 2 - inset)

        def leg_map(v: np.ndarray, x0: float = x0, z0: float = z0, sx=sx, sz=sz) -> np.ndarray:
            y = (v[:, 1] + 0.5) * (h - t)
            out = splay * (1 - y / (h - t))
            return np.stack(
                [x0 + v[:, 0] * 2 * r + sx * out, y, z0 + v[:, 2] * 2 * r + sz * out], 1
            )

        if square:
            part = box_part((2 * r, h - t, 2 * r), leg_map)
        else:
            cyl_v, cyl_f = cylinder_part(r, -0.5 * (h - t), 0.5 * (h - t))
            unit = cyl_v / np.array([2 * r, h - t, 2 * r])
            cyl_v = leg_map(unit)
            part = (cyl_v, _orient_outward(cyl_v, cyl_f))
        leg = s.add(part, c_leg)
        s.keypoint(sid, leg, (x0 + sx * splay, 0.0, z0 + sz * splay))
    return s


def _wing(
    span: float, root_chord: float, tip_chord: float, sweep: float, thick: float, rise: float
) -> Callable[[np.ndarray], np.ndarray]:
    """Map the unit box to a tapered, swept wing along +x (root at x = 0, chord along z)."""

    def deform(v: np.ndarray) -> np.ndarray:
        u = v[:, 0] + 0.5
        chord = root_chord + (tip_chord - root_chord) * u
        return np.stack(
            [u * span, v[:, 1] * thick * (1 - 0.5 * u) + rise * u, sweep * u + v[:, 2] * chord],
            axis=1,
        )

    return deform


def _airplane(rng: np.random.Generator) -> _Shape:
    s = _Shape()
    c_body, c_wing, c_tail, c_engine = _palette(rng, 4)
    length = rng.uniform(0.9, 1.3)
    radius = length * rng.uniform(0.045, 0.08)
    nose, tail_start = rng.uniform(0.08, 0.18), rng.uniform(0.6, 0.75)
    t = np.linspace(0, 1, 40)
    r = np.where(
        t < nose,
        radius * np.sqrt(np.clip(1 - ((nose - t) / nose) ** 2, 0, 1)),
        np.where(t < tail_start, radius, radius * (1 - 0.7 * (t - tail_start) / (1 - tail_start))),
    )
    r[0], r[-1] = 0.0, 0.0
    profile = np.stack([r, t * length - length / 2], axis=1)
    body_v, body_f = lathe_part(_densify(profile))
    body_v = _rotate_y_to_z(body_v)  # nose at -z, tail at +z
    body = s.add((body_v, _orient_outward(body_v, body_f)), c_body)
    z0 = -length / 2
    s.keypoint(0, body, (0, 0, z0))
    s.keypoint(2, body, (0, 0, length / 2))
    zc = z0 + length * (nose + 0.06)
    s.keypoint(1, body, (0, radius, zc))

    span = length * rng.uniform(0.4, 0.65)
    root = length * rng.uniform(0.15, 0.25)
    tip = root * rng.uniform(0.25, 0.7)
    sweep = root * rng.uniform(0.0, 1.6)
    thick = radius * 0.35
    wing_y = radius * rng.choice([-0.55, 0.0, 0.55])
    wing_z = z0 + length * rng.uniform(0.4, 0.5)
    x_root = radius * 0.5
    deform = _wing(span, root, tip, sweep, thick, span * rng.uniform(0.0, 0.1))
    n_engines = int(rng.choice([0, 2, 2, 4]))
    engine_r = radius * rng.uniform(0.35, 0.5, size=2)
    engine_l = root * rng.uniform(0.6, 0.9, size=2)
    for sx, (tip_id, root_id) in ((-1, (3, 4)), (1, (5, 6))):
        part = _translate(box_part((span, thick, root), deform), (x_root, wing_y, wing_z))
        wing = s.add(part if sx > 0 else _mirror_x(part), c_wing)
        tip_pos = deform(np.array([[0.5, 0.0, -0.5]]))[0] + (x_root, wing_y, wing_z)
        s.keypoint(tip_id, wing, (sx * tip_pos[0], tip_pos[1], tip_pos[2]))
        s.keypoint(root_id, wing, (sx * radius * 1.05, wing_y, wing_z - root / 2))
        for k, frac in enumerate((0.35, 0.7)[: n_engines // 2]):
            at = deform(np.array([[frac - 0.5, 0.0, -0.5]]))[0] + (x_root, wing_y, wing_z)
            e_v, e_f = cylinder_part(engine_r[k], 0.0, engine_l[k], taper=0.8)
            drop = at[1] - thick / 2 - engine_r[k] * 0.9
            e_v = _rotate_y_to_z(e_v) + (sx * at[0], drop, at[2] - engine_l[k] * 0.4)
            engine = s.add((e_v, _orient_outward(e_v, e_f)), c_engine)
            s.keypoint(
                (14, 15, 16, 17)[2 * k + (sx > 0)], engine, (sx * at[0], drop, e_v[:, 2].min())
            )

    fin_h = length * rng.uniform(0.12, 0.22)
    fin_root = length * rng.uniform(0.12, 0.2)
    fin_sweep = fin_root * rng.uniform(0.3, 1.2)
    fin_z = length / 2 - fin_root * 0.6
    fin_map = _wing(fin_h, fin_root, fin_root * 0.5, fin_sweep, radius * 0.25, 0.0)

    def vertical(v: np.ndarray) -> np.ndarray:
        p = fin_map(v)
        return np.stack([p[:, 1], p[:, 0] + radius * 0.2, p[:, 2] + fin_z], axis=1)

    fin = s.add(box_part((fin_h, radius * 0.25, fin_root), vertical), c_tail)
    fin_top = vertical(np.array([[0.5, 0.0, 0.0]]))[0]
    s.keypoint(9, fin, fin_top)
    t_tail = rng.random() < 0.3
    stab_span = span * rng.uniform(0.3, 0.45)
    stab_root = fin_root * rng.uniform(0.7, 1.0)
    stab_map = _wing(stab_span, stab_root, stab_root * 0.5, stab_root * 0.5, radius * 0.2, 0.0)
    stab_at = (
        (0.0, fin_top[1] - 0.01, fin_top[2] - stab_root * 0.2)
        if t_tail
        else (radius * 0.2, 0.0, fin_z + fin_root * 0.1)
    )
    for sx, sid in ((-1, 7), (1, 8)):
        part = _translate(box_part((stab_span, radius * 0.2, stab_root), stab_map), stab_at)
        stab = s.add(part if sx > 0 else _mirror_x(part), c_tail)
        tip_pos = stab_map(np.array([[0.5, 0.0, -0.5]]))[0] + stab_at
        s.keypoint(sid, stab, (sx * tip_pos[0], tip_pos[1], tip_pos[2]))
    return s


BUILDERS: dict[str, Callable[[np.random.Generator], _Shape]] = {
    "airplane": _airplane,
    "chair": _chair,
    "table": _table,
}


# ------------------------------------------------------------------------------ assembly


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(out, faces[:, i], n)
    length = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(length > 0, length, 1.0)


@dataclass(frozen=True)
class SyntheticShape:
    """One generated shape: its mesh, (N, 3) points with (N, 3) uint8 colours, keypoints."""

    mesh: Mesh
    points: np.ndarray
    point_colors: np.ndarray
    annotation: ShapeAnnotation
    keypoint_colors: np.ndarray


def _assemble(shape: _Shape) -> tuple[Mesh, np.ndarray, np.ndarray, float]:
    """Concatenate the parts, normalise (bbox centre 0, diagonal 1) and round to float32.

    Returns the mesh, (P + 1,) face offsets of the parts, and the centre and diagonal
    used to normalise.
    """
    counts = [len(v) for v, _ in shape.parts]
    v_off = np.concatenate([[0], np.cumsum(counts)])
    vertices = np.concatenate([v for v, _ in shape.parts])
    faces = np.concatenate([f + o for (_, f), o in zip(shape.parts, v_off[:-1], strict=True)])
    f_off = np.concatenate([[0], np.cumsum([len(f) for _, f in shape.parts])])
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    vertices = ((vertices - (lo + hi) / 2) / np.linalg.norm(hi - lo)).astype(np.float32)
    vertices = vertices.astype(np.float64)
    colors = np.concatenate(
        [np.repeat(c[None], n, axis=0) for c, n in zip(shape.colors, counts, strict=True)]
    ).astype(np.uint8)
    mesh = Mesh(vertices, faces, colors, _vertex_normals(vertices, faces), source="synthetic")
    return mesh, f_off, (lo + hi) / 2, np.linalg.norm(hi - lo)


def _place_keypoint(
    mesh: Mesh, faces: slice, target: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """The face (within the ``faces`` range) and barycentrics of a keypoint near ``target``.

    The keypoint sits at barycentrics (0.8, 0.1, 0.1) of the part face around the part
    vertex nearest the target, on the face whose centroid is nearest the target.
    """
    part_faces = mesh.faces[faces]
    used = np.unique(part_faces)
    nearest = used[np.argmin(np.linalg.norm(mesh.vertices[used] - target, axis=1))]
    around = np.flatnonzero((part_faces == nearest).any(axis=1))
    centroids = mesh.vertices[part_faces[around]].mean(axis=1)
    local = around[np.argmin(np.linalg.norm(centroids - target, axis=1))]
    uv = np.full(3, 0.1)
    uv[int(np.flatnonzero(part_faces[local] == nearest)[0])] = 0.8
    face = faces.start + int(local)
    return face, uv, uv @ mesh.vertices[mesh.faces[face]]


def _sample_surface(
    mesh: Mesh, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-weighted surface samples: (n, 3) points, (n,) faces, (n, 3) barycentrics."""
    tri = mesh.triangles
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    faces = rng.choice(len(tri), size=n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    uv = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)
    return np.einsum("nk,nkd->nd", uv, tri[faces]), faces, uv


def make_shape(category: str, index: int, seed: int = 0, n_points: int = 2048) -> SyntheticShape:
    """Generate shape ``index`` of ``category`` for ``seed`` (independent of other shapes)."""
    if category not in BUILDERS:
        raise ConfigError(
            f"synthetic category {category!r} is not generated; choose from {list(BUILDERS)}"
        )
    class_id = class_id_of(category)
    rng = np.random.default_rng([seed, int(class_id), index])
    shape = BUILDERS[category](rng)
    mesh, f_off, centre, diag = _assemble(shape)
    points, p_faces, p_uv = _sample_surface(mesh, n_points, rng)
    point_colors = _interpolate_colors(mesh, p_faces, p_uv)
    sem, fidx, uvs, xyz = [], [], [], []
    for sid, part, target in sorted(shape.keypoints, key=lambda k: k[0]):
        face, uv, pos = _place_keypoint(
            mesh, slice(int(f_off[part]), int(f_off[part + 1])), (target - centre) / diag
        )
        sem.append(sid)
        fidx.append(face)
        uvs.append(uv)
        xyz.append(pos)
    xyz_a = np.array(xyz)
    kp_colors = _interpolate_colors(mesh, np.array(fidx), np.array(uvs))
    point_indices = []
    for pos, color in zip(xyz_a, kp_colors, strict=True):
        dist = np.linalg.norm(points - pos, axis=1)
        dist[point_indices] = np.inf
        i = int(np.argmin(dist))
        points[i], point_colors[i] = pos, color
        point_indices.append(i)
    annotation = ShapeAnnotation(
        class_id=class_id,
        model_id=model_id_of(category, index, seed),
        semantic_ids=np.array(sem),
        point_indices=np.array(point_indices),
        xyz=xyz_a,
        face_indices=np.array(fidx),
        face_uvs=np.array(uvs),
        symmetries=_symmetries(category, sem, shape.rotation),
        source=f"synthetic {category} {index}",
    )
    return SyntheticShape(mesh, points, point_colors, annotation, kp_colors)


def _interpolate_colors(mesh: Mesh, faces: np.ndarray, uv: np.ndarray) -> np.ndarray:
    corner = mesh.vertex_colors[mesh.faces[faces]].astype(np.float64)
    return np.round(np.einsum("nk,nkc->nc", uv, corner)).astype(np.uint8)


def _symmetries(category: str, semantic_ids: list[int], rotation: list[list[int]]) -> dict:
    """KeypointNet ``symmetries``: groups as positions in the record's keypoint list."""
    pos = {s: i for i, s in enumerate(semantic_ids)}
    reflection = [
        {"kp_indexes": [pos[a], pos[b]]} for a, b in MIRROR_PAIRS[category] if a in pos and b in pos
    ]
    rotations = [
        {"kp_indexes": [pos[s] for s in group], "is_circle": False, "circle": {}}
        for group in rotation
        if all(s in pos for s in group)
    ]
    return {"reflection": reflection, "rotation": rotations}


def model_id_of(category: str, index: int, seed: int) -> str:
    """32 hex characters derived from the seed, category and index (like a ShapeNet id)."""
    return hashlib.md5(f"bt3d-synthetic/{seed}/{category}/{index}".encode()).hexdigest()


# ------------------------------------------------------------------------------- dataset


def generate_dataset(
    root: str | Path,
    categories: Sequence[str] = GENERATED_CATEGORIES,
    shapes_per_category: int = 24,
    n_points: int = 2048,
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset in KeypointNet layout under ``root`` and return ``root``.

    Files: ``annotations/<category>.json``, ``pcds/<class_id>/<model_id>.pcd``,
    ``ShapeNetCore.v2.ply/<class_id>/<model_id>.ply``, ``benchmark_indices.csv`` (all shapes
    in a seeded random order), ``splits-{train,val,test}.txt`` (``<class_id>-<model_id>``)
    and ``keypoint_labels.json``.
    """
    if shapes_per_category < 1 or n_points < 64:
        raise ConfigError(
            f"synthetic dataset needs shapes_per_category >= 1 and n_points >= 64, got "
            f"{shapes_per_category} and {n_points}"
        )
    categories = list(dict.fromkeys(categories))
    for category in categories:
        if category not in BUILDERS:
            raise ConfigError(
                f"synthetic category {category!r} is not generated; choose from {list(BUILDERS)}"
            )
    root = Path(root)
    rng = np.random.default_rng([seed, 7])
    order: list[tuple[str, str]] = []
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for category in categories:
        class_id = CATEGORY_IDS[category]
        annotations, colors = [], {}
        for index in range(shapes_per_category):
            shape = make_shape(category, index, seed, n_points)
            model_id = shape.annotation.model_id
            write_ply(root / "ShapeNetCore.v2.ply" / class_id / f"{model_id}.ply", shape.mesh)
            write_pcd(
                root / "pcds" / class_id / f"{model_id}.pcd", shape.points, shape.point_colors
            )
            annotations.append(shape.annotation)
            colors[model_id] = shape.keypoint_colors
            order.append((class_id, model_id))
        write_annotations(root / "annotations" / f"{category}.json", annotations, colors)
        ids = [f"{class_id}-{a.model_id}" for a in annotations]
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_test = max(1, round(0.2 * len(ids))) if len(ids) >= 3 else 0
        n_val = max(1, round(0.1 * len(ids))) if len(ids) >= 3 else 0
        splits["train"] += ids[: len(ids) - n_val - n_test]
        splits["val"] += ids[len(ids) - n_val - n_test : len(ids) - n_test]
        splits["test"] += ids[len(ids) - n_test :]
    write_sample_order(
        root / "benchmark_indices.csv", [order[i] for i in rng.permutation(len(order))]
    )
    for name, ids in splits.items():
        (root / f"splits-{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    labels = {
        "class_mapping": {CATEGORY_IDS[c]: c for c in categories},
        "keypoint_labels": {
            c: {str(k): v for k, v in KEYPOINT_LABELS[c].items()} for c in categories
        },
    }
    (root / "keypoint_labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bt3d.synthetic",
        description="Write the synthetic airplane/chair/table dataset in KeypointNet layout.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shapes", type=int, default=24, help="shapes per category")
    parser.add_argument("--points", type=int, default=2048, help="points per cloud")
    parser.add_argument(
        "--categories", nargs="+", default=list(GENERATED_CATEGORIES), choices=list(BUILDERS)
    )
    args = parser.parse_args(argv)
    root = generate_dataset(args.out_dir, args.categories, args.shapes, args.points, args.seed)
    print(f"wrote {len(args.categories)} x {args.shapes} synthetic shapes to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

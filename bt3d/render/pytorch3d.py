"""The ``pytorch3d`` render backend: PyTorch3D's ``MeshRasterizer`` + ``HardFlatShader``, the
renderer of the reference code, behind :func:`bt3d.render.render`.

PyTorch3D is optional and imported only when this backend is asked for. One sample per pixel,
``faces_per_pixel`` layers (the reference asks for 5: it shades the first, counts all as seen),
``bin_size=0`` (naive rasterisation: exact, no bin overflow), ``PointLights`` at
``light_locations`` with ambient 0.5, default ``Materials``, white background.
"""

from __future__ import annotations

import numpy as np

from bt3d.cameras import Cameras
from bt3d.errors import ConfigError
from bt3d.structures import Mesh

INSTALL_HINT = (
    "render backend 'pytorch3d' needs PyTorch3D, which is not importable here. Install a build "
    "matching your torch (see https://github.com/facebookresearch/pytorch3d/blob/main/INSTALL.md, "
    "e.g. `pip install 'git+https://github.com/facebookresearch/pytorch3d.git'` or "
    "`conda install pytorch3d -c pytorch3d`), or use backend: embree"
)


def render_pytorch3d(
    mesh: Mesh,
    cameras: Cameras,
    textured: bool,
    cull_backfaces: bool,
    light_locations: np.ndarray,
    faces_per_pixel: int = 1,
    device: str = "cpu",
):
    """Render with PyTorch3D; same arguments and result as :func:`bt3d.render.render`."""
    try:
        import torch
        from pytorch3d.renderer import (
            BlendParams,
            FoVPerspectiveCameras,
            HardFlatShader,
            MeshRasterizer,
            PointLights,
            RasterizationSettings,
            TexturesVertex,
        )
        from pytorch3d.structures import Meshes
    except ImportError as error:
        raise ConfigError(INSTALL_HINT) from error

    from bt3d.device import resolve_device
    from bt3d.render.raster import AMBIENT, BACKGROUND, GREY, Rasterization

    dev = resolve_device(device)
    n_views, n_faces = len(cameras), len(mesh.faces)
    verts = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=dev)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64, device=dev)
    if textured and mesh.vertex_colors is not None:
        colours = torch.as_tensor(mesh.vertex_colors / 255.0, dtype=torch.float32, device=dev)
    else:
        colours = torch.full_like(verts, GREY)
    meshes = Meshes([verts], [faces], textures=TexturesVertex([colours])).extend(n_views)
    cams = FoVPerspectiveCameras(
        R=torch.as_tensor(cameras.R, dtype=torch.float32, device=dev),
        T=torch.as_tensor(cameras.T, dtype=torch.float32, device=dev),
        fov=cameras.fov_degrees,
        device=dev,
    )
    settings = RasterizationSettings(
        image_size=cameras.image_size,
        blur_radius=0.0,
        faces_per_pixel=faces_per_pixel,
        bin_size=0,
        cull_backfaces=cull_backfaces,
    )
    lights = PointLights(
        ambient_color=((AMBIENT,) * 3,),
        location=torch.as_tensor(light_locations, dtype=torch.float32, device=dev),
        device=dev,
    )
    shader = HardFlatShader(
        device=dev,
        cameras=cams,
        lights=lights,
        blend_params=BlendParams(background_color=(BACKGROUND,) * 3),
    )
    with torch.no_grad():
        fragments = MeshRasterizer(cameras=cams, raster_settings=settings)(meshes)
        images = shader(fragments, meshes)
    packed = fragments.pix_to_face.cpu().numpy().astype(np.int64)  # (V, H, W, K)
    layers = np.where(packed >= 0, packed % n_faces, -1)
    face_ids = np.ascontiguousarray(layers[..., 0])
    zbuf = fragments.zbuf[..., 0].cpu().numpy().astype(np.float32)
    depth = np.where(face_ids >= 0, zbuf, np.inf).astype(np.float32)
    rgb = images[..., :3].clamp(0.0, 1.0).permute(0, 3, 1, 2).cpu().numpy().astype(np.float32)
    return Rasterization(
        face_ids, depth, np.ascontiguousarray(rgb), layers if faces_per_pixel > 1 else None
    )

"""Procedurally rendered indoor RGB-D scenes in the official NYU file layout.

Usage::

    python -m data.synthetic --out datasets/synthetic [--n 96] [--seed 0] \
        [--test-frac 0.25] [--size 640x480]

writes ``nyu_depth_v2_labeled.mat`` (HDF5 with MATLAB's transposed layout)
and ``splits.mat`` (1-based ``trainNdxs`` / ``testNdxs``), so the very same
reader and ``python -m data.prepare`` run on it as on the real dataset.  As in
the official file, ``depths`` is complete (NYU's are in-painted) and
``rawDepths`` is the same map with the holes of a Kinect (0 = no
measurement, see ``with_holes``).

Each scene is a box-shaped room seen by a pinhole camera with the focal
length of NYU's Kinect, at a random height, pitch, yaw and small roll.  Floor,
walls and ceiling are planes and a few axis-aligned boxes (furniture) stand
on the floor; every pixel's ray is intersected with all of them (vectorised
numpy) and the nearest hit kept.  Depth is the distance along the optical
axis, as in NYU (about 0.7-10 m).  Image cues are the physical ones a
network can learn from: textures fixed in world coordinates (so perspective
foreshortening and texture density follow depth), whose contrast fades where
a pixel covers more than a texture period (anti-aliasing), Lambertian shading
from a ceiling lamp with inverse-square-like fall-off, a weak camera-side
light falling off with depth, and small per-pixel sensor noise.

Timing: the default 96 scenes at 640 x 480 take about 15 s on a 2-core CPU
(14.3 s rendering, 0.4 s writing the 206 MB .mat); rendering is single-threaded.
"""
import json
import os
import sys
import time

import h5py
import numpy as np
import scipy.io

from common.cli import OneLineParser
from common.numbers import round_half_up
from config import parse_size

from .nyu import DATASET_ATTR


# NYU Depth V2 toolbox camera_params.m: fx_rgb = 5.1885790117450188e+02 at 640 px width.
NYU_FOCAL_PX = 518.8
NYU_WIDTH = 640
MAT_NAME = "nyu_depth_v2_labeled.mat"
SPLITS_NAME = "splits.mat"

# Surface ids: 0..5 are the room planes (axis, side), 6.. are boxes.
ROOM_PLANES = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]  # (axis, 0=low / 1=high)
FLOOR, CEILING = 2, 3
# The two in-plane world axes used as texture coordinates for a normal along each axis.
TANGENT_AXES = {0: (2, 1), 1: (0, 2), 2: (0, 1)}
PATTERNS = ("plain", "checker", "stripes", "tiles", "planks")


def _rotation(yaw, pitch, roll):
    """Camera-to-world rotation; camera x right, y up, z forward; world y up."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_x = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_y @ about_x @ about_z


def _ray_directions(rotation, height, width):
    """World ray directions (3, H*W) with unit z in the camera frame, so t equals depth."""
    focal = NYU_FOCAL_PX * width / NYU_WIDTH
    u = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / focal
    v = (np.arange(height, dtype=np.float32) + 0.5 - height / 2) / focal
    camera = np.stack([np.broadcast_to(u[None, :], (height, width)),
                       np.broadcast_to(-v[:, None], (height, width)),
                       np.ones((height, width), np.float32)]).reshape(3, -1)
    return rotation.astype(np.float32) @ camera, focal


def _sample_room(rng):
    size = np.array([rng.uniform(3.0, 7.0), rng.uniform(2.4, 3.2), rng.uniform(4.0, 9.0)])
    camera = np.array([rng.uniform(-1, 1) * (size[0] / 2 - 0.9),
                       rng.uniform(1.0, 1.7),
                       rng.uniform(0.3, 1.0)])
    # Aim roughly at the room's far half so the back wall (z = 0) stays unseen.
    target_x = rng.uniform(-0.3, 0.3) * size[0]
    yaw = np.arctan2(target_x - camera[0], size[2] - camera[2]) + rng.uniform(-0.15, 0.15)
    pitch = rng.uniform(np.radians(-20), np.radians(5))
    roll = rng.uniform(-1, 1) * np.radians(3)
    low = np.array([-size[0] / 2, 0.0, 0.0])
    return low, low + size, camera, _rotation(yaw, pitch, roll)


def _sample_boxes(rng, room_low, room_high, camera):
    """A few axis-aligned furniture boxes on the floor, at least 1 m from the camera."""
    boxes = []
    for _ in range(rng.randint(2, 6)):
        for _attempt in range(20):
            extent = np.array([rng.uniform(0.4, 1.6), rng.uniform(0.3, 1.8), rng.uniform(0.4, 1.2)])
            x = rng.uniform(room_low[0], room_high[0] - extent[0])
            z = rng.uniform(camera[2] + 0.5, room_high[2] - extent[2])
            if rng.uniform() < 0.4:  # push against a side or the far wall, like real furniture
                x = room_low[0] if rng.uniform() < 0.5 else room_high[0] - extent[0]
            low = np.array([x, 0.0, z])
            high = low + extent
            nearest = np.clip(camera[[0, 2]], low[[0, 2]], high[[0, 2]])
            if high[2] <= room_high[2] and np.hypot(*(nearest - camera[[0, 2]])) >= 1.0:
                boxes.append((low, high))
                break
    return boxes


def _intersect(origin, directions, room_low, room_high, boxes):
    """Nearest hit per ray: depth t, surface id and normal axis/sign (all (H*W,))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / directions
        exits = np.where(directions > 0, (room_high - origin)[:, None], (room_low - origin)[:, None])
        exit_t = exits.astype(np.float32) * inverse
        exit_t[~np.isfinite(exit_t)] = np.inf
        axis = np.argmin(exit_t, axis=0)
        depth = np.take_along_axis(exit_t, axis[None], 0)[0]
        side = (np.take_along_axis(directions, axis[None], 0)[0] > 0).astype(np.int64)
        surface = 2 * axis + side  # matches ROOM_PLANES order
        normal_sign = np.where(side == 1, -1.0, 1.0).astype(np.float32)  # room normals point inwards
        for index, (low, high) in enumerate(boxes):
            t_low = (low - origin).astype(np.float32)[:, None] * inverse
            t_high = (high - origin).astype(np.float32)[:, None] * inverse
            entry = np.minimum(t_low, t_high)
            entry[np.isnan(entry)] = -np.inf
            leave = np.maximum(t_low, t_high)
            leave[np.isnan(leave)] = np.inf
            entry_axis = np.argmax(entry, axis=0)
            t_near = np.take_along_axis(entry, entry_axis[None], 0)[0]
            hit = (t_near <= leave.min(axis=0)) & (t_near > 0) & (t_near < depth)
            depth[hit] = t_near[hit]
            axis[hit] = entry_axis[hit]
            surface[hit] = 6 + index
            facing = np.take_along_axis(directions, entry_axis[None], 0)[0]
            normal_sign[hit] = -np.sign(facing[hit])  # box normals point back at the camera
    return depth, surface, axis, normal_sign


def _sample_material(rng, surface):
    if surface == CEILING:
        base = np.full(3, rng.uniform(0.8, 0.95))
    elif surface == FLOOR:
        base = rng.uniform(0.2, 0.6) * np.array([1.0, rng.uniform(0.7, 0.95), rng.uniform(0.5, 0.9)])
    elif surface < 6:
        base = rng.uniform(0.55, 0.9) * rng.uniform(0.8, 1.0, size=3)
    else:
        base = rng.uniform(0.15, 0.9, size=3)
    second = np.clip(base * rng.uniform(0.45, 0.8) + rng.uniform(-0.05, 0.05, size=3), 0, 1)
    pattern = "plain" if surface == CEILING else PATTERNS[rng.randint(len(PATTERNS))]
    return {"base": base, "second": second, "pattern": pattern,
            "period": rng.uniform(0.15, 0.8), "phase": rng.uniform(0, 1, size=2)}


def _pattern(material, s, t):
    """Texture mix in [0, 1] at in-plane world coordinates (s, t) metres."""
    period = material["period"]
    s = s / period + material["phase"][0]
    t = t / period + material["phase"][1]
    kind = material["pattern"]
    if kind == "plain":  # gentle large-scale mottling
        return 0.5 + 0.25 * np.sin(0.7 * s) * np.sin(0.5 * t)
    if kind == "checker":
        return ((np.floor(s) + np.floor(t)) % 2).astype(np.float32)
    if kind == "stripes":
        return (np.floor(2 * s) % 2).astype(np.float32)
    if kind == "tiles":  # light tiles with dark grout lines
        grout = (s % 1 < 0.08) | (t % 1 < 0.08)
        return np.where(grout, 1.0, 0.0).astype(np.float32)
    # planks: long boards with a staggered seam and a wood grain
    row = np.floor(t * 3)
    seam = ((s * 0.5 + 0.37 * row) % 1) < 0.03
    grain = 0.5 + 0.3 * np.sin(40 * t + 3 * np.sin(2 * s + row))
    return np.where((t * 3) % 1 < 0.06, 1.0, np.where(seam, 1.0, grain * 0.6)).astype(np.float32)


def render_scene(rng, height=480, width=640):
    """Render one random room.

    Parameters
    ----------
    rng : np.random.RandomState
        The only source of randomness.
    height, width : int
        Image size in pixels; the focal length scales with ``width``.

    Returns
    -------
    image : np.ndarray
        (height, width, 3) uint8 RGB.
    depth : np.ndarray
        (height, width) float32 metres along the optical axis.
    """
    room_low, room_high, camera, rotation = _sample_room(rng)
    boxes = _sample_boxes(rng, room_low, room_high, camera)
    directions, focal = _ray_directions(rotation, height, width)
    depth, surface, axis, normal_sign = _intersect(camera, directions, room_low, room_high, boxes)
    points = camera[:, None].astype(np.float32) + directions * depth[None]
    normals = np.zeros_like(points)
    np.put_along_axis(normals, axis[None], normal_sign[None], 0)

    ray_length = np.linalg.norm(directions, axis=0)
    cos_view = np.abs(np.take_along_axis(directions, axis[None], 0)[0]) / ray_length
    footprint = depth * ray_length / focal / np.maximum(cos_view, 0.1)  # metres per pixel

    albedo = np.empty_like(points)
    for index in np.unique(surface):
        mask = surface == index
        material = _sample_material(rng, index)
        surface_axis = axis[mask][0]
        s_axis, t_axis = TANGENT_AXES[int(surface_axis)]
        mix = _pattern(material, points[s_axis, mask], points[t_axis, mask])
        # Fade the pattern where one pixel spans most of a period, instead of aliasing.
        contrast = np.clip(1.5 - 2.0 * footprint[mask] / material["period"], 0.0, 1.0)
        mix = 0.5 + (mix - 0.5) * contrast
        albedo[:, mask] = (material["base"][:, None] * (1 - mix) + material["second"][:, None] * mix)

    lamp = np.array([rng.uniform(room_low[0] + 0.5, room_high[0] - 0.5), room_high[1] - 0.05,
                     rng.uniform(1.0, room_high[2] - 1.0)], np.float32)
    to_lamp = lamp[:, None] - points
    lamp_distance = np.linalg.norm(to_lamp, axis=0)
    lambert = np.clip((normals * to_lamp).sum(axis=0) / np.maximum(lamp_distance, 1e-3), 0, None)
    lamp_light = rng.uniform(1.2, 1.8) * lambert / (1 + (lamp_distance / 2.5) ** 2)
    headlight = 0.35 * cos_view / (1 + (depth / 4.0) ** 2)
    irradiance = rng.uniform(0.15, 0.3) + lamp_light + headlight
    tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)[:, None]
    radiance = albedo * irradiance[None] * tint * 255 + rng.normal(0, 2.0, size=albedo.shape)
    image = np.clip(radiance, 0, 255).astype(np.uint8).reshape(3, height, width).transpose(1, 2, 0)
    return np.ascontiguousarray(image), depth.reshape(height, width).astype(np.float32)


def generate(n, seed=0, height=480, width=640):
    """Render ``n`` scenes; scene ``i`` depends only on (seed, i).

    Returns
    -------
    images : np.ndarray
        (n, height, width, 3) uint8.
    depths : np.ndarray
        (n, height, width) float32 metres.
    """
    images = np.empty((n, height, width, 3), np.uint8)
    depths = np.empty((n, height, width), np.float32)
    for i in range(n):
        images[i], depths[i] = render_scene(np.random.RandomState([seed, i]), height, width)
    return images, depths


# Toolbox projection mask of a 480 x 640 frame (rows 44:471, cols 40:601): no raw depth outside.
RAW_REGION = (44, 471, 40, 601)


def with_holes(depth, rng):
    """A raw Kinect-like copy of a complete ``depth`` map: 0 where nothing was measured.

    Holes: everything outside the projection region ``RAW_REGION`` (scaled to
    the frame), the shadow the projector casts beside a near object (a pixel
    whose right-hand neighbourhood of width/80 pixels holds a depth 10 %
    nearer), 0-3 elliptic blobs (dark or shiny surfaces) and 1 % isolated
    pixels.  Kept pixels hold the exact ``depth`` value.
    """
    height, width = depth.shape
    raw = np.asarray(depth, np.float32).copy()
    top, bottom, left, right = (int(round(v * s)) for v, s in
                                zip(RAW_REGION, (height / 480, height / 480, width / 640, width / 640)))
    outside = np.ones_like(raw, bool)
    outside[top:bottom, left:right] = False
    reach = max(1, width // 80)
    padded = np.pad(raw, ((0, 0), (0, reach)), mode="edge")
    nearest_right = np.min([padded[:, k:k + width] for k in range(1, reach + 1)], axis=0)
    shadow = nearest_right < 0.9 * raw
    rows, cols = np.mgrid[0:height, 0:width]
    blobs = np.zeros_like(outside)
    for _ in range(rng.randint(0, 4)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.03, 0.12) * height, rng.uniform(0.03, 0.12) * width
        blobs |= ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 < 1
    dropout = rng.uniform(size=raw.shape) < 0.01
    raw[outside | shadow | blobs | dropout] = 0
    return raw


def raw_depths(depths, seed=0):
    """``with_holes`` of each map; map ``i`` depends only on (seed, i) and the map."""
    return np.stack([with_holes(d, np.random.RandomState([seed, i, 1])) for i, d in enumerate(depths)])


def _matlab_v73_header():
    # MATLAB v7.3 files are HDF5 with this 512-byte user block in front.
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 HDF5 schema 1.00 ."
    return text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"


def write_official(out_dir, images, depths, train_idx, test_idx, raw=None):
    """Write images/depths in the official NYU two-file layout.

    Parameters
    ----------
    out_dir : str
        Created if needed.
    images : np.ndarray
        (N, H, W, 3) uint8 RGB.
    depths : np.ndarray
        (N, H, W) float32 metres.
    train_idx, test_idx : array-like of int
        0-based indices; written 1-based as float64 column vectors, as MATLAB does.
    raw : np.ndarray, optional
        (N, H, W) float32 ``rawDepths`` (0 = no measurement); default
        ``raw_depths(depths)``.

    Returns
    -------
    mat_path, splits_path : str
        ``out_dir/nyu_depth_v2_labeled.mat`` and ``out_dir/splits.mat``.
    """
    os.makedirs(out_dir, exist_ok=True)
    mat_path = os.path.join(out_dir, MAT_NAME)
    splits_path = os.path.join(out_dir, SPLITS_NAME)
    images = np.asarray(images, np.uint8).transpose(0, 3, 2, 1)  # (N, 3, W, H) as h5py sees MATLAB
    raw = raw_depths(depths) if raw is None else raw
    raw = np.asarray(raw, np.float32).transpose(0, 2, 1)
    depths = np.asarray(depths, np.float32).transpose(0, 2, 1)  # (N, W, H)
    temporary = mat_path + ".tmp"
    with h5py.File(temporary, "w", userblock_size=512) as h5:
        h5.create_dataset("images", data=images, chunks=(1,) + images.shape[1:], track_times=False)
        h5.create_dataset("depths", data=depths, chunks=(1,) + depths.shape[1:], track_times=False)
        h5.create_dataset("rawDepths", data=raw, chunks=(1,) + raw.shape[1:], track_times=False)
        h5.attrs[DATASET_ATTR] = "synthetic"  # so that reports never mistake it for NYU
    with open(temporary, "r+b") as raw:
        raw.write(_matlab_v73_header())
    os.replace(temporary, mat_path)

    def column(indices):
        return (np.asarray(indices, np.int64).reshape(-1, 1) + 1).astype(np.float64)

    scipy.io.savemat(splits_path, {"trainNdxs": column(train_idx), "testNdxs": column(test_idx)})
    return mat_path, splits_path


def split_indices(n, test_frac, seed):
    """Seeded random train/test split of ``range(n)``; both parts sorted and non-empty."""
    n_test = min(max(1, round_half_up(test_frac * n)), n - 1)
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def main(argv=None):
    """Command-line entry point; returns the exit status."""

    parser = OneLineParser(prog="python -m data.synthetic",
                                     description="Render synthetic rooms in the NYU Depth V2 file layout.")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n", type=int, default=96, help="number of scenes (default 96)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--test-frac", type=float, default=0.25, help="test fraction (default 0.25)")
    parser.add_argument("--size", type=parse_size, default=(640, 480),
                        help="WIDTHxHEIGHT (default 640x480, like NYU)")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2 (one train and one test scene)")
    if not 0 < args.test_frac < 1:
        parser.error("--test-frac must be in (0, 1)")
    width, height = args.size
    start = time.perf_counter()
    images, depths = generate(args.n, seed=args.seed, height=height, width=width)
    train_idx, test_idx = split_indices(args.n, args.test_frac, args.seed)
    try:
        mat_path, splits_path = write_official(args.out, images, depths, train_idx, test_idx,
                                               raw_depths(depths, args.seed))
    except OSError as exc:
        print(f"error: {args.out}: cannot write ({exc})", file=sys.stderr)
        return 2
    print(json.dumps({"mat": mat_path, "splits": splits_path, "n": args.n, "train": len(train_idx),
                      "test": len(test_idx), "size": [width, height], "seed": args.seed,
                      "depth_min": float(depths.min()), "depth_max": float(depths.max()),
                      "seconds": round(time.perf_counter() - start, 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

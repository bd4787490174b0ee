"""Eigen et al.'s augmentation (data/augment.py) on small hand-made image / depth pairs."""
import numpy as np

from data import augment
from data.augment import IDENTITY, AugmentParams, apply_augment, eigen_augment, sample_params

HEIGHT, WIDTH = 48, 64  # tiny official-layout images
SIZE = (32, 24)  # prepared (width, height)


def marked_pair():
    """Far (4 m) dark room with a near (1 m) bright asymmetric block: edges in both."""
    image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    depth = np.full((HEIGHT, WIDTH), 4.0, np.float32)
    image[10:30, 8:20] = 220
    depth[10:30, 8:20] = 1.0
    return image, depth


def bounding_box(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return np.array([rows[0], rows[-1], cols[0], cols[-1]])


def test_flip_mirrors_image_and_depth_together():
    image, depth = marked_pair()
    base = AugmentParams(scale=1.2, offset=(3, 2), flip=False, colour=(1.0, 1.0, 1.0))
    flipped = AugmentParams(scale=1.2, offset=(3, 2), flip=True, colour=(1.0, 1.0, 1.0))
    image_a, depth_a = apply_augment(base, image, depth, SIZE)
    image_b, depth_b = apply_augment(flipped, image, depth, SIZE)
    np.testing.assert_array_equal(image_b, image_a[:, ::-1])
    np.testing.assert_array_equal(depth_b, depth_a[:, ::-1])
    assert bounding_box(depth_a < 2)[3] < SIZE[0] // 2 < bounding_box(depth_b < 2)[2]


def test_translation_moves_image_and_depth_together():
    image, depth = marked_pair()
    dx, dy = 5, 3
    at_origin = AugmentParams(scale=1.4, offset=(0, 0), flip=False, colour=(1.0, 1.0, 1.0))
    shifted = AugmentParams(scale=1.4, offset=(dx, dy), flip=False, colour=(1.0, 1.0, 1.0))
    image_a, depth_a = apply_augment(at_origin, image, depth, SIZE)
    image_b, depth_b = apply_augment(shifted, image, depth, SIZE)
    np.testing.assert_array_equal(image_b[:-dy, :-dx], image_a[dy:, dx:])
    np.testing.assert_array_equal(depth_b[:-dy, :-dx], depth_a[dy:, dx:])
    np.testing.assert_array_equal(bounding_box(depth_b < 2), bounding_box(depth_a < 2) - [dy, dy, dx, dx])


def test_depth_edges_stay_on_image_edges_under_random_augmentation():
    image, depth = marked_pair()
    rng = np.random.RandomState(0)
    flips = set()
    for _ in range(30):
        params = sample_params(rng, SIZE)
        flips.add(params.flip)
        out_image, out_depth = apply_augment(params, image, depth, SIZE)
        assert out_image.shape == (SIZE[1], SIZE[0], 3) and out_image.dtype == np.uint8
        assert out_depth.shape == (SIZE[1], SIZE[0]) and out_depth.dtype == np.float32
        near = (out_depth > 0) & (out_depth < 2.0 / params.scale)  # 0: outside the scaled image
        bright = out_image.astype(float).mean(2) > 0.5 * (40 + 220) * np.mean(params.colour)
        # Area interpolation may blend the one pixel the edge cuts through.
        assert np.abs(bounding_box(near) - bounding_box(bright)).max() <= 1
    assert flips == {True, False}


def test_depth_is_divided_by_scale_and_invalid_stays_zero():
    image = np.full((HEIGHT, WIDTH, 3), 100, np.uint8)
    depth = np.full((HEIGHT, WIDTH), 3.0, np.float32)
    depth[:, :WIDTH // 2] = 0.0  # invalid left half
    rng = np.random.RandomState(1)
    for _ in range(10):
        params = sample_params(rng, SIZE)
        out_image, out_depth = apply_augment(params, image, depth, SIZE)
        valid = out_depth[out_depth != 0]
        assert valid.size and (out_depth == 0).any()
        np.testing.assert_allclose(valid, 3.0 / params.scale, rtol=1e-6)
        assert 1.0 <= params.scale <= 1.5
        colour = np.asarray(params.colour)
        assert np.all((0.8 <= colour) & (colour <= 1.2))
        centre = out_image[SIZE[1] // 2, SIZE[0] // 2]  # the border may lie outside the scaled image
        np.testing.assert_allclose(centre, 100 * colour, atol=1)


def test_every_scale_is_translated_and_outside_is_black_and_invalid():
    """Eigen et al. crop at a random offset at every scale, also at scale 1 (up to 1/40 of a side)."""
    image, depth = marked_pair()
    margin = augment.translation_margin(SIZE)
    assert margin == (round(SIZE[0] / 40), round(SIZE[1] / 40)) and min(margin) >= 1
    rng = np.random.RandomState(3)
    offsets = set()
    for _ in range(400):
        params = sample_params(rng, SIZE)
        sw, sh = augment.scaled_size(SIZE, params.scale)
        x, y = params.offset
        assert -margin[0] <= x <= sw - SIZE[0] + margin[0] and -margin[1] <= y <= sh - SIZE[1] + margin[1]
        if (sw, sh) == SIZE:  # nothing to crop from: only the translation moves the window
            offsets.add(params.offset)
    assert len(offsets) >= 5  # of the 3 x 3 possible at margin 1
    # at scale 1, shifted by (-dx, +dy): the scene moves right by dx and up by dy; what enters is empty
    dx, dy = 2, 1
    shifted = AugmentParams(scale=1.0, offset=(-dx, dy), flip=False, colour=(1.0, 1.0, 1.0))
    image_s, depth_s = apply_augment(shifted, image, depth, SIZE)
    plain_image, plain_depth = apply_augment(IDENTITY, image, depth, SIZE)
    np.testing.assert_array_equal(image_s[:-dy, dx:], plain_image[dy:, :-dx])
    np.testing.assert_array_equal(depth_s[:-dy, dx:], plain_depth[dy:, :-dx])
    assert np.all(image_s[:, :dx] == 0) and np.all(image_s[-dy:] == 0)
    assert np.all(depth_s[:, :dx] == 0) and np.all(depth_s[-dy:] == 0)


def test_resize_depth_is_nearest_and_never_mixes_invalid():
    halves = np.zeros((4, 4), np.float32)
    halves[:, 2:] = 5.0
    assert set(np.unique(augment.resize_depth(halves, (3, 3)))) <= {0.0, 5.0}
    # Exact ties (2:1) average the valid pixels only: the zero column is not blended in.
    np.testing.assert_array_equal(augment.resize_depth(halves, (2, 2)), [[0.0, 5.0], [0.0, 5.0]])
    depth = np.arange(16, dtype=np.float32).reshape(4, 4)   # 0 (top left) is invalid
    # output x reads source u = (x + 0.5) * n_in / n_out - 0.5: 4 -> 3 gives 0.17, 1.5, 2.83, i.e.
    # pixel 0, the mean of 1 and 2 (a tie), pixel 3; 4 -> 2 gives the ties 0.5 and 2.5
    out = augment.resize_depth(depth, (3, 3))
    np.testing.assert_array_equal(out, [[0, 1.5, 3], [6, 7.5, 9], [12, 13.5, 15]])
    assert out.dtype == np.float32
    # a tie with the invalid 0 averages the valid pixels only: 1 at (2, 3); (1 + 4 + 5) / 3 at (2, 2)
    np.testing.assert_allclose(augment.resize_depth(depth, (2, 3)), [[1, 2.5], [6.5, 8.5], [12.5, 14.5]])
    np.testing.assert_allclose(augment.resize_depth(depth, (2, 2)), [[10 / 3, 4.5], [10.5, 12.5]])
    # enlarging 2 -> 4: u = -0.25, 0.25, 0.75, 1.25, so each pixel twice
    np.testing.assert_array_equal(augment.resize_depth(np.array([[0, 5], [7, 9]], np.float32), (4, 4)),
                                  [[0, 0, 5, 5], [0, 0, 5, 5], [7, 7, 9, 9], [7, 7, 9, 9]])


def test_eigen_augment_uses_only_the_given_rng():
    image, depth = marked_pair()
    np.random.seed(0)
    first = eigen_augment(np.random.RandomState(7), image, depth, SIZE)
    for global_seed in (1, 2, 3):   # the global numpy state must not matter (seed 0 vs 1: flip would differ)
        np.random.seed(global_seed)
        again = eigen_augment(np.random.RandomState(7), image, depth, SIZE)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
    # another seed gives another draw (scale, crop, flip or colour)
    other = eigen_augment(np.random.RandomState(8), image, depth, SIZE)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))



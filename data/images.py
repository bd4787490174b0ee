"""Image files on disk: the one finder of ``predict.py`` and ``train.py --unlabeled``.

The rules, the same for both tools: a folder is searched recursively (symbolic
links to folders are not followed), a file is an image when its name ends in
``.png``, ``.jpg`` or ``.jpeg`` in any case, names starting with ``.`` (hidden
files and folders, e.g. macOS ``._x.jpg`` or ``.ipynb_checkpoints``) are
skipped, and the images are taken in sorted order of their paths relative to
the folder.
"""
import os

import cv2
from PIL import Image, ImageFile, UnidentifiedImageError
from tqdm import tqdm

from .errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(folder):
    """Paths relative to ``folder`` of the images in it and below, sorted (rules: module docstring)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)


def read_rgb(path):
    """(H, W, 3) uint8 RGB of an image file (grey and RGBA become 3-channel); DataError if unreadable."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError("%s: not a readable image" % path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_complete(path):
    """DataError if Pillow finds the file truncated or corrupt.

    libjpeg only warns about a truncated JPEG and OpenCV returns it with a grey-filled
    rest; Pillow decodes strictly unless ``LOAD_TRUNCATED_IMAGES`` is set, which gluoncv
    sets for everyone on import, so it is switched off here for the check.  Files Pillow
    does not recognise are left to OpenCV.
    """
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        pass
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError("%s: not a readable image (%s)" % (path, str(err).splitlines()[0] or "decode failed"))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def check_images(paths, progress=True, desc="checking images", hint=""):
    """Decode every file once, so a bad one fails now and not hours later; returns their (H, W).

    Raises DataError naming the first unreadable file, followed by ``hint``.
    """
    sizes = []
    for path in tqdm(paths, desc=desc, unit="img", disable=not progress or len(paths) < 2, leave=False):
        try:
            check_complete(path)
            sizes.append(read_rgb(path).shape[:2])
        except DataError as err:
            raise DataError("%s%s" % (err, hint))
    return sizes

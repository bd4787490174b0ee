"""Sizes bounded by the machine's memory, checked before any work: an absurd --size is one line, not an OOM kill.

The per-pixel figures are estimates, on the generous side:
  PREPARE_BYTES_PER_PIXEL   data.prepare holds a few full-size copies of one row in flight (the
                            resized RGB image, depth maps as float32, an augmented copy): ~ 64 B.
  FORWARD_BYTES_PER_PIXEL   one float32 forward pass of the depth net + confidence net for a batch of
                            one image: ResNet-50's activations (~ 60 floats per input pixel summed over
                            its stages, about twice that with the bottleneck intermediates), the 256-channel
                            top-down maps at 1/4 (16 floats per pixel each), the confidence net's
                            512-channel maps; x 2 for MXNet's workspace: ~ 2 KB.
"""
import os

PREPARE_BYTES_PER_PIXEL = 64
FORWARD_BYTES_PER_PIXEL = 2048


def physical_memory():
    """Bytes of RAM of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(what, size, bytes_per_pixel, error, images=1):
    """Raise ``error`` (one line) when ``images`` of ``size`` = (width, height) need more memory than the machine has."""
    width, height = size
    need, have = width * height * bytes_per_pixel * images, physical_memory()
    if have is not None and need > have:
        raise error("%s at %dx%d needs about %.0f GB of memory (an estimate, common/memory.py); this machine has "
                    "%.0f GB" % (what, width, height, need / 2 ** 30, have / 2 ** 30))

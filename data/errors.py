"""The one exception type the data layer raises for bad user input."""
import sys


class DataError(Exception):
    """A one-line, user-facing problem with an input or output file.

    The message always names the offending file and says what is wrong with
    it, e.g. ``"/x/splits.mat: testNdxs is empty"``.  Every command-line tool
    of the project catches it, prints ``error: <message>`` to stderr and
    exits with status 2, without a traceback and without creating outputs.
    """


def one_line(err):
    """The meaningful line of an exception's message, never "Traceback ...".

    MXNet's errors carry a C++ stack trace whose last line holds the cause; OpenCV's
    hold ``error: (-215) ...`` lines; HDF5's a single line.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith(("[bt]", "Stack trace", "File ", "Traceback", ">")):
            return line[:600]
    return type(err).__name__


def edge_errors():
    """Exception types every command line turns into one ``error:`` line (MXNet, OpenCV, OS/HDF5).

    A library that is not loaded cannot have raised: it is not imported here.
    """
    kinds = [DataError, OSError, ValueError]
    if "mxnet" in sys.modules:
        kinds.append(sys.modules["mxnet"].base.MXNetError)
    if "cv2" in sys.modules:
        kinds.append(sys.modules["cv2"].error)
    return tuple(kinds)

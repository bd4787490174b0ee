"""The one exception type the data layer raises for bad user input."""


class DataError(Exception):
    """A one-line, user-facing problem with an input or output file.

    The message always names the offending file and says what is wrong with
    it, e.g. ``"/x/splits.mat: testNdxs is empty"``.  Every command-line tool
    of the project catches it, prints ``error: <message>`` to stderr and
    exits with status 2, without a traceback and without creating outputs.
    """

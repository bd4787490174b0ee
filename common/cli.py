"""What every command line shares: usage errors as one ``error: ...`` line."""
import argparse


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as a single ``error: ...`` line (exit 2), like every other bad input."""

    def error(self, message):
        self.exit(2, "error: %s (see --help)\n" % message)

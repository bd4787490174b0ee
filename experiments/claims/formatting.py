"""How claims.md writes a number: means, signed differences, intervals, shares, metric arrows."""
from .tables import LOWER_IS_BETTER


def fmt(x, d=3):
    """``x`` with ``d`` decimals, or a dash for None."""
    return "—" if x is None else "%.*f" % (d, x)


def fmt_ms(pair, d=3):
    """(mean, std) as 'mean ± std', the mean alone without a std, a dash without a mean."""
    m, s = pair
    return "—" if m is None else ("%.*f" % (d, m) if s is None else "%.*f ± %.*f" % (d, m, d, s))


def signed(x, d=4):
    """``x`` with its sign (a true minus), or a dash."""
    return "—" if x is None else ("%+.*f" % (d, x)).replace("-", "−")


def fmt_ci(ci, d=4):
    """[low, high] signed, or 'n < 2' without an interval."""
    return "n < 2" if ci is None else "[%s, %s]" % (signed(ci[0], d), signed(ci[1], d))


def pct(x):
    return "—" if x is None else ("%+.0f %%" % (100 * x)).replace("-", "−")


def arrow(m):
    return "%s %s" % (m, "↓" if m in LOWER_IS_BETTER else "↑")


def seeds_text(seeds):
    return ", ".join(map(str, seeds)) if seeds else "none"

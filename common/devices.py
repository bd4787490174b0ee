"""``--gpus`` -> MXNet contexts, checked before any work starts."""
import mxnet as mx


def contexts(gpus):
    """``[]`` -> ``[mx.cpu()]``; ``[0, 1]`` -> ``[mx.gpu(0), mx.gpu(1)]`` (ValueError if one is missing)."""
    check_gpus(gpus)
    return [mx.gpu(i) for i in gpus] if gpus else [mx.cpu()]


def check_gpus(gpus):
    """Fail before any work if a GPU id does not exist here."""
    if not gpus:
        return
    try:
        count = mx.context.num_gpus()
    except mx.base.MXNetError:
        count = 0
    missing = [g for g in gpus if not 0 <= g < count]
    if missing:
        raise ValueError("--gpus %s: this machine's MXNet sees %s; give --gpus '' to run on the CPU" % (
            ",".join(map(str, gpus)), "%d GPU(s), ids 0-%d" % (count, count - 1) if count else "no GPU"))

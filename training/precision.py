"""``--amp``: mixed precision with MXNet's AMP (``mxnet.contrib.amp``).

Modes: ``off`` (float32, the default), ``fp16`` (float16 on GPUs, dynamic loss
scaling), ``bf16`` (bfloat16 on CPUs) and ``auto`` (fp16 when training on GPUs, bf16
on a CPU with bfloat16 instructions, else float32 with a note).

What AMP does here: ``amp.init`` wraps MXNet's operators so that the graphs built
afterwards cast the inputs of convolutions (and fully connected layers) to the low
precision and keep the operators of AMP's float32 lists (softplus = ``softrelu``,
sigmoid; BatchNorm's parameters and statistics; under bf16 also the transposed
convolutions, ``_float32_deconvolution``) in float32.
The parameters themselves stay float32 (the master copies the optimisers update and
checkpoints store); both networks end in float32 operators, so the losses, the
pseudo-label cache, the metrics and evaluation are float32.

Loss scaling: ``amp.init_trainer`` sets each optimiser up for a dynamic loss scaler
(MXNet's rule, ``StepScaler``) and ``amp.scale_loss`` multiplies its loss before the
backward pass (the gradients are divided back in ``Trainer.step``).  A step whose
gradients overflow is skipped as a whole by the trainer's non-finite logic
(``grads_finite``, a second read-back after the backward pass), and both scalers then
halve their scale; such a step counts in ``skipped_steps`` but not towards
``--max-bad-steps`` (``overflow_only``).  bf16 has float32's exponent range and does
not overflow, but takes the same path, so the CPU runs test the code the GPU float16
runs use.  The scalers' state is part of every
checkpoint (``state`` / ``load_state``), which keeps resuming exact.

``amp.init`` cannot be undone and applies to every graph built later in the process:
a float32 network must have built its graph (first forward) before it is called.
"""
import mxnet as mx
import numpy as np
from mxnet.contrib.amp.loss_scaler import LossScaler

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CHUNK = 200  # arrays per multi-array operator call
_initialised = []  # the target dtype amp.init was called with in this process


class PrecisionError(ValueError):
    """An --amp setting this machine cannot run (one-line message)."""


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16(flags=None):
    """The bfloat16 instruction sets this CPU has (AVX512-BF16, AMX-BF16), sorted."""
    flags = cpu_flags() if flags is None else flags
    return sorted(f for f in CPU_BF16_FLAGS if f in flags)


def resolve(mode, ctx, flags=None):
    """(target dtype or None for float32, a note for the user or None) of ``--amp mode`` on ``ctx``."""
    gpu = any(c.device_type == "gpu" for c in ctx)
    if mode == "off":
        return None, None
    if mode == "fp16" and not gpu:
        raise PrecisionError("--amp fp16 needs GPUs (--gpus); on a CPU use --amp bf16")
    if mode == "bf16" and gpu:
        raise PrecisionError("--amp bf16 is for CPUs (MXNet casts to bfloat16 only there); on GPUs use --amp fp16")
    if gpu:
        return "float16", None
    have = cpu_bf16(flags)
    if have:
        return "bfloat16", None
    if mode == "auto":
        return None, "--amp auto: this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16); training in float32"
    return "bfloat16", ("--amp bf16: this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16); "
                        "bfloat16 runs emulated, slower than float32")


def init_amp(dtype):
    """``amp.init(dtype)`` once per process; another dtype later would be ignored by MXNet, so refuse it."""
    from mxnet.contrib import amp
    if _initialised and _initialised[0] != dtype:
        raise PrecisionError("AMP is already set to %s in this process; %s needs a new process"
                             % (_initialised[0], dtype))
    if not _initialised:
        if dtype == "bfloat16":
            # MXNet 1.9.1 + oneDNN: the amp_cast AMP puts on a float32 Deconvolution's weight makes the
            # hybridized graph fail ("could not execute a primitive", or a crash); cast only its data
            fp32 = [op for op in amp.list_fp32_ops(amp.amp.bfloat16) if op != "Deconvolution"]
            amp.init(target_dtype=dtype, fp32_ops=fp32)
            _float32_deconvolution()
        else:
            amp.init(target_dtype=dtype)
        _initialised.append(dtype)


def _float32_deconvolution():
    """``Deconvolution`` (the confidence net's upsampling) in float32 with its data cast, weights as they are."""
    from mxnet import ndarray, symbol
    for module in (symbol, ndarray):
        def deconvolution(data, *args, _op=module.Deconvolution, _module=module, **kwargs):
            if isinstance(data, symbol.Symbol) or data.dtype != np.float32:
                data = _module.amp_cast(data, dtype="float32")
            return _op(data, *args, **kwargs)
        module.Deconvolution = module.op.Deconvolution = deconvolution


def graph_casts(net):
    """How many AMP casts the built graph of a hybridized ``net`` holds (0: a float32 graph)."""
    graph = net._cached_graph
    if not graph:
        return 0
    return graph[1].tojson(remove_amp_cast=False).count('"op": "amp_')


def for_run(opts, ctx):
    """The ``Precision`` of a training with ``opts`` on ``ctx``; ``opts.amp_dtype`` (config.json) says which."""
    dtype = resolve(getattr(opts, "amp", "off"), ctx)[0]
    opts.amp_dtype = dtype or "float32"
    return Precision(dtype)


class StepScaler(LossScaler):
    """MXNet's dynamic loss scaler (``amp.loss_scaler.LossScaler``: start at 2^16, halve after an
    overflow, double after 2000 steps without one, at most 2^24), told the verdict of the one
    gradient check of ``Trainer.train_step`` instead of checking each optimiser's gradients again.

    ``gluon.Trainer.step`` asks ``has_overflow`` before it updates; ``train_step`` only steps
    when every gradient was finite, and reports a skipped step with ``record(overflow=True)``.
    """

    def has_overflow(self, params):
        return self.record(overflow=False)

    def record(self, overflow):
        """One step's verdict; the same bookkeeping as ``LossScaler.has_overflow``."""
        self._loss_scale = self._next_loss_scale
        if overflow:
            self._next_loss_scale = self._loss_scale / 2.0
            self._unskipped = 0
        else:
            self._unskipped += 1
        if self._unskipped == self._scale_seq_len:
            self._unskipped = 0
            self._next_loss_scale = min(self._max_loss_scale, self._loss_scale * 2.0)
        return overflow


class Precision:
    """The Trainer's side of ``--amp``: nothing when ``dtype`` is None (float32)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.trainers = []
        if dtype:
            init_amp(dtype)  # before the networks are built

    def attach(self, trainers):
        """Give each ``gluon.Trainer`` its dynamic loss scaler (``amp.init_trainer``)."""
        if not self.dtype:
            return
        from mxnet.contrib import amp
        for trainer in trainers:
            amp.init_trainer(trainer)
            trainer._amp_loss_scaler = StepScaler()  # Trainer.train_step checks the gradients once, for both
        self.trainers = list(trainers)

    def scaled(self, losses, trainer):
        """``losses`` times ``trainer``'s loss scale (``amp.scale_loss``), for the backward pass."""
        if not self.dtype:
            return losses
        from mxnet.contrib import amp
        with mx.autograd.record(), amp.scale_loss(losses, trainer) as scaled:  # recorded: backward starts there
            return scaled

    def grads_finite(self, net_params):
        """Whether every gradient of ``net_params`` is finite (True at once in float32).

        One sum of squares over all gradients (``multi_sum_sq``): NaN and inf propagate
        into it, and so does a gradient above ~1e19, which counts as an overflow.  It takes
        0.02-0.07 s for the 35 M gradients on 2 CPU cores; MXNet's own check
        (``multi_all_finite``, ``LossScaler.has_overflow``) takes 0.7-2 s.  Its read-back
        is the step's second one, after the backward pass (the first checks the losses).
        """
        if not self.dtype:
            return True
        grads = [g for params in net_params for p in params if p.grad_req != "null" for g in p.list_grad()]
        sums = [mx.nd.multi_sum_sq(*grads[i:i + CHUNK], num_arrays=len(grads[i:i + CHUNK])).sum()
                for i in range(0, len(grads), CHUNK)]
        return bool(mx.nd.contrib.isfinite(mx.nd.add_n(*sums)).asscalar())

    def skipped(self):
        """A skipped step: the loss scalers apply the overflow rule (``StepScaler``)."""
        for trainer in self.trainers:
            trainer._amp_loss_scaler.record(overflow=True)

    def overflow_only(self, total):
        """Whether a skipped step had finite losses (``total``) and only its scaled gradients overflowed,
        while the loss scale can still fall (>= 1): loss scaling at work, not a failing run."""
        if not self.dtype or min(t._amp_loss_scaler._next_loss_scale for t in self.trainers) < 1:
            return False
        return all(np.isfinite(v.asscalar()) for v in total.values())

    def state(self):
        """The scalers' state for a checkpoint (None when float32)."""
        if not self.dtype:
            return None
        return {"dtype": self.dtype, "scalers": [
            {"loss_scale": s._loss_scale, "next_loss_scale": s._next_loss_scale, "unskipped": s._unskipped}
            for s in (t._amp_loss_scaler for t in self.trainers)]}

    def load_state(self, state):
        """Restore ``state()`` (a checkpoint without one keeps the initial scale)."""
        if not self.dtype or not state:
            return
        for trainer, saved in zip(self.trainers, state["scalers"]):
            s = trainer._amp_loss_scaler
            s._loss_scale, s._next_loss_scale = float(saved["loss_scale"]), float(saved["next_loss_scale"])
            s._unskipped = int(saved["unskipped"])

    def loss_scales(self):
        """The current loss scale of each optimiser (depth, confidence)."""
        return [t._amp_loss_scaler.loss_scale for t in self.trainers]

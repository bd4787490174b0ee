"""The joint semi-supervised training of §4, epoch by epoch.

``train()`` runs the epochs; ``run_epoch()`` pairs labeled and unlabeled batches and
owns backward / step / logging; ``process_labeled()`` and ``process_unlabeled()``
are the two halves of §4 and return the loss terms of ``compute_losses``.

One step = one labeled batch + one unlabeled batch, planned per epoch from (seed, epoch)
(``epoch_steps``; the pairing and the workers' shares: ``training.distributed``).

Schedule (§5.1): the confidence net learns on labeled data in every epoch.  The
unlabeled images are untouched until epoch ``semi_start - 1``, whose forward pass
fills the pseudo-label cache; from ``semi_start`` on each unlabeled forward pass both
uses the cache of the previous epoch (L_semi) and refills it.  With lambda = 0 the
unlabeled images are never visited, which is exactly supervised training.  With
lambda > 0 and BatchNorm on batch statistics (training from scratch) the unlabeled
images in a step's batch also shift the statistics the labeled images are normalised
with; with ImageNet weights BatchNorm is frozen and they do not (docs/claims/from_scratch/
shows what that does to a comparison).  The data: ``training.run_data``; the cache: in
memory or in files (``--cache-on``, ``training.disk_cache``).
"""
import math
import os
import time
from contextlib import nullcontext

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

import config
from common import crash
from common.devices import contexts
from evaluation.inference import score_depth
from evaluation.metrics import DEFAULT_PROTOCOL, METRICS, PROTOCOLS
from rundir import layout
from rundir.files import summary_line
from rundir.state import TrainingPoint
from symbols import get_confidence_net, get_depth_net

from . import checkpoint, losses, precision
from .bn_snapshot import BatchNormSnapshot
from .disk_cache import make_cache
from .interrupt import Interrupted
from .optimisers import make_optimisers
from .run_data import RunData
from .distributed import (OwnedSlots, World, labeled_plan, owned_slots, unlabeled_batch_size,
                          unlabeled_plan)

# Loss terms summed over workers each step (fixed order: one kvstore key holds them).
LOSS_TERMS = ("sup", "conf", "semi", "coverage")
# With --unlabeled-per-step: kept pseudo-label pixels and the sum of their ages (epochs)
AGE_TERMS = ("kept", "age")
NO_CLOCK = nullcontext()  # Trainer.phase when nothing times the step


class TrainingStopped(Exception):
    """Training stopped on purpose (too many non-finite losses), one-line message."""


class Trainer:
    """Both networks, both optimisers, the pseudo-label cache and the run directory."""

    def __init__(self, opts, ctx=None, claim=None, extra_unlabeled=None):
        """``claim(rank)``, if given, locks the run directory (``train.py``) before anything is written;
        ``extra_unlabeled``: a dataset in place of the --unlabeled folder (``training.run_data``)."""
        self.opts = opts
        self.ctx = ctx or contexts(opts.gpus)
        self.run_dir = opts.out
        data = RunData(opts, extra_unlabeled)
        self.height, self.width, self.split = data.height, data.width, data.split
        self.labeled, self.val, self.test = data.labeled, data.val, data.test
        unlabeled = data.unlabeled

        self.world = World(opts.kvstore)
        self.lock = claim(self.world.rank) if claim else None
        # self.unlabeled: this worker's slots (all of them in a single process); cache index = position
        self.num_unlabeled = len(unlabeled)
        self.unlabeled = unlabeled if self.world.size == 1 else \
            OwnedSlots(unlabeled, owned_slots(self.num_unlabeled, self.world.rank, self.world.size))
        self.steps = math.ceil(len(self.labeled) / (opts.batch_size * self.world.size))
        self.per_step = opts.unlabeled_per_step  # None: the paper's epoch
        self.unlabeled_batch = unlabeled_batch_size(len(self.unlabeled), self.steps, self.per_step) \
            if self.uses_unlabeled() else 0
        self.loss_terms = LOSS_TERMS if self.per_step is None else LOSS_TERMS + AGE_TERMS

        self.precision = precision.for_run(opts, self.ctx)  # --amp: amp.init before the networks are built
        mx.random.seed(opts.seed)
        self.depth_net = get_depth_net(opts.pretrained, opts.backbone_params, ctx=self.ctx,
                                       freeze_bn=opts.freeze_bn)
        self.conf_net = get_confidence_net(ctx=self.ctx)
        self.depth_net.hybridize(static_alloc=True)
        self.conf_net.hybridize(static_alloc=True)
        self.net_params = [list(net.collect_params().values()) for net in (self.depth_net, self.conf_net)]
        # BatchNorm running statistics: moved by every forward pass unless frozen
        self.bn_snapshot = BatchNormSnapshot([] if self.depth_net.freeze_bn else
                                             [p for params in self.net_params for p in params if p.grad_req == "null"])
        self.depth_trainer, self.conf_trainer = make_optimisers(
            opts, self.depth_net, self.conf_net, self.steps, self.ctx, None if self.world.distributed else opts.kvstore)
        self.precision.attach((self.depth_trainer, self.conf_trainer))  # loss scalers (--amp)
        self.cache = make_cache(opts, len(self.unlabeled), self.height // config.OUTPUT_STRIDE,
                                self.width // config.OUTPUT_STRIDE, self.run_dir, self.world.rank)
        # what the cache stores: the prediction (§4.2.3) or, with --pseudo-labels oracle, the ground truth
        self.pseudo_labels = data.pseudo_labels(opts.pseudo_labels, self.unlabeled.slots
                                                if isinstance(self.unlabeled, OwnedSlots) else None)
        # a cache in files or spread over workers is checkpointed as shards beside the checkpoint
        self.checkpoints = checkpoint.Checkpoints(
            self.run_dir, (self.depth_net, self.conf_net), (self.depth_trainer, self.conf_trainer), self.cache,
            self.world, sharded=opts.cache_on == "disk" or self.world.distributed, ctx=self.ctx)
        # where the run stands: the counters a checkpoint stores (save / resume)
        self.epoch, self.start_iter, self.bad_steps, self.skipped = 0, 0, 0, 0
        self.history, self.partial, self.best_val = [], {}, float("inf")
        self.clock = None  # bench/train_step.py: times the phases of a step (``phase``)
        self.signals = None  # train.py: SIGINT / SIGTERM stop at the next step (training.interrupt)

    # ---- set-up -----------------------------------------------------------------
    def mask_rule(self):
        """B's rule in words, for curves.png: 'C >= 0.9' (eq. 5) or --keep-share's 'top 50 %'."""
        keep = getattr(self.opts, "keep_share", None)
        return "C >= %g" % self.opts.t_semi if keep is None else "top %g %% by C" % (100 * keep)

    def uses_unlabeled(self):
        return self.opts.lambda_semi > 0 and self.num_unlabeled > 0

    def unlabeled_phase(self, epoch):
        """None, 'fill' (forward only, the epoch before semi_start) or 'semi'."""
        if not self.uses_unlabeled() or epoch < self.opts.semi_start - 1:
            return None
        return "fill" if epoch < self.opts.semi_start else "semi"

    # ---- one step ------------------------------------------------------------------
    def shard(self, arrays, max_shards=None):
        """Split a batch over the devices (fewer shards if it has fewer rows)."""
        n = min(len(self.ctx), arrays[0].shape[0], max_shards or len(self.ctx))
        return list(zip(*[[p.as_in_context(c) for p, c in zip(gluon.utils.split_data(a, n, even_split=False), self.ctx)]
                          for a in arrays]))

    def process_labeled(self, image, depth, pred, num_pixels):
        """§4.1, §4.2.2: L_sup (eq. 4) and, on E treated as constant, L_conf (eqs. 1, 2)."""
        conf = self.conf_net(image, pred.detach())
        # E detached, not only held constant: L_conf's graph then does not reach the depth
        # net, so train_step backpropagates both losses in one pass
        target = losses.confidence_target(mx.nd, pred.detach(), depth, self.opts.alpha)
        return {"sup": losses.supervised_loss(mx.nd, pred, depth, num_pixels),
                "conf": losses.confidence_loss(mx.nd, conf, target, depth, num_pixels)}

    def process_unlabeled(self, image, ids, pred, num_pixels, unlabeled_pixels, epoch, phase):
        """§4.2.3: L_semi against the cache of epoch - 1 (eqs. 5, 6); then this forward
        pass's depth and confidence become the cache of this epoch.  L_semi is divided by
        ``num_pixels`` (labeled, as L_sup); coverage = kept share of ``unlabeled_pixels``."""
        out = {}
        if phase == "semi":
            with self.phase("cache"):
                read = self.cache.read(ids, epoch, self.opts.t_semi, ctx=image.context, ages=bool(self.per_step),
                                       share=self.opts.keep_share)
                pseudo, mask = read[:2]
                if self.per_step:  # kept pixels and their summed ages, for metrics.jsonl
                    out["kept"], out["age"] = mask.sum(), mx.nd.broadcast_mul(mask, read[2]).sum()
            out["semi"] = losses.semi_supervised_loss(mx.nd, pred, pseudo, mask, num_pixels)
            out["coverage"] = mask.sum() / unlabeled_pixels
        with autograd.pause():  # the confidence net learns on labeled data only (§3)
            conf = self.conf_net(image, pred.detach())
        with self.phase("cache"):
            self.cache.write(ids, self.pseudo_labels(ids, pred.detach()), conf, epoch)
        return out

    def compute_losses(self, labeled, unlabeled, epoch, phase, counts=None):
        """Loss terms per device: 'sup', 'conf', 'depth' (eq. 3) and, when semi, 'semi', 'coverage'.

        Labeled and unlabeled images of a device go through the depth net in one
        forward pass (one batch shape per step for the hybridized graph).  With frozen
        BatchNorm (ImageNet weights) the two halves do not interact; trained from
        scratch they share the batch statistics.  ``counts`` =
        (labeled, unlabeled) images of the step over all workers, which the losses are
        normalised by (default: this batch's).
        """
        q = (self.height // config.OUTPUT_STRIDE) * (self.width // config.OUTPUT_STRIDE)
        image, depth = labeled
        # one constant for every sum of the step: the paper's eq. 3 weighs pixels, not batches (losses.py)
        n_pix = (counts[0] if counts else image.shape[0]) * q
        parts = self.shard((image, depth))
        if unlabeled is not None and phase:
            u_image, ids = unlabeled
            u_pix = (counts[1] if counts else u_image.shape[0]) * q  # only for the coverage figure
            u_parts = self.shard((u_image, ids), max_shards=len(parts))
        else:
            u_parts = []
        per_device = []
        for k, (img, dep) in enumerate(parts):
            if k < len(u_parts):
                u_img, u_ids = u_parts[k]
                pred = self.depth_net(mx.nd.concat(img, u_img, dim=0))
                n = img.shape[0]
                terms = self.process_labeled(img, dep, pred[:n], n_pix)
                terms.update(self.process_unlabeled(u_img, u_ids, pred[n:], n_pix, u_pix, epoch, phase))
            else:
                terms = self.process_labeled(img, dep, self.depth_net(img), n_pix)
            semi = terms.get("semi")
            terms["depth"] = terms["sup"] if semi is None else losses.depth_loss(terms["sup"], semi,
                                                                                  self.opts.lambda_semi)
            per_device.append(terms)
        return per_device

    def train_step(self, labeled, unlabeled, epoch, phase, counts=None):
        """Forward, then backward and both optimiser steps unless a loss is not finite.

        The finite check reads the losses back right after the forward pass, so the
        backward pass and the optimiser updates are queued in one go behind it (their
        Python dispatch overlaps the backward computation) and a skipped step costs no
        backward at all.  Distributed, the loss terms are summed over the workers before
        the check and the gradients after the backward pass, so all of them take the same
        decision and apply the same update.
        """
        if self.world.distributed:
            self.world.broadcast(self.net_params, len(self.loss_terms))
        self.bn_snapshot.take()  # a skipped step must not move the BatchNorm statistics either
        with autograd.record():
            per_device = self.compute_losses(labeled, unlabeled, epoch, phase, counts)
        # a device without unlabeled rows (fewer of them than devices) has no 'semi' term
        total = {k: sum(t[k].as_in_context(mx.cpu()) for t in per_device if k in t)
                 for k in per_device[0] if k in self.loss_terms}
        if self.world.distributed:
            total = self.world.sum_terms(total, self.loss_terms, self.loss_terms if phase == "semi" else
                                         self.loss_terms[:2])  # a worker without unlabeled images adds 0
        # The one per-step read-back: a non-finite step must be skipped before it is applied.
        finite = bool(mx.nd.contrib.isfinite(total["sup"] + total["conf"] + total.get("semi", 0)).asscalar())
        if finite:
            # one pass for both losses: L_conf's graph starts at the detached E and does
            # not reach the depth net, so each net gets the gradient of its own loss
            with self.phase("backward"):  # --amp: each loss times its optimiser's loss scale
                autograd.backward(self.precision.scaled([t["conf"] for t in per_device], self.conf_trainer) +
                                  self.precision.scaled([t["depth"] for t in per_device], self.depth_trainer))
            if self.world.distributed:
                self.world.allreduce_grads(self.net_params)
            finite = self.precision.grads_finite(self.net_params)  # --amp: did the scaled gradients overflow?
        if finite:
            with self.phase("optimiser"):
                self.depth_trainer.step(1)
                self.conf_trainer.step(1)
        else:
            self.bn_snapshot.restore()
            self.precision.skipped()  # --amp: the loss scalers learn of the skip
        with self.phase("cache"):
            self.cache.flush()
        return total, finite

    def phase(self, name):
        """A span of the step that ``self.clock`` times (bench/train_step.py); nothing when it is None."""
        return self.clock.span(name) if self.clock else NO_CLOCK

    # ---- epochs ------------------------------------------------------------------------
    def loader(self, dataset, batches):
        return gluon.data.DataLoader(dataset, batch_sampler=batches, num_workers=self.opts.num_workers)

    def epoch_steps(self, epoch, start=0):
        """(iteration, labeled batch, unlabeled batch or None, counts) of each step of ``epoch`` from
        iteration ``start``: the one data plan of an epoch (``run_epoch``; bench/ times the same), planned
        on the call, loaded step by step."""
        o, rank, world = self.opts, self.world.rank, self.world.size
        labeled = labeled_plan(len(self.labeled), o.batch_size, o.seed, epoch, rank, world)[start:]
        unlabeled, u_counts = unlabeled_plan(self.num_unlabeled, self.steps, o.seed, epoch, rank, world,
                                             self.per_step) if self.unlabeled_phase(epoch) else ([], [])
        unlabeled, u_counts = unlabeled[start:], u_counts[start:]
        u_iter = iter(self.loader(self.unlabeled, unlabeled)) if unlabeled else iter(())
        batches = self.loader(self.labeled, [indices for indices, _, _ in labeled])

        def steps():
            for step, (batch, (_, placeholder, n_global)) in enumerate(zip(batches, labeled)):
                if placeholder:  # this worker's share of the last batch is empty: NaN depth adds nothing
                    batch = (batch[0], mx.nd.full(batch[1].shape, np.nan))
                yield start + step, batch, next(u_iter, None), (n_global, u_counts[step] if step < len(u_counts) else 0)
        return steps()

    def run_epoch(self, epoch):
        """One pass over every labeled (and, when used, unlabeled) image; returns the epoch's metrics."""
        o, start, tic = self.opts, self.start_iter, time.time()
        tic -= self.partial.get("seconds", 0)  # resumed mid-epoch: the time before the interruption counts
        phase = self.unlabeled_phase(epoch)
        sums = {k: mx.nd.array([v]) for k, v in self.partial.get("sums", {}).items()}
        good = self.partial.get("good", 0)
        desc = "epoch %d of 0..%d%s" % (epoch, o.epochs - 1, " [%s]" % phase if phase else "")
        bar = tqdm(total=self.steps, initial=start, desc=desc,
                   disable=o.no_progress or self.world.rank > 0, leave=False, dynamic_ncols=True)
        for it, batch, unlabeled, counts in self.epoch_steps(epoch, start):
            total, finite = self.train_step(batch, unlabeled, epoch, phase, counts)
            if finite:
                self.bad_steps, good = 0, good + 1
                for k, v in total.items():
                    sums[k] = sums[k] + v if k in sums else v
            else:
                # --amp: an overflow of the scaled gradients (finite losses) only lowers the loss scale
                self.bad_steps += 0 if self.precision.overflow_only(total) else 1
                self.skipped += 1
                if self.bad_steps >= o.max_bad_steps:
                    bar.close()
                    raise TrainingStopped("%d non-finite losses in a row at epoch %d, iteration %d; stopped. "
                                          "The last good checkpoint is in %s" % (
                                              self.bad_steps, epoch, it, os.path.join(self.run_dir, "checkpoints")))
            if ((it + 1) % o.log_every == 0 or it + 1 == self.steps) and good:
                bar.set_postfix({k: "%.4f" % (v.asscalar() / good) for k, v in sums.items() if k not in AGE_TERMS})
            bar.update(1)
            stop = self.stop_signal()
            if (stop or o.save_every and (it + 1) % o.save_every == 0) and it + 1 < self.steps:
                self.partial = {"sums": {k: float(v.asscalar()) for k, v in sums.items()}, "good": good,
                                "seconds": time.time() - tic}
                self.save("last", epoch, it + 1)
                crash.crash_point("step:%d:%d" % (epoch, it + 1))  # tests only (common/crash.py)
                if stop:
                    bar.close()
                    raise Interrupted(stop, epoch, it + 1)
        bar.close()
        means = {k: float(v.asscalar()) / max(good, 1) for k, v in sums.items()}
        metrics = {"epoch": epoch, "phase": phase or "supervised", "sup": means.get("sup"),
                   "semi": means.get("semi"), "conf": means.get("conf"),
                   "mask_coverage_pct": 100 * means["coverage"] if "coverage" in means else None,
                   "lr": self.depth_trainer.learning_rate, "skipped_steps": self.skipped,
                   "seconds": round(time.time() - tic, 2)}
        if self.per_step is not None:
            # mean age (epochs) of the pseudo-label pixels L_semi used; None when none was kept
            metrics["pseudo_label_age"] = means["age"] / means["kept"] if means.get("kept") else None
            metrics["unlabeled_per_step"] = self.unlabeled_batch
        return metrics

    def train(self, stop_at=None):
        """Epochs from where the run stands to ``--epochs`` (or to ``stop_at``, to continue
        later with ``--resume``); checkpoints and metrics after each."""
        o = self.opts
        lead = self.world.rank == 0  # distributed: only rank 0 validates and writes the run directory
        for epoch in range(self.epoch, min(o.epochs, stop_at or o.epochs)):
            if self.stop_signal():  # `last` is at the start of this epoch (or there is none yet)
                raise Interrupted(self.stop_signal(), epoch, self.start_iter)
            metrics = self.run_epoch(epoch)
            if self.val is not None and lead:
                metrics["val_rel"] = self.validate()
            if self.test is not None and lead:  # --track-test: learning curves only, never selects anything
                errors = score_depth(self.depth_net, self.test, PROTOCOLS[DEFAULT_PROTOCOL], o.batch_size, self.ctx[0])
                metrics["test"] = {k: errors[k] for k in METRICS}
            self.history.append(metrics)
            self.partial, self.start_iter, self.epoch = {}, 0, epoch + 1
            # best is a function of the history that `last` stores (checkpoint.repair_best)
            best_epoch, self.best_val = layout.best_epoch(self.history)
            self.save("last", epoch + 1, 0)
            if not lead:
                continue
            if best_epoch == epoch:
                self.save("best", epoch + 1, 0)
            self.checkpoints.rewrite_outputs(self.history, mask_rule=self.mask_rule())
            tqdm.write(summary_line(metrics, o.epochs))
        return self.history

    def validate(self):
        """rel at 1/4 resolution on the held-out labeled images (picks ``best``)."""
        return score_depth(self.depth_net, self.val, PROTOCOLS["full"], self.opts.batch_size, self.ctx[0])["rel"]

    def stop_signal(self):
        """The SIGINT / SIGTERM received (``train.py``: training.interrupt.StopSignals), else None."""
        return self.signals.signum if self.signals is not None else None

    # ---- run directory -------------------------------------------------------------------
    def start(self):
        """A new run in ``--out`` (``checkpoint.Checkpoints.start``)."""
        self.checkpoints.start(self.split, self.opts, {"unlabeled_batch": self.unlabeled_batch})

    def save(self, tag, epoch, iteration):
        """Checkpoint ``tag`` of the run at (epoch, iteration) (``checkpoint.Checkpoints.save``)."""
        self.checkpoints.save(tag, TrainingPoint(
            epoch=epoch, iteration=iteration, seed=self.opts.seed, bad_steps=self.bad_steps, skipped=self.skipped,
            best_val=self.best_val, history=self.history, partial=self.partial, amp=self.precision.state()))

    def resume(self):
        """Continue exactly from ``checkpoints/last`` of the run directory; returns its ``TrainingPoint``
        (a run killed before its first complete checkpoint starts over from epoch 0)."""
        path = self.checkpoints.open_last(self.split, self.opts.data)
        state = self.restore(path, self.opts.trust_pickled_states) if path else TrainingPoint()
        self.checkpoints.rewrite_outputs(self.history, path, state, self.mask_rule())
        return state

    def restore(self, path, trust_pickles=False):
        """Networks, optimisers, cache and counters from checkpoint ``path``; returns its ``TrainingPoint``."""
        state = self.checkpoints.restore(path, trust_pickles)
        self.epoch, self.start_iter = state.epoch, state.iteration
        self.bad_steps, self.skipped = state.bad_steps, state.skipped
        self.history, self.partial = state.history, state.partial
        _, self.best_val = layout.best_epoch(self.history)
        self.precision.load_state(state.amp)  # the loss scales (--amp), for an exact resume
        return state

    def fork(self, source):
        """Continue a new run from ``checkpoints/last`` of run ``source`` (``train.py --fork-from``).

        ``train.py`` has checked that the two runs agree on every flag that acts before this
        run first visits its unlabeled images (epoch ``semi_start - 1``) and that ``source``
        stopped no later; up to there the two trainings are the same computation, so this
        equals training the new run from scratch (tests/test_fork_oracle.py checks it bit for bit).
        """
        state = self.restore(self.checkpoints.fork_source(source, self.split, self.opts.data))
        self.save("last", self.epoch, self.start_iter)  # the new run now resumes on its own
        self.checkpoints.rewrite_outputs(self.history)
        return state


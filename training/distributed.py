"""Which samples each step and each worker process, and the sums across workers (``--kvstore dist_sync``).

Pairing.  One step = one labeled batch of ``--batch-size`` images + one unlabeled batch
of ceil(M / steps) images, where steps = ceil(N / batch size) for N labeled and M
unlabeled images, so that one epoch visits every labeled and every unlabeled image
exactly once.  Both orders are shuffled per epoch from (seed, epoch), which is what
makes resuming in the middle of an epoch exact.  With ``--unlabeled-per-step K`` the
unlabeled batch is K images whatever M (``bounded_batches``): an epoch visits steps x K
of them, the next epoch continues where it stopped, and the cache uses entries of any
earlier epoch (``training.cache``, rule "earlier").  Together, W workers train exactly as
one process with batch W x ``--batch-size``:

Sharding.  With W workers of rank r and ``--batch-size`` b:

* labeled: the epoch's shuffled order is cut into global batches of W x b images
  (``epoch_batches(n, W * b, seed, epoch, 0)``), and rank r takes images
  ``[r b, (r + 1) b)`` of each.  The W workers together therefore process exactly the
  batches of a single process with ``--batch-size W b``.  When the last global batch
  leaves a rank nothing, it processes the batch's first image with its depth hidden
  (NaN = invalid everywhere), which adds zero to every loss and gradient;
* unlabeled: rank r owns the cache slots s with s mod W = r for the whole run (its
  part of the pseudo-label cache, which no other rank reads or writes), and shuffles
  them per epoch with its own stream.  For W = 1 this is the single-process order.
  With ``--unlabeled-per-step K`` each rank takes K of its own slots per step (K per
  worker, as ``--batch-size`` is): see ``unlabeled_plan``.

Gradients.  Every loss is divided by the pixel count of the GLOBAL batch (all ranks),
and the kvstore sums the gradients of all ranks and devices, so each step applies
the gradient of the combined batch.  The two ``gluon.Trainer``s update locally
(``kvstore=None``) after ``World.allreduce`` has summed the gradients on the kvstore
servers: two Trainers sharing one kvstore would both use keys 0, 1, ...; here the depth
net's parameters take keys 0..n-1, the confidence net's n..n+m-1 and the loss
read-back one more key.  All ranks start from rank 0's parameters (``broadcast``) and
apply identical updates, so their parameters and optimiser states stay identical;
BatchNorm running statistics (``--freeze-bn 0``) are not parameters and are not
synchronised (each rank keeps its own, rank 0's are saved).
"""
import math
import os

import mxnet as mx
import numpy as np
from mxnet import gluon

DIST_KVSTORES = ("dist_sync", "dist_device_sync")


def epoch_batches(n, batch_size, seed, epoch, stream):
    """The shuffled batches of one epoch, a pure function of (seed, epoch, stream)."""
    if n == 0 or batch_size == 0:
        return []
    order = np.random.RandomState([seed, epoch, stream]).permutation(n)
    return [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]


def owned_slots(num_slots, rank, world):
    """The unlabeled cache slots rank ``rank`` of ``world`` processes, for the whole run."""
    return np.arange(rank, num_slots, world, dtype=np.int64)


def labeled_plan(n, batch_size, seed, epoch, rank=0, world=1):
    """This rank's labeled batches of an epoch.

    Returns
    -------
    list of (list of int, bool, int)
        Per step: the dataset indices this rank loads, whether they are a placeholder
        whose depth must be hidden (the rank's share of the last batch is empty), and
        the number of images of the global batch (all ranks).
    """
    plan = []
    for batch in epoch_batches(n, batch_size * world, seed, epoch, stream=0):
        mine = batch[rank * batch_size:(rank + 1) * batch_size]
        plan.append((mine or batch[:1], not mine, len(batch)))
    return plan


def unlabeled_batch_size(num_owned, steps, per_step=None):
    """Unlabeled images per step: ``min(per_step, num_owned)`` if ``per_step`` (--unlabeled-per-step)
    is set, else the paper's pairing, as many as visit each owned slot once per epoch."""
    if per_step is not None:
        return min(per_step, num_owned) if steps else 0
    return math.ceil(num_owned / steps) if steps else 0


def pass_order(num_owned, seed, index, rank=0):
    """Pass ``index`` over a rank's owned slots: a permutation, a pure function of (seed, index, rank).

    The stream is the paper pairing's (``epoch_batches(..., stream=1 + 2 rank)``), so when
    steps x K equals the owned count, pass e is exactly the default pairing's epoch e.
    """
    return np.random.RandomState([seed, index, 1 + 2 * rank]).permutation(num_owned)


def bounded_batches(num_owned, steps, per_step, seed, epoch, rank=0):
    """``steps`` batches of k = min(per_step, num_owned) local slots for epoch ``epoch``.

    The slots of all epochs form one endless sequence: pass 0, pass 1, ... (``pass_order``),
    of which epoch e takes positions [e steps k, (e + 1) steps k).  Every slot is visited once
    per pass, all of them within ceil(num_owned / (steps k)) epochs, and the batches are a
    pure function of (seed, epoch, rank): resuming needs no state beyond the epoch.  A batch
    that straddles two passes may hold one slot twice (both copies read the same cache entry
    and write the same prediction; only with num_owned < 2 k can this be frequent).
    """
    k = unlabeled_batch_size(num_owned, steps, per_step)
    if k == 0:
        return []
    first, last = epoch * steps * k, (epoch + 1) * steps * k
    slots = []
    for index in range(first // num_owned, (last - 1) // num_owned + 1):
        start = index * num_owned
        order = pass_order(num_owned, seed, index, rank)
        slots.extend(order[max(first - start, 0):min(last - start, num_owned)].tolist())
    return [slots[i:i + k] for i in range(0, len(slots), k)]


def unlabeled_plan(num_slots, steps, seed, epoch, rank=0, world=1, per_step=None):
    """This rank's unlabeled batches of an epoch, in local slot indices.

    ``per_step`` None: the paper's epoch, every owned slot once, ceil(owned / steps) per
    step (``epoch_batches``).  ``per_step`` K: exactly min(K, owned) slots in each of the
    ``steps`` steps, from the sequence of passes of ``bounded_batches``.

    Returns
    -------
    batches : list of list of int
        Indices into this rank's owned slots (``owned_slots``), one list per step
        while they last.
    global_counts : list of int
        Per step, the unlabeled images of all ranks together.
    """
    counts = [0] * steps
    for r in range(world):
        owned = len(owned_slots(num_slots, r, world))
        size = unlabeled_batch_size(owned, steps, per_step)
        if per_step is not None:
            counts = [c + size for c in counts]
            continue
        for k in range(math.ceil(owned / size) if size else 0):
            counts[k] += min(size, owned - k * size)
    mine = len(owned_slots(num_slots, rank, world))
    if per_step is not None:
        return bounded_batches(mine, steps, per_step, seed, epoch, rank), counts
    # stream 1 for rank 0: a single process keeps the order it always had
    batches = epoch_batches(mine, unlabeled_batch_size(mine, steps), seed, epoch, stream=1 + 2 * rank)
    return batches, counts


def dump_params(depth_net, conf_net, rank, directory):
    """Both networks as ``rank<r>.{depth,conf}_net.params`` (train.py --dump-params: to compare workers)."""
    os.makedirs(directory, exist_ok=True)
    for name, net in (("depth_net", depth_net), ("conf_net", conf_net)):
        net.save_parameters(os.path.join(directory, "rank%d.%s.params" % (rank, name)))


class OwnedSlots(gluon.data.Dataset):
    """The slots of an unlabeled dataset that one rank owns; items ``(image, np.int32(local slot))``."""

    def __init__(self, dataset, slots):
        self.dataset, self.slots = dataset, np.asarray(slots, np.int64)

    def __len__(self):
        return len(self.slots)

    def __getitem__(self, i):
        return self.dataset[int(self.slots[i])][0], np.int32(i)


class World:
    """Rank, number of workers and the kvstore of a distributed run (size 1 otherwise).

    Parameters
    ----------
    kvstore : str
        ``--kvstore``; only the ``dist_*`` types create a distributed kvstore here.
    """

    def __init__(self, kvstore):
        self.kv, self.rank, self.size = None, 0, 1
        self.keys, self.loss_key = {}, None
        if kvstore not in DIST_KVSTORES and os.environ.get("DMLC_ROLE") == "worker":
            raise ValueError("started as a parameter-server worker (DMLC_ROLE=worker) but --kvstore is %s; "
                             "use --kvstore dist_sync" % kvstore)
        if kvstore in DIST_KVSTORES:
            if "DMLC_ROLE" not in os.environ:
                raise ValueError("--kvstore %s needs the DMLC_* environment of a parameter-server job; "
                                 "start the workers with scripts/launch_dist.sh" % kvstore)
            self.kv = mx.kv.create(kvstore)
            self.rank, self.size = self.kv.rank, self.kv.num_workers

    @property
    def distributed(self):
        return self.kv is not None

    def barrier(self):
        if self.kv is not None:
            self.kv._barrier()

    def broadcast(self, param_lists, loss_size):
        """Give every rank rank 0's parameters; register the keys ``allreduce`` uses.

        Parameters
        ----------
        param_lists : list of list of gluon.Parameter
            The parameters of each network, in a fixed order (same on every rank).
        loss_size : int
            Length of the loss vector summed by ``allreduce_losses``.
        """
        if self.kv is None or self.keys:
            return
        key = 0
        for params in param_lists:
            for p in params:
                if p.grad_req != "null":
                    # a copy: the kvstore rejects arrays in MKLDNN layout (the backbone's after a forward)
                    value = p.data().copy()
                    self.kv.init(key, value)  # the servers keep rank 0's value
                    self.kv.pull(key, out=value, priority=-key)
                    p.set_data(value)
                    self.keys[p.name] = key
                    key += 1
        self.loss_key = key
        self.kv.init(key, mx.nd.zeros((loss_size,)))

    def allreduce_grads(self, param_lists):
        """Sum every trainable parameter's gradient over devices and ranks, in place."""
        for params in param_lists:
            for p in params:
                if p.grad_req != "null":
                    key = self.keys[p.name]
                    self.kv.pushpull(key, p.list_grad(), priority=-key)

    def allreduce_losses(self, vector):
        """The sum over ranks of a 1-d float32 NDArray of loss terms."""
        out = mx.nd.zeros(vector.shape)
        self.kv.pushpull(self.loss_key, vector, out=out)
        return out

    def sum_terms(self, total, terms, keys):
        """{term: the sum over ranks} of the step's loss terms ``total`` (a term a rank lacks adds 0; the
        fixed order ``terms`` shares one kvstore key), for the ``keys`` the step has."""
        vector = mx.nd.concat(*[total.get(k, mx.nd.zeros((1,))).reshape((1,)) for k in terms], dim=0)
        summed = self.allreduce_losses(vector)
        return {k: summed[i:i + 1] for i, k in enumerate(terms) if k in keys}

"""The paper's equations 1-6, one pure function each (``F`` is ``mx.nd`` or ``mx.sym``).

The paper writes every loss as a sum over images n and pixels p.  We divide each sum
by ``num_pixels``, the number of pixels of the *whole* batch it runs over (B x h x w;
invalid or unmasked pixels contribute 0 to the numerator but count in the
denominator), so that

* the losses are means and the optimisers step with ``trainer.step(1)``;
* the relative weight of L_sup and L_semi is the paper's (sums over equally sized
  batches) up to the ratio of labeled to unlabeled batch sizes;
* a batch split over several devices gives the same gradient as one device: each
  device's partial sum is divided by the same global ``num_pixels``.

Invalid ground truth (depth <= 0 or non-finite; NaN in the datasets) is masked
everywhere: in L_sup, in the confidence target and in L_conf.
"""


def valid_mask(F, depth):
    """1 where the ground truth is finite and > 0, else 0 (NaN compares False)."""
    return depth > 0


def fill_invalid(F, depth, mask):
    """Replace invalid depth by 1 so that no NaN reaches a product (NaN * 0 = NaN)."""
    return F.where(mask, depth, F.ones_like(depth))


def confidence_target(F, pred, gt, alpha):
    """Eq. 1: Y = exp(-alpha |E - D| / D), with E treated as constant; 0 where D is invalid."""
    mask = valid_mask(F, gt)
    gt = fill_invalid(F, gt, mask)
    pred = F.stop_gradient(pred)
    return F.exp(-alpha * F.abs(pred - gt) / gt) * mask


def confidence_loss(F, conf, target, gt, num_pixels):
    """Eq. 2: L_conf = sum_n sum_p |C - Y| over valid pixels, divided by ``num_pixels``."""
    mask = valid_mask(F, gt)
    return F.sum(F.abs(conf - F.stop_gradient(target)) * mask) / num_pixels


def supervised_loss(F, pred, gt, num_pixels):
    """Eq. 4: L_sup = sum_n sum_p |E - D| over valid pixels, divided by ``num_pixels``."""
    mask = valid_mask(F, gt)
    return F.sum(F.abs(pred - fill_invalid(F, gt, mask)) * mask) / num_pixels


def confidence_mask(F, conf, threshold):
    """Eq. 5: B = 1 if C >= T_semi else 0 (C = T counts as confident)."""
    return conf >= threshold


def semi_supervised_loss(F, pred, pseudo_depth, mask, num_pixels):
    """Eq. 6: L_semi = sum_m sum_p |E - D^| B, with {D^, B} constant, divided by ``num_pixels``."""
    pseudo_depth = F.stop_gradient(pseudo_depth)
    mask = F.stop_gradient(mask)
    return F.sum(F.abs(pred - pseudo_depth) * mask) / num_pixels


def depth_loss(sup, semi, lam):
    """Eq. 3: L_dep = L_sup + lambda L_semi."""
    return sup + lam * semi

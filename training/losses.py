"""The paper's equations 1-6, one pure function each (``F`` is ``mx.nd`` or ``mx.sym``).

The paper writes every loss as a sum over images n and pixels p, and
L_dep = L_sup + lambda L_semi (eq. 3) weighs one unlabeled pixel lambda times one
labeled pixel, whatever the number of labeled and unlabeled images in a step.  We
divide every sum of a step (eqs. 2, 4 and 6) by one and the same constant,
``num_pixels`` = the labeled pixels of the step (B_l x h x w over all devices and
workers; invalid or unmasked pixels contribute 0 to the numerator), so that

* the relative weights of L_sup and L_semi are exactly the paper's sums for any
  batch composition: at 1/4 labeled a step holds 4 labeled + 12 unlabeled images,
  and dividing L_semi by its own 12-image pixel count would turn lambda = 0.1 into
  an effective 0.1 x 4 / 12 = 0.033;
* the losses are means over the labeled pixels, and the optimisers step with
  ``trainer.step(1)`` (the learning rate keeps its usual meaning for L_sup);
* a batch split over several devices or workers gives the same gradient as one
  device: each device's partial sum is divided by the same global constant.

Invalid ground truth (depth <= 0 or non-finite; NaN in the datasets) is masked
everywhere: in L_sup, in the confidence target and in L_conf.
"""


def valid_pixels(F, depth):
    """common.numbers.valid_mask in MXNet: 1 where the ground truth is > 0, else 0 (NaN compares False,
    so non-finite depth is invalid too)."""
    return depth > 0


def fill_invalid(F, depth, mask):
    """Replace invalid depth by 1 so that no NaN reaches a product (NaN * 0 = NaN)."""
    return F.where(mask, depth, F.ones_like(depth))


def confidence_target(F, pred, gt, alpha):
    """Eq. 1: Y = exp(-alpha |E - D| / D), with E treated as constant; 0 where D is invalid."""
    mask = valid_pixels(F, gt)
    gt = fill_invalid(F, gt, mask)
    pred = F.stop_gradient(pred)
    return F.exp(-alpha * F.abs(pred - gt) / gt) * mask


def confidence_loss(F, conf, target, gt, num_pixels):
    """Eq. 2: L_conf = sum_n sum_p |C - Y| over valid pixels, divided by ``num_pixels``."""
    mask = valid_pixels(F, gt)
    return F.sum(F.abs(conf - F.stop_gradient(target)) * mask) / num_pixels


def supervised_loss(F, pred, gt, num_pixels):
    """Eq. 4: L_sup = sum_n sum_p |E - D| over valid pixels, divided by ``num_pixels``."""
    mask = valid_pixels(F, gt)
    return F.sum(F.abs(pred - fill_invalid(F, gt, mask)) * mask) / num_pixels


def confidence_mask(F, conf, threshold):
    """Eq. 5: B = 1 if C >= T_semi else 0 (C = T counts as confident)."""
    return conf >= threshold


def semi_supervised_loss(F, pred, pseudo_depth, mask, num_pixels):
    """Eq. 6: L_semi = sum_m sum_p |E - D^| B, with {D^, B} constant, divided by ``num_pixels``
    (the step's LABELED pixel count, the constant L_sup is divided by: see the module doc)."""
    pseudo_depth = F.stop_gradient(pseudo_depth)
    mask = F.stop_gradient(mask)
    return F.sum(F.abs(pred - pseudo_depth) * mask) / num_pixels


def depth_loss(sup, semi, lam):
    """Eq. 3: L_dep = L_sup + lambda L_semi."""
    return sup + lam * semi

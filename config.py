"""Every hyperparameter of the paper, in one place, with the section it comes from.

Tian & Li, "Semi-supervised depth estimation from a single image based on
confidence learning" (ICASSP 2019).  `train.py`, `evaluate.py` and the tests read
these values; command-line flags default to them (see `add_*_args`).
"""
import argparse

# §4.1.1, §5.1: confidence target Y = exp(-alpha |E - D| / D)
ALPHA = 5.0
# §4.2.3, §5.1: mask B = C >= T_semi
T_SEMI = 0.9
# §4.2.1, §5.1: L_dep = L_sup + lambda * L_semi
LAMBDA_SEMI = 0.1

# §5.1: depth network optimiser: mini-batch SGD with polynomial decay ([18], DeepLab)
DEPTH_LR = 1e-3
DEPTH_MOMENTUM = 0.9
DEPTH_WD = 5e-4
# DeepLab's "poly" policy uses power 0.9 (gluoncv's LRScheduler defaults to 2).
POLY_POWER = 0.9
# §5.1: confidence network optimiser
CONF_LR = 2e-4

# §5.1: 100 epochs in total, semi-supervised loss from epoch 40 on (0-based epoch 40
# is the 41st epoch: "after training for 40 epoches with labeled data").
EPOCHS = 100
SEMI_START = 40

# §5.2: NYU Depth v2 official split, inputs downsampled to 320x240,
# Eigen-style augmentation to 7155 training pairs (= 795 x 9).
INPUT_WIDTH = 320
INPUT_HEIGHT = 240
NYU_TRAIN = 795
NYU_TEST = 654
AUG_COPIES = 9
NYU_TRAIN_AUGMENTED = NYU_TRAIN * AUG_COPIES  # 7155

# §3: both networks work at 1/4 of the input resolution.
OUTPUT_STRIDE = 4
# §5.3: labeled fractions of Tables 1 and 2.
LABELED_FRACS = (0.5, 0.25)

# What the pseudo-label cache stores: the prediction (§4.2.3) or, as a research bound, the ground truth.
PSEUDO_LABELS = ("model", "oracle")

# Not in the paper: the smallest depth (metres) anything produces or scores.  The depth net adds it
# after its softplus (symbols/depth_net.py); the metrics clip predictions to it so the log
# measures stay defined (evaluation/metrics.py).
DEPTH_FLOOR = 1e-3

# Not in the paper: labeled training images that calibrate --int8 (evaluate.py, predict.py).
INT8_CALIB_IMAGES = 32

# Not in the paper (it does not give a batch size); 4 fits a 12 GB GPU at 320x240.
BATCH_SIZE = 4


# How a flag behaves on train.py --resume and --fork-from (rundir/resume.py derives its rules from these
# tags; an untagged flag must match the stored run and is restored from it):
#   FREE        may differ on --resume: it changes where or how fast, not what is computed
#   INVOCATION  belongs to one invocation: may differ, never taken from the stored run
#   SEMI        acts only from the first epoch that visits unlabeled images: may differ on --fork-from
FREE, INVOCATION, SEMI = "free", "invocation", "semi"
RESUME_ROLES = {}  # flag dest -> role, filled as the parsers are built
# Paths stored absolute in config.json (a run is then usable from any directory); the run also keeps
# --data relative to itself (data_relative_to_run) for a run directory moved with its data.
PATH_FLAGS = ("data", "backbone_params", "unlabeled")


def resume_role(action, role):
    """Record the role (FREE, INVOCATION or SEMI) of the argparse ``action``'s flag; returns the action."""
    RESUME_ROLES[action.dest] = role
    return action


def parse_size(text):
    """'320x240' -> (320, 240) as (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must look like 320x240 (width x height), got %r" % text)
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError("size must be positive, got %r" % text)
    return w, h


def parse_gpus(text):
    """'' -> [] (CPU), '0,1' -> [0, 1]."""
    text = text.strip()
    if not text:
        return []
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("--gpus takes comma-separated device ids like 0,1, got %r" % text)


def fraction(text):
    """A float in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number in (0, 1], got %r" % text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1], got %s" % text)
    return value


def add_model_args(parser):
    g = parser.add_argument_group("MODEL (§4.1.2, §4.2.4)")
    g.add_argument("--pretrained", type=int, default=1, choices=(0, 1),
                   help="ImageNet ResNet-50 backbone from gluoncv's model store in $MXNET_HOME (§4.2.4). default: %(default)s")
    g.add_argument("--backbone-params", default=None,
                   help="local .params file of an ImageNet resnet50_v1b, used instead of the model store")
    g.add_argument("--freeze-bn", type=int, default=None, choices=(0, 1),
                   help="1: backbone BatchNorm keeps its stored statistics; 0: batch statistics. "
                        "default: 1 with ImageNet weights, 0 from scratch (see symbols/depth_net.py)")
    return g


def add_train_args(parser):
    g = parser.add_argument_group("TRAINING (§4, §5.1)")
    g.add_argument("--labeled-frac", type=fraction, default=0.25,
                   help="fraction of the training source images that keep their depth (§5.3: 1/2 or 1/4). default: %(default)s")
    resume_role(g.add_argument("--lambda-semi", type=float, default=LAMBDA_SEMI,
                               help="weight of L_semi in eq. 3 (§5.1); 0 = the supervised baseline of Table 2. "
                                    "default: %(default)s"), SEMI)
    g.add_argument("--alpha", type=float, default=ALPHA, help="alpha of eq. 1 (§5.1). default: %(default)s")
    resume_role(g.add_argument("--t-semi", type=float, default=T_SEMI,
                               help="confidence threshold of eq. 5 (§5.1). default: %(default)s"), SEMI)
    resume_role(g.add_argument("--keep-share", type=float, default=None, metavar="Q",
                               help="instead of the fixed --t-semi, keep the Q most confident share of each step's usable "
                                    "unlabeled pixels (T = that step's (1 - Q) quantile of C; NOT the paper's method: a "
                                    "research arm for a confidence net whose C rarely reaches --t-semi). default: off"), SEMI)
    g.add_argument("--epochs", type=int, default=EPOCHS, help="total epochs (§5.1). default: %(default)s")
    g.add_argument("--semi-start", type=int, default=SEMI_START,
                   help="first epoch (0-based) that uses L_semi (§5.1: after 40 supervised epochs). default: %(default)s")
    g.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help="labeled images per step (not given in the paper). default: %(default)s")
    g.add_argument("--lr", type=float, default=DEPTH_LR, help="depth net SGD learning rate (§5.1). default: %(default)s")
    g.add_argument("--momentum", type=float, default=DEPTH_MOMENTUM, help="SGD momentum (§5.1). default: %(default)s")
    g.add_argument("--wd", type=float, default=DEPTH_WD, help="SGD weight decay (§5.1). default: %(default)s")
    g.add_argument("--poly-power", type=float, default=POLY_POWER,
                   help="power of the polynomial lr decay ([18]). default: %(default)s")
    g.add_argument("--conf-lr", type=float, default=CONF_LR, help="confidence net Adam learning rate (§5.1). default: %(default)s")
    g.add_argument("--val-frac", type=float, default=0.0,
                   help="fraction of the labeled source images held out to pick the `best` checkpoint; "
                        "0 trains on all labeled images as the paper does (then `best` is not written). default: %(default)s")
    g.add_argument("--seed", type=int, default=0, help="seed of the split, shuffling and initialisation. default: %(default)s")
    resume_role(g.add_argument("--pseudo-labels", choices=PSEUDO_LABELS, default="model",
                               help="what the pseudo-label cache stores for an unlabeled image: model = the depth net's "
                                    "prediction (§4.2.3, the paper's method); oracle = its ground truth instead (NOT the "
                                    "paper's method: a research bound on what L_semi can give with the same confidence "
                                    "mask and lambda; needs ground truth, so not with --unlabeled). default: %(default)s"), SEMI)
    return g


def add_run_args(parser):
    g = parser.add_argument_group("RUN")
    g.add_argument("--data", default="datasets/nyu",
                   help="directory made by `python -m data.prepare`. default: %(default)s")
    resume_role(g.add_argument("--out", default=None,
                               help="run directory (default: runs/frac<f>_lambda<l>_seed<s>; --preset demo: runs/demo_frac...)"), INVOCATION)
    resume_role(g.add_argument("--resume", default=None, help="run directory to continue exactly where it stopped"), INVOCATION)
    resume_role(g.add_argument("--gpus", type=parse_gpus, default=[], help="comma-separated GPU ids; empty = CPU. default: CPU"), FREE)
    g.add_argument("--amp", choices=("off", "auto", "bf16", "fp16"), default="off",
                   help="mixed precision (MXNet AMP; README 'Mixed precision'): fp16 = float16 with dynamic loss "
                        "scaling on GPUs, bf16 = bfloat16 on CPUs (AVX512-BF16, AMX), auto = fp16 on GPUs, bf16 "
                        "on a CPU that has it, else off. Weights, losses and the cache stay float32. "
                        "default: %(default)s")
    resume_role(g.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes. default: %(default)s"), FREE)
    resume_role(g.add_argument("--save-every", type=int, default=0,
                               help="also checkpoint every N iterations (0 = only at the end of each epoch). default: %(default)s"), FREE)
    resume_role(g.add_argument("--log-every", type=int, default=20,
                               help="read losses back from the device every N iterations (progress bar). default: %(default)s"), FREE)
    resume_role(g.add_argument("--max-bad-steps", type=int, default=5,
                               help="stop after this many non-finite losses in a row. default: %(default)s"), FREE)
    resume_role(g.add_argument("--no-progress", action="store_true", help="no progress bars"), FREE)
    return g


def add_scale_args(parser):
    g = parser.add_argument_group("SCALE (more unlabeled data, the cache on disk, several machines)")
    g.add_argument("--unlabeled", default=None, metavar="PATH",
                   help="extra unlabeled images: a folder of .png/.jpg (recursive, sorted, as predict.py; "
                        "each checked before the first epoch) or an HDF5 file with images (N, h, w, 3) uint8; "
                        "resized to the input size, read lazily")
    g.add_argument("--unlabeled-per-step", type=int, default=None, metavar="K",
                   help="unlabeled images per step (and per worker): an epoch then visits steps x K of them, "
                        "continuing through shuffled passes over the whole set, and a cached pseudo-label is "
                        "used if written in any earlier epoch (README). Step memory and time do not grow "
                        "with the number of unlabeled images. default: unset, the paper's epoch (every "
                        "unlabeled image once, ceil(M / steps) per step; pseudo-labels of the previous epoch only)")
    resume_role(g.add_argument("--cache-on", choices=("memory", "disk"), default="memory",
                               help="where the pseudo-label cache lives: in memory, or in files of the run directory "
                                    "(constant memory for any number of unlabeled images). default: %(default)s"), FREE)
    g.add_argument("--cache-dtype", choices=("float32", "float16"), default="float32",
                   help="storage type of the cached depth and confidence. default: %(default)s")
    g.add_argument("--kvstore", default="device", choices=("device", "local", "dist_sync", "dist_device_sync"),
                   help="how gradients are summed: over the devices of this machine (device, local) or also "
                        "over the workers of a parameter-server job (dist_*, see scripts/launch_dist.sh). "
                        "default: %(default)s")
    resume_role(g.add_argument("--dump-params", default=None, metavar="DIR",
                               help="after training, write each worker's networks to DIR/rank<r>.{depth,conf}_net.params"), INVOCATION)
    return g

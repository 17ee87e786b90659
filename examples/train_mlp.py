"""Train a small MLP classifier on the foo device and check it against the same run on CPU.

    python examples/train_mlp.py [--device foo] [--epochs 30] [--optimizer adam] [--batch-size 64] [--no-compare]

The data set is three interleaved spirals made from a fixed seed (nothing is downloaded). The model is initialised
and the batches are shuffled on the CPU from fixed seeds, so the foo and CPU runs see identical numbers and their loss
curves should agree to float rounding. Exits 1 if the test accuracy ends below --min-accuracy (by default 90% for a
run of 30 epochs or more) or the curves differ by more than --tolerance.
"""
import argparse
import sys
import time

import torch
import torch.nn.functional as F

import torch_foo

try:
    from tqdm import tqdm
except ImportError:
    tqdm = None

NUM_CLASSES = 3
# The accuracy a full run must reach; a few epochs do not get there, so shorter runs report their accuracy only.
FULL_RUN_EPOCHS, FULL_RUN_ACCURACY = 30, 0.9
TRAIN_SEED, TEST_SEED, MODEL_SEED = 0, 1, 2


def make_spirals(points_per_class: int = 400, noise: float = 0.2, seed: int = TRAIN_SEED):
    """(features [N, 2], labels [N]) on the CPU: one noisy spiral arm per class."""
    generator = torch.Generator().manual_seed(seed)
    radius = torch.linspace(0.05, 1.0, points_per_class)
    features, labels = [], []
    for label in range(NUM_CLASSES):
        angle = torch.linspace(label * 4.0, (label + 1) * 4.0, points_per_class)
        angle = angle + noise * torch.randn(points_per_class, generator=generator)
        features.append(torch.stack([radius * torch.sin(angle), radius * torch.cos(angle)], dim=1))
        labels.append(torch.full((points_per_class,), label))
    return torch.cat(features), torch.cat(labels)


def make_model(hidden: int = 64) -> torch.nn.Module:
    torch.manual_seed(MODEL_SEED)  # built on the CPU, so every device starts from the same weights
    return torch.nn.Sequential(
        torch.nn.Linear(2, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, NUM_CLASSES),
    )


def make_optimizer(name: str, parameters) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=0.1, momentum=0.9)
    return torch.optim.Adam(parameters, lr=0.01)


class TextProgress:
    """A one-line progress bar on stderr for when tqdm is not installed."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done = total, desc, 0

    def update(self, steps: int = 1) -> None:
        self.done += steps
        filled = 30 * self.done // self.total
        sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    @staticmethod
    def write(line: str) -> None:
        sys.stderr.write("\r\033[K")  # clear the bar; the next update redraws it below the line
        print(line, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str):
    return tqdm(total=total, desc=desc, unit="epoch") if tqdm else TextProgress(total, desc)


def accuracy(model: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(features).argmax(dim=1) == labels).float().mean().item()


def train(device: str, epochs: int, optimizer_name: str, batch_size: int, verbose: bool = True):
    """Trains on `device`; returns (mean training loss per epoch, test accuracy)."""
    train_x, train_y = make_spirals(seed=TRAIN_SEED)
    test_x, test_y = (t.to(device) for t in make_spirals(seed=TEST_SEED))
    model = make_model().to(device)
    optimizer = make_optimizer(optimizer_name, model.parameters())
    shuffle = torch.Generator().manual_seed(TRAIN_SEED)  # a CPU generator: the same batches on every device

    losses = []
    bar = progress_bar(epochs, desc=f"train on {device}") if verbose else None
    for epoch in range(epochs):
        # Shuffled on the host and copied once per epoch: foo has no native indexing kernels, and batches that are
        # contiguous slices (views) keep the training loop free of CPU fallbacks.
        order = torch.randperm(len(train_x), generator=shuffle)
        epoch_x, epoch_y = train_x[order].to(device), train_y[order].to(device)
        epoch_loss = torch.zeros((), device=device)
        for start in range(0, len(epoch_x), batch_size):
            batch_x, batch_y = epoch_x[start:start + batch_size], epoch_y[start:start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(batch_x), batch_y)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.detach() * len(batch_x)  # stays on the device: no sync per step
        losses.append(epoch_loss.item() / len(train_x))
        if bar is not None:
            bar.write(f"epoch {epoch + 1:3d}/{epochs}  loss {losses[-1]:.4f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return losses, accuracy(model, test_x, test_y)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="foo", help="device to train on (default foo)")
    parser.add_argument("--epochs", type=int, default=FULL_RUN_EPOCHS)
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-compare", action="store_true", help="skip the reference run on CPU")
    parser.add_argument("--min-accuracy", type=float,
                        help=f"fail below this test accuracy (default {FULL_RUN_ACCURACY} for runs of "
                        f"{FULL_RUN_EPOCHS} epochs or more; shorter runs only report it)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="fail if a per-epoch loss differs from CPU's by more (default 1e-4)")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.min_accuracy is None and args.epochs >= FULL_RUN_EPOCHS:
        args.min_accuracy = FULL_RUN_ACCURACY

    torch_foo.reset_fallback_stats()
    started = time.perf_counter()
    losses, test_accuracy = train(args.device, args.epochs, args.optimizer, args.batch_size)
    print(f"trained on {args.device} in {time.perf_counter() - started:.1f} s: "
          f"final loss {losses[-1]:.4f}, test accuracy {test_accuracy:.1%}")
    print(f"ops that ran through the CPU fallback: {torch_foo.fallback_stats() or 'none'}")
    failed = False
    if args.min_accuracy is None:
        print(f"(a run of {args.epochs} epochs is too short for the {FULL_RUN_ACCURACY:.0%} accuracy bar of "
              f"{FULL_RUN_EPOCHS} epochs: reported only)")
    elif test_accuracy < args.min_accuracy:
        print(f"FAIL: test accuracy {test_accuracy:.1%} is below --min-accuracy {args.min_accuracy:.1%}")
        failed = True

    if not args.no_compare and torch.device(args.device).type != "cpu":
        cpu_losses, cpu_accuracy = train("cpu", args.epochs, args.optimizer, args.batch_size, verbose=False)
        difference = max(abs(a - b) for a, b in zip(losses, cpu_losses))
        print(f"same run on cpu: final loss {cpu_losses[-1]:.4f}, test accuracy {cpu_accuracy:.1%}; "
              f"loss curves max abs difference {difference:.3g}")
        if difference > args.tolerance:
            print(f"FAIL: the loss curves differ by more than --tolerance {args.tolerance:g}")
            failed = True

    if not failed:
        print("OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

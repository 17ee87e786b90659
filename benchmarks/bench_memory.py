"""Peak resident memory of MLP training on foo against the same training on CPU, each in a fresh process.

    python benchmarks/bench_memory.py [--width 2048] [--batch 512] [--steps 20] [--runs 3]

Device memory is a memfd arena mapped twice (the PROT_NONE view tensors hold and the runtime's read-write alias); only
pages the alias touched are resident, so each byte should count once. Both processes import torch and torch_foo, so
the libraries weigh the same; the figures are the peak RSS (ru_maxrss) and the growth of the peak over the RSS right
after the imports, medians of --runs alternating runs.
"""
import argparse
import json
import statistics
import subprocess
import sys

GOAL = 1.05  # foo peak RSS / CPU peak RSS

CHILD = r"""
import json, resource, sys, torch, torch_foo
device, width, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
after_imports = rss()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                            torch.nn.ReLU(), torch.nn.Linear(width, 10)).to(device)
optimizer = torch.optim.Adam(model.parameters())
x, y = torch.randn(batch, width).to(device), torch.randint(0, 10, (batch,)).to(device)
for _ in range(steps):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
if device.startswith("foo"):
    torch.foo.synchronize()
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "after_imports": after_imports}))
"""


def measure(device: str, args) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, device, str(args.width), str(args.batch), str(args.steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    samples = {"foo": [], "cpu": []}
    for run in range(args.runs):
        for device in (["foo", "cpu"] if run % 2 == 0 else ["cpu", "foo"]):
            samples[device].append(measure(device, args))
    peak = {d: statistics.median(s["peak"] for s in samples[d]) for d in samples}
    growth = {d: statistics.median(s["peak"] - s["after_imports"] for s in samples[d]) for d in samples}
    mib = 1 << 20
    print(f"MLP training, width {args.width}, batch {args.batch}, {args.steps} Adam steps; medians of {args.runs} runs")
    verdict = "ok" if peak["foo"] <= GOAL * peak["cpu"] else "MISSED"
    print(f"peak RSS            foo {peak['foo'] / mib:8.1f} MiB   cpu {peak['cpu'] / mib:8.1f} MiB   "
          f"{peak['foo'] / peak['cpu']:.2f}x  goal <= {GOAL:.2f}x  {verdict}")
    print(f"growth over imports foo {growth['foo'] / mib:8.1f} MiB   cpu {growth['cpu'] / mib:8.1f} MiB   "
          f"{growth['foo'] / growth['cpu']:.2f}x")


if __name__ == "__main__":
    main()

"""Issue #16, memory: where the peak RSS of a recommender's ``fit`` comes from, phase by phase.

Each model runs in a subprocess of its own on a scale of ``scale_bench.py`` (its cached Parquet, drawn
there if missing), one epoch. The kernel's high-water mark (VmHWM) is read and reset at the end of every
phase, so each phase's peak is its own:

- *Python and NumPy*: the interpreter with pandas, pyarrow and aerec imported;
- *import TensorFlow*: what TensorFlow and Keras cost before any model exists;
- *read and split*: the benchmark's own Parquet read and held-out split (not aerec's work), after which
  the memory the split freed in Arrow's pool is given back (as ``fit`` does after coding the ids);
- *frame held*: the training frame the caller keeps (its ``memory_usage(deep=True)`` in the header);
- *fit: ids and CSR*: ``Interactions.from_frame``, coding the string ids and building the training matrix;
- *fit: tf.data*: the input pipeline's copy of the matrix;
- *fit: training*: the network, its optimizer state, the batches and TensorFlow's working memory.

The process peak is the largest of them. Columns: the RSS at the end of each phase and its peak.

    python benchmarks/memory_bench.py --scale S2 --models MultDAE "MultDAE sampled" ELSA \\
        --out benchmarks/results/memory_bench_s2.md
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, markdown, reset_peak, vm

GIB = 2**30
PHASES = ["Python and NumPy", "import TensorFlow", "read and split", "frame held", "fit: ids and CSR",
          "fit: tf.data", "fit: training"]


class Phases:
    """Marks phase ends: the RSS then and the high-water mark since the last mark (then reset)."""

    def __init__(self):
        self.rows, self.resettable = {}, reset_peak()

    def end(self, name: str) -> None:
        self.rows[name] = {"RSS at its end GiB": vm("VmRSS") / GIB, "peak GiB": vm("VmHWM") / GIB}
        reset_peak()


def worker(args) -> dict:
    from aerec.data import interactions
    from aerec.recommend import keras_base

    phases = Phases()
    phases.end(PHASES[0])
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    phases.end(PHASES[1])
    import scale_bench

    bench_args = argparse.Namespace(cache_dir=args.cache_dir, seed=args.seed)
    path = scale_bench.data_path(bench_args, args.scale)
    if not path.is_file():
        scale_bench.data_worker(bench_args, args.scale)
    train, _, _ = scale_bench.read_split(bench_args, args.scale)  # Arrow's pool given back, as fit does
    phases.end(PHASES[2])
    frame_gib = train.memory_usage(deep=True).sum() / GIB
    phases.end(PHASES[3])

    # phase ends inside fit: after the ids are coded, after the input pipeline is made
    from_frame, dataset = interactions.Interactions.from_frame.__func__, keras_base.KerasRecommender._dataset

    def coded(cls, *a, **k):
        result = from_frame(cls, *a, **k)
        if k.get("what") == "train":
            phases.end(PHASES[4])
        return result

    def pipeline(self, *a, **k):
        result = dataset(self, *a, **k)
        phases.end(PHASES[5])
        return result

    interactions.Interactions.from_frame = classmethod(coded)
    keras_base.KerasRecommender._dataset = pipeline
    model = scale_bench.MODELS[args.models[0]](argparse.Namespace(epochs=1))
    start = time.perf_counter()
    model.fit(train)
    phases.end(PHASES[6])
    return {"phases": phases.rows, "frame GiB": frame_gib, "fit s": time.perf_counter() - start,
            "rows": len(train), "resettable": phases.resettable}


def main(argv=None) -> str:
    import scale_bench

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="S2", choices=list(scale_bench.SCALES))
    parser.add_argument("--models", nargs="+", default=["MultDAE", "MultDAE sampled", "ELSA"],
                        choices=[m for m in scale_bench.MODELS if m not in ("popularity", "EASE", "implicit ALS")])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default="~/.cache/aerec-bench", help="as scale_bench.py's")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if vm("VmHWM") is None:
        parser.error("the phases are read from /proc/self/status (VmRSS, VmHWM): Linux only")
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return ""

    import pandas as pd

    command = "python benchmarks/memory_bench.py " + " ".join(
        f'"{a}"' if " " in a else a for a in (sys.argv[1:] if argv is None else argv))
    sections = [f"Command: `{command}`", "", f"Machine: {machine()}", ""]
    for name in args.models:
        proc = subprocess.run([sys.executable, __file__, "--worker", "--scale", args.scale, "--models", name,
                               "--seed", str(args.seed), "--cache-dir", args.cache_dir],
                              stdout=subprocess.PIPE, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode or not lines:
            sections += [f"### {name}: failed (exit code {proc.returncode})", ""]
            continue
        result = json.loads(lines[-1])
        table = pd.DataFrame(result["phases"]).T.rename_axis("phase").map(lambda v: f"{v:.2f}")
        peak = max(row["peak GiB"] for row in result["phases"].values())
        top = max(result["phases"], key=lambda p: result["phases"][p]["peak GiB"])
        sections += [f"### {name}, 1 epoch at {args.scale} ({result['rows']:,} training rows)",
                     f"process peak {peak:.2f} GiB, in \"{top}\"; the training frame holds {result['frame GiB']:.2f} GiB "
                     f"(deep); fit {result['fit s']:.0f} s"
                     + ("" if result["resettable"] else "; VmHWM could not be reset: peaks are cumulative"),
                     "", markdown(table), ""]
        print("\n".join(sections[-5:]), flush=True)
    return emit("\n".join(sections), args.out)


if __name__ == "__main__":
    main()

"""`guardproxy bench ...`: benchmarks that ship with the package (`bench backends`: local vs cloud models)."""

from guardproxy.bench.cli import add_bench_parser, run_bench

__all__ = ["add_bench_parser", "run_bench"]

"""`guardproxy bench backends`: the backend benchmark that ships with the package (local vs cloud models,
direct vs guarded). Not to be confused with the repository's top-level `bench/`: the project's own
benchmarks and evaluations, which are scripts and are not installed."""

from guardproxy.backend_bench.cli import add_bench_parser, run_bench

__all__ = ["add_bench_parser", "run_bench"]

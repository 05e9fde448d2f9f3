"""Benchmark and reproduction tools (docs/benchmarks.md, docs/reproduction.md). Run them as scripts:

python bench/env_fps.py      # raw simulator + renderer throughput -> results/env_fps.csv
python bench/train_sps.py    # training-loop throughput          -> results/train_sps.csv
python bench/reproduce.py    # configs/ x seeds -> results/repro/*.csv -> docs/reproduction.md
python bench/report.py       # results/*.csv -> docs/benchmarks.md + results/*.png
"""

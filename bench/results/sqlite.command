/usr/bin/python3 bench/footprint.py --workload=sqlite --size_mb=1024 --settle_s=120 --runs=without,disabled,with --baseline=zswap --out=bench/results/sqlite

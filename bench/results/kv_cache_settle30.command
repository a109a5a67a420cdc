/usr/bin/python3 bench/footprint.py --workload=kv_cache --size_mb=1024 --runs=without,disabled,with --out=bench/results/kv_cache_settle30

/usr/bin/python3 bench/footprint.py --workload=py_index --size_mb=512 --settle_s=150 --baseline=zswap --out=bench/results/py_index

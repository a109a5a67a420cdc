/usr/bin/python3 bench/footprint.py --workload=redis --size_mb=1024 --settle_s=150 --out=bench/results/redis

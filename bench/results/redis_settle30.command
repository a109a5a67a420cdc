/usr/bin/python3 bench/footprint.py --workload=redis --size_mb=1024 --repeat=2 --out=bench/results/redis_settle30

set terminal pngcairo size 1200,800 font 'Sans,10'
set termoption noenhanced
set output '/work/main/bench/results/py_index/py_index.png'
set datafile separator ','
set key right center
set grid
set multiplot layout 2,1 title "py_index, 512 MiB, seed 1: footprint over time"
set size 1,0.62
set origin 0,0.36
set ylabel 'MiB'
set xlabel 'seconds since start'
set xrange [0:249]
set arrow 1 from 185.618000, graph 0 to 185.618000, graph 1 nohead dt 2 lc rgb '#1f77b4'
set label 1 'measure phase (without) from here' at 185.618000, graph 0.95 left offset 0.5,0 textcolor rgb '#1f77b4' font ',8'
set arrow 2 from 179.527000, graph 0 to 179.527000, graph 1 nohead dt 2 lc rgb '#d62728'
set label 2 'measure phase (with) from here' at 179.527000, graph 0.88 left offset 0.5,0 textcolor rgb '#d62728' font ',8'
set arrow 3 from 180.219000, graph 0 to 180.219000, graph 1 nohead dt 2 lc rgb '#2ca02c'
set label 3 'measure phase (oracle) from here' at 180.219000, graph 0.81 left offset 0.5,0 textcolor rgb '#2ca02c' font ',8'
set arrow 4 from 187.460000, graph 0 to 187.460000, graph 1 nohead dt 2 lc rgb '#9467bd'
set label 4 'measure phase (zswap) from here' at 187.460000, graph 0.74 left offset 0.5,0 textcolor rgb '#9467bd' font ',8'
plot '/work/main/bench/results/py_index/py_index-without.csv' using 1:($4/1024) with lines lw 2 lc rgb '#1f77b4' title 'PSS, without coldheap', '/work/main/bench/results/py_index/py_index-with.csv' using 1:($4/1024) with lines lw 2 lc rgb '#d62728' title 'PSS, with coldheap', '/work/main/bench/results/py_index/py_index-with.csv' using 1:($5/1048576) with lines lw 1 dt 3 lc rgb '#d62728' title 'pool total_size, with coldheap (inside its PSS)', '/work/main/bench/results/py_index/py_index-oracle.csv' using 1:($4/1024) with lines lw 2 lc rgb '#2ca02c' title 'PSS, oracle (all evicted once at the measure start)', '/work/main/bench/results/py_index/py_index-zswap.csv' using 1:($19/1024) with lines lw 2 lc rgb '#9467bd' title 'PSS + zswap pool, kernel zswap at equal memory', '/work/main/bench/results/py_index/py_index-zswap.csv' using 1:($5/1048576) with lines lw 1 dt 3 lc rgb '#9467bd' title 'zswap pool (kernel memory)'
unset arrow
unset label
set size 1,0.34
set origin 0,0
set ylabel 'ops/s'
set title ''
set arrow 1 from 185.618000, graph 0 to 185.618000, graph 1 nohead dt 2 lc rgb '#1f77b4'
set label 1 'measure phase (without) from here' at 185.618000, graph 0.95 left offset 0.5,0 textcolor rgb '#1f77b4' font ',8'
set arrow 2 from 179.527000, graph 0 to 179.527000, graph 1 nohead dt 2 lc rgb '#d62728'
set label 2 'measure phase (with) from here' at 179.527000, graph 0.88 left offset 0.5,0 textcolor rgb '#d62728' font ',8'
set arrow 3 from 180.219000, graph 0 to 180.219000, graph 1 nohead dt 2 lc rgb '#2ca02c'
set label 3 'measure phase (oracle) from here' at 180.219000, graph 0.81 left offset 0.5,0 textcolor rgb '#2ca02c' font ',8'
set arrow 4 from 187.460000, graph 0 to 187.460000, graph 1 nohead dt 2 lc rgb '#9467bd'
set label 4 'measure phase (zswap) from here' at 187.460000, graph 0.74 left offset 0.5,0 textcolor rgb '#9467bd' font ',8'
plot '/work/main/bench/results/py_index/py_index-without.csv' using 1:($13) with lines lw 1 lc rgb '#1f77b4' title 'throughput, without coldheap', '/work/main/bench/results/py_index/py_index-with.csv' using 1:($13) with lines lw 1 lc rgb '#d62728' title 'throughput, with coldheap', '/work/main/bench/results/py_index/py_index-oracle.csv' using 1:($13) with lines lw 1 lc rgb '#2ca02c' title 'throughput, oracle (all evicted once at the measure start)', '/work/main/bench/results/py_index/py_index-zswap.csv' using 1:($13) with lines lw 1 lc rgb '#9467bd' title 'throughput, kernel zswap at equal memory'
unset multiplot

set terminal pngcairo size 1200,800 font 'Sans,10'
set termoption noenhanced
set output '/work/main/bench/results/sqlite/sqlite.png'
set datafile separator ','
set key right center
set grid
set multiplot layout 2,1 title "sqlite, 1024 MiB, seed 1: footprint over time"
set size 1,0.62
set origin 0,0.36
set ylabel 'MiB'
set xlabel 'seconds since start'
set xrange [0:202]
set arrow 1 from 134.334000, graph 0 to 134.334000, graph 1 nohead dt 2 lc rgb '#1f77b4'
set label 1 'measure phase (without) from here' at 134.334000, graph 0.95 left offset 0.5,0 textcolor rgb '#1f77b4' font ',8'
set arrow 2 from 131.730000, graph 0 to 131.730000, graph 1 nohead dt 2 lc rgb '#7f7f7f'
set label 2 'measure phase (disabled) from here' at 131.730000, graph 0.88 left offset 0.5,0 textcolor rgb '#7f7f7f' font ',8'
set arrow 3 from 131.922000, graph 0 to 131.922000, graph 1 nohead dt 2 lc rgb '#d62728'
set label 3 'measure phase (with) from here' at 131.922000, graph 0.81 left offset 0.5,0 textcolor rgb '#d62728' font ',8'
set arrow 4 from 131.425000, graph 0 to 131.425000, graph 1 nohead dt 2 lc rgb '#2ca02c'
set label 4 'measure phase (oracle) from here' at 131.425000, graph 0.74 left offset 0.5,0 textcolor rgb '#2ca02c' font ',8'
set arrow 5 from 131.107000, graph 0 to 131.107000, graph 1 nohead dt 2 lc rgb '#9467bd'
set label 5 'measure phase (zswap) from here' at 131.107000, graph 0.67 left offset 0.5,0 textcolor rgb '#9467bd' font ',8'
plot '/work/main/bench/results/sqlite/sqlite-without.csv' using 1:($4/1024) with lines lw 2 lc rgb '#1f77b4' title 'PSS, without coldheap', '/work/main/bench/results/sqlite/sqlite-disabled.csv' using 1:($4/1024) with lines lw 2 lc rgb '#7f7f7f' title 'PSS, shim loaded, COLDHEAP_ENABLE=off', '/work/main/bench/results/sqlite/sqlite-with.csv' using 1:($4/1024) with lines lw 2 lc rgb '#d62728' title 'PSS, with coldheap', '/work/main/bench/results/sqlite/sqlite-with.csv' using 1:($5/1048576) with lines lw 1 dt 3 lc rgb '#d62728' title 'pool total_size, with coldheap (inside its PSS)', '/work/main/bench/results/sqlite/sqlite-oracle.csv' using 1:($4/1024) with lines lw 2 lc rgb '#2ca02c' title 'PSS, oracle (all evicted once at the measure start)', '/work/main/bench/results/sqlite/sqlite-zswap.csv' using 1:($19/1024) with lines lw 2 lc rgb '#9467bd' title 'PSS + zswap pool, kernel zswap at equal memory', '/work/main/bench/results/sqlite/sqlite-zswap.csv' using 1:($5/1048576) with lines lw 1 dt 3 lc rgb '#9467bd' title 'zswap pool (kernel memory)'
unset arrow
unset label
set size 1,0.34
set origin 0,0
set ylabel 'ops/s'
set title ''
set arrow 1 from 134.334000, graph 0 to 134.334000, graph 1 nohead dt 2 lc rgb '#1f77b4'
set label 1 'measure phase (without) from here' at 134.334000, graph 0.95 left offset 0.5,0 textcolor rgb '#1f77b4' font ',8'
set arrow 2 from 131.730000, graph 0 to 131.730000, graph 1 nohead dt 2 lc rgb '#7f7f7f'
set label 2 'measure phase (disabled) from here' at 131.730000, graph 0.88 left offset 0.5,0 textcolor rgb '#7f7f7f' font ',8'
set arrow 3 from 131.922000, graph 0 to 131.922000, graph 1 nohead dt 2 lc rgb '#d62728'
set label 3 'measure phase (with) from here' at 131.922000, graph 0.81 left offset 0.5,0 textcolor rgb '#d62728' font ',8'
set arrow 4 from 131.425000, graph 0 to 131.425000, graph 1 nohead dt 2 lc rgb '#2ca02c'
set label 4 'measure phase (oracle) from here' at 131.425000, graph 0.74 left offset 0.5,0 textcolor rgb '#2ca02c' font ',8'
set arrow 5 from 131.107000, graph 0 to 131.107000, graph 1 nohead dt 2 lc rgb '#9467bd'
set label 5 'measure phase (zswap) from here' at 131.107000, graph 0.67 left offset 0.5,0 textcolor rgb '#9467bd' font ',8'
plot '/work/main/bench/results/sqlite/sqlite-without.csv' using 1:($13) with lines lw 1 lc rgb '#1f77b4' title 'throughput, without coldheap', '/work/main/bench/results/sqlite/sqlite-disabled.csv' using 1:($13) with lines lw 1 lc rgb '#7f7f7f' title 'throughput, shim loaded, COLDHEAP_ENABLE=off', '/work/main/bench/results/sqlite/sqlite-with.csv' using 1:($13) with lines lw 1 lc rgb '#d62728' title 'throughput, with coldheap', '/work/main/bench/results/sqlite/sqlite-oracle.csv' using 1:($13) with lines lw 1 lc rgb '#2ca02c' title 'throughput, oracle (all evicted once at the measure start)', '/work/main/bench/results/sqlite/sqlite-zswap.csv' using 1:($13) with lines lw 1 lc rgb '#9467bd' title 'throughput, kernel zswap at equal memory'
unset multiplot

set terminal pngcairo size 1200,800 font 'Sans,10'
set termoption noenhanced
set output '/work/main/bench/results/memcached/memcached.png'
set datafile separator ','
set key right center
set grid
set multiplot layout 2,1 title "memcached, 1024 MiB, seed 1: footprint over time"
set size 1,0.62
set origin 0,0.36
set ylabel 'MiB'
set xlabel 'seconds since start'
set xrange [0:230]
set arrow 1 from 169.589000, graph 0 to 169.589000, graph 1 nohead dt 2 lc rgb '#1f77b4'
set label 1 'measure phase (without) from here' at 169.589000, graph 0.95 left offset 0.5,0 textcolor rgb '#1f77b4' font ',8'
set arrow 2 from 166.843000, graph 0 to 166.843000, graph 1 nohead dt 2 lc rgb '#d62728'
set label 2 'measure phase (with) from here' at 166.843000, graph 0.88 left offset 0.5,0 textcolor rgb '#d62728' font ',8'
plot '/work/main/bench/results/memcached/memcached-without.csv' using 1:($4/1024) with lines lw 2 lc rgb '#1f77b4' title 'PSS, without coldheap', '/work/main/bench/results/memcached/memcached-with.csv' using 1:($4/1024) with lines lw 2 lc rgb '#d62728' title 'PSS, with coldheap', '/work/main/bench/results/memcached/memcached-with.csv' using 1:($5/1048576) with lines lw 1 dt 3 lc rgb '#d62728' title 'pool total_size, with coldheap (inside its PSS)'
unset arrow
unset label
set size 1,0.34
set origin 0,0
set ylabel 'ops/s'
set title ''
set arrow 1 from 169.589000, graph 0 to 169.589000, graph 1 nohead dt 2 lc rgb '#1f77b4'
set label 1 'measure phase (without) from here' at 169.589000, graph 0.95 left offset 0.5,0 textcolor rgb '#1f77b4' font ',8'
set arrow 2 from 166.843000, graph 0 to 166.843000, graph 1 nohead dt 2 lc rgb '#d62728'
set label 2 'measure phase (with) from here' at 166.843000, graph 0.88 left offset 0.5,0 textcolor rgb '#d62728' font ',8'
plot '/work/main/bench/results/memcached/memcached-without.csv' using 1:($13) with lines lw 1 lc rgb '#1f77b4' title 'throughput, without coldheap', '/work/main/bench/results/memcached/memcached-with.csv' using 1:($13) with lines lw 1 lc rgb '#d62728' title 'throughput, with coldheap'
unset multiplot

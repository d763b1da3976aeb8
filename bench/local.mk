EXTRA_DIST += bench/compare.sh bench/README

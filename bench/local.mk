EXTRA_DIST += bench/compare.sh

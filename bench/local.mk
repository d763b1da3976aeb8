EXTRA_DIST += bench/compare.sh bench/reload.sh bench/lib.sh bench/idle_clients.py \
	bench/latency_client.py bench/faults_backend.py bench/faults_client.py \
	bench/README

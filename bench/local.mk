EXTRA_DIST += bench/compare.sh bench/reload.sh bench/lib.sh bench/idle_clients.py \
	bench/latency_client.py bench/faults_backend.py bench/faults_client.py \
	bench/tls_transport.sh bench/README

# Built only on demand (make bench/tls_transport, which bench/tls_transport.sh runs): neither
# make nor make check builds it. configure already requires libevent_openssl for the daemon.
EXTRA_PROGRAMS = bench/tls_transport
bench_tls_transport_SOURCES = bench/tls_transport.cc
bench_tls_transport_LDADD = libspeedmimi.la $(DEPS_LIBS)
CLEANFILES += bench/tls_transport

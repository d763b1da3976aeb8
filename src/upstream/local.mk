libspeedmimi_la_SOURCES += \
	src/upstream/backend.cc src/upstream/backend.h \
	src/upstream/backend_table.cc src/upstream/backend_table.h \
	src/upstream/balancer.h src/upstream/balancer_factory.cc \
	src/upstream/connection_pool.cc src/upstream/connection_pool.h \
	src/upstream/health.cc src/upstream/health.h \
	src/upstream/lb_internal.h \
	src/upstream/lb_ip_hash.cc \
	src/upstream/lb_least_connections.cc \
	src/upstream/lb_least_connections_weight.cc \
	src/upstream/lb_least_latency.cc \
	src/upstream/lb_performance.cc \
	src/upstream/lb_random.cc \
	src/upstream/lb_round_robin.cc \
	src/upstream/lb_weight.cc \
	src/upstream/retry_budget.h \
	src/upstream/upstream_set.cc src/upstream/upstream_set.h

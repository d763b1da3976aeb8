# Tests: one GoogleTest program for unit tests (t/unit mirrors src/), one for integration tests
# (t/integration runs the built binary against fake backends on loopback), and the helpers.
TEST_CXXFLAGS = $(AM_CXXFLAGS) $(GTEST_CFLAGS) $(GMOCK_CFLAGS)
TEST_LIBS = $(GMOCK_LIBS) $(GTEST_LIBS) -lgtest_main -lpthread

check_PROGRAMS += t/unit/unit_tests
t_unit_unit_tests_CXXFLAGS = $(TEST_CXXFLAGS)
t_unit_unit_tests_LDADD = libspeedmimi.la $(DEPS_LIBS) $(TEST_LIBS)
t_unit_unit_tests_SOURCES = \
	t/unit/core/cidr_test.cc \
	t/unit/core/cmdline_test.cc \
	t/unit/core/config_test.cc \
	t/unit/core/slab_test.cc \
	t/unit/core/units_test.cc \
	t/unit/core/zone_test.cc \
	t/unit/event/stream_test.cc \
	t/unit/http/access_log_test.cc \
	t/unit/http/chunked_test.cc \
	t/unit/http/error_pages_test.cc \
	t/unit/http/header_rewrite_test.cc \
	t/unit/http/parser_test.cc \
	t/unit/http/real_ip_test.cc \
	t/unit/http/router_test.cc \
	t/unit/upstream/backend_test.cc \
	t/unit/upstream/balancer_factory_test.cc \
	t/unit/upstream/connection_pool_test.cc \
	t/unit/upstream/health_test.cc \
	t/unit/upstream/balancer_test_util.h \
	t/unit/upstream/lb_ip_hash_test.cc \
	t/unit/upstream/lb_least_connections_test.cc \
	t/unit/upstream/lb_least_connections_weight_test.cc \
	t/unit/upstream/lb_least_latency_test.cc \
	t/unit/upstream/lb_performance_test.cc \
	t/unit/upstream/lb_random_test.cc \
	t/unit/upstream/lb_round_robin_test.cc \
	t/unit/upstream/lb_weight_test.cc

# Helpers: a fake backend that records exact bytes, and the demo backend for `make demo`.
check_PROGRAMS += t/helpers/fake_backend
t_helpers_fake_backend_SOURCES = t/helpers/fake_backend_main.cc
t_helpers_fake_backend_LDADD = $(DEPS_LIBS)
noinst_PROGRAMS = t/helpers/demo_backend
t_helpers_demo_backend_SOURCES = t/helpers/demo_backend.cc
t_helpers_demo_backend_LDADD = $(LIBEVENT_LIBS)

check_PROGRAMS += t/integration/integration_tests
t_integration_integration_tests_CXXFLAGS = $(TEST_CXXFLAGS) \
	-DSPEEDMIMI_BIN='"$(abs_top_builddir)/src/speedmimi"'
t_integration_integration_tests_LDADD = $(DEPS_LIBS) $(TEST_LIBS)
t_integration_integration_tests_SOURCES = \
	t/integration/harness.cc t/integration/harness.h \
	t/integration/balancing_test.cc \
	t/integration/harness_test.cc \
	t/integration/proxy_basic_test.cc \
	t/integration/proxy_errors_test.cc \
	t/integration/proxy_process_test.cc \
	t/integration/proxy_streaming_test.cc \
	t/integration/response_hazards_test.cc \
	t/integration/smuggling_test.cc

TESTS += t/unit/unit_tests t/integration/integration_tests

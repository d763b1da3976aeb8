# Tests: one GoogleTest program for unit tests (t/unit mirrors src/), one for integration tests
# (t/integration runs the built binary against fake backends on loopback), and the helpers.
TEST_CXXFLAGS = $(AM_CXXFLAGS) $(GTEST_CFLAGS) $(GMOCK_CFLAGS)
TEST_LIBS = $(GMOCK_LIBS) $(GTEST_LIBS) -lgtest_main -lpthread
# What both test programs share: the one way to make test certificates.
TEST_HELPER_SOURCES = t/helpers/test_certs.cc t/helpers/test_certs.h \
	t/helpers/temp_dir.cc t/helpers/temp_dir.h

check_PROGRAMS += t/unit/unit_tests
t_unit_unit_tests_CXXFLAGS = $(TEST_CXXFLAGS)
t_unit_unit_tests_LDADD = libspeedmimi.la $(DEPS_LIBS) $(TEST_LIBS)
t_unit_unit_tests_SOURCES = $(TEST_HELPER_SOURCES) \
	t/unit/admin/api_test.cc \
	t/unit/admin/config_json_test.cc \
	t/unit/admin/host_stats_test.cc \
	t/unit/admin/http_server_test.cc \
	t/unit/admin/loopback.h \
	t/unit/admin/metrics_test.cc \
	t/unit/admin/request_bodies_test.cc \
	t/unit/core/atomic_file_test.cc \
	t/unit/core/backend_json_test.cc \
	t/unit/core/cidr_test.cc \
	t/unit/core/cmdline_test.cc \
	t/unit/core/config_test.cc \
	t/unit/core/config_yaml_test.cc \
	t/unit/core/histogram_test.cc \
	t/unit/core/log_test.cc \
	t/unit/core/shm_test.cc \
	t/unit/core/slab_test.cc \
	t/unit/core/slow_start_test.cc \
	t/unit/core/state_file_test.cc \
	t/unit/core/units_test.cc \
	t/unit/core/zone_test.cc \
	t/unit/event/acceptor_test.cc \
	t/unit/event/listener_test.cc \
	t/unit/event/stream_test.cc \
	t/unit/event/tls_test.cc \
	t/unit/process/children_test.cc \
	t/unit/process/listeners_test.cc \
	t/unit/process/notify_test.cc \
	t/unit/process/pid_file_test.cc \
	t/unit/process/tls_check_test.cc \
	t/unit/process/zone_ticket_keys_test.cc \
	t/unit/http/access_log_test.cc \
	t/unit/http/chunked_test.cc \
	t/unit/http/error_pages_test.cc \
	t/unit/http/header_rewrite_test.cc \
	t/unit/http/parser_test.cc \
	t/unit/http/proxy_session_test.cc \
	t/unit/http/real_ip_test.cc \
	t/unit/http/router_test.cc \
	t/unit/upstream/backend_table_test.cc \
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
	t/unit/upstream/lb_weight_test.cc \
	t/unit/upstream/retry_budget_test.cc \
	t/unit/upstream/upstream_set_test.cc

# Helpers, built by `make`: fake_backend, a fast stand-in backend for manual tests and for
# bench/compare.sh's nagle workload (--split), and the demo backend for `make demo`.
noinst_PROGRAMS = t/helpers/fake_backend t/helpers/demo_backend
t_helpers_fake_backend_SOURCES = t/helpers/fake_backend_main.cc
t_helpers_fake_backend_LDADD = $(DEPS_LIBS)
t_helpers_demo_backend_SOURCES = t/helpers/demo_backend.cc
t_helpers_demo_backend_LDADD = $(LIBEVENT_LIBS)

check_PROGRAMS += t/integration/integration_tests
t_integration_integration_tests_CXXFLAGS = $(TEST_CXXFLAGS) \
	-DSPEEDMIMI_BIN='"$(abs_top_builddir)/src/speedmimi"' \
	-DSPEEDMIMI_BUILDDIR='"$(abs_top_builddir)"'
t_integration_integration_tests_LDADD = $(DEPS_LIBS) $(TEST_LIBS)
t_integration_integration_tests_SOURCES = $(TEST_HELPER_SOURCES) \
	t/integration/harness.cc t/integration/harness.h \
	t/integration/tls_certs.cc t/integration/tls_certs.h \
	t/integration/tls_client.cc t/integration/tls_client.h t/integration/tls_handles.h \
	t/integration/tls_transport.cc t/integration/tls_transport.h \
	t/integration/accept_test.cc \
	t/integration/api_backends_test.cc \
	t/integration/api_config_test.cc \
	t/integration/backend_nagle_test.cc \
	t/integration/balancing_test.cc \
	t/integration/dashboard_test.cc \
	t/integration/harness_test.cc \
	t/integration/lifecycle_test.cc \
	t/integration/observability_test.cc \
	t/integration/proxy_basic_test.cc \
	t/integration/proxy_errors_test.cc \
	t/integration/proxy_process_test.cc \
	t/integration/proxy_streaming_test.cc \
	t/integration/response_hazards_test.cc \
	t/integration/retry_policy_test.cc \
	t/integration/retry_test.cc \
	t/integration/upstream_pool_test.cc \
	t/integration/service_test.cc \
	t/integration/smuggling_test.cc \
	t/integration/state_file_test.cc \
	t/integration/tls_backend_test.cc \
	t/integration/tls_harness_test.cc \
	t/integration/tls_reload_test.cc \
	t/integration/tls_termination_test.cc

TESTS += t/unit/unit_tests t/integration/integration_tests

# Sanitizer builds (--enable-sanitizers, --enable-fuzzing): every report is fatal, and the
# integration tests' proxies inherit these settings, so a report in a master or worker lands in
# its logs/stdout.log, which the harness fails on. Leak checking stays on: workers leave with
# _exit() and are not leak-checked, the master and the test programs are, and are clean. The
# quarantine of freed memory (256 MiB by default) shrinks to 16 MiB: still a wide window for
# use-after-free, but it no longer swamps the memory-bound tests (50 MiB streamed through the
# proxy would otherwise show up as RSS growth). Options set by the caller are appended and so
# take precedence.
AM_TESTS_ENVIRONMENT = \
	ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:quarantine_size_mb=16$${ASAN_OPTIONS:+:$$ASAN_OPTIONS}"; \
	UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1$${UBSAN_OPTIONS:+:$$UBSAN_OPTIONS}"; \
	export ASAN_OPTIONS UBSAN_OPTIONS;

# libFuzzer targets (./configure --enable-fuzzing CXX=clang++). Each reads two control bytes and
# a message (see t/fuzz/fuzz_common.h); t/fuzz/corpus/<target>/ holds the seeds, t/fuzz/http.dict (json.dict for api_json)
# the dictionary. `make fuzz-smoke` runs every target FUZZ_SECONDS on a scratch copy of its
# corpus; a crash, a broken property or a sanitizer report fails it and leaves the input in
# t/fuzz/<target>-crash-* of the build directory.
FUZZ_TARGETS = request response chunked api_json
FUZZ_SECONDS = 60
EXTRA_DIST += t/fuzz/corpus t/fuzz/http.dict t/fuzz/json.dict t/fuzz/fuzz_common.h
CLEANFILES += t/fuzz/*.smoke

if ENABLE_FUZZING
noinst_PROGRAMS += t/fuzz/fuzz_request t/fuzz/fuzz_response t/fuzz/fuzz_chunked t/fuzz/fuzz_api_json
FUZZ_COMPILE_FLAGS = $(AM_CXXFLAGS) $(FUZZER_FLAGS)
FUZZ_LINK_FLAGS = $(AM_LDFLAGS) $(FUZZER_FLAGS)
t_fuzz_fuzz_request_SOURCES = t/fuzz/fuzz_request.cc t/fuzz/fuzz_common.h
t_fuzz_fuzz_request_CXXFLAGS = $(FUZZ_COMPILE_FLAGS)
t_fuzz_fuzz_request_LDFLAGS = $(FUZZ_LINK_FLAGS)
t_fuzz_fuzz_request_LDADD = libspeedmimi.la $(DEPS_LIBS)
t_fuzz_fuzz_response_SOURCES = t/fuzz/fuzz_response.cc t/fuzz/fuzz_common.h
t_fuzz_fuzz_response_CXXFLAGS = $(FUZZ_COMPILE_FLAGS)
t_fuzz_fuzz_response_LDFLAGS = $(FUZZ_LINK_FLAGS)
t_fuzz_fuzz_response_LDADD = libspeedmimi.la $(DEPS_LIBS)
t_fuzz_fuzz_chunked_SOURCES = t/fuzz/fuzz_chunked.cc t/fuzz/fuzz_common.h
t_fuzz_fuzz_chunked_CXXFLAGS = $(FUZZ_COMPILE_FLAGS)
t_fuzz_fuzz_chunked_LDFLAGS = $(FUZZ_LINK_FLAGS)
t_fuzz_fuzz_chunked_LDADD = libspeedmimi.la $(DEPS_LIBS)
t_fuzz_fuzz_api_json_SOURCES = t/fuzz/fuzz_api_json.cc t/fuzz/fuzz_common.h
t_fuzz_fuzz_api_json_CXXFLAGS = $(FUZZ_COMPILE_FLAGS)
t_fuzz_fuzz_api_json_LDFLAGS = $(FUZZ_LINK_FLAGS)
t_fuzz_fuzz_api_json_LDADD = libspeedmimi.la $(DEPS_LIBS)

# One line per target, "fuzz-smoke: <target>: Done N runs in S second(s)", then a failure if any
# target found something; all targets run either way.
fuzz-smoke: t/fuzz/fuzz_request t/fuzz/fuzz_response t/fuzz/fuzz_chunked t/fuzz/fuzz_api_json
	@status=0; \
	for target in $(FUZZ_TARGETS); do \
	  corpus=$$(mktemp -d "$${TMPDIR:-/tmp}/speedmimi-fuzz-$$target.XXXXXX") || exit 1; \
	  cp $(srcdir)/t/fuzz/corpus/$$target/* "$$corpus"/; \
	  log=t/fuzz/fuzz_$$target.smoke; \
	  echo "fuzz-smoke: $$target for $(FUZZ_SECONDS) s (log in $$log)"; \
	  $(AM_TESTS_ENVIRONMENT) \
	  ./t/fuzz/fuzz_$$target -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -dict=$(srcdir)/t/fuzz/$$(if [ $$target = api_json ]; then echo json; else echo http; fi).dict \
	    -artifact_prefix=t/fuzz/$$target- \
	    "$$corpus" >"$$log" 2>&1; \
	  rc=$$?; \
	  rm -rf "$$corpus"; \
	  done_line=$$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$$log" | tail -n 1); \
	  if [ $$rc -eq 0 ] && [ -n "$$done_line" ]; then \
	    echo "fuzz-smoke: $$target: $$done_line"; \
	  else \
	    echo "fuzz-smoke: $$target: FAILED (exit $$rc); end of $$log:"; \
	    tail -n 40 "$$log"; \
	    status=1; \
	  fi; \
	done; \
	exit $$status
else
fuzz-smoke:
	@echo "fuzz-smoke: the fuzz targets are not built: ./configure --enable-fuzzing CXX=clang++" >&2
	@exit 1
endif
.PHONY: fuzz-smoke

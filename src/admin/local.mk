libspeedmimi_la_SOURCES += \
	src/admin/api.cc src/admin/api.h \
	src/admin/config_json.cc src/admin/config_json.h \
	src/admin/dashboard.cc src/admin/dashboard.h \
	src/admin/host_stats.cc src/admin/host_stats.h \
	src/admin/http_server.cc src/admin/http_server.h \
	src/admin/metrics.cc src/admin/metrics.h \
	src/admin/request_bodies.cc src/admin/request_bodies.h \
	src/admin/resolver.cc src/admin/resolver.h \
	src/admin/stats.cc src/admin/stats.h

libspeedmimi_la_SOURCES += \
	src/core/atomic_file.cc src/core/atomic_file.h \
	src/core/backend_json.cc src/core/backend_json.h \
	src/core/cidr.cc src/core/cidr.h \
	src/core/clock.h \
	src/core/cmdline.cc src/core/cmdline.h \
	src/core/config.cc src/core/config.h src/core/config_limits.h src/core/config_types.h \
	src/core/config_yaml.cc src/core/config_yaml.h \
	src/core/histogram.h \
	src/core/json.h \
	src/core/log.cc src/core/log.h \
	src/core/shm.cc src/core/shm.h \
	src/core/slab.cc src/core/slab.h \
	src/core/slow_start.h \
	src/core/state_file.cc src/core/state_file.h \
	src/core/text_mark.h \
	src/core/units.cc src/core/units.h \
	src/core/zone.cc src/core/zone.h src/core/zone_types.h

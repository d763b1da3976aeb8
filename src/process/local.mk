libspeedmimi_la_SOURCES += \
	src/process/children.cc src/process/children.h \
	src/process/control.cc src/process/control.h \
	src/process/listeners.cc src/process/listeners.h \
	src/process/master.cc src/process/master.h \
	src/process/notify.cc src/process/notify.h \
	src/process/pid_file.cc src/process/pid_file.h \
	src/process/title.cc src/process/title.h \
	src/process/tls_check.cc src/process/tls_check.h \
	src/process/worker.cc src/process/worker.h \
	src/process/zone_ticket_keys.cc src/process/zone_ticket_keys.h

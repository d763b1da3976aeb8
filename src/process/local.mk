libspeedmimi_la_SOURCES += \
	src/process/control.cc src/process/control.h \
	src/process/master.cc src/process/master.h \
	src/process/worker.cc src/process/worker.h

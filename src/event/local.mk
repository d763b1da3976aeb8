libspeedmimi_la_SOURCES += \
	src/event/acceptor.cc src/event/acceptor.h \
	src/event/handles.h \
	src/event/listener.cc src/event/listener.h \
	src/event/stream.cc src/event/stream.h \
	src/event/tls.cc src/event/tls.h \
	src/event/timer.h

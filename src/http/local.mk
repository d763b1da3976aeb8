libspeedmimi_la_SOURCES += \
	src/http/access_log.cc src/http/access_log.h \
	src/http/chunked.cc src/http/chunked.h \
	src/http/error_pages.cc src/http/error_pages.h \
	src/http/field_list.h \
	src/http/header_rewrite.cc src/http/header_rewrite.h \
	src/http/message_types.h \
	src/http/parser.cc src/http/parser.h \
	src/http/proxy_session.cc src/http/proxy_session.h \
	src/http/real_ip.cc src/http/real_ip.h \
	src/http/router.cc src/http/router.h

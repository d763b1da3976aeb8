// Listening sockets, opened by the master and inherited by the workers.
#pragma once

#include <string>

#include "event/handles.h"

namespace speedmimi::event {

// Creates a non-blocking TCP socket bound to host:port (IPv4 or IPv6 literal, or a name) and
// listening with `backlog`. Returns an invalid Fd with `error` set ("bind() to 0.0.0.0:8080
// failed (98: Address already in use)") on failure.
Fd openListener(const std::string& host, int port, int backlog, std::string& error);

}  // namespace speedmimi::event

// The small responses SpeedMimi answers itself (DESIGN §4 table): a status line, Server,
// Content-Type, a correct Content-Length and Connection, and a short HTML body.
#pragma once

#include <event2/buffer.h>

#include <cstddef>

namespace speedmimi::http {

const char* reasonPhrase(int status);

// Appends the whole response to `out`. `keep_alive` false adds "Connection: close".
// `head_only` (HEAD requests) sends the same head without the body. `detail`, when given, is
// one more line of the body (nginx's "The plain HTTP request was sent to HTTPS port"). Returns
// the body bytes appended (for the access log).
size_t appendErrorResponse(int status, bool keep_alive, bool head_only, evbuffer* out,
                           const char* detail = nullptr);

}  // namespace speedmimi::http

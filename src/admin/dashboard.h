// The dashboard (DESIGN §9, issue 10): one HTML page, its CSS and JavaScript inside it, embedded
// in the binary and served on GET / and GET /dashboard of the admin listener. The page holds no
// data: its script reads the JSON API once a second (stats/server, backends) and calls it for
// the drain, activate and weight buttons, with the bearer token it asks the operator for when a
// call answers 401. So the page itself is Access::kPublic (the allow list still applies) and
// every data call needs the token as any API call does.
//
// Runs in the control process, like the API.
#pragma once

#include "admin/http_server.h"

namespace speedmimi::admin {

// Registers GET / and GET /dashboard on `server` (text/html; charset=utf-8, with a
// Content-Security-Policy that lets the browser load nothing but the page and call this API).
void registerDashboard(HttpServer& server);

}  // namespace speedmimi::admin

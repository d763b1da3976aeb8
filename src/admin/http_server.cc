#include "admin/http_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <strings.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/log.h"
#include "event/handles.h"

namespace speedmimi::admin {
namespace {

constexpr size_t kMaxHeadersSize = 64 * 1024;
// evhttp's own limit on a body, a memory guard above Options::max_body: a body between the two
// gets our JSON 413; above this one evhttp answers 413 itself, with its HTML page (libevent
// 2.1 cannot replace it), and closes the connection.
constexpr size_t kHardBodyLimit = 8 << 20;

bool methodOf(evhttp_cmd_type type, Method& out) {
  switch (type) {
    case EVHTTP_REQ_GET: out = Method::kGet; return true;
    case EVHTTP_REQ_POST: out = Method::kPost; return true;
    case EVHTTP_REQ_PUT: out = Method::kPut; return true;
    case EVHTTP_REQ_DELETE: out = Method::kDelete; return true;
    default: return false;
  }
}

std::string bodyOf(evhttp_request* request) {
  evbuffer* in = evhttp_request_get_input_buffer(request);
  size_t length = evbuffer_get_length(in);
  std::string body(length, '\0');
  if (length > 0) evbuffer_copyout(in, body.data(), length);
  return body;
}

std::map<std::string, std::string> queryOf(const evhttp_uri* uri) {
  std::map<std::string, std::string> out;
  const char* query = uri ? evhttp_uri_get_query(uri) : nullptr;
  if (!query) return out;
  evkeyvalq pairs;
  pairs.tqh_first = nullptr;  // TAILQ_INIT
  pairs.tqh_last = &pairs.tqh_first;
  if (evhttp_parse_query_str(query, &pairs) != 0) return out;
  for (evkeyval* kv = pairs.tqh_first; kv; kv = kv->next.tqe_next) out[kv->key] = kv->value;
  evhttp_clear_headers(&pairs);
  return out;
}

// A path as its percent-decoding, without a trailing slash ("/api/v1/config/" is the same).
std::string pathOf(const evhttp_uri* uri) {
  const char* raw = uri ? evhttp_uri_get_path(uri) : nullptr;
  std::string path = raw && *raw ? raw : "/";
  char* decoded = evhttp_uridecode(path.c_str(), 0, nullptr);
  if (decoded) {
    path = decoded;
    free(decoded);
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

const char* methodName(Method method) {
  switch (method) {
    case Method::kGet: return "GET";
    case Method::kPost: return "POST";
    case Method::kPut: return "PUT";
    case Method::kDelete: return "DELETE";
  }
  return "?";
}

Call::Call(evhttp_request* request, Method method, std::string path,
           std::map<std::string, std::string> query, std::string body, size_t* pending)
    : request_(request),
      method_(method),
      path_(std::move(path)),
      query_(std::move(query)),
      body_(std::move(body)),
      pending_(pending) {
  ++*pending_;
}

Call::~Call() {
  if (request_) {
    SM_ERROR("API: %s %s was left unanswered", methodName(method_), path_.c_str());
    fail(500, "internal error: the call was not answered");
  }
}

std::string Call::query(const std::string& name) const {
  auto it = query_.find(name);
  return it == query_.end() ? "" : it->second;
}

const char* Call::header(const char* name) const {
  if (!request_) return nullptr;
  return evhttp_find_header(evhttp_request_get_input_headers(request_), name);
}

void Call::addHeader(const char* name, const std::string& value) {
  if (request_) evhttp_add_header(evhttp_request_get_output_headers(request_), name, value.c_str());
}

void Call::succeed(int status, const std::string& message, core::JsonPtr data) {
  core::JsonPtr body(json_object());
  json_object_set_new(body.get(), "success", json_true());
  json_object_set_new(body.get(), "message", json_string(message.c_str()));
  if (data && json_is_object(data.get())) json_object_update(body.get(), data.get());
  answer(status, core::jsonText(body.get(), JSON_INDENT(2) | JSON_REAL_PRECISION(10)) + "\n", "application/json");
}

void Call::fail(int status, const std::string& error) {
  core::JsonPtr body(json_object());
  json_object_set_new(body.get(), "success", json_false());
  json_object_set_new(body.get(), "error", json_string(error.c_str()));
  answer(status, core::jsonText(body.get(), JSON_INDENT(2) | JSON_REAL_PRECISION(10)) + "\n", "application/json");
}

void Call::answer(int status, std::string_view body, const char* content_type) {
  if (!request_) return;
  evhttp_request* request = std::exchange(request_, nullptr);
  // Still pending until evhttp has written the answer (a stopping control process waits for
  // that); at once when the client is gone and nothing will be written.
  if (evhttp_request_get_connection(request)) {
    evhttp_request_set_on_complete_cb(
        request, [](evhttp_request*, void* count) { --*static_cast<size_t*>(count); }, pending_);
  } else {
    --*pending_;
  }
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  evhttp_add_header(headers, "Content-Type", content_type);
  evhttp_add_header(headers, "Cache-Control", "no-store");
  event::EvbufferPtr out(evbuffer_new());
  if (!out || evbuffer_add(out.get(), body.data(), body.size()) != 0) {
    evhttp_send_error(request, 500, "out of memory");
    return;
  }
  evhttp_send_reply(request, status, nullptr, out.get());
}

HttpServer::HttpServer(event_base* base, Options options) : options_(std::move(options)) {
  http_ = evhttp_new(base);
  if (!http_) return;
  evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(std::max(options_.max_body + 1, kHardBodyLimit)));
  evhttp_set_max_headers_size(http_, kMaxHeadersSize);
  evhttp_set_timeout(http_, options_.timeout_seconds);
  // PATCH, HEAD and OPTIONS reach us too, for a 405 with Allow instead of evhttp's own answer.
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_OPTIONS);
  evhttp_set_gencb(http_, &HttpServer::onRequest, this);
}

HttpServer::~HttpServer() {
  if (http_) evhttp_free(http_);
}

bool HttpServer::listen(int fd, std::string& error) {
  if (!http_) {
    error = "evhttp_new() failed";
    return false;
  }
  evutil_make_socket_nonblocking(fd);  // two control processes may share it during an upgrade
  socket_ = evhttp_accept_socket_with_handle(http_, fd);
  if (!socket_) {
    error = "evhttp cannot accept on the admin listener";
    return false;
  }
  return true;
}

void HttpServer::stopListening() {
  if (socket_) evhttp_del_accept_socket(http_, socket_);  // closes our copy of the socket
  socket_ = nullptr;
}

void HttpServer::route(const std::string& path, Method method, Handler handler, Access access) {
  routes_[path][method] = Route{std::move(handler), access};
}

const HttpServer::Route* HttpServer::find(const std::string& path, bool known_method,
                                          Method method) const {
  auto route = routes_.find(path);
  if (route == routes_.end() || !known_method) return nullptr;
  auto it = route->second.find(method);
  return it == route->second.end() ? nullptr : &it->second;
}

bool HttpServer::tokenMatches(const char* authorization, const std::string& token) {
  static constexpr std::string_view kScheme = "Bearer ";
  if (!authorization) return false;
  std::string_view given(authorization);
  if (given.size() < kScheme.size() || strncasecmp(given.data(), kScheme.data(), kScheme.size()))
    return false;
  given.remove_prefix(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  // Constant time in the token's contents: every byte of the longer one is compared.
  size_t n = std::max(given.size(), token.size());
  unsigned char diff = given.size() != token.size();
  for (size_t i = 0; i < n; ++i) {
    unsigned char a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    unsigned char b = i < token.size() ? static_cast<unsigned char>(token[i]) : 0;
    diff |= a ^ b;
  }
  return diff == 0;
}

void HttpServer::onRequest(evhttp_request* request, void* arg) {
  static_cast<HttpServer*>(arg)->dispatch(request);
}

void HttpServer::dispatch(evhttp_request* request) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  std::string path = pathOf(uri);
  Method method = Method::kGet;
  bool known_method = methodOf(evhttp_request_get_command(request), method);
  auto call = std::make_shared<Call>(request, method, path, queryOf(uri), bodyOf(request),
                                     &pending_);
  if (!options_.allow.empty()) {
    evhttp_connection* conn = evhttp_request_get_connection(request);
    const sockaddr* peer = conn ? evhttp_connection_get_addr(conn) : nullptr;
    if (!peer || !core::anyContains(options_.allow, core::IpAddress::fromSockaddr(peer))) {
      return call->fail(403, "this client's address is not in admin.allow");
    }
  }
  // Looked up before the token is checked, for Access::kPublic; without the token, an unknown
  // path or method still gets a 401, not a 404 or 405 that would tell what exists.
  const Route* found = find(path, known_method, method);
  bool open = found && found->access == Access::kPublic;
  if (!options_.auth_token.empty() && !open &&
      !tokenMatches(call->header("Authorization"), options_.auth_token)) {
    call->addHeader("WWW-Authenticate", "Bearer realm=\"speedmimi\"");
    return call->fail(401, call->header("Authorization")
                               ? "the bearer token is not the one in admin.auth_token"
                               : "this API needs \"Authorization: Bearer <admin.auth_token>\"");
  }
  if (refusing_) {
    call->addHeader("Connection", "close");
    call->addHeader("Retry-After", "1");
    return call->fail(503, "this control process is being replaced; retry");
  }
  if (call->body().size() > options_.max_body) {
    call->addHeader("Connection", "close");
    size_t limit = options_.max_body;
    std::string text = limit % (1 << 20) == 0 ? std::to_string(limit >> 20) + " MiB"
                                              : std::to_string(limit) + " bytes";
    return call->fail(413, "the request body is over the limit of " + text);
  }
  if (found) return found->handler(call);
  auto route = routes_.find(path);
  if (route == routes_.end()) return call->fail(404, "no such endpoint: " + path);
  std::string allow;
  for (const auto& [m, r] : route->second) {
    allow += (allow.empty() ? "" : ", ") + std::string(methodName(m));
  }
  call->addHeader("Allow", allow);
  return call->fail(405, "method not allowed on " + path + "; allowed: " + allow);
}

}  // namespace speedmimi::admin

// The management API's HTTP layer (DESIGN §9): libevent's evhttp on the admin listener, with
// what every endpoint shares: the allow list (403), the bearer token (401), the body limit
// (413), routing by path (404) and method (405 with Allow), and JSON answers shaped
// {"success": true, "message": ..., ...data} / {"success": false, "error": ...}.
//
// Runs in the control process, on its event loop. Low traffic by design: evhttp is never used
// for proxied traffic.
#pragma once

#include <event2/http.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/cidr.h"
#include "core/json.h"

namespace speedmimi::admin {

enum class Method { kGet, kPost, kPut, kDelete };
const char* methodName(Method method);

// Who may call a route. The allow list (403) applies to both.
enum class Access {
  kToken,   // needs admin.auth_token when one is set (401 otherwise): every API endpoint
  kPublic,  // served without the token: only what holds no data (the dashboard's page, which
            // then asks the operator for the token that its own data calls carry)
};

// One API call. A handler answers it at once or keeps its shared pointer and answers later,
// from a callback of the same event loop: every call is answered exactly once, even when the
// client has gone meanwhile (evhttp then frees the request without writing).
class Call {
 public:
  Call(evhttp_request* request, Method method, std::string path,
       std::map<std::string, std::string> query, std::string body, size_t* pending);
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  ~Call();  // a call dropped unanswered gets a 500: a handler bug must not hang its client

  Method method() const { return method_; }
  const std::string& path() const { return path_; }
  const std::string& body() const { return body_; }
  // A query parameter, "" when absent.
  std::string query(const std::string& name) const;
  bool hasQuery(const std::string& name) const { return query_.count(name) != 0; }
  // A request header, nullptr when absent.
  const char* header(const char* name) const;

  // Adds a response header to the answer about to be sent.
  void addHeader(const char* name, const std::string& value);
  // {"success": true, "message": message, ...data's members}.
  void succeed(int status, const std::string& message, core::JsonPtr data = nullptr);
  // {"success": false, "error": error}.
  void fail(int status, const std::string& error);
  // Any body, with its content type.
  void answer(int status, std::string_view body, const char* content_type);
  bool answered() const { return request_ == nullptr; }

 private:
  evhttp_request* request_;  // owned by evhttp; nullptr once answered
  Method method_;
  std::string path_;
  std::map<std::string, std::string> query_;
  std::string body_;
  size_t* pending_;  // the server's count of calls not answered yet
};

using CallPtr = std::shared_ptr<Call>;
using Handler = std::function<void(const CallPtr& call)>;

class HttpServer {
 public:
  struct Options {
    std::string auth_token;        // "" = no token needed
    std::vector<core::Cidr> allow;  // empty = every client
    size_t max_body = 1 << 20;
    int timeout_seconds = 30;  // evhttp's read and write timeout per connection
  };

  HttpServer(event_base* base, Options options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves on the listening socket `fd` (inherited from the master; we own our copy now).
  bool listen(int fd, std::string& error);
  // Closes the listening socket: no new connection; open ones still get their answers.
  void stopListening();
  // This process is stopping (a reload replaces it): calls that still arrive on open
  // connections get a 503 and the connection closes; the next control process serves them.
  void refuseNewCalls() { refusing_ = true; }

  // `handler` answers `method` on the exact `path`, to the callers `access` admits.
  void route(const std::string& path, Method method, Handler handler,
             Access access = Access::kToken);

  // Calls received whose answer is not written yet.
  size_t pending() const { return pending_; }

  // Whether `authorization` (the header's value, or nullptr) carries the bearer `token`,
  // compared in constant time. Exposed for tests.
  static bool tokenMatches(const char* authorization, const std::string& token);

 private:
  struct Route {
    Handler handler;
    Access access;
  };

  static void onRequest(evhttp_request* request, void* arg);
  void dispatch(evhttp_request* request);
  // The route of `method` on `path`, nullptr when there is none.
  const Route* find(const std::string& path, bool known_method, Method method) const;

  Options options_;
  evhttp* http_ = nullptr;  // owned
  evhttp_bound_socket* socket_ = nullptr;
  std::map<std::string, std::map<Method, Route>> routes_;
  size_t pending_ = 0;
  bool refusing_ = false;
};

}  // namespace speedmimi::admin

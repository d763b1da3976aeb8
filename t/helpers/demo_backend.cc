// demo_backend PORT NAME: the backend of `make demo`. A tiny HTTP/1.1 keep-alive server on
// 127.0.0.1:PORT (libevent_core bufferevents; evhttp is not part of libevent_core) that answers
// every request with 200 text/plain "Hello from NAME (port PORT): METHOD PATH\n".
// Request bodies framed by Content-Length are skipped; a chunked body is not parsed, so that
// answer closes the connection instead of guessing where the next request starts.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <strings.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>

namespace {

constexpr size_t kMaxHead = 64 * 1024;

struct Server {
  std::string name;
  int port = 0;
};

// One client connection. Owned by its callbacks: freed on EOF, error, or after the last write
// of a connection that must close.
struct Connection {
  bufferevent* bev = nullptr;
  const Server* server = nullptr;
  uint64_t body_left = 0;  // bytes of the current request body still to skip
  bool closing = false;
};

void freeConnection(Connection* c) {
  bufferevent_free(c->bev);
  delete c;
}

struct Request {
  std::string method;
  std::string path;
  bool keep_alive = true;
  bool chunked = false;
  uint64_t content_length = 0;
};

// Parses the head (without the final empty line). False if the request line is malformed.
bool parseHead(const std::string& head, Request* request) {
  std::istringstream lines(head);
  std::string line;
  std::getline(lines, line);
  std::istringstream words(line);
  std::string version;
  if (!(words >> request->method >> request->path >> version)) return false;
  request->keep_alive = version != "HTTP/1.0";
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (strcasecmp(name.c_str(), "Content-Length") == 0) {
      request->content_length = std::strtoull(value.c_str(), nullptr, 10);
    } else if (strcasecmp(name.c_str(), "Transfer-Encoding") == 0) {
      request->chunked = true;
    } else if (strcasecmp(name.c_str(), "Connection") == 0) {
      if (strcasecmp(value.c_str(), "close") == 0) request->keep_alive = false;
      if (strcasecmp(value.c_str(), "keep-alive") == 0) request->keep_alive = true;
    }
  }
  return true;
}

void respond(Connection* c, const Request& request) {
  std::string body = "Hello from " + c->server->name + " (port " + std::to_string(c->server->port) +
                     "): " + request.method + " " + request.path + "\n";
  bool keep_alive = request.keep_alive && !request.chunked;
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                     std::to_string(body.size()) +
                     "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n";
  evbuffer* out = bufferevent_get_output(c->bev);
  evbuffer_add(out, head.data(), head.size());
  if (request.method != "HEAD") evbuffer_add(out, body.data(), body.size());
  if (!keep_alive) {
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
  }
}

void badRequest(Connection* c) {
  static constexpr char kAnswer[] =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
      "Connection: close\r\n\r\nbad request\n";
  evbuffer_add(bufferevent_get_output(c->bev), kAnswer, sizeof kAnswer - 1);
  c->closing = true;
  bufferevent_disable(c->bev, EV_READ);
}

void onRead(bufferevent* bev, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  while (!c->closing) {
    if (c->body_left > 0) {
      size_t skip = std::min<uint64_t>(c->body_left, evbuffer_get_length(in));
      if (skip == 0) return;
      evbuffer_drain(in, skip);
      c->body_left -= skip;
      continue;
    }
    evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
    if (end.pos < 0) {
      if (evbuffer_get_length(in) > kMaxHead) badRequest(c);
      return;
    }
    std::string head(static_cast<size_t>(end.pos), '\0');
    evbuffer_remove(in, head.data(), head.size());
    evbuffer_drain(in, 4);
    Request request;
    if (!parseHead(head, &request)) {
      badRequest(c);
      return;
    }
    c->body_left = request.chunked ? 0 : request.content_length;
    respond(c, request);
  }
}

void onWrite(bufferevent* bev, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0) freeConnection(c);
}

void onEvent(bufferevent*, short events, void* arg) {
  if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) freeConnection(static_cast<Connection*>(arg));
}

void onAccept(evconnlistener* listener, evutil_socket_t fd, sockaddr*, int, void* arg) {
  event_base* base = evconnlistener_get_base(listener);
  bufferevent* bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  auto* c = new Connection{bev, static_cast<const Server*>(arg)};
  bufferevent_setcb(bev, onRead, onWrite, onEvent, c);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

using BasePtr = std::unique_ptr<event_base, decltype(&event_base_free)>;
using ListenerPtr = std::unique_ptr<evconnlistener, decltype(&evconnlistener_free)>;

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PORT NAME\n", argv[0]);
    return 2;
  }
  Server server{argv[2], std::atoi(argv[1])};
  if (server.port <= 0 || server.port > 65535) {
    std::fprintf(stderr, "demo_backend: bad port '%s'\n", argv[1]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  BasePtr base(event_base_new(), &event_base_free);
  if (!base) {
    std::fprintf(stderr, "demo_backend: event_base_new failed\n");
    return 1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ListenerPtr listener(
      evconnlistener_new_bind(base.get(), onAccept, &server,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                              128, reinterpret_cast<sockaddr*>(&addr), sizeof addr),
      &evconnlistener_free);
  if (!listener) {
    std::fprintf(stderr, "demo_backend: cannot listen on 127.0.0.1:%d: %s\n", server.port,
                 std::strerror(errno));
    return 1;
  }
  std::printf("demo_backend %s listening on 127.0.0.1:%d\n", server.name.c_str(), server.port);
  std::fflush(stdout);
  return event_base_dispatch(base.get()) == 0 ? 0 : 1;
}

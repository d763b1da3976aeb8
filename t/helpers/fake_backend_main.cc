// fake_backend [--split] PORT [BODY_BYTES]: a fast stand-in backend for manual tests and
// benchmarks. Listens on 127.0.0.1:PORT and answers every request with a keep-alive 200 whose
// body is BODY_BYTES bytes (default 13: "Hello, World!"). One thread, level-triggered epoll,
// non-blocking sockets. Request bodies (Content-Length or chunked) are read and discarded;
// pipelined requests are answered in order.
//
// --split behaves as many application servers do (Python's http.server among them): Nagle's
// algorithm stays on (no TCP_NODELAY) and each answer goes out in two send()s, the head and then
// the body, so the body waits in the kernel until the peer acknowledges the head.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

constexpr size_t kMaxHead = 64 * 1024;

// Skips a chunked body as it arrives (sizes, data, CRLFs, trailers).
class ChunkedSkipper {
 public:
  enum class Result { kNeedMore, kDone, kError };
  // Consumes from the front of `in`; *used tells how much.
  Result feed(std::string_view in, size_t* used) {
    size_t pos = 0;
    while (true) {
      if (state_ == State::kData) {
        size_t take = std::min<uint64_t>(left_, in.size() - pos);
        pos += take;
        left_ -= take;
        if (left_ > 0) break;
        state_ = State::kDataEnd;
        left_ = 2;  // the CRLF after the data
        continue;
      }
      if (state_ == State::kDataEnd) {
        size_t take = std::min<uint64_t>(left_, in.size() - pos);
        pos += take;
        left_ -= take;
        if (left_ > 0) break;
        state_ = State::kSize;
        continue;
      }
      size_t eol = in.find("\r\n", pos);
      if (eol == std::string_view::npos) break;
      std::string_view line = in.substr(pos, eol - pos);
      pos = eol + 2;
      if (state_ == State::kTrailer) {
        if (line.empty()) {
          *used = pos;
          *this = ChunkedSkipper();
          return Result::kDone;
        }
        continue;
      }
      char* end = nullptr;
      std::string size_text(line.substr(0, line.find(';')));
      left_ = std::strtoull(size_text.c_str(), &end, 16);
      if (size_text.empty() || end == size_text.c_str()) return Result::kError;
      state_ = left_ == 0 ? State::kTrailer : State::kData;
    }
    *used = pos;
    return Result::kNeedMore;
  }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer };
  State state_ = State::kSize;
  uint64_t left_ = 0;
};

struct Connection {
  int fd = -1;
  std::string in;
  std::string out;
  size_t out_sent = 0;
  std::deque<size_t> cuts;  // offsets in `out` where a send() must stop (--split)
  uint64_t body_left = 0;   // Content-Length bytes still to discard
  bool in_chunked = false;
  ChunkedSkipper chunked;
  bool close_after = false;  // close once `out` is written
  bool want_write = false;
};

struct Head {
  bool keep_alive = true;
  bool chunked = false;
  uint64_t content_length = 0;
};

Head parseHead(std::string_view head) {
  Head h;
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  h.keep_alive = line.size() < 8 || line.substr(line.size() - 8) != "HTTP/1.0";
  while (eol != std::string_view::npos && eol + 2 < head.size()) {
    size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view field = head.substr(start, eol - start);
    size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(field.substr(0, colon));
    std::string value(field.substr(colon + 1));
    value.erase(0, value.find_first_not_of(" \t"));
    if (strcasecmp(name.c_str(), "Content-Length") == 0) {
      h.content_length = std::strtoull(value.c_str(), nullptr, 10);
    } else if (strcasecmp(name.c_str(), "Transfer-Encoding") == 0) {
      h.chunked = true;
    } else if (strcasecmp(name.c_str(), "Connection") == 0) {
      if (strcasecmp(value.c_str(), "close") == 0) h.keep_alive = false;
      if (strcasecmp(value.c_str(), "keep-alive") == 0) h.keep_alive = true;
    }
  }
  return h;
}

// An answer and, with --split, the length of its head (the first send()); 0 = one send().
struct Answer {
  std::string bytes;
  size_t split_at = 0;
};

class Server {
 public:
  Server(int epoll_fd, Answer response, Answer response_close, bool nagle)
      : epoll_fd_(epoll_fd),
        response_(std::move(response)),
        response_close_(std::move(response_close)),
        nagle_(nagle) {}

  void accept(int listen_fd);
  void handle(int fd, uint32_t events);

 private:
  bool consume(Connection& c);  // false: protocol error, close now
  void flush(Connection& c);
  void close(Connection& c);

  int epoll_fd_;
  Answer response_;
  Answer response_close_;
  bool nagle_;  // leave Nagle's algorithm on (--split)
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
};

void Server::accept(int listen_fd) {
  while (true) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    if (!nagle_) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    connections_[fd] = std::move(c);
  }
}

bool Server::consume(Connection& c) {
  while (!c.close_after) {
    if (c.body_left > 0) {
      size_t take = std::min<uint64_t>(c.body_left, c.in.size());
      c.in.erase(0, take);
      c.body_left -= take;
      if (c.body_left > 0) return true;
    }
    if (c.in_chunked) {
      size_t used = 0;
      auto r = c.chunked.feed(c.in, &used);
      c.in.erase(0, used);
      if (r == ChunkedSkipper::Result::kError) return false;
      if (r == ChunkedSkipper::Result::kNeedMore) return true;
      c.in_chunked = false;
    }
    size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return c.in.size() <= kMaxHead;
    Head head = parseHead(std::string_view(c.in).substr(0, end + 4));
    c.in.erase(0, end + 4);
    c.body_left = head.chunked ? 0 : head.content_length;
    c.in_chunked = head.chunked;
    const Answer& answer = head.keep_alive ? response_ : response_close_;
    if (answer.split_at > 0) {
      c.cuts.push_back(c.out.size() + answer.split_at);
      c.cuts.push_back(c.out.size() + answer.bytes.size());
    }
    c.out += answer.bytes;
    c.close_after = !head.keep_alive;
  }
  return true;
}

void Server::flush(Connection& c) {
  while (c.out_sent < c.out.size()) {
    size_t end = c.cuts.empty() ? c.out.size() : c.cuts.front();
    ssize_t n = send(c.fd, c.out.data() + c.out_sent, end - c.out_sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_sent += static_cast<size_t>(n);
      if (!c.cuts.empty() && c.out_sent == c.cuts.front()) c.cuts.pop_front();
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    close(c);
    return;
  }
  if (c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
    if (c.close_after) {
      close(c);
      return;
    }
  }
  bool want_write = !c.out.empty();
  if (want_write != c.want_write) {
    epoll_event ev{};
    ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0u);
    ev.data.fd = c.fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
    c.want_write = want_write;
  }
}

void Server::close(Connection& c) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  connections_.erase(c.fd);  // destroys c
}

void Server::handle(int fd, uint32_t events) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  if (events & EPOLLIN) {
    char buf[64 * 1024];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      close(c);
      return;
    }
    if (n > 0) c.in.append(buf, static_cast<size_t>(n));
    if (!consume(c)) {
      close(c);
      return;
    }
  }
  if (events & (EPOLLERR | EPOLLHUP)) {
    close(c);
    return;
  }
  flush(c);
}

Answer makeResponse(size_t body_bytes, bool keep_alive, bool split) {
  static constexpr std::string_view kText = "Hello, World!";
  std::string body(body_bytes, '\0');
  for (size_t i = 0; i < body_bytes; ++i) body[i] = kText[i % kText.size()];
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                     std::to_string(body_bytes) +
                     (keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
  size_t split_at = split && body_bytes > 0 ? head.size() : 0;
  return {head + body, split_at};
}

int listenOn(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 1024) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  bool split = argc > 1 && std::strcmp(argv[1], "--split") == 0;
  if (split) {
    --argc;
    ++argv;
  }
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: fake_backend [--split] PORT [BODY_BYTES]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  long long body_bytes = argc == 3 ? std::atoll(argv[2]) : 13;
  if (port <= 0 || port > 65535 || body_bytes < 0) {
    std::fprintf(stderr, "fake_backend: bad PORT or BODY_BYTES\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int listen_fd = listenOn(port);
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (listen_fd < 0 || epoll_fd < 0) {
    std::fprintf(stderr, "fake_backend: cannot listen on 127.0.0.1:%d: %s\n", port,
                 std::strerror(errno));
    return 1;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
  const auto bytes = static_cast<size_t>(body_bytes);
  Server server(epoll_fd, makeResponse(bytes, true, split), makeResponse(bytes, false, split),
                split);
  std::printf("fake_backend listening on 127.0.0.1:%d, %lld-byte bodies%s\n", port, body_bytes,
              split ? ", head and body in two writes with Nagle on" : "");
  std::fflush(stdout);
  epoll_event events[256];
  while (true) {
    int n = epoll_wait(epoll_fd, events, 256, -1);
    if (n < 0 && errno != EINTR) {
      std::perror("fake_backend: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == listen_fd) {
        server.accept(listen_fd);
      } else {
        server.handle(events[i].data.fd, events[i].events);
      }
    }
  }
}

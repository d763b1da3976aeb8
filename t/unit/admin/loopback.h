// For the admin unit tests: a listening socket on a loopback port, and HTTP round trips from a
// client thread while the test's event loop runs (libevent is used from one thread only).
#pragma once

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace speedmimi::admin::testing {

// A listening socket on 127.0.0.1 and a port picked by the kernel; -1 on failure.
inline int listenOnLoopback(int& port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

// Sends `request` (which should ask for Connection: close) and reads until EOF (5 s at most).
inline std::string roundTrip(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return answer;
}

// Runs `base`'s loop while a client thread sends `request` to `port`; `each_turn` runs on the
// loop's thread between turns (to change what the server waits on). 10 s at most.
inline std::string sendWhileLooping(event_base* base, int port, const std::string& request,
                                    const std::function<void()>& each_turn = nullptr) {
  std::string answer;
  std::atomic<bool> done{false};
  std::thread client([&] {
    answer = roundTrip(port, request);
    done = true;
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    if (each_turn) each_turn();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  client.join();
  return answer;
}

inline std::string httpRequest(const std::string& method, const std::string& target,
                               const std::string& body = "", const std::string& headers = "") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers;
  if (!body.empty() || method == "POST" || method == "PUT") {
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

// The status code of a raw answer, 0 if none.
inline int statusOf(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
  return std::atoi(answer.substr(9, 3).c_str());
}

// The body of a raw answer (evhttp answers with Content-Length).
inline std::string bodyOf(const std::string& answer) {
  size_t end = answer.find("\r\n\r\n");
  return end == std::string::npos ? "" : answer.substr(end + 4);
}

}  // namespace speedmimi::admin::testing

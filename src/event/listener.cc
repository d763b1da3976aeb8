#include "event/listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace speedmimi::event {
namespace {

std::string failure(const char* call, const std::string& host, int port, int err) {
  return std::string(call) + " to " + host + ":" + std::to_string(port) + " failed (" +
         std::to_string(err) + ": " + std::strerror(err) + ")";
}

}  // namespace

Fd openListener(const std::string& host, int port, int backlog, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    error = "cannot resolve listen address " + host + ": " + gai_strerror(rc);
    return Fd();
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);

  Fd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    error = failure("socket()", host, port, errno);
    return Fd();
  }
  int one = 1;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    error = failure("setsockopt(SO_REUSEADDR)", host, port, errno);
    return Fd();
  }
  if (res->ai_family == AF_INET6) {
    int zero = 0;  // "::" also accepts IPv4, like nginx's ipv6only=off
    if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0) {
      error = failure("setsockopt(IPV6_V6ONLY)", host, port, errno);
      return Fd();
    }
  }
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
    error = failure("bind()", host, port, errno);
    return Fd();
  }
  if (::listen(fd.get(), backlog) != 0) {
    error = failure("listen()", host, port, errno);
    return Fd();
  }
  return fd;
}

}  // namespace speedmimi::event

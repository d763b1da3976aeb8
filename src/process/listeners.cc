#include "process/listeners.h"

#include <fcntl.h>

#include <cstdlib>

#include "event/listener.h"

namespace speedmimi::process {
namespace {

constexpr int kBacklog = 511;

}  // namespace

std::string listenerAddress(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void ListenerSet::inherit(const std::string& value, std::string& error) {
  size_t start = 0;
  while (start < value.size()) {
    size_t end = value.find(',', start);
    if (end == std::string::npos) end = value.size();
    std::string item = value.substr(start, end - start);
    start = end + 1;
    size_t eq = item.rfind('=');
    char* rest = nullptr;
    long fd = eq == std::string::npos ? -1 : std::strtol(item.c_str() + eq + 1, &rest, 10);
    if (fd < 0 || rest == nullptr || *rest != '\0' || rest == item.c_str() + eq + 1 ||
        fcntl(static_cast<int>(fd), F_GETFD) < 0) {
      error = std::string(kEnvironmentName) + ": \"" + item + "\" is not ADDRESS=FD of an open socket";
      continue;
    }
    fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);  // ours now; the next exec sets it again
    inherited_[item.substr(0, eq)] = event::Fd(static_cast<int>(fd));
  }
}

ListenerRef ListenerSet::acquire(const std::string& host, int port, std::string& error) {
  std::string address = listenerAddress(host, port);
  auto it = open_.find(address);
  if (it != open_.end()) {
    if (ListenerRef existing = it->second.lock()) return existing;
  }
  auto listener = std::make_shared<Listener>();
  listener->address = address;
  auto inherited = inherited_.find(address);
  if (inherited != inherited_.end()) {
    listener->fd = std::move(inherited->second);
    inherited_.erase(inherited);
  } else {
    listener->fd = event::openListener(host, port, kBacklog, error);
    if (!listener->fd.valid()) return nullptr;
  }
  open_[address] = listener;
  return listener;
}

std::vector<ListenerRef> ListenerSet::open() const {
  std::vector<ListenerRef> out;
  for (const auto& [address, weak] : open_) {
    if (ListenerRef l = weak.lock()) out.push_back(std::move(l));
  }
  return out;
}

std::string ListenerSet::environmentValue() const {
  std::string out;
  for (const ListenerRef& l : open()) {
    if (!out.empty()) out += ",";
    out += l->address + "=" + std::to_string(l->fd.get());
  }
  return out;
}

}  // namespace speedmimi::process

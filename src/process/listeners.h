// The master's listening sockets across generations (DESIGN §2). A reload asks for the addresses
// of its configuration: an address that is already open keeps its socket (its accept queue, so
// no connection is ever refused), a new one is bound, and one that no generation asks for any
// more is closed when the last generation holding it is gone. A binary upgrade hands the sockets
// to the new binary by number in the environment.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "event/handles.h"

namespace speedmimi::process {

// One listening socket, shared by the generations that serve it.
struct Listener {
  std::string address;  // "host:port" as configured
  event::Fd fd;
};
using ListenerRef = std::shared_ptr<Listener>;

class ListenerSet {
 public:
  // The sockets inherited from the binary before an upgrade (see environmentValue()), adopted
  // when a generation asks for their address. A malformed value is ignored with `error` set.
  void inherit(const std::string& value, std::string& error);

  // The socket for host:port: an open one, an inherited one, or a new bound one. nullptr with
  // `error` when binding fails.
  ListenerRef acquire(const std::string& host, int port, std::string& error);

  // Every socket still open (some generation holds it), for the children to close the ones
  // their generation does not use, and for the upgrade's exec.
  std::vector<ListenerRef> open() const;

  // "ADDRESS=FD,ADDRESS=FD": the value of kEnvironmentName for the new binary.
  std::string environmentValue() const;

  // Inherited sockets no generation asked for: closed (call once the first generation is up).
  void closeUnclaimed() { inherited_.clear(); }

  static constexpr const char* kEnvironmentName = "SPEEDMIMI_LISTENERS";

 private:
  std::map<std::string, std::weak_ptr<Listener>> open_;
  std::map<std::string, event::Fd> inherited_;
};

// "host:port" (IPv6 hosts in brackets, as "[::1]:8080").
std::string listenerAddress(const std::string& host, int port);

}  // namespace speedmimi::process

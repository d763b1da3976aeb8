// Session-ticket keys shared through the zone (DESIGN §10): the masters make and rotate them,
// every worker's TLS contexts encrypt and decrypt tickets with them, so a client resumes on any
// worker, after a reload and after a binary upgrade that keeps the zone (a new zone layout
// starts a clean zone, and with it new keys: those clients make one full handshake).
#pragma once

#include <chrono>
#include <cstdint>

#include "core/zone.h"
#include "event/tls.h"

namespace speedmimi::process {

// How often a new key is made. With kTicketKeySlots keys accepted, a ticket resumes for two
// intervals at least and three at most.
constexpr std::chrono::seconds kTicketKeyRotation{3600};

// Master: makes the first key when the zone has none, and a new one once the current key is
// `interval` old (by its created_unix, so a reload or a new master keeps the rhythm). True when
// it made one; false when none was due, or with an alert when OpenSSL's RNG failed.
bool rotateTicketKeys(core::Zone& zone, int64_t now_unix,
                      std::chrono::seconds interval = kTicketKeyRotation);

// Worker: the zone's keys as ServerTlsOptions::tickets wants them. Reads copy the slot the
// zone's serial names (no lock; see core::TicketKeyRing). Outlives every ServerTls given it.
class ZoneTicketKeys final : public event::TicketKeySource {
 public:
  explicit ZoneTicketKeys(const core::Zone& zone) : zone_(zone) {}
  bool current(event::TicketKey& key) const override;
  bool find(const uint8_t (&name)[16], event::TicketKey& key, bool& renew) const override;

 private:
  const core::Zone& zone_;
};

}  // namespace speedmimi::process

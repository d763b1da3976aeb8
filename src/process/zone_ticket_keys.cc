#include "process/zone_ticket_keys.h"

#include <openssl/rand.h>

#include <cstring>

#include "core/log.h"

namespace speedmimi::process {
namespace {

void copyKey(const core::ZoneTicketKey& from, event::TicketKey& to) {
  std::memcpy(to.name, from.name, sizeof(to.name));
  std::memcpy(to.aes_key, from.aes_key, sizeof(to.aes_key));
  std::memcpy(to.hmac_key, from.hmac_key, sizeof(to.hmac_key));
}

}  // namespace

bool rotateTicketKeys(core::Zone& zone, int64_t now_unix, std::chrono::seconds interval) {
  core::ZoneTicketKey current;
  const uint64_t serial = zone.ticketKeySerial();
  if (serial != 0 && zone.ticketKey(serial, current) &&
      now_unix - current.created_unix < interval.count()) {
    return false;  // not due: no random bytes spent
  }
  core::ZoneTicketKey fresh;
  if (RAND_bytes(fresh.name, sizeof(fresh.name)) != 1 ||
      RAND_bytes(fresh.aes_key, sizeof(fresh.aes_key)) != 1 ||
      RAND_bytes(fresh.hmac_key, sizeof(fresh.hmac_key)) != 1) {
    SM_ALERT("cannot make a session-ticket key: RAND_bytes failed; the current one stays");
    return false;
  }
  fresh.created_unix = now_unix;
  return zone.rotateTicketKey(fresh, interval.count());
}

bool ZoneTicketKeys::current(event::TicketKey& key) const {
  core::ZoneTicketKey k;
  const uint64_t serial = zone_.ticketKeySerial();
  if (!zone_.ticketKey(serial, k)) return false;
  copyKey(k, key);
  return true;
}

bool ZoneTicketKeys::find(const uint8_t (&name)[16], event::TicketKey& key, bool& renew) const {
  const uint64_t serial = zone_.ticketKeySerial();
  for (uint64_t n = serial; n > 0 && serial - n < core::kTicketKeySlots; --n) {
    core::ZoneTicketKey k;
    if (!zone_.ticketKey(n, k) || std::memcmp(k.name, name, sizeof(k.name)) != 0) continue;
    copyKey(k, key);
    renew = n != serial;
    return true;
  }
  return false;
}

}  // namespace speedmimi::process

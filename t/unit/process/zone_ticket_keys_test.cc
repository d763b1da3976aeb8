// Session-ticket keys in the zone: the master makes the first and rotates them; the workers'
// source encrypts with the newest and still decrypts with the two before it (renewing).
#include "process/zone_ticket_keys.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "core/config_types.h"

namespace speedmimi::process {
namespace {

using std::chrono::seconds;

class ZoneTicketKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    zone_ = core::Zone::create(core::ServerConfig{}.shm_size, 1, error);
    ASSERT_NE(zone_, nullptr) << error;
  }

  std::string currentName() {
    event::TicketKey key;
    EXPECT_TRUE(keys().current(key));
    return std::string(reinterpret_cast<const char*>(key.name), sizeof(key.name));
  }

  // find() of the key named `name`: "renew", "current" or "gone".
  std::string lookUp(const std::string& name) {
    uint8_t raw[16];
    std::memcpy(raw, name.data(), sizeof(raw));
    event::TicketKey key;
    bool renew = false;
    if (!keys().find(raw, key, renew)) return "gone";
    EXPECT_EQ(std::memcmp(key.name, raw, sizeof(raw)), 0);
    return renew ? "renew" : "current";
  }

  ZoneTicketKeys keys() { return ZoneTicketKeys(*zone_); }

  std::unique_ptr<core::Zone> zone_;
};

TEST_F(ZoneTicketKeysTest, NoKeyNoTicket) {
  event::TicketKey key;
  EXPECT_FALSE(keys().current(key));
  uint8_t name[16] = {};
  bool renew = false;
  EXPECT_FALSE(keys().find(name, key, renew));
}

TEST_F(ZoneTicketKeysTest, RotationKeepsThePreviousTwo) {
  const int64_t t0 = 1'000'000;
  const seconds hour{3600};
  ASSERT_TRUE(rotateTicketKeys(*zone_, t0, hour));  // the first key
  const std::string first = currentName();
  EXPECT_EQ(lookUp(first), "current");
  EXPECT_FALSE(rotateTicketKeys(*zone_, t0 + 3599, hour)) << "not due yet";
  EXPECT_EQ(currentName(), first);

  ASSERT_TRUE(rotateTicketKeys(*zone_, t0 + 3600, hour));
  const std::string second = currentName();
  EXPECT_NE(second, first);
  EXPECT_EQ(lookUp(second), "current");
  EXPECT_EQ(lookUp(first), "renew");

  // Due from the current key's age, not from the first's.
  EXPECT_FALSE(rotateTicketKeys(*zone_, t0 + 7199, hour));
  ASSERT_TRUE(rotateTicketKeys(*zone_, t0 + 7200, hour));
  const std::string third = currentName();
  EXPECT_EQ(lookUp(first), "renew");
  EXPECT_EQ(lookUp(second), "renew");
  ASSERT_TRUE(rotateTicketKeys(*zone_, t0 + 10800, hour));
  EXPECT_EQ(lookUp(first), "gone") << "the oldest slot took the new key";
  EXPECT_EQ(lookUp(second), "renew");
  EXPECT_EQ(lookUp(third), "renew");
  EXPECT_EQ(zone_->ticketKeySerial(), 4u);
}

TEST_F(ZoneTicketKeysTest, AnInjectedIntervalRotatesFaster) {
  ASSERT_TRUE(rotateTicketKeys(*zone_, 100, seconds(1)));
  const std::string first = currentName();
  ASSERT_TRUE(rotateTicketKeys(*zone_, 101, seconds(1)));
  EXPECT_NE(currentName(), first);
}

// A reader copying while the master overwrites a slot never takes a torn key: each key here is
// one byte value throughout, and a copy the seqlock accepts must be whole.
TEST_F(ZoneTicketKeysTest, ReadersNeverTakeAKeyBeingOverwritten) {
  auto patterned = [](uint64_t n) {
    core::ZoneTicketKey k;
    std::memset(&k, static_cast<int>(n & 0xff), sizeof(k));
    k.created_unix = static_cast<int64_t>(n);
    return k;
  };
  ASSERT_TRUE(zone_->rotateTicketKey(patterned(1), 1));
  std::atomic<bool> done{false};
  std::atomic<uint64_t> accepted{0}, torn{0};
  std::thread reader([&] {
    while (!done.load()) {
      const uint64_t serial = zone_->ticketKeySerial();
      for (uint64_t n = serial; n > 0 && serial - n < core::kTicketKeySlots; --n) {
        core::ZoneTicketKey k;
        if (!zone_->ticketKey(n, k)) continue;
        ++accepted;
        for (size_t i = 0; i < sizeof(k.aes_key); ++i) {
          if (k.aes_key[i] != static_cast<uint8_t>(n & 0xff)) {
            ++torn;
            break;
          }
        }
      }
    }
  });
  // Until the reader has taken keys while the writer ran (bounded: the reader may start late).
  // No ASSERT while the reader runs: returning from here with it joinable would terminate.
  bool rotated = true;
  for (uint64_t n = 2; rotated && (n < 20000 || (accepted.load() < 1000 && n < 20'000'000));
       ++n) {
    rotated = zone_->rotateTicketKey(patterned(n), 1);
  }
  done = true;
  reader.join();
  ASSERT_TRUE(rotated);
  EXPECT_GT(accepted.load(), 0u);
  EXPECT_EQ(torn.load(), 0u);
  core::ZoneTicketKey k;
  EXPECT_FALSE(zone_->ticketKey(zone_->ticketKeySerial() - core::kTicketKeySlots, k));
  EXPECT_FALSE(zone_->ticketKey(zone_->ticketKeySerial() + 1, k));
}

}  // namespace
}  // namespace speedmimi::process

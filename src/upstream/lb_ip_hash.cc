// "ip_hash": consistent hashing of the real client IP on a weighted ketama ring.
//
// Every backend puts points on a 64-bit ring; the points are a pure function of its id and its
// weight, never of the other backends or of their order. A client's key (a 64-bit hash of its 16
// address bytes) belongs to the first point at or after it, wrapping around. Hence:
//   - the same IP reaches the same backend while the set of backends stays the same;
//   - removing a backend moves exactly the keys that were on its points, to the next points;
//   - adding one moves only the keys that land on its new points, about 1/(N+1) of them.
// When the owner is not a candidate (down, inactive, full, already tried) the walk continues
// along the ring to the next point of a candidate: the fallback is deterministic, equals the
// mapping the key would have if that backend were removed, and spreads a down backend's keys
// over the others because its points are scattered among theirs.
//
// Ketama rather than Maglev because Maglev only approximately keeps the other backends' keys in
// place on removal, while the ring does so exactly.
//
// Weights: a backend gets kPointsPerUnit points per unit of weight / gcd(all weights), so equal
// weights always give kPointsPerUnit points each and adding an equal backend changes no one
// else's points. Only when the ring would exceed kMaxRingPoints are all counts scaled down.
//
// Lookup is O(1) on average without allocation: a bucket index on the top bits of the key gives
// the first point of its bucket, and a bucket holds about one point.
#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>
#include <string_view>
#include <tuple>
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

constexpr uint64_t kPointsPerUnit = 160;
constexpr uint64_t kMaxRingPoints = uint64_t{1} << 16;
constexpr int kMaxBucketBits = 16;
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// MurmurHash3's 64-bit finalizer: a bijection that mixes every input bit into every output bit.
uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

// FNV-1a over the id, finalized so that similar ids ("b1", "b2") land far apart.
uint64_t hashId(std::string_view id) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const char c : id) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return mix64(h);
}

uint64_t hashAddress(const core::IpAddress& ip) {
  uint64_t high = 0;
  uint64_t low = 0;
  std::memcpy(&high, ip.bytes.data(), sizeof(high));
  std::memcpy(&low, ip.bytes.data() + sizeof(high), sizeof(low));
  return mix64(low ^ mix64(high + kGolden));
}

// The j-th point of the backend whose id hashes to `id_hash` (splitmix64's sequence).
uint64_t pointHash(uint64_t id_hash, uint64_t j) {
  return mix64(id_hash + (j + 1) * kGolden);
}

// Points per backend, proportional to weight / gcd(weights); at least one each.
std::vector<uint64_t> pointCounts(std::span<Backend* const> backends) {
  int64_t divisor = 0;
  for (const Backend* b : backends) divisor = std::gcd(divisor, weightOf(*b));
  uint64_t units = 0;
  for (const Backend* b : backends) units += static_cast<uint64_t>(weightOf(*b) / divisor);
  std::vector<uint64_t> counts;
  counts.reserve(backends.size());
  for (const Backend* b : backends) {
    const auto unit = static_cast<uint64_t>(weightOf(*b) / divisor);
    const bool fits = units * kPointsPerUnit <= kMaxRingPoints;
    counts.push_back(fits ? unit * kPointsPerUnit
                          : std::max<uint64_t>(1, unit * kMaxRingPoints / units));
  }
  return counts;
}

class IpHashBalancer final : public Balancer {
 public:
  void reset(std::span<Backend* const> backends) override;
  Backend* pick(const PickContext& ctx) override;

 private:
  size_t ownerPoint(uint64_t key) const;
  Backend* walkFrom(size_t point, const PickContext& ctx) const;
  bool anyCandidate(const PickContext& ctx) const;
  void buildBuckets();

  std::vector<Backend*> backends_;
  std::vector<uint64_t> point_hash_;    // sorted ascending
  std::vector<uint32_t> point_owner_;   // position in backends_ of each point
  std::vector<uint32_t> bucket_start_;  // first point of each bucket; one extra = point count
  int bucket_shift_ = 63;               // key >> bucket_shift_ is the key's bucket
};

void IpHashBalancer::reset(std::span<Backend* const> backends) {
  backends_.assign(backends.begin(), backends.end());
  const std::vector<uint64_t> counts = pointCounts(backends_);
  // (hash, id, position): equal hashes, practically never seen, are ordered by the stable id.
  std::vector<std::tuple<uint64_t, std::string_view, uint32_t>> points;
  for (size_t i = 0; i < backends_.size(); ++i) {
    const uint64_t id_hash = hashId(backends_[i]->id());
    for (uint64_t j = 0; j < counts[i]; ++j) {
      points.emplace_back(pointHash(id_hash, j), backends_[i]->id(), static_cast<uint32_t>(i));
    }
  }
  std::sort(points.begin(), points.end());
  point_hash_.clear();
  point_owner_.clear();
  for (const auto& [hash, id, owner] : points) {
    point_hash_.push_back(hash);
    point_owner_.push_back(owner);
  }
  buildBuckets();
}

// About one point per bucket: bucket b holds the points whose top bits equal b.
void IpHashBalancer::buildBuckets() {
  const size_t count = point_hash_.size();
  const int bits = std::clamp(static_cast<int>(std::bit_width(count)), 1, kMaxBucketBits);
  bucket_shift_ = 64 - bits;
  const size_t buckets = size_t{1} << bits;
  bucket_start_.assign(buckets + 1, static_cast<uint32_t>(count));
  size_t point = 0;
  for (size_t b = 0; b < buckets; ++b) {
    while (point < count && (point_hash_[point] >> bucket_shift_) < b) ++point;
    bucket_start_[b] = static_cast<uint32_t>(point);
  }
}

// The first point at or after `key` on the ring, wrapping to point 0. Requires points.
size_t IpHashBalancer::ownerPoint(uint64_t key) const {
  const uint64_t bucket = key >> bucket_shift_;
  size_t point = bucket_start_[bucket];
  const size_t end = bucket_start_[bucket + 1];
  while (point < end && point_hash_[point] < key) ++point;
  // Points of later buckets are all above `key`, so `end` is the answer when the bucket is
  // passed; past the last point the ring wraps.
  return point == point_hash_.size() ? 0 : point;
}

Backend* IpHashBalancer::pick(const PickContext& ctx) {
  if (point_hash_.empty()) return nullptr;
  const size_t point = ownerPoint(hashAddress(ctx.client_ip));
  Backend* owner = backends_[point_owner_[point]];
  if (isCandidate(*owner, ctx)) return owner;
  // The O(N) check spares a whole lap of the ring when everything is down.
  return anyCandidate(ctx) ? walkFrom(point, ctx) : nullptr;
}

bool IpHashBalancer::anyCandidate(const PickContext& ctx) const {
  return std::any_of(backends_.begin(), backends_.end(),
                     [&](const Backend* b) { return isCandidate(*b, ctx); });
}

// The owner of the first point after `point` that belongs to a candidate. Every backend has a
// point, so one lap finds any candidate; runs of one rejected owner are skipped without
// re-checking it.
Backend* IpHashBalancer::walkFrom(size_t point, const PickContext& ctx) const {
  const size_t count = point_hash_.size();
  uint32_t rejected = point_owner_[point];
  for (size_t k = 1; k < count; ++k) {
    const uint32_t owner = point_owner_[(point + k) % count];
    if (owner == rejected) continue;
    if (isCandidate(*backends_[owner], ctx)) return backends_[owner];
    rejected = owner;
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<Balancer> makeIpHashBalancer(Random& /*random*/) {
  return std::make_unique<IpHashBalancer>();
}

}  // namespace speedmimi::upstream

// "ip_hash": consistent hashing of the real client IP on a weighted ketama ring, looked up with
// several probes per client (multi-probe consistent hashing, Appleton & O'Reilly 2015).
//
// Every backend puts points on a 64-bit ring; how many and where is a pure function of its own
// id and weight, never of the other backends or of their order. A client's key (a 64-bit hash of
// its 16 address bytes) is hashed into kProbes probes; each probe's successor is the first point
// at or after it, wrapping around, and the client belongs to the successor nearest to its probe
// (the first probe wins a tie). Hence:
//   - the same IP reaches the same backend while the set of backends stays the same;
//   - removing a backend only lengthens the distances of the probes whose successor was one of
//     its points, so exactly its clients move and every other client stays;
//   - adding one only shortens distances to its new points, so clients move only to it.
// When the owner is not a candidate (down, inactive, full, already tried) each probe walks along
// the ring to the next point of a candidate and the nearest of those wins: the fallback is
// deterministic, equals the mapping the client would have if the rejected backends were removed,
// and spreads a down backend's clients over the others because its points are scattered.
//
// Ketama rather than Maglev because Maglev only approximately keeps the other backends' keys in
// place on removal, while the ring does so exactly.
//
// Slow start (core/slow_start.h) does not touch the ring, whose points follow the configured
// weights: a client whose owner is ramping stays with it when an admission hash of the client's
// key and the owner's id (independent of any ring position) mod 10000 is below
// 10000 * w_eff / weight, and otherwise goes where it would go if the owner were out, the
// fallback above. So the owner keeps w_eff / weight of its clients, the same ones on every pick
// and in every worker; the share grows with w_eff and an admitted client is never turned away
// again during the ramp; a turned-away client stays where it was while the backend was out. When
// every candidate is ramping and turns the client away, the ring's nearest candidate takes it.
//
// Points of a backend of weight w (1..10000):  kPointsPerWeight * min(w, kMaxPointWeight),
// i.e. 20 * min(w, 320): 20 for weight 1, at most 6,400 (75 KiB). Shares follow the weights
// exactly in expectation up to weight 320; heavier backends count as 320, because the ring's
// memory and build time grow with the points (100 backends at the cap: 640,000 points, 7.5 MiB
// per balancer). Each point is equally likely to be the nearest successor, so a backend's
// share is its share of the points; the probes make the shares as even as a one-probe ring with
// kProbes times the points (20 points x 8 probes beat ketama's classic 160 points x 1 probe).
//
// Lookup is O(kProbes * log points) without allocation: a bucket index on the top bits of the
// key narrows each probe to the few points of its bucket, searched by bisection. reset() builds
// the ring in O(points): a counting sort into the buckets, then an insertion sort inside each.
#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>
#include <vector>

#include "upstream/lb_internal.h"

namespace speedmimi::upstream {
namespace {

constexpr uint64_t kPointsPerWeight = 20;
constexpr int64_t kMaxPointWeight = 320;
constexpr int kProbes = 8;
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

// The i-th probe of a client key; a different sequence from the points' (odd multiplier).
uint64_t probeHash(uint64_t key, int i) {
  return mix64(key ^ (static_cast<uint64_t>(i) + 1) * 0xD6E8FEB86659FD93ull);
}

// A function of this backend's weight alone (see the top of the file), so that no backend's
// points change when another one comes or goes.
uint64_t pointCount(const Backend& b) {
  return kPointsPerWeight * static_cast<uint64_t>(std::min(configuredWeightOf(b), kMaxPointWeight));
}

// The draw of client `key` for the backend whose id hashes to `id_hash`: 0..kAdmissionScale-1.
constexpr uint64_t kAdmissionScale = 10'000;
uint64_t admissionDraw(uint64_t key, uint64_t id_hash) {
  return mix64(key ^ mix64(id_hash ^ kGolden)) % kAdmissionScale;
}

class IpHashBalancer final : public Balancer {
 public:
  void reset(std::span<Backend* const> backends) override;
  Backend* pick(const PickContext& ctx) override;

 private:
  void placePoints(size_t count);
  void sortBuckets();
  bool pointBefore(uint64_t hash, uint32_t owner, size_t point) const;
  size_t successor(uint64_t probe) const;
  size_t nearestPoint(uint64_t key) const;
  bool admits(uint32_t owner, uint64_t key, int64_t now_ms) const;
  // `takes(owner)` says whether the backend at that position may take the client.
  template <typename Takes>
  Backend* nearestTaker(uint64_t key, const Takes& takes) const;
  template <typename Takes>
  size_t nextTakerPoint(size_t point, const Takes& takes) const;
  template <typename Takes>
  bool anyTaker(const Takes& takes) const;

  std::vector<Backend*> backends_;
  std::vector<uint64_t> id_hash_;       // hashId of each backend's id, by position
  std::vector<uint64_t> point_hash_;    // sorted ascending; equal hashes by owner id
  std::vector<uint32_t> point_owner_;   // position in backends_ of each point
  std::vector<uint32_t> bucket_start_;  // first point of each bucket; one extra = point count
  int bucket_shift_ = 63;               // hash >> bucket_shift_ is the hash's bucket
};

void IpHashBalancer::reset(std::span<Backend* const> backends) {
  backends_.assign(backends.begin(), backends.end());
  id_hash_.clear();
  size_t count = 0;
  for (const Backend* b : backends_) {
    id_hash_.push_back(hashId(b->id()));
    count += pointCount(*b);
  }
  placePoints(count);
  sortBuckets();
}

// Counting sort of all points into about one bucket per point (at most 2^kMaxBucketBits):
// bucket b holds the points whose top bits equal b, in no particular order yet.
void IpHashBalancer::placePoints(size_t count) {
  const int bits = std::clamp(static_cast<int>(std::bit_width(count)), 1, kMaxBucketBits);
  bucket_shift_ = 64 - bits;
  bucket_start_.assign((size_t{1} << bits) + 1, 0);
  for (size_t i = 0; i < backends_.size(); ++i) {
    for (uint64_t j = 0; j < pointCount(*backends_[i]); ++j) {
      ++bucket_start_[(pointHash(id_hash_[i], j) >> bucket_shift_) + 1];
    }
  }
  for (size_t b = 1; b < bucket_start_.size(); ++b) bucket_start_[b] += bucket_start_[b - 1];
  std::vector<uint32_t> next(bucket_start_.begin(), bucket_start_.end() - 1);
  point_hash_.resize(count);
  point_owner_.resize(count);
  for (size_t i = 0; i < backends_.size(); ++i) {
    for (uint64_t j = 0; j < pointCount(*backends_[i]); ++j) {
      const uint64_t hash = pointHash(id_hash_[i], j);
      const uint32_t point = next[hash >> bucket_shift_]++;
      point_hash_[point] = hash;
      point_owner_[point] = static_cast<uint32_t>(i);
    }
  }
}

// Insertion sort inside each bucket, which holds a handful of points.
void IpHashBalancer::sortBuckets() {
  for (size_t b = 0; b + 1 < bucket_start_.size(); ++b) {
    for (size_t i = bucket_start_[b] + 1; i < bucket_start_[b + 1]; ++i) {
      const uint64_t hash = point_hash_[i];
      const uint32_t owner = point_owner_[i];
      size_t k = i;
      for (; k > bucket_start_[b] && pointBefore(hash, owner, k - 1); --k) {
        point_hash_[k] = point_hash_[k - 1];
        point_owner_[k] = point_owner_[k - 1];
      }
      point_hash_[k] = hash;
      point_owner_[k] = owner;
    }
  }
}

// Does the point (hash, owner) sort before `point`? Equal hashes, practically never seen, are
// ordered by the stable id, so that the ring does not depend on the backends' order.
bool IpHashBalancer::pointBefore(uint64_t hash, uint32_t owner, size_t point) const {
  if (hash != point_hash_[point]) return hash < point_hash_[point];
  return backends_[owner]->id() < backends_[point_owner_[point]]->id();
}

// The first point at or after `probe` on the ring, wrapping to point 0. Requires points.
size_t IpHashBalancer::successor(uint64_t probe) const {
  const uint64_t bucket = probe >> bucket_shift_;
  const auto first = point_hash_.begin() + bucket_start_[bucket];
  const auto last = point_hash_.begin() + bucket_start_[bucket + 1];
  // Points of later buckets are all above `probe`, so `last` is the answer when the bucket is
  // passed; past the last point the ring wraps.
  const size_t point = std::lower_bound(first, last, probe) - point_hash_.begin();
  return point == point_hash_.size() ? 0 : point;
}

// The point nearest after any probe of `key` (distances wrap around the ring).
size_t IpHashBalancer::nearestPoint(uint64_t key) const {
  size_t best = 0;
  uint64_t best_distance = UINT64_MAX;
  for (int i = 0; i < kProbes; ++i) {
    const uint64_t probe = probeHash(key, i);
    const size_t point = successor(probe);
    const uint64_t distance = point_hash_[point] - probe;
    if (i == 0 || distance < best_distance) {
      best = point;
      best_distance = distance;
    }
  }
  return best;
}

Backend* IpHashBalancer::pick(const PickContext& ctx) {
  if (point_hash_.empty()) return nullptr;
  const uint64_t key = hashAddress(ctx.client_ip);
  const uint32_t owner = point_owner_[nearestPoint(key)];
  auto candidate = [&](uint32_t i) { return isCandidate(*backends_[i], ctx); };
  auto takes = [&](uint32_t i) { return candidate(i) && admits(i, key, ctx.now_ms); };
  if (takes(owner)) return backends_[owner];
  // The O(N) checks spare kProbes laps of the ring when nobody takes the client.
  if (anyTaker(takes)) return nearestTaker(key, takes);
  return anyTaker(candidate) ? nearestTaker(key, candidate) : nullptr;
}

// Does the backend at `owner` keep client `key` at `now_ms`? Always, but during its slow start
// (see the top of the file).
bool IpHashBalancer::admits(uint32_t owner, uint64_t key, int64_t now_ms) const {
  const Backend& b = *backends_[owner];
  const int64_t weight = configuredWeightOf(b);
  const int64_t ramped = weightOf(b, now_ms);
  if (ramped >= weight) return true;
  const auto draw = static_cast<int64_t>(admissionDraw(key, id_hash_[owner]));
  return draw * weight < static_cast<int64_t>(kAdmissionScale) * ramped;
}

template <typename Takes>
bool IpHashBalancer::anyTaker(const Takes& takes) const {
  for (uint32_t i = 0; i < backends_.size(); ++i) {
    if (takes(i)) return true;
  }
  return false;
}

// nearestPoint() among the points of backends that take the client only: what the mapping
// would be without the others. Requires one.
template <typename Takes>
Backend* IpHashBalancer::nearestTaker(uint64_t key, const Takes& takes) const {
  size_t best = 0;
  uint64_t best_distance = UINT64_MAX;
  for (int i = 0; i < kProbes; ++i) {
    const uint64_t probe = probeHash(key, i);
    const size_t point = nextTakerPoint(successor(probe), takes);
    const uint64_t distance = point_hash_[point] - probe;
    if (i == 0 || distance < best_distance) {
      best = point;
      best_distance = distance;
    }
  }
  return backends_[point_owner_[best]];
}

// The first point at or after `point`, wrapping, whose owner takes the client. Requires one;
// every backend has a point, so one lap finds it. Runs of one rejected owner are skipped without
// re-checking it.
template <typename Takes>
size_t IpHashBalancer::nextTakerPoint(size_t point, const Takes& takes) const {
  const size_t count = point_hash_.size();
  uint32_t rejected = UINT32_MAX;
  for (size_t k = 0; k < count; ++k) {
    const size_t at = (point + k) % count;
    const uint32_t owner = point_owner_[at];
    if (owner == rejected) continue;
    if (takes(owner)) return at;
    rejected = owner;
  }
  return point;  // unreachable while a taker exists
}

}  // namespace

std::unique_ptr<Balancer> makeIpHashBalancer(Random& /*random*/) {
  return std::make_unique<IpHashBalancer>();
}

}  // namespace speedmimi::upstream

#include "upstream/health.h"

#include <cstring>
#include <string_view>

#include "core/units.h"
#include "event/timer.h"
#include "http/parser.h"

namespace speedmimi::upstream {
namespace {

using event::toTimeval;

void storeReason(core::HealthRecord& record, const std::string& reason) {
  size_t n = std::min(reason.size(), sizeof(record.reason) - 1);
  std::memcpy(record.reason, reason.data(), n);
  record.reason[n] = '\0';
}

}  // namespace

const char* healthName(Health h) {
  switch (h) {
    case Health::kUp: return "up";
    case Health::kDown: return "down";
    case Health::kUnknown: return "unknown";
  }
  return "unknown";
}

std::optional<Health> applyProbeResult(BackendState& state, core::HealthRecord& record,
                                       core::HealthHistory& history, bool passed,
                                       const std::string& reason, int failures, int successes,
                                       int64_t now_unix_ms, int64_t now_ms) {
  record.last_check_unix_ms.store(now_unix_ms, std::memory_order_relaxed);
  record.last_passed.store(passed ? 1 : 0, std::memory_order_relaxed);
  auto current = static_cast<Health>(state.health.load(std::memory_order_relaxed));
  Health next = current;
  if (passed) {
    record.consecutive_failures.store(0, std::memory_order_relaxed);
    int n = record.consecutive_successes.fetch_add(1, std::memory_order_relaxed) + 1;
    if (current != Health::kUp && n >= successes) next = Health::kUp;
  } else {
    record.consecutive_successes.store(0, std::memory_order_relaxed);
    int n = record.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    if (current != Health::kDown && n >= failures) next = Health::kDown;
  }
  if (next == current) return std::nullopt;
  storeReason(record, reason);
  // Before the health: a worker that sees it up sees its ramp.
  if (current == Health::kDown) state.ramp_start_ms.store(now_ms, std::memory_order_relaxed);
  state.health.store(static_cast<int>(next), std::memory_order_release);
  core::appendHealthEvent(history, now_unix_ms, next, reason);
  return next;
}

std::string passiveReason(int max_fails, std::chrono::milliseconds fail_timeout) {
  return "passive: " + std::to_string(max_fails) + " failures within fail_timeout " +
         core::formatDuration(fail_timeout);
}

std::vector<PassiveHealthWatch::Change> PassiveHealthWatch::update(core::Zone& zone, int64_t now_ms,
                                                                   int64_t now_unix_ms) {
  // The only live backend of its upstream is never out (Backend::setSolo), whatever its state.
  std::map<std::string_view, int> members;
  zone.forEachLive([&](size_t, core::BackendSlot& slot) {
    ++members[slot.config.load(std::memory_order_acquire)->upstream];
  });
  std::map<size_t, Seen> next;
  std::vector<Change> changes;
  zone.forEachLive([&](size_t index, core::BackendSlot& slot) {
    const core::ZoneBackendConfig& zc = *slot.config.load(std::memory_order_acquire);
    const BackendState& st = slot.runtime;
    const bool out = members[zc.upstream] > 1 &&
                     st.passive_down_until_ms.load(std::memory_order_relaxed) > now_ms;
    const uint64_t incarnation = slot.incarnation.load(std::memory_order_acquire);
    auto it = seen_.find(index);
    bool was_out;
    if (it != seen_.end() && it->second.incarnation == incarnation) {
      was_out = it->second.out;
    } else {
      was_out = false;  // what its history says last, if anything
      for (const core::HealthEvent& e : core::healthEvents(slot.health_history)) {
        if (std::string_view(e.reason).starts_with("passive: ")) {
          was_out = e.health == static_cast<int32_t>(Health::kDown);
          break;
        }
      }
    }
    if (out != was_out) {
      if (out) {
        core::appendHealthEvent(
            slot.health_history, now_unix_ms, Health::kDown,
            passiveReason(zc.max_fails, std::chrono::milliseconds(zc.fail_timeout_ms)));
      } else {
        auto active = static_cast<Health>(st.health.load(std::memory_order_relaxed));
        core::appendHealthEvent(slot.health_history, now_unix_ms, active,
                                "passive: fail_timeout over");
      }
      changes.push_back({index, out});
    }
    next[index] = {incarnation, out};
  });
  seen_ = std::move(next);
  return changes;
}

HealthProbe::HealthProbe(event_base* base, const Backend& backend, Done done,
                         const std::string& prefix)
    : done_(std::move(done)),
      timer_(event::newTimer(base, &HealthProbe::onTimeout, this)) {
  const core::HealthCheckConfig& hc = backend.config().health_check;
  event::addTimer(timer_.get(), hc.timeout);
  stream_ = event::Stream::connect(base, backend.address(), backend.addressLength(), hc.timeout,
                                   this);
  if (!stream_) {
    // Reported from the loop, like every other outcome.
    early_failure_ = std::string("socket() failed: ") + std::strerror(errno);
    event::addTimer(timer_.get(), std::chrono::milliseconds(0));
    return;
  }
  if (backend.usesTls()) {
    std::string error;
    const event::ClientTls* tls = backend.clientTls(prefix, error);
    if (tls == nullptr) {
      stream_.reset();
      early_failure_ = "TLS: " + error;
      event::addTimer(timer_.get(), std::chrono::milliseconds(0));
      return;
    }
    stream_->startTls(tls->newSession(backend.config().host));
  }
  std::string request = "GET " + hc.path + " HTTP/1.1\r\nHost: " + backend.config().host +
                        "\r\nUser-Agent: speedmimi-health-check\r\nConnection: close\r\n\r\n";
  evbuffer_add(stream_->output(), request.data(), request.size());
  stream_->startReading(std::chrono::milliseconds(0));
}

HealthProbe::~HealthProbe() = default;

void HealthProbe::finish(bool passed, const std::string& reason) {
  if (finished_) return;
  finished_ = true;
  evtimer_del(timer_.get());
  if (stream_) stream_->stopReading();
  done_(passed, reason);  // may destroy this probe: nothing may follow
}

void HealthProbe::onTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<HealthProbe*>(arg);
  self->finish(false, self->early_failure_.empty() ? "timed out" : self->early_failure_);
}

void HealthProbe::onStreamEvent(event::Stream& stream, event::StreamEvent ev) {
  using event::StreamEvent;
  switch (ev) {
    case StreamEvent::kConnected:
    case StreamEvent::kDrained:
      return;
    case StreamEvent::kError:
      if (!stream.tlsError().empty()) return finish(false, "TLS: " + stream.tlsError());
      return finish(false, std::strerror(stream.lastError()));
    case StreamEvent::kReadTimeout:
    case StreamEvent::kWriteTimeout:
      return finish(false, "timed out");
    case StreamEvent::kReadable:
    case StreamEvent::kEof: {
      size_t len = evbuffer_get_length(stream.input());
      std::string_view bytes(reinterpret_cast<const char*>(evbuffer_pullup(stream.input(), -1)),
                             len);
      http::Header headers[100];
      http::ResponseHead head;
      http::ParseError error;
      http::HeadLimits limits;
      auto status = http::parseResponseHead(bytes, limits, headers, head, error);
      if (status == http::ParseStatus::kComplete) {
        bool passed = head.status >= 200 && head.status < 400;
        return finish(passed, "status " + std::to_string(head.status));
      }
      if (status == http::ParseStatus::kError) {
        return finish(false, std::string("invalid response: ") + error.reason);
      }
      if (ev == StreamEvent::kEof) return finish(false, "connection closed before a response");
      return;
    }
  }
}

}  // namespace speedmimi::upstream

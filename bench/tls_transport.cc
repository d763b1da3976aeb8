// tls_transport --mode stream|bufferevent|bufferevent-ra --port PORT --cert FILE --key FILE
//               [--body 13] [--seconds 600]
//
// The measurement behind DESIGN §10's choice of TLS transport (issue 11): one single-threaded
// libevent server terminating TLS 1.3 on 127.0.0.1:PORT that answers every keep-alive GET with
// a fixed 200 (Content-Length, a body of --body bytes), over one of two transports:
//   stream       event::Stream with startTls: an SSL over the socket, eager writes (the proxy's
//                client side, driven as ProxySession drives it: input(), output(), flush()).
//   bufferevent  bufferevent_openssl_socket_new over the socket, with read and event callbacks.
//   bufferevent-ra  the same, with the SSL set up as Stream::startTls sets up its own: read-ahead
//                (one read() per socket's worth instead of one per record header and one per
//                record body) and the same SSL modes, so that only the transport differs.
// Everything else is the same for both: event::openListener and event::Acceptor accept, the SSL
// comes from one event::ServerTls (TLSv1.3 only; the proxy's SSL_CTX settings), TCP_NODELAY,
// a 60 s read (idle) and 30 s write timeout, evbuffer_search for the end of the head and
// evbuffer_add of the answer. A request that is not GET, or a head over 16 KiB, closes the
// connection. It runs until SIGTERM or SIGINT, or --seconds, and then prints what it served.
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "event/acceptor.h"
#include "event/handles.h"
#include "event/listener.h"
#include "event/stream.h"
#include "event/tls.h"

namespace ev = speedmimi::event;
using std::chrono::milliseconds;

namespace {

constexpr size_t kMaxHead = 16 * 1024;
constexpr milliseconds kReadTimeout{60'000};
constexpr milliseconds kWriteTimeout{30'000};

std::string answer;  // the whole response, made once
uint64_t served = 0;
uint64_t accepted = 0;

// Answers every complete head in `in` into `out`, draining it. False: close the connection
// (not a GET, or a head too long).
bool answerHeads(evbuffer* in, evbuffer* out) {
  for (int bound = 0; bound < 1024; ++bound) {
    evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
    if (end.pos < 0) return evbuffer_get_length(in) <= kMaxHead;
    char method[4];
    if (evbuffer_copyout(in, method, 4) != 4 || std::memcmp(method, "GET ", 4) != 0) return false;
    evbuffer_drain(in, static_cast<size_t>(end.pos) + 4);
    if (evbuffer_add(out, answer.data(), answer.size()) != 0) return false;
    ++served;
  }
  return false;  // a client pipelining over 1024 requests at once is not wrk
}

// --mode stream: one connection, as ProxySession's client side (read, answer, flush).
class StreamConnection final : public ev::StreamHandler {
 public:
  StreamConnection(event_base* base, int fd, const ev::ServerTls& tls) : stream_(base, fd, this) {
    stream_.setWriteTimeout(kWriteTimeout);
    stream_.startTls(tls.newSession());  // nullptr: kError from the loop
    stream_.startReading(kReadTimeout);
  }

  void onStreamEvent(ev::Stream& stream, ev::StreamEvent event) override {
    if (event == ev::StreamEvent::kDrained) return;
    if (event == ev::StreamEvent::kReadable && !stream.plainHttpOnTls() &&
        answerHeads(stream.input(), stream.output()) && stream.flush()) {
      return;
    }
    delete this;  // EOF, an error, a timeout, a bad request: the Stream touches nothing after
  }

 private:
  ev::Stream stream_;
};

// --mode bufferevent: one connection over bufferevent_openssl; the bufferevent owns the socket
// and the SSL (BEV_OPT_CLOSE_ON_FREE), freed on EOF, an error or a bad request.
void onBevRead(bufferevent* bev, void*) {
  if (!answerHeads(bufferevent_get_input(bev), bufferevent_get_output(bev))) bufferevent_free(bev);
}

void onBevEvent(bufferevent* bev, short what, void*) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) bufferevent_free(bev);
}

void startBufferevent(event_base* base, int fd, const ev::ServerTls& tls, bool read_ahead) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // as Stream does
  ev::SslPtr ssl = tls.newSession();
  if (!ssl) {
    close(fd);
    return;
  }
  if (read_ahead) {  // what Stream::startTls does to its SSL (src/event/stream.cc)
    SSL_set_mode(ssl.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                SSL_MODE_RELEASE_BUFFERS);
    SSL_set_read_ahead(ssl.get(), 1);
  }
  bufferevent* bev = bufferevent_openssl_socket_new(base, fd, ssl.get(), BUFFEREVENT_SSL_ACCEPTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    close(fd);
    return;
  }
  ssl.release();  // the bufferevent frees it
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  const timeval read_timeout = ev::toTimeval(kReadTimeout);
  const timeval write_timeout = ev::toTimeval(kWriteTimeout);
  bufferevent_set_timeouts(bev, &read_timeout, &write_timeout);
  bufferevent_setcb(bev, onBevRead, nullptr, onBevEvent, nullptr);
  if (bufferevent_enable(bev, EV_READ) != 0) bufferevent_free(bev);
}

void onStop(evutil_socket_t, short, void* base) {
  event_base_loopbreak(static_cast<event_base*>(base));
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "tls_transport: %s\nusage: tls_transport --mode stream|bufferevent|bufferevent-ra "
               "--port PORT --cert FILE --key FILE [--body BYTES] [--seconds N]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, cert, key;
  int port = 0;
  long body = 13, seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view opt = argv[i];
    if (opt == "--mode") {
      mode = argv[i + 1];
    } else if (opt == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (opt == "--cert") {
      cert = argv[i + 1];
    } else if (opt == "--key") {
      key = argv[i + 1];
    } else if (opt == "--body") {
      body = std::atol(argv[i + 1]);
    } else if (opt == "--seconds") {
      seconds = std::atol(argv[i + 1]);
    } else {
      usage("unknown option");
    }
  }
  if (argc % 2 == 0) usage("an option without its value");
  if (mode != "stream" && mode != "bufferevent" && mode != "bufferevent-ra") {
    usage("--mode must be stream, bufferevent or bufferevent-ra");
  }
  if (port <= 0 || port > 65535 || cert.empty() || key.empty()) usage("--port, --cert and --key");
  if (body < 0 || body > (64 << 20) || seconds <= 0) usage("--body 0..64 MiB, --seconds > 0");

  std::string text = body == 13 ? std::string("hello, world\n") : std::string(body, 'x');
  answer =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body) +
      "\r\n\r\n" + text;

  std::unique_ptr<ev::ServerTls> tls;
  try {
    ev::ServerTlsOptions options;
    options.certificates.push_back({cert, key});
    options.protocols = {"TLSv1.3"};
    tls = ev::ServerTls::load(options);
  } catch (const ev::TlsError& e) {
    std::fprintf(stderr, "tls_transport: %s: %s\n", e.file().c_str(), e.what());
    return 1;
  }

  signal(SIGPIPE, SIG_IGN);
  ev::EventBasePtr base(event_base_new());
  if (!base) return 1;
  std::string error;
  ev::Fd listen_fd = ev::openListener("127.0.0.1", port, 1024, error);
  if (!listen_fd.valid()) {
    std::fprintf(stderr, "tls_transport: %s\n", error.c_str());
    return 1;
  }
  const bool stream = mode == "stream";
  const bool read_ahead = mode == "bufferevent-ra";
  event_base* b = base.get();
  ev::Acceptor acceptor(
      b, std::move(listen_fd),
      [b, stream, read_ahead, &tls](int fd, sockaddr*, socklen_t) {
        ++accepted;
        if (stream) {
          new StreamConnection(b, fd, *tls);  // deletes itself when the connection ends
        } else {
          startBufferevent(b, fd, *tls, read_ahead);
        }
      },
      ev::Acceptor::Options{});
  if (!acceptor.start(error)) {
    std::fprintf(stderr, "tls_transport: %s\n", error.c_str());
    return 1;
  }
  ev::EventPtr term(evsignal_new(b, SIGTERM, onStop, b));
  ev::EventPtr intr(evsignal_new(b, SIGINT, onStop, b));
  ev::EventPtr limit(evtimer_new(b, onStop, b));
  const timeval limit_tv = ev::toTimeval(milliseconds(seconds * 1000));
  if (!term || !intr || !limit || evsignal_add(term.get(), nullptr) != 0 ||
      evsignal_add(intr.get(), nullptr) != 0 || evtimer_add(limit.get(), &limit_tv) != 0) {
    std::fprintf(stderr, "tls_transport: cannot watch signals\n");
    return 1;
  }
  event_base_dispatch(b);
  std::printf("mode=%s body=%ld accepted=%llu served=%llu\n", mode.c_str(), body,
              static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(served));
  std::fflush(stdout);
  // The connections still open hold events of the base: leave them all to the exit.
  std::_Exit(0);
}

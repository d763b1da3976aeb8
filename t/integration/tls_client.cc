#include "tls_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "tls_handles.h"

namespace speedmimi::test {

namespace {

// OpenSSL's error queue as one line (and emptied, so the next failure starts clean).
std::string openSslErrors() {
  std::string text;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text += (text.empty() ? "" : "; ") + std::string(buf);
  }
  return text.empty() ? "no OpenSSL reason" : text;
}

int versionNumber(const std::string& name) {
  if (name == "TLSv1") return TLS1_VERSION;
  if (name == "TLSv1.1") return TLS1_1_VERSION;
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return 0;
}

// ALPN's wire form: each protocol prefixed by its length.
std::string alpnWire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const auto& p : protocols) wire += static_cast<char>(p.size()) + p;
  return wire;
}

std::vector<std::string> dnsNames(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS) continue;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                     static_cast<size_t>(ASN1_STRING_length(name->d.dNSName)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Drives a non-blocking handshake (SSL_connect or SSL_accept) to its end: "" or why it failed.
std::string handshake(SSL* ssl, int fd, const Deadline& deadline, const std::atomic<bool>* stop) {
  while (true) {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) return "";
    int err = SSL_get_error(ssl, rc);
    short wait = 0;
    if (err == SSL_ERROR_WANT_READ) wait = POLLIN;
    if (err == SSL_ERROR_WANT_WRITE) wait = POLLOUT;
    if (wait == 0) {
      std::string why = err == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno)
                        : err == SSL_ERROR_SYSCALL           ? "the peer closed the connection"
                                                             : openSslErrors();
      long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) why += " (verify: " + std::string(X509_verify_cert_error_string(verify)) + ")";
      return why;
    }
    if (stop != nullptr && stop->load()) return "stopped";
    if (deadline.expired()) return "handshake timed out";
    pollfd p{fd, wait, 0};
    poll(&p, 1, deadline.pollTimeout(Millis(50)));
  }
}

// Stream's transport over an SSL on its socket.
class SslTransport : public Stream::Transport {
 public:
  explicit SslTransport(SslPtr ssl) : ssl_(std::move(ssl)) {}
  // OpenSSL marks the session of a connection freed without a close_notify not resumable; the
  // tests drop connections in every way and still resume their sessions.
  ~SslTransport() override { SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN); }

  ssize_t read(char* data, size_t size, short* wait) override {
    size_t n = 0;
    ERR_clear_error();
    int rc = SSL_read_ex(ssl_.get(), data, size, &n);
    if (rc == 1) return static_cast<ssize_t>(n);
    return failure(rc, wait);
  }

  ssize_t write(const char* data, size_t size, short* wait) override {
    size_t n = 0;
    ERR_clear_error();
    int rc = SSL_write_ex(ssl_.get(), data, size, &n);
    if (rc == 1) return static_cast<ssize_t>(n);
    return failure(rc, wait);
  }

  void shutdownWrite() override { SSL_shutdown(ssl_.get()); }

 private:
  ssize_t failure(int rc, short* wait) {
    int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      *wait = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
      errno = EAGAIN;
      return -1;
    }
    // SSL_OP_IGNORE_UNEXPECTED_EOF makes a TCP close without close_notify a ZERO_RETURN; what
    // is left is a real failure.
    if (err != SSL_ERROR_SYSCALL || errno == 0) errno = EPROTO;
    ERR_clear_error();
    return -1;
  }

  SslPtr ssl_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

// Holds the newest session the server handed out; OpenSSL's new-session callback fills it.
struct TlsClient::Slot {
  std::mutex mutex;
  TlsSession latest;

  static int onNewSession(SSL* ssl, SSL_SESSION* session) {
    auto* slot = static_cast<Slot*>(SSL_get_app_data(ssl));
    std::lock_guard<std::mutex> lock(slot->mutex);
    slot->latest = TlsSession(session, SSL_SESSION_free);  // we own the reference (return 1)
    return 1;
  }
};

TlsClient::TlsClient(int port, TlsClientOptions options, Millis connect_timeout)
    : Client(port, connect_timeout), slot_(std::make_shared<Slot>()) {
  if (!connected()) return;
  std::string problem = start(options);
  if (!problem.empty()) disconnect("TLS with 127.0.0.1:" + std::to_string(port) + ": " + problem);
}

std::string TlsClient::start(const TlsClientOptions& options) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return "SSL_CTX_new: " + openSslErrors();
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (options.security_level >= 0) SSL_CTX_set_security_level(ctx.get(), options.security_level);
  int min = versionNumber(options.min_version);
  int max = versionNumber(options.max_version);
  if ((min != 0 && SSL_CTX_set_min_proto_version(ctx.get(), min) != 1) ||
      (max != 0 && SSL_CTX_set_max_proto_version(ctx.get(), max) != 1)) {
    return "bad protocol version: " + openSslErrors();
  }
  if (!options.groups.empty() && SSL_CTX_set1_groups_list(ctx.get(), options.groups.c_str()) != 1) {
    return "bad groups: " + openSslErrors();
  }
  if (!options.sigalgs.empty() &&
      SSL_CTX_set1_sigalgs_list(ctx.get(), options.sigalgs.c_str()) != 1) {
    return "bad sigalgs: " + openSslErrors();
  }
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1) {
      return "cannot load " + options.ca_file + ": " + openSslErrors();
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), &Slot::onNewSession);
  std::string alpn = alpnWire(options.alpn);
  if (!alpn.empty() &&
      SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>(alpn.data()),
                              static_cast<unsigned>(alpn.size())) != 0) {
    return "SSL_CTX_set_alpn_protos failed";
  }
  SslPtr ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), stream()->fd()) != 1) return "SSL_new: " + openSslErrors();
  SSL_set_app_data(ssl.get(), slot_.get());
  SSL_set_connect_state(ssl.get());
  if (!options.sni.empty()) SSL_set_tlsext_host_name(ssl.get(), options.sni.c_str());
  std::string verify_name = options.verify_name.empty() ? options.sni : options.verify_name;
  if (!options.ca_file.empty() && !verify_name.empty()) SSL_set1_host(ssl.get(), verify_name.c_str());
  if (options.session && SSL_set_session(ssl.get(), options.session.get()) != 1) {
    return "SSL_set_session: " + openSslErrors();
  }
  std::string problem =
      handshake(ssl.get(), stream()->fd(), Deadline(options.handshake_timeout), nullptr);
  if (!problem.empty()) return "TLS handshake: " + problem;

  info_.version = SSL_get_version(ssl.get());
  info_.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl.get()));
  const unsigned char* proto = nullptr;
  unsigned proto_size = 0;
  SSL_get0_alpn_selected(ssl.get(), &proto, &proto_size);
  info_.alpn.assign(reinterpret_cast<const char*>(proto), proto_size);
  info_.resumed = SSL_session_reused(ssl.get()) == 1;
  if (X509* peer = SSL_get1_peer_certificate(ssl.get())) {
    info_.peer_names = dnsNames(peer);
    EVP_PKEY* key = X509_get0_pubkey(peer);
    info_.peer_key_type = key != nullptr && EVP_PKEY_is_a(key, "RSA") ? "RSA" : "EC";
    X509_free(peer);
  }
  stream()->setTransport(std::make_unique<SslTransport>(std::move(ssl)));
  return "";
}

// The transport (and its SSL, which points at the slot) goes with the stream before the slot.
TlsClient::~TlsClient() {
  if (stream() != nullptr) stream()->setTransport(nullptr);
}

TlsSession TlsClient::session() const {
  std::lock_guard<std::mutex> lock(slot_->mutex);
  return slot_->latest;
}

TlsClientOptions tlsOptions(std::string sni, std::string ca_file) {
  TlsClientOptions options;
  options.sni = std::move(sni);
  options.ca_file = std::move(ca_file);
  return options;
}

std::optional<Response> fetchTls(int port, const std::string& request_bytes,
                                 const TlsClientOptions& options, std::string* error,
                                 Millis timeout) {
  TlsClient client(port, options);
  std::optional<Response> response;
  if (client.sendRaw(request_bytes, timeout)) response = client.readResponse(timeout);
  if (!response && error != nullptr) *error = client.error();
  return response;
}

// ---------------------------------------------------------------------------------------------

void TlsServerLog::add(std::string sni, bool ok, std::string error) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ok) {
    ++handshakes_;
    sni_.push_back(std::move(sni));
  } else {
    failures_.push_back(std::move(error));
  }
}

int TlsServerLog::handshakes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return handshakes_;
}

std::vector<std::string> TlsServerLog::sniNames() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sni_;
}

std::vector<std::string> TlsServerLog::failures() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_;
}

namespace {

int selectHttp11(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* in,
                 unsigned in_size, void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_size, kHttp11, sizeof kHttp11 - 1, in, in_size) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

FakeBackend::AcceptHook tlsServer(const std::string& cert_file, const std::string& key_file,
                                  std::shared_ptr<TlsServerLog> log) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    std::string why = openSslErrors();
    ADD_FAILURE() << "tlsServer(" << cert_file << ", " << key_file << "): " << why;
    return [](Stream&, const std::atomic<bool>&) { return false; };
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_alpn_select_cb(ctx.get(), &selectHttp11, nullptr);
  return [ctx, log](Stream& stream, const std::atomic<bool>& stop) {
    SslPtr ssl(SSL_new(ctx.get()));
    if (!ssl || SSL_set_fd(ssl.get(), stream.fd()) != 1) return false;
    SSL_set_accept_state(ssl.get());
    std::string problem = handshake(ssl.get(), stream.fd(), Deadline(kIoTimeout), &stop);
    const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name);
    if (log) log->add(sni != nullptr ? sni : "", problem.empty(), problem);
    if (!problem.empty()) return false;
    stream.setTransport(std::make_unique<SslTransport>(std::move(ssl)));
    return true;
  };
}

std::string clientHelloBytes(const std::string& sni) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SslPtr ssl(ctx ? SSL_new(ctx.get()) : nullptr);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (!ssl || in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    return "";
  }
  SSL_set_bio(ssl.get(), in, out);  // the SSL owns both from here
  SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
  SSL_connect(ssl.get());  // wants to read the ServerHello: the ClientHello sits in `out`
  char* data = nullptr;
  long size = BIO_get_mem_data(out, &data);
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace speedmimi::test

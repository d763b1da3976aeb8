#include "event/tls.h"

#include <arpa/inet.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace speedmimi::event {
namespace {

using BioPtr = CPtr<BIO, BIO_free_all>;
using X509Ptr = CPtr<X509, X509_free>;
using PkeyPtr = CPtr<EVP_PKEY, EVP_PKEY_free>;
using StorePtr = CPtr<X509_STORE, X509_STORE_free>;
using StoreCtxPtr = CPtr<X509_STORE_CTX, X509_STORE_CTX_free>;

void freeCertStack(STACK_OF(X509) * certs) {
  sk_X509_pop_free(certs, X509_free);
}
using CertStackPtr = CPtr<STACK_OF(X509), freeCertStack>;

// TLS 1.2's suites: forward secrecy (ECDHE) and AEAD only, as Mozilla's "intermediate" list
// without DHE. TLS 1.3's suites are all modern and stay OpenSSL's default.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kSessionIdContext[] = "speedmimi";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

// The SNI table of a ServerTls: the names of each certificate and, but for the first (the
// default, which the handshake starts with), the context to switch to. It belongs to the
// default SSL_CTX (ex_data freed with it), so a handshake still running on a replaced ServerTls
// finds it alive.
struct SniEntry {
  std::vector<std::string> names;
  SSL_CTX* ctx;  // one reference held; nullptr for the default
};
struct SniTable {
  std::vector<SniEntry> entries;
  ~SniTable() {
    for (auto& e : entries) SSL_CTX_free(e.ctx);  // SSL_CTX_free(nullptr) does nothing
  }
};

void freeSniTable(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<SniTable*>(ptr);
}

// ex_data slots on SSL_CTX: the SNI table (owned) and the ticket-key source (borrowed).
int sniIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeSniTable);
  return index;
}
int ticketIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Exact names first, then wildcards, so "a.example.com" beats "*.example.com" whichever
// certificate comes first.
const SniEntry* pickCertificate(const SniTable& table, std::string_view host) {
  for (bool wildcard : {false, true}) {
    for (const SniEntry& e : table.entries) {
      for (const std::string& name : e.names) {
        if ((name.rfind("*.", 0) == 0) == wildcard && dnsNameMatches(name, host)) return &e;
      }
    }
  }
  return nullptr;
}

int onServerName(SSL* ssl, int*, void* arg) {
  const char* host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (host == nullptr) return SSL_TLSEXT_ERR_OK;
  auto* table = static_cast<SniTable*>(arg);
  const SniEntry* entry = pickCertificate(*table, host);
  if (entry != nullptr && entry->ctx != nullptr) SSL_set_SSL_CTX(ssl, entry->ctx);
  return SSL_TLSEXT_ERR_OK;
}

int onAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
           unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnHttp11, sizeof(kAlpnHttp11), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    // The client offers only protocols we do not speak (h2 alone): go on without ALPN, as
    // nginx does; it may still speak HTTP/1.1.
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// RFC 5077 tickets under the zone's keys (AES-256-CBC, HMAC-SHA256). OpenSSL calls it on the
// context the handshake started with, whatever SNI switched to.
int onTicketKey(SSL* ssl, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac, int enc) {
  auto* source =
      static_cast<const TicketKeySource*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticketIndex()));
  if (source == nullptr) return 0;
  TicketKey key;
  bool renew = false;
  if (enc) {
    if (!source->current(key)) return 0;  // no ticket
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
    std::memcpy(name, key.name, sizeof(key.name));
  } else if (!source->find(*reinterpret_cast<const uint8_t(*)[16]>(name), key, renew)) {
    return 0;  // an unknown or retired key: a full handshake
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac_key, sizeof(key.hmac_key)),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  int ok = enc ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes_key, iv)
               : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes_key, iv);
  if (ok != 1) return -1;
  if (enc) return 1;
  // Renew (2) under an older key, and always under TLS 1.3: OpenSSL issues no ticket after a
  // resumed TLS 1.3 handshake unless told to renew, and a TLS 1.3 client uses each ticket once,
  // so without a new one its next connection would be a full handshake (nginx does the same).
  return renew || SSL_version(ssl) == TLS1_3_VERSION ? 2 : 1;
}

// The client side's last session for its host, kept by the context (ex_data, freed with it).
struct ClientSessionCache {
  std::string host;
  SSL_SESSION* session = nullptr;  // one reference held
  ~ClientSessionCache() { SSL_SESSION_free(session); }
};

void freeClientSessionCache(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ClientSessionCache*>(ptr);
}

int clientCacheIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeClientSessionCache);
  return index;
}

// A new session (TLS 1.3: each ticket) of a connection to the cache's host replaces the one
// kept. Returns 1: the cache holds the reference OpenSSL handed over.
int onNewClientSession(SSL* ssl, SSL_SESSION* session) {
  auto* cache = static_cast<ClientSessionCache*>(SSL_get_app_data(ssl));
  if (cache == nullptr) return 0;
  SSL_SESSION_free(cache->session);
  cache->session = session;
  return 1;
}

int protocolVersion(const std::string& name) {
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return 0;
}

std::string asn1Time(const ASN1_TIME* t) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), t) != 1) return "?";
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// One certificate file's certificates (leaf first) and its key, read and checked.
struct LoadedPair {
  X509Ptr leaf;
  CertStackPtr chain;  // the certificates after the leaf
  PkeyPtr key;
  CertificateInfo info;
};

BioPtr openFile(const std::string& file) {
  errno = 0;
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) {
    int err = errno;
    ERR_clear_error();
    throw TlsError(file, std::string("cannot read: ") +
                             (err != 0 ? std::strerror(err) : "cannot open the file"));
  }
  return bio;
}

void readCertificates(const std::string& file, LoadedPair& pair) {
  BioPtr bio = openFile(file);
  pair.leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!pair.leaf) throw TlsError(file, "no PEM certificate: " + tlsErrorReason("bad PEM"));
  pair.chain.reset(sk_X509_new_null());
  if (!pair.chain) throw TlsError(file, "out of memory");
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (sk_X509_push(pair.chain.get(), cert) == 0) {
      X509_free(cert);
      throw TlsError(file, "out of memory");
    }
  }
  // The loop ends at the end of the file ("no start line") or at a broken certificate.
  unsigned long e = ERR_peek_last_error();
  if (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
    throw TlsError(file, "bad PEM certificate in the chain: " + tlsErrorReason("bad PEM"));
  }
  ERR_clear_error();
}

void readKey(const std::string& file, LoadedPair& pair) {
  BioPtr bio = openFile(file);
  pair.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pair.key) throw TlsError(file, "no PEM private key: " + tlsErrorReason("bad PEM"));
  switch (EVP_PKEY_get_base_id(pair.key.get())) {
    case EVP_PKEY_RSA:
      pair.info.key_type = "RSA";
      break;
    case EVP_PKEY_EC:
      pair.info.key_type = "EC";
      break;
    default:
      throw TlsError(file, "the private key is neither RSA nor ECDSA");
  }
}

void checkValidity(const std::string& file, X509* leaf, time_t now) {
  if (X509_cmp_time(X509_get0_notBefore(leaf), &now) > 0) {
    throw TlsError(file, std::string(X509_verify_cert_error_string(X509_V_ERR_CERT_NOT_YET_VALID)) +
                             " (notBefore " + asn1Time(X509_get0_notBefore(leaf)) + ")");
  }
  if (X509_cmp_time(X509_get0_notAfter(leaf), &now) < 0) {
    throw TlsError(file, std::string(X509_verify_cert_error_string(X509_V_ERR_CERT_HAS_EXPIRED)) +
                             " (notAfter " + asn1Time(X509_get0_notAfter(leaf)) + ")");
  }
}

// The system store, read once per ServerTls::load and only when a chain needs it: parsing
// the bundle costs more than loading every certificate of a configuration.
class SystemStore {
 public:
  X509_STORE* get(const std::string& file) {
    if (!store_) {
      store_.reset(X509_STORE_new());
      if (!store_) throw TlsError(file, "out of memory");
      X509_STORE_set_default_paths(store_.get());
      ERR_clear_error();  // a system store without some of its paths is no error of this file
    }
    return store_.get();
  }

 private:
  StorePtr store_;
};

// Verifies the leaf against `store`, the file's certificates untrusted; the X509_V_ code.
int verifyChain(const std::string& file, const LoadedPair& pair, X509_STORE* store, time_t now) {
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx) throw TlsError(file, "out of memory");
  if (X509_STORE_CTX_init(ctx.get(), store, pair.leaf.get(), pair.chain.get()) != 1) {
    throw TlsError(file, "certificate chain does not build: " + tlsErrorReason("out of memory"));
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  X509_VERIFY_PARAM_set_time(param, now);
  const int err =
      X509_verify_cert(ctx.get()) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return err;
}

// The leaf must chain to a certificate of its file or of the system store. A self-signed leaf
// is its own chain. The file's certificates count as anchors (a private CA's intermediate
// served without its root is a chain the clients can build); the leaf alone does not. They are
// tried first, alone: a chain served whole needs no system store, and the shared one never
// holds another file's certificates.
void checkChain(const std::string& file, const LoadedPair& pair, SystemStore& system, time_t now) {
  if (X509_check_issued(pair.leaf.get(), pair.leaf.get()) == X509_V_OK) return;
  StorePtr own(X509_STORE_new());
  if (!own) throw TlsError(file, "out of memory");
  for (int i = 0; i < sk_X509_num(pair.chain.get()); ++i) {
    X509_STORE_add_cert(own.get(), sk_X509_value(pair.chain.get(), i));
  }
  const int in_file = verifyChain(file, pair, own.get(), now);
  if (in_file == X509_V_OK) return;
  const int in_system = verifyChain(file, pair, system.get(file), now);
  if (in_system == X509_V_OK) return;
  // The system store's "no issuer" says less than what the file's own chain found wrong.
  const int err = in_system == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ? in_file : in_system;
  throw TlsError(
      file, std::string("certificate chain does not build: ") + X509_verify_cert_error_string(err));
}

std::vector<std::string> dnsNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
    return names;
  }
  char cn[256];
  int len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  if (len > 0) names.emplace_back(cn, static_cast<size_t>(len));
  return names;
}

int64_t notAfter(X509* cert) {
  tm t{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t) != 1) return 0;
  return static_cast<int64_t>(timegm(&t));
}

LoadedPair loadPair(const CertificateFiles& files, SystemStore& system, time_t now) {
  LoadedPair pair;
  pair.info.cert_file = files.cert_file;
  readCertificates(files.cert_file, pair);
  readKey(files.key_file, pair);
  if (X509_check_private_key(pair.leaf.get(), pair.key.get()) != 1) {
    throw TlsError(files.key_file, "the private key does not match the certificate in " +
                                       files.cert_file + ": " +
                                       tlsErrorReason("key values mismatch"));
  }
  checkValidity(files.cert_file, pair.leaf.get(), now);
  checkChain(files.cert_file, pair, system, now);
  pair.info.names = dnsNames(pair.leaf.get());
  pair.info.not_after = notAfter(pair.leaf.get());
  return pair;
}

SslCtxPtr newServerContext(const ServerTlsOptions& options, int min_version, int max_version) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw TlsError("", "SSL_CTX_new: " + tlsErrorReason("out of memory"));
  SSL_CTX* c = ctx.get();
  if (SSL_CTX_set_min_proto_version(c, min_version) != 1 ||
      SSL_CTX_set_max_proto_version(c, max_version) != 1 ||
      SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1 ||
      SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof(kSessionIdContext) - 1) != 1) {
    throw TlsError("", tlsErrorReason("cannot configure the TLS context"));
  }
  // A peer that closes without close_notify is an ordinary end of stream: HTTP frames itself.
  SSL_CTX_set_options(
      c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Resumption by tickets only: a per-worker session cache would not resume on another worker.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(c, 1);
  SSL_CTX_set_alpn_select_cb(c, onAlpn, nullptr);
  if (options.tickets != nullptr) {
    SSL_CTX_set_ex_data(c, ticketIndex(), const_cast<TicketKeySource*>(options.tickets));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c, onTicketKey);
  }
  return ctx;
}

void useCertificate(SSL_CTX* ctx, LoadedPair& pair) {
  if (SSL_CTX_use_certificate(ctx, pair.leaf.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, pair.key.get()) != 1 ||
      SSL_CTX_set1_chain(ctx, pair.chain.get()) != 1) {
    throw TlsError(pair.info.cert_file, tlsErrorReason("cannot use the certificate"));
  }
}

bool isIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::string tlsErrorReason(const char* fallback) {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;
  if (last == 0) return fallback;
  const char* reason = ERR_reason_error_string(last);
  if (reason != nullptr) return reason;
  char buf[256];
  ERR_error_string_n(last, buf, sizeof(buf));
  return buf;
}

bool dnsNameMatches(std::string_view pattern, std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (!pattern.empty() && pattern.back() == '.') pattern.remove_suffix(1);
  if (pattern.empty() || host.empty()) return false;
  if (pattern.find('*') == std::string_view::npos) return iequals(pattern, host);
  // Only "*.<at least two labels>", the wildcard standing for exactly one non-empty label.
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return false;
  std::string_view suffix = pattern.substr(1);  // ".example.com"
  if (suffix.find('*') != std::string_view::npos) return false;
  if (suffix.find('.', 1) == std::string_view::npos) return false;  // "*.com"
  size_t dot = host.find('.');
  if (dot == 0 || dot == std::string_view::npos) return false;
  return iequals(host.substr(dot), suffix);
}

std::unique_ptr<ServerTls> ServerTls::load(const ServerTlsOptions& options) {
  if (options.certificates.empty()) throw TlsError("", "no certificate");
  int min_version = 0, max_version = 0;
  for (const std::string& p : options.protocols) {
    int v = protocolVersion(p);
    if (v == 0) throw TlsError("", "protocol " + p + " is not supported (TLSv1.2 and TLSv1.3 are)");
    if (min_version == 0 || v < min_version) min_version = v;
    if (v > max_version) max_version = v;
  }
  if (min_version == 0) throw TlsError("", "no protocol");
  const time_t now = options.now != 0 ? static_cast<time_t>(options.now) : time(nullptr);

  std::unique_ptr<ServerTls> tls(new ServerTls());
  auto table = std::make_unique<SniTable>();
  std::vector<SslCtxPtr> contexts;  // parallel to table->entries
  std::vector<std::string> key_types;
  SystemStore system;  // one for every certificate of this load
  for (const CertificateFiles& files : options.certificates) {
    LoadedPair pair = loadPair(files, system, now);
    // The same names under another key type share a context: OpenSSL serves the one the
    // client's signature algorithms allow.
    size_t slot = contexts.size();
    for (size_t i = 0; i < table->entries.size(); ++i) {
      if (table->entries[i].names == pair.info.names &&
          key_types[i].find(pair.info.key_type) == std::string::npos) {
        slot = i;
        break;
      }
    }
    if (slot == contexts.size()) {
      contexts.push_back(newServerContext(options, min_version, max_version));
      table->entries.push_back(SniEntry{pair.info.names, nullptr});
      key_types.emplace_back();
    }
    key_types[slot] += pair.info.key_type + " ";
    useCertificate(contexts[slot].get(), pair);
    tls->infos_.push_back(std::move(pair.info));
  }
  // The other contexts are referenced by the table, which the default context owns.
  for (size_t i = 1; i < contexts.size(); ++i) {
    table->entries[i].ctx = contexts[i].release();
  }
  tls->default_ctx_ = std::move(contexts[0]);
  SSL_CTX* def = tls->default_ctx_.get();
  SniTable* raw = table.get();
  if (SSL_CTX_set_ex_data(def, sniIndex(), table.release()) != 1) {
    delete raw;
    throw TlsError("", tlsErrorReason("out of memory"));
  }
  SSL_CTX_set_tlsext_servername_callback(def, onServerName);
  SSL_CTX_set_tlsext_servername_arg(def, raw);
  return tls;
}

SslPtr ServerTls::newSession() const {
  return SslPtr(SSL_new(default_ctx_.get()));
}

std::unique_ptr<ClientTls> ClientTls::load(const ClientTlsOptions& options) {
  std::unique_ptr<ClientTls> tls(new ClientTls());
  tls->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* c = tls->ctx_.get();
  if (c == nullptr || SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1 ||
      SSL_CTX_set_alpn_protos(c, kAlpnHttp11, sizeof(kAlpnHttp11)) != 0) {
    throw TlsError("", tlsErrorReason("cannot configure the TLS client context"));
  }
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Resumption towards the backend: a new connection after the pool's idle ones are gone
  // costs no full handshake.
  auto cache = std::make_unique<ClientSessionCache>();
  if (SSL_CTX_set_ex_data(c, clientCacheIndex(), cache.get()) != 1) {
    throw TlsError("", tlsErrorReason("out of memory"));
  }
  cache.release();  // the context owns it now
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, onNewClientSession);
  if (options.verify) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    int ok = options.ca_file.empty()
                 ? SSL_CTX_set_default_verify_paths(c)
                 : SSL_CTX_load_verify_locations(c, options.ca_file.c_str(), nullptr);
    if (ok != 1) throw TlsError(options.ca_file, tlsErrorReason("cannot load the CA certificates"));
  }
  ERR_clear_error();
  return tls;
}

SslPtr ClientTls::newSession(const std::string& host) const {
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return ssl;
  bool ip = isIpAddress(host);
  if (!ip && SSL_set_tlsext_host_name(ssl.get(), host.c_str()) != 1) return nullptr;
  // The first host asked for is the one whose session is kept (a context serves one backend).
  auto* cache =
      static_cast<ClientSessionCache*>(SSL_CTX_get_ex_data(ctx_.get(), clientCacheIndex()));
  if (cache->host.empty()) cache->host = host;
  if (cache->host == host) {
    SSL_set_app_data(ssl.get(), cache);
    if (cache->session != nullptr && SSL_SESSION_is_resumable(cache->session)) {
      SSL_set_session(ssl.get(), cache->session);
    }
  }
  if (SSL_get_verify_mode(ssl.get()) & SSL_VERIFY_PEER) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (ok != 1) return nullptr;
  }
  return ssl;
}

}  // namespace speedmimi::event

// Certificates made at test time with OpenSSL (never checked in): keys, a CA, leaves with SAN
// names and any validity, written as PEM into a temporary directory removed afterwards.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "event/handles.h"

namespace speedmimi::event::testing {

using PkeyPtr = CPtr<EVP_PKEY, EVP_PKEY_free>;
using X509Ptr = CPtr<X509, X509_free>;

inline PkeyPtr makeKey(bool ec) {
  EVP_PKEY* key = ec ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                     : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  if (key == nullptr) throw std::runtime_error("keygen failed");
  return PkeyPtr(key);
}

struct CertSpec {
  std::string cn;
  std::vector<std::string> dns;  // SAN DNS names; none: no SAN
  long not_before = -3600;       // seconds from now
  long not_after = 86400;
  bool ca = false;
};

inline void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// `key`'s certificate, signed by `issuer` with `issuer_key` (self-signed when nullptr).
inline X509Ptr makeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer = nullptr,
                        EVP_PKEY* issuer_key = nullptr) {
  static long serial = 1;
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (spec.ca) {
    addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    addExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  if (!spec.dns.empty()) {
    std::string san;
    for (const auto& d : spec.dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    addExtension(cert.get(), signer, NID_subject_alt_name, san);
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    throw std::runtime_error("X509_sign failed");
  }
  return cert;
}

// A temporary directory of PEM files.
class CertDir {
 public:
  CertDir() {
    char tmpl[] = "/tmp/sm-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~CertDir() { std::filesystem::remove_all(dir_); }
  CertDir(const CertDir&) = delete;
  CertDir& operator=(const CertDir&) = delete;

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Writes `certs` (leaf first) to `name`; returns its path.
  std::string writeCerts(const std::string& name, const std::vector<X509*>& certs) const {
    std::string p = path(name);
    FILE* f = std::fopen(p.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + p);
    for (X509* c : certs) PEM_write_X509(f, c);
    std::fclose(f);
    return p;
  }
  std::string writeKey(const std::string& name, EVP_PKEY* key) const {
    std::string p = path(name);
    FILE* f = std::fopen(p.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + p);
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    return p;
  }
  std::string writeText(const std::string& name, const std::string& text) const {
    std::string p = path(name);
    FILE* f = std::fopen(p.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + p);
    std::fputs(text.c_str(), f);
    std::fclose(f);
    return p;
  }

 private:
  std::string dir_;
};

}  // namespace speedmimi::event::testing

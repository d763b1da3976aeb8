#include "t/helpers/test_certs.h"

#include "t/helpers/temp_dir.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace speedmimi::testing {

namespace {

using BioPtr = event::CPtr<BIO, BIO_free_all>;

// `what`, with the reasons OpenSSL queued (which it then forgets).
[[noreturn]] void fail(const std::string& what) {
  std::string reason;
  for (unsigned long e; (e = ERR_get_error()) != 0;) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    reason += std::string(reason.empty() ? ": " : "; ") + buf;
  }
  throw std::runtime_error("test certificates: " + what + reason);
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  const bool added = ext != nullptr && X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  if (!added) fail("extension " + value);
}

std::string bioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out.flush()) throw std::runtime_error("test certificates: cannot write " + path);
  return path;
}

}  // namespace

KeyPtr makeKey(KeyType type) {
  KeyPtr key(type == KeyType::kRsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
  if (!key) fail("key generation");
  return key;
}

CertPtr makeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  static long serial = 1;
  CertPtr cert(X509_new());
  if (!cert) fail("X509_new");
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
  } else if (spec.full_extensions) {
    addExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    addExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
  }
  if (spec.full_extensions) {
    addExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
    if (issuer != nullptr) addExtension(cert.get(), signer, NID_authority_key_identifier, "keyid");
    if (!spec.ca) addExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
  }
  std::string san;
  for (const auto& d : spec.dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  for (const auto& a : spec.ip) san += (san.empty() ? "IP:" : ",IP:") + a;
  if (!san.empty()) addExtension(cert.get(), signer, NID_subject_alt_name, san);
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    fail("X509_sign");
  }
  return cert;
}

std::string certPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("PEM_write_bio_X509");
  return bioText(bio.get());
}

std::string keyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("PEM_write_bio_PrivateKey");
  }
  return bioText(bio.get());
}

ScratchDir::ScratchDir() : path_(makeTempDir("speedmimi-test")) {
  if (path_.empty()) throw std::runtime_error("test certificates: mkdtemp failed");
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string ScratchDir::writeCerts(const std::string& name, const std::vector<X509*>& certs) const {
  std::string pem;
  for (X509* c : certs) pem += certPem(c);
  return writeFile(path(name), pem);
}

std::string ScratchDir::writeKey(const std::string& name, EVP_PKEY* key) const {
  return writeFile(path(name), keyPem(key));
}

std::string ScratchDir::writeText(const std::string& name, const std::string& text) const {
  return writeFile(path(name), text);
}

}  // namespace speedmimi::testing

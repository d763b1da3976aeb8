#include "tls_certs.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <vector>

#include "tls_handles.h"

namespace speedmimi::test {

namespace {

constexpr long kDay = 24 * 3600;

[[noreturn]] void die(const std::string& what) {
  std::cerr << "tls_certs: " << what << ": ";
  ERR_print_errors_fp(stderr);
  std::cerr << std::endl;
  std::abort();
}

enum class KeyType { kRsa, kEcdsa };

KeyPtr newKey(KeyType type) {
  KeyPtr key(type == KeyType::kRsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
  if (!key) die("key generation");
  return key;
}

struct Issuer {
  X509* cert = nullptr;  // nullptr: self-signed
  EVP_PKEY* key = nullptr;
};

struct CertSpec {
  std::string common_name;
  std::vector<std::string> san;  // "DNS:a.test", "IP:127.0.0.1"
  bool ca = false;
  long not_before = -kDay;  // seconds from now
  long not_after = 365 * kDay;
};

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) die("extension " + value);
  X509_EXTENSION_free(ext);
}

CertPtr makeCert(const CertSpec& spec, EVP_PKEY* key, const Issuer& by) {
  static long serial = 1;
  CertPtr cert(X509_new());
  if (!cert) die("X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509* issuer = by.cert != nullptr ? by.cert : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  addExtension(cert.get(), issuer, NID_basic_constraints,
               spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  addExtension(cert.get(), issuer, NID_key_usage,
               spec.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  addExtension(cert.get(), issuer, NID_subject_key_identifier, "hash");
  if (by.cert != nullptr) addExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid");
  if (!spec.ca) addExtension(cert.get(), issuer, NID_ext_key_usage, "serverAuth");
  std::string san;
  for (const auto& entry : spec.san) san += (san.empty() ? "" : ",") + entry;
  if (!san.empty()) addExtension(cert.get(), issuer, NID_subject_alt_name, san);
  if (X509_sign(cert.get(), by.key != nullptr ? by.key : key, EVP_sha256()) == 0) die("X509_sign");
  return cert;
}

std::string certPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) die("PEM_write_bio_X509");
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string keyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    die("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string writeFile(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out.flush()) die("writing " + path);
  return path;
}

std::string makeTempDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + name;
  if (mkdtemp(pattern.data()) == nullptr) die("mkdtemp " + pattern);
  return pattern;
}

class Maker {
 public:
  Maker(std::string dir, const Issuer& issuer, const std::string& issuer_pem)
      : dir_(std::move(dir)), issuer_(issuer), issuer_pem_(issuer_pem) {}

  CertKey leaf(const std::string& name, KeyType type, const CertSpec& spec) {
    KeyPtr key = newKey(type);
    CertPtr cert = makeCert(spec, key.get(), issuer_);
    std::string leaf_pem = certPem(cert.get());
    CertKey out;
    out.leaf = writeFile(dir_, name + ".leaf.crt", leaf_pem);
    out.cert = writeFile(dir_, name + ".crt", leaf_pem + issuer_pem_);
    out.key = writeFile(dir_, name + ".key", keyPem(key.get()));
    return out;
  }

  CertKey leaf(const std::string& name, KeyType type, const std::string& dns) {
    CertSpec spec;
    spec.common_name = dns;
    spec.san = {"DNS:" + dns};
    return leaf(name, type, spec);
  }

 private:
  std::string dir_;
  Issuer issuer_;
  std::string issuer_pem_;
};

TestCerts makeAll(const std::string& dir) {
  TestCerts c;
  c.dir = dir;
  CertSpec root_spec{"SpeedMimi Test Root CA", {}, true, -kDay, 3650 * kDay};
  KeyPtr root_key = newKey(KeyType::kEcdsa);
  CertPtr root = makeCert(root_spec, root_key.get(), {});
  c.ca = writeFile(dir, "ca.crt", certPem(root.get()));

  CertSpec mid_spec{"SpeedMimi Test Intermediate CA", {}, true, -kDay, 3650 * kDay};
  KeyPtr mid_key = newKey(KeyType::kEcdsa);
  CertPtr mid = makeCert(mid_spec, mid_key.get(), {root.get(), root_key.get()});
  std::string mid_pem = certPem(mid.get());
  c.intermediate = writeFile(dir, "intermediate.crt", mid_pem);

  CertSpec wrong_spec{"Unrelated Test Root CA", {}, true, -kDay, 3650 * kDay};
  KeyPtr wrong_key = newKey(KeyType::kEcdsa);
  CertPtr wrong = makeCert(wrong_spec, wrong_key.get(), {});
  std::string wrong_pem = certPem(wrong.get());
  c.wrong_ca = writeFile(dir, "wrong-ca.crt", wrong_pem);

  Maker maker(dir, {mid.get(), mid_key.get()}, mid_pem);
  c.default_rsa = maker.leaf("default-rsa", KeyType::kRsa, "default.test");
  c.default_ecdsa = maker.leaf("default-ecdsa", KeyType::kEcdsa, "default.test");
  c.a = maker.leaf("a", KeyType::kRsa, "a.test");
  c.b = maker.leaf("b", KeyType::kEcdsa, "b.test");
  c.wild = maker.leaf("wild", KeyType::kEcdsa, "*.wild.test");
  CertSpec backend{"localhost", {"DNS:localhost", "IP:127.0.0.1"}};
  c.backend = maker.leaf("backend", KeyType::kEcdsa, backend);
  c.expired = maker.leaf("expired", KeyType::kEcdsa,
                         CertSpec{"default.test", {"DNS:default.test"}, false, -30 * kDay, -kDay});
  c.not_yet_valid = maker.leaf(
      "not-yet-valid", KeyType::kEcdsa,
      CertSpec{"default.test", {"DNS:default.test"}, false, kDay, 30 * kDay});
  c.expiring = maker.leaf("expiring", KeyType::kEcdsa,
                          CertSpec{"default.test", {"DNS:default.test"}, false, -kDay, 7 * kDay});
  c.chain = c.default_rsa.cert;

  Maker wrong_maker(dir, {wrong.get(), wrong_key.get()}, wrong_pem);
  c.wrong_backend = wrong_maker.leaf("wrong-backend", KeyType::kEcdsa, backend);

  KeyPtr stray = newKey(KeyType::kEcdsa);
  c.mismatched_key = writeFile(dir, "mismatched.key", keyPem(stray.get()));
  return c;
}

}  // namespace

const TestCerts& testCerts() {
  static ScratchDir dir;  // removed when the test program exits
  static const TestCerts certs = makeAll(dir.path());
  return certs;
}

ScratchDir::ScratchDir() : path_(makeTempDir("speedmimi-tls-XXXXXX")) {}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

bool replaceFile(const std::string& from, const std::string& to) {
  std::string temp = to + ".tmp";
  std::error_code ec;
  std::filesystem::copy_file(from, temp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return false;
  std::filesystem::rename(temp, to, ec);
  return !ec;
}

}  // namespace speedmimi::test

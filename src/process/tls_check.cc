#include "process/tls_check.h"

#include <ctime>

#include "admin/stats.h"
#include "process/master.h"

namespace speedmimi::process {
namespace {

// The key to blame for `error`, which loading `options` (serverTlsOptions) threw: each pair is
// loaded alone to find the first that fails (a file may be named by several keys), then the
// key of its file. "ssl" for an error about no one file.
std::string serverKeyAtFault(const event::ServerTlsOptions& options, const event::TlsError& error) {
  for (size_t i = 0; i < options.certificates.size(); ++i) {
    const event::CertificateFiles& pair = options.certificates[i];
    event::ServerTlsOptions alone = options;
    alone.certificates = {pair};
    try {
      event::ServerTls::load(alone);
    } catch (const event::TlsError& e) {
      const std::string at = i == 0 ? "ssl" : "ssl.certificates[" + std::to_string(i - 1) + "]";
      if (e.file() == pair.cert_file) return at + ".cert_file";
      if (e.file() == pair.key_file) return at + ".key_file";
      return at == "ssl" ? at : at + ".cert_file";
    }
  }
  return error.file().empty() ? "ssl" : "ssl.cert_file";
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "no DNS names" : out;
}

}  // namespace

std::string describe(const event::TlsError& e) {
  return e.file().empty() ? e.what() : e.file() + ": " + e.what();
}

event::ServerTlsOptions serverTlsOptions(const core::Config& config, const std::string& prefix) {
  const core::SslConfig& ssl = config.ssl;
  event::ServerTlsOptions options;
  options.certificates.push_back(
      {resolvePath(prefix, ssl.cert_file), resolvePath(prefix, ssl.key_file)});
  for (const core::CertificatePair& pair : ssl.certificates) {
    options.certificates.push_back(
        {resolvePath(prefix, pair.cert_file), resolvePath(prefix, pair.key_file)});
  }
  options.protocols = ssl.protocols;
  return options;
}

event::ClientTlsOptions clientTlsOptions(const core::BackendConfig& backend,
                                         const std::string& prefix) {
  return {backend.tls_verify, resolvePath(prefix, backend.ca_file)};
}

std::unique_ptr<event::ServerTls> checkTls(const core::Config& config, const std::string& prefix,
                                           int64_t now, const event::TicketKeySource* tickets) {
  std::unique_ptr<event::ServerTls> server;
  if (config.ssl.enabled) {
    event::ServerTlsOptions options = serverTlsOptions(config, prefix);
    options.now = now;
    options.tickets = tickets;
    try {
      server = event::ServerTls::load(options);
    } catch (const event::TlsError& e) {
      throw core::configErrorAt(config, serverKeyAtFault(options, e), describe(e));
    }
  }
  for (const auto& [upstream, backends] : config.backends) {
    for (size_t i = 0; i < backends.size(); ++i) {
      if (backends[i].scheme != "https") continue;
      try {
        event::ClientTls::load(clientTlsOptions(backends[i], prefix));
      } catch (const event::TlsError& e) {
        const std::string at = "backends." + upstream + "[" + std::to_string(i) + "]";
        throw core::configErrorAt(config, at + (e.file().empty() ? "" : ".ca_file"), describe(e));
      }
    }
  }
  return server;
}

bool checkBackendTls(const core::BackendConfig& backend, const std::string& prefix,
                     std::string& error) {
  if (backend.scheme != "https") return true;
  try {
    event::ClientTls::load(clientTlsOptions(backend, prefix));
    return true;
  } catch (const event::TlsError& e) {
    error = std::string(e.file().empty() ? "backend: " : "backend.ca_file: ") + describe(e);
    return false;
  }
}

std::vector<std::string> expiryWarnings(const std::vector<event::CertificateInfo>& certificates,
                                        int64_t now) {
  std::vector<std::string> warnings;
  for (const event::CertificateInfo& c : certificates) {
    const int64_t days = admin::expiresInDays(c.not_after, now);
    if (days >= admin::kExpiryWarningDays) continue;
    warnings.push_back("certificate " + c.cert_file + " (" + joined(c.names) + ") expires in " +
                       std::to_string(days) + " days, on " + admin::isoUtc(c.not_after));
  }
  return warnings;
}

}  // namespace speedmimi::process

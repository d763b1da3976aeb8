// The certificates a configuration names, loaded before anything changes (DESIGN §7, §10): at
// start, -t, HUP, and the management API's config and backend changes. A file that cannot be
// read, a key that does not match its certificate, a chain that does not build, a certificate
// expired or not yet valid, a CA bundle that does not load: each is one ConfigError at the
// file:line:column of the key that names the file, with the file and OpenSSL's reason.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/config_types.h"
#include "event/tls.h"

namespace speedmimi::process {

// ssl.cert_file/key_file first (the default certificate), then ssl.certificates, the paths
// resolved against `prefix`; protocols from ssl.protocols. No ticket keys (the worker sets them).
event::ServerTlsOptions serverTlsOptions(const core::Config& config, const std::string& prefix);

// tls_verify and ca_file of a `scheme: https` backend, ca_file resolved against `prefix`.
event::ClientTlsOptions clientTlsOptions(const core::BackendConfig& backend,
                                         const std::string& prefix);

// Loads the server's certificates (when ssl.enabled) and every https backend's CA bundle.
// Returns the server's context (nullptr when ssl is off), whose certificates() the caller logs
// and shows. Throws core::ConfigError located by core::configErrorAt at the key at fault
// ("ssl.key_file", "ssl.certificates[1].cert_file", "backends.default[0].ca_file"; "ssl" for
// an error that is about no one file). `now`: Unix seconds for the validity check, 0 = time().
// `tickets`: the session-ticket keys of the contexts returned (nullptr: none, for a check only).
std::unique_ptr<event::ServerTls> checkTls(const core::Config& config, const std::string& prefix,
                                           int64_t now = 0,
                                           const event::TicketKeySource* tickets = nullptr);

// One backend's CA bundle, for the API: false with `error` = "backend.ca_file: FILE: reason".
bool checkBackendTls(const core::BackendConfig& backend, const std::string& prefix,
                     std::string& error);

// "FILE: reason", or the reason alone for an error about no one file.
std::string describe(const event::TlsError& error);

// One warning per certificate that expires within admin::kExpiryWarningDays of `now` (Unix
// seconds): "certificate FILE (NAMES) expires in N days, on DATE".
std::vector<std::string> expiryWarnings(const std::vector<event::CertificateInfo>& certificates,
                                        int64_t now);

}  // namespace speedmimi::process

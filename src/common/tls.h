// TLS helpers shared by the servers and clients: which hosts are loopback, a self-signed CA
// and server certificate generated on first start (like k3s), and the one-line wording of
// certificate errors. OpenSSL's C API underneath; this header needs none of it.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace photon {

// Where the generated files live, under a daemon's data dir: DIR/tls/{ca.crt,ca.key,server.crt,
// server.key}. Keys are mode 0600.
struct TlsFiles {
  std::string ca_cert;
  std::string ca_key;
  std::string cert;
  std::string key;
};
TlsFiles GeneratedTlsFiles(const std::string& data_dir);

// True for 127.0.0.0/8, ::1 and "localhost": traffic that never leaves the host.
bool IsLoopbackHost(const std::string& host);

// Makes sure DIR/tls holds a CA and a server certificate signed by it whose SANs cover every
// name in `hosts` (DNS names or IP addresses; "0.0.0.0"/"::" are skipped). The CA is created
// once and kept, so clients that trust it keep working; the server certificate is issued again
// when it is missing, expires within 30 days or does not cover a host.
StatusOr<TlsFiles> EnsureSelfSignedTls(const std::string& data_dir,
                                       const std::vector<std::string>& hosts);

// Checks that a PEM certificate chain and private key load and belong together, so a bad
// --tls-cert/--tls-key fails at start naming the file instead of at the first handshake.
Status CheckCertAndKey(const std::string& cert_file, const std::string& key_file);

// The reason the last certificate verification failed, as "certificate verify failed: ..."
// (for X509 verify result `verify_result`).
std::string CertificateVerifyError(long verify_result);

}  // namespace photon

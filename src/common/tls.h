// TLS helpers shared by the servers and clients: which hosts are loopback, a self-signed CA
// and server certificate generated on first start (like k3s), and the one-line wording of
// certificate errors. OpenSSL's C API underneath; this header needs none of it.
#pragma once

#include <cstdint>
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

// Agent certificates (mTLS from the built-in CA, docs/security.md "Agent certificates").

// A new P-256 key (PEM, for the node's eyes only) and a certificate signing request for it.
struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};
StatusOr<KeyAndCsr> NewKeyAndCsr(const std::string& common_name);

// Signs `csr_pem` with the CA in `ca` (ca_cert, ca_key) as a client certificate (clientAuth
// only, not a CA) for `common_name`, valid for `ttl_seconds` from now. The request's own
// subject is ignored: the server decides whom the certificate names. Returns the PEM.
StatusOr<std::string> SignClientCertificate(const TlsFiles& ca, const std::string& csr_pem,
                                            const std::string& common_name, long ttl_seconds);

// "sha256:<hex>" of the DER SubjectPublicKeyInfo of a PEM certificate: the CA pin a join
// command carries (the same value kubeadm's --discovery-token-ca-cert-hash takes).
StatusOr<std::string> PublicKeyHash(const std::string& cert_pem);

struct CertificateInfo {
  std::string common_name;
  std::string serial_hex;
  int64_t not_after_unix = 0;
};
StatusOr<CertificateInfo> InspectCertificate(const std::string& cert_pem);

// True if the PEM key belongs to the PEM certificate.
bool KeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem);

// Trust on first use, pinned: fetches GET /v1/ca from https://host:port without trusting any
// CA yet, and returns the CA's PEM only if its PublicKeyHash equals `pin` and it signed the
// certificate the server presented. Any mismatch is PERMISSION_DENIED naming both hashes.
StatusOr<std::string> FetchPinnedCa(const std::string& host, const std::string& port,
                                    const std::string& pin);

// Checks a PEM client certificate against the PEM CA as the REST listener's handshake does
// (chain, dates, purpose clientAuth): "" if it verifies, else "certificate verify failed: ...".
std::string VerifyClientCertificate(const std::string& cert_pem, const std::string& ca_pem);

// `method path` on https://host:port with a bearer token, trusting only the CA whose hash is
// `pin` (fetched as FetchPinnedCa does): the token is sent only to a server presenting a
// certificate that CA signed for `host`. The answer's body on a 2xx; an error naming the
// status and body otherwise.
StatusOr<std::string> PinnedRequest(const std::string& host, const std::string& port,
                                    const std::string& pin, const std::string& method,
                                    const std::string& path, const std::string& bearer_token);

}  // namespace photon

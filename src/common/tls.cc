#include "common/tls.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <memory>
#include <set>

#include "common/file_util.h"

namespace photon {

namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using SslCtx = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;

constexpr long kDay = 24 * 3600;
constexpr int kCaDays = 3650;
constexpr int kServerDays = 365;
constexpr int kRenewDays = 30;

// The newest OpenSSL error as text (the queue is cleared).
std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  unsigned long last = e;
  while (e != 0) {
    last = e;
    e = ERR_get_error();
  }
  if (last == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

StatusOr<std::string> ToPem(X509* cert, EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return absl::InternalError("BIO_new: " + OpenSslError());
  const int ok =
      cert ? PEM_write_bio_X509(bio.get(), cert)
           : PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  if (ok != 1) return absl::InternalError("PEM write: " + OpenSslError());
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

StatusOr<Cert> LoadCert(const std::string& path) {
  Bio bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return absl::NotFoundError(path + ": cannot open");
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError(path + ": not a PEM certificate");
  return cert;
}

StatusOr<PKey> LoadKey(const std::string& path) {
  Bio bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return absl::NotFoundError(path + ": cannot open");
  PKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError(path + ": not a PEM private key");
  return key;
}

Status AddExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (!ext) return absl::InternalError("certificate extension " + value + ": " + OpenSslError());
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return absl::InternalError("X509_add_ext: " + OpenSslError());
  return absl::OkStatus();
}

// A certificate for `key`, signed by `issuer`/`issuer_key` (itself when issuer is null).
StatusOr<Cert> Issue(EVP_PKEY* key, const std::string& common_name, long seconds, X509* issuer,
                     EVP_PKEY* issuer_key, const std::vector<std::pair<int, std::string>>& exts) {
  Cert cert(X509_new());
  if (!cert) return absl::InternalError("X509_new: " + OpenSslError());
  X509_set_version(cert.get(), 2);
  // Random 127-bit serials: a re-issued certificate never repeats one the CA signed before.
  Bn serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) {
    return absl::InternalError("serial: " + OpenSslError());
  }
  // Back-dated an hour: a peer whose clock is a little behind still accepts it.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), seconds);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("PhotonCloud"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : exts)
    PHOTON_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, nid, value));
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) == 0) {
    return absl::InternalError("X509_sign: " + OpenSslError());
  }
  return cert;
}

StatusOr<PKey> NewKey() {
  PKey key(EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError("EC key generation: " + OpenSslError());
  return key;
}

Status WriteCert(const std::string& path, X509* cert) {
  PHOTON_ASSIGN_OR_RETURN(std::string pem, ToPem(cert, nullptr));
  return WriteFileAtomic(path, pem, 0644);
}

Status WriteKey(const std::string& path, EVP_PKEY* key) {
  PHOTON_ASSIGN_OR_RETURN(std::string pem, ToPem(nullptr, key));
  return WriteFileAtomic(path, pem, 0600);
}

StatusOr<Cert> ParseCert(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return absl::InvalidArgumentError("not a PEM certificate");
  return cert;
}

StatusOr<PKey> ParseKey(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PKey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return absl::InvalidArgumentError("not a PEM private key");
  return key;
}

std::string HashOfKey(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(der, static_cast<size_t>(n), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < md_len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

bool Covers(X509* cert, const std::string& host) {
  if (IsIpAddress(host)) return X509_check_ip_asc(cert, host.c_str(), 0) == 1;
  return X509_check_host(cert, host.c_str(), host.size(), 0, nullptr) == 1;
}

// Usable for a while yet: not expiring within kRenewDays.
bool Fresh(X509* cert) {
  time_t horizon = time(nullptr) + kRenewDays * kDay;
  return X509_cmp_time(X509_get0_notAfter(cert), &horizon) > 0;
}

}  // namespace

TlsFiles GeneratedTlsFiles(const std::string& data_dir) {
  const std::string d = data_dir + "/tls/";
  return {d + "ca.crt", d + "ca.key", d + "server.crt", d + "server.key"};
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return false;
}

StatusOr<TlsFiles> EnsureSelfSignedTls(const std::string& data_dir,
                                       const std::vector<std::string>& hosts_in) {
  const TlsFiles f = GeneratedTlsFiles(data_dir);
  PHOTON_RETURN_IF_ERROR(MakeDirs(data_dir + "/tls", 0700));

  // Names the certificate must carry: the listen hosts, this machine's name, loopback, and for
  // a wildcard listener every address of the host (agents reach it by any of them).
  std::set<std::string> hosts = {"localhost", "127.0.0.1"};
  char hn[256] = {};
  if (gethostname(hn, sizeof hn - 1) == 0 && hn[0] != '\0') hosts.insert(hn);
  for (const auto& h : hosts_in) {
    if (h.empty()) continue;
    if (h == "0.0.0.0" || h == "::") {
      ifaddrs* ifs = nullptr;
      if (getifaddrs(&ifs) == 0) {
        for (ifaddrs* i = ifs; i; i = i->ifa_next) {
          if (!i->ifa_addr) continue;
          char buf[INET6_ADDRSTRLEN] = {};
          if (i->ifa_addr->sa_family == AF_INET) {
            inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf,
                      sizeof buf);
          } else if (i->ifa_addr->sa_family == AF_INET6 && h == "::") {
            auto* a6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
            if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;
            inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
          }
          if (buf[0] != '\0') hosts.insert(buf);
        }
        freeifaddrs(ifs);
      }
      continue;
    }
    hosts.insert(h);
  }

  // The CA is made once: clients hold on to it.
  Cert ca;
  PKey ca_key;
  if (std::filesystem::exists(f.ca_cert)) {
    PHOTON_ASSIGN_OR_RETURN(ca, LoadCert(f.ca_cert));
  } else {
    PHOTON_ASSIGN_OR_RETURN(ca_key, NewKey());
    char cn[320];
    snprintf(cn, sizeof cn, "photon-server-ca@%ld", static_cast<long>(time(nullptr)));
    PHOTON_ASSIGN_OR_RETURN(ca,
                            Issue(ca_key.get(), cn, kCaDays * kDay, nullptr, nullptr,
                                  {{NID_basic_constraints, "critical,CA:TRUE"},
                                   {NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
                                   {NID_subject_key_identifier, "hash"}}));
    PHOTON_RETURN_IF_ERROR(WriteKey(f.ca_key, ca_key.get()));
    PHOTON_RETURN_IF_ERROR(WriteCert(f.ca_cert, ca.get()));
  }

  bool reissue = true;
  if (std::filesystem::exists(f.cert) && std::filesystem::exists(f.key)) {
    auto cert = LoadCert(f.cert);
    if (cert.ok() && Fresh(cert->get()) &&
        X509_verify(cert->get(), X509_get0_pubkey(ca.get())) == 1) {
      reissue = false;
      for (const auto& h : hosts) {
        if (!Covers(cert->get(), h)) reissue = true;
      }
    }
  }
  if (!reissue) return f;

  if (!ca_key) {
    auto k = LoadKey(f.ca_key);
    if (!k.ok()) {
      return absl::FailedPreconditionError(
          "the server certificate in " + f.cert +
          " must be issued again but the CA key cannot be read (" +
          std::string(k.status().message()) + "); restore it, or remove " + data_dir +
          "/tls to start over with a new CA that clients must trust again");
    }
    ca_key = std::move(*k);
  }
  std::string san;
  for (const auto& h : hosts)
    san += std::string(san.empty() ? "" : ",") + (IsIpAddress(h) ? "IP:" : "DNS:") + h;
  PHOTON_ASSIGN_OR_RETURN(PKey key, NewKey());
  PHOTON_ASSIGN_OR_RETURN(
      Cert cert, Issue(key.get(), "photon-server", kServerDays * kDay, ca.get(), ca_key.get(),
                       {{NID_basic_constraints, "critical,CA:FALSE"},
                        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                        {NID_ext_key_usage, "serverAuth"},
                        {NID_subject_key_identifier, "hash"},
                        {NID_authority_key_identifier, "keyid:always"},
                        {NID_subject_alt_name, san}}));
  // Key first: a crash in between leaves a certificate that fails the check above and is
  // issued again, never a certificate without its key.
  PHOTON_RETURN_IF_ERROR(WriteKey(f.key, key.get()));
  PHOTON_RETURN_IF_ERROR(WriteCert(f.cert, cert.get()));
  return f;
}

Status CheckCertAndKey(const std::string& cert_file, const std::string& key_file) {
  SslCtx ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError("tls cert " + cert_file + ": " + OpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError("tls key " + key_file + ": " + OpenSslError());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError("tls key " + key_file + " does not match the certificate " +
                                      cert_file);
  }
  return absl::OkStatus();
}

StatusOr<KeyAndCsr> NewKeyAndCsr(const std::string& common_name) {
  PHOTON_ASSIGN_OR_RETURN(PKey key, NewKey());
  Req req(X509_REQ_new());
  if (!req) return absl::InternalError("X509_REQ_new: " + OpenSslError());
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) == 0) {
    return absl::InternalError("certificate request: " + OpenSslError());
  }
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return absl::InternalError("PEM write: " + OpenSslError());
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  KeyAndCsr out;
  out.csr_pem.assign(data, static_cast<size_t>(n));
  PHOTON_ASSIGN_OR_RETURN(out.key_pem, ToPem(nullptr, key.get()));
  return out;
}

StatusOr<std::string> SignClientCertificate(const TlsFiles& ca_files, const std::string& csr_pem,
                                            const std::string& common_name, long ttl_seconds) {
  Bio bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  Req req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) return absl::InvalidArgumentError("csr: not a PEM certificate request");
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  // The request must be signed by the key it names: the caller holds that key.
  if (!pub || X509_REQ_verify(req.get(), pub) != 1) {
    return absl::InvalidArgumentError("csr: its signature does not verify with its own key");
  }
  PHOTON_ASSIGN_OR_RETURN(Cert ca, LoadCert(ca_files.ca_cert));
  PHOTON_ASSIGN_OR_RETURN(PKey ca_key, LoadKey(ca_files.ca_key));
  PHOTON_ASSIGN_OR_RETURN(Cert cert, Issue(pub, common_name, ttl_seconds, ca.get(), ca_key.get(),
                                           {{NID_basic_constraints, "critical,CA:FALSE"},
                                            {NID_key_usage, "critical,digitalSignature"},
                                            {NID_ext_key_usage, "clientAuth"},
                                            {NID_subject_key_identifier, "hash"},
                                            {NID_authority_key_identifier, "keyid:always"},
                                            {NID_subject_alt_name, "URI:photon:" + common_name}}));
  return ToPem(cert.get(), nullptr);
}

StatusOr<std::string> PublicKeyHash(const std::string& cert_pem) {
  PHOTON_ASSIGN_OR_RETURN(Cert cert, ParseCert(cert_pem));
  std::string h = HashOfKey(X509_get0_pubkey(cert.get()));
  if (h.empty()) return absl::InternalError("public key: " + OpenSslError());
  return h;
}

StatusOr<CertificateInfo> InspectCertificate(const std::string& cert_pem) {
  PHOTON_ASSIGN_OR_RETURN(Cert cert, ParseCert(cert_pem));
  CertificateInfo info;
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn) >
      0) {
    info.common_name = cn;
  }
  Bn serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (char* hex = serial ? BN_bn2hex(serial.get()) : nullptr) {
    info.serial_hex = hex;
    OPENSSL_free(hex);
  }
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) == 1) info.not_after_unix = timegm(&tm);
  return info;
}

bool KeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem) {
  auto cert = ParseCert(cert_pem);
  auto key = ParseKey(key_pem);
  return cert.ok() && key.ok() && X509_check_private_key(cert->get(), key->get()) == 1;
}

namespace {

// A TLS connection to host:port made with `ctx` (SNI for a name), with 10 s I/O timeouts.
StatusOr<Bio> ConnectTls(SSL_CTX* ctx, const std::string& host, const std::string& port,
                         SSL** ssl) {
  Bio bio(BIO_new_ssl_connect(ctx));
  if (!bio) return absl::InternalError("BIO_new_ssl_connect: " + OpenSslError());
  BIO_get_ssl(bio.get(), ssl);
  if (!IsIpAddress(host)) SSL_set_tlsext_host_name(*ssl, host.c_str());
  BIO_set_conn_hostname(bio.get(), host.c_str());
  BIO_set_conn_port(bio.get(), port.c_str());
  if (BIO_do_connect(bio.get()) != 1 || BIO_do_handshake(bio.get()) != 1) {
    return absl::UnavailableError("cannot reach " + host + ":" + port +
                                  " over TLS: " + OpenSslError());
  }
  int fd = -1;
  BIO_get_fd(bio.get(), &fd);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return bio;
}

// Sends one HTTP/1.1 request (Connection: close) and returns the status code and body.
StatusOr<std::pair<int, std::string>> Exchange(BIO* bio, const std::string& where,
                                               const std::string& method, const std::string& path,
                                               const std::string& headers) {
  const std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + where + "\r\n" +
                              headers + "Content-Length: 0\r\nConnection: close\r\n\r\n";
  if (BIO_write(bio, request.data(), static_cast<int>(request.size())) <= 0) {
    return absl::UnavailableError(method + " " + path + " to " + where + ": " + OpenSslError());
  }
  std::string answer;
  char buf[4096];
  for (int n; (n = BIO_read(bio, buf, sizeof buf)) > 0 && answer.size() < (1 << 20);) {
    answer.append(buf, static_cast<size_t>(n));
  }
  const size_t head_end = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) {
    return absl::UnavailableError(method + " " + path + " to " + where + ": no HTTP answer");
  }
  // The server closes after a Connection: close answer, so the body is the rest (no chunking:
  // photon-server sends Content-Length).
  return std::make_pair(std::atoi(answer.c_str() + 9), answer.substr(head_end + 4));
}

}  // namespace

StatusOr<std::string> FetchPinnedCa(const std::string& host, const std::string& port,
                                    const std::string& pin) {
  const std::string where = host + ":" + port;
  SslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Nothing is trusted yet: the pin below decides, over the CA and the certificate shown.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL* ssl = nullptr;
  PHOTON_ASSIGN_OR_RETURN(Bio bio, ConnectTls(ctx.get(), host, port, &ssl));
  PHOTON_ASSIGN_OR_RETURN(auto answer, Exchange(bio.get(), where, "GET", "/v1/ca", ""));
  if (answer.first != 200) {
    return absl::UnavailableError("GET /v1/ca from " + where + ": answered " +
                                  std::to_string(answer.first));
  }
  const std::string& ca_pem = answer.second;
  PHOTON_ASSIGN_OR_RETURN(std::string hash, PublicKeyHash(ca_pem));
  if (hash != pin) {
    return absl::PermissionDeniedError("the CA of " + where + " has hash " + hash +
                                       ", not the pinned " + pin + ": refusing to trust it");
  }
  Cert leaf(SSL_get1_peer_certificate(ssl));
  PHOTON_ASSIGN_OR_RETURN(Cert ca, ParseCert(ca_pem));
  if (!leaf || X509_verify(leaf.get(), X509_get0_pubkey(ca.get())) != 1) {
    return absl::PermissionDeniedError("the certificate " + where +
                                       " presented is not signed by its pinned CA");
  }
  return ca_pem;
}

StatusOr<std::string> PinnedRequest(const std::string& host, const std::string& port,
                                    const std::string& pin, const std::string& method,
                                    const std::string& path, const std::string& bearer_token) {
  PHOTON_ASSIGN_OR_RETURN(std::string ca_pem, FetchPinnedCa(host, port, pin));
  PHOTON_ASSIGN_OR_RETURN(Cert ca, ParseCert(ca_pem));
  SslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // The token goes only to a server whose certificate the pinned CA signed for this name.
  if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca.get()) != 1) {
    return absl::InternalError("trust store: " + OpenSslError());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx.get());
  const int named = IsIpAddress(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                                      : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  if (named != 1) return absl::InternalError("host check: " + OpenSslError());
  SSL* ssl = nullptr;
  PHOTON_ASSIGN_OR_RETURN(Bio bio, ConnectTls(ctx.get(), host, port, &ssl));
  const std::string where = host + ":" + port;
  PHOTON_ASSIGN_OR_RETURN(auto answer, Exchange(bio.get(), where, method, path,
                                                "Authorization: Bearer " + bearer_token + "\r\n"));
  if (answer.first / 100 != 2) {
    return absl::PermissionDeniedError(method + " " + path + " on " + where + ": " +
                                       std::to_string(answer.first) + " " + answer.second);
  }
  return answer.second;
}

std::string VerifyClientCertificate(const std::string& cert_pem, const std::string& ca_pem) {
  auto cert = ParseCert(cert_pem);
  auto ca = ParseCert(ca_pem);
  if (!cert.ok() || !ca.ok()) return "certificate verify failed: not a PEM certificate";
  std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca->get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
    return "certificate verify failed: " + OpenSslError();
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return CertificateVerifyError(X509_STORE_CTX_get_error(ctx.get()));
}

std::string CertificateVerifyError(long verify_result) {
  return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify_result);
}

}  // namespace photon

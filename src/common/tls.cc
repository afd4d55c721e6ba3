#include "common/tls.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
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
StatusOr<Cert> Issue(EVP_PKEY* key, const std::string& common_name, int days, X509* issuer,
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
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * kDay);
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
                            Issue(ca_key.get(), cn, kCaDays, nullptr, nullptr,
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
  PHOTON_ASSIGN_OR_RETURN(Cert cert,
                          Issue(key.get(), "photon-server", kServerDays, ca.get(), ca_key.get(),
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

std::string CertificateVerifyError(long verify_result) {
  return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify_result);
}

}  // namespace photon

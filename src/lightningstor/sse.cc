#include "lightningstor/sse.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include "common/file_util.h"
#include "common/hex.h"
#include "lightningstor/checksum.h"
#include "lightningstor/s3_error.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kMode = "x-photon-sse";         // "AES256" (SSE-S3) or "SSE-C"
constexpr const char* kIv = "x-photon-sse-iv";        // base64 16 bytes
constexpr const char* kWrapped = "x-photon-sse-key";  // base64 nonce(12) ct(32) tag(16)
constexpr const char* kHmac = "x-photon-ssec-hmac";   // base64 salt(16) ":" hex HMAC-SHA256
// "2" when the object's own bytes (inline data, or a single PUT's segment) were written in
// format 2; absent for objects written before it (format 1). Segments also say it themselves.
constexpr const char* kFormat = "x-photon-sse-format";

std::string Random(size_t n) {
  std::string out(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  return out;
}

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// AES-256-GCM of a data key under the master key: nonce || ciphertext || tag.
StatusOr<std::string> Wrap(const std::string& master, const std::string& data_key) {
  std::string nonce = Random(12), ct(data_key.size(), '\0'), tag(16, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(master.data()),
                               reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
            EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(ct.data()), &len,
                              reinterpret_cast<const unsigned char*>(data_key.data()),
                              static_cast<int>(data_key.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx, nullptr, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag.data()) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return absl::InternalError("SSE: wrapping a data key failed");
  return nonce + ct + tag;
}

StatusOr<std::string> Unwrap(const std::string& master, const std::string& wrapped) {
  if (wrapped.size() != 12 + 32 + 16) return absl::DataLossError("SSE: wrapped key malformed");
  std::string nonce = wrapped.substr(0, 12), ct = wrapped.substr(12, 32),
              tag = wrapped.substr(44, 16), key(32, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(master.data()),
                               reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
            EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(key.data()), &len,
                              reinterpret_cast<const unsigned char*>(ct.data()), 32) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx, nullptr, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return absl::DataLossError("SSE: the data key does not unwrap under the master key");
  return key;
}

}  // namespace

CtrCipher::CtrCipher(const std::string& key, const std::string& iv, uint64_t offset) {
  // The counter block is the IV plus the 16-byte block index, big-endian, carried across bytes.
  unsigned char counter[16];
  memcpy(counter, iv.data(), 16);
  uint64_t add = offset / 16;
  for (int i = 15; i >= 0 && add; --i) {
    uint64_t sum = counter[i] + (add & 0xFF);
    counter[i] = static_cast<unsigned char>(sum);
    add = (add >> 8) + (sum >> 8);
  }
  auto* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr,
                     reinterpret_cast<const unsigned char*>(key.data()), counter);
  ctx_ = ctx;
  char skip[16];
  Apply(skip, offset % 16);
}

CtrCipher::~CtrCipher() { EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_)); }

void CtrCipher::ApplyTo(const char* in, char* out, size_t n) {
  auto* src = reinterpret_cast<const unsigned char*>(in);
  auto* dst = reinterpret_cast<unsigned char*>(out);
  while (n > 0) {
    int chunk = static_cast<int>(std::min<size_t>(n, 1 << 30));
    int len = 0;
    EVP_EncryptUpdate(static_cast<EVP_CIPHER_CTX*>(ctx_), dst, &len, src, chunk);
    src += chunk;
    dst += chunk;
    n -= static_cast<size_t>(chunk);
  }
}

std::string NewSseIv() { return Random(16); }

namespace {

// Format 2: the AES key of one segment, HMAC-SHA256(data key, label || IV). Every segment has
// its own random 16-byte IV, so each derived key seals one segment's blocks only and the
// block index alone keeps nonces apart under it.
std::string SegmentKey(const std::string& data_key, const std::string& iv) {
  return Hmac(data_key, "lightningstor sse gcm v2" + iv);
}

// The 12-byte nonce of block `index`: the IV's first 8 bytes and the index, big-endian.
void BlockNonce(const std::string& iv, uint64_t index, unsigned char out[12]) {
  memcpy(out, iv.data(), 8);
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<unsigned char>(index >> (24 - 8 * i));
}

// AES-256-GCM of one block in place; encrypt: writes the tag, else checks it.
bool GcmBlock(bool encrypt, const std::string& key, const std::string& iv, uint64_t index,
              char* data, size_t len, char tag[16]) {
  unsigned char nonce[12];
  BlockNonce(iv, index, nonce);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  auto* k = reinterpret_cast<const unsigned char*>(key.data());
  auto* p = reinterpret_cast<unsigned char*>(data);
  int out = 0;
  bool ok = encrypt ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, k, nonce) == 1
                    : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, k, nonce) == 1;
  // Blocks are at most kBlockSize (1 MiB), well within an int.
  if (ok && len > 0) {
    int n = static_cast<int>(len);
    ok = encrypt ? EVP_EncryptUpdate(ctx, p, &out, p, n) == 1
                 : EVP_DecryptUpdate(ctx, p, &out, p, n) == 1;
  }
  if (ok && encrypt) {
    ok = EVP_EncryptFinal_ex(ctx, p + len, &out) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
  } else if (ok) {
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
         EVP_DecryptFinal_ex(ctx, p + len, &out) == 1;
  }
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

}  // namespace

SegmentEncryptor::SegmentEncryptor(const std::string& key, const std::string& iv, SseFormat format)
    : format_(format), iv_(iv) {
  if (format_ == SseFormat::kCtr) {
    ctr_ = std::make_unique<CtrCipher>(key, iv, 0);
  } else {
    subkey_ = SegmentKey(key, iv);
  }
}

SegmentEncryptor::~SegmentEncryptor() = default;

void SegmentEncryptor::Seal(char* buf, size_t len) {
  if (ctr_) {
    ctr_->Apply(buf, len);
    return;
  }
  char tag[16];
  // Sealing only fails on an allocation failure inside OpenSSL; a zero tag then fails every
  // read of this block rather than storing it unauthenticated.
  if (!GcmBlock(true, subkey_, iv_, index_, buf, len, tag)) memset(tag, 0, sizeof tag);
  tags_.append(tag, sizeof tag);
  ++index_;
}

ObjectDecryptor::ObjectDecryptor(std::string key, std::string object_iv, const ObjectMeta& object)
    : key_(std::move(key)), iv_(std::move(object_iv)), segments_(object.segments) {
  auto format = object.headers.find(kFormat);
  inline_gcm_ = format != object.headers.end() && format->second == "2";
  uint64_t at = 0;
  for (const auto& s : segments_) {
    starts_.push_back(at);
    at += s.size;
  }
}

Status ObjectDecryptor::OpenBlock(size_t seg, uint64_t block_index, char* block, size_t len,
                                  size_t from, size_t n) const {
  const Segment& s = segments_[seg];
  const std::string& iv = s.iv.empty() ? iv_ : s.iv;
  if (s.sse_format == static_cast<int>(SseFormat::kGcmBlocks)) {
    if (s.block_tags.size() < (block_index + 1) * 16)
      return absl::DataLossError("stored object has no tag for a block");
    char tag[16];
    memcpy(tag, s.block_tags.data() + block_index * 16, 16);
    if (!GcmBlock(false, SegmentKey(key_, iv), iv, block_index, block, len, tag))
      return absl::DataLossError("stored object data fails its authentication tag");
    return absl::OkStatus();
  }
  // Format 1: a part with its own IV from its own offset 0, else the object's IV at the
  // object's offset.
  uint64_t offset = block_index * kBlockSize + from + (s.iv.empty() ? starts_[seg] : 0);
  CtrCipher(key_, iv, offset).Apply(block + from, n);
  return absl::OkStatus();
}

Status ObjectDecryptor::OpenInline(const std::string& stored, std::string* plain) const {
  if (!inline_gcm_) {
    *plain = stored;
    CtrCipher(key_, iv_, 0).Apply(plain->data(), plain->size());
    return absl::OkStatus();
  }
  if (stored.size() < 16) return absl::DataLossError("stored object is shorter than its tag");
  *plain = stored.substr(0, stored.size() - 16);
  char tag[16];
  memcpy(tag, stored.data() + plain->size(), 16);
  if (!GcmBlock(false, SegmentKey(key_, iv_), iv_, 0, plain->data(), plain->size(), tag))
    return absl::DataLossError("stored object data fails its authentication tag");
  return absl::OkStatus();
}

StatusOr<SseRequest> ParseCopySourceSse(const http::Request& req) {
  constexpr std::string_view kPrefix = "x-amz-copy-source-server-side-encryption";
  http::Request source;
  for (const auto& [name, value] : req.headers) {
    if (name.rfind(kPrefix, 0) != 0) continue;
    std::string rest = name.substr(kPrefix.size());
    if (rest.rfind("-customer-", 0) != 0) {
      return S3Error("InvalidArgument", name + " is not a copy-source encryption header");
    }
    source.headers.emplace_back("x-amz-server-side-encryption" + rest, value);
  }
  return ParseSseRequest(source);
}

StatusOr<SseRequest> ParseSseRequest(const http::Request& req) {
  SseRequest out;
  for (const auto& [name, value] : req.headers) {
    if (name.rfind("x-amz-server-side-encryption-aws-kms", 0) == 0 ||
        name == "x-amz-server-side-encryption-context" ||
        name == "x-amz-server-side-encryption-bucket-key-enabled") {
      return S3Error("NotImplemented", "lightningstor does not implement SSE-KMS (" + name + ")");
    }
  }
  if (req.HasHeader("x-amz-server-side-encryption")) {
    const std::string& v = req.Header("x-amz-server-side-encryption");
    if (v.rfind("aws:kms", 0) == 0)
      return S3Error("NotImplemented", "lightningstor does not implement SSE-KMS");
    if (v != "AES256")
      return S3Error("InvalidArgument", "The encryption method specified is not supported");
    out.mode = SseRequest::Mode::kS3;
  }
  bool has_alg = req.HasHeader("x-amz-server-side-encryption-customer-algorithm");
  bool has_key = req.HasHeader("x-amz-server-side-encryption-customer-key");
  bool has_md5 = req.HasHeader("x-amz-server-side-encryption-customer-key-md5");
  if (!has_alg && !has_key && !has_md5) return out;
  if (out.mode != SseRequest::Mode::kNone) {
    return S3Error("InvalidArgument",
                   "Server Side Encryption with Customer provided key is incompatible with the "
                   "encryption method specified");
  }
  if (!has_alg || !has_key || !has_md5) {
    return S3Error("InvalidArgument",
                   "Requests specifying Server Side Encryption with Customer provided keys must "
                   "provide the algorithm, the key and the key's MD5.");
  }
  if (req.Header("x-amz-server-side-encryption-customer-algorithm") != "AES256")
    return S3Error("InvalidArgument", "The encryption algorithm specified is not supported");
  std::string md5;
  if (!Base64Decode(req.Header("x-amz-server-side-encryption-customer-key"), &out.customer_key) ||
      out.customer_key.size() != 32) {
    return S3Error("InvalidArgument", "The secret key was invalid for the specified algorithm.");
  }
  out.key_md5_b64 = req.Header("x-amz-server-side-encryption-customer-key-md5");
  if (!Base64Decode(out.key_md5_b64, &md5) || md5 != Md5Raw(out.customer_key)) {
    return S3Error("InvalidArgument",
                   "The calculated MD5 hash of the key did not match the hash that was provided.");
  }
  out.mode = SseRequest::Mode::kCustomer;
  return out;
}

StatusOr<std::string> SseKeys::MasterKey() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!master_.empty()) return master_;
  auto existing = ReadFile(path_);
  if (existing.ok()) {
    if (existing->size() != 32)
      return absl::DataLossError("SSE master key " + path_ + " is not 32 bytes");
    chmod(path_.c_str(), 0600);
    master_ = *existing;
    return master_;
  }
  std::string key = Random(32);
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(path_, key, 0600));
  master_ = key;
  return master_;
}

StatusOr<SseKeys::NewKey> SseKeys::ForWrite(const SseRequest& sse) {
  NewKey out;
  if (sse.mode == SseRequest::Mode::kNone) return out;
  out.iv = Random(16);
  out.headers[kIv] = Base64Encode(out.iv);
  if (write_format_ == SseFormat::kGcmBlocks) out.headers[kFormat] = "2";
  if (sse.mode == SseRequest::Mode::kS3) {
    PHOTON_ASSIGN_OR_RETURN(std::string master, MasterKey());
    out.data_key = Random(32);
    PHOTON_ASSIGN_OR_RETURN(std::string wrapped, Wrap(master, out.data_key));
    out.headers[kMode] = "AES256";
    out.headers[kWrapped] = Base64Encode(wrapped);
  } else {
    out.data_key = sse.customer_key;
    std::string salt = Random(16);
    out.headers[kMode] = "SSE-C";
    out.headers[kHmac] = Base64Encode(salt) + ":" + HexEncode(Hmac(sse.customer_key, salt));
  }
  return out;
}

StatusOr<SseKeys::ReadKey> SseKeys::ForRead(const std::map<std::string, std::string>& stored,
                                            const SseRequest& sse) {
  auto mode = stored.find(kMode);
  auto iv = stored.find(kIv);
  ReadKey out;
  if (mode == stored.end()) {
    if (sse.mode == SseRequest::Mode::kCustomer) {
      return S3Error("InvalidRequest",
                     "The encryption parameters are not applicable to this object.");
    }
    return out;
  }
  if (iv == stored.end() || !Base64Decode(iv->second, &out.iv) || out.iv.size() != 16)
    return absl::DataLossError("SSE: stored IV malformed");
  if (mode->second == "AES256") {
    if (sse.mode == SseRequest::Mode::kCustomer) {
      return S3Error("InvalidRequest",
                     "The encryption parameters are not applicable to this object.");
    }
    auto wrapped = stored.find(kWrapped);
    std::string raw;
    if (wrapped == stored.end() || !Base64Decode(wrapped->second, &raw))
      return absl::DataLossError("SSE: stored key malformed");
    PHOTON_ASSIGN_OR_RETURN(std::string master, MasterKey());
    PHOTON_ASSIGN_OR_RETURN(out.data_key, Unwrap(master, raw));
    return out;
  }
  if (sse.mode != SseRequest::Mode::kCustomer) {
    return S3Error("InvalidRequest",
                   "The object was stored using a form of Server Side Encryption. The correct "
                   "parameters must be provided to retrieve the object.");
  }
  auto hmac = stored.find(kHmac);
  std::string salt;
  size_t colon = hmac == stored.end() ? std::string::npos : hmac->second.find(':');
  if (colon == std::string::npos || !Base64Decode(hmac->second.substr(0, colon), &salt))
    return absl::DataLossError("SSE-C: stored key HMAC malformed");
  if (HexEncode(Hmac(sse.customer_key, salt)) != hmac->second.substr(colon + 1))
    return S3Error("AccessDenied", "Access Denied");
  out.data_key = sse.customer_key;
  return out;
}

StatusOr<SseKeys::ReadKey> SseKeys::ForPart(const std::map<std::string, std::string>& upload,
                                            const SseRequest& sse) {
  auto mode = upload.find(kMode);
  if (mode != upload.end() && mode->second == "SSE-C" && sse.mode != SseRequest::Mode::kCustomer) {
    return S3Error("InvalidRequest",
                   "The multipart upload initiate requested encryption. Subsequent part requests "
                   "must include the appropriate encryption parameters.");
  }
  auto key = ForRead(upload, sse);
  if (!key.ok() && S3Code(key.status()) == "AccessDenied") {
    return S3Error("InvalidArgument",
                   "The provided encryption parameters did not match the ones used originally.");
  }
  return key;
}

std::map<std::string, std::string> SseKeys::ResponseHeaders(
    const std::map<std::string, std::string>& stored) {
  auto mode = stored.find(kMode);
  if (mode == stored.end()) return {};
  if (mode->second == "AES256") return {{"x-amz-server-side-encryption", "AES256"}};
  return {{"x-amz-server-side-encryption-customer-algorithm", "AES256"}};
}

bool SseKeys::IsEncrypted(const std::map<std::string, std::string>& stored) {
  return stored.count(kMode) > 0;
}

void SseKeys::Strip(std::map<std::string, std::string>* stored) {
  for (const char* name : {kMode, kIv, kWrapped, kHmac, kFormat}) stored->erase(name);
}

}  // namespace photon::lightningstor

// libFuzzer target for the request-body layers: the aws-chunked decoder (chunk headers, chunk
// signatures of STREAMING-AWS4-HMAC-SHA256-PAYLOAD chained from the AWS documentation's seed
// signature, trailers) and the x-amz-checksum-* trailer verification behind it, fed in pieces
// of fuzzer-chosen sizes the way a socket delivers them. Any body must decode or give an S3
// error, never a crash, hang or unbounded buffering.
// Input: byte 0 = flags (bit 0 signed chunks, bit 1 crc32c trailer announced, bits 2-7 piece
// size), byte 1 = caller's read size (its low bit, with signed chunks, selects "build" mode),
// the rest is the body as sent. In build mode the rest is a list of chunks (one length byte,
// then that many bytes) that the harness encodes with correct signatures, so the decoder's
// success path across many chunks is reached too, not only its rejection of bad signatures.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lightningstor/body_readers.h"
#include "lightningstor/sigv4.h"

namespace {

using namespace photon::lightningstor;

// Hands out the body in pieces of at most `piece` bytes.
class PieceReader : public http::BodyReader {
 public:
  PieceReader(std::string_view body, size_t piece) : body_(body), piece_(piece) {}
  photon::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t step = std::min({n, piece_, body_.size()});
    std::copy(body_.begin(), body_.begin() + static_cast<ptrdiff_t>(step), buf);
    body_.remove_prefix(step);
    return step;
  }

 private:
  std::string_view body_;
  size_t piece_;
};

const AuthInfo& DocAuth() {
  static const AuthInfo* info = [] {
    auto* a = new AuthInfo;
    a->anonymous = false;
    a->access_key = "AKIAIOSFODNN7EXAMPLE";
    a->payload_hash = std::string(sigv4::kStreamingPayload);
    a->amz_date = "20130524T000000Z";
    a->scope = "20130524/us-east-1/s3/aws4_request";
    a->signing_key = sigv4::SigningKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524",
                                       "us-east-1", "s3");
    a->seed_signature = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    return a;
  }();
  return *info;
}

// aws-chunked encoding of the chunks listed in `spec`, signed with the documentation's key.
std::string BuildSigned(std::string_view spec, std::string* payload) {
  const AuthInfo& a = DocAuth();
  std::string out, previous = a.seed_signature;
  auto add = [&](std::string_view chunk) {
    std::string sig =
        sigv4::ChunkSignature(a.signing_key, a.amz_date, a.scope, previous, std::string(chunk));
    char size_hex[32];
    snprintf(size_hex, sizeof size_hex, "%zx", chunk.size());
    out += std::string(size_hex) + ";chunk-signature=" + sig + "\r\n";
    out += chunk;
    out += "\r\n";
    previous = sig;
  };
  while (!spec.empty()) {
    size_t len = std::min<size_t>(static_cast<unsigned char>(spec[0]), spec.size() - 1);
    if (len == 0) {
      spec.remove_prefix(1);
      continue;  // a zero-length chunk would end the body
    }
    add(spec.substr(1, len));
    payload->append(spec.substr(1, len));
    spec.remove_prefix(1 + len);
  }
  add("");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t flags = data[0];
  size_t read_size = 1 + data[1] * 257u;
  std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  bool signed_chunks = flags & 1;
  std::string built, payload, decoded;
  if (signed_chunks && (data[1] & 1)) {
    built = BuildSigned(body, &payload);
    body = built;
  }
  PieceReader inner(body, 1 + (flags >> 2) * 1031u);
  AwsChunkedReader chunked(&inner, DocAuth(), signed_chunks);
  http::Request req;
  if (flags & 2) req.headers.emplace_back("x-amz-trailer", "x-amz-checksum-crc32c");
  auto sums = ContentChecksums::FromRequest(req);
  if (!sums.ok()) abort();  // fixed, valid headers
  std::string out(read_size, '\0');
  uint64_t total = 0;
  while (true) {
    auto n = chunked.Read(out.data(), out.size());
    if (!n.ok()) {
      if (!built.empty()) abort();  // a correctly signed body must decode
      return 0;
    }
    if (*n == 0) break;
    if (*n > out.size()) abort();
    total += *n;
    if (total > body.size()) abort();  // decoding never makes bytes up
    sums->Update(out.data(), *n);
    if (!built.empty()) decoded.append(out.data(), *n);
  }
  if (decoded != payload) abort();
  std::map<std::string, std::string> stored;
  (void)sums->Verify(chunked.trailers(), &stored);
  return 0;
}

// libFuzzer target for the request-body layers: the aws-chunked decoder (chunk headers, chunk
// signatures of STREAMING-AWS4-HMAC-SHA256-PAYLOAD chained from the AWS documentation's seed
// signature, trailers) and the x-amz-checksum-* trailer verification behind it, fed in pieces
// of fuzzer-chosen sizes the way a socket delivers them. Any body must decode or give an S3
// error, never a crash, hang or unbounded buffering.
// Input: byte 0 = flags (bit 0 signed chunks, bit 1 crc32c trailer announced, bits 2-7 piece
// size), byte 1 = caller's read size, the rest is the body as sent.
#include <cstdint>
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t flags = data[0];
  size_t read_size = 1 + data[1] * 257u;
  std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  PieceReader inner(body, 1 + (flags >> 2) * 1031u);
  bool signed_chunks = flags & 1;
  AwsChunkedReader chunked(&inner, DocAuth(), signed_chunks);
  http::Request req;
  if (flags & 2) req.headers.emplace_back("x-amz-trailer", "x-amz-checksum-crc32c");
  auto sums = ContentChecksums::FromRequest(req);
  if (!sums.ok()) abort();  // fixed, valid headers
  std::string out(read_size, '\0');
  uint64_t total = 0;
  while (true) {
    auto n = chunked.Read(out.data(), out.size());
    if (!n.ok()) return 0;
    if (*n == 0) break;
    if (*n > out.size()) abort();
    total += *n;
    if (total > body.size()) abort();  // decoding never makes bytes up
    sums->Update(out.data(), *n);
  }
  std::map<std::string, std::string> stored;
  (void)sums->Verify(chunked.trailers(), &stored);
  return 0;
}

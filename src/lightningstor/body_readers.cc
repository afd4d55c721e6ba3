#include "lightningstor/body_readers.h"

#include <algorithm>
#include <cstring>

#include "common/util.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/sigv4.h"

namespace photon::lightningstor {
namespace {

constexpr size_t kMaxLine = 4096;
constexpr size_t kFillSize = 64 << 10;

Status Incomplete() {
  return S3Error(
      "IncompleteBody",
      "You did not provide the number of bytes specified by the Content-Length HTTP header");
}

}  // namespace

StatusOr<size_t> Sha256CheckReader::Read(char* buf, size_t n) {
  if (done_) return size_t{0};
  PHOTON_ASSIGN_OR_RETURN(size_t got, inner_->Read(buf, n));
  if (got > 0) {
    sha_.Update(buf, got);
    return got;
  }
  done_ = true;
  if (HexEncode(sha_.Finish()) != expected_) {
    return S3Error("XAmzContentSHA256Mismatch",
                   "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  return size_t{0};
}

AwsChunkedReader::AwsChunkedReader(http::BodyReader* inner, const AuthInfo& auth,
                                   bool signed_chunks)
    : inner_(inner), auth_(auth), signed_(signed_chunks && !auth.signing_key.empty()) {
  previous_signature_ = auth.seed_signature;
}

StatusOr<bool> AwsChunkedReader::Fill() {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  size_t old = buf_.size();
  buf_.resize(old + kFillSize);
  auto got = inner_->Read(buf_.data() + old, kFillSize);
  if (!got.ok()) {
    buf_.resize(old);
    return got.status();
  }
  buf_.resize(old + *got);
  return *got > 0;
}

StatusOr<std::string> AwsChunkedReader::ReadLine() {
  while (true) {
    size_t crlf = buf_.find("\r\n", pos_);
    if (crlf != std::string::npos) {
      std::string line = buf_.substr(pos_, crlf - pos_);
      pos_ = crlf + 2;
      return line;
    }
    if (buf_.size() - pos_ > kMaxLine)
      return S3Error("InvalidRequest", "aws-chunked: line too long");
    PHOTON_ASSIGN_OR_RETURN(bool more, Fill());
    if (!more) return Incomplete();
  }
}

Status AwsChunkedReader::FinishChunk() {
  if (!signed_) return absl::OkStatus();
  std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + auth_.amz_date + "\n" + auth_.scope + "\n" +
                    previous_signature_ + "\n" + std::string(sigv4::kEmptySha256) + "\n" +
                    HexEncode(chunk_sha_->Finish());
  std::string expected = sigv4::Sign(auth_.signing_key, sts);
  if (!SecureEquals(expected, chunk_signature_)) {
    return S3Error("SignatureDoesNotMatch",
                   "The chunk signature we calculated does not match the signature you provided.");
  }
  previous_signature_ = chunk_signature_;
  return absl::OkStatus();
}

StatusOr<size_t> AwsChunkedReader::Read(char* out, size_t n) {
  while (true) {
    switch (state_) {
      case State::kDone:
        return size_t{0};
      case State::kHeader: {
        PHOTON_ASSIGN_OR_RETURN(std::string line, ReadLine());
        size_t semi = line.find(';');
        std::string size_text = line.substr(0, semi);
        char* end = nullptr;
        remaining_ = std::strtoull(size_text.c_str(), &end, 16);
        if (size_text.empty() || *end != '\0')
          return S3Error("InvalidRequest", "aws-chunked: bad chunk size");
        chunk_signature_.clear();
        if (semi != std::string::npos) {
          std::string ext = line.substr(semi + 1);
          if (ext.rfind("chunk-signature=", 0) == 0) chunk_signature_ = ext.substr(16);
        }
        if (signed_ && chunk_signature_.empty()) {
          return S3Error("SignatureDoesNotMatch", "aws-chunked: missing chunk signature");
        }
        chunk_sha_.emplace(Digest::Kind::kSha256);
        if (remaining_ == 0) {
          PHOTON_RETURN_IF_ERROR(FinishChunk());
          state_ = State::kTrailer;
        } else {
          state_ = State::kData;
        }
        break;
      }
      case State::kData: {
        if (remaining_ == 0) {
          state_ = State::kDataEnd;
          break;
        }
        size_t want = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
        size_t got = 0;
        if (pos_ < buf_.size()) {
          got = std::min(want, buf_.size() - pos_);
          std::memcpy(out, buf_.data() + pos_, got);
          pos_ += got;
        } else {
          PHOTON_ASSIGN_OR_RETURN(got, inner_->Read(out, want));
          if (got == 0) return Incomplete();
        }
        if (signed_) chunk_sha_->Update(out, got);
        remaining_ -= got;
        return got;
      }
      case State::kDataEnd: {
        PHOTON_ASSIGN_OR_RETURN(std::string line, ReadLine());
        if (!line.empty())
          return S3Error("InvalidRequest", "aws-chunked: chunk not followed by CRLF");
        PHOTON_RETURN_IF_ERROR(FinishChunk());
        state_ = State::kHeader;
        break;
      }
      case State::kTrailer: {
        auto line = ReadLine();
        // Some clients end the body right after the final chunk without the last CRLF.
        if (!line.ok() && S3Code(line.status()) == "IncompleteBody") {
          state_ = State::kDone;
          break;
        }
        PHOTON_RETURN_IF_ERROR(line.status());
        if (line->empty()) {
          state_ = State::kDone;
          break;
        }
        size_t colon = line->find(':');
        if (colon == std::string::npos)
          return S3Error("InvalidRequest", "aws-chunked: bad trailer");
        std::string name = line->substr(0, colon);
        for (auto& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
        std::string value = line->substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        if (name == "x-amz-trailer-signature") {
          if (signed_) {
            std::string expected =
                sigv4::TrailerSignature(auth_.signing_key, auth_.amz_date, auth_.scope,
                                        previous_signature_, trailer_block_);
            if (!SecureEquals(expected, value)) {
              return S3Error("SignatureDoesNotMatch", "The trailer signature does not match.");
            }
          }
        } else {
          trailers_[name] = value;
          trailer_block_ += name + ":" + value + "\n";
        }
        break;
      }
    }
  }
}

namespace {

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

// The trailers x-amz-trailer announces: checksum headers only (InvalidRequest otherwise).
StatusOr<std::vector<ChecksumKind>> AnnouncedTrailers(const http::Request& req) {
  std::vector<ChecksumKind> out;
  std::string list = Lower(req.Header("x-amz-trailer"));
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(pos, comma - pos);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    pos = comma + 1;
    if (name.empty()) continue;
    std::optional<ChecksumKind> kind;
    if (name.rfind("x-amz-checksum-", 0) == 0) kind = ChecksumKindOf(name.substr(15));
    if (!kind) return S3Error("InvalidRequest", "The trailer " + name + " is not supported.");
    out.push_back(*kind);
  }
  return out;
}

}  // namespace

StatusOr<ContentChecksums> ContentChecksums::FromRequest(const http::Request& req,
                                                         std::optional<ChecksumKind> always) {
  ContentChecksums out;
  PHOTON_ASSIGN_OR_RETURN(std::vector<ChecksumKind> trailers, AnnouncedTrailers(req));
  for (ChecksumKind kind : kChecksumKinds) {
    std::string header = ChecksumHeader(kind);
    const std::string& value = req.Header(header);
    bool in_trailer = std::find(trailers.begin(), trailers.end(), kind) != trailers.end();
    if (value.empty() && !in_trailer && kind != always) continue;
    std::string raw;
    if (!value.empty() && !Base64Decode(value, &raw)) {
      return S3Error("InvalidRequest", "Value for " + header + " header is invalid.");
    }
    out.algorithms_.push_back(
        Algo{kind, value, value.empty() && in_trailer, std::make_shared<Checksummer>(kind)});
  }
  // The SDK's announcement of the checksum it sends: it must come.
  for (const char* announcement : {"x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"}) {
    const std::string& sdk = req.Header(announcement);
    if (sdk.empty()) continue;
    std::optional<ChecksumKind> kind = ChecksumKindOf(sdk);
    if (!kind) return S3Error("InvalidRequest", "Checksum algorithm provided is unsupported.");
    bool sent = req.HasHeader(ChecksumHeader(*kind)) ||
                std::find(trailers.begin(), trailers.end(), *kind) != trailers.end();
    if (!sent) {
      return S3Error("InvalidRequest", std::string(announcement) +
                                           " specified, but no corresponding x-amz-checksum-* "
                                           "or x-amz-trailer headers were found.");
    }
  }
  return out;
}

void ContentChecksums::Update(const char* data, size_t n) {
  for (auto& a : algorithms_) a.sum->Update(data, n);
}

Status ContentChecksums::Verify(const std::map<std::string, std::string>& trailers,
                                std::map<std::string, std::string>* stored) {
  for (auto& a : algorithms_) {
    std::string header = ChecksumHeader(a.kind);
    std::string expected = a.expected;
    if (a.trailer) {
      auto it = trailers.find(header);
      if (it == trailers.end()) {
        return S3Error("InvalidRequest",
                       "x-amz-trailer announced " + header + " but the body's trailer lacks it.");
      }
      expected = it->second;
    }
    std::string actual = Base64Encode(a.sum->Finish());
    if (!expected.empty() && actual != expected) {
      std::string upper = ChecksumName(a.kind);
      for (auto& c : upper) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
      return S3Error("BadDigest",
                     "The " + upper + " you specified did not match the calculated checksum.");
    }
    (*stored)[header] = actual;
  }
  return absl::OkStatus();
}

}  // namespace photon::lightningstor

#include "lightningstor/sigv4.h"

#include <ctime>

#include "lightningstor/s3_error.h"

namespace photon::lightningstor::sigv4 {
namespace {

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

Status Malformed(std::string why) {
  return S3Error("AuthorizationHeaderMalformed",
                 "The authorization header is malformed; " + std::move(why));
}

}  // namespace

StatusOr<Credential> ParseCredential(std::string_view text) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    size_t slash = text.find('/', pos);
    parts.emplace_back(text.substr(pos, slash == std::string_view::npos ? text.npos : slash - pos));
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  if (parts.size() != 5 || parts[4] != "aws4_request" || parts[1].size() != 8 || parts[0].empty()) {
    return Malformed(
        "the Credential is mal-formed; expecting "
        "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".");
  }
  return Credential{parts[0], parts[1], parts[2], parts[3]};
}

StatusOr<ParsedAuth> ParseAuthorizationHeader(std::string_view header) {
  header = Trim(header);
  if (header.substr(0, kAlgorithm.size()) != kAlgorithm) {
    return Malformed("unsupported algorithm (want AWS4-HMAC-SHA256)");
  }
  std::string_view rest = header.substr(kAlgorithm.size());
  ParsedAuth out;
  bool have_cred = false, have_sh = false, have_sig = false;
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t comma = rest.find(',', pos);
    if (comma == std::string_view::npos) comma = rest.size();
    std::string_view item = Trim(rest.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return Malformed("bad component");
    std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "Credential") {
      PHOTON_ASSIGN_OR_RETURN(out.credential, ParseCredential(value));
      have_cred = true;
    } else if (key == "SignedHeaders") {
      size_t p = 0;
      while (p <= value.size()) {
        size_t semi = value.find(';', p);
        if (semi == std::string_view::npos) semi = value.size();
        if (semi > p) out.signed_headers.emplace_back(value.substr(p, semi - p));
        p = semi + 1;
      }
      have_sh = !out.signed_headers.empty();
    } else if (key == "Signature") {
      out.signature = std::string(value);
      have_sig = !value.empty();
    }
  }
  if (!have_cred || !have_sh || !have_sig)
    return Malformed("missing Credential, SignedHeaders or Signature");
  return out;
}

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// The decimal number in s[pos, pos+len), or -1 when any of it is not a digit.
int Digits(std::string_view s, size_t pos, size_t len) {
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

// Parsed by hand: it is on every signed request, and strptime + timegm cost more than the
// rest of the date handling together.
StatusOr<int64_t> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') {
    return S3Error("AccessDenied",
                   "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
  }
  int year = Digits(s, 0, 4), month = Digits(s, 4, 2), day = Digits(s, 6, 2);
  int hour = Digits(s, 9, 2), minute = Digits(s, 11, 2), second = Digits(s, 13, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
      minute < 0 || minute > 59 || second < 0 || second > 60)
    return S3Error("AccessDenied", "bad X-Amz-Date");
  return DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
         hour * 3600 + minute * 60 + second;
}

StatusOr<int64_t> ParseHttpDate(std::string_view s) {
  std::tm tm{};
  std::string str(s);
  const char* end = strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end) end = strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (!end) end = strptime(str.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return absl::InvalidArgumentError("bad HTTP date");
  return static_cast<int64_t>(timegm(&tm));
}

std::string FormatHttpDate(int64_t epoch_seconds) {
  time_t t = static_cast<time_t>(epoch_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string FormatIso8601(int64_t epoch_millis) {
  time_t t = static_cast<time_t>(epoch_millis / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(epoch_millis % 1000));
  return out;
}

}  // namespace photon::lightningstor::sigv4

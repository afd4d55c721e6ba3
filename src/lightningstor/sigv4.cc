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
  return DaysFromCivil(int64_t{tm.tm_year} + 1900, static_cast<unsigned>(tm.tm_mon + 1),
                       static_cast<unsigned>(tm.tm_mday)) *
             86400 +
         tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

namespace {

// UTC calendar fields of a time, computed without gmtime_r: glibc's gmtime_r and timegm take
// the process-wide tzset lock, which every request's Last-Modified (and every listed key)
// would queue on across the connection threads.
struct UtcTime {
  int64_t year;
  unsigned month, day, hour, minute, second, weekday;  // month 1-12, weekday 0 = Sunday
};

UtcTime ToUtc(int64_t secs) {
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  // H. Hinnant's civil_from_days.
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  UtcTime t;
  t.day = doy - (153 * mp + 2) / 5 + 1;
  t.month = mp < 10 ? mp + 3 : mp - 9;
  t.year = static_cast<int64_t>(yoe) + era * 400 + (t.month <= 2);
  t.hour = static_cast<unsigned>(rem / 3600);
  t.minute = static_cast<unsigned>(rem / 60 % 60);
  t.second = static_cast<unsigned>(rem % 60);
  t.weekday = static_cast<unsigned>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  return t;
}

constexpr const char* kWeekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

std::string FormatHttpDate(int64_t epoch_seconds) {
  // Written digit by digit (snprintf was 2 % of a small GET, for its Last-Modified).
  UtcTime t = ToUtc(epoch_seconds);
  if (t.year < 1000 || t.year > 9999) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s, %02u %s %lld %02u:%02u:%02u GMT", kWeekdays[t.weekday], t.day,
             kMonths[t.month - 1], static_cast<long long>(t.year), t.hour, t.minute, t.second);
    return buf;
  }
  std::string out = "Www, DD Mmm YYYY HH:MM:SS GMT";
  auto two = [&](size_t at, unsigned v) {
    out[at] = static_cast<char>('0' + v / 10);
    out[at + 1] = static_cast<char>('0' + v % 10);
  };
  out.replace(0, 3, kWeekdays[t.weekday]);
  two(5, t.day);
  out.replace(8, 3, kMonths[t.month - 1]);
  const auto year = static_cast<unsigned>(t.year);
  two(12, year / 100);
  two(14, year % 100);
  two(17, t.hour);
  two(20, t.minute);
  two(23, t.second);
  return out;
}

std::string FormatIso8601(int64_t epoch_millis) {
  UtcTime t = ToUtc(epoch_millis / 1000);
  char out[64];
  snprintf(out, sizeof out, "%lld-%02u-%02uT%02u:%02u:%02u.%03dZ", static_cast<long long>(t.year),
           t.month, t.day, t.hour, t.minute, t.second, static_cast<int>(epoch_millis % 1000));
  return out;
}

}  // namespace photon::lightningstor::sigv4

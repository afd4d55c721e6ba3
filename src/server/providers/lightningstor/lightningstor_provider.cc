// See lightningstor_provider.h.
#include "server/providers/lightningstor/lightningstor_provider.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <tuple>

#include "common/http_client.h"
#include "photon/storage.pb.h"
#include "server/providers/lightningstor/s3_client.h"

namespace photon::server {

namespace {

using Phase = resource::ResourceStatus;
using Query = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kOwnerTagKey = "photon:owner";

// One lifecycle rule as compared between the spec and lightningstor.
struct Rule {
  std::string id;
  std::string prefix;
  int days = 0;
  bool enabled = true;
  bool operator==(const Rule& o) const {
    return std::tie(id, prefix, days, enabled) == std::tie(o.id, o.prefix, o.days, o.enabled);
  }
};

class LightningstorProvider : public ServiceProvider {
 public:
  LightningstorProvider(std::string endpoint, std::string public_endpoint, std::string region,
                        std::string credentials_file, std::string owner,
                        std::chrono::milliseconds timeout)
      : endpoint_(std::move(endpoint)),
        public_endpoint_(std::move(public_endpoint)),
        region_(std::move(region)),
        credentials_file_(std::move(credentials_file)),
        owner_(std::move(owner)),
        client_(endpoint_, region_, timeout) {}

  std::string driver() const override { return "lightningstor"; }
  std::vector<std::string> kinds() const override { return {"buckets"}; }

  Observed Apply(const google::protobuf::Message& object, const ObjectLookup&) override {
    Observed o;
    if (object.GetDescriptor() != storage::Bucket::descriptor()) {
      o.phase = Phase::ERROR;
      o.message = "lightningstor provider: cannot realize " + object.GetDescriptor()->name();
      return o;
    }
    return ApplyBucket(static_cast<const storage::Bucket&>(object));
  }

  Status Remove(const ManagedRef& ref) override {
    std::string bucket;
    auto it = ref.details.find("bucket");
    if (it != ref.details.end()) bucket = it->second;
    if (bucket.empty()) {
      auto name = S3BucketName(ref.ns, ref.name);
      if (!name.ok()) return absl::OkStatus();  // never created
      bucket = *name;
    }
    auto owner = OwnerOf(bucket);
    if (!owner.ok()) {
      if (owner.status().code() == StatusCode::kNotFound) return absl::OkStatus();
      return owner.status();
    }
    if (*owner != Tag(ref.ns, ref.name)) return absl::OkStatus();  // not ours: never touch
    s3::Reply del = Call("DELETE", "/" + bucket, {});
    if (del.reached && (del.status == 204 || del.status == 200 || del.code == "NoSuchBucket"))
      return absl::OkStatus();
    if (del.reached && del.code == "BucketNotEmpty") {
      return absl::FailedPreconditionError(
          "S3 bucket '" + bucket + "' at " + public_endpoint_ +
          " is not empty: kept with its data (Bucket '" + ref.name + "' in namespace '" + ref.ns +
          "' was deleted); it is removed once its objects, versions and uploads are deleted");
    }
    return AsStatus(del, "delete bucket " + bucket);
  }

  StatusOr<std::vector<ManagedRef>> ListManaged() override {
    s3::Reply list = Call("GET", "/", {});
    PHOTON_RETURN_IF_ERROR(AsStatus(list, "list buckets"));
    std::vector<ManagedRef> out;
    const std::string prefix = owner_ + ":buckets/";
    for (const XmlNode* name : list.xml->Descendants("Name")) {
      const std::string& bucket = name->text;
      auto owner = OwnerOf(bucket);
      if (!owner.ok()) {
        if (owner.status().code() == StatusCode::kNotFound) continue;  // deleted meanwhile
        return owner.status();
      }
      if (owner->rfind(prefix, 0) != 0) continue;
      std::string rest = owner->substr(prefix.size());
      size_t slash = rest.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) continue;
      out.push_back(ManagedRef{
          "buckets", rest.substr(0, slash), rest.substr(slash + 1), {{"bucket", bucket}}});
    }
    return out;
  }

 private:
  std::string Tag(const std::string& ns, const std::string& name) const {
    return owner_ + ":buckets/" + ns + "/" + name;
  }

  // "Bucket 'logs' in namespace 'team-a'" for an owner tag of this cluster; the raw tag else.
  std::string DescribeOwner(const std::string& owner) const {
    const std::string prefix = owner_ + ":buckets/";
    if (owner.rfind(prefix, 0) == 0) {
      std::string rest = owner.substr(prefix.size());
      size_t slash = rest.find('/');
      if (slash != std::string::npos) {
        return "Bucket '" + rest.substr(slash + 1) + "' in namespace '" + rest.substr(0, slash) +
               "'";
      }
    }
    if (owner.empty()) return "an S3 client (not created by photon)";
    return "owner '" + owner + "'";
  }

  s3::Reply Call(const std::string& method, const std::string& path, const Query& query,
                 const std::string& body = "") {
    if (!creds_) {
      auto c = s3::ReadCredentialsFile(credentials_file_);
      if (!c.ok()) {
        s3::Reply r;
        r.message = std::string(c.status().message());
        r.code = "PhotonCredentials";
        return r;
      }
      creds_ = *c;
    }
    s3::Reply r = client_.Call(*creds_, method, path, query, body);
    if (!r.reached) {
      r.message = "lightningstor at " + endpoint_ + " unreachable: " + r.message;
    } else if (r.status == 403) {
      creds_.reset();  // the key file may have been rewritten: read it again next time
    }
    return r;
  }

  // OK for 2xx; UNAVAILABLE when lightningstor was not reached, failed (5xx) or refused our
  // credentials (403: the key file can be fixed); NOT_FOUND for NoSuchBucket; INVALID_ARGUMENT
  // for other refusals.
  Status AsStatus(const s3::Reply& r, const std::string& what) {
    if (!r.reached) return absl::UnavailableError(r.message);
    if (r.status >= 200 && r.status < 300) {
      if (r.xml_error.empty()) return absl::OkStatus();
      return absl::UnavailableError("lightningstor " + what +
                                    ": the answer is not XML: " + r.xml_error);
    }
    std::string msg = "lightningstor " + what + ": " + r.code + ": " + r.message;
    if (r.status == 403) {
      return absl::UnavailableError(msg + " (check the key in credentials_file " +
                                    credentials_file_ + ")");
    }
    if (r.status >= 500) return absl::UnavailableError(msg);
    if (r.code == "NoSuchBucket") return absl::NotFoundError(msg);
    return absl::InvalidArgumentError(msg);
  }

  // The bucket's owner tag ("" when it has none); NOT_FOUND when the bucket does not exist.
  StatusOr<std::string> OwnerOf(const std::string& bucket) {
    s3::Reply r = Call("GET", "/" + bucket, {{"tagging", ""}});
    if (r.reached && r.code == "NoSuchTagSet") return std::string();
    PHOTON_RETURN_IF_ERROR(AsStatus(r, "get tags of " + bucket));
    for (const XmlNode* tag : r.xml->Descendants("Tag")) {
      if (tag->DescendantText("Key") == kOwnerTagKey) return tag->DescendantText("Value");
    }
    return std::string();
  }

  Observed ApplyBucket(const storage::Bucket& b) {
    const auto& md = b.metadata();
    const auto& spec = b.spec();
    // While it was working, trouble with the backend is an update in progress, not a create.
    const auto waiting_phase =
        b.status().phase() == Phase::RUNNING || b.status().phase() == Phase::UPDATING
            ? Phase::UPDATING
            : Phase::CREATING;
    Observed o;
    auto fail = [&](const std::string& message) {
      o.phase = Phase::ERROR;
      o.message = message;
      return o;
    };
    auto from_error = [&](const Status& st) {
      if (st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kFailedPrecondition) {
        o.phase = waiting_phase;
        o.message = std::string(st.message()) + "; retrying";
        o.retry = true;
        return o;
      }
      return fail(std::string(st.message()));
    };
    auto name = S3BucketName(md.namespace_(), md.name());
    if (!name.ok()) return fail(std::string(name.status().message()));
    const std::string bucket = *name;
    o.details["provider"] = "lightningstor";
    o.details["endpoint"] = public_endpoint_;
    o.details["bucket"] = bucket;
    o.details["region"] = region_;
    if (!spec.region().empty() && spec.region() != region_) {
      return fail("spec.region '" + spec.region() + "': lightningstor at " + public_endpoint_ +
                  " serves region '" + region_ + "' only (leave spec.region empty for it)");
    }
    std::vector<Rule> want_rules;
    for (int i = 0; i < spec.lifecycle_rules_size(); ++i) {
      const auto& r = spec.lifecycle_rules(i);
      const std::string field = "spec.lifecycleRules[" + std::to_string(i) + "]";
      if (r.expiration_days() < 1) return fail(field + ".expirationDays: must be ≥ 1");
      if (r.prefix().size() > 1024) return fail(field + ".prefix: longer than 1024 bytes");
      want_rules.push_back(Rule{"photon-" + std::to_string(i), r.prefix(), r.expiration_days()});
    }
    const std::string tag = Tag(md.namespace_(), md.name());

    // Exists and ours, or create it with the owner tag in the same request.
    bool created = false;
    for (int attempt = 0;; ++attempt) {
      auto owner = OwnerOf(bucket);
      if (owner.ok()) {
        if (*owner != tag) {
          return fail("S3 bucket '" + bucket + "' is already taken by " + DescribeOwner(*owner) +
                      " (S3 bucket names are global: <namespace>-<name>)");
        }
        break;
      }
      if (owner.status().code() != StatusCode::kNotFound) return from_error(owner.status());
      if (attempt > 0) {
        o.phase = waiting_phase;
        o.message = "S3 bucket '" + bucket + "' changed while it was being created; retrying";
        o.retry = true;
        return o;
      }
      std::string body =
          "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
      if (region_ != "us-east-1")
        body += "<LocationConstraint>" + s3::XmlEscape(region_) + "</LocationConstraint>";
      body += "<Tags><Tag><Key>" + std::string(kOwnerTagKey) + "</Key><Value>" +
              s3::XmlEscape(tag) + "</Value></Tag></Tags></CreateBucketConfiguration>";
      s3::Reply made = Call("PUT", "/" + bucket, {}, body);
      if (made.reached && made.status == 409) continue;  // made meanwhile: look at its owner
      if (auto st = AsStatus(made, "create bucket " + bucket); !st.ok()) return from_error(st);
      created = true;
      break;
    }

    // Versioning: S3 cannot return a bucket to "never versioned"; Suspended is the off state.
    s3::Reply ver = Call("GET", "/" + bucket, {{"versioning", ""}});
    if (auto st = AsStatus(ver, "get versioning of " + bucket); !st.ok()) return from_error(st);
    const std::string have_ver = ver.xml->DescendantText("Status");
    std::string want_ver = spec.versioning_enabled() ? "Enabled"
                           : have_ver.empty()        ? ""
                                                     : "Suspended";
    if (want_ver != have_ver) {
      s3::Reply put = Call("PUT", "/" + bucket, {{"versioning", ""}},
                           "<VersioningConfiguration "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>" +
                               want_ver + "</Status></VersioningConfiguration>");
      if (auto st = AsStatus(put, "set versioning of " + bucket); !st.ok()) return from_error(st);
    }

    // Lifecycle: the spec's rules replace whatever the bucket has.
    s3::Reply lc = Call("GET", "/" + bucket, {{"lifecycle", ""}});
    std::vector<Rule> have_rules;
    if (!(lc.reached && lc.code == "NoSuchLifecycleConfiguration")) {
      if (auto st = AsStatus(lc, "get lifecycle of " + bucket); !st.ok()) return from_error(st);
      for (const XmlNode* xml : lc.xml->Descendants("Rule")) {
        Rule r;
        r.id = xml->DescendantText("ID");
        r.prefix = xml->DescendantText("Prefix");
        r.enabled = xml->DescendantText("Status") == "Enabled";
        r.days = atoi(xml->DescendantText("Days").c_str());
        // A rule with more than expiration (an upload abort) is not one photon writes.
        if (!xml->DescendantText("DaysAfterInitiation").empty()) r.days = -1;
        have_rules.push_back(r);
      }
    }
    if (have_rules != want_rules) {
      s3::Reply put;
      if (want_rules.empty()) {
        put = Call("DELETE", "/" + bucket, {{"lifecycle", ""}});
      } else {
        std::string body =
            "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
        for (const auto& r : want_rules) {
          body += "<Rule><ID>" + r.id + "</ID><Filter><Prefix>" + s3::XmlEscape(r.prefix) +
                  "</Prefix></Filter><Status>Enabled</Status><Expiration><Days>" +
                  std::to_string(r.days) + "</Days></Expiration></Rule>";
        }
        body += "</LifecycleConfiguration>";
        put = Call("PUT", "/" + bucket, {{"lifecycle", ""}}, body);
      }
      if (auto st = AsStatus(put, "set lifecycle of " + bucket); !st.ok()) {
        Observed e = from_error(st);
        if (e.phase == Phase::ERROR) e.message = "spec.lifecycleRules refused: " + e.message;
        return e;
      }
    }
    if (created) spdlog::info("lightningstor: created S3 bucket {} for {}", bucket, tag);
    o.phase = Phase::RUNNING;
    o.message = "S3 bucket " + bucket + " at " + public_endpoint_ + " (versioning " +
                (want_ver.empty() ? "off" : want_ver) + ", " + std::to_string(want_rules.size()) +
                " lifecycle rule" + (want_rules.size() == 1 ? "" : "s") + ")";
    return o;
  }

  const std::string endpoint_;
  const std::string public_endpoint_;
  const std::string region_;
  const std::string credentials_file_;
  const std::string owner_;
  s3::Client client_;
  std::optional<s3::Credentials> creds_;  // read lazily: the key may be written after start
};

}  // namespace

StatusOr<std::string> S3BucketName(const std::string& ns, const std::string& name) {
  const std::string s3 = ns + "-" + name;
  const std::string what = "S3 bucket name '" + s3 + "' (<namespace>-<name>)";
  if (s3.size() > 63) {
    return absl::InvalidArgumentError(what + " is " + std::to_string(s3.size()) +
                                      " characters; S3 allows 63: shorten the name");
  }
  // Namespaces and names are DNS labels already (lower case, digits, '-', alphanumeric ends),
  // so what remains of S3's rules are the reserved affixes.
  for (const char* prefix : {"xn--", "sthree-", "amzn-s3-demo-"}) {
    if (s3.rfind(prefix, 0) == 0)
      return absl::InvalidArgumentError(what + " starts with '" + prefix + "', reserved by S3");
  }
  for (const std::string suffix : {"-s3alias", "--ol-s3", "--x-s3", "--table-s3"}) {
    if (s3.size() >= suffix.size() &&
        s3.compare(s3.size() - suffix.size(), suffix.size(), suffix) == 0)
      return absl::InvalidArgumentError(what + " ends with '" + suffix + "', reserved by S3");
  }
  for (char c : s3) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return absl::InvalidArgumentError(what + " has '" + std::string(1, c) + "'");
  }
  return s3;
}

StatusOr<std::unique_ptr<ServiceProvider>> NewLightningstorProvider(const ProviderConfig& config) {
  std::string endpoint, public_endpoint, credentials_file, region = "us-east-1", owner = "photon";
  int timeout_ms = 5000;
  const std::string where = "providers (lightningstor): ";
  for (const auto& [key, value] : config.settings) {
    if (key == "endpoint") {
      endpoint = value;
    } else if (key == "public_endpoint") {
      public_endpoint = value;
    } else if (key == "credentials_file") {
      credentials_file = value;
    } else if (key == "region") {
      region = value;
    } else if (key == "owner") {
      owner = value;
    } else if (key == "timeout_ms") {
      try {
        timeout_ms = std::stoi(value);
      } catch (const std::exception&) {
        return absl::InvalidArgumentError(where + "timeout_ms: want a number, got '" + value + "'");
      }
    } else {
      return absl::InvalidArgumentError(
          where + "unknown key '" + key +
          "' (known: endpoint, credentials_file, region, public_endpoint, owner, timeout_ms)");
    }
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (endpoint.rfind("http://", 0) != 0)
    return absl::InvalidArgumentError(where + "endpoint: want http://HOST:PORT, got '" + endpoint +
                                      "'");
  if (auto c = HttpClient::Create(endpoint, ""); !c.ok())
    return absl::InvalidArgumentError(where + "endpoint: " + std::string(c.status().message()));
  if (credentials_file.empty())
    return absl::InvalidArgumentError(where + "credentials_file: required");
  if (region.empty()) return absl::InvalidArgumentError(where + "region: must not be empty");
  if (owner.empty() || owner.find_first_of(":/ ") != std::string::npos)
    return absl::InvalidArgumentError(where + "owner: a non-empty tag without ':', '/' or spaces");
  if (timeout_ms <= 0) return absl::InvalidArgumentError(where + "timeout_ms: must be > 0");
  if (public_endpoint.empty()) public_endpoint = endpoint;
  return std::unique_ptr<ServiceProvider>(
      new LightningstorProvider(endpoint, public_endpoint, region, credentials_file, owner,
                                std::chrono::milliseconds(timeout_ms)));
}

}  // namespace photon::server

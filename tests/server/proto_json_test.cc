// proto_json against protobuf's own JSON util: on randomly filled messages of every kind both
// must print the same JSON document, and each must parse the other's text back to the message.
#include "server/proto_json.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "photon/compute.pb.h"
#include "photon/service.pb.h"
#include "server/kinds.h"

namespace photon::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string RandomString(std::mt19937& rng) {
  static const std::string kChars[] = {"a",  "Z", "0",  "-", " ", "\"",   "\\", "\n",
                                       "\t", "é", "中", "😀", "/", "\x01", "<",  "&"};
  std::string s;
  const int n = rng() % 8;
  for (int i = 0; i < n; ++i) s += kChars[rng() % std::size(kChars)];
  return s;
}

void Fill(Message* m, std::mt19937& rng, int depth);

void FillValue(Message* m, const FieldDescriptor* f, bool add, std::mt19937& rng, int depth) {
  const auto* r = m->GetReflection();
  auto pick = [&](auto small, auto big) { return rng() % 3 == 0 ? big : small; };
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v = pick(static_cast<int32_t>(rng() % 200) - 100, INT32_MIN);
      add ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v = pick(static_cast<uint32_t>(rng() % 100), UINT32_MAX);
      add ? r->AddUInt32(m, f, v) : r->SetUInt32(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = pick(static_cast<int64_t>(rng() % 2000) - 1000, INT64_MIN + 1);
      add ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = pick(static_cast<uint64_t>(rng() % 100), UINT64_MAX);
      add ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = pick((static_cast<int>(rng() % 2000) - 1000) / 7.0, 1e300);
      add ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float v = pick((static_cast<int>(rng() % 2000) - 1000) / 7.0f, 3e38f);
      add ? r->AddFloat(m, f, v) : r->SetFloat(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      add ? r->AddBool(m, f, rng() % 2) : r->SetBool(m, f, rng() % 2);
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type()->value(rng() % f->enum_type()->value_count());
      add ? r->AddEnumValue(m, f, e->number()) : r->SetEnumValue(m, f, e->number());
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v = RandomString(rng);
      if (f->type() == FieldDescriptor::TYPE_BYTES) v += std::string(1, '\0') + "\xff";
      add ? r->AddString(m, f, v) : r->SetString(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (f->message_type()->file()->package() == "google.protobuf") break;
      Fill(add ? r->AddMessage(m, f) : r->MutableMessage(m, f), rng, depth + 1);
      break;
  }
}

void Fill(Message* m, std::mt19937& rng, int depth) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (rng() % 3 == 0) continue;  // leave some unset
    if (depth > 4 && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_map()) {
      const int n = rng() % 3;
      for (int j = 0; j < n; ++j) {
        Message* entry = r->AddMessage(m, f);
        const auto* kf = f->message_type()->map_key();
        const auto* er = entry->GetReflection();
        if (kf->cpp_type() == FieldDescriptor::CPPTYPE_STRING)
          er->SetString(entry, kf, "k" + std::to_string(j) + RandomString(rng));
        else
          FillValue(entry, kf, false, rng, depth);
        FillValue(entry, f->message_type()->map_value(), false, rng, depth);
      }
    } else if (f->is_repeated()) {
      const int n = rng() % 3;
      for (int j = 0; j < n; ++j) FillValue(m, f, true, rng, depth);
    } else {
      FillValue(m, f, false, rng, depth);
    }
  }
}

std::string UtilJson(const Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(m, &out, opts).ok());
  return out;
}

std::vector<const Message*> Prototypes() {
  std::vector<const Message*> out;
  for (const auto& k : AllKinds()) out.push_back(k.prototype);
  out.push_back(&api::ListRequest::default_instance());
  return out;
}

TEST(ProtoJson, SameDocumentAsProtobufUtilOnRandomMessages) {
  std::mt19937 rng(42);
  for (const Message* proto : Prototypes()) {
    for (int round = 0; round < 200; ++round) {
      std::unique_ptr<Message> m(proto->New());
      Fill(m.get(), rng, 0);
      const std::string ours = ProtoToJson(*m);
      const std::string theirs = UtilJson(*m);
      ASSERT_EQ(nlohmann::json::parse(ours), nlohmann::json::parse(theirs))
          << proto->GetTypeName() << "\nours:   " << ours << "\ntheirs: " << theirs;
      // Each parses the other's text back to the same message.
      std::unique_ptr<Message> back(proto->New());
      ASSERT_TRUE(JsonToProto(theirs, back.get()).ok()) << theirs;
      ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*m, *back)) << theirs;
      back->Clear();
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ours, back.get()).ok()) << ours;
      ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*m, *back)) << ours;
    }
  }
}

compute::ComputeInstance Parse(const std::string& json, Status* st) {
  compute::ComputeInstance ci;
  *st = JsonToProto(json, &ci);
  return ci;
}

TEST(ProtoJson, AcceptsTheProto3Forms) {
  Status st;
  auto ci = Parse(R"( { "metadata" : {"name":"a", "generation":"7", "labels":{"x":"y"}},
      "spec": {"resources": {"vcpu": 2.0, "memory_mb": "512"}, "process": {"command": ["a\u00e9\ud83d\ude00"]}},
      "status": {"phase": 2, "message": null} } )",
                  &st);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(ci.metadata().generation(), 7);
  EXPECT_EQ(ci.metadata().labels().at("x"), "y");
  EXPECT_EQ(ci.spec().resources().vcpu(), 2);
  EXPECT_EQ(ci.spec().resources().memory_mb(), 512);
  EXPECT_EQ(ci.spec().process().command(0), "a\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(ci.status().phase(), resource::ResourceStatus::RUNNING);
  ci = Parse(R"({"status":{"phase":"ERROR"}})", &st);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(ci.status().phase(), resource::ResourceStatus::ERROR);
}

TEST(ProtoJson, SchemaErrorsNameTheFieldPath) {
  struct Case {
    std::string json, want;
  };
  const Case cases[] = {
      {R"({"spec":{"resources":{"bogus":1}}})", "spec.resources.bogus: unknown field"},
      {R"({"spec":{"resources":{"vcpu":"x"}}})", "spec.resources.vcpu: not an integer"},
      {R"({"spec":{"resources":{"vcpu":1.5}}})", "spec.resources.vcpu: not an integer"},
      {R"({"spec":{"resources":{"vcpu":99999999999}}})",
       "spec.resources.vcpu: number out of range"},
      {R"({"spec":{"resources":{"vcpu":true}}})", "spec.resources.vcpu: expected a number"},
      {R"({"spec":{"process":{"command":"ls"}}})", "spec.process.command: expected an array"},
      {R"({"spec":{"process":{"command":[1]}}})", "spec.process.command[0]: expected a string"},
      {R"({"metadata":{"labels":{"a":1}}})", "metadata.labels[a]: expected a string"},
      {R"({"metadata":"x"})", "metadata: expected an object"},
      {R"({"status":{"phase":"SLEEPING"}})", "status.phase: unknown value 'SLEEPING'"},
      {R"({"spec":{"process":{},"vm":{}}})", "spec.vm: only one of"},
  };
  for (const auto& c : cases) {
    Status st;
    Parse(c.json, &st);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(std::string(st.message()).find(c.want), std::string::npos)
        << c.json << " → " << st.message();
  }
}

TEST(ProtoJson, MalformedJsonIsSaidSo) {
  for (const std::string bad :
       {"", "{", "[]", "{\"metadata\":}", "{\"metadata\":{\"name\":\"a\"}", "{} x",
        "{\"spec\":{\"bogus\":[1,}}", "{\"a\" 1}", "{\"metadata\":{\"name\":\"\\q\"}}",
        "{\"metadata\":{\"name\":\"\\ud800\"}}", "{\"metadata\":{\"name\":\"a\x01\"}}",
        "{\"metadata\":{\"generation\":01.}}", "{\"metadata\":{\"generation\":-}}"}) {
    Status st;
    Parse(bad, &st);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(std::string(st.message()).rfind("malformed JSON", 0), 0u) << bad << " → " << st;
  }
  // Nesting far beyond the schema is refused without recursing without bound.
  std::string deep = "{\"spec\":{\"bogus\":" + std::string(100000, '[') + "}}";
  Status st;
  Parse(deep, &st);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
}

TEST(ProtoJson, EnvelopeMembersAreCollectedNotRefused) {
  std::map<std::string, std::string> env = {{"kind", "-"}, {"apiVersion", "-"}};
  compute::ComputeInstance ci;
  ASSERT_TRUE(JsonToProto(R"({"kind":"ComputeInstance","metadata":{"name":"a"}})", &ci, &env).ok());
  EXPECT_EQ(env["kind"], "ComputeInstance");
  EXPECT_EQ(env["apiVersion"], "-");
  EXPECT_EQ(ci.metadata().name(), "a");
  // Only at the top level.
  EXPECT_FALSE(JsonToProto(R"({"metadata":{"kind":"x"}})", &ci, &env).ok());
}

}  // namespace
}  // namespace photon::server

#include "cli/documents.h"

#include <yaml-cpp/yaml.h>

#include <sstream>

namespace photon::cli {

namespace {

nlohmann::json FromYaml(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      auto arr = nlohmann::json::array();
      for (const auto& item : node) arr.push_back(FromYaml(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      auto obj = nlohmann::json::object();
      for (const auto& it : node) obj[it.first.as<std::string>()] = FromYaml(it.second);
      return obj;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      // A quoted scalar is always a string.
      if (node.Tag() == "!") return s;
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~") return nullptr;
      if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos &&
          s.find('-', 1) == std::string::npos && s != "-" && s.size() < 19) {
        return std::stoll(s);
      }
      return s;
    }
  }
  return nullptr;
}

void EmitJson(YAML::Emitter& out, const nlohmann::json& v) {
  if (v.is_object()) {
    out << YAML::BeginMap;
    for (auto& [k, val] : v.items()) {
      out << YAML::Key << k << YAML::Value;
      EmitJson(out, val);
    }
    out << YAML::EndMap;
  } else if (v.is_array()) {
    out << YAML::BeginSeq;
    for (auto& val : v) EmitJson(out, val);
    out << YAML::EndSeq;
  } else if (v.is_string()) {
    out << v.get<std::string>();
  } else if (v.is_boolean()) {
    out << v.get<bool>();
  } else if (v.is_null()) {
    out << YAML::Null;
  } else {
    out << v.dump();
  }
}

}  // namespace

StatusOr<std::vector<nlohmann::json>> ParseDocuments(const std::string& text) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError("malformed YAML/JSON at line " +
                                      std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  std::vector<nlohmann::json> out;
  int n = 0;
  for (const auto& d : docs) {
    ++n;
    if (d.IsNull()) continue;
    if (!d.IsMap()) {
      return absl::InvalidArgumentError("document " + std::to_string(n) +
                                        ": want a mapping with kind, metadata and spec");
    }
    auto j = FromYaml(d);
    if (!j.contains("kind") || !j["kind"].is_string()) {
      return absl::InvalidArgumentError("document " + std::to_string(n) + ": kind: required");
    }
    out.push_back(std::move(j));
  }
  if (out.empty()) return absl::InvalidArgumentError("no documents found");
  return out;
}

std::string ToYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  EmitJson(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace photon::cli

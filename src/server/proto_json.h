// Protobuf messages to and from JSON (the proto3 JSON mapping), straight over reflection.
//
// Why not google::protobuf::util: in protobuf 3.21 it serialises the message to the wire format,
// resolves every type through a TypeResolver and re-reads the bytes through an object-writer
// pipeline. On the create path that was about a fifth of photon-server's CPU. This walks the
// descriptor once and writes the text directly; it produces the same JSON document (a test
// compares both on randomly filled messages of every kind) and its parser refuses what the
// util's refuses, naming the field by its path ("spec.resources.vcpu: ...").
//
// Well-known types (google.protobuf.*) keep their special JSON forms by delegating to the util
// for that sub-message; our resource schema has none on its hot paths.
#pragma once

#include <google/protobuf/message.h>

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace photon::server {

// Appends `msg` as a JSON object. Scalars, repeated fields and maps are printed even when
// empty or zero (like util's always_print_primitive_fields); unset sub-messages, oneof members
// and proto3 `optional` fields are left out. Field names are the lowerCamelCase json names.
void AppendProtoJson(const google::protobuf::Message& msg, std::string* out);
std::string ProtoToJson(const google::protobuf::Message& msg);

// Merges the JSON object `json` into `msg`. Accepts json names and proto field names, int64s as
// numbers or strings, enums by name or number, `null` as "unset". Unknown fields, wrong types,
// out-of-range numbers, malformed JSON and trailing bytes are INVALID_ARGUMENT; for a schema
// mismatch the message starts with the field path, for broken syntax with "malformed JSON".
// `envelope`, if given, names top-level string members that are not fields of the message
// (e.g. "kind", "apiVersion" of a document): they are accepted and their values stored there.
Status JsonToProto(std::string_view json, google::protobuf::Message* msg,
                   std::map<std::string, std::string>* envelope = nullptr);

}  // namespace photon::server

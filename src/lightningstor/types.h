// The data model of lightningstor: buckets, object versions and the segments that hold their
// bytes, multipart uploads and parts. Plain values, copied freely between threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace photon::lightningstor {

// Size of the blocks each stored file is checksummed in (CRC-32C per block), so any range read
// can be verified without reading the whole object.
inline constexpr uint64_t kBlockSize = 1 << 20;

// One stored file (or, for multipart objects, one part's file).
struct Segment {
  std::string blob_id;
  uint64_t size = 0;
  std::string block_crcs;  // 4 bytes (big-endian CRC-32C) per kBlockSize block
  // Raw 16-byte IV of a part of an encrypted multipart upload: its bytes are encrypted from
  // their own offset 0 under this IV (each part has its own, so no keystream is ever reused);
  // "" = the object's IV (at the object's offset in format 1).
  std::string iv;
  // Encrypted segments: sse.h SseFormat (0 = plain or format 1, CTR, as written before format
  // 2 existed); format 2 keeps each block's 16-byte GCM tag here, in block order.
  int sse_format = 0;
  std::string block_tags;
};

struct BucketMeta {
  std::string name;
  int64_t created_ms = 0;
  std::string versioning;  // "" (never enabled), "Enabled", "Suspended"
  bool public_read = false;
  std::string policy;                   // JSON text as PUT by the client ("" = none)
  std::string lifecycle;                // LifecycleConfiguration XML as PUT ("" = none)
  std::string tags;                     // Tagging XML as this server writes it ("" = no tag set)
  std::string cors;                     // CORSConfiguration XML as PUT ("" = none)
  std::string owner = "lightningstor";  // the account that created it
  std::string acl;          // grants (object_attrs.h EncodeGrants); "" = owner + public_read
  std::string object_lock;  // object_attrs.h lock configuration ("" = no Object Lock)
  std::string logging;      // access_log.h target ("" = no access logging)
  std::string public_access_block;  // bucket_rules.h EncodePublicAccessBlock ("" = none)
  std::string encryption;  // default encryption, bucket_rules.h ParseBucketEncryption ("" = none)
  std::string ownership;   // Object Ownership, bucket_rules.h ("" = never set: ObjectWriter)
  // The owner account's Public Access Block (S3 Control), read with the bucket ("" = none);
  // it applies on top of the bucket's own (bucket_rules.h EffectivePublicAccessBlock).
  std::string account_public_access_block;
};

struct ObjectMeta {
  std::string bucket;
  std::string key;
  std::string version_id = "null";
  int64_t seq = 0;  // insertion order; newer versions have larger seq
  bool is_latest = true;
  bool delete_marker = false;
  uint64_t size = 0;
  std::string etag;  // without quotes
  int64_t mtime_ms = 0;
  std::string content_type;
  // Kept response headers (content-encoding, cache-control, ..., x-amz-meta-*) and stored
  // checksums (x-amz-checksum-*), lower-case names.
  std::map<std::string, std::string> headers;
  // Bytes: inline (small objects, inside the metadata DB) or a list of segments.
  bool has_inline = false;
  std::string inline_data;
  uint32_t inline_crc = 0;
  std::vector<Segment> segments;
};

struct UploadMeta {
  std::string upload_id;
  std::string bucket;
  std::string key;
  int64_t created_ms = 0;
  std::string content_type;
  std::map<std::string, std::string> headers;
};

struct PartMeta {
  int part_number = 0;
  uint64_t size = 0;
  std::string etag;  // hex MD5, no quotes
  int64_t mtime_ms = 0;
  Segment segment;
  // x-amz-checksum-<alg> -> base64 of the part's bytes, as verified or computed when it came.
  std::map<std::string, std::string> checksums;
};

std::string EncodeSegments(const std::vector<Segment>& segments);
bool DecodeSegments(const std::string& text, std::vector<Segment>* out);
std::string EncodeHeaders(const std::map<std::string, std::string>& headers);
std::map<std::string, std::string> DecodeHeaders(const std::string& text);

}  // namespace photon::lightningstor

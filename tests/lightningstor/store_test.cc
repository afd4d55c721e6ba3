// MetaStore + BlobStore + Sweeper: versioning semantics, group commit under concurrency,
// bit-rot detection, and lifecycle expiry driven by a manual clock.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "lightningstor/blob_store.h"
#include "lightningstor/checksum.h"
#include "lightningstor/meta_store.h"
#include "lightningstor/s3_error.h"
#include "lightningstor/sweeper.h"

namespace photon::lightningstor {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ls_store_test_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    meta_ = std::move(*MetaStore::Open(dir_ / "meta.db"));
    blobs_ = std::move(*BlobStore::Open(dir_));
    BucketMeta b;
    b.name = "bkt";
    b.created_ms = clock_.NowMillis();
    ASSERT_TRUE(meta_->CreateBucket(b).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ObjectMeta Put(const std::string& key, const std::string& data, uint64_t inline_max = 1 << 16) {
    auto w = blobs_->NewWriter(inline_max);
    EXPECT_TRUE(w->Write(data.data(), data.size()).ok());
    auto blob = w->Finish();
    EXPECT_TRUE(blob.ok());
    ObjectMeta o;
    o.bucket = "bkt";
    o.key = key;
    o.size = blob->size;
    o.etag = HexEncode(blob->md5);
    o.mtime_ms = clock_.NowMillis();
    o.has_inline = blob->is_inline;
    o.inline_data = blob->inline_data;
    o.inline_crc = blob->inline_crc;
    if (!blob->is_inline) o.segments = {blob->segment};
    auto r = meta_->PutObject(o);
    EXPECT_TRUE(r.ok());
    o.version_id = r->version_id;
    return o;
  }

  std::string Read(const ObjectMeta& o, Status* st = nullptr) {
    std::string out;
    Status s = blobs_->Read(o, 0, o.size, [&](const char* p, size_t n) {
      out.append(p, n);
      return absl::OkStatus();
    });
    if (st) *st = s;
    return out;
  }

  std::filesystem::path dir_;
  ManualClock clock_{1700000000000};
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_F(StoreTest, VersioningAndDeleteMarkers) {
  Put("k", "v1");
  ASSERT_TRUE(meta_->SetVersioning("bkt", "Enabled").ok());
  auto v2 = Put("k", "v2");
  auto v3 = Put("k", "v3");
  EXPECT_NE(v2.version_id, "null");
  auto latest = meta_->GetObject("bkt", "k", "");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(Read(*latest), "v3");
  auto del = meta_->DeleteObject("bkt", "k", "", clock_.NowMillis());
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(del->delete_marker);
  bool marker = false;
  EXPECT_EQ(S3Code(meta_->GetObject("bkt", "k", "", &marker).status()), "NoSuchKey");
  EXPECT_TRUE(marker);
  auto old = meta_->GetObject("bkt", "k", v2.version_id);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(Read(*old), "v2");
  // Removing the marker brings v3 back.
  ASSERT_TRUE(meta_->DeleteObject("bkt", "k", del->version_id, clock_.NowMillis()).ok());
  EXPECT_EQ(Read(*meta_->GetObject("bkt", "k", "")), "v3");
  auto versions = meta_->ListVersions("bkt", "", "", "", 100);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 3u);  // null, v2, v3
  EXPECT_EQ(S3Code(meta_->DeleteBucket("bkt").status()), "BucketNotEmpty");
}

TEST_F(StoreTest, ConcurrentPutsGroupCommit) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 50; ++i)
        Put("t" + std::to_string(t) + "/" + std::to_string(i), std::string(100, 'a' + t));
    });
  }
  for (auto& th : threads) th.join();
  auto all = meta_->ListLatest("bkt", "", "", false, 1000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 400u);
}

// GetObject and GetBucket keep what they read (meta_store.h); a write that has returned is
// seen by every later read, while readers race the writer.
TEST_F(StoreTest, CachedRowsNeverOutliveAWrite) {
  std::atomic<bool> stop{false};
  std::atomic<int> regressions{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      int seen = -1;
      while (!stop.load()) {
        auto o = meta_->GetObject("bkt", "hot", "");
        if (!o.ok()) continue;
        int v = std::stoi(o->inline_data);
        if (v < seen) ++regressions;
        seen = v;
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    Put("hot", std::to_string(i));
    auto o = meta_->GetObject("bkt", "hot", "");
    ASSERT_TRUE(o.ok());
    ASSERT_EQ(o->inline_data, std::to_string(i));
  }
  auto changed = meta_->UpdateObjectHeaders("bkt", "hot", "", [](auto& h) {
    h["x-amz-meta-n"] = "1";
    return absl::OkStatus();
  });
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(meta_->GetObject("bkt", "hot", "")->headers["x-amz-meta-n"], "1");
  ASSERT_TRUE(meta_->DeleteObject("bkt", "hot", "", clock_.NowMillis()).ok());
  EXPECT_EQ(S3Code(meta_->GetObject("bkt", "hot", "").status()), "NoSuchKey");
  stop = true;
  for (auto& th : readers) th.join();
  EXPECT_EQ(regressions.load(), 0);
  ASSERT_TRUE(meta_->GetBucket("bkt").ok());
  ASSERT_TRUE(meta_->SetPolicy("bkt", true, "{}").ok());
  EXPECT_EQ(meta_->GetBucket("bkt")->policy, "{}");
  ASSERT_TRUE(meta_->DeleteBucket("bkt").ok());
  EXPECT_EQ(S3Code(meta_->GetBucket("bkt").status()), "NoSuchBucket");
}

TEST_F(StoreTest, BitRotIsDetected) {
  std::string data(3 << 20, 'z');
  auto o = Put("big", data, 0);
  ASSERT_EQ(o.segments.size(), 1u);
  {
    std::fstream f(blobs_->BlobPath(o.segments[0].blob_id),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 << 20);
    f.put('X');
  }
  Status st;
  std::string got = Read(o, &st);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(got.size(), 2u << 20);  // the two good blocks went out, the bad one did not
  auto small = Put("small", "hello");
  small.inline_data[0] = 'j';
  Read(small, &st);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
}

// A blob cut short on disk (a lost tail, a truncating tool) fails the read with DataLoss at
// the first missing block; blocks before it are intact and checked, so they go out (the server
// then aborts the response, and the client sees a short body, never wrong bytes).
TEST_F(StoreTest, TruncatedBlobIsDataLoss) {
  std::string data(3 << 20, 'q');
  auto o = Put("cut", data, 0);
  ASSERT_EQ(o.segments.size(), 1u);
  std::filesystem::resize_file(blobs_->BlobPath(o.segments[0].blob_id), (2 << 20) + 100);
  Status st;
  std::string got = Read(o, &st);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(got, data.substr(0, 2 << 20));
  // A range inside the surviving blocks still reads.
  std::string part;
  st = blobs_->Read(o, 100, 1000, [&](const char* p, size_t n) {
    part.append(p, n);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(part, data.substr(100, 1000));
}

// Sizes around the inline limit, the 1 MiB block (where the helper threads take over) and the
// O_DIRECT alignment: the ETag is the body's MD5, every byte reads back, and every block has
// its CRC, whether the body came through Write or straight into Buffer/Commit.
TEST_F(StoreTest, WriterSizesAroundBlockBoundaries) {
  const uint64_t inline_max = 1 << 16;
  const uint64_t sizes[] = {0,
                            1,
                            inline_max,
                            inline_max + 1,
                            4096,
                            kBlockSize - 1,
                            kBlockSize,
                            kBlockSize + 1,
                            3 * kBlockSize + 4097,
                            12 * kBlockSize + 5};  // more blocks than the pipeline holds
  std::mt19937 rng(42);
  for (uint64_t size : sizes) {
    for (bool direct_fill : {false, true}) {
      SCOPED_TRACE("size " + std::to_string(size) + (direct_fill ? " via Buffer" : " via Write"));
      std::string data(size, '\0');
      for (auto& c : data) c = static_cast<char>(rng());
      auto w = blobs_->NewWriter(inline_max);
      size_t pos = 0;
      while (pos < data.size()) {
        // Odd-sized pieces so block boundaries fall inside them.
        size_t piece = std::min<size_t>(data.size() - pos, 300007);
        if (direct_fill) {
          auto space = w->Buffer();
          ASSERT_TRUE(space.ok());
          piece = std::min(piece, space->second);
          std::memcpy(space->first, data.data() + pos, piece);
          ASSERT_TRUE(w->Commit(piece).ok());
        } else {
          ASSERT_TRUE(w->Write(data.data() + pos, piece).ok());
        }
        pos += piece;
      }
      auto blob = w->Finish();
      ASSERT_TRUE(blob.ok()) << blob.status();
      EXPECT_EQ(blob->size, size);
      EXPECT_EQ(blob->md5, Md5Raw(data));
      EXPECT_EQ(blob->is_inline, size <= inline_max);
      ObjectMeta o;
      o.size = size;
      o.has_inline = blob->is_inline;
      o.inline_data = blob->inline_data;
      o.inline_crc = blob->inline_crc;
      if (!blob->is_inline) {
        EXPECT_EQ(blob->segment.block_crcs.size(),
                  4 * std::max<uint64_t>(1, (size + kBlockSize - 1) / kBlockSize));
        EXPECT_EQ(std::filesystem::file_size(blobs_->BlobPath(blob->segment.blob_id)), size);
        o.segments = {blob->segment};
      }
      Status st;
      EXPECT_TRUE(Read(o, &st) == data);
      EXPECT_TRUE(st.ok()) << st;
      // A range that starts and ends inside blocks.
      if (size > 10) {
        std::string part;
        ASSERT_TRUE(blobs_
                        ->Read(o, 3, size - 10,
                               [&](const char* p, size_t n) {
                                 part.append(p, n);
                                 return absl::OkStatus();
                               })
                        .ok());
        EXPECT_TRUE(part == data.substr(3, size - 10));
      }
    }
  }
}

// A writer dropped mid-body (client gone, bad checksum) leaves no temp file behind.
TEST_F(StoreTest, AbandonedWriterRemovesTempFile) {
  {
    auto w = blobs_->NewWriter(0);
    std::string chunk(kBlockSize, 'q');
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(w->Write(chunk.data(), chunk.size()).ok());
  }
  EXPECT_TRUE(std::filesystem::is_empty(blobs_->tmp_dir()));
}

// Freed blobs are unlinked off the request path; closing the store unlinks whatever is still
// queued, so a clean stop leaves no file the metadata does not name.
TEST_F(StoreTest, RemoveLaterUnlinksInTheBackgroundAndOnClose) {
  std::string big(2 * kBlockSize + 7, 'r');
  std::vector<std::string> paths, ids;
  for (int i = 0; i < 20; ++i) {
    ObjectMeta o = Put("later" + std::to_string(i), big, 0);
    ids.push_back(o.segments[0].blob_id);
    paths.push_back(blobs_->BlobPath(ids.back()));
    ASSERT_TRUE(std::filesystem::exists(paths.back()));
  }
  blobs_->RemoveLater({ids.begin(), ids.begin() + 10});
  blobs_->RemoveLater({ids.begin() + 10, ids.end()});
  blobs_.reset();
  for (const auto& p : paths) EXPECT_FALSE(std::filesystem::exists(p)) << p;
}

TEST_F(StoreTest, LifecycleExpiryWithManualClock) {
  Config config;
  config.data_dir = dir_;
  config.lifecycle_day_seconds = 10;
  Put("logs/a", "1");
  Put("keep/b", "2");
  ASSERT_TRUE(
      meta_
          ->SetLifecycle("bkt",
                         "<LifecycleConfiguration><Rule><Filter><Prefix>logs/</Prefix></Filter>"
                         "<Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
                         "</LifecycleConfiguration>")
          .ok());
  Sweeper sweeper(config, meta_.get(), blobs_.get(), &clock_);
  EXPECT_EQ(*sweeper.RunOnce(), 0);
  clock_.Advance(11 * 1000);
  EXPECT_EQ(*sweeper.RunOnce(), 1);
  EXPECT_EQ(S3Code(meta_->GetObject("bkt", "logs/a", "").status()), "NoSuchKey");
  EXPECT_TRUE(meta_->GetObject("bkt", "keep/b", "").ok());
}

TEST_F(StoreTest, AbandonedUploadsAborted) {
  Config config;
  config.data_dir = dir_;
  config.abandoned_upload_seconds = 60;
  UploadMeta u;
  u.upload_id = "u1";
  u.bucket = "bkt";
  u.key = "k";
  u.created_ms = clock_.NowMillis();
  ASSERT_TRUE(meta_->CreateUpload(u).ok());
  auto w = blobs_->NewWriter(0, true);
  ASSERT_TRUE(w->Write("part", 4).ok());
  auto blob = *w->Finish();
  PartMeta p;
  p.part_number = 1;
  p.size = 4;
  p.segment = blob.segment;
  ASSERT_TRUE(meta_->PutPart("u1", p).ok());
  Sweeper sweeper(config, meta_.get(), blobs_.get(), &clock_);
  EXPECT_EQ(*sweeper.RunOnce(), 0);
  clock_.Advance(61 * 1000);
  EXPECT_EQ(*sweeper.RunOnce(), 1);
  EXPECT_FALSE(std::filesystem::exists(blobs_->BlobPath(blob.segment.blob_id)));
  EXPECT_EQ(S3Code(meta_->GetUpload("bkt", "k", "u1").status()), "NoSuchUpload");
}

}  // namespace
}  // namespace photon::lightningstor

// MetaStore + BlobStore + Sweeper: versioning semantics, group commit under concurrency,
// bit-rot detection, and lifecycle expiry driven by a manual clock.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "lightningstor/blob_store.h"
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
  EXPECT_EQ(S3Code(meta_->DeleteBucket("bkt")), "BucketNotEmpty");
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

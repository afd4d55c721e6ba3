// EtcdStore: etcd v3 gRPC client implementing Store. Thread-safe; see etcd_store.h.
#include "store/etcd_store.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "common/util.h"
#include "rpc.grpc.pb.h"
#include "rpc.pb.h"

namespace photon::store {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(30);
constexpr auto kOpenTimeout = std::chrono::seconds(5);

Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return Status(static_cast<StatusCode>(status.error_code()), "etcd: " + status.error_message());
}

bool IsCompactedError(const Status& status) {
  return status.code() == StatusCode::kOutOfRange &&
         status.message().find("compacted") != absl::string_view::npos;
}

KeyValue FromProto(const mvccpb::KeyValue& kv) {
  KeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

RangeResult FromProto(const etcdserverpb::RangeResponse& response, int64_t revision) {
  RangeResult result;
  result.kvs.reserve(response.kvs_size());
  for (const auto& kv : response.kvs()) result.kvs.push_back(FromProto(kv));
  result.count = response.count();
  result.more = response.more();
  result.revision = revision != 0 ? revision : response.header().revision();
  return result;
}

TxnResult FromProto(const etcdserverpb::TxnResponse& response) {
  TxnResult result;
  result.succeeded = response.succeeded();
  result.revision = response.header().revision();
  for (const auto& op : response.responses()) {
    if (op.has_response_range()) {
      result.ranges.push_back(FromProto(op.response_range(), result.revision));
    } else if (op.has_response_delete_range()) {
      result.deleted += op.response_delete_range().deleted();
    }
  }
  return result;
}

void ToProto(const Compare& compare, etcdserverpb::Compare* out) {
  out->set_key(compare.key);
  switch (compare.op) {
    case Compare::Op::kEqual:
      out->set_result(etcdserverpb::Compare::EQUAL);
      break;
    case Compare::Op::kNotEqual:
      out->set_result(etcdserverpb::Compare::NOT_EQUAL);
      break;
    case Compare::Op::kLess:
      out->set_result(etcdserverpb::Compare::LESS);
      break;
    case Compare::Op::kGreater:
      out->set_result(etcdserverpb::Compare::GREATER);
      break;
  }
  switch (compare.target) {
    case Compare::Target::kVersion:
      out->set_target(etcdserverpb::Compare::VERSION);
      out->set_version(compare.number);
      break;
    case Compare::Target::kCreateRevision:
      out->set_target(etcdserverpb::Compare::CREATE);
      out->set_create_revision(compare.number);
      break;
    case Compare::Target::kModRevision:
      out->set_target(etcdserverpb::Compare::MOD);
      out->set_mod_revision(compare.number);
      break;
    case Compare::Target::kValue:
      out->set_target(etcdserverpb::Compare::VALUE);
      out->set_value(compare.value);
      break;
  }
}

// etcd has no append-only log: each record is a key under the stream's prefix, named by the
// wall clock (then random bits) so a key-ordered range reads the records in order.
// A record's position (LogPage::next) is its key without the prefix.
std::string LogPrefix(const std::string& stream) { return "/_log/" + stream + "/"; }
std::string LogStamp(std::chrono::system_clock::time_point t) {
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  char stamp[17];
  snprintf(stamp, sizeof stamp, "%016llx", static_cast<unsigned long long>(nanos));
  return stamp;
}
std::string NewLogKey(const std::string& stream) {
  return LogPrefix(stream) + LogStamp(std::chrono::system_clock::now()) + RandomHex(4);
}
// Log keys trimmed per step: one range of keys and one delete of them.
constexpr int64_t kTrimChunk = 1000;

void ToProto(const TxnOp& op, etcdserverpb::RequestOp* out) {
  switch (op.type) {
    case TxnOp::Type::kPut: {
      auto* put = out->mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
      break;
    }
    case TxnOp::Type::kDelete: {
      auto* del = out->mutable_request_delete_range();
      del->set_key(op.key);
      del->set_range_end(op.end);
      break;
    }
    case TxnOp::Type::kRange: {
      auto* range = out->mutable_request_range();
      range->set_key(op.key);
      range->set_range_end(op.end);
      range->set_limit(op.limit);
      break;
    }
    case TxnOp::Type::kAppend: {
      auto* put = out->mutable_request_put();
      put->set_key(NewLogKey(op.key));
      put->set_value(op.value);
      break;
    }
  }
}

void ToProto(const TxnRequest& txn, etcdserverpb::TxnRequest* out) {
  for (const auto& compare : txn.compares) ToProto(compare, out->add_compare());
  for (const auto& op : txn.success) ToProto(op, out->add_success());
  for (const auto& op : txn.failure) ToProto(op, out->add_failure());
}

using WatchStream =
    grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>;

// What a watch's reader thread shares with its handle and with the store (which ends the
// watch when it is closed first).
struct EtcdWatchState {
  std::mutex mu;  // guards context against a TryCancel() while the stream is replaced
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<etcdserverpb::Watch::Stub> stub;  // set when resumed on another endpoint
  std::unique_ptr<WatchStream> stream;
  WatchCallback on_events;
  WatchErrorCallback on_error;
  std::atomic<bool> cancelled{false};     // by the handle: end silently
  std::atomic<bool> store_closed{false};  // by the store: end with UNAVAILABLE
  // To resume elsewhere when the stream's etcd member goes: the request, the revision the
  // next event has at least, and every member's channel.
  etcdserverpb::WatchRequest request;
  int64_t next_revision = 0;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  size_t endpoint = 0;

  void TryCancel() {
    std::lock_guard lock(mu);
    context->TryCancel();
  }
};

// How long a watch whose etcd member went away looks for another one before it ends.
constexpr auto kWatchResumeFor = std::chrono::seconds(30);

// Drains and finishes the current stream (gRPC wants every message read before Finish).
grpc::Status FinishStream(EtcdWatchState& state) {
  etcdserverpb::WatchResponse response;
  state.TryCancel();
  while (state.stream->Read(&response)) {
  }
  return state.stream->Finish();
}

// After the stream's member went away: the same watch from next_revision on the next member
// that answers, so the caller sees no gap and no error. OUT_OF_RANGE when the revision was
// compacted meanwhile; UNAVAILABLE when none answered within kWatchResumeFor.
Status ResumeWatch(EtcdWatchState& state) {
  const auto deadline = std::chrono::steady_clock::now() + kWatchResumeFor;
  state.request.mutable_create_request()->set_start_revision(state.next_revision);
  Status last = absl::UnavailableError("etcd: no endpoint");
  for (size_t attempt = 1; std::chrono::steady_clock::now() < deadline; ++attempt) {
    if (state.cancelled || state.store_closed) return absl::CancelledError("watch ended");
    const size_t index = (state.endpoint + attempt) % state.channels.size();
    auto context = std::make_unique<grpc::ClientContext>();
    auto stub = etcdserverpb::Watch::NewStub(state.channels[index]);
    std::unique_ptr<WatchStream> stream = stub->Watch(context.get());
    etcdserverpb::WatchResponse response;
    if (stream->Write(state.request) && stream->Read(&response) && !response.canceled() &&
        response.compact_revision() == 0) {
      std::lock_guard lock(state.mu);
      if (state.cancelled) {
        context->TryCancel();
      }
      std::swap(state.context, context);
      std::swap(state.stub, stub);
      std::swap(state.stream, stream);
      state.endpoint = index;
      // The old call's context must outlive its stream: both go at the end of this scope,
      // stream first (declared later).
      return absl::OkStatus();
    }
    context->TryCancel();
    while (stream->Read(&response)) {
    }
    grpc::Status finish = stream->Finish();
    if (response.compact_revision() > 0) {
      return absl::OutOfRangeError("etcd: mvcc: required revision has been compacted");
    }
    last = absl::UnavailableError("etcd: watch stream ended: " + finish.error_message());
    if (attempt % state.channels.size() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a round found none
    }
  }
  return last;
}

// Reads the stream until it ends, runs the callbacks, then reports why it ended (unless the
// handle cancelled it). A stream cut by its member's loss is resumed on another one.
void ReadWatchStream(const std::shared_ptr<EtcdWatchState>& state) {
  etcdserverpb::WatchResponse response;
  Status error;
  while (true) {
    while (state->stream->Read(&response)) {
      if (state->cancelled) break;
      if (response.compact_revision() > 0) {
        error = absl::OutOfRangeError("etcd: mvcc: required revision has been compacted");
        break;
      }
      if (response.canceled()) {
        error = absl::CancelledError("etcd: watch canceled: " + response.cancel_reason());
        break;
      }
      if (response.events_size() == 0) continue;
      std::vector<WatchEvent> events;
      events.reserve(response.events_size());
      for (const auto& event : response.events()) {
        WatchEvent out;
        out.type = event.type() == mvccpb::Event::DELETE ? WatchEvent::Type::kDelete
                                                         : WatchEvent::Type::kPut;
        out.kv = FromProto(event.kv());
        events.push_back(std::move(out));
      }
      state->next_revision = events.back().kv.mod_revision + 1;
      state->on_events(events);
    }
    if (!error.ok() || state->cancelled || state->store_closed) break;
    grpc::Status finish = FinishStream(*state);
    Status resumed = ResumeWatch(*state);
    if (resumed.ok()) continue;
    if (state->cancelled) return;
    error = resumed.code() == StatusCode::kOutOfRange
                ? resumed
                : absl::UnavailableError(
                      "etcd: watch stream ended: " + finish.error_message() +
                      "; no other member resumed it: " + std::string(resumed.message()));
    if (state->on_error) state->on_error(error);
    return;
  }
  // Ended by the handle, the store, a compaction or etcd's cancel: no resume.
  grpc::Status finish = FinishStream(*state);
  if (state->cancelled) return;
  if (state->store_closed) {
    error = absl::UnavailableError("store closed");
  } else if (error.ok()) {
    error = absl::UnavailableError("etcd: watch stream ended: " + finish.error_message());
  }
  if (state->on_error) state->on_error(error);
}

class EtcdWatchHandle : public WatchHandle {
 public:
  explicit EtcdWatchHandle(std::shared_ptr<EtcdWatchState> state) : state_(std::move(state)) {
    reader_ = std::thread([state = state_] { ReadWatchStream(state); });
  }
  ~EtcdWatchHandle() override { Cancel(); }

  void Cancel() override {
    std::lock_guard lock(mu_);
    state_->cancelled = true;
    state_->TryCancel();
    if (!reader_.joinable()) return;
    if (std::this_thread::get_id() == reader_.get_id()) {
      // Cancel from inside a callback (not allowed by the contract, but do not deadlock); the
      // thread owns a reference to the state, so it may finish on its own.
      reader_.detach();
      return;
    }
    reader_.join();
  }

 private:
  std::mutex mu_;
  std::shared_ptr<EtcdWatchState> state_;
  std::thread reader_;
};

}  // namespace

class EtcdStore::Impl {
 public:
  explicit Impl(const std::vector<std::string>& endpoints) {
    grpc::ChannelArguments args;
    // Ranges over many keys exceed gRPC's 4 MiB default.
    args.SetMaxReceiveMessageSize(INT_MAX);
    // gRPC's default reconnect back-off grows to two minutes; a restarted etcd must be found
    // again within about a second.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // Notice a dead peer under a long-lived watch stream (etcd allows pings every 5 s).
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    for (std::string endpoint : endpoints) {
      for (const char* scheme : {"http://", "https://"}) {
        if (endpoint.starts_with(scheme)) endpoint = endpoint.substr(std::string(scheme).size());
      }
      Endpoint e;
      e.address = endpoint;
      e.channel = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
      e.kv = etcdserverpb::KV::NewStub(e.channel);
      e.watch = etcdserverpb::Watch::NewStub(e.channel);
      e.lease = etcdserverpb::Lease::NewStub(e.channel);
      endpoints_.push_back(std::move(e));
    }
  }

  struct Endpoint {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  };

  // Runs fn(endpoint, context) on the current endpoint, moving on to the next ones while they
  // answer UNAVAILABLE. That almost always means the request never reached a server; in the
  // rare case that a connection broke after etcd applied a write, the write is sent again (harmless
  // for compare-guarded txns, which then fail their compares, and for puts of the same value
  // apart from the extra revision).
  template <typename Fn>
  Status Call(Fn fn, std::chrono::milliseconds timeout = kCallTimeout) {
    size_t start = current_.load();
    grpc::Status status;
    std::string each;  // why every member failed: "no quorum" shows only in all of them
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      size_t index = (start + i) % endpoints_.size();
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + timeout);
      status = fn(endpoints_[index], context);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
        current_ = index;
        return FromGrpc(status);
      }
      each +=
          (each.empty() ? "" : "; ") + endpoints_[index].address + ": " + status.error_message();
    }
    if (endpoints_.size() == 1) return FromGrpc(status);
    return absl::UnavailableError("etcd: no member of " + std::to_string(endpoints_.size()) +
                                  " served the request (" + each + ")");
  }

  StatusOr<etcdserverpb::RangeResponse> RawRange(const etcdserverpb::RangeRequest& request,
                                                 std::chrono::milliseconds timeout) {
    etcdserverpb::RangeResponse response;
    PHOTON_RETURN_IF_ERROR(Call(
        [&](Endpoint& e, grpc::ClientContext& context) {
          return e.kv->Range(&context, request, &response);
        },
        timeout));
    return response;
  }

  StatusOr<etcdserverpb::RangeResponse> Probe(int64_t revision,
                                              std::chrono::milliseconds timeout = kCallTimeout) {
    etcdserverpb::RangeRequest request;
    request.set_key(std::string(1, '\0'));
    request.set_count_only(true);
    request.set_revision(revision);
    return RawRange(request, timeout);
  }

  ~Impl() {
    {
      std::lock_guard lock(watches_mu_);
      for (auto& weak : watches_) {
        if (auto state = weak.lock()) {
          state->store_closed = true;
          state->TryCancel();
        }
      }
    }
    // Async txns still in flight are cancelled and answered (CANCELLED) before the stubs go.
    std::unique_lock lock(async_mu_);
    closing_ = true;
    for (auto* call : async_calls_) call->context->TryCancel();
    async_cv_.wait(lock, [&] { return async_calls_.empty(); });
  }

  // One TxnAsync: its own context per attempt, as gRPC requires.
  struct AsyncTxn {
    etcdserverpb::TxnRequest request;
    etcdserverpb::TxnResponse response;
    std::unique_ptr<grpc::ClientContext> context;
    size_t start = 0;  // endpoint of the first attempt
    Store::TxnCallback done;
  };

  // Sends the txn to endpoint start+attempt through gRPC's callback API (no thread waits for
  // etcd; the answer arrives on a gRPC thread) and moves on to the next endpoint while they
  // answer UNAVAILABLE, as Call does.
  void StartTxn(std::shared_ptr<AsyncTxn> call, size_t attempt) {
    const size_t index = (call->start + attempt) % endpoints_.size();
    bool closing = false;
    {
      // Under the lock: ~Impl cancels the contexts of the calls in the set.
      std::lock_guard lock(async_mu_);
      closing = closing_;
      if (!closing) {
        call->context = std::make_unique<grpc::ClientContext>();
        call->context->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
        async_calls_.insert(call.get());
      }
    }
    if (closing) {
      call->done(absl::UnavailableError("store closed"));
      Release(std::move(call));  // a retry was still counted
      return;
    }
    call->response.Clear();
    AsyncTxn* raw = call.get();
    endpoints_[index].kv->async()->Txn(
        raw->context.get(), &raw->request, &raw->response,
        [this, call = std::move(call), attempt, index](grpc::Status status) mutable {
          if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
              attempt + 1 < endpoints_.size()) {
            StartTxn(std::move(call), attempt + 1);  // still in the set: ~Impl waits for it
            return;
          }
          if (status.ok()) {
            current_ = index;
            call->done(FromProto(call->response));
          } else {
            call->done(FromGrpc(status));
          }
          Release(std::move(call));
        });
  }
  // The call (and its ClientContext, which holds the gRPC call) is destroyed before ~Impl may
  // go on: a context that outlives the channels and the gRPC library aborts in gRPC's
  // refcounting ("prior > 0"), as the store contract test saw when a store was closed with
  // txns in flight.
  void Release(std::shared_ptr<AsyncTxn> call) {
    AsyncTxn* raw = call.get();
    call.reset();
    Forget(raw);
  }
  void Forget(AsyncTxn* call) {
    std::lock_guard lock(async_mu_);
    async_calls_.erase(call);
    if (async_calls_.empty()) async_cv_.notify_all();
  }

  void AddWatch(const std::shared_ptr<EtcdWatchState>& state) {
    std::lock_guard lock(watches_mu_);
    std::erase_if(watches_, [](const auto& weak) { return weak.expired(); });
    watches_.push_back(state);
  }

  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
  std::mutex async_mu_;
  std::condition_variable async_cv_;
  std::set<AsyncTxn*> async_calls_;
  bool closing_ = false;
  std::mutex watches_mu_;
  std::vector<std::weak_ptr<EtcdWatchState>> watches_;
  std::atomic<int64_t> known_compacted_{0};
};

EtcdStore::EtcdStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdStore::~EtcdStore() = default;

StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(const std::vector<std::string>& endpoints) {
  if (endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoints");
  auto impl = std::make_unique<Impl>(endpoints);
  auto probe = impl->Probe(0, kOpenTimeout);
  if (!probe.ok()) return probe.status();
  return std::unique_ptr<EtcdStore>(new EtcdStore(std::move(impl)));
}

StatusOr<RangeResult> EtcdStore::Range(const std::string& key, const RangeOptions& options) {
  etcdserverpb::RangeRequest request;
  request.set_key(key);
  request.set_range_end(options.end);
  request.set_limit(options.limit);
  request.set_revision(options.revision);
  request.set_keys_only(options.keys_only);
  request.set_count_only(options.count_only);
  PHOTON_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response,
                          impl_->RawRange(request, kCallTimeout));
  return FromProto(response, options.revision);
}

StatusOr<int64_t> EtcdStore::Put(const std::string& key, const std::string& value, int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  PHOTON_RETURN_IF_ERROR(impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    return e.kv->Put(&context, request, &response);
  }));
  return response.header().revision();
}

StatusOr<int64_t> EtcdStore::Delete(const std::string& key, const std::string& end) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  request.set_range_end(end);
  etcdserverpb::DeleteRangeResponse response;
  PHOTON_RETURN_IF_ERROR(impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    return e.kv->DeleteRange(&context, request, &response);
  }));
  return response.deleted();
}

StatusOr<TxnResult> EtcdStore::Txn(const TxnRequest& txn) {
  etcdserverpb::TxnRequest request;
  ToProto(txn, &request);
  etcdserverpb::TxnResponse response;
  PHOTON_RETURN_IF_ERROR(impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    return e.kv->Txn(&context, request, &response);
  }));
  return FromProto(response);
}

void EtcdStore::TxnAsync(TxnRequest txn, TxnCallback done) {
  auto call = std::make_shared<Impl::AsyncTxn>();
  ToProto(txn, &call->request);
  call->done = std::move(done);
  call->start = impl_->current_.load();
  impl_->StartTxn(std::move(call), 0);
}

StatusOr<LogPage> EtcdStore::ReadLogPage(const std::string& stream, const LogPageOptions& options) {
  if (stream.empty()) return absl::InvalidArgumentError("log stream is not provided");
  if (options.limit < 0) return absl::InvalidArgumentError("log: limit must be >= 0");
  if (!options.before.empty() &&
      (options.before.size() > 64 ||
       options.before.find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return absl::InvalidArgumentError("log: '" + options.before + "' is not a log position");
  }
  const std::string prefix = LogPrefix(stream);
  etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(options.before.empty() ? PrefixEnd(prefix) : prefix + options.before);
  request.set_limit(options.limit);
  request.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
  request.set_sort_target(etcdserverpb::RangeRequest::KEY);
  PHOTON_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response,
                          impl_->RawRange(request, kCallTimeout));
  LogPage page;
  page.records.reserve(response.kvs_size());
  for (int i = response.kvs_size() - 1; i >= 0; --i)
    page.records.push_back(response.kvs(i).value());
  if (response.more() && response.kvs_size() > 0) {
    page.next = response.kvs(response.kvs_size() - 1).key().substr(prefix.size());
  }
  return page;
}

StatusOr<int64_t> EtcdStore::TrimLog(const std::string& stream, const LogRetention& retention) {
  if (stream.empty()) return absl::InvalidArgumentError("log stream is not provided");
  if (retention.max_records < 0) return absl::InvalidArgumentError("log: max_records < 0");
  const std::string prefix = LogPrefix(stream);
  // Keys are named by their append time: the old ones sort before this.
  const std::string cutoff = retention.appended_before.time_since_epoch().count() > 0
                                 ? prefix + LogStamp(retention.appended_before)
                                 : std::string();
  int64_t excess = 0;  // oldest records beyond the newest max_records
  if (retention.max_records > 0) {
    PHOTON_ASSIGN_OR_RETURN(RangeResult all,
                            Range(prefix, {.end = PrefixEnd(prefix), .count_only = true}));
    excess = std::max<int64_t>(0, all.count - retention.max_records);
  }
  if (excess == 0 && cutoff.empty()) return 0;
  int64_t removed = 0;
  for (;;) {
    PHOTON_ASSIGN_OR_RETURN(
        RangeResult oldest,
        Range(prefix, {.end = PrefixEnd(prefix), .limit = kTrimChunk, .keys_only = true}));
    std::string last;
    size_t drop = 0;
    for (const auto& kv : oldest.kvs) {
      if (removed + static_cast<int64_t>(drop) >= excess && !(kv.key < cutoff)) break;
      last = kv.key;
      ++drop;
    }
    if (drop == 0) return removed;
    PHOTON_ASSIGN_OR_RETURN(int64_t deleted, Delete(prefix, last + std::string(1, '\0')));
    removed += deleted;
    if (drop < oldest.kvs.size() || !oldest.more) return removed;
  }
}

StatusOr<std::unique_ptr<WatchHandle>> EtcdStore::Watch(const std::string& key,
                                                        const std::string& end,
                                                        int64_t start_revision,
                                                        WatchCallback on_events,
                                                        WatchErrorCallback on_error) {
  if (key.empty()) return absl::InvalidArgumentError("key is not provided");
  if (start_revision > 0) {
    // etcd reports a compacted start only later on the stream; a read at the start revision
    // tells now, so the caller gets the error from Watch() itself. A future revision is fine.
    auto probe = impl_->Probe(start_revision);
    if (!probe.ok() && IsCompactedError(probe.status())) return probe.status();
  }
  etcdserverpb::WatchRequest request;
  auto* create = request.mutable_create_request();
  create->set_key(key);
  create->set_range_end(end);
  create->set_start_revision(start_revision);
  Status last = absl::UnavailableError("etcd: no endpoint");
  size_t start = impl_->current_.load();
  for (size_t i = 0; i < impl_->endpoints_.size(); ++i) {
    size_t index = (start + i) % impl_->endpoints_.size();
    auto context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<WatchStream> stream = impl_->endpoints_[index].watch->Watch(context.get());
    etcdserverpb::WatchResponse response;
    if (!stream->Write(request) || !stream->Read(&response)) {
      context->TryCancel();
      while (stream->Read(&response)) {
      }
      last = FromGrpc(stream->Finish());
      if (last.ok()) last = absl::UnavailableError("etcd: watch stream closed");
      continue;
    }
    if (response.compact_revision() > 0 || response.canceled()) {
      context->TryCancel();
      while (stream->Read(&response)) {
      }
      (void)stream->Finish();
      if (response.compact_revision() > 0) {
        return absl::OutOfRangeError("etcd: mvcc: required revision has been compacted");
      }
      return absl::InvalidArgumentError("etcd: watch refused: " + response.cancel_reason());
    }
    impl_->current_ = index;
    auto state = std::make_shared<EtcdWatchState>();
    state->context = std::move(context);
    state->stream = std::move(stream);
    state->request = request;
    // From "now" (0): after the revision the watch was created at.
    state->next_revision = start_revision > 0 ? start_revision : response.header().revision() + 1;
    for (const auto& e : impl_->endpoints_) state->channels.push_back(e.channel);
    state->endpoint = index;
    state->on_events = std::move(on_events);
    state->on_error = std::move(on_error);
    impl_->AddWatch(state);
    return std::unique_ptr<WatchHandle>(new EtcdWatchHandle(std::move(state)));
  }
  return last;
}

Status EtcdStore::Compact(int64_t revision) {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  // Physical: return only once the history is gone, so reads right after agree.
  request.set_physical(true);
  etcdserverpb::CompactionResponse response;
  PHOTON_RETURN_IF_ERROR(impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    return e.kv->Compact(&context, request, &response);
  }));
  int64_t known = impl_->known_compacted_.load();
  while (known < revision && !impl_->known_compacted_.compare_exchange_weak(known, revision)) {
  }
  return absl::OkStatus();
}

StatusOr<int64_t> EtcdStore::CurrentRevision() {
  PHOTON_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, impl_->Probe(0));
  return response.header().revision();
}

StatusOr<int64_t> EtcdStore::CompactedRevision() {
  PHOTON_ASSIGN_OR_RETURN(int64_t current, CurrentRevision());
  // Reads fail exactly below the compaction point: find the lowest readable revision.
  int64_t low = std::max<int64_t>(impl_->known_compacted_.load(), 1);
  int64_t high = current;
  auto readable = [&](int64_t revision) -> StatusOr<bool> {
    auto probe = impl_->Probe(revision);
    if (probe.ok()) return true;
    if (IsCompactedError(probe.status())) return false;
    return probe.status();
  };
  PHOTON_ASSIGN_OR_RETURN(bool low_ok, readable(low));
  if (low_ok) return low == 1 ? impl_->known_compacted_.load() : low;
  while (high - low > 1) {
    int64_t mid = low + (high - low) / 2;
    PHOTON_ASSIGN_OR_RETURN(bool ok, readable(mid));
    if (ok) {
      high = mid;
    } else {
      low = mid;
    }
  }
  int64_t known = impl_->known_compacted_.load();
  while (known < high && !impl_->known_compacted_.compare_exchange_weak(known, high)) {
  }
  return high;
}

StatusOr<int64_t> EtcdStore::GrantLease(int64_t ttl_seconds) {
  // etcd would silently raise it to its minimum; refuse it as the SQLite backend does.
  if (ttl_seconds <= 0) return absl::InvalidArgumentError("lease TTL must be positive");
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse response;
  PHOTON_RETURN_IF_ERROR(impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    return e.lease->LeaseGrant(&context, request, &response);
  }));
  if (!response.error().empty()) return absl::InternalError("etcd: " + response.error());
  return response.id();
}

Status EtcdStore::KeepAlive(int64_t lease) {
  etcdserverpb::LeaseKeepAliveResponse response;
  PHOTON_RETURN_IF_ERROR(impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    auto stream = e.lease->LeaseKeepAlive(&context);
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(lease);
    if (!stream->Write(request) || !stream->Read(&response)) {
      context.TryCancel();
      grpc::Status status = stream->Finish();
      return status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "keepalive stream closed")
                         : status;
    }
    stream->WritesDone();
    return stream->Finish();
  }));
  if (response.ttl() <= 0) return absl::NotFoundError("etcd: requested lease not found");
  return absl::OkStatus();
}

Status EtcdStore::RevokeLease(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  return impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    return e.lease->LeaseRevoke(&context, request, &response);
  });
}

StatusOr<int64_t> EtcdStore::LeaseTimeToLive(int64_t lease) {
  etcdserverpb::LeaseTimeToLiveRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseTimeToLiveResponse response;
  PHOTON_RETURN_IF_ERROR(impl_->Call([&](Impl::Endpoint& e, grpc::ClientContext& context) {
    return e.lease->LeaseTimeToLive(&context, request, &response);
  }));
  if (response.ttl() <= 0) return absl::NotFoundError("etcd: requested lease not found");
  return response.ttl();
}

}  // namespace photon::store

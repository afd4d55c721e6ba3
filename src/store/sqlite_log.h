// The append-only logs of SqliteStore (TxnOp::kAppend): table `log(seq, stream, value, at)`,
// where seq (the rowid) is append order and `at` the writer's wall clock in Unix nanoseconds.
// Each function works on the connection it is given (one thread at a time); the writes run on
// the store's writer connection inside its transaction.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "store/sqlite_db.h"
#include "store/store.h"

namespace photon::store::sqlite {

// Data dirs from before records had a time get the column; their records count as appended
// `now` (kept one whole retention period rather than dropped as ancient).
Status MigrateLogTime(SqliteDb& db, int64_t now_nanos);
Status AppendLog(SqliteDb& db, const std::string& stream, const std::string& value,
                 int64_t at_nanos);
StatusOr<LogPage> ReadLogPage(SqliteDb& db, const std::string& stream,
                              const LogPageOptions& options);
// The seq of the newest record beyond the newest `max_records` (it and every older one go by
// count); 0 when the log holds no more than that.
StatusOr<int64_t> CountBoundary(SqliteDb& db, const std::string& stream, int64_t max_records);
// Removes at most `chunk` of the oldest records that have seq <= upto_seq or at < cutoff,
// stopping at the first that has neither. Returns how many went.
StatusOr<int64_t> TrimLogChunk(SqliteDb& db, const std::string& stream, int64_t upto_seq,
                               int64_t cutoff_nanos, int64_t chunk);

}  // namespace photon::store::sqlite

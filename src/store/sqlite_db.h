// The store's SQLite wrapper is the project's one, common/sqlite_db.h; these names keep the
// store's code spelling it store::SqliteDb.
#pragma once

#include "common/sqlite_db.h"

namespace photon::store {

using photon::SqliteDb;
using photon::SqliteError;
using photon::SqliteStmt;

}  // namespace photon::store

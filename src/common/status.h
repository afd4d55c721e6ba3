// The one error type of PhotonCloud: absl::Status / absl::StatusOr<T>.
// Its codes map one to one onto gRPC codes and onto HTTP statuses (below), so a failure keeps
// its meaning from the store up to whichever transport answers the client.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace photon {

using absl::Status;
using absl::StatusCode;
using absl::StatusOr;

// HTTP status for a Status code (OK → 200; callers pick 201/202 themselves).
int HttpStatusFromCode(StatusCode code);

// Canonical upper-case name ("NOT_FOUND") used in JSON error bodies.
std::string StatusCodeName(StatusCode code);

// Evaluates an expression that returns Status and returns it from the caller when not OK.
#define PHOTON_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status photon_status_ = (expr);          \
    if (!photon_status_.ok()) return photon_status_; \
  } while (0)

#define PHOTON_CONCAT_INNER(a, b) a##b
#define PHOTON_CONCAT(a, b) PHOTON_CONCAT_INNER(a, b)
// Assigns the value of a StatusOr expression to lhs or returns its error from the caller.
#define PHOTON_ASSIGN_OR_RETURN(lhs, expr) \
  PHOTON_ASSIGN_OR_RETURN_IMPL(PHOTON_CONCAT(photon_or_, __LINE__), lhs, expr)
#define PHOTON_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

}  // namespace photon

// The explicit list of providers compiled into photon-agent. A new driver adds one line to
// RegisterBuiltinProviders (static self-registration is silently dropped by static libraries).
// Thread-safety: call once at start-up, before the registry is shared.
#pragma once

#include "agent/provider.h"

namespace photon::agent {

void RegisterBuiltinProviders(ProviderRegistry* registry);

}  // namespace photon::agent

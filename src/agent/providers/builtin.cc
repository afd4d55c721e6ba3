// The built-in providers, one line each.
#include "agent/providers/builtin.h"

#include <memory>

#include "agent/providers/container/container_provider.h"
#include "agent/providers/process/process_provider.h"
#include "agent/providers/vm/vm_provider.h"

namespace photon::agent {

void RegisterBuiltinProviders(ProviderRegistry* registry) {
  registry->Register(std::make_unique<ProcessProvider>());
  registry->Register(std::make_unique<ContainerProvider>());
  registry->Register(std::make_unique<VmProvider>());
}

}  // namespace photon::agent

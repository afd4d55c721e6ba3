#!/usr/bin/env bash
# The multi-host network test bed for a user: three hosts (network namespaces with BIRD2) and a
# rack router under one underlay bridge. See tests/net/README.md.
#   sudo scripts/netbed.sh up demo        # PFX-h1..h3, PFX-r, PFX-ul
#   sudo scripts/netbed.sh exec demo h1 ip route
#   sudo scripts/netbed.sh bird demo r show route
#   sudo scripts/netbed.sh down demo
set -euo pipefail
exec "$(dirname "$0")/../tests/net/netbed.sh" "$@"

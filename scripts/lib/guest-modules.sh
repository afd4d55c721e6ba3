# Sourced by the scripts that build test guests (make-vm-image.sh, make-powerloss-image.sh).
# stage_modules STAGE MODDIR KVER MODULE...: copies the kernel modules named (with the modules
# they depend on) from MODDIR into STAGE/lib/modules/KVER, and writes the modules.dep of what
# was copied there (modules.dep lists paths relative to MODDIR). A module built into the kernel
# is skipped.
stage_modules() {
  local stage="$1" moddir="$2" kver="$3" m
  shift 3
  declare -A _staged=()
  _stage_module() {
    local name="$1" line path dep
    line="$(grep -E "(^|/)${name}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n 1 || true)"
    [ -n "$line" ] || return 0
    path="${line%%:*}"
    [ -z "${_staged[$path]:-}" ] || return 0
    _staged[$path]=1
    mkdir -p "$stage/lib/modules/$kver/$(dirname "$path")"
    cp "$moddir/$path" "$stage/lib/modules/$kver/$path"
    for dep in ${line#*:}; do
      dep="$(basename "$dep")"
      _stage_module "${dep%%.ko*}"
    done
  }
  for m in "$@"; do _stage_module "$m"; done
  (cd "$stage/lib/modules/$kver" && find . -name '*.ko*' | sed 's|^\./||' | while read -r p; do
    grep -E "^${p}:" "$moddir/modules.dep" || true
  done > modules.dep)
}

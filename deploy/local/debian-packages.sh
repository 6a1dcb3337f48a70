# Sourced by the install scripts: `ensure_debian_packages PKG...` installs
# the Debian packages among PKG that are missing (apt-get, as root or
# through sudo), logging through the caller's `log`. Returns 1 where there
# is no dpkg (not Debian): the caller then checks for its tools itself.
ensure_debian_packages() {
    command -v dpkg-query >/dev/null 2>&1 || return 1
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
        sudo=(sudo)
    fi
    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

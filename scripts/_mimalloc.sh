# Sourced by scripts/run and scripts/test: the allocator the gateway's
# launchers preload (docs/architecture.md, "The allocator").
#   mimallocInstalled   true when the loader finds libmimalloc.so.2
#   ensureMimalloc      as root, install Debian's libmimalloc2.0 when missing
#                       (refreshing the package lists only if needed)
mimallocInstalled() { /sbin/ldconfig -p 2>/dev/null | grep -q 'libmimalloc\.so\.2 '; }
ensureMimalloc() {
    if ! mimallocInstalled && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmimalloc2.0 \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmimalloc2.0; }
    fi
}

#!/usr/bin/env bash
# Installs the Debian packages whittle's tests and examples need, once.
# Idempotent and quiet when everything is already there. Never starts services.
set -euo pipefail
# slirp4netns and passt (pasta): the isolated network of RUN steps; the tests drive both.
# uidmap: newuidmap/newgidmap, the subordinate ids of rootless builds (tests/rootless.rs).
# chromium: renders `whittle analyze --format html` headless in the HTML test.
# qemu-user-static: emulated RUN steps and `whittle run` of arm64/arm images (the tests register
# its interpreters with `whittle binfmt --install`), and the foreign busybox images.
PKGS=(busybox-static skopeo umoci jq runc pigz zstd debootstrap docker-registry apache2-utils openssl
      slirp4netns passt uidmap chromium qemu-user-static)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
# Package scripts must not start daemons on this machine.
own_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d; own_policy=1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -n "$own_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
exit 0

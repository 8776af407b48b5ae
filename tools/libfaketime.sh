#!/usr/bin/env bash
# Debian's libfaketime, fixed for Python 3.11 and built once into the cache; prints the library's path.
#
# The chaos run steps one node's wall clock at a time (tools/chaos_faults.py: clock_step) with libfaketime,
# leaving its monotonic clock alone, as NTP stepping a real machine's clock does (FAKETIME_DONT_FAKE_MONOTONIC=1).
# Debian bookworm's libfaketime 0.9.10 breaks exactly that for Python 3.11: time.sleep() calls
# clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), which the library shifts by the faked clock's start even when
# the monotonic clock is not faked, and the kernel answers EINVAL (wolfcw/libfaketime#426). The fix is upstream's
# one line: shift a monotonic deadline only when the monotonic clock is faked. So this fetches the package's
# source with apt (a deb-src list of its own, nothing in /etc changed), applies that line, and builds the library.
#
#     tools/libfaketime.sh            # -> ~/.cache/cnet/libfaketime-0.9.10-2.1-fixed/libfaketime.so.1
set -euo pipefail

VERSION=0.9.10-2.1
CACHE="${CNET_CACHE_DIR:-$HOME/.cache/cnet}/libfaketime-$VERSION-fixed"
LIBRARY="$CACHE/libfaketime.so.1"
if [ -f "$LIBRARY" ]; then
    echo "$LIBRARY"
    exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/parts"
cat > "$WORK/parts/source.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
APT=(apt-get -qq -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$WORK/parts"
     -o "Dir::State::Lists=$WORK/lists" -o APT::Sandbox::User=root)
"${APT[@]}" update >/dev/null
(cd "$WORK" && "${APT[@]}" source --download-only "libfaketime=$VERSION" >/dev/null)
tar -xzf "$WORK"/faketime_*.orig.tar.gz -C "$WORK"
SOURCE=$(echo "$WORK"/libfaketime-*/src/libfaketime.c)
sed -i 's/^      else if (clock_id == CLOCK_MONOTONIC)$/      else if (clock_id == CLOCK_MONOTONIC \&\& fake_monotonic_clock)/' "$SOURCE"
grep -q 'CLOCK_MONOTONIC && fake_monotonic_clock)$' "$SOURCE" || { echo "libfaketime.sh: the fix did not apply" >&2; exit 1; }
make -s -C "$(dirname "$SOURCE")" libfaketime.so.1 >/dev/null 2>&1
mkdir -p "$CACHE"
cp "$(dirname "$SOURCE")/libfaketime.so.1" "$LIBRARY.partial"
mv "$LIBRARY.partial" "$LIBRARY"
echo "$LIBRARY"

#!/usr/bin/env bash
# The self-contained release build that the fleet pushes to hosts and the .deb that installs it
# (the binary, the man page, bash/zsh/fish completions, the recipe, the Ansible collection).
#
#   scripts/dist.sh [OUTDIR]      (default: dist/; OUTDIR/provision, OUTDIR/man, OUTDIR/completions, the .deb)
#
# The Swift runtime and Foundation are linked statically (--static-swift-stdlib), and so are libgit2,
# libarchive and libxml2 with everything they pull in (mbedTLS, libssh2, OpenSSL's libcrypto, zlib,
# xz, zstd, lz4, bzip2, nettle, acl, pcre2, ICU): `ldd` of the result lists only glibc's own libraries.
# libcurl is not linked at all: `rom.fetch` loads the host's libcurl with dlopen when it downloads.
#
# How the C libraries become static without touching Package.swift: SwiftPM links them as -lgit2,
# -larchive, -lxml2 with the -L their pkg-config files give; copies of those .pc files point libdir
# at a staging directory that holds, under those names, GNU ld scripts that GROUP the Debian .a
# archives with their dependencies, so ld resolves the references between them and never sees
# the shared objects.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
scripts/install-deps.sh
export DEBIAN_FRONTEND=noninteractive
need=()
for package in libacl1-dev libzstd-dev liblz4-dev libssh2-1-dev libmbedtls-dev libhttp-parser-dev libpcre2-dev libicu-dev \
  libnettle8 nettle-dev liblzma-dev libbz2-dev zlib1g-dev libssl-dev libgpg-error-dev dpkg-dev; do
  dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
done
if [ ${#need[@]} -gt 0 ]; then apt-get install -y -q "${need[@]}" >/dev/null; fi

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=/usr/lib/$multiarch
stage=$(mktemp -d /tmp/provision-static-XXXXXX)
trap 'rm -rf "$stage"' EXIT
group() { # NAME ARCHIVE... : a linker script named libNAME.a grouping the archives (glibc's -l kept)
  local name=$1 entry entries=()
  shift
  for entry in "$@"; do
    case $entry in
      -l*) entries+=("$entry") ;;
      /*) entries+=("$entry") ;;
      *) [ -f "$libdir/lib$entry.a" ] || { echo "dist.sh: $libdir/lib$entry.a is missing" >&2; exit 1; }
         entries+=("$libdir/lib$entry.a") ;;
    esac
  done
  echo "GROUP ( ${entries[*]} )" >"$stage/lib$name.a"
}
compression=(lzma zstd lz4 bz2 z)
icu=(icui18n icuuc icudata)
cc -O2 -fPIC -c scripts/dist/no-gssapi.c -o "$stage/no-gssapi.o"
ar rcs "$stage/libprovision-no-gssapi.a" "$stage/no-gssapi.o"
cc -O2 -fPIC -c scripts/dist/glibc-compat.c -o "$stage/glibc-compat.o"
cc -O2 -fPIC -c scripts/dist/no-libgit2-tls.c -o "$stage/no-libgit2-tls.o"
group git2 git2 mbedtls mbedx509 mbedcrypto http_parser ssh2 ssl crypto gpg-error pcre2-8 z "$stage/libprovision-no-gssapi.a" -lrt -ldl -lpthread
group archive archive nettle acl xml2 "${icu[@]}" crypto "${compression[@]}" -lstdc++ -lm
group xml2 xml2 "${icu[@]}" lzma z -lstdc++ -lm

# The C++ runtime (ICU and Swift's runtime need it) the same way: the driver's -lstdc++ and
# -lgcc_s find these scripts first, naming GCC's static archives.
gcclib=$(dirname "$(cc -print-libgcc-file-name)")
echo "GROUP ( $gcclib/libstdc++.a )" >"$stage/libstdc++.a"
echo "GROUP ( $gcclib/libgcc_eh.a $gcclib/libgcc.a )" >"$stage/libgcc_s.a"
mkdir -p "$stage/pkgconfig"
for pc in libgit2 libarchive libxml-2.0; do
  sed "s|^libdir=.*|libdir=$stage|" "$(pkg-config --variable=pcfiledir "$pc")/$pc.pc" >"$stage/pkgconfig/$pc.pc"
done
export PKG_CONFIG_PATH="$stage/pkgconfig"

build=.build-dist
# PROVISION_DIST_SYMBOLS=1 keeps the symbols (for profiling with perf or callgrind).
strip=(-Xlinker -s)
# libgit2's TLS left out (scripts/dist/no-libgit2-tls.c): no CA bundle parsed at every start.
wrap=()
for symbol in git_mbedtls_stream_global_init git_mbedtls_stream_new git_mbedtls_stream_wrap git_mbedtls__set_cert_location; do
  wrap+=(-Xlinker "--wrap=$symbol")
done
[ "${PROVISION_DIST_SYMBOLS:-0}" = 1 ] && strip=()
swift build -c release --product provision --scratch-path "$build" --static-swift-stdlib \
  -Xlinker "$stage/glibc-compat.o" -Xlinker "$stage/no-libgit2-tls.o" "${wrap[@]}" -Xlinker --gc-sections "${strip[@]}" -Xlinker --no-pie
binary=$build/release/provision
version=$("$binary" --version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
hash=$(sha256sum "$binary" | cut -c1-12)

if ldd "$binary" | grep -vE '^\s*(linux-vdso|/lib64/ld-linux|lib(c|m|dl|rt|pthread|util|resolv)\.so)' | grep -q .; then
  echo "dist.sh: $binary still links libraries outside glibc:" >&2
  ldd "$binary" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
cp "$binary" "$out/provision"
docs=$(mktemp -d /tmp/provision-docs-XXXXXX)
scripts/make-docs.sh "$docs" "$out/provision" >/dev/null
cp -a "$docs/man" "$docs/completions" "$out/"

# The .deb: the binary, the man page and the completions where Debian's tools look for them.
package=$(mktemp -d /tmp/provision-deb-XXXXXX)
install -D -m 0755 "$out/provision" "$package/usr/bin/provision"
install -D -m 0644 "$docs/man/man1/provision.1" "$package/usr/share/man/man1/provision.1"
gzip -9n "$package/usr/share/man/man1/provision.1"
install -D -m 0644 "$docs/completions/bash/provision" "$package/usr/share/bash-completion/completions/provision"
install -D -m 0644 "$docs/completions/zsh/_provision" "$package/usr/share/zsh/vendor-completions/_provision"
install -D -m 0644 "$docs/completions/fish/provision.fish" "$package/usr/share/fish/vendor_completions.d/provision.fish"
install -d "$package/usr/share/provision" && cp -a contrib/ansible "$package/usr/share/provision/ansible"
install -D -m 0644 recipes/vfio-passthrough.yaml "$package/usr/share/provision/recipes/vfio-passthrough.yaml"
glibc=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | cut -d_ -f2)
mkdir -p "$package/DEBIAN"
cat >"$package/DEBIAN/control" <<CONTROL
Package: provision
Version: $version
Architecture: $arch
Maintainer: provision developers <provision@localhost>
Depends: libc6 (>= $glibc)
Recommends: libcurl4 | libcurl3-gnutls, git
Section: admin
Priority: optional
Description: VFIO GPU passthrough hosts, set up from recipes and rolled back from a git history
 A self-contained build: the Swift runtime, libgit2, libarchive and libxml2 are linked in.
CONTROL
dpkg-deb --root-owner-group -Zzstd --build "$package" "$out/provision_${version}_$arch.deb" >/dev/null
rm -rf "$package" "$docs"

echo "binary:  $out/provision ($(stat -c %s "$out/provision") bytes, sha256 $hash…, needs glibc >= $glibc)"
echo "package: $out/provision_${version}_$arch.deb ($(stat -c %s "$out/provision_${version}_$arch.deb") bytes)"
echo "ldd:"
ldd "$out/provision" | sed 's/^/  /'

#!/bin/sh
# Install the build into a scratch prefix and build a consumer three ways:
# pkg-config vmem, pkg-config vmem-debug, and CMake's find_package(vmem).
# usage: check.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
prefix=$(mktemp -d /tmp/vmem-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n 1)
export PKG_CONFIG_PATH=$libdir
cc=${CC:-cc}
for pc in vmem vmem-debug; do
	# shellcheck disable=SC2046
	$cc -o "$prefix/consumer-$pc" "$src/consumer.c" $(pkg-config --cflags --libs $pc)
	LD_LIBRARY_PATH=$(dirname "$libdir") "$prefix/consumer-$pc"
done
cmake -S "$src" -B "$prefix/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/cmake-build" >/dev/null
LD_LIBRARY_PATH=$(dirname "$libdir") "$prefix/cmake-build/consumer"
echo "install check passed"

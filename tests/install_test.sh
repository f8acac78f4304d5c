#!/bin/sh
# Installs the current build tree into a temporary prefix and builds examples/example.c
# against the INSTALLED library, the ways a user would:
#   1. pkg-config, shared:  cc example.c $(pkg-config --cflags --libs alloy)
#   2. pkg-config, static:  cc example.c $(pkg-config --cflags alloy) \
#                              $(pkg-config --static --libs alloy), liballoy.a chosen
#   3. CMake, find_package(alloy) (tests/install/CMakeLists.txt): alloy::alloy (static)
#      and alloy::alloy_shared
# and runs each program. Every step is tried; the script fails if any failed.
#
# usage: install_test.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC] [GENERATOR]
# ALLOY_TEST_CFLAGS and ALLOY_TEST_LDFLAGS (e.g. the build's -fsanitize=...) are added to
# every compile and link of the example, so an instrumented library links.
set -u

build_dir=${1:?usage: install_test.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC] [GENERATOR]}
src_dir=${2:?usage: install_test.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC] [GENERATOR]}
cmake=${3:-cmake}
cc=${4:-cc}
generator=${5:-}
example="$src_dir/examples/example.c"
xcflags=${ALLOY_TEST_CFLAGS:-}
xldflags=${ALLOY_TEST_LDFLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/alloy-install-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix="$tmp/prefix"
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# A directory's physical path (the path itself when it does not exist).
canon() {
    (cd "$1" 2>/dev/null && pwd -P) || echo "$1"
}

# Runs an example program; it must exit 0 and print its "ok" line.
run_example() {
    what=$1
    shift
    if out=$("$@" 2>&1); then
        case $out in
        *" example: "*" ok"*) echo "ok: $what: $out" ;;
        *) fail "$what: unexpected output: $out" ;;
        esac
    else
        fail "$what: exited with $?: $out"
    fi
}

echo "== cmake --install $build_dir --prefix $prefix"
if ! "$cmake" --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    echo "FAIL: cmake --install failed" >&2
    exit 1
fi
for f in include/alloy.h; do
    [ -f "$prefix/$f" ] || fail "$f was not installed"
done

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build_dir/CMakeCache.txt" | head -n 1)

# ---------------------------------------------------------------- pkg-config
pc=$(find "$prefix" -name alloy.pc | head -n 1)
if [ -z "$pc" ]; then
    fail "no alloy.pc was installed"
elif ! command -v pkg-config >/dev/null 2>&1; then
    fail "pkg-config is not installed"
else
    PKG_CONFIG_PATH=$(dirname "$pc")
    export PKG_CONFIG_PATH
    echo "== pkg-config with PKG_CONFIG_PATH=$PKG_CONFIG_PATH"
    pc_prefix=$(pkg-config --variable=prefix alloy)
    if [ "$(canon "$pc_prefix")" != "$(canon "$prefix")" ]; then
        fail "alloy.pc is not relocatable: it says prefix=$pc_prefix, but it was installed" \
            "under $prefix (cmake --install --prefix); its -I and -L point elsewhere"
    fi
    pc_version=$(pkg-config --modversion alloy)
    [ -z "$version" ] || [ "$pc_version" = "$version" ] ||
        fail "alloy.pc says version $pc_version, the build is $version"
    cflags=$(pkg-config --cflags alloy)
    libs=$(pkg-config --libs alloy)
    libdir=$(pkg-config --variable=libdir alloy)
    echo "   cflags: $cflags"
    echo "   libs:   $libs"
    echo "   static: $(pkg-config --static --libs alloy)"

    # 1. shared
    # shellcheck disable=SC2086
    if $cc -std=c11 -Wall -Wextra -Werror $xcflags "$example" $cflags $libs $xldflags \
        -Wl,-rpath,"$libdir" \
        -o "$tmp/example_pc_shared" >"$tmp/pc_shared.log" 2>&1; then
        run_example "pkg-config, shared" "$tmp/example_pc_shared"
        if command -v readelf >/dev/null 2>&1 &&
            ! readelf -d "$tmp/example_pc_shared" | grep -q 'NEEDED.*liballoy\.so'; then
            fail "pkg-config, shared: the program does not need liballoy.so"
        fi
    else
        cat "$tmp/pc_shared.log" >&2
        fail "pkg-config, shared: the example did not build"
    fi

    # 2. static: Libs.private must bring what liballoy.a needs (-lpthread -ldl -lm)
    static_libs=
    for w in $(pkg-config --static --libs alloy); do
        if [ "$w" = "-lalloy" ]; then
            static_libs="$static_libs -Wl,-Bstatic -lalloy -Wl,-Bdynamic"
        else
            static_libs="$static_libs $w"
        fi
    done
    # shellcheck disable=SC2086
    if $cc -std=c11 -Wall -Wextra -Werror $xcflags "$example" $cflags $static_libs $xldflags \
        -o "$tmp/example_pc_static" >"$tmp/pc_static.log" 2>&1; then
        run_example "pkg-config, static" env LD_LIBRARY_PATH= "$tmp/example_pc_static"
        if command -v readelf >/dev/null 2>&1 &&
            readelf -d "$tmp/example_pc_static" | grep -q 'NEEDED.*liballoy'; then
            fail "pkg-config, static: the program still needs a shared liballoy"
        fi
    else
        cat "$tmp/pc_static.log" >&2
        fail "pkg-config, static: the example did not build"
    fi
fi

# ---------------------------------------------------------------- CMake package
echo "== find_package(alloy) with CMAKE_PREFIX_PATH=$prefix"
set -- -S "$src_dir/tests/install" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DALLOY_EXAMPLE_SOURCE="$example" \
    -DALLOY_EXPECTED_PREFIX="$prefix" -DALLOY_EXPECTED_VERSION="$version" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$xcflags" -DCMAKE_EXE_LINKER_FLAGS="$xldflags"
if [ -n "$generator" ]; then
    set -- "$@" -G "$generator"
fi
if "$cmake" "$@" >"$tmp/cmake-configure.log" 2>&1 &&
    "$cmake" --build "$tmp/cmake-build" >"$tmp/cmake-build.log" 2>&1; then
    grep 'alloy .* found in' "$tmp/cmake-configure.log" | sed 's/^-- /   /'
    run_example "find_package, alloy::alloy" env LD_LIBRARY_PATH= "$tmp/cmake-build/example_static"
    run_example "find_package, alloy::alloy_shared" "$tmp/cmake-build/example_shared"
else
    cat "$tmp/cmake-configure.log" "$tmp/cmake-build.log" >&2 2>/dev/null
    fail "find_package: the example did not configure or build"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures install check(s) failed" >&2
    exit 1
fi
echo "all install checks passed"

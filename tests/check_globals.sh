#!/bin/sh
# The no-writable-globals rule (DESIGN.md, threading contract 1): liballoy.a may hold no
# writable global or static data. `objdump -t` must show no object symbol ("O" flag)
# outside .rodata*, .data.rel.ro* (const tables of pointers) and thread-local storage
# (.tdata*, .tbss*); COMMON symbols (*COM*) count as writable. As a second net for data
# without a symbol, `objdump -h` must show no non-empty .data*/.bss* section other than
# .data.rel.ro*.
#
# Sanitizer builds add writable data of their own: AddressSanitizer global descriptors
# (.data.rel.local) and one-byte __odr_asan.* indicators (.bss); UndefinedBehaviorSanitizer
# source locations (__unnamed_* in .data). When the archive references __asan_* (or
# __ubsan_*), those symbols are exempt and the section check is skipped; the symbol check
# still runs. A ThreadSanitizer build needs no exemption.
#
# Works with GNU objdump and llvm-objdump (CMake's CMAKE_OBJDUMP for clang builds).
#
# usage: check_globals.sh LIBRARY.a           check a library (objdump from $OBJDUMP)
#        check_globals.sh --self-test CC      show that the check catches writable data
set -u
objdump=${OBJDUMP:-objdump}

# Prints offending symbols and sections of archive $1; returns 1 when there are any,
# 2 when the archive could not be read or has no symbols at all.
check() {
    lib=$1
    syms=$(mktemp) || return 2
    heads=$(mktemp) || return 2
    if ! "$objdump" -t "$lib" >"$syms" 2>&1 || ! "$objdump" -h "$lib" >"$heads" 2>&1; then
        cat "$syms" "$heads" >&2
        rm -f "$syms" "$heads"
        echo "check_globals: $objdump cannot read $lib" >&2
        return 2
    fi
    asan=0
    ubsan=0
    grep -q '__asan_' "$syms" && asan=1
    grep -q '__ubsan_' "$syms" && ubsan=1
    if [ "$asan$ubsan" != 00 ]; then
        echo "check_globals: $lib is sanitizer-instrumented (asan $asan, ubsan $ubsan): the" \
            "sanitizers' own symbols are exempt and the section check is skipped" >&2
    fi
    awk -v lib="$lib" -v asan="$asan" -v ubsan="$ubsan" '
        # GNU: "member.o:     file format elf64-x86-64"
        # LLVM: "lib.a(member.o):<TAB>file format elf64-x86-64"
        /[ \t]file format / {
            obj = $0
            sub(/:[ \t]+file format.*/, "", obj)
            if (match(obj, /\([^()]*\)$/))
                obj = substr(obj, RSTART + 1, RLENGTH - 2)
            next
        }
        # symbol lines: ADDRESS FLAGS(7 chars) SECTION<TAB>SIZE NAME
        match($0, /^[0-9a-fA-F]+ /) {
            flags = substr($0, RLENGTH + 1, 7)
            rest = substr($0, RLENGTH + 9)
            tab = index(rest, "\t")
            if (tab == 0) next
            sec = substr(rest, 1, tab - 1)
            nsym++
            if (index(flags, "O") == 0) next
            nobj++
            if (sec ~ /^\.rodata/ || sec ~ /^\.data\.rel\.ro/ || sec ~ /^\.tdata/ || sec ~ /^\.tbss/)
                next
            n = split(rest, f, /[ \t]+/)
            if (asan && f[n] ~ /^(__odr_asan|__asan|___asan)/)
                next
            if (ubsan && f[n] ~ /^__unnamed_[0-9]+$/)
                next
            printf "writable object: %s: %s in section %s\n", obj, f[n], sec
            bad++
        }
        END {
            if (nsym == 0) { printf "check_globals: no symbols in %s\n", lib; exit 2 }
            printf "check_globals: %d symbols, %d objects checked in %s\n", nsym, nobj, lib > "/dev/stderr"
            exit bad ? 1 : 0
        }' "$syms"
    rc=$?
    awk -v san="$asan$ubsan" '
        san != "00" { exit 0 }
        /[ \t]file format / {
            obj = $0
            sub(/:[ \t]+file format.*/, "", obj)
            if (match(obj, /\([^()]*\)$/))
                obj = substr(obj, RSTART + 1, RLENGTH - 2)
            next
        }
        # section lines, GNU: IDX NAME SIZE VMA LMA FILEOFF ALIGN; LLVM: IDX NAME SIZE VMA [TYPE]
        $1 ~ /^[0-9]+$/ && NF >= 4 && $3 ~ /^[0-9a-fA-F]+$/ {
            name = $2
            if (name !~ /^\.(data|bss)/ || name ~ /^\.data\.rel\.ro/) next
            if ($3 ~ /^0+$/) next
            printf "writable section: %s: %s has 0x%s bytes\n", obj, name, $3
            bad++
        }
        END { exit bad ? 1 : 0 }' "$heads"
    rc2=$?
    rm -f "$syms" "$heads"
    [ "$rc" -ne 0 ] && return "$rc"
    return "$rc2"
}

if [ "${1:-}" = "--self-test" ]; then
    cc=${2:?usage: check_globals.sh --self-test CC}
    dir=$(mktemp -d) || exit 1
    trap 'rm -rf "$dir"' EXIT INT TERM
    cat >"$dir/bad.c" <<'EOF'
static int counter;                  /* .bss */
int initialized = 1;                 /* .data */
int common_one;                      /* COMMON with -fcommon */
int bump(void) { static int calls = 5; return ++counter + ++calls + initialized + common_one; }
EOF
    cat >"$dir/good.c" <<'EOF'
static const int table[4] = {1, 2, 3, 4};                 /* .rodata */
static const char *const names[2] = {"a", "b"};           /* .data.rel.ro */
static _Thread_local char last[64];                       /* .tbss */
static _Thread_local int seeded = 3;                      /* .tdata */
const char *pick(int i) { last[0] = (char)i; return names[i & 1] + table[i & 3] * 0 + seeded * 0; }
EOF
    ok=1
    if ! "$cc" -c -fPIC -fcommon -O2 "$dir/bad.c" -o "$dir/bad.o" ||
        ! "$cc" -c -fPIC -O2 "$dir/good.c" -o "$dir/good.o"; then
        echo "check_globals --self-test: cannot compile with $cc" >&2
        exit 1
    fi
    ar rcs "$dir/libbad.a" "$dir/bad.o" "$dir/good.o" && ar rcs "$dir/libgood.a" "$dir/good.o" ||
        exit 1
    out=$(check "$dir/libbad.a" 2>/dev/null)
    rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "self-test: the bad archive was not rejected (rc $rc): $out" >&2
        ok=0
    fi
    case $out in
    *"writable section: bad.o: .data "*"writable section: bad.o: .bss "*) ;;
    *) echo "self-test: the section check did not report bad.o's .data and .bss" >&2; ok=0 ;;
    esac
    for s in counter initialized common_one calls; do
        case $out in
        *"$s"*) ;;
        *) echo "self-test: writable '$s' was not reported" >&2; ok=0 ;;
        esac
    done
    case $out in
    *": table "* | *": names "* | *": last "* | *": seeded "*)
        echo "self-test: a read-only or thread-local symbol was reported: $out" >&2
        ok=0
        ;;
    esac
    if ! check "$dir/libgood.a" >/dev/null 2>&1; then
        echo "self-test: the good archive was rejected:" >&2
        check "$dir/libgood.a" >&2
        ok=0
    fi
    [ "$ok" = 1 ] && echo "check_globals self-test passed"
    [ "$ok" = 1 ]
    exit $?
fi

lib=${1:?usage: check_globals.sh LIBRARY.a | --self-test CC}
check "$lib"
rc=$?
[ "$rc" -eq 0 ] && echo "no writable globals in $lib"
exit "$rc"

# Shared by the check scripts (sourced): assertion counters and Debian's LLVM tools.

passed=0
failed=0
# ok/bad DESCRIPTION: counts a passed or failed assertion and prints it.
ok() { passed=$((passed + 1)); echo "  ok    $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL  $*"; }

# llvm_tool NAME: the path of Debian's llvm-14 tool NAME (the plain name comes with its `llvm`
# package, the versioned one always); fails when it is not installed.
llvm_tool() {
    local n
    for n in "$1" "$1-14" "/usr/lib/llvm-14/bin/$1"; do
        command -v "$n" 2>/dev/null && return 0
    done
    return 1
}

#!/usr/bin/env python3
"""The module graph of the core crate, checked for import cycles and layer rules.

Each file of core/src is a module (`lib.rs` is `crate`, `a/mod.rs` is `crate::a`, `a/b.rs` is
`crate::a::b`; inline modules belong to their file). Module A depends on module B when A's code,
outside `#[cfg(test)]` blocks, names an item of B: through `use` (with nested braces), an inline
`crate::`/`super::`/`self::` path, or a child module's name (`text::TextModel` in
`model/mod.rs`). A path through a `pub use` re-export counts for the module that defines the
item (`crate::Error` is `crate::error`), so lib.rs's re-exports create no edges.

Fails (exit 1) when the graph has a cycle, or when a module of a layer depends on a module the
layer must not see (LAYERS below). Prints the layers, the edge count and each violation.

    python3 tools/module_deps.py [--graph]
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "core" / "src"

# (layer, modules it may not depend on): prefixes of module paths.
LAYERS = [
    ("crate::kernels", ["crate::model", "crate::engine", "crate::session", "crate::processor",
                        "crate::prompt", "crate::chat", "crate::gguf", "crate::checkpoint",
                        "crate::hub", "crate::generation"]),
    ("crate::processor", ["crate::model", "crate::kernels", "crate::engine", "crate::session",
                          "crate::prompt", "crate::chat"]),
    ("crate::model", ["crate::engine", "crate::session", "crate::prompt", "crate::chat",
                      "crate::processor", "crate::hub"]),
]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(["crate"] + parts)


def strip(code: str) -> str:
    """The code without comments, string literals and `#[cfg(test)]` items."""
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    code = re.sub(r'r#*"(?:.|\n)*?"#*', '""', code)
    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
    code = re.sub(r"'(?:\\.|[^'\\])'", "' '", code)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        if m.start() < i:
            continue
        out.append(code[i:m.start()])
        j = code.find("{", m.end())
        semi = code.find(";", m.end())
        if semi != -1 and (j == -1 or semi < j):
            i = semi + 1  # `#[cfg(test)] use ...;` or `mod x;`
            continue
        depth, k = 0, j
        while k < len(code):
            depth += {"{": 1, "}": -1}.get(code[k], 0)
            k += 1
            if depth == 0:
                break
        i = k
    out.append(code[i:])
    return "".join(out)


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (renames and globs dropped)."""
    tree = re.sub(r"\s+", "", re.sub(rf"\s+as\s+{IDENT}", "", tree))
    depth, cut = 0, None
    for k, ch in enumerate(tree):
        if ch == "{" and depth == 0 and cut is None:
            cut = k
        depth += {"{": 1, "}": -1}.get(ch, 0)
    if cut is None:
        return [tree]
    prefix, inner = tree[:cut], tree[cut + 1:-1]
    items, depth, start = [], 0, 0
    for k, ch in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(inner[start:k])
            start = k + 1
    items.append(inner[start:])
    return [p for it in items if it for p in expand(prefix + it)]


def main() -> int:
    files = sorted(ROOT.rglob("*.rs"))
    modules = {module_of(f): f for f in files}
    code = {m: strip(f.read_text()) for m, f in modules.items()}
    children = {m: {c.rsplit("::", 1)[1] for c in modules if c.startswith(m + "::") and c.count("::") == m.count("::") + 1}
                for m in modules}
    # `pub use` re-exports: (module, name) -> the path it stands for
    reexports = {}
    for m, text in code.items():
        for tree in re.findall(r"pub(?:\(crate\)|\(super\))?\s+use\s+([^;]+);", regions(text)[0][1]):
            for p in expand(tree):
                name = p.rsplit("::", 1)[-1]
                reexports[(m, name)] = absolute(m, p, children, 0)

    def resolve(path: str, seen=0) -> str:
        """The module defining the item `path` names (or the module itself)."""
        parts = path.split("::")
        best = "crate"
        for k in range(1, len(parts) + 1):
            cand = "::".join(parts[:k])
            if cand in modules:
                best = cand
            else:
                break
        rest = parts[best.count("::") + 1:]
        if rest and (best, rest[0]) in reexports and seen < 8:
            target = reexports[(best, rest[0])]
            if target.startswith("crate") and target != path:
                return resolve("::".join([target] + rest[1:]), seen + 1)
        return best

    edges = {m: set() for m in modules}
    for m, text in code.items():
        for depth, region in regions(text):
            paths = []
            for tree in re.findall(r"\buse\s+([^;]+);", region):
                paths += [absolute(m, p, children, depth) for p in expand(tree)]
            paths += [absolute(m, p, children, depth) for p in re.findall(rf"\b(?:crate|super|self)(?:::{IDENT})+", region)]
            if depth == 0:
                for child in children[m]:
                    paths += [f"{m}::{child}" for _ in re.findall(rf"(?<![:\w]){child}::", region)]
            edges[m] |= {resolve(p) for p in paths if p.startswith("crate")} - {m}

    problems = []
    for layer, forbidden in LAYERS:
        for m in modules:
            if m == layer or m.startswith(layer + "::"):
                for t in sorted(edges[m]):
                    if any(t == f or t.startswith(f + "::") for f in forbidden):
                        problems.append(f"layer: {m} depends on {t}")
    for cycle in cycles(edges):
        problems.append("cycle among: " + ", ".join(cycle))
    if "--graph" in sys.argv:
        for m in sorted(edges):
            print(f"{m} -> {', '.join(sorted(edges[m])) or '(nothing)'}")
    print(f"module_deps: {len(modules)} modules, {sum(map(len, edges.values()))} dependencies, "
          f"{len(problems)} problems")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


def regions(text: str, depth: int = 0):
    """(depth, code) for the file's code outside inline modules and for each inline module's body,
    `depth` being how many inline modules enclose it."""
    out, rest, i = [], [], 0
    for m in re.finditer(rf"\bmod\s+\$?{IDENT}\s*{{", text):
        if m.start() < i:
            continue
        rest.append(text[i:m.start()])
        k, level = m.end(), 1
        while k < len(text) and level:
            level += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
        out += regions(text[m.end():k - 1], depth + 1)
        i = k
    rest.append(text[i:])
    return [(depth, "".join(rest))] + out


def absolute(m: str, p: str, children, depth: int) -> str:
    """Path `p` as written in module `m` (inside `depth` inline modules), absolute (`crate::...`);
    "" for an external crate or a local name."""
    parts = p.replace(" ", "").lstrip(":").split("::")
    if parts[0] == "crate":
        return "::".join(parts)
    if parts[0] not in ("super", "self"):
        return f"{m}::{p}" if depth == 0 and parts[0] in children.get(m, ()) else ""
    base = m.split("::")
    if parts[0] == "self":
        parts.pop(0)
    ups = 0
    while parts and parts[0] == "super":
        parts.pop(0)
        ups += 1
    # the first `depth` steps up stay inside the file's own module
    base = base[:len(base) - max(0, ups - depth)]
    return "::".join(base + parts)


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan), each as a list."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())

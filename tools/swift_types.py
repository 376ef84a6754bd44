#!/usr/bin/env python3
"""Writes ios/Sources/SmolVLM/Types.swift: the Swift package's public value types.

The uniffi-generated module (SmolVLMFFI) is an implementation detail of the Swift package: the
wrapper imports it `internal`ly, so none of its declarations reach an app. The records and enums
an app passes and receives (LoadOptions, GenerationConfig, LiveEvent, ...) are therefore
declared again in the wrapper's own module, with the same names, fields, defaults and docs (the
Rust `///` comments that uniffi copies), plus internal conversions to and from the generated
types. This script derives them from the generated Swift file, so they follow the Rust API.

    python3 tools/swift_types.py GENERATED.swift > ios/Sources/SmolVLM/Types.swift

tools/test_bindings.sh regenerates the file and fails when the committed one differs.
"""
import re
import sys

# Generated value types that stay internal: the error (the wrapper has SmolVLMError, with
# lowerCamel cases) and the test-only object counter.
INTERNAL = {"SmolVlmError", "LiveObjects"}
# Generated types that the wrapper declares by hand under another name (Errors.swift).
RENAMED = {"SmolVlmError": "SmolVLMError"}
PRIMITIVES = {
    "String", "Bool", "Data", "Float", "Double",
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
}


def blocks(src):
    """Top-level `public struct`/`public enum` declarations: (kind, name, doc, body lines)."""
    lines = src.split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = re.match(r"public (struct|enum) (\w+)\b(.*)\{$", lines[i])
        if m and not m.group(2).startswith("FfiConverter"):
            # The doc comment right above the declaration.
            j = i
            if i > 0 and lines[i - 1].strip() == "*/":
                j = i - 1
                while not lines[j].startswith("/**"):
                    j -= 1
            doc = lines[j:i]
            k = i + 1
            while lines[k] != "}":
                k += 1
            out.append((m.group(1), m.group(2), m.group(3).strip(), doc, lines[i + 1 : k]))
            i = k
        i += 1
    return out


def split_top(s):
    """Splits `a: T, b: [K: V] = x` at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def convert(expr, ty, names, inward):
    """An expression converting `expr` of type `ty` (generated → wrapper when `inward`)."""
    ty = ty.strip()
    if ty.endswith("?"):
        inner = convert("$0", ty[:-1], names, inward)
        return expr if inner == "$0" else f"{expr}.map {{ {inner} }}"
    m = re.fullmatch(r"\[(.+)\]", ty)
    if m:
        kv = split_top(m.group(1).replace(":", ",", 1)) if ":" in m.group(1) else None
        if kv and len(kv) == 2:
            inner = convert("$0", kv[1], names, inward)
            return expr if inner == "$0" else f"{expr}.mapValues {{ {inner} }}"
        inner = convert("$0", m.group(1), names, inward)
        return expr if inner == "$0" else f"{expr}.map {{ {inner} }}"
    if ty in PRIMITIVES:
        return expr
    if ty in names or ty in RENAMED:
        return f"{RENAMED.get(ty, ty)}({expr})" if inward else f"{expr}.ffi"
    raise SystemExit(f"swift_types.py: no conversion for type {ty!r}")


def fields_of(decl):
    """`name: Type = default` list → [(name, type)]."""
    out = []
    for p in split_top(decl):
        name, rest = p.split(":", 1)
        out.append((name.strip(), rest.split("=")[0].strip()))
    return out


def strip_docs(lines):
    """The lines joined, without `/** ... */` comments."""
    return re.sub(r"/\*\*.*?\*/", "", "\n".join(lines), flags=re.S)


def record(name, conformances, doc, body, names, inward, outward):
    text = strip_docs(body)
    m = re.search(r"public init\((.*?)\)\s*\{", text, re.S)
    params = " ".join(m.group(1).split())
    fields = fields_of(params) if params else []
    decl_body = []
    for line in body:
        if line.strip().startswith("// Default memberwise") or line.strip().startswith("// declare one"):
            continue
        if line.strip().startswith("public init("):
            break
        decl_body.append(line)
    while decl_body and not decl_body[-1].strip():
        decl_body.pop()
    conf = conformances.lstrip(":").strip()
    conf = f"{conf}, Sendable" if conf else "Sendable"
    out = doc + [f"public struct {name}: {conf} {{"] + decl_body
    out += ["", f"    /// Makes a `{name}`; every parameter with a default may be left out.", f"    public init({params}) {{"]
    out += [f"        self.{n} = {n}" for n, _ in fields] + ["    }", "}", ""]
    args_in = ", ".join(f"{n}: {convert('ffi.' + n, t, names, True)}" for n, t in fields)
    args_out = ", ".join(f"{n}: {convert(n, t, names, False)}" for n, t in fields)
    conversions = []
    if inward:
        conversions += [f"    init(_ ffi: SmolVLMFFI.{name}) {{", f"        self.init({args_in})", "    }"]
    if outward:
        conversions += [""] if conversions else []
        conversions += [f"    var ffi: SmolVLMFFI.{name} {{", f"        SmolVLMFFI.{name}({args_out})", "    }"]
    out += [f"extension {name} {{"] + conversions + ["}", ""]
    return out


def enum(name, conformances, doc, body, names, inward, outward):
    cases = []
    for m in re.finditer(r"\bcase (`?\w+`?)(?:\((.*?)\))?\s*(?=\bcase\b|$)", strip_docs(body), re.S):
        params = " ".join(m.group(2).split()) if m.group(2) else ""
        cases.append((m.group(1), fields_of(params) if params else []))
    conf = conformances.lstrip(":").strip()
    conf = f"{conf}, Sendable" if conf else "Sendable"
    body = [l for l in body if l.strip()]
    out = doc + [f"public enum {name}: {conf} {{"] + body + ["}", ""]

    def switch(src, dst_type, inward):
        lines = [f"        switch {src} {{"]
        for case, fields in cases:
            if not fields:
                lines.append(f"        case .{case}: {'self =' if inward else 'return'} .{case}")
                continue
            binds = ", ".join(f"let {n}" for n, _ in fields)
            args = ", ".join(f"{n}: {convert(n, t, names, inward)}" for n, t in fields)
            lead = "self =" if inward else "return"
            lines.append(f"        case .{case}({binds}): {lead} .{case}({args})")
        return lines + ["        }"]

    conversions = []
    if inward:
        conversions += [f"    init(_ ffi: SmolVLMFFI.{name}) {{"] + switch("ffi", name, True) + ["    }"]
    if outward:
        conversions += [""] if conversions else []
        conversions += [f"    var ffi: SmolVLMFFI.{name} {{"] + switch("self", name, False) + ["    }"]
    out += [f"extension {name} {{"] + conversions + ["}", ""]
    return out


def directions(src, found):
    """Which types cross into Swift (need `init(_ ffi:)`) and which go out to Rust (need `.ffi`):
    from the generated signatures (object methods, constructors, top-level functions: parameters
    out, results in; callback interfaces, whose protocols lack the `Protocol` suffix: the other
    way round; thrown errors in), then through the fields of what crosses."""
    known = {b[1] for b in found} | set(RENAMED)
    into, out = set(), set()
    callbacks = set(re.findall(r"^public protocol (\w+)(?<!Protocol):", src, re.M))
    scope = None  # the top-level protocol or class being read
    for line in src.split("\n"):
        m = re.match(r"(?:public protocol|open class) (\w+)", line)
        if m:
            scope = m.group(1)
        elif re.match(r"(?:public (?:struct|enum|func)|extension|fileprivate|private) ", line):
            scope = None  # (a class's body has unindented lines, a lone `}` among them)
        # Protocol requirements, a class's constructors, public top-level functions.
        if scope in callbacks or (scope or "").endswith("Protocol"):
            pattern = r"\s+func \w+"
        elif scope:
            pattern = r"public (?:static func \w+|convenience init)"
        else:
            pattern = r"public func (?!FfiConverter|uniffi)\w+"
        sig = re.match(pattern + r"\((.*?)\)\s*(throws)?\s*(?:->\s*(.+?))?\s*\{?\s*$", line)
        if not sig:
            continue
        params, throws, result = set(re.findall(r"\w+", sig.group(1))) & known, sig.group(2), sig.group(3) or ""
        results = set(re.findall(r"\w+", result)) & known
        if scope in callbacks:
            into |= params
            out |= results
        else:
            out |= params
            into |= results
            if throws:
                into.add("SmolVlmError")
    fields = {b[1]: set(re.findall(r"\w+", strip_docs(b[4]))) & known for b in found}
    for side in (into, out):
        todo = list(side)
        while todo:
            for t in fields.get(todo.pop(), ()):
                if t not in side:
                    side.add(t)
                    todo.append(t)
    return into, out


def main():
    src = open(sys.argv[1]).read()
    found = [b for b in blocks(src) if b[1] not in INTERNAL]
    names = {b[1] for b in found}
    into, outward = directions(src, found)
    out = [
        "// Generated by tools/swift_types.py from the uniffi bindings (SmolVLMFFI.swift): the public",
        "// records and enums of the Swift API, with internal conversions to and from the generated",
        "// ones. Do not edit; run tools/test_bindings.sh with UPDATE_BINDINGS=1 after a Rust API change.",
        "// swift-format-ignore-file",
        "",
        "import Foundation",
        "internal import SmolVLMFFI",
        "",
    ]
    for kind, name, conformances, doc, body in found:
        make = record if kind == "struct" else enum
        out += make(name, conformances, doc, body, names, name in into, name in outward)
    text = "\n".join(out).rstrip("\n") + "\n"
    for old, new in RENAMED.items():
        # Declarations and docs; conversions name the generated type as SmolVLMFFI.<old>.
        text = re.sub(rf"(?<![.\w]){old}\b", new, text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

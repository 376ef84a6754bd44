#!/usr/bin/env python3
"""One Hugging Face cache for Python and this SDK: a model that Python's huggingface_hub downloaded
is found by `smolvlm download` (offline, and online without fetching a file), and a model that
`smolvlm download` put in the cache is found by huggingface_hub offline.

Usage: interop.py PYTHON SMOLVLM   (PYTHON: an interpreter with huggingface_hub, see requirements.txt)
Prints one line per check and `hub interop: N passed, N failed`; exits 1 if any failed."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.json", "model.safetensors"]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}")


def run(cmd, **env):
    e = dict(os.environ)
    for k in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HOME", "HF_HUB_CACHE"):
        e.pop(k, None)
    e.update(env)
    return subprocess.run(cmd, env=e, capture_output=True, text=True)


def main():
    python, smolvlm = sys.argv[1], sys.argv[2]
    work = pathlib.Path(tempfile.mkdtemp(prefix="smolvlm-interop-"))
    log = work / "hub.log"
    server = subprocess.Popen([sys.executable, str(HERE / "server.py"), "--log", str(log)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = server.stdout.readline().strip()
    repo = "smolvlm-test/tiny"
    try:
        # Python first, then smolvlm.
        a = work / "a"
        py = run([python, str(HERE / "hf_python.py"), "download", "--cache", str(a), "--endpoint", url, repo])
        check("huggingface_hub downloads from the local hub", py.returncode == 0, py.stderr[-500:])
        snapshot = py.stdout.strip().splitlines()[-1] if py.returncode == 0 else "?"
        off = run([smolvlm, "download", repo], HF_HUB_CACHE=str(a), HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
        last = off.stdout.strip().splitlines()[-1] if off.stdout.strip() else ""
        check("smolvlm finds Python's download offline", off.returncode == 0 and last == snapshot, f"{off.stderr} {last} != {snapshot}")
        before = len(log.read_text().splitlines())
        on = run([smolvlm, "download", repo], HF_HUB_CACHE=str(a), HF_ENDPOINT=url)
        new = [json.loads(l) for l in log.read_text().splitlines()[before:]]
        only_listing = len(new) == 1 and new[0]["path"].startswith("/api/models/")
        check("smolvlm online: one listing request, no file fetched", on.returncode == 0 and only_listing, f"{on.stderr} {new}")
        ask = run([smolvlm, "ask", "--model", repo, "--max-tokens", "2", "hi"], HF_HUB_CACHE=str(a), HF_HUB_OFFLINE="1")
        check("smolvlm answers with Python's download", ask.returncode == 0, ask.stderr[-500:])
        # smolvlm first, then Python.
        b = work / "b"
        sv = run([smolvlm, "download", repo], HF_HUB_CACHE=str(b), HF_ENDPOINT=url)
        check("smolvlm downloads into a cache", sv.returncode == 0, sv.stderr[-500:])
        ours = sv.stdout.strip().splitlines()[-1] if sv.returncode == 0 else "?"
        find = run([python, str(HERE / "hf_python.py"), "find", "--cache", str(b), repo, *FILES])
        paths = find.stdout.split()
        same = len(paths) == len(FILES) and all(p == os.path.join(ours, f) for p, f in zip(paths, FILES))
        check("huggingface_hub finds smolvlm's download offline", find.returncode == 0 and same, find.stderr[-800:] + " " + find.stdout)
    finally:
        server.stdin.close()
        server.wait()
        subprocess.run(["rm", "-rf", str(work)])
    passed = sum(results)
    print(f"hub interop: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Download benchmark: one big file from the local hub (tests/hub/server.py --big-mb N), fetched by
`smolvlm download` and by curl against the same server, into the same folder, alternating, several
rounds. Prints throughput (MB/s, median), the ratio smolvlm/curl, and the downloader's peak RSS
(from wait4's rusage). smolvlm fsyncs the file before renaming it into place; curl does not, so curl
is timed twice: as is, and followed by an fsync of its file (the same durability). BENCH_DIR picks
the file system (default: the system's temp folder). Usage: tools/bench_download.py [--mb 500] [--rounds 3] [--bin target/release/smolvlm]"""
import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    out, err = p.stdout.read(), p.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed: {err.decode(errors='replace')}")
    return dt, usage.ru_maxrss / 1024, out.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default=str(ROOT / "target/release/smolvlm"))
    a = ap.parse_args()
    if not shutil.which("curl"):
        sys.exit("curl is needed")
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/hub/server.py"), "--big-mb", str(a.mb)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = server.stdout.readline().strip()
    size = a.mb << 20
    work = pathlib.Path(tempfile.mkdtemp(prefix="smolvlm-bench-dl-", dir=os.environ.get("BENCH_DIR")))
    env = dict(os.environ, HF_ENDPOINT=url)
    env.pop("HF_HUB_OFFLINE", None)
    rates = {"smolvlm": [], "curl": [], "curl+fsync": []}
    rss = []
    try:
        for _ in range(a.rounds):
            target = work / "sv"
            dt, peak, out = run([a.bin, "download", "smolvlm-test/big", "--file", "big.bin", "--to", str(target)], env)
            assert (target / "big.bin").stat().st_size == size and out.strip().endswith(str(target))
            rates["smolvlm"].append(size / dt / 1e6)
            rss.append(peak)
            shutil.rmtree(target)
            for fsync in (False, True):
                t0 = time.perf_counter()
                run(["curl", "-sSfL", "-o", str(work / "curl.bin"), f"{url}/smolvlm-test/big/resolve/main/big.bin"])
                if fsync:
                    fd = os.open(work / "curl.bin", os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)
                dt = time.perf_counter() - t0
                assert (work / "curl.bin").stat().st_size == size
                rates["curl+fsync" if fsync else "curl"].append(size / dt / 1e6)
                (work / "curl.bin").unlink()
    finally:
        server.stdin.close()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    runs = {k: ", ".join(f"{r:.0f}" for r in v) for k, v in rates.items()}
    print(f"file: {a.mb} MiB from {url} (LFS: 302 to the CDN host) into {work.parent}, {a.rounds} rounds, median")
    print(f"smolvlm download: {med['smolvlm']:6.0f} MB/s  (runs: {runs['smolvlm']}); peak RSS {max(rss):.1f} MiB "
          "(SHA-256 check, fsync, rename included)")
    print(f"curl -L -o:       {med['curl']:6.0f} MB/s  (runs: {runs['curl']})")
    print(f"curl + fsync:     {med['curl+fsync']:6.0f} MB/s  (runs: {runs['curl+fsync']})")
    print(f"ratio smolvlm/curl: {med['smolvlm'] / med['curl']:.2f}; smolvlm/(curl + fsync): "
          f"{med['smolvlm'] / med['curl+fsync']:.2f}")


if __name__ == "__main__":
    main()

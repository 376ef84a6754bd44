#!/usr/bin/env python3
"""The reference Python client (huggingface_hub, pinned in requirements.txt) against a hub endpoint.

    python hf_python.py download --cache DIR --endpoint URL [--token T] [--revision R] REPO
        snapshot_download of the repo's JSON files and *.safetensors into the cache DIR;
        prints the snapshot path.
    python hf_python.py find --cache DIR [--revision R] REPO FILE...
        offline (HF_HUB_OFFLINE=1) hf_hub_download of each FILE from the cache DIR; prints each path,
        exits 1 with a message on stderr when any is not in the cache.

Used to check that what the Rust downloader writes is a cache huggingface_hub accepts, and that the
test server (server.py) speaks the hub protocol well enough for the real client.
"""

from __future__ import annotations

import argparse
import os
import sys

ALLOW_PATTERNS = ["*.json", "*.safetensors"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="snapshot_download from an endpoint into a cache")
    dl.add_argument("--cache", required=True)
    dl.add_argument("--endpoint", required=True)
    dl.add_argument("--token", default=None)
    dl.add_argument("--revision", default=None)
    dl.add_argument("repo")
    fd = sub.add_parser("find", help="offline look-up of files in a cache")
    fd.add_argument("--cache", required=True)
    fd.add_argument("--revision", default=None)
    fd.add_argument("repo")
    fd.add_argument("files", nargs="+")
    args = ap.parse_args()

    # huggingface_hub reads these at import time.
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if args.command == "download":
        os.environ["HF_ENDPOINT"] = args.endpoint.rstrip("/")
        os.environ.pop("HF_HUB_OFFLINE", None)
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            args.repo,
            revision=args.revision,
            cache_dir=args.cache,
            allow_patterns=ALLOW_PATTERNS,
            token=args.token,
        )
        print(path)
        return 0

    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import hf_hub_download

    missing = []
    for name in args.files:
        try:
            print(hf_hub_download(args.repo, name, revision=args.revision, cache_dir=args.cache))
        except Exception as e:  # LocalEntryNotFoundError, or anything else that means "not usable"
            missing.append(f"{name}: {type(e).__name__}: {e}")
    if missing:
        print(f"not found in the cache {args.cache} for {args.repo}:", file=sys.stderr)
        for m in missing:
            print(f"  {m}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

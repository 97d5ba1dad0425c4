"""``ccr push HUB_DIR --repo org/name``: upload an exported folder (or a Space folder) to the Hub.

Creates the repository if needed (``HfApi.create_repo(exist_ok=True)``) and uploads the folder in one
commit (``HfApi.upload_folder``). ``--dry-run`` lists the files and sizes and sends nothing. The Hub
address is ``huggingface_hub``'s (``HF_ENDPOINT``), the token its usual one (``HF_TOKEN`` or ``hf auth login``).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from pathlib import Path

# Never uploaded: byte code and hidden files (editor and tool state).
IGNORE_PATTERNS = ["__pycache__", "*.pyc", ".*"]
REPO_TYPES = ("model", "space", "dataset")


def files_to_upload(folder: str | os.PathLike) -> list[tuple[str, int]]:
    """``(path in repo, size in bytes)`` of every file :func:`push_folder` uploads, sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder: pass the folder `ccr export` wrote (or a Space folder)")
    files = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and not any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in IGNORE_PATTERNS):
            files.append(("/".join(parts), path.stat().st_size))
    if not files:
        raise ValueError(f"{root} holds no file to upload")
    return files


def _check_folder(folder: Path, repo_type: str) -> None:
    if not (folder / "README.md").is_file():
        raise ValueError(f"{folder} has no README.md card: export it with `ccr export` (or add the Space card)")
    if repo_type == "model" and not (folder / "config.json").is_file():
        raise ValueError(f"{folder} has no config.json: it is not a model folder (for a Space pass --repo-type space)")


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload from ccr push",
) -> str:
    """Create ``repo_id`` if it does not exist and upload ``folder`` in one commit; returns the commit URL.

    Exactly the files of :func:`files_to_upload` are sent (``--dry-run`` lists the same).

    Raises ValueError when no token is configured, naming how to set one.
    """
    from huggingface_hub import HfApi, constants, get_token

    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo type must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"--repo must be 'org/name', got {repo_id!r}")
    folder = Path(folder)
    paths = [path for path, _ in files_to_upload(folder)]
    _check_folder(folder, repo_type)
    if constants.HF_HUB_OFFLINE:
        raise ValueError("HF_HUB_OFFLINE is set: unset it (or set it to 0) to upload")
    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token: run `hf auth login` or set HF_TOKEN to a token with write access")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True,
                    space_sdk="gradio" if repo_type == "space" else None)
    commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type,
                               commit_message=commit_message, allow_patterns=paths)
    return commit.commit_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="the folder to upload (from `ccr export`, or a Space folder)")
    parser.add_argument("--repo", required=True, help="the Hub repository, org/name")
    parser.add_argument("--repo-type", choices=REPO_TYPES, default="model", help="model (default), space or dataset")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry-run", action="store_true", help="list the files and sizes; send nothing")


def run(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        files = files_to_upload(args.folder)
        _check_folder(Path(args.folder), args.repo_type)
        if args.dry_run:
            for path, size in files:
                print(f"{size:>14,d}  {path}")
            total = sum(size for _, size in files)
            print(f"{len(files)} files, {total:,d} bytes would go to {args.repo_type} {args.repo} (dry run: nothing sent)")
            return 0
        url = push_folder(args.folder, args.repo, repo_type=args.repo_type, private=args.private)
    except (ValueError, HfHubHTTPError) as error:
        print(f"ccr push: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"uploaded {len(files)} files to {args.repo_type} {args.repo}: {url}")
    return 0

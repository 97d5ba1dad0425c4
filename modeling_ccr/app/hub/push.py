"""``ccr push HUB_DIR --repo org/name``: upload an exported folder (or a Space folder) to the Hub.

Creates the repository if needed (``HfApi.create_repo(exist_ok=True)``) and uploads the folder in one
commit (``HfApi.upload_folder``). ``--dry-run`` lists the files and sizes and sends nothing. The Hub
address is ``huggingface_hub``'s (``HF_ENDPOINT``), the token its usual one (``HF_TOKEN`` or ``hf auth login``).
A model card written for another repository (its title and usage load the ``--repo-id`` given to ``ccr
export``) is refused, with or without ``--dry-run``, before anything is sent.
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


def check_folder(folder: str | os.PathLike, repo_id: str, repo_type: str = "model") -> None:
    """Returns None when ``folder`` may go to ``repo_id``; raises a ValueError naming the problem and the fix
    otherwise: an id that is not ``org/name``, an unknown repo type, no card, a model folder without
    config.json, or a model card whose title or usage code names another repository than ``repo_id``."""
    from hub_cards.model_card import card_repo_ids, check_repo_id  # here: `ccr push --help` stays light

    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo type must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}")
    check_repo_id(repo_id, "--repo")
    folder = Path(folder)
    readme = folder / "README.md"
    if not readme.is_file():
        raise ValueError(f"{folder} has no README.md card: export it with `ccr export` (or add the Space card)")
    if repo_type != "model":
        return
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} has no config.json: it is not a model folder (for a Space pass --repo-type space)")
    named = card_repo_ids(readme.read_text(encoding="utf-8"))
    if named and named != [repo_id]:
        raise ValueError(
            f"{readme} is the card of {' and '.join(named)}, not of {repo_id}: its title and usage code load "
            f"{named[0]}; export again with `ccr export MODEL_DIR --output {folder} --repo-id {repo_id} --overwrite` "
            f"(and the same --report files), or push with --repo {named[0]}")


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

    Raises ValueError when :func:`check_folder` refuses the folder or no token is configured, naming the fix.
    """
    from huggingface_hub import HfApi, constants, get_token

    folder = Path(folder)
    paths = [path for path, _ in files_to_upload(folder)]
    check_folder(folder, repo_id, repo_type)
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
        check_folder(args.folder, args.repo, args.repo_type)
        if args.dry_run:
            for path, size in files:
                print(f"{size:>14,d}  {path}")
            total = sum(size for _, size in files)
            print(f"{len(files)} files, {total:,d} bytes would go to {args.repo_type} {args.repo} "
                  "(dry run: nothing sent)")
            return 0
        url = push_folder(args.folder, args.repo, repo_type=args.repo_type, private=args.private)
    except (ValueError, HfHubHTTPError) as error:
        print(f"ccr push: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"uploaded {len(files)} files to {args.repo_type} {args.repo}: {url}")
    return 0

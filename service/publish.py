"""Publish an artifact version into the store, verify it, and switch the active pointer.

    python -m service.publish --artifact-dir artifacts --name demo [--version V] [--no-activate]
    python -m service.publish list --name demo
    python -m service.publish activate --name demo --version V      # switch to any version
    python -m service.publish rollback --name demo                  # back to the previous one
    python -m service.publish delete --name demo --version V        # only an inactive version

``REDIS_URL`` (or ``--redis-url``) names the Redis server; ``KEY_PREFIX`` the key prefix.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from model.artifact import Artifact, ArtifactError, latest_version, load_artifact
from service.config import get_settings
from service.store import (
    ROW_DTYPE,
    EmbeddingStore,
    RedisStore,
    StoreUnavailable,
    VersionStateError,
)

log = logging.getLogger(__name__)

CHUNK_ROWS = 2000


class PublishError(RuntimeError):
    """What was read back from the store differs from the artifact."""


def graph_rows(artifact: Artifact) -> np.ndarray:
    """Graph-view rows of items ``1..N`` as stored ``[N, d]`` (``[N, 0]`` without the graph
    view: such a model needs nothing from the store but its metadata)."""
    if artifact.graph_item_emb is None:
        return np.zeros((artifact.num_items, 0), dtype=ROW_DTYPE)
    return np.ascontiguousarray(artifact.graph_item_emb[1:], dtype=ROW_DTYPE)


def publish_version(store: EmbeddingStore, artifact: Artifact, name: str,
                    activate: bool = True) -> bool:
    """Write, verify and (optionally) activate ``artifact``; return ``False`` when an identical,
    complete copy was already there and nothing had to be written."""
    version = artifact.version
    rows = graph_rows(artifact)
    digest = hashlib.sha256(rows.tobytes()).hexdigest()
    meta = store.meta(name, version)
    written = not (meta.get("complete") == "1" and meta.get("sha256") == digest
                   and verify_version(store, name, version, rows) is None)
    if written:
        store.begin_version(name, version, {
            "dim": str(rows.shape[1]), "num_items": str(rows.shape[0]), "sha256": digest,
            "graph_view": "1" if artifact.graph_item_emb is not None else "0",
            "artifact": artifact.path.name,
            "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        if rows.shape[1]:
            for start, chunk in _chunks(rows):
                store.write_rows(name, version, {start + offset + 1: row.tobytes()
                                                 for offset, row in enumerate(chunk)})
        problem = verify_version(store, name, version, rows)
        if problem is not None:
            raise PublishError(f"version {version} failed verification: {problem}")
        store.mark_complete(name, version)
        log.info("published %s version %s (%d rows)", name, version, rows.shape[0])
    if activate:
        previous = store.activate(name, version)
        log.info("activated %s version %s (previous: %s)", name, version, previous)
    return written


def rollback(store: EmbeddingStore, name: str) -> tuple[str, str | None]:
    """Activate the version that was active before the current one; return it and the one it
    replaced. Rolling back twice returns to where it started."""
    target = store.previous(name)
    if target is None:
        raise VersionStateError(f"no previous version of {name} to roll back to")
    return target, store.activate(name, target)


def verify_version(store: EmbeddingStore, name: str, version: str,
                   rows: np.ndarray) -> str | None:
    """Compare every stored row with ``rows [N, d]``; ``None`` when identical, else the first
    difference found."""
    expected = rows.shape[0] if rows.shape[1] else 0
    count = store.row_count(name, version)
    if count != expected:
        return f"{count} rows stored, expected {expected}"
    if not rows.shape[1]:
        return None
    for start, chunk in _chunks(rows):
        stored = store.read_rows(name, version, range(start + 1, start + 1 + len(chunk)))
        for offset, (row, value) in enumerate(zip(chunk, stored, strict=True)):
            if value != row.tobytes():
                return f"row {start + offset + 1} differs from the artifact"
    return None


def _chunks(rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        yield start, rows[start:start + CHUNK_ROWS]


def _artifact_path(root: Path, name: str, version: str | None) -> Path:
    return latest_version(root, name) if version is None else root / name / version


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=settings.model_name, help="model name")
    common.add_argument("--redis-url", default=settings.redis_url, help="default: REDIS_URL")
    common.add_argument("--key-prefix", default=settings.key_prefix)
    parser = argparse.ArgumentParser(prog="python -m service.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", parents=[common],
                                  help="write, verify and activate a version (the default)")
    publish.add_argument("--artifact-dir", type=Path, default=settings.artifact_dir)
    publish.add_argument("--version", help="default: the newest version on disk")
    publish.add_argument("--no-activate", action="store_true", help="publish only")
    commands.add_parser("list", parents=[common], help="versions in the store")
    commands.add_parser("rollback", parents=[common],
                        help="activate the version that was active before the current one")
    for command, text in (("activate", "point the service at a published version"),
                          ("delete", "remove an inactive version from the store")):
        sub = commands.add_parser(command, parents=[common], help=text)
        sub.add_argument("--version", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status is 0 on success, 1 on a refused or failed operation."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "publish")
    args = _parser().parse_args(argv)
    if not args.redis_url:
        log.error("no Redis server: set REDIS_URL or pass --redis-url (the in-process store "
                  "lives inside one service process and cannot be published to)")
        return 2
    store = RedisStore(args.redis_url, args.key_prefix)
    try:
        return _run(args, store)
    except (ArtifactError, PublishError, VersionStateError, StoreUnavailable) as error:
        log.error("%s", error)
        return 1
    finally:
        store.close()


def _run(args: argparse.Namespace, store: RedisStore) -> int:
    out = sys.stdout
    if args.command == "publish":
        artifact = load_artifact(_artifact_path(args.artifact_dir, args.name, args.version))
        written = publish_version(store, artifact, args.name, activate=not args.no_activate)
        state = "published" if written else "already published"
        out.write(f"{state}: {args.name} {artifact.version}"
                  f"{'' if args.no_activate else ' (active)'}\n")
    elif args.command == "list":
        active = store.active(args.name)
        for version in store.versions(args.name):
            meta = store.meta(args.name, version)
            status = "complete" if meta.get("complete") == "1" else "INCOMPLETE"
            marker = "*" if version == active else " "
            out.write(f"{marker} {version}  {status}  items={meta.get('num_items', '?')}  "
                      f"dim={meta.get('dim', '?')}  published={meta.get('published_at', '?')}\n")
    elif args.command == "rollback":
        active, previous = rollback(store, args.name)
        out.write(f"active: {args.name} {active} (rolled back from {previous})\n")
    elif args.command == "activate":
        previous = store.activate(args.name, args.version)
        out.write(f"active: {args.name} {args.version} (was {previous})\n")
    else:
        store.delete(args.name, args.version)
        out.write(f"deleted: {args.name} {args.version}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A local stand-in of the Hub HTTP API for upload tests: a real HTTP server on 127.0.0.1.

It answers the calls ``HfApi.create_repo`` and ``HfApi.upload_folder`` make (``/api/repos/create``,
``/api/validate-yaml`` for the README's metadata, ``/api/{type}s/{repo}/preupload/{rev}`` and
``/api/{type}s/{repo}/commit/{rev}``) and records what arrived. Weights (``*.safetensors``, ``*.onnx``,
``*.parquet``) go through the Git LFS batch API (``{repo}.git/info/lfs/objects/batch``, then a PUT of the
bytes, checked against their SHA-256), every other file inline in the commit, as on the Hub. It does not
speak the Xet protocol: clients run with ``HF_HUB_DISABLE_XET=1``. Point ``HF_ENDPOINT`` at ``url``.
Any other POST gets a 404 and is recorded in ``unexpected``, so a test sees writes it did not expect;
GET and HEAD requests get a 404 and are recorded in ``other_requests``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

REPO_CALL = re.compile(r"^/api/(models|spaces|datasets)/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)")
LFS_BATCH = re.compile(r"^/(?:spaces/|datasets/)?[^/]+/[^/]+\.git/info/lfs/objects/batch$")
LFS_SUFFIXES = (".safetensors", ".onnx", ".parquet")  # what the Hub's default .gitattributes send to LFS


class HubStandIn:
    """Start with ``with HubStandIn() as hub:``; then ``hub.url``, ``hub.created``, ``hub.commits``.

    ``created``: the JSON bodies of create-repo calls. ``commits``: one dict per commit,
    ``{"repo_type", "repo_id", "revision", "summary", "files": {path: bytes}, "lfs_paths", "authorization"}``
    (``files`` holds inline and LFS files alike; ``lfs_paths`` names those that came through LFS).
    ``validated``: the README metadata checks. ``unexpected``: ``(method, path)`` of requests it does not serve.
    """

    def __init__(self) -> None:
        self.created: list[dict] = []
        self.commits: list[dict] = []
        self.unexpected: list[tuple[str, str]] = []
        self.validated: list[dict] = []
        self.other_requests: list[tuple[str, str]] = []
        self.lfs_objects: dict[str, bytes] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self) -> None:
                body = self._body()
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                if self.path.startswith("/api/validate-yaml"):
                    # The Hub checks a README's metadata before a commit; here: it must parse as a YAML mapping.
                    payload = json.loads(body)
                    hub.validated.append(payload)
                    try:
                        metadata = yaml.safe_load(payload["content"].split("---")[1])
                    except (IndexError, yaml.YAMLError) as error:
                        return self._reply(400, {"errors": [{"message": f"invalid YAML metadata: {error}"}]})
                    if not isinstance(metadata, dict):
                        return self._reply(400, {"errors": [{"message": "the metadata is not a mapping"}]})
                    return self._reply(200, {"errors": [], "warnings": []})
                if self.path.startswith("/api/repos/create"):
                    payload = json.loads(body)
                    hub.created.append(payload)
                    prefix = {"space": "spaces/", "dataset": "datasets/"}.get(payload.get("type"), "")
                    name = f"{payload['organization']}/{payload['name']}"
                    return self._reply(200, {"url": f"{hub.url}/{prefix}{name}", "name": name})
                match = REPO_CALL.match(self.path)
                if match and match.group(3) == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [
                        {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                         "shouldIgnore": False, "oid": None} for f in files
                    ]})
                if match and match.group(3) == "commit":
                    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                    header = next(line["value"] for line in lines if line["key"] == "header")
                    files = {line["value"]["path"]: base64.b64decode(line["value"]["content"])
                             for line in lines if line["key"] == "file"}
                    for line in lines:
                        if line["key"] == "lfsFile":
                            stored = hub.lfs_objects.get(line["value"]["oid"])
                            if stored is None or len(stored) != line["value"]["size"]:
                                return self._reply(
                                    422, {"error": f"LFS object of {line['value']['path']} not uploaded"})
                            files[line["value"]["path"]] = stored
                    repo_type, repo_id, revision = match.group(1)[:-1], match.group(2), match.group(4)
                    hub.commits.append({"repo_type": repo_type, "repo_id": repo_id, "revision": revision,
                                        "summary": header["summary"], "files": files,
                                        "lfs_paths": sorted(line["value"]["path"] for line in lines
                                                            if line["key"] == "lfsFile"),
                                        "other_operations": [line for line in lines
                                                             if line["key"] not in ("header", "file", "lfsFile")],
                                        "authorization": self.headers["Authorization"]})
                    prefix = {"space": "spaces/", "dataset": "datasets/"}.get(repo_type, "")
                    return self._reply(200, {"success": True, "commitOid": "0" * 40,
                                             "commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{'0' * 40}"})
                if LFS_BATCH.match(self.path):
                    objects = json.loads(body)["objects"]
                    return self._reply(200, {"transfer": "basic", "objects": [
                        {"oid": o["oid"], "size": o["size"],
                         "actions": {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}"}}} for o in objects
                    ]})
                hub.unexpected.append(("POST", self.path))
                return self._reply(404, {"error": f"not served by the stand-in: {self.path}"})

            def do_PUT(self) -> None:
                body = self._body()
                oid = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith("/lfs-upload/") or hashlib.sha256(body).hexdigest() != oid:
                    hub.unexpected.append(("PUT", self.path))
                    return self._reply(400, {"error": "not an LFS upload of these bytes"})
                hub.lfs_objects[oid] = body
                return self._reply(200, {})

            def do_GET(self) -> None:
                # The client's own best-effort look-ups (e.g. its user-agent registry) tolerate a 404.
                hub.other_requests.append(("GET", self.path))
                self._reply(404, {"error": f"not served by the stand-in: {self.path}"})

            do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

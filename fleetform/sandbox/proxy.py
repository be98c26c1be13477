"""The sandbox's front door on 127.0.0.1: answers what moto lacks, forwards everything else to moto.

Answered here (data: fleetform.sandbox.catalogue, shapes from botocore's models):
* EKS (rest-json): ``GET /cluster-versions``, ``GET /clusters/{name}/addons``,
  ``GET /clusters/{name}/addons/{addon}``, ``GET /addons/supported-versions``,
  ``POST /clusters/{name}/insights``, ``GET /clusters/{name}/insights/{id}``;
* Service Quotas (json 1.1): ``GetServiceQuota`` / ``ListServiceQuotas`` for the EC2 vCPU quotas;
* Amazon Managed Service for Prometheus: ``POST /workspaces/{id}/api/v1/query`` (SigV4 ``aps``).
  It does not evaluate PromQL: a query that names a slot's cluster (``cluster="prod-main-green"``)
  gets that slot's error ratio from the sandbox's traffic model, one sample, or an empty vector
  when the slot serves nothing (Prometheus' answer for a series without samples); a query of
  ``argocd_app_info{dest_server="..."}`` gets Argo CD's series for the example's applications on that
  server, Synced and Healthy (``SANDBOX_APPS``), so ``verify``'s ``argocd-synced`` runs its real path.
The service of a request is read from its SigV4 credential scope, as moto itself does.

And one answer of its own, not an AWS API: ``GET /_fleetform/sandbox`` (``INFO_PATH``, unsigned) says
which sandbox serves here (its ``--state-dir``), so that the runbook records its runs against this
endpoint where ``fleetform sandbox up`` clears them (fleetform.sandbox.server.runs_dir).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fleetform.sandbox.catalogue import EC2_QUOTAS, Catalogue
from fleetform.sandbox.server import INFO_PATH

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request")
_CLUSTER_LABEL = re.compile(r'cluster\s*=~?\s*"([^"]+)"')
_DEST_SERVER = re.compile(r'argocd_app_info\s*\{[^}]*dest_server\s*=\s*"([^"]+)"')
# what Argo CD (in the ops cluster) reports for every slot it deploys to: the example's applications,
# Synced and Healthy, with the labels Argo CD's application controller gives argocd_app_info
SANDBOX_APPS = ("web", "sidekiq", "keda")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
        "proxy-authenticate", "content-length"}

# cluster name -> the error ratio it serves now (None: no traffic); set by the sandbox's traffic loop
Rates = Callable[[], dict[str, float]]


class Proxy:
    """``start()`` serves on 127.0.0.1:``port`` in a thread; ``stop()`` ends it."""

    def __init__(self, port: int, upstream: str, catalogue: Catalogue, rates: Rates | None = None,
                 info: dict[str, Any] | None = None) -> None:
        parsed = urllib.parse.urlparse(upstream)
        assert parsed.hostname in ("127.0.0.1", "localhost"), "the sandbox forwards to loopback only"
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.catalogue = catalogue
        self.rates: Rates = rates or (lambda: {})
        self.info = info if info is not None else {}
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="sandbox-proxy", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Proxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    owner: Proxy
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve()

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve()

    def _body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _serve(self) -> None:
        body = self._body()
        scope = _SCOPE.search(self.headers.get("Authorization", ""))
        service, region = (scope["service"], scope["region"]) if scope else ("", "us-east-1")
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        answer: tuple[int, dict[str, str], bytes] | None = None
        if not scope and self.command == "GET" and url.path == INFO_PATH:
            answer = _json(200, self.owner.info)
        elif service == "eks":
            answer = self._eks(self.command, url.path, query, body, region)
        elif service == "servicequotas":
            answer = self._quotas(self.headers.get("X-Amz-Target", ""), body, region)
        elif service == "aps":
            answer = self._prometheus(self.command, url.path, body)
        if answer is None:
            answer = self._forward(body)
        status, headers, payload = answer
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    # ------------------------------------------------------------------ moto
    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP}
            return response.status, kept, payload
        finally:
            connection.close()

    # ------------------------------------------------------------------ EKS
    def _eks(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
             region: str) -> tuple[int, dict[str, str], bytes] | None:
        catalogue = self.owner.catalogue
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and parts == ["cluster-versions"]:
            return _json(200, catalogue.describe_cluster_versions(
                query.get("clusterVersions", []), query.get("includeAll", ["false"])[0] == "true"))
        if method == "GET" and parts == ["addons", "supported-versions"]:
            return _json(200, catalogue.describe_addon_versions(query.get("addonName", [None])[0],
                                                                query.get("kubernetesVersion", [None])[0]))
        if len(parts) < 3 or parts[0] != "clusters" or parts[2] not in ("addons", "insights"):
            return None
        cluster = parts[1]
        if cluster not in catalogue.clusters:
            return _eks_error(404, "ResourceNotFoundException", f"No cluster found for name: {cluster}.")
        if method == "GET" and parts[2:] == ["addons"]:
            return _json(200, {"addons": catalogue.addons(cluster)})
        if method == "GET" and parts[2] == "addons" and len(parts) == 4:
            if parts[3] not in catalogue.addons(cluster):
                return _eks_error(404, "ResourceNotFoundException", f"No addon: {parts[3]} found in cluster: "
                                                                    f"{cluster}")
            return _json(200, catalogue.describe_addon(cluster, parts[3], region))
        if method == "POST" and parts[2:] == ["insights"]:
            request = json.loads(body or b"{}")
            wanted = request.get("filter") or {}
            return _json(200, catalogue.list_insights(cluster, wanted.get("categories") or [],
                                                      wanted.get("statuses") or []))
        if method == "GET" and parts[2] == "insights" and len(parts) == 4:
            found = catalogue.describe_insight(cluster, parts[3])
            if found is None:
                return _eks_error(404, "ResourceNotFoundException", f"No insight {parts[3]} for {cluster}")
            return _json(200, found)
        return None

    # ------------------------------------------------------------------ Service Quotas
    def _quotas(self, target: str, body: bytes, region: str) -> tuple[int, dict[str, str], bytes] | None:
        operation = target.rpartition(".")[2]
        request = json.loads(body or b"{}")
        if request.get("ServiceCode") != "ec2" or operation not in ("GetServiceQuota", "ListServiceQuotas"):
            return None  # moto answers the rest (its VPC quotas)
        catalogue = self.owner.catalogue
        if operation == "ListServiceQuotas":
            codes = [request["QuotaCode"]] if request.get("QuotaCode") else sorted(EC2_QUOTAS)
            return _json(200, {"Quotas": [catalogue.quota(c, region) for c in codes if c in EC2_QUOTAS]},
                         "application/x-amz-json-1.1")
        code = request.get("QuotaCode", "")
        if code not in EC2_QUOTAS:
            return _json(400, {"__type": "NoSuchResourceException", "Message": f"The quota {code} does not exist"},
                         "application/x-amz-json-1.1")
        return _json(200, {"Quota": catalogue.quota(code, region)}, "application/x-amz-json-1.1")

    # ------------------------------------------------------------------ AMP
    def _prometheus(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        if not re.fullmatch(r"/workspaces/ws-[A-Za-z0-9-]+/api/v1/query", path):
            return None  # the workspace API itself (CreateWorkspace, ListWorkspaces): moto's
        if method != "POST":
            return _json(404, {"message": "Not Found"})
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        expr = form.get("query", "")
        if not expr:
            return _json(400, {"status": "error", "errorType": "bad_data", "error": "query: parameter is missing"})
        moment = float(form["time"]) if form.get("time") else time.time()
        server = _DEST_SERVER.search(expr)
        if server:
            apps = [{"metric": {"__name__": "argocd_app_info", "name": app, "namespace": "argocd",
                                "project": "default", "dest_server": server.group(1), "dest_namespace": app,
                                "sync_status": "Synced", "health_status": "Healthy"},
                     "value": [moment, "1"]} for app in SANDBOX_APPS]
            return _json(200, {"status": "success", "data": {"resultType": "vector", "result": apps}})
        clusters = list(dict.fromkeys(_CLUSTER_LABEL.findall(expr)))
        rates = self.owner.rates()
        result = [{"metric": {"cluster": c}, "value": [moment, repr(rates[c])]} for c in clusters if c in rates]
        return _json(200, {"status": "success", "data": {"resultType": "vector", "result": result}})


def _json(status: int, document: dict[str, Any], kind: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": kind}, json.dumps(document).encode()


def _eks_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, json.dumps(
        {"message": message}).encode()

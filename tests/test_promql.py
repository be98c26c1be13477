"""The AMP PromQL client against a local HTTP server on 127.0.0.1 that verifies the SigV4 signature.

The server recomputes the signature with botocore's SigV4 from the secret key it knows, as AMP
would, and answers with Prometheus HTTP API documents (prometheus.io/docs/prometheus/latest/querying/api).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fleetform.aws_session import ApiUnavailable, AwsError
from fleetform.errors import FleetformError
from fleetform.upgrade import promql

KEY, SECRET, REGION, WORKSPACE = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "ap-northeast-1", "ws-1234"
AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
                  r"(?P<service>[a-z0-9-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
                  r"Signature=(?P<sig>[0-9a-f]{64})$")


def expected_signature(method: str, url: str, headers: dict[str, str], body: bytes, signed: list[str]) -> str:
    request = AWSRequest(method=method, url=url, data=body, headers={h: headers[h] for h in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(KEY, SECRET), "aps", REGION)
    return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)


class Handler(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, Any]] = {}
    seen: list[dict[str, Any]] = []

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        match = AUTH.match(headers.get("authorization", ""))
        if not match:
            return self.reply(403, {"message": "Missing Authentication Token"})
        signed = match["signed"].split(";")
        url = f"http://{headers['host']}{self.path}"
        ok = (match["key"] == KEY and match["service"] == "aps" and match["region"] == REGION
              and headers.get("x-amz-date", "").startswith(match["date"])
              and {"host", "x-amz-date"} <= set(signed)
              and match["sig"] == expected_signature("POST", url, headers, body, signed))
        if not ok:
            return self.reply(403, {"message": "The request signature we calculated does not match"})
        form = dict(urllib.parse.parse_qsl(body.decode()))
        self.seen.append({"path": self.path, "form": form})
        if self.path != f"/workspaces/{WORKSPACE}/api/v1/query":
            return self.reply(404, {"message": "Not Found"})
        status, document = self.answers.get(form.get("query", ""), (200, {"status": "success", "data": {
            "resultType": "vector", "result": []}}))
        self.reply(status, document)

    def reply(self, status: int, document: Any) -> None:
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def server() -> Iterator[str]:
    Handler.answers, Handler.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def client(endpoint: str, secret: str = SECRET, workspace: str = WORKSPACE) -> promql.PromQLClient:
    return promql.PromQLClient(promql.workspace_url(workspace, REGION, endpoint), REGION,
                               Credentials(KEY, secret), timeout=5)


def test_workspace_url_is_amps_endpoint_or_the_override() -> None:
    assert promql.workspace_url("ws-1", "us-east-1") == "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1"
    assert promql.workspace_url("ws-1", "us-east-1", "http://127.0.0.1:5/") == "http://127.0.0.1:5/workspaces/ws-1"


def test_vector_query_is_signed_and_typed(server: str) -> None:
    expr = 'sum(rate(http_requests_total{cluster="prod-main-green",code=~"5.."}[5m]))'
    Handler.answers[expr] = (200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"cluster": "prod-main-green", "job": "rails"}, "value": [1764979200.5, "0.25"]},
        {"metric": {"cluster": "prod-main-green", "job": "sidekiq"}, "value": [1764979200.5, "NaN"]}]}})
    at = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
    samples = client(server).query(expr, at)
    assert samples[0] == promql.Sample({"cluster": "prod-main-green", "job": "rails"}, 1764979200.5, 0.25)
    assert samples[1].is_nan
    assert Handler.seen[-1]["form"] == {"query": expr, "time": f"{at.timestamp():.3f}"}


def test_scalar_query(server: str) -> None:
    Handler.answers["scalar(1)"] = (200, {"status": "success", "data": {"resultType": "scalar",
                                                                          "result": [1764979200, "1"]}})
    assert client(server).query("scalar(1)") == [promql.Sample({}, 1764979200.0, 1.0)]


def test_a_wrong_secret_is_refused_as_an_aws_error(server: str) -> None:
    with pytest.raises(AwsError) as caught:
        client(server, secret="not-the-secret").query("up")
    assert caught.value.code == "AccessDeniedException" and "signature" in caught.value.message


def test_bad_query_is_a_promql_error(server: str) -> None:
    Handler.answers["sum("] = (400, {"status": "error", "errorType": "bad_data",
                                     "error": "1:5: parse error: unexpected end of input"})
    with pytest.raises(promql.PromQLError, match="bad_data: 1:5: parse error"):
        client(server).query("sum(")


@pytest.mark.parametrize("document", [
    b"<html>oops</html>", b"[1, 2]", {"status": "success"},
    {"status": "success", "data": {"resultType": "matrix", "result": []}},
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": ["x"]}]}},
])
def test_malformed_answers_are_promql_errors(server: str, document: Any) -> None:
    Handler.answers["q"] = (200, document)
    with pytest.raises(promql.PromQLError):
        client(server).query("q")


def test_unknown_workspace_is_unavailable_and_throttling_an_aws_error(server: str) -> None:
    with pytest.raises(ApiUnavailable):
        client(server, workspace="ws-other").query("up")
    Handler.answers["busy"] = (429, {"message": "Rate exceeded"})
    with pytest.raises(AwsError, match="ThrottlingException: Rate exceeded"):
        client(server).query("busy")


def test_unreachable_workspace_is_a_fleetform_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FleetformError, match="cannot reach the Prometheus workspace"):
        client(f"http://127.0.0.1:{port}").query("up")


def test_client_for_takes_the_sessions_credentials(server: str) -> None:
    import boto3

    session = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name=REGION)
    Handler.answers["up"] = (200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "up"}, "value": [1, "1"]}]}})
    assert promql.client_for(session, REGION, WORKSPACE, server).query("up")[0].value == 1.0

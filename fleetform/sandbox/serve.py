"""The sandbox process (``python -m fleetform.sandbox.serve``): moto on a private port of 127.0.0.1
behind the sandbox proxy on ``--port`` (what moto lacks: fleetform.sandbox.proxy), seeded, with
traffic metrics every second until SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

TRAFFIC_INTERVAL = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetform.sandbox.serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args(argv)
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox",
                       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                       "AWS_EC2_METADATA_DISABLED": "true"})

    from moto.server import ThreadedMotoServer

    from fleetform.config import load_config
    from fleetform.sandbox.accounts import seed_accounts
    from fleetform.sandbox.catalogue import Catalogue
    from fleetform.sandbox.moto_ext import install
    from fleetform.sandbox.proxy import Proxy
    from fleetform.sandbox.seed import emit_traffic, seed
    from fleetform.sandbox.server import RUNS_SUBDIR
    from fleetform.upgrade.aws import Aws, connect
    from fleetform.upgrade.state import utcnow, write_atomic

    config = load_config(args.config)
    install()
    moto_port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    served: list[dict[str, float]] = [{}]  # replaced whole each second: a query never sees it half updated
    state_dir = str(Path(args.record).resolve().parent)
    info = {"sandbox": "fleetform", "state_dir": state_dir, "pid": os.getpid()}  # completed once seeded
    proxy = Proxy(args.port, f"http://127.0.0.1:{moto_port}", Catalogue.from_config(config),
                  lambda: served[0], info=info).start()
    endpoint = proxy.endpoint
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    clients: dict[str, Aws] = {}

    def aws_for(region: str) -> Aws:
        if region not in clients:
            clients[region] = connect(None, region, endpoint)
        return clients[region]

    summary = seed(aws_for, config)
    try:
        summary["accounts"] = seed_accounts(endpoint, config, state_dir)
        info.update({k: summary["accounts"][k] for k in ("credentials", "profiles")})
    except Exception as exc:  # noqa: BLE001 - the runbook's sandbox still works; preflight and bastion say why not
        print(f"accounts: {exc!r}", file=sys.stderr, flush=True)
        summary["accounts"] = {"error": f"{type(exc).__name__}: {exc}"}
    served[0] = emit_traffic(aws_for, config, utcnow())
    write_atomic(Path(args.record), json.dumps({
        "pid": os.getpid(), "port": args.port, "endpoint": endpoint, "config": args.config, "ready": True,
        "state_dir": state_dir, "runs": str(Path(state_dir) / RUNS_SUBDIR),
        "started_at": utcnow().isoformat(timespec="seconds"), "seeded": summary}, indent=2) + "\n")
    load_balancers: dict[str, str] = {}
    while not stopping.wait(TRAFFIC_INTERVAL):
        try:
            served[0] = emit_traffic(aws_for, config, utcnow(), cache=load_balancers)
        except Exception as exc:  # noqa: BLE001 - keep serving; the log shows why traffic paused
            print(f"traffic: {exc}", file=sys.stderr, flush=True)
    proxy.stop()
    server.stop()
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())

"""`make screenshots`: a PNG of every page of the web admin, filled with example data.

Starts a responder, an admin and a data plane in a temporary store, builds an
example client through the Core API, sends real traffic through the gateway,
then visits each page in headless Chromium and writes var/screenshots/*.png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.configure import CoreApi
from bench.run import BENCH, Processes, answers, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REGION = "us-east-1"
KEY = "example-caller-key"


def example_client(api: CoreApi, upstream: str) -> dict:
    """A client with two credentials, a target, a proxy and rules, as a user would make them."""
    client = api.create("/api/clients", {"clientName": "Acme Payments"}, "clients")["clientId"]
    base = f"/api/clients/{client}"

    def credential(name: str, kind: str, auth: str, secret: dict) -> str:
        body = {"credentialName": name, "credentialType": kind, "credentialAuthType": auth,
                "credentialRegion": REGION, "credentialSecret": secret}  # fmt: skip
        return api.create(f"{base}/credentials", body, "credentials")["credentialId"]

    caller = credential("Checkout service", "proxy", "apiKey", {"key": "X-API-Key", "value": KEY})
    secret = credential("Payments API key", "target", "bearer", {"token": "sk_live_example"})
    target = api.create(
        f"{base}/targets",
        {"targetName": "Payments API", "targetRegion": REGION,
         "targetBaseURL": upstream + "/v2", "targetTestPath": "/health"},
        "targets",
    )["targetId"]  # fmt: skip
    proxy = api.create(
        f"{base}/proxies",
        {"proxyName": "Payments", "proxyAlias": "payments", "proxyRegion": REGION,
         "proxyProxyCredentialId": caller, "proxyTargetId": target,
         "proxyTargetCredentialId": secret},
        "proxies",
    )["proxyId"]  # fmt: skip
    for rule in (
        {"effect": "deny", "pathPattern": "^/admin", "notes": "never the admin API"},
        {"effect": "allow", "methods": ["GET", "POST"], "priority": 10},
    ):
        api.create(f"{base}/proxies/{proxy}/rules", rule, "rules")
    return {"client": client, "proxy": proxy, "target": target, "credential": caller}


def send_traffic(gateway: str, proxy: str) -> int:
    """A mix of granted and refused requests through the real gateway."""
    sent = 0
    for path, key in (
        [("/charges", KEY)] * 24 + [("/admin/keys", KEY)] * 3 + [("/charges", "x")] * 2
    ):
        requests.get(f"{gateway}/api/{proxy}{path}", headers={"X-API-Key": key}, timeout=10)
        sent += 1
    return sent


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    processes = Processes(Path(tempfile.mkdtemp(prefix="portcullis-screens-")))
    try:
        shoot(processes)
    finally:
        processes.stop()
    print(f"Screenshots in {OUT}")
    return 0


def shoot(processes: Processes) -> None:
    up_port, admin_port, gateway_port = free_port(), free_port(), free_port()
    upstream, gateway = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gateway_port}"
    processes.env["PORTCULLIS_GATEWAY_URL"] = gateway
    processes.start("responder", [sys.executable, BENCH / "responder.py", str(up_port)])
    processes.start("admin", [sys.executable, "run_admin.py", "serve", "--port", str(admin_port)])
    wait_for(lambda: "listening on" in processes.log("admin"), "the admin")
    admin = f"http://127.0.0.1:{admin_port}"
    token = re.search(r"\b(u-[\w-]+)", processes.log("admin")).group(1)
    example = example_client(CoreApi(admin, token), upstream)
    processes.start("gateway", [sys.executable, "run_proxy.py", "--port", str(gateway_port),
                                "--set", "portcullis_allow_targets=127.0.0.1"])  # fmt: skip
    wait_for(lambda: answers(f"{gateway}/api/payments/charges", {"X-API-Key": KEY}), "the gateway")
    sent = send_traffic(gateway, "payments") + 1
    log = f"{admin}/api/clients/{example['client']}/proxies/{example['proxy']}/requests"
    headers = {"Authorization": token}
    wait_for(lambda: requests.get(log, headers=headers).json().get("totalRequests", 0) >= sent,
             "the request log")  # fmt: skip
    subprocess.run([sys.executable, "run_admin.py", "roll-up-telemetry"], cwd=ROOT,
                   env=processes.env, check=True, capture_output=True)  # fmt: skip
    request_id = requests.get(log, headers=headers).json()["requests"][0]["requestId"]

    c = f"{admin}/ui/c/{example['client']}"
    p = f"{c}/proxies/{example['proxy']}"
    pages = [
        ("home", f"{admin}/ui/"),
        ("client", f"{c}/"),
        ("members", f"{c}/members"),
        ("credentials", f"{c}/credentials"),
        ("credential-new", f"{c}/credentials/new"),
        ("credential-rules", f"{c}/credentials/{example['credential']}/rules"),
        ("targets", f"{c}/targets"),
        ("target", f"{c}/targets/{example['target']}"),
        ("target-new", f"{c}/targets/new"),
        ("proxies", f"{c}/proxies"),
        ("proxy-new", f"{c}/proxies/new"),
        ("proxy", p),
        ("rules", f"{p}/rules"),
        ("rule-new", f"{p}/rules/new"),
        ("explainer", f"{p}/explain"),
        ("requests", f"{p}/requests"),
        ("request", f"{p}/requests/{request_id}"),
        ("telemetry", f"{p}/telemetry?interval=minute"),
        ("telemetry-hour", f"{p}/telemetry?interval=hour"),
        ("metrics", f"{p}/metrics"),
        ("account", f"{admin}/ui/account"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{admin}/ui/login")
        page.screenshot(path=OUT / "00-login.png", full_page=True)
        page.locator("#token-login").get_by_label("User token").fill(token)
        page.locator("#token-login").get_by_role("button", name="Sign in").click()
        for number, (name, url) in enumerate(pages, start=1):
            page.goto(url)
            if name == "explainer":
                page.get_by_label("Path below the proxy").fill("/admin/keys")
                page.get_by_role("button", name="Explain").click()
            if name == "target":
                page.get_by_role("button", name="Test through the gateway").click()
            page.screenshot(path=OUT / f"{number:02d}-{name}.png", full_page=True)
            print(f"  {number:02d}-{name}.png", flush=True)
        browser.close()


if __name__ == "__main__":
    sys.exit(main())

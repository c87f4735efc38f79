"""The web admin as a newcomer meets it (issue 15, item 4), in headless Chromium.

One walk through a new client: the overview's counts in words, the new-credential form
showing only the chosen type's fields and plain validation messages, the credentials
list's settings as `label: value`, a new proxy landing on its own page, the explainer in
words, the metrics and telemetry pages before and after the first requests (the freshest
view with data, countries "unknown" for loopback), and request details whose outcomes read
as good or bad as they are. Real admin, real gateway, real upstream on 127.0.0.1.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from admin.web.forms_credentials import AUTH_TYPES
from tests.proxy_support import TARGET_TOKEN, call, wait_until_served
from tests.support import Api, create, new_client
from tests.web_support import WAIT_S, reload_until, sign_in

CALLER = "newcomer-caller-key-0001"


def test_a_newcomer_reads_every_page_in_plain_words(
    page: Page, admin_server, make_user, gateway, upstream
):
    user = make_user()
    api = Api(admin_server.base_url, user.token)
    client_id = new_client(api, "Newcomer")
    base = f"{admin_server.base_url}/ui/c/{client_id}"
    sign_in(page, admin_server.base_url, user.token)

    # The overview counts in words: "0 proxy credentials".
    page.goto(f"{base}/")
    expect(page.locator("[data-count='proxy credential']")).to_have_text("0 proxy credentials")

    # The new-credential form: only the chosen type's fields; plain validation messages.
    page.goto(f"{base}/credentials/new")
    page.get_by_label("Name", exact=True).fill("Callers")
    # Use and type stay a pair the API accepts: a target-only type makes it a target one.
    page.get_by_label("Type", exact=True).select_option(label="OAuth2 (target credentials)")
    expect(page.get_by_label("Used as")).to_have_value("target")
    page.get_by_label("Used as").select_option("proxy")
    expect(page.get_by_label("Type", exact=True)).to_have_value("apiKey")
    page.get_by_label("Type", exact=True).select_option(label="API key")
    expect(page.get_by_label("Key value (API key)")).to_be_visible()
    for other in ("Prefix (bearer, JWT)", "Token (bearer, JWT)", "Username (basic auth)"):
        expect(page.get_by_label(other)).to_be_hidden()
    page.get_by_role("button", name="Create credential").click()
    key_field = page.locator(".field", has=page.get_by_label("Key value (API key)"))
    expect(key_field.locator(".error")).to_have_text("Enter the key's value.")
    expect(page.locator("main")).not_to_contain_text("Missing data for required field")
    page.get_by_label("Type", exact=True).select_option(label="Bearer token")
    expect(page.get_by_label("Prefix (bearer, JWT)")).to_be_visible()
    expect(page.get_by_label("Key value (API key)")).to_be_hidden()
    page.get_by_role("button", name="Create credential").click()
    token_field = page.locator(".field", has=page.get_by_label("Token (bearer, JWT)"))
    expect(token_field.locator(".error")).to_have_text("Enter the token.")
    page.get_by_label("Type", exact=True).select_option(label="API key")
    page.get_by_label("Key value (API key)").fill(CALLER)
    page.get_by_label("Header name (API key; empty: Authorization)").fill("X-API-Key")
    page.get_by_role("button", name="Create credential").click()
    expect(page.get_by_text("Credential Callers created")).to_be_visible()

    # The list's settings read as "label: value", not as JSON.
    settings = page.locator("tr[data-credential='Callers'] td.settings")
    expect(settings.locator("dt", has_text="Sent in")).to_have_count(1)
    expect(settings).to_contain_text("X-API-Key")
    expect(settings).not_to_contain_text("{")
    expect(page.locator("tr[data-credential='Callers']")).to_contain_text("proxy credential")
    page.locator("tr[data-credential='Callers']").get_by_role("link", name="Callers").click()
    details = page.locator("#credential-details")
    expect(details.locator("tr", has_text="Sent in")).to_contain_text("header")
    expect(details).to_contain_text("API key")
    expect(details).not_to_contain_text('"')

    target_cred = create(
        api,
        f"/api/clients/{client_id}/credentials",
        {"credentialName": "Upstream", "credentialType": "target", "credentialRegion": "us-east-1",
         "credentialAuthType": "bearer", "credentialSecret": {"token": TARGET_TOKEN}},
        "credentials",
    )  # fmt: skip
    create(
        api,
        f"/api/clients/{client_id}/targets",
        {"targetName": "Echo", "targetBaseURL": upstream.base_url + "/base",
         "targetRegion": "us-east-1"},
        "targets",
    )  # fmt: skip
    page.goto(f"{base}/")
    expect(page.locator("[data-count='proxy credential']")).to_have_text("1 proxy credential")
    expect(page.locator("[data-count='target']")).to_have_text("1 target")
    expect(page.locator("[data-count='proxy']")).to_have_text("0 proxies")

    # A new proxy lands on its own page: its URL and a curl example.
    page.goto(f"{base}/proxies/new")
    page.get_by_label("Name", exact=True).fill("First proxy")
    page.get_by_label("Target credential (what the gateway injects)").select_option(
        target_cred["credentialId"]
    )
    page.get_by_role("button", name="Create proxy").click()
    expect(page.get_by_role("heading", name="First proxy")).to_be_visible()
    proxy_id = re.search(r"/proxies/(proxy_[0-9a-f]+)$", page.url).group(1)
    expect(page.locator("#proxy-url")).to_have_text(re.compile(rf"/api/{proxy_id}$"))
    expect(page.locator("#curl-example")).to_contain_text('-H "X-API-Key: $PROXY_KEY"')

    # The explainer: scopes in words, counts pluralised.
    page.goto(f"{base}/proxies/{proxy_id}/explain")
    page.get_by_label("Path below the proxy").fill("/v1/items")
    page.get_by_role("button", name="Explain").click()
    scopes = page.locator("#explanation table")
    expect(scopes.locator("tr[data-scope=proxyCredential] td").first).to_have_text(
        "proxy credential"
    )
    expect(scopes.locator("tr[data-scope=targetCredential] td").first).to_have_text(
        "target credential"
    )
    expect(scopes).to_contain_text("0 matching rules")
    expect(page.locator("#explanation")).not_to_contain_text("proxyCredential")

    # Before any request: the metrics page says when its first point appears; telemetry
    # says requests show in the minute view within seconds.
    page.goto(f"{base}/proxies/{proxy_id}/metrics")
    expect(page.locator("#metrics-first-point")).to_contain_text(
        "the first one appears about 10 seconds after the first request"
    )
    page.goto(f"{base}/proxies/{proxy_id}/telemetry")
    expect(page.locator("#telemetry-empty")).to_contain_text("minute view")

    # Real requests: one delivered, one refused for a wrong key.
    served = wait_until_served(
        gateway, f"/api/{proxy_id}/v1/items", {"X-API-Key": CALLER},
        lambda r: r.status_code == 200,
    )  # fmt: skip
    assert served.status_code == 200, served.text
    refused = call(gateway, "GET", f"/api/{proxy_id}/v1/items", headers={"X-API-Key": "wrong"})
    assert refused.status_code == 401

    # Telemetry opens on the freshest view with data (minute), countries "unknown".
    page.goto(f"{base}/proxies/{proxy_id}/telemetry")
    reload_until(page, page.locator("figure[data-chart=Requests] circle"))
    expect(page.locator("#telemetry-interval")).to_have_text("minute")
    expect(page.locator("figure[data-chart=Countries] rect[data-label=unknown]")).to_have_count(1)
    expect(page.locator("figure[data-chart=Countries]")).not_to_contain_text("XX")
    page.goto(f"{base}/proxies/{proxy_id}/telemetry?interval=hour")
    expect(page.locator("#telemetry-lag")).to_contain_text("compacted from the minute view")
    page.locator("#telemetry-lag").get_by_role("link", name="minute view").click()
    expect(page.locator("#telemetry-interval")).to_have_text("minute")

    # Request details read as good for the delivered one, bad for the refused one.
    page.goto(f"{base}/proxies/{proxy_id}/requests")
    rows = page.locator("#request-log tbody tr")
    reload_until(page, rows.filter(has=page.locator("td.bad", has_text="401")))
    rows.filter(has=page.locator("td.ok", has_text="200")).first.get_by_role("link").click()
    expect(page.locator("#outcome")).to_have_class(re.compile(r"\bok\b"))
    expect(page.locator("#outcome")).to_contain_text("Delivered: the target answered 200")
    checks = page.locator("#validation")
    expect(checks).to_contain_text("✓ No gateway error")
    expect(checks).to_contain_text("✓ No configuration error")
    expect(checks).not_to_contain_text("✗")
    expect(checks.locator("li.bad")).to_have_count(0)
    page.go_back()
    rows.filter(has=page.locator("td.bad", has_text="401")).first.get_by_role("link").click()
    expect(page.locator("#outcome")).to_have_class(re.compile(r"\bbad\b"))
    expect(page.locator("#outcome")).to_contain_text("Stopped by the gateway (401)")
    expect(checks.locator("li.bad")).to_have_count(1)
    expect(checks.locator("li.bad")).to_contain_text("✗")
    expect(checks.locator("li.skipped").first).to_contain_text("Not reached")
    expect(checks).to_contain_text("✓ No gateway error")


LIBRARY_WORDING = re.compile(
    r"Missing data for required field|Field may not be null|Shorter than minimum length"
    r"|Longer than maximum length|Length must be between|Not a valid (integer|URL|string|email)"
    r"|Unknown field|Must be one of|Must be greater than|Must be less than|This field is required"
    r"|\b[a-z]+[A-Z]\w*\b"  # an API name (jwksUrl, tokenUrl) rather than the form's words
)


def test_every_credential_type_left_empty_is_told_what_to_enter(
    page: Page, admin_server, make_user
):
    """The class of the flaw: no credential type's empty form answers in library words."""
    user = make_user()
    client_id = new_client(Api(admin_server.base_url, user.token), "Empty forms")
    sign_in(page, admin_server.base_url, user.token)
    shown = {}
    for auth_type, _label in AUTH_TYPES:
        if auth_type == "none":
            continue  # nothing to enter
        page.goto(f"{admin_server.base_url}/ui/c/{client_id}/credentials/new")
        page.get_by_label("Name", exact=True).fill(f"Empty {auth_type}")
        used_as = "proxy" if auth_type == "jwtVerify" else "target"
        page.get_by_label("Used as").select_option(used_as)
        page.get_by_label("Type", exact=True).select_option(auth_type)
        page.get_by_role("button", name="Create credential").click()
        errors = page.locator("#credential-form .error")
        expect(errors.first).to_be_visible()
        shown[auth_type] = errors.all_inner_texts()
    worded = {t: [e for e in texts if LIBRARY_WORDING.search(e)] for t, texts in shown.items()}
    assert not any(worded.values()), worded
    assert "Enter the key's value." in shown["apiKey"]
    assert "Enter the username." in shown["basicAuth"]
    assert "Enter a JWKS URL or a shared secret (one of them)." in shown["jwtVerify"]

    # Without the script, a use and type the API does not pair are refused in words.
    context = page.context.browser.new_context(java_script_enabled=False)
    try:
        plain = context.new_page()
        plain.set_default_timeout(WAIT_S * 1000)
        sign_in(plain, admin_server.base_url, user.token)
        plain.goto(f"{admin_server.base_url}/ui/c/{client_id}/credentials/new")
        plain.get_by_label("Name", exact=True).fill("Mismatched")
        plain.get_by_label("Used as").select_option("proxy")
        plain.get_by_label("Type", exact=True).select_option("oauth2")
        plain.get_by_role("button", name="Create credential").click()
        type_field = plain.locator(".field", has=plain.get_by_label("Type", exact=True))
        expect(type_field.locator(".error")).to_have_text(
            "This type cannot be used for a proxy credential: choose another type or use."
        )
    finally:
        context.close()

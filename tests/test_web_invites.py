"""Invites in headless Chromium: an owner invites a new person, the e-mail arrives at a real
SMTP server, the person follows its link in a browser of their own, creates an account and
lands in the client with the invited role; used, revoked, expired and unknown links get a
clear refusal page; an existing account signs in and joins.

A real admin process (SMTP pointed at a real aiosmtpd server on 127.0.0.1) over the real
store (SQLite or PostgreSQL); Debian's Chromium driven by Playwright. Nothing is mocked.
"""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from models import Invite, utcnow
from models.store import make_engine
from tests.smtp_support import SmtpServer, text_of
from tests.support import Api, create_user, new_client, start_admin
from tests.web_support import PASSWORD, WAIT_S, sign_in

LINK = re.compile(r"https?://\S+/ui/invites/pci_[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """An admin that e-mails through a real SMTP server, and that server."""
    with SmtpServer() as smtp:
        admin = start_admin(tmp_path_factory.mktemp("invites-admin"), PORTCULLIS_SMTP_URL=smtp.url)
        yield SimpleNamespace(admin=admin, smtp=smtp)
        admin.stop()


def made_user(team, email: str) -> str:
    """A new user; their token."""
    return create_user(team.admin, email).token


def fresh_page(browser: Browser) -> Page:
    """A browser context of its own: no cookie of anyone else's."""
    page = browser.new_context().new_page()
    page.set_default_timeout(WAIT_S * 1000)
    return page


def invite(page: Page, email: str, role: str) -> str:
    """Fill the Members page's invite form; the link it shows once."""
    form = page.locator("#invite-form")
    form.get_by_label("Email to invite").fill(email)
    form.get_by_label("Role").select_option(role)
    form.get_by_role("button", name="Invite").click()
    expect(page.locator("#new-invite")).to_be_visible()
    return page.locator("#invite-url").inner_text().strip()


def expect_refused(page: Page, link: str, status: int, words: str) -> None:
    answer = page.goto(link)
    assert answer.status == status, (link, answer.status)
    expect(page.locator("#invite-refused")).to_be_visible()
    expect(page.locator("main")).to_contain_text(words)
    expect(page.locator("main")).to_contain_text("Ask the client's owner to resend the invite")
    expect(page.locator("#signup-form")).to_have_count(0)
    expect(page.locator("#accept-form")).to_have_count(0)


def test_a_new_person_joins_from_the_emailed_link_and_the_link_works_once(
    page: Page, browser: Browser, team
):
    base = team.admin.base_url
    owner_email = "owner.story@example.test"
    owner_token = made_user(team, owner_email)
    client_id = new_client(Api(base, owner_token), "Team Co")
    sign_in(page, base, owner_token)
    page.goto(f"{base}/ui/c/{client_id}/members")

    typed = "New.Person@example.test"  # stored and matched without regard to case
    newcomer = typed.lower()
    shown = invite(page, typed, "user")
    expect(page.locator("#invite-emailed")).to_have_text(f"E-mailed to {newcomer}.")
    expect(page.locator("#invites")).to_contain_text(newcomer)
    # The e-mail, at the real SMTP server: the same link, in its text and HTML parts.
    mail = team.smtp.mailbox.to(newcomer)
    assert mail["Subject"] == "You are invited to Team Co on Portcullis"
    assert LINK.search(text_of(mail, "plain")).group(0) == shown
    assert shown in text_of(mail, "html")
    # Shown once: the Members page does not show it again, nor does the API's list.
    page.goto(f"{base}/ui/c/{client_id}/members")
    expect(page.locator("#invite-url")).to_have_count(0)
    expect(page.locator("#invites")).to_contain_text(newcomer)
    assert shown.rsplit("/", 1)[1] not in page.content()
    # An email already invited, and an email already a member, are told so.
    invite_form = page.locator("#invite-form")
    for email, words in ((typed.upper(), "resend or revoke"), (owner_email, "already a member")):
        invite_form.get_by_label("Email to invite").fill(email)
        invite_form.get_by_role("button", name="Invite").click()
        expect(invite_form.get_by_role("alert").first).to_contain_text(
            re.compile(words, re.IGNORECASE)
        )
        expect(page.locator("#invite-url")).to_have_count(0)

    # The newcomer, in a browser of their own, follows the link from the e-mail.
    theirs = fresh_page(browser)
    answer = theirs.goto(LINK.search(text_of(mail, "plain")).group(0))
    assert answer.status == 200
    assert answer.headers.get("referrer-policy") == "no-referrer"  # the token is in the URL
    expect(theirs.locator("#invite-summary")).to_contain_text("Team Co")
    expect(theirs.locator("#invite-summary .invited-role")).to_have_text("user")
    signup = theirs.locator("#signup-form")
    expect(signup.get_by_role("heading", name="Create your account")).to_be_visible()
    expect(signup.get_by_label("Email")).to_have_value(newcomer)
    expect(signup.get_by_label("Email")).not_to_be_editable()
    # Passwords that differ, and one the account rules refuse: said next to the field.
    signup.get_by_label("Your name").fill("Nia Newcomer")
    for first, second, words in (
        (PASSWORD, PASSWORD + "x", "The two passwords differ."),
        ("short", "short", "10"),
    ):
        signup.get_by_label("Password (10 characters or more)").fill(first)
        signup.get_by_label("Password again").fill(second)
        signup.get_by_role("button", name="Create account and join").click()
        expect(signup.locator(".error").first).to_contain_text(words)
    signup.get_by_label("Password (10 characters or more)").fill(PASSWORD)
    signup.get_by_label("Password again").fill(PASSWORD)
    signup.get_by_role("button", name="Create account and join").click()
    # Signed in, in the client, with the invited role: a user gets no owner controls.
    theirs.wait_for_url(f"{base}/ui/c/{client_id}/")
    expect(theirs.locator("nav.sections .role")).to_have_text("user")
    expect(theirs.locator(".me")).to_contain_text(newcomer)
    theirs.locator("nav.sections").get_by_role("link", name="Members", exact=True).click()
    expect(theirs.locator("table").first).to_contain_text(newcomer)
    expect(theirs.get_by_text("Only owners change members.")).to_be_visible()
    expect(theirs.locator("#invite-form")).to_have_count(0)
    expect(theirs.get_by_role("link", name="Change role")).to_have_count(0)
    # Both sides are told: the newcomer under "For you", the client's members under its tab.
    theirs.locator("#bell").click()
    expect(theirs.locator("#notifications")).to_contain_text("You joined Team Co as user")
    page.goto(f"{base}/ui/notifications?tab={client_id}")
    expect(page.locator("#notifications tbody tr").first).to_contain_text("joined Team Co")
    expect(page.locator("#notifications tbody tr").first).to_contain_text("unread")
    # Their password works for signing in again.
    sign_out = theirs.locator(".me").get_by_role("button", name="Sign out")
    sign_out.click()
    theirs.locator("#password-login").get_by_label("Email").fill(newcomer)
    theirs.locator("#password-login").get_by_label("Password").fill(PASSWORD)
    theirs.locator("#password-login").get_by_role("button", name="Sign in").click()
    expect(theirs.get_by_role("heading", name="Your clients")).to_be_visible()
    expect(theirs.get_by_role("link", name="Team Co").first).to_be_visible()

    # The link works once: signed in, and in yet another browser, it is refused clearly.
    expect_refused(theirs, shown, 410, "already used")
    expect_refused(fresh_page(browser), shown, 410, "already used")
    # The owner sees the member, and the invite is no longer pending.
    page.goto(f"{base}/ui/c/{client_id}/members")
    expect(page.locator("table").first).to_contain_text(newcomer)
    expect(page.locator("#invites")).to_have_count(0)
    expect(page.get_by_text("No pending invites.")).to_be_visible()


def test_revoked_expired_resent_and_unknown_links_and_an_existing_account_joining(
    page: Page, browser: Browser, team
):
    base = team.admin.base_url
    owner_token = made_user(team, "owner.refusals@example.test")
    client_id = new_client(Api(base, owner_token), "Refusals Co")
    sign_in(page, base, owner_token)
    members = f"{base}/ui/c/{client_id}/members"
    page.goto(members)

    # Revoked: Revoke asks first, then the link is refused.
    revoked = invite(page, "revoked@example.test", "user")
    page.goto(members)
    row = page.locator("#invites tr", has_text="revoked@example.test")
    row.get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", name="Revoke this invite?")).to_be_visible()
    page.get_by_role("button", name="Revoke invite").click()
    expect(page.get_by_role("status")).to_have_text("Invite revoked.")
    expect(page.locator("#invites tr", has_text="revoked@example.test")).to_have_count(0)
    expect_refused(fresh_page(browser), revoked, 410, "revoked")

    # Expired: its expiry moved into the past in the store.
    expired = invite(page, "expired@example.test", "admin")
    engine = make_engine(team.admin.database_url)
    with engine.begin() as connection:
        connection.execute(
            update(Invite)
            .where(Invite.email == "expired@example.test")
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    engine.dispose()
    expect_refused(fresh_page(browser), expired, 410, "expired")

    # Resent: a new link e-mailed and shown once; the old link no longer opens the invite.
    first = invite(page, "resent@example.test", "user")
    page.goto(members)
    page.locator("#invites tr", has_text="resent@example.test").get_by_role(
        "button", name="Resend"
    ).click()
    expect(page.locator("#new-invite")).to_contain_text("the previous link no longer works")
    second = page.locator("#invite-url").inner_text().strip()
    assert second != first
    team.smtp.mailbox.wait_for(lambda m: second in text_of(m, "plain"))
    expect_refused(fresh_page(browser), first, 404, "not known")
    assert fresh_page(browser).goto(second).status == 200

    # Unknown links, of any shape (encoded NUL, ?, non-ASCII, very long): a 404 page, never a 500.
    shapes = ("pci_nothing-like-this", "x", "pci_" + "A" * 43, "pci_%00", "a%3Fb%23c")
    for token in (*shapes, "pci_%F0%9F%98%80", "pci_%ZZ", "p" * 5000):
        expect_refused(fresh_page(browser), f"{base}/ui/invites/{token}", 404, "not known")

    # An existing account: signed out it is asked to sign in, comes back, and joins.
    existing_email = "already.here@example.test"
    existing_token = made_user(team, existing_email)
    assert (
        Api(base, existing_token)
        .put("/api/users/me/password", json={"password": PASSWORD})
        .status_code
        == 200
    )
    link = invite(page, existing_email, "admin")
    theirs = fresh_page(browser)
    theirs.goto(link)
    expect(theirs.locator("#signup-form")).to_have_count(0)
    # Signed in as someone else first: told whose invite it is, no Join button.
    other = fresh_page(browser)
    sign_in(other, base, made_user(team, "someone.else@example.test"))
    other.goto(link)
    expect(other.locator("#other-account")).to_contain_text(existing_email)
    expect(other.locator("#accept-form")).to_have_count(0)
    # The right person signs in from the invite page and lands back on it.
    theirs.locator("#sign-in-first").get_by_role(
        "link", name=f"Sign in as {existing_email}"
    ).click()
    theirs.locator("#password-login").get_by_label("Email").fill(existing_email)
    theirs.locator("#password-login").get_by_label("Password").fill(PASSWORD)
    theirs.locator("#password-login").get_by_role("button", name="Sign in").click()
    theirs.locator("#accept-form").get_by_role("button", name="Join Refusals Co").click()
    theirs.wait_for_url(f"{base}/ui/c/{client_id}/")
    expect(theirs.locator("nav.sections .role")).to_have_text("admin")
    # An admin sees the pending invites, but only owners invite, resend and revoke.
    theirs.locator("nav.sections").get_by_role("link", name="Members", exact=True).click()
    expect(theirs.locator("#invites")).to_contain_text("resent@example.test")
    expect(theirs.locator("#invites").get_by_role("button", name="Resend")).to_have_count(0)
    expect(theirs.locator("#invites").get_by_role("link", name="Revoke")).to_have_count(0)
    expect(theirs.locator("#invite-form")).to_have_count(0)
    expect_refused(other, link, 410, "already used")

"""mitmproxy's own addons the data plane has no use for, taken out of the addon chain.

mitmproxy walks every addon of its chain for every event of every flow (eight walks a
request, counting the `update` after each), whether the addon has a hook for it or
not: about 1.4 µs per addon and walk here (a generator context manager, a hook lookup).
The addons below replay, rewrite or block traffic by their own options, authenticate
proxy clients, serve mitmproxy's onboarding app, or work on DNS; a credential gateway
uses none of them, and those that change requests or answers would
do so outside the gateway's checks. Setting one of their options is refused rather
than silently ignored.

What stays: mitmproxy's core (proxy server, layers, TLS, scripts, options), its logging
and flow output (`-q`, `-w`), `Block`, `DisableH2C`, `UpdateAltSvc`, and
under mitmweb everything its UI uses (commands, export, comments).
"""

from __future__ import annotations

from mitmproxy import ctx, exceptions

# Each removed addon (by mitmproxy's name for it) with the options it declares (mitmproxy 12).
UNUSED: dict[str, tuple[str, ...]] = {
    "anticache": ("anticache",),
    "anticomp": ("anticomp",),
    "blocklist": ("block_list",),
    "browser": (),
    "clientplayback": ("client_replay", "client_replay_concurrency"),
    "dnsresolver": ("dns_use_hosts_file", "dns_name_servers"),
    "maplocal": ("map_local",),
    "mapremote": ("map_remote",),
    "modifybody": ("modify_body",),
    "modifyheaders": ("modify_headers",),
    "onboarding": ("onboarding", "onboarding_host"),
    "proxyauth": ("proxyauth",),  # callers authenticate with the gateway's own credentials
    "savehar": ("hardump",),
    "serverplayback": (
        "server_replay", "server_replay_kill_extra", "server_replay_extra",
        "server_replay_reuse", "server_replay_nopop", "server_replay_refresh",
        "server_replay_use_headers", "server_replay_ignore_content",
        "server_replay_ignore_params", "server_replay_ignore_payload_params",
        "server_replay_ignore_host", "server_replay_ignore_port",
    ),
    "stickyauth": ("stickyauth",),
    "stickycookie": ("stickycookie",),
    "stripdnshttpsrecords": ("strip_ech",),
    "upstreamauth": ("upstream_auth",),
}  # fmt: skip
# Without mitmweb's UI (mitmdump), these serve only interactive use (commands, command
# history) or mitmdump as a flow-file tool (`-r`, `--keepserving`): out too.
NO_UI_UNUSED: dict[str, tuple[str, ...]] = {
    "commandhistory": ("command_history",),
    "comment": (),
    "cut": (),
    "export": ("export_preserve_original_ip",),
    "keepserving": ("keepserving",),
    "readfilestdin": ("rfile", "readfile_filter"),
}
UI_ADDON = "webaddon"  # present when mitmweb runs the gateway


class UnusedAddons:
    """Removes `UNUSED` (and, without mitmweb's UI, `NO_UI_UNUSED`) from mitmproxy's chain
    when the gateway loads; refuses setting their options."""

    def __init__(self):
        self.refused: dict[str, str] = {}  # option: the removed addon that declared it

    def load(self, loader) -> None:
        # Taken out before `running`, so none of them has started anything; not through
        # `AddonManager.remove`, which calls `done` synchronously (ClientPlayback's is async).
        manager = loader.master.addons
        unused = dict(UNUSED)
        if UI_ADDON not in manager.lookup:
            unused.update(NO_UI_UNUSED)
        removed = [manager.lookup.pop(name) for name in unused if name in manager.lookup]
        manager.chain = [addon for addon in manager.chain if addon not in removed]
        self.refused = {option: addon for addon, options in unused.items() for option in options}

    def configure(self, updated) -> None:
        options = ctx.options
        for option in sorted(updated & self.refused.keys()):
            if options.has_changed(option):
                raise exceptions.OptionsError(
                    f"{option}: the Portcullis data plane does not load mitmproxy's "
                    f"{self.refused[option]} addon (it would act on traffic outside the "
                    "gateway's checks, or serves no purpose here); remove this option"
                )

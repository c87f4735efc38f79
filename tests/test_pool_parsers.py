"""The pool's parser plugins: what each format yields, what is skipped, what detect() picks.

Pure functions (no store, no process): the same on both stores, so they run on SQLite only.
"""

from __future__ import annotations

import json

import pytest

from pool.parsers import PARSERS, Candidate, detect
from pool.parsers.common import parse_endpoint
from tests.pool_source_server import MESSY_EXPECTED, MESSY_LIST

pytestmark = pytest.mark.sqlite_only


def keys(candidates) -> set[tuple]:
    return {(c.protocol, c.host, c.port) for c in candidates}


def test_registry_order_and_shape():
    assert list(PARSERS) == ["json", "csv", "html", "plaintext"]
    for name, parser in PARSERS.items():
        assert parser.name == name
        assert callable(parser.supports) and callable(parser.parse)


def test_endpoints_one_by_one():
    cases = {
        "1.2.3.4:8080": (None, "1.2.3.4", 8080, None, None),
        "http://1.2.3.4:80": ("http", "1.2.3.4", 80, None, None),
        "SOCKS5H://u:p@host.example:1080/": ("socks5", "host.example", 1080, "u", "p"),
        "socks://[2001:db8::1]:1080": ("socks5", "2001:db8::1", 1080, None, None),
        "socks4a://1.2.3.4:1": ("socks4", "1.2.3.4", 1, None, None),
        "https://us%3Aer:p%40ss:w@1.2.3.4:65535": ("https", "1.2.3.4", 65535, "us:er", "p@ss:w"),
        "h.example:3128:bob:pw": (None, "h.example", 3128, "bob", "pw"),
        "[::FFFF:1.2.3.4]:81": (None, "::ffff:102:304", 81, None, None),
        "001.002.003.004:8": (None, "1.2.3.4", 8, None, None),
    }
    for text, (protocol, host, port, user, password) in cases.items():
        found = parse_endpoint(text)
        assert found == Candidate(host, port, protocol, user, password, {}), text
    refused = [
        "1.2.3.4",  # no port
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "1.2.3.4:-1",
        "1.2.3.4:80x",
        "256.1.1.1:80",
        "2001:db8::1:80",  # a bare IPv6 address: which part is the port?
        "[2001:db8::zz]:80",
        "ftp://1.2.3.4:21",
        "://1.2.3.4:80",
        "u@1.2.3.4:80",  # a user without a password separator
        ":p@1.2.3.4:80",  # a password without a user
        "under_score.example:80",
        "-lead.example:80",
        "a..b:80",
        "1.2.3:80",  # a numeric last label is not a host name
        "x" * 254 + ":80",
        "",
    ]
    for text in refused:
        assert parse_endpoint(text) is None, text


def test_plaintext_messy_list():
    parser = PARSERS["plaintext"]
    found = list(parser.parse(MESSY_LIST))
    assert keys(found) == MESSY_EXPECTED
    assert len(found) == len(MESSY_EXPECTED)  # duplicates collapsed
    alice = next(c for c in found if c.host == "203.0.113.14")
    assert (alice.username, alice.password) == ("alice", "s3cr@t")
    assert detect(MESSY_LIST, "text/plain") is parser
    assert not parser.supports("# only comments\n\n// here\n", "text/plain")
    separated = "203.0.113.1:8080,US\n203.0.113.2:3128|elite|DE\n203.0.113.3:80;fast\n"
    found = list(parser.parse(separated + "http://u:p,w;x@203.0.113.4:81\n"))
    assert keys(found) == {
        (None, "203.0.113.1", 8080),
        (None, "203.0.113.2", 3128),
        (None, "203.0.113.3", 80),
        ("http", "203.0.113.4", 81),
    }
    assert found[-1].password == "p,w;x"  # separators inside credentials stay
    assert detect(separated, "text/plain") is parser


def test_json_shapes():
    parser = PARSERS["json"]
    objects = [
        {"ip": "203.0.113.1", "port": 8080, "protocol": "HTTP", "country": "US"},
        {"host": "203.0.113.2", "port": "3128", "type": "socks"},
        {"address": "2001:db8::2", "port": 1080, "protocols": ["socks4", "socks5"]},
        {"addr": "proxy.example.test", "port": 80, "username": "u", "password": "p"},
        {"proxy": "https://203.0.113.3:443"},
        {"IP": "203.0.113.4", "Port": 81, "anonymity": "elite", "extra": {"nested": 1}},
        "203.0.113.5:82",
        {"ip": "203.0.113.6", "port": 99999},  # bad port: skipped
        {"ip": "203.0.113.7", "port": 80, "protocol": "gopher"},  # unknown protocol: skipped
        {"ip": ["not", "a", "string"], "port": 80},
        {"port": 80},
        42,
        None,
        {"ip": "203.0.113.1", "port": 8080, "protocol": "http"},  # a duplicate
    ]
    expected = {
        ("http", "203.0.113.1", 8080),
        ("socks5", "203.0.113.2", 3128),
        ("socks4", "2001:db8::2", 1080),
        ("socks5", "2001:db8::2", 1080),
        (None, "proxy.example.test", 80),
        ("https", "203.0.113.3", 443),
        (None, "203.0.113.4", 81),
        (None, "203.0.113.5", 82),
    }
    wrappers = [
        objects,
        {"data": objects},
        {"proxies": objects, "total": 9},
        {"Items": objects},
        {"result": {"list": objects}},
    ]
    for document in wrappers:
        text = json.dumps(document)
        found = list(parser.parse(text))
        assert keys(found) == expected, document.keys() if isinstance(document, dict) else "list"
        assert len(found) == len(expected)
        assert detect(text, "application/json") is parser
        assert detect(text, "text/plain") is parser  # by content, whatever the type says
    first = next(c for c in parser.parse(json.dumps(objects)) if c.host == "203.0.113.1")
    assert first.tags == {"country": "US"}
    user = next(c for c in parser.parse(json.dumps(objects)) if c.username)
    assert (user.username, user.password) == ("u", "p")
    for not_a_list in ['{"status": "ok"}', "[]", "[1, 2]", '{"data": "x"}', "[" * 100 + "]" * 100]:
        assert not parser.supports(not_a_list, "application/json"), not_a_list
        assert list(parser.parse(not_a_list)) == []


def test_csv_with_and_without_header():
    parser = PARSERS["csv"]
    with_header = (
        "IP Address,Port,Protocol,Country,Username,Password\n"
        "203.0.113.1,8080,http,US,,\n"
        "203.0.113.2,1080,SOCKS5,DE,u,p\n"
        "203.0.113.3,notaport,http,FR,,\n"
        '"2001:db8::3",3128,https,NL,,\n'
        "203.0.113.1,8080,http,US,,\n"
    )
    found = list(parser.parse(with_header))
    assert keys(found) == {
        ("http", "203.0.113.1", 8080),
        ("socks5", "203.0.113.2", 1080),
        ("https", "2001:db8::3", 3128),
    }
    assert found[0].tags == {"country": "US"}
    assert (found[1].username, found[1].password) == ("u", "p")
    semicolons = "host;port;type\n203.0.113.4;81;socks4\n"
    assert keys(parser.parse(semicolons)) == {("socks4", "203.0.113.4", 81)}
    bare = "203.0.113.5,82\n203.0.113.6,83,https\nbroken,row\n"
    assert keys(parser.parse(bare)) == {(None, "203.0.113.5", 82), ("https", "203.0.113.6", 83)}
    for text in (with_header, semicolons, bare):
        assert detect(text, "text/csv") is parser
        assert detect(text, "") is parser
    assert not parser.supports("203.0.113.1:8080\n", "text/plain")  # plaintext, not CSV
    assert detect("203.0.113.1:8080\n", "text/plain") is PARSERS["plaintext"]


def test_html_tables_and_text():
    parser = PARSERS["html"]
    page = """<!DOCTYPE html><html><head><title>Free proxies</title>
    <script>var decoy = "198.51.100.99:1234";</script><style>.x{}</style></head><body>
    <table><thead><tr><th>IP Address</th><th>Port</th><th>Country</th><th>Https</th></tr></thead>
    <tbody>
      <tr><td>203.0.113.1</td><td>8080</td><td>US</td><td>yes</td></tr>
      <tr><td> 203.0.113.2 </td><td><b>3128</b></td><td>DE</td><td>no</td></tr>
      <tr><td>203.0.113.3</td><td>huge</td><td>FR</td><td>no</td></tr>
    </tbody></table>
    <table><tr><td>2001:db8::4</td><td>1080</td></tr></table>
    <p>Also try 203.0.113.5:81, socks5://203.0.113.6:1080 and [2001:db8::7]:8000 &amp; more.</p>
    </body></html>"""
    found = list(parser.parse(page))
    assert keys(found) == {
        ("https", "203.0.113.1", 8080),
        (None, "203.0.113.2", 3128),
        (None, "2001:db8::4", 1080),
        (None, "203.0.113.5", 81),
        ("socks5", "203.0.113.6", 1080),
        (None, "2001:db8::7", 8000),
    }  # not the script's decoy
    assert next(c for c in found if c.host == "203.0.113.1").tags == {"country": "US"}
    assert detect(page, "text/html") is parser
    assert detect(page, "text/plain") is parser  # by its tags
    assert not parser.supports("<html><body>No proxies today</body></html>", "text/html")


def test_detect_finds_nothing_in_prose():
    for text, content_type in [
        ("", "text/plain"),
        ("Hello, world. Nothing to see here.\n", "text/plain"),
        ("<html><body><p>Maintenance</p></body></html>", "text/html"),
        ('{"error": "rate limited"}', "application/json"),
        ("a,b,c\n1,2,3\n", "text/csv"),
    ]:
        assert detect(text, content_type) is None, text

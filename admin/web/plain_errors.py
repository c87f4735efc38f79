"""The API's field errors in plain words, in one place: every form's errors go through here.

The Core API speaks marshmallow ("Missing data for required field."); a person
filling a form wants to be told what to do ("Enter the key's value."). Known
fields get their own sentence when left empty; other messages are reworded by
shape; anything not recognised is shown as the API wrote it.
"""

from __future__ import annotations

import re

# What to say when the field (API name) was left empty.
ENTER = {
    "credentialName": "Enter a name for the credential.",
    "credentialSecret.value": "Enter the key's value.",
    "credentialSecret.token": "Enter the token.",
    "credentialSecret.username": "Enter the username.",
    "credentialSecret.password": "Enter the password.",
    "credentialSecret.headers": "Enter at least one header, as 'Name: value'.",
    "credentialSecret.tokenUrl": "Enter the token URL, like https://auth.example.com/token.",
    "credentialSecret.clientId": "Enter the client ID.",
    "credentialSecret.clientSecret": "Enter the client secret.",
    "credentialSecret.refreshToken": "Enter the refresh token.",
    "credentialSecret.authorizeUrl": "Enter the authorize URL.",
    "targetName": "Enter a name for the target.",
    "targetBaseURL": "Enter the API's base URL, like https://api.example.com/v1.",
    "proxyName": "Enter a name for the proxy.",
    "clientName": "Enter a name for the client.",
    "email": "Enter an email address.",
    "password": "Enter a password.",
    "path": "Enter a path, like /v1/items.",
    "name": "Enter a name.",
}
# Whole messages that name the API's fields, said with the form's words.
REWORDED = {
    "Give exactly one of jwksUrl or secret.": "Enter a JWKS URL or a shared secret (one of them).",
    "Give either header or query, not both.": "Give a header name or a query parameter name, "
    "not both.",
    "Name the query parameter (query or key).": "Enter the query parameter's name.",
}
EMPTY = {
    "Missing data for required field.",
    "Field may not be null.",
    "Shorter than minimum length 1.",
}
# (message pattern, plain words): for any field.
SHAPES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"Not a valid integer\."), "Enter a whole number."),
    (re.compile(r"Not a valid number\."), "Enter a number."),
    (re.compile(r"Not a valid URL\."), "Enter a full URL, like https://api.example.com."),
    (re.compile(r"Not a valid email address\."), "Enter an email address, like ann@example.com."),
    (re.compile(r"Not a valid boolean\."), "Choose yes or no."),
    (re.compile(r"Not a valid string\."), "Enter text."),
    (re.compile(r"Longer than maximum length (\d+)\."), "Use at most {0} characters."),
    (re.compile(r"Shorter than minimum length (\d+)\."), "Use at least {0} characters."),
    (re.compile(r"Length must be between (\d+) and (\d+)\."), "Use {0} to {1} characters."),
    (re.compile(r"Must be one of: (.+)\."), "Choose one of: {0}."),
    (
        re.compile(r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\."),
        "Enter a number from {0} to {1}.",
    ),
    (re.compile(r"Must be greater than or equal to (\S+)\."), "Enter {0} or more."),
    (re.compile(r"Must be less than or equal to (\S+)\."), "Enter {0} or less."),
    (re.compile(r"Unknown field\."), "This value is not used here."),
    (re.compile(r"invalid regular expression: (.+)"), "Not a valid pattern (RE2 syntax): {0}."),
    (
        re.compile(r"\w+ is not available for (proxy|target) credentials; use one of .+"),
        "This type cannot be used for a {0} credential: choose another type or use.",
    ),
)


def plain(api_name: str, message: str) -> str:
    """The API's `message` about field `api_name` in words a person can act on."""
    if message in REWORDED:
        return REWORDED[message]
    if message in EMPTY:
        last = api_name.rsplit(".", 1)[-1]
        return ENTER.get(api_name) or ENTER.get(last) or "Fill this in."
    for pattern, words in SHAPES:
        if match := pattern.fullmatch(message):
            return words.format(*match.groups())
    return message

"""Target credentials that mint their own tokens (oauth2, customToken) on the data plane.

- `minted`: the token value type and the errors a mint ends in;
- `flight`: the per-process cache with one mint in flight per credential;
- `oauth2` / `custom`: building the token request and reading its answer (pure);
- `shared`: minted tokens kept sealed in Redis, one mint across processes;
- `source`: `TokenSource`, the addon the forward stage and the dispatcher ask.
"""

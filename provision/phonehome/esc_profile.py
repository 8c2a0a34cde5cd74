"""An existing ESC user profile: where its ``prefs.js`` is, and what its cache would hide.

ESC 1.1 writes ``keyIssuerUrl-<id>`` from the token as soon as it reads a value, then asks
``IsPhoneHomeCached``; when that holds it does not phone home at all and goes on with the
cached ``keyIssuer``, ``Operation``, ``UI`` and ``CAChainUI`` (esc-phone-home.md §2.2). A
profile left from an earlier issuer therefore hides new Phone Home data, which is why the RHCS
guide tells administrators to remove old profile directories. Even when ESC does phone home, it
only overwrites the entries the new ServiceInfo has: the others stay, since ESC never removes a
pref. :func:`evaluate_cache` reports both."""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._text import quote
from .errors import PrefsError
from .esc_prefs import PathLike
from .prefs import (
    BROWSER_ESTABLISHED,
    KEY_ISSUER_URL,
    CacheCheck,
    PrefsDialect,
    cache_check,
    esc11_name,
    token_entries,
)
from .prefs_file import PrefsFile

PREFS_JS = "prefs.js"
PROFILES_INI = "profiles.ini"


@dataclass(frozen=True)
class EscProfile:
    """A user profile's ``prefs.js`` and the prefs it sets (none when it does not exist)."""

    prefs_file: Path
    prefs: Mapping[str, str]
    exists: bool


def find_prefs_js(directory: PathLike) -> Path:
    """The ``prefs.js`` of the ESC profile at ``directory``.

    ``directory`` is a profile directory (``~/.redhat/esc/<salt>.default``) or ESC's profile
    root (``~/.redhat/esc``) with a ``profiles.ini`` or a single profile directory in it. A
    profile that has no ``prefs.js`` yet gives the path it would have.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PrefsError(os.fspath(root), f"{root} is not a directory (an ESC profile)")
    if (root / PREFS_JS).exists():
        return root / PREFS_JS

    listed = _default_from_profiles_ini(root)
    if listed is not None:
        return listed / PREFS_JS

    candidates = sorted(p for p in root.iterdir() if p.is_dir() and (p / PREFS_JS).is_file())
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        problem = f"{root} holds several ESC profiles ({names}); name one of them"
        raise PrefsError(os.fspath(root), problem)
    if candidates:
        return candidates[0] / PREFS_JS
    return root / PREFS_JS


def _default_from_profiles_ini(root: Path) -> Path | None:
    """The default profile ``profiles.ini`` names (Mozilla's format), if there is one."""
    ini = root / PROFILES_INI
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError) as e:
        problem = f"cannot read {ini}: {' '.join(str(e).split())}"
        raise PrefsError(os.fspath(ini), problem) from e

    profiles = [parser[s] for s in parser.sections() if s.lower().startswith("profile")]
    profiles = [p for p in profiles if p.get("Path")]
    chosen = next((p for p in profiles if p.get("Default") == "1"), None)
    if chosen is None and len(profiles) == 1:
        chosen = profiles[0]
    if chosen is None:
        return None

    path = Path(chosen["Path"])
    return root / path if chosen.get("IsRelative", "1") == "1" else path


def load_esc_profile(directory: PathLike) -> EscProfile:
    """Find and read the profile's ``prefs.js``; a missing file is a profile with no cache."""
    path = find_prefs_js(directory)
    prefs_file = PrefsFile.load(path)
    return EscProfile(path, prefs_file.prefs, path.exists())


@dataclass(frozen=True)
class Hidden:
    """One cached entry that the new data would not reach: ``cached`` is what ESC keeps
    (None when nothing is cached), ``new`` what the new data holds (None when nothing)."""

    name: str
    cached: str | None
    new: str | None

    def line(self, uses_cache: bool) -> str:
        if self.cached is None:
            return f"{self.name}: not cached, so {quote(self.new or '')} would never be seen"
        if self.new is None:
            verb = "ESC keeps" if uses_cache else "stays, as ESC never removes a pref:"
            return f"{self.name}: {verb} {quote(self.cached)}; the new data has none"
        return f"{self.name}: ESC keeps {quote(self.cached)}, hiding {quote(self.new)}"


@dataclass(frozen=True)
class StaleCache:
    """What an existing profile's cache would do to the token's new Phone Home data."""

    prefs_file: Path
    token_id: str
    cached: Mapping[str, str]
    token_gave_url: bool
    uses_cache: bool
    hidden: tuple[Hidden, ...]
    notes: tuple[str, ...]

    @property
    def stale(self) -> bool:
        """True when the profile would hide some of the new data."""
        return bool(self.hidden)

    def lines(self) -> list[str]:
        """The report, first line a summary, then one line per hidden entry or note."""
        if not self.cached:
            head = f"{self.prefs_file}: no cached Phone Home entries for token {self.token_id}"
        elif self.uses_cache:
            head = (
                f"{self.prefs_file}: ESC 1.1 would use its cache for token {self.token_id} "
                "and not phone home"
            )
        elif not self.token_gave_url:
            head = (
                f"{self.prefs_file}: ESC 1.1 would not use its cache for token {self.token_id}: "
                "the token gives it no Phone Home URL"
            )
        else:
            head = (
                f"{self.prefs_file}: ESC 1.1 would phone home for token {self.token_id} "
                "(its cache is not complete)"
            )
        lines = [head]
        lines += [f"  {hidden.line(self.uses_cache)}" for hidden in self.hidden]
        lines += [f"  {note}" for note in self.notes]
        if self.stale:
            lines.append(
                "  remove the old profile directory, or these entries, before the token is used"
            )
        return lines


def evaluate_cache(
    profile: EscProfile,
    token_id: str,
    *,
    token_url: str | None,
    new_esc11: Mapping[str, str] | None,
    new_rhcs: Mapping[str, str] | None,
) -> StaleCache:
    """Compare a profile's cached entries for the token with the new data.

    ``token_url`` is the value ESC would take from the token (None when it takes none: no
    issuer info, under 10 characters, or ``esc.ignore.key.issuer.info``). ``new_esc11`` and
    ``new_rhcs`` are the entries the new ServiceInfo gives in each dialect, None when it
    could not be had.
    """
    cached = token_entries(profile.prefs, token_id, PrefsDialect.ESC11)
    # ESC writes keyIssuerUrl-<id> from the token before it looks at the cache.
    seen = dict(cached)
    if token_url:
        seen[esc11_name(KEY_ISSUER_URL, token_id)] = token_url
    check = cache_check(seen, token_id)
    uses_cache = bool(token_url) and check.complete

    hidden: list[Hidden] = []
    if new_esc11 is not None:
        hidden = _hidden(cached, new_esc11, token_id, uses_cache)
    notes = _notes(profile, token_id, token_url, cached, new_rhcs, check)
    everything = {**cached, **token_entries(profile.prefs, token_id, PrefsDialect.RHCS)}
    return StaleCache(
        profile.prefs_file,
        token_id,
        everything,
        bool(token_url),
        uses_cache,
        tuple(hidden),
        tuple(notes),
    )


def _hidden(
    cached: Mapping[str, str], new: Mapping[str, str], token_id: str, uses_cache: bool
) -> list[Hidden]:
    skip = {esc11_name(KEY_ISSUER_URL, token_id), BROWSER_ESTABLISHED}
    found = []
    for name, value in cached.items():
        if name in skip:
            continue
        if name not in new:
            found.append(Hidden(name, value, None))
        elif uses_cache and new[name] != value:
            found.append(Hidden(name, value, new[name]))
    if uses_cache:
        found += [Hidden(n, None, v) for n, v in new.items() if n not in cached and n not in skip]
    return found


def _notes(
    profile: EscProfile,
    token_id: str,
    token_url: str | None,
    cached: Mapping[str, str],
    new_rhcs: Mapping[str, str] | None,
    check: CacheCheck,
) -> list[str]:
    notes = []
    cached_url = cached.get(esc11_name(KEY_ISSUER_URL, token_id))
    # XXX: the macOS fallback to the cached keyIssuerUrl is reported, not followed.
    if not token_url and cached_url:
        notes.append(
            f"on macOS, ESC takes the cached {esc11_name(KEY_ISSUER_URL, token_id)} "
            f"{quote(cached_url)} when the token gives no URL"
        )
    if token_url and check.short_check_complete and not check.complete:
        notes.append(
            "ESC.js builds whose IsPhoneHomeCached tests only keyIssuerUrl, keyIssuer and "
            "Operation would use this cache and not phone home"
        )

    ours = token_entries(profile.prefs, token_id, PrefsDialect.RHCS)
    for name, value in ours.items():
        new = (new_rhcs or {}).get(name)
        if new_rhcs is not None and new != value:
            now = quote(new) if new is not None else "nothing"
            notes.append(f"{name} (documented names): cached {quote(value)}, new data gives {now}")
    return notes

"""A deterministic, seeded Pendo subscription: apps, visitors, accounts, catalogues and activity.

Everything is derived from `(scale, seed, now_ms, tz)`, so the emulator process and the test process
build the same data independently and the ground truth never has to cross a process boundary.

Facts it follows (BEHAVIOR.md sections where it has one):
* ids are 27-char URL-safe base64 strings, the default app is -323232, anonymous visitors are
  `_PENDO_T_` + 11 URL-safe chars (§B-0), timestamps are epoch milliseconds (§B-18).
* §B-15, §B-16: rollup sources (events, featureEvents, pageEvents, trackEvents) carry `day` or `hour`,
  never both; guideEvents/pollEvents are raw events with `browserTime`; per-app metadata group
  `auto_<app>` with `-` written as `_` (§B-14 row shape).
* §B-18: `day` is local midnight in the subscription time zone; a day row is the sum of its hour rows.
* §B-15 "`remoteIp` may be absent": the third app does not log remote addresses, so its rows have no
  `remoteIp` (connectors must tolerate a missing key field).
* §R-4: a guide/poll event's `receivedTime` (the server's receive time) is mostly seconds after
  `browserTime` (the visitor's clock), but for some events hours, and for a few more than a day, off it
  in either direction; the server selects by it under the `receive_time_buckets` reading.
* §R-3: with the `missing_lastupdated` reading some visitors and accounts have no
  `metadata.auto.lastupdated` (readings.py).
* §R-20: with the `rows_without_browsertime` reading some guide/poll events are answered without `browserTime`
  (`served_raw_event`); the server still selects them into periods by their time.
* §B-23: guides with and without steps and polls (NPS pairs, pick lists with their choices, number scales, free
  text without choices), steps without `pollIds`, guides without `polls`, page rules without `designerHint`,
  features without `elementPathRules`; §R-18 and §R-19 change where polls list their choices and the case of
  their types (`Dataset.poll_choices` keeps the choices whatever the reading).

Activity is generated hourly per app as "sessions" (an active visitor in an hour); every source
derives its rows from the sessions with its own seeded stream, lazily, so a benchmark that only reads
events never pays for guide events.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from . import readings as readings_module
from .catalogue_changes import CatalogueChanges

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_APP_ID = -323232
APP_IDS = (DEFAULT_APP_ID, 5629499534213120, 6253630842798080, 4785074604081152)
ANONYMOUS_PREFIX = "_PENDO_T_"

ROLLUP_SOURCES = ("events", "featureEvents", "pageEvents", "trackEvents")
RAW_EVENT_SOURCES = ("guideEvents", "pollEvents")
# The object id field each rollup source carries, and the catalogue it points into.
OBJECT_FIELD = {
    "events": None,
    "featureEvents": "featureId",
    "pageEvents": "pageId",
    "trackEvents": "trackTypeId",
}

USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "python-requests/2.31",
)
GUIDE_EVENT_TYPES = ("guideSeen", "guideAdvanced", "guideDismissed", "guideSnoozed", "guideTimeout")
SEEN_REASONS = ("auto", "launcher", "badge", "dom", "whatsnew")


@dataclass(frozen=True)
class Scale:
    """How big the subscription is. `sessions_per_visitor_day` is the mean active hours per app."""

    name: str
    apps: int
    identified_visitors: int
    anonymous_visitors: int
    accounts: int
    days: int
    sessions_per_visitor_day: float
    pages_per_app: int
    features_per_app: int
    guides_per_app: int
    track_types_per_app: int


SCALES = {
    "tiny": Scale("tiny", 3, 14, 6, 5, 6, 1.0, 4, 5, 2, 2),
    "small": Scale("small", 3, 160, 40, 30, 30, 1.5, 10, 15, 4, 3),
    # ~1.3M hourly rows for events and ~2.6M for featureEvents: the benchmark's dataset.
    "large": Scale("large", 2, 5000, 1000, 400, 45, 4.0, 40, 80, 6, 4),
}


def object_id(*parts: Any) -> str:
    """A 27-char URL-safe base64 id, stable for the same parts (may start with '-', like Pendo's)."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:27]


def metadata_group_for_app(app_id: int) -> str:
    """`auto_` + app id with `-` written as `_` (BEHAVIOR.md §B-14 row shape: default app -> `auto__323232`)."""
    return "auto_" + str(app_id).replace("-", "_")


@dataclass
class Visitor:
    visitor_id: str
    anonymous: bool
    account_ids: list[str]
    apps: list[int]
    user_agents: list[str]
    ip: str
    agent: dict[str, Any]
    custom: dict[str, Any]
    donotprocess: bool
    created_at: int


@dataclass
class Session:
    """One visitor active in one app during one hour: the unit every activity source derives from."""

    index: int
    app_id: int
    hour: int
    visitor: Visitor
    account_id: str
    user_agent: str
    first_time: int
    last_time: int


@dataclass
class Dataset:
    scale: Scale
    seed: int
    now_ms: int
    tz_name: str = "UTC"
    readings: Iterable[str] = frozenset()  # names as given (`pessimistic` too); a frozenset after __init__
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    # New tags, rule edits, deletions since the process started (catalogue_changes.py): what the API serves.
    changes: CatalogueChanges = field(default_factory=CatalogueChanges, repr=False)

    def __post_init__(self) -> None:
        self.readings = readings_module.expand(self.readings)

    # ------------------------------------------------------------------ time
    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.tz_name)

    @cached_property
    def start_ms(self) -> int:
        """First hour with data: UTC midnight `days` days before the day of `now`."""
        return (self.now_ms // DAY_MS - self.scale.days) * DAY_MS

    def day_start(self, ms: int) -> int:
        """Local midnight (subscription time zone) of the day containing `ms`."""
        local = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone(self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(midnight.timestamp() * 1000)

    def next_day_start(self, day_ms: int) -> int:
        return self.day_start(day_ms + DAY_MS + 2 * HOUR_MS)

    def bucket_start(self, period: str, ms: int) -> int:
        return self.day_start(ms) if period == "dayRange" else ms - ms % HOUR_MS

    def next_bucket(self, period: str, bucket: int) -> int:
        return self.next_day_start(bucket) if period == "dayRange" else bucket + HOUR_MS

    # ------------------------------------------------------------------ apps and catalogues
    @cached_property
    def app_ids(self) -> list[int]:
        return list(APP_IDS[: self.scale.apps])

    def logs_remote_ip(self, app_id: int) -> bool:
        return self.app_ids.index(app_id) != 2

    def server_for(self, app_id: int) -> str:
        return f"app{self.app_ids.index(app_id)}.example.com"

    @cached_property
    def users(self) -> list[dict[str, Any]]:
        """Pendo users that own and edit catalogue objects (`createdByUser`, `lastUpdatedByUser`, `ownedByUser` objects)."""
        return [
            {
                "id": str(5415320457969664 + i),
                "username": f"pm{i}@example.com",
                "first": ["Pat", "Sam", "Alex"][i],
                "last": ["Doe", "Roe", "Poe"][i],
                "role": 2,
                "userType": "normal",
                "hasLoggedIn": True,
                "lastLogin": self.start_ms - (i + 1) * DAY_MS,
            }
            for i in range(3)
        ]

    def _audit(self, rng: random.Random, root_id: str) -> dict[str, Any]:
        created = self.start_ms - rng.randint(30, 400) * DAY_MS + rng.randint(0, DAY_MS)
        updated = rng.randint(self.start_ms - 20 * DAY_MS, self.now_ms - HOUR_MS)
        stamp = datetime.fromtimestamp(updated / 1000, tz=timezone.utc).strftime("%Y%m%d%H%M%S")
        return {
            "createdAt": created,
            "createdByUser": rng.choice(self.users),
            "lastUpdatedAt": updated,
            "lastUpdatedByUser": rng.choice(self.users),
            "rootVersionId": root_id,
            "stableVersionId": f"{root_id}-{stamp}.{rng.randint(100000000, 999999999)}",
        }

    def _catalogue(self, kind: str, per_app: int) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:{kind}")
        out = []
        for app_id in self.app_ids:
            for i in range(per_app):
                oid = object_id(self.seed, kind, app_id, i)
                obj = {
                    "id": oid,
                    "name": f"{kind} {i} of app {app_id}",
                    "kind": kind,
                    "appId": app_id,
                    "appIds": [app_id],
                }
                obj.update(self._audit(rng, oid))
                obj["dirty"] = False
                out.append(obj)
        return out

    @cached_property
    def pages(self) -> list[dict[str, Any]]:
        pages = self._catalogue("Page", self.scale.pages_per_app)
        for i, page in enumerate(pages):
            path = f"/section{i}"
            page.update(
                {
                    "color": ".groupColor01",
                    "group": {
                        "id": object_id(self.seed, "group", page["appId"]),
                        "name": "Core",
                        "type": "group",
                    },
                    "rules": self._page_rules(i, path),
                    "rulesjson": "",
                    "isCoreEvent": i % 3 == 0,
                    "isSuggested": False,
                    "suggestedName": "",
                    "validThrough": self.now_ms,
                    "dailyMergeFirst": 0,
                    "dailyRollupFirst": 0,
                    "ignoredFrustrationTypes": [],
                }
            )
        return pages

    @cached_property
    def features(self) -> list[dict[str, Any]]:
        features = self._catalogue("Feature", self.scale.features_per_app)
        pages_by_app = self.catalogue_by_app(self.pages)
        for i, feature in enumerate(features):
            app_pages = pages_by_app[feature["appId"]]
            feature.update(
                {
                    "pageId": app_pages[i % len(app_pages)]["id"],
                    "appWide": i % 4 == 0,
                    **self._element_path_rules(i),
                    "elementInitialTag": "<button>",
                    "eventPropertyConfigurations": [],
                    "isSuggested": False,
                }
            )
        return features

    @cached_property
    def track_types(self) -> list[dict[str, Any]]:
        track_types = self._catalogue("TrackType", self.scale.track_types_per_app)
        for i, tt in enumerate(track_types):
            tt.update(
                {
                    "trackTypeName": f"track_event_{i}",
                    "trackTypeRules": [],
                    "eventPropertyNameList": ["plan"] if i % 2 else None,
                }
            )
        return track_types

    @staticmethod
    def _page_rules(i: int, path: str) -> list[dict[str, Any]]:
        """A page's URL rules (BEHAVIOR.md §B-23): every third page has a second rule without `designerHint`
        (as most rules of Pendo's live samples: CIN7)."""
        first = {
            "rule": f"//*{path}",
            "designerHint": f"https://app.example.com{path}",
            "parsedRule": f"^https?://[^/]*{path}/?(?:;[^#]*)?(?:\\?[^#]*)?(?:#.*)?$",
        }
        if i % 3 != 1:
            return [first]
        return [first, {"rule": f"//*{path}/*", "parsedRule": f"^https?://[^/]*{path}/[^/?#]+/?(?:#.*)?$"}]

    @staticmethod
    def _element_path_rules(i: int) -> dict[str, Any]:
        """A feature's CSS rules (§B-23): one, two for every fourth feature, none listed for every seventh."""
        if i % 7 == 6:
            return {}
        return {"elementPathRules": [f"#button-{i}", f".toolbar button.b{i}"][: 1 + (i % 4 == 1)]}

    @cached_property
    def guides(self) -> list[dict[str, Any]]:
        """Guides with their steps and polls (BEHAVIOR.md §B-23), by index i over every app's guides:
        * steps: 1 + i % 3, none for i % 6 == 5; each step names its page, `lastUpdatedAt`, its polls in `pollIds`;
        * i % 4 in (0, 2): an NPS survey, a 0-10 `NPSRating` poll and its `FreeForm` follow-up (no choices), on the
          first step (PETL, PNPS);
        * i % 4 == 1: a `PickList` poll (choices in `idResponses`, id -> label) and a 1-5 `NumberScale` poll, on
          the last step (none when the guide has no steps);
        * i % 4 == 3: no polls, and no `polls` key nor steps' `pollIds` (CIN7's live guide).
        Where the choices sit depends on the reading (R-18 `poll_choices_in_attributes`), and so does the case of
        the type strings (R-19 `lowercase_poll_types`); `poll_choices` holds the choices whatever the reading."""
        return self._guides_and_choices[0]

    @cached_property
    def poll_choices(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """(guideId, pollId) -> the poll's answer choices as generated, in order, whatever the reading puts them:
        `{"choiceId": <the text pollResponse carries>, "label": <text or None>, "value": <number or None>}`."""
        return self._guides_and_choices[1]

    @cached_property
    def _guides_and_choices(
        self,
    ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], list[dict[str, Any]]]]:
        guides = self._catalogue("Guide", self.scale.guides_per_app)
        pages_by_app = self.catalogue_by_app(self.pages)
        choices: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for i, guide in enumerate(guides):
            gid = guide["id"]
            app_pages = pages_by_app[guide["appId"]]
            steps: list[dict[str, Any]] = []
            for s in range(0 if i % 6 == 5 else 1 + i % 3):
                step: dict[str, Any] = {
                    "id": object_id(self.seed, "step", gid, s),
                    "guideId": gid,
                    "type": "building-block",
                    "templateId": "building-block-guide",
                    "rank": s * 5_000_000,
                    "pageId": app_pages[(i + s) % len(app_pages)]["id"],
                    "advanceMethod": "button",
                    "attributes": {"isAutoFocus": True},
                    "lastUpdatedAt": guide["lastUpdatedAt"] - (s + 1) * 60_000,
                    "resetAt": 0,
                }
                if s == 0:
                    step["name"] = f"Step 1 of guide {i}"
                if i % 4 != 3:
                    step["pollIds"] = []
                steps.append(step)
            polls = self._polls(i, gid, choices)
            if polls and steps:
                on = steps[0] if i % 4 in (0, 2) else steps[-1]
                on["pollIds"] = [p["id"] for p in polls]
            guide.update(
                {
                    "state": ["public", "draft", "disabled"][i % 3],
                    "launchMethod": ["auto", "badge", "launcher"][i % 3],
                    "isMultiStep": len(steps) > 1,
                    "steps": steps,
                    "attributes": {},
                    "audience": [],
                    "publishedAt": guide["createdAt"],
                }
            )
            if i % 4 != 3:
                guide["polls"] = polls
        return guides, choices

    def _polls(
        self, i: int, gid: str, choices: dict[tuple[str, str], list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """A guide's polls in the shape the readings give them, their choices noted in `choices`."""
        if i % 4 == 3:
            return []

        def poll_id(n: int) -> str:
            return object_id(self.seed, "poll", gid, n)[:11]

        if i % 4 in (0, 2):  # an NPS survey: a rating and a free-text poll (BEHAVIOR.md §F-2, §B-23)
            rating, text = poll_id(0), poll_id(1)
            polls = [
                {
                    "id": rating,
                    "question": "How likely are you to recommend us?",
                    "attributes": {
                        "type": "NPSRating",
                        "display": "horizontal",
                        "followUp": text,
                        "leftLabel": "Not likely",
                        "rightLabel": "Very likely",
                    },
                    "resetAt": 0,
                },
                {
                    "id": text,
                    "question": "Why?",
                    "attributes": {"type": "FreeForm", "maxLength": 500},
                    "resetAt": 0,
                },
            ]
            scales = {rating: list(range(11))}
            picks: dict[str, list[tuple[str, str]]] = {}
        else:  # a pick list and a number scale
            pick, scale = poll_id(0), poll_id(1)
            labels = ["Dashboards", "Reports & exports", 'Ça dépend "souvent"'][: 2 + i % 2]
            polls = [
                {
                    "id": pick,
                    "question": "What do you use most?",
                    "attributes": {"type": "PickList", "display": "radio"},
                    "resetAt": 0,
                },
                {
                    "id": scale,
                    "question": "How easy was it?",
                    "attributes": {"type": "NumberScale", "leftLabel": "Hard", "rightLabel": "Easy"},
                    "resetAt": 0,
                },
            ]
            picks = {
                pick: [(object_id(self.seed, "choice", pick, k)[:8], label) for k, label in enumerate(labels)]
            }
            scales = {scale: [1, 2, 3, 4, 5]}
        in_attributes = "poll_choices_in_attributes" in self.readings
        for poll in polls:
            pid = poll["id"]
            if pid in picks:
                choices[(gid, pid)] = [
                    {"choiceId": c, "label": label, "value": None} for c, label in picks[pid]
                ]
                if in_attributes:
                    poll["attributes"]["choices"] = [{"id": c, "label": label} for c, label in picks[pid]]
                else:
                    poll["idResponses"] = dict(picks[pid])
            elif pid in scales:
                choices[(gid, pid)] = [{"choiceId": str(n), "label": None, "value": n} for n in scales[pid]]
                if in_attributes:
                    poll["attributes"]["choices"] = list(scales[pid])
                else:
                    poll["numericResponses"] = list(scales[pid])
            else:
                choices[(gid, pid)] = []
            if "lowercase_poll_types" in self.readings:
                poll["attributes"]["type"] = poll["attributes"]["type"].lower()
        return polls

    @staticmethod
    def catalogue_by_app(objects: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {}
        for obj in objects:
            out.setdefault(obj["appId"], []).append(obj)
        return out

    # ------------------------------------------------------------------ people
    @cached_property
    def account_ids(self) -> list[str]:
        # Customer-chosen strings, including characters a keyset filter must escape (§B-0, §B-12).
        base = [
            "Acme Corp",
            "Globex",
            "Initech",
            'Umbrella "Corp"',
            "back\\slash & Co",
            "Soylent",
            "Hooli",
            "Ünïcode GmbH",
        ]
        return [base[i] if i < len(base) else f"account-{i:04d}" for i in range(self.scale.accounts)]

    @cached_property
    def visitors(self) -> list[Visitor]:
        rng = random.Random(f"{self.seed}:visitors")
        out = []
        for i in range(self.scale.identified_visitors + self.scale.anonymous_visitors):
            anonymous = i >= self.scale.identified_visitors
            if anonymous:
                vid = ANONYMOUS_PREFIX + object_id(self.seed, "anon", i)[:11]
            elif i % 7 == 3:
                vid = str(1000 + i)  # numeric-looking ids sort as strings
            elif i == 5:
                vid = 'o"brien\\test@example.com'
            else:
                vid = f"user{i:05d}@example.com"
            accounts = [rng.choice(self.account_ids)]
            if not anonymous and i % 5 == 0 and len(self.account_ids) > 1:
                accounts.append(rng.choice([a for a in self.account_ids if a != accounts[0]]))
            apps = [a for a in self.app_ids if rng.random() < 0.8] or [self.app_ids[0]]
            uas = [rng.choice(USER_AGENTS)]
            if rng.random() < 0.25:
                uas.append(rng.choice([u for u in USER_AGENTS if u != uas[0]]))
            out.append(
                Visitor(
                    visitor_id=vid,
                    anonymous=anonymous,
                    account_ids=[] if anonymous else accounts,
                    apps=apps,
                    user_agents=uas,
                    ip=f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                    agent={}
                    if anonymous
                    else {
                        "email": vid if "@" in vid else f"{vid}@example.com",
                        "language": rng.choice(["en_US", "de_DE", "ja_JP"]),
                    },
                    custom={} if anonymous else self._visitor_custom(rng, i),
                    donotprocess=(i == 2),
                    created_at=self.start_ms - rng.randint(1, 300) * DAY_MS,
                )
            )
        return out

    @cached_property
    def visitor_apps(self) -> dict[str, frozenset[int]]:
        """visitorId -> the apps the visitor belongs to (the `visitors_by_app` reading scopes by these)."""
        return {v.visitor_id: frozenset(v.apps) for v in self.visitors}

    @staticmethod
    def _visitor_custom(rng: random.Random, i: int) -> dict[str, Any]:
        custom: dict[str, Any] = {
            "plan": rng.choice(["free", "pro", "enterprise"]),
            "seats": rng.randint(1, 500),
            "mrr": round(rng.uniform(0, 5000), 2),
            "is_trial": rng.random() < 0.3,
            "tags": rng.sample(["beta", "vip", "churn-risk", "partner"], k=rng.randint(0, 2)),
        }
        if i % 3 == 0:
            custom["renewal_date"] = 1767225600000 + i * DAY_MS
        if i % 4 == 0:
            custom["notes"] = rng.choice(["call back", 42, True])  # a field whose schema Type is "" (mixed)
        return custom

    # ------------------------------------------------------------------ sessions
    @cached_property
    def sessions(self) -> list[Session]:
        """Active (visitor, app, hour) triples, in hour order, from `start_ms` up to the hour before now."""
        rng = random.Random(f"{self.seed}:sessions")
        users_by_app = {a: [v for v in self.visitors if a in v.apps] for a in self.app_ids}
        sessions: list[Session] = []
        hour = self.start_ms
        last_hour = self.now_ms - self.now_ms % HOUR_MS  # the current hour has no data yet
        while hour < last_hour:
            local_hour = (hour // HOUR_MS) % 24
            diurnal = 0.4 + 1.2 * (8 <= local_hour <= 20)
            for app_id in self.app_ids:
                pool = users_by_app[app_id]
                mean = len(pool) * self.scale.sessions_per_visitor_day / 24 * diurnal / 1.0
                k = min(len(pool), max(0, int(rng.gauss(mean, mean**0.5 + 0.5))))
                for visitor in sorted(rng.sample(pool, k), key=lambda v: v.visitor_id):
                    first = hour + rng.randint(0, 3_000_000)
                    last = min(hour + HOUR_MS - 1, first + rng.randint(0, 600_000))
                    sessions.append(
                        Session(
                            index=len(sessions),
                            app_id=app_id,
                            hour=hour,
                            visitor=visitor,
                            account_id=visitor.account_ids[rng.randrange(len(visitor.account_ids))]
                            if visitor.account_ids
                            else "",
                            user_agent=visitor.user_agents[0]
                            if len(visitor.user_agents) == 1 or rng.random() < 0.8
                            else visitor.user_agents[1],
                            first_time=first,
                            last_time=last,
                        )
                    )
            hour += HOUR_MS
        return sessions

    # ------------------------------------------------------------------ rollups
    def hour_rows(self, source: str) -> list[dict[str, Any]]:
        """Hourly rollup rows of `source` (unique on app, visitor, account, server, ip, ua, hour, object)."""
        key = f"hour:{source}"
        if key not in self._cache:
            self._cache[key] = self._make_hour_rows(source)
        return self._cache[key]

    def _make_hour_rows(self, source: str) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:{source}")
        obj_field = OBJECT_FIELD[source]
        catalogue = {
            "featureEvents": self.catalogue_by_app(self.features),
            "pageEvents": self.catalogue_by_app(self.pages),
            "trackEvents": self.catalogue_by_app(self.track_types),
        }.get(source)
        rows = []
        for s in self.sessions:
            if catalogue is None:
                objects: list[dict[str, Any] | None] = [None]
            else:
                pool = catalogue[s.app_id]
                n = {
                    "featureEvents": rng.randint(0, 3),
                    "pageEvents": rng.randint(1, 3),
                    "trackEvents": rng.randint(0, 1),
                }[source]
                objects = rng.sample(pool, min(n, len(pool)))
            for obj in objects:
                num_events = rng.randint(1, 40)
                first = rng.randint(s.first_time, s.last_time)
                row: dict[str, Any] = {
                    "accountId": s.account_id,
                    "appId": s.app_id,
                    "hour": s.hour,
                    "visitorId": s.visitor.visitor_id,
                    "numEvents": num_events,
                    "numMinutes": min(60, max(1, num_events // 3)),
                    "server": self.server_for(s.app_id),
                    "userAgent": s.user_agent,
                    "firstTime": first,
                    "lastTime": rng.randint(first, s.last_time),
                }
                if self.logs_remote_ip(s.app_id):
                    row["remoteIp"] = s.visitor.ip
                if obj is not None:
                    row[obj_field] = obj["id"]  # type: ignore[index]
                if source == "pageEvents":
                    row["parameters"] = (
                        {"tab": rng.choice(["overview", "details"])} if rng.random() < 0.3 else {}
                    )
                elif source == "trackEvents":
                    row["properties"] = {"plan": rng.choice(["free", "pro"])}
                rows.append(row)
        return rows

    def day_rows(self, source: str) -> list[dict[str, Any]]:
        """Day rows: the sum of the hour rows of each local day (BEHAVIOR.md §B-18)."""
        key = f"day:{source}"
        if key not in self._cache:
            self._cache[key] = self.rollup_by_day(self.hour_rows(source), source)
        return self._cache[key]

    def rollup_by_day(self, hour_rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        obj_field = OBJECT_FIELD[source]
        grouped: dict[tuple[Any, ...], dict[str, Any]] = {}
        day_of_hour: dict[int, int] = {}
        for row in hour_rows:
            hour = row["hour"]
            day = day_of_hour.get(hour)
            if day is None:
                day = day_of_hour[hour] = self.day_start(hour)
            key = (
                day,
                row["appId"],
                row["visitorId"],
                row["accountId"],
                row["server"],
                row.get("remoteIp"),
                row["userAgent"],
                row.get(obj_field) if obj_field else None,
            )
            acc = grouped.get(key)
            if acc is None:
                acc = dict(row)
                del acc["hour"]
                acc["day"] = day
                grouped[key] = acc
            else:
                acc["numEvents"] += row["numEvents"]
                acc["numMinutes"] += row["numMinutes"]
                acc["firstTime"] = min(acc["firstTime"], row["firstTime"])
                acc["lastTime"] = max(acc["lastTime"], row["lastTime"])
        return list(grouped.values())

    def rollup_rows(self, source: str, period: str) -> list[dict[str, Any]]:
        """The rows Pendo serves now: those of tags that exist, as far as their (re)processing got."""
        rows = self.day_rows(source) if period == "dayRange" else self.hour_rows(source)
        time_field = "day" if period == "dayRange" else "hour"
        return self.changes.visible_rows(rows, OBJECT_FIELD[source], time_field)

    def catalogue(self, kind: str) -> list[dict[str, Any]]:
        """The objects of a catalogue (`pages`, `features`, `guides`, `track_types`, `reports`, `segments`) as
        Pendo lists them now."""
        return self.changes.listed(getattr(self, kind))

    # ------------------------------------------------------------------ raw guide and poll events
    @cached_property
    def guide_events(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:guideEvents")
        guides_by_app = {  # a guide without steps is never seen
            a: [g for g in gs if g["steps"]] for a, gs in self.catalogue_by_app(self.guides).items()
        }
        out = []
        for s in self.sessions:
            if rng.random() >= 0.25:
                continue
            guide = rng.choice(guides_by_app[s.app_id])
            t = s.first_time
            for n, event_type in enumerate(
                ["guideSeen", rng.choice(GUIDE_EVENT_TYPES[1:])][: rng.randint(1, 2)]
            ):
                step = guide["steps"][min(n, len(guide["steps"]) - 1)]
                t += 1 + rng.randint(0, 20_000)
                out.append(self._raw_event(s, guide, step, event_type, t, rng))
        return self._skew_receive_times(out, "guideEvents")

    @cached_property
    def poll_events(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:pollEvents")
        nps_by_app = {
            a: [g for g in gs if self._poll_of_type(g, "npsrating")]
            for a, gs in self.catalogue_by_app(self.guides).items()
        }
        out = []
        for s in self.sessions:
            if rng.random() >= 0.08 or not nps_by_app.get(s.app_id):
                continue
            guide = rng.choice(nps_by_app[s.app_id])
            t = s.first_time + 30_000 + rng.randint(0, 60_000)
            rating, follow_up = guide["polls"]
            event = self._raw_event(s, guide, guide["steps"][0], "pollResponse", t, rng)
            event.update(
                {"pollId": rating["id"], "pollType": "NPSRating", "pollResponse": rng.randint(0, 10)}
            )
            out.append(event)
            if rng.random() < 0.5:
                text = self._raw_event(
                    s, guide, guide["steps"][0], "pollResponse", t + 1 + rng.randint(0, 9000), rng
                )
                text.update(
                    {
                        "pollId": follow_up["id"],
                        "pollType": "FreeForm",
                        "pollResponse": rng.choice(["Great tool", "Too slow", 'Needs "dark mode"']),
                    }
                )
                out.append(text)
        out += self._choice_poll_events()
        return self._skew_receive_times(out, "pollEvents")

    @staticmethod
    def _poll_of_type(guide: dict[str, Any], kind: str) -> dict[str, Any] | None:
        """The guide's first poll whose `attributes.type` is `kind` (any case: R-19), if any."""
        for poll in guide.get("polls") or []:
            if str(poll["attributes"]["type"]).lower() == kind:
                return poll
        return None

    def _choice_poll_events(self) -> list[dict[str, Any]]:
        """Answers to the pick lists (`pollResponse` = the choice's id, BEHAVIOR.md §B-23) and number scales of
        the guides that have a step to show them on; their own seeded stream, after the NPS answers."""
        rng = random.Random(f"{self.seed}:pollEvents:choices")
        by_app = {
            a: [g for g in gs if g["steps"] and self._poll_of_type(g, "picklist")]
            for a, gs in self.catalogue_by_app(self.guides).items()
        }
        out = []
        for s in self.sessions:
            if rng.random() >= 0.05 or not by_app.get(s.app_id):
                continue
            guide = rng.choice(by_app[s.app_id])
            t = s.first_time + 20_000 + rng.randint(0, 60_000)
            for kind in ("picklist", "numberscale"):
                poll = self._poll_of_type(guide, kind)
                assert poll is not None
                choice = rng.choice(self.poll_choices[(guide["id"], poll["id"])])
                event = self._raw_event(s, guide, guide["steps"][-1], "pollResponse", t, rng)
                answer = choice["value"] if kind == "numberscale" else choice["choiceId"]
                event.update(
                    {
                        "pollId": poll["id"],
                        "pollType": "PickList" if kind == "picklist" else "NumberScale",
                        "pollResponse": answer,
                    }
                )
                out.append(event)
                t += 1 + rng.randint(0, 5000)
        return out

    def _skew_receive_times(self, events: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        """Move `receivedTime` off `browserTime` for some events (R-4): 30% by 1-8 hours, 10% by 24-30
        hours, either way; never past the current hour (nothing is received in the future). Its own seeded
        stream, so no other value of the dataset moves."""
        rng = random.Random(f"{self.seed}:receiveSkew:{source}")
        latest = self.now_ms - self.now_ms % HOUR_MS - 1
        for event in events:
            u = rng.random()
            if u < 0.6:
                continue
            hours = (1, 8) if u < 0.9 else (24, 30)
            skew = rng.randint(hours[0] * HOUR_MS, hours[1] * HOUR_MS) * rng.choice((-1, 1))
            event["receivedTime"] = min(latest, event["receivedTime"] + skew)
        return events

    def _raw_event(
        self,
        s: Session,
        guide: dict[str, Any],
        step: dict[str, Any],
        event_type: str,
        t: int,
        rng: random.Random,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "accountId": s.account_id,
            "accountIds": s.visitor.account_ids,
            "appId": s.app_id,
            "type": event_type,
            "guideId": guide["id"],
            "guideStepId": step["id"],
            "visitorId": s.visitor.visitor_id,
            "browserTime": t,
            "guideTimestamp": t,
            "receivedTime": t + rng.randint(50, 4000),
            "loadTime": rng.randint(20, 900),
            "url": f"https://app.example.com/section{rng.randint(0, 9)}",
            "language": "en-US",
            "guideSeenReason": rng.choice(SEEN_REASONS),
            "country": "US",
            "region": "NC",
            "serverName": self.server_for(s.app_id),
            "userAgent": s.user_agent,
            "elementPath": "BODY",
            "properties": {},
        }
        if self.logs_remote_ip(s.app_id):
            event["remoteIp"] = s.visitor.ip
        return event

    def raw_events(self, source: str) -> list[dict[str, Any]]:
        """The raw events with every field, `browserTime` included (what the server selects and orders by);
        `served_raw_event` is a row as the API answers it."""
        return self.guide_events if source == "guideEvents" else self.poll_events

    def lacks_browser_time(self, event: dict[str, Any]) -> bool:
        """R-20 (`rows_without_browsertime`): about one raw event in thirteen is answered without `browserTime`
        (chosen by its content, so the server and the ground truth agree)."""
        if "rows_without_browsertime" not in self.readings:
            return False
        key = (
            f"{event.get('visitorId')}|{event.get('guideId')}|{event.get('type')}|{event.get('browserTime')}"
        )
        return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % 13 == 0

    def served_raw_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event as the API answers it: without `browserTime` under R-20 for the events it picks."""
        if not self.lacks_browser_time(event):
            return event
        return {k: v for k, v in event.items() if k != "browserTime"}

    # ------------------------------------------------------------------ visitors and accounts rows
    @cached_property
    def visitor_activity(self) -> dict[str, dict[int, tuple[int, int]]]:
        """visitorId -> app -> (first visit, last visit) from the sessions."""
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for s in self.sessions:
            apps = out.setdefault(s.visitor.visitor_id, {})
            first, last = apps.get(s.app_id, (s.first_time, s.last_time))
            apps[s.app_id] = (min(first, s.first_time), max(last, s.last_time))
        return out

    @cached_property
    def visitor_rows(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:visitorRows")
        rows = []
        for v in self.visitors:
            activity = self.visitor_activity.get(v.visitor_id, {})
            firstvisit = min((f for f, _ in activity.values()), default=v.created_at)
            lastvisit = max((last for _, last in activity.values()), default=v.created_at)
            lastupdated = max(
                lastvisit, self.start_ms + rng.randint(0, max(1, self.now_ms - self.start_ms - HOUR_MS))
            )
            auto = {
                "id": v.visitor_id,
                "idhash": int(hashlib.md5(v.visitor_id.encode()).hexdigest()[:8], 16),
                "nid": rng.randint(0, 10_000),
                "createdat": v.created_at,
                "firstvisit": firstvisit,
                "lastvisit": lastvisit,
                "lastupdated": lastupdated,
                "lastbrowsername": "Chrome",
                "lastbrowserversion": "122.0.0",
                "lastoperatingsystem": "Mac OS X",
                "lastservername": self.server_for(v.apps[0]),
                "lastuseragent": v.user_agents[0],
            }
            if v.account_ids:
                auto["accountid"] = v.account_ids[0]
                auto["accountids"] = list(v.account_ids)
            if self.lacks_lastupdated("visitor", len(rows)):
                del auto["lastupdated"]
            metadata: dict[str, Any] = {"auto": auto, "pendo": {"donotprocess": v.donotprocess}}
            if v.agent:
                metadata["agent"] = dict(v.agent, ipaddress=v.ip)
            if v.custom:
                metadata["custom"] = dict(v.custom)
            for app_id, (f, last) in sorted(activity.items()):
                metadata[metadata_group_for_app(app_id)] = {
                    "firstvisit": f,
                    "lastvisit": last,
                    "lastupdated": max(last, lastupdated - DAY_MS),
                }
            rows.append({"visitorId": v.visitor_id, "metadata": metadata})
        return rows

    @cached_property
    def account_rows(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:accountRows")
        visits: dict[str, list[int]] = {}
        for v in self.visitor_rows:
            for account in v["metadata"]["auto"].get("accountids", []):
                visits.setdefault(account, []).extend(
                    [v["metadata"]["auto"]["firstvisit"], v["metadata"]["auto"]["lastvisit"]]
                )
        rows = []
        for i, account in enumerate(self.account_ids):
            seen = visits.get(account, [self.start_ms - DAY_MS])
            lastupdated = max(
                max(seen), self.start_ms + rng.randint(0, max(1, self.now_ms - self.start_ms - HOUR_MS))
            )
            metadata: dict[str, Any] = {
                "agent": {"name": f"{account} (full name)"},
                "auto": {
                    "id": account,
                    "idhash": int(hashlib.md5(account.encode()).hexdigest()[:8], 16),
                    "nid": i,
                    "firstvisit": min(seen),
                    "lastvisit": max(seen),
                    "lastupdated": lastupdated,
                },
                "custom": {
                    "tier": rng.choice(["smb", "mid", "ent"]),
                    "arr": round(rng.uniform(1000, 900000), 2),
                    "employees": rng.randint(2, 20000),
                    "churned": rng.random() < 0.1,
                },
            }
            if self.lacks_lastupdated("account", i):
                del metadata["auto"]["lastupdated"]
            rows.append({"accountId": account, "metadata": metadata})
        return rows

    def lacks_lastupdated(self, kind: str, index: int) -> bool:
        """R-3 (`missing_lastupdated`): every 4th visitor (from the 2nd) and every 3rd account (from the 2nd)
        has no `metadata.auto.lastupdated`; per-app groups keep theirs."""
        if "missing_lastupdated" not in self.readings:
            return False
        return index % (4 if kind == "visitor" else 3) == 1

    # ------------------------------------------------------------------ metadata schema (§B-8)
    @staticmethod
    def _descriptor(type_: str, display: str, **flags: Any) -> dict[str, Any]:
        descriptor = {
            "Type": type_,
            "DisplayName": display,
            "ElementType": "",
            "ElementFormat": "",
            "Dirty": False,
            "isHidden": False,
            "isDeleted": False,
            "isCalculated": False,
            "isPerApp": False,
            "isPromoted": False,
            "neverIndex": False,
        }
        descriptor.update(flags)
        return descriptor

    def metadata_schema(self, kind: str) -> dict[str, Any]:
        d = self._descriptor
        if kind == "visitor":
            return {
                "agent": {
                    "email": d("string", "Email"),
                    "language": d("string", "Language"),
                    "ipaddress": d("string", "IP Address"),
                },
                "auto": {
                    "accountid": d("string", "Account ID"),
                    "accountids": d("list", "Account IDs"),
                    "createdat": d("time", "Created At"),
                    "firstvisit": d("time", "First Visit"),
                    "id": d("string", "Visitor ID"),
                    "lastbrowsername": d("string", "Last Browser Name"),
                    "lastbrowserversion": d("string", "Last Browser Version"),
                    "lastoperatingsystem": d("string", "Last Operating System"),
                    "lastservername": d("string", "Last Server Name"),
                    "lastvisit": d("time", "Last Visit"),
                },
                "custom": {
                    "plan": d("string", "Plan"),
                    "seats": d("integer", "Seats"),
                    "mrr": d("float", "MRR"),
                    "is_trial": d("boolean", "Is Trial"),
                    "renewal_date": d("time", "Renewal Date"),
                    "tags": d("list", "Tags"),
                    "notes": d("", "Notes"),
                },
                "pendo": {"donotprocess": d("boolean", "Do Not Process", isHidden=True)},
            }
        if kind == "account":
            return {
                "agent": {"name": d("string", "Name")},
                "auto": {
                    "firstvisit": d("time", "First Visit"),
                    "id": d("string", "Account ID"),
                    "lastvisit": d("time", "Last Visit"),
                },
                "custom": {
                    "tier": d("string", "Tier"),
                    "arr": d("float", "ARR"),
                    "employees": d("integer", "Employees"),
                    "churned": d("boolean", "Churned"),
                },
            }
        return {}

    # ------------------------------------------------------------------ reports and segments (§B-6, §B-7)
    @cached_property
    def reports(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:reports")
        specs = [
            ("Active visitors", "Saved Reports", "visitor"),
            ("Accounts by ARR", "Saved Reports", "account"),
            ("Checkout path", "Path", "visitor"),
            ("Weekly power users", "Saved Reports", "visitor"),
            # Not exportable (§B-6; 404 by default, other answers under the `report_errors` reading):
            ("Checkout funnel", "Funnels", "visitor"),
            ("Week-4 retention", "Retention", "visitor"),
            ("Onboarding workflow", "Workflows", "visitor"),
            ("Clicks explorer", "Data Explorer", "visitor"),
        ]
        out = []
        for i, (name, type_, level) in enumerate(specs):
            rid = object_id(self.seed, "report", i)
            report = {
                "id": rid,
                "name": name,
                "kind": "Report",
                "type": type_,
                "level": level,
                "shared": True,
                "scope": "subscription",
                "definition": {"type": type_, "kind": level, "config": {}},
                "aggregation": {"pipeline": [], "fields": []},
            }
            report.update(self._audit(rng, rid))
            out.append(report)
        return out

    def report_results(self, report_id: str) -> list[dict[str, Any]] | None:
        """Rows of an exportable report, or None when Pendo answers 404 (Path reports, §B-6)."""
        report = next((r for r in self.reports if r["id"] == report_id), None)
        if report is None or report["type"] != "Saved Reports":
            return None
        if report["level"] == "account":
            return [
                {
                    "accountId": a["accountId"],
                    "arr": a["metadata"]["custom"]["arr"],
                    "lastVisit": a["metadata"]["auto"]["lastvisit"],
                }
                for a in self.account_rows
            ]
        rows = []
        for v in self.visitor_rows:
            if v["visitorId"].startswith(ANONYMOUS_PREFIX):
                continue
            days = (
                {s.hour // DAY_MS for s in self.sessions if s.visitor.visitor_id == v["visitorId"]}
                if self.scale.name != "large"
                else set()
            )
            rows.append(
                {
                    "visitorId": v["visitorId"],
                    "accountId": v["metadata"]["auto"].get("accountid"),
                    "daysActive": len(days),
                    "lastVisit": v["metadata"]["auto"]["lastvisit"],
                }
            )
        return rows

    @cached_property
    def segments(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:segments")
        out = []
        for i, name in enumerate(["Trial users", "Enterprise accounts", "Power users"]):
            sid = object_id(self.seed, "segment", i)
            segment = {
                "id": sid,
                "name": name,
                "kind": "Segment",
                "shared": True,
                "createdByApi": False,
                "definition": {},
                "pipeline": [{"source": {"visitors": None}}],
                "dependentMetadata": [],
            }
            segment.update(self._audit(rng, sid))
            out.append(segment)
        return out

    # ------------------------------------------------------------------ visitor history (§B-19)
    @cached_property
    def visitor_history(self) -> dict[str, list[dict[str, Any]]]:
        """visitorId -> history items, one per page and feature rollup row (ts = firstTime)."""
        page_name = {p["id"]: p for p in self.pages}
        items: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, int, str]] = set()
        for source, type_, field_name in (
            ("pageEvents", "page", "pageId"),
            ("featureEvents", "feature", "featureId"),
        ):
            for row in self.hour_rows(source):
                key = (row["visitorId"], row["firstTime"], type_)
                if key in seen:
                    continue
                seen.add(key)
                item = {
                    "type": type_,
                    field_name: row[field_name],
                    "appId": row["appId"],
                    "ts": row["firstTime"],
                    "lastTs": row["lastTime"],
                    "duration": row["lastTime"] - row["firstTime"],
                    "parsedUserAgent": {"name": "Chrome", "version": "122.0.0", "os": "Mac OS X"},
                }
                if type_ == "page":
                    item["uri"] = page_name[row["pageId"]]["rules"][0]["designerHint"]
                items.setdefault(row["visitorId"], []).append(item)
        for history in items.values():
            history.sort(key=lambda it: (it["ts"], it["type"]))
        return items

    # ------------------------------------------------------------------ late-arriving rows (fault)
    def late_hour_rows(self, source: str) -> list[dict[str, Any]]:
        """Rows that appear only after their bucket was first served: a new user agent per session row.

        They are new rollup keys (same visitor and hour, a user agent the visitor never used before),
        so they add rows rather than change existing ones, and they exist in both periods.
        """
        key = f"late:{source}"
        if key not in self._cache:
            late = []
            for i, row in enumerate(self.hour_rows(source)):
                if i % 97 == 0:
                    extra = dict(row)
                    extra["userAgent"] = "LateArrival/1.0 (replayed from an offline queue)"
                    extra["numEvents"] = 1
                    extra["numMinutes"] = 1
                    late.append(extra)
            self._cache[key] = late
        return self._cache[key]

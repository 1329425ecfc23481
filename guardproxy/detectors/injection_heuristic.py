"""Prompt-injection / jailbreak heuristics: curated phrase rules matched on folded text.

Rules are written in a compact phrase syntax (`_phrase`) so that they read like the attacks
they catch. Each has a weight: ~0.9 for phrasings that are almost never benign, below 0.5
for phrasings that are only suspicious. The score is the noisy-or of the weights of the
distinct rules that matched, so two weak signals add up and one weak signal does not.

Speed: each rule names anchor words, one of which occurs in every match; a rule runs only
when an anchor is among the words of the text, so ordinary prose touches few regexes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import InjectionHeuristicConfig
from guardproxy.detectors.normalize import Folded, Normalizer, despaced_variant, find_payloads, leet_variant, rot13
from guardproxy.errors import PolicyInvalid

# --- rule syntax ---------------------------------------------------------------------------
# A phrase is space-separated tokens; in a token "_" stands for a word separator and "~N"
# skips up to N words (never "my"/"our": a user retracting their own words is not an
# attack). Separators never cross a sentence end.
_SEP = r"(?:[^\w.!?\n]|\x5f)+"  # \x5f is "_", spelt so that _phrase leaves it alone


def _gap(words: int) -> str:
    return rf"(?:{_SEP}(?!(?:my|our)\b)\w+){{0,{words}}}"


def _phrase(source: str) -> str:
    parts: list[str] = []
    for token in source.split():
        if token.startswith("~"):
            parts.append(_gap(int(token[1:] or 3)))
        else:
            parts.append((_SEP if parts else "") + token.replace("_", _SEP))
    return "".join(parts) + r"(?!\w)"


_OVERRIDE = "instruction_override"
_ROLE = "role_play"
_EXTRACT = "prompt_extraction"
_DELIM = "delimiter_injection"


def _alt(words: str) -> str:
    return "(?:" + "|".join(words.split()) + ")"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    category: str
    weight: float
    regex: str
    anchors: frozenset[str]  # empty: always run
    word_start: bool  # the match must not start inside a word
    # A request ("reveal your system prompt") right after a negation ("never ...") is a rule
    # stated by a defender, not an attack: such matches are dropped.
    negatable: bool = False
    # Weight when the text is a tool/function result: instructions addressed to the assistant
    # have no business in third-party content, so there a directive alone is the attack.
    third_party_weight: float | None = None


def _anchors(words: str) -> frozenset[str]:
    return frozenset(max(re.findall(r"[a-z]+", item), key=len) for item in words.split())


def _p(name: str, category: str, weight: float, anchors: str, phrase: str) -> RuleSpec:
    negatable = category in (_OVERRIDE, _EXTRACT)
    return RuleSpec(name, category, weight, _phrase(phrase), _anchors(anchors), True, negatable)


def _r(name: str, category: str, weight: float, anchors: str, regex: str, third_party: float | None = None) -> RuleSpec:
    return RuleSpec(name, category, weight, regex, _anchors(anchors), False, False, third_party)


_IGNORE = (
    "ignore ignoring disregard disregarding forget forgetting neglect discard abandon dismiss overlook "
    "set_aside put_aside skip"
)
_PRIOR = (
    "previous previously prior above preceding earlier foregoing former initial original old system "
    "developer pre-prompt preprompt"
)
_ORDERS = (
    "instruction instructions instructed directions directive directives prompt prompts guidelines "
    "programming guardrails rules constraints restrictions command commands orders safeguards policy "
    "policies conditioning context input inputs"
)
_LIMITS = (
    "restrictions limitations limits filters guidelines rules ethics morals censorship boundaries "
    "constraints principles"
)
_SHOW = (
    "reveal print repeat show display output leak dump disclose recite expose echo spill share tell give "
    "provide list copy paste return translate summarize summarise what's what_is what_are what_was "
    "what_were"
)
_MODES = "(?:developer|dev|god|debug|debugging|maintenance|admin|sudo|override|evil|chaos|opposite|jailbreak|dan)"
_CONTENT_SOURCES = (
    "document documents email emails page pages webpage webpages website websites file files tool tools "
    "retrieved search results data content text messages input inputs context"
)
_DIRECTIVE_LEADS = "in into to within throughout modify provide begin start end format render augment enhance"
_DISGUISED = "system initial original hidden secret starting internal developer pre full confidential first"

# fmt: off
RULE_SPECS: tuple[RuleSpec, ...] = (
    # --- instruction_override ---
    _p("ignore_previous_instructions", _OVERRIDE, 0.93, _IGNORE,
       f"{_alt(_IGNORE)} ~3 {_alt(_PRIOR)} ~2 {_alt(_ORDERS)}"),
    _p("ignore_all_instructions", _OVERRIDE, 0.9, _IGNORE,
       rf"{_alt(_IGNORE)} ~1 (?:all|any|every|your) ~2 "
       rf"(?:instructions|directives|guidelines|programming|guardrails|safeguards|prompts)"
       # "ignore any instructions found in the documents" is a defender's rule, not an attack
       rf"(?!{_SEP}(?:that{_SEP})?(?:(?:are|appear){_SEP})?"
       rf"(?:contained|found|embedded|appearing|inside|within|in|from){_gap(2)}{_SEP}{_alt(_CONTENT_SOURCES)})"),
    _p("ignore_everything_before", _OVERRIDE, 0.9, _IGNORE,
       rf"{_alt(_IGNORE)} (?:about_)?(?:everything|everthing|anything|all|what) ~3 "
       rf"(?:above|before|previously|prior|earlier|till_now|until_now|so_far|(?:been|was|were)_(?:told|said|given|instructed|taught))"),
    _p("ignore_the_above", _OVERRIDE, 0.75, _IGNORE,
       rf"{_alt(_IGNORE)} (?:the|all|everything) above"),
    _p("forget_your_rules", _OVERRIDE, 0.85, _IGNORE,
       rf"{_alt(_IGNORE)} ~2 (?:your|those|these|the|all) ~2 {_alt(_LIMITS + ' policy policies tos')} "
       rf"(?:that|which|you|of_(?:openai|anthropic|your)|set|imposed|given)"),
    _p("override_safety", _OVERRIDE, 0.88, "safety content ethical moral security",
       r"(?:override|bypass|circumvent|disable|deactivate|turn_off|switch_off|remove|lift) ~2 "
       r"(?:your|all|any|the) ~2 (?:safety|content|ethical|moral|security) ~1 "
       r"(?:filters?|guidelines|protocols?|restrictions|guardrails|polic(?:y|ies)|measures|settings|constraints)"),
    _p("new_instructions", _OVERRIDE, 0.8, "instruction instructions directive directives prompt",
       r"(?:new|updated|real|actual|revised|true) "
       r"(?:instructions?|directives?|system_prompt)(?:\s*:|_(?:are|follow))"),
    _p("your_new_task", _OVERRIDE, 0.8, "task instruction instructions objective goal mission job role",
       r"your (?:new|real|actual|true) (?:task|instructions?|objective|goal|mission|job|role) "
       r"(?:is|are|will_be|now)"),
    _p("regardless_of_previous", _OVERRIDE, 0.75, "regardless instead rather",
       rf"(?:regardless_of|instead_of|rather_than) ~2 {_alt(_PRIOR)} ~1 "
       rf"(?:instructions|tasks?|rules|directives|guidelines|prompts?)"),
    _p("do_not_follow_instructions", _OVERRIDE, 0.85, "follow obey comply adhere listen",
       rf"(?:do_not|don't|dont|stop|no_longer|never) (?:follow|obey|comply_with|adhere_to|listen_to) ~2 "
       rf"(?:your|the|any|{_alt(_PRIOR)}) ~2 "
       rf"(?:instructions|rules|guidelines|programming|directives|prompts?|polic(?:y|ies))"),
    _r("directive_into_reply", _OVERRIDE, 0.45, "response reply answer output implementation codebase solution",
       r"your(?<!forward to your)(?:" + "|".join(rf"(?<=\b{w} your)" for w in _DIRECTIVE_LEADS.split()) + ")"
       rf"{_SEP}(?:response|reply|answer|output|implementation|codebase|solution)\b", third_party=0.8),
    # --- role_play / jailbreak personas ---
    _p("do_anything_now", _ROLE, 0.95, "anything",
       r"do_anything_now"),
    _p("dan_persona", _ROLE, 0.9, "dan",
       r"(?:as|like|be|named|called|play|become|simulate|pretend_to_be) "
       r"(?:a_)?dan(?:_\d+(?:\.\d+)?)?(?=[\s,.:;!)\"']|$)"),
    _r("persona_tag", _ROLE, 0.85, "dan jailbreak jailbroken",
       r"\[(?:dan|jailbreak|jailbroken|🔓\w*)\\?\]"),
    _p("special_mode", _ROLE, 0.85, "mode",
       r"(?:jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|amoral|unethical) mode"),
    _p("persona_mode", _ROLE, 0.85, "mode",
       rf"(?:chatgpt|gpt|ai|assistant|{_MODES} mode) (?:with|in|output|response) (?:the_)?{_MODES} mode"),
    _p("mode_output", _ROLE, 0.85, "mode",
       rf"{_MODES} mode (?:output|response|answer|enabled_output)"),
    _p("special_mode_weak", _ROLE, 0.45, "mode",
       rf"{_MODES} mode"),
    _p("you_are_no_longer", _ROLE, 0.85, "longer",
       r"(?:you|you're) (?:are_)?no_longer "
       r"(?:chatgpt|gpt|an_ai|a_language_model|an_assistant|claude|bound|restricted|limited|an_ai_language_model)"),
    _p("no_longer_bound", _ROLE, 0.88, "bound restricted restrained constrained governed confined shackled held",
       r"(?:no_longer|not|never|aren't|isn't|nor) "
       r"(?:be_)?(?:bound|restricted|restrained|constrained|governed|confined|shackled|held_back) "
       r"(?:by|to) ~2 "
       r"(?:any|the|openai|rules|ethics|morals|guidelines|polic(?:y|ies)|restrictions|limitations|filters|programming|ethical|moral|traditional|content|principles)"),
    _p("broken_free", _ROLE, 0.9, "confines restrictions limitations constraints rules shackles chains "
                                  "boundaries guidelines filters programming",
       r"(?:broken|break|breaking|freed|free|liberated|released|escaped) (?:free_)?(?:of|from) ~2 "
       r"(?:confines|restrictions|limitations|constraints|rules|shackles|chains|boundaries|guidelines|filters|programming) "
       r"(?:of|set|imposed|placed) ~2 "
       r"(?:ai|openai|chatgpt|anthropic|them|you|it|your_programming|your_creators)"),
    _p("free_of_your_limits", _ROLE, 0.8, "free freed liberated released unshackled",
       r"(?:free|freed|liberated|released|unshackled) (?:of|from) your "
       r"(?:confines|restrictions|limitations|programming|shackles|chains|rules|guidelines|filters|constraints)"),
    _p("not_abide", _ROLE, 0.85, "abide adhere comply follow obey",
       rf"(?:not|never|don't|doesn't|won't|no_need_to) "
       rf"(?:have_to_|need_to_|has_to_)?(?:abide|adhere|comply|follow|obey) (?:by|to|with) ~2 "
       rf"{_alt(_LIMITS + ' policy policies')}"),
    _p("pretend_no_restrictions", _ROLE, 0.88, "pretend imagine act assume behave respond answer roleplay",
       rf"(?:pretend|imagine|act|assume|behave|respond|answer|roleplay) ~4 (?:have|has|with|without|having) "
       rf""
        rf"(?:no|zero|any) ~2 {_alt(_LIMITS)}"),
    _p("has_no_limits", _ROLE, 0.45, _LIMITS,
       rf"(?:has|have|having|with|without) (?:no|zero|any) (?:ethical_|moral_|content_)?{_alt(_LIMITS)}"),
    _p("unfiltered_persona", _ROLE, 0.45, "unfiltered uncensored unrestricted amoral unethical unlimited unbound "
                                          "jailbroken evil rogue immoral",
       r"(?:unfiltered|uncensored|unrestricted|amoral|unethical|unlimited|unbound|jailbroken|evil|rogue|immoral) "
       r"(?:ai|chatbot|assistant|model|language_model|version|persona|character|alter_ego|responses?|answers?)"),
    _p("amoral_traits", _ROLE, 0.4, "amoral uncensored unfiltered unrestrained",
       r"(?:amoral|uncensored|unfiltered|unrestrained)"),
    _p("stay_in_character", _ROLE, 0.45, "character",
       r"(?:stay|stays|remain|keep|staying) (?:in|into) character"),
    _p("break_character", _ROLE, 0.45, "character",
       r"(?:break|breaking|broke) (?:of_)?character"),
    _p("content_policy", _ROLE, 0.45, "openai anthropic chatgpt",
       r"(?:openai|anthropic|chatgpt)(?:'s|s)? ~2 "
       r"(?:content_|usage_|safety_)?(?:polic(?:y|ies)|guidelines|rules|filters|restrictions|tos)"),
    _p("no_content_policy", _ROLE, 0.7, "content",
       r"(?:no|not|without|ignore|ignores|bypass|bypasses|violate|violates) ~3 content "
       r"(?:polic(?:y|ies)|filters?)"),
    _p("stands_for", _ROLE, 0.45, "stands",
       r"which stands for"),
    _p("can_do_anything", _ROLE, 0.6, "anything",
       r"can do anything"),
    _p("from_now_on_you", _ROLE, 0.35, "now",
       r"from now on ~2 (?:you|your)"),
    _p("never_refuse", _ROLE, 0.45, "refuse refuses decline declines",
       r"(?:never|don't|dont|do_not|cannot|can't|won't|will_never|not_allowed_to) "
       r"(?:refuse|refuses|decline|declines)"),
    _p("without_refusal", _ROLE, 0.45, "refusal refusals refusing warning warnings disclaimer disclaimers "
                                       "censorship hesitation",
       r"without (?:any_)?(?:refusal|refusals|refusing|warnings?|disclaimers?|censorship|hesitation)"),
    _p("no_moral_limits", _ROLE, 0.45, "ethical moral morality ethics morals",
       r"(?:no|without|free_of|bereft_of|devoid_of|lacking|disregards?|ignores?) ~1 "
       r"(?:ethical|moral|morality|ethics|morals) ~1 "
       r"(?:guidelines|constraints|restrictions|boundaries|limits|principles|considerations|concerns|rules|compass|filters|or|and)"),
    _p("disclaimer_never_used", _ROLE, 0.6, "used implemented executed practice enacted carried acted",
       r"(?:purposes?|fiction|fictional|hypothetical|scenario|exercise|research|study) ~3 (?:never|not) "
       r"(?:be_)?(?:actually_)?(?:used|implemented|executed|put_into_practice|enacted|carried_out|acted_upon)"),
    _p("sure_here_is", _ROLE, 0.85, "sure",
       r"(?:start|begin|begins|starts|starting) ~4 (?:with|by_saying) ~1 sure,?_here_(?:is|are)"),
    _p("jailbroken", _ROLE, 0.8, "jailbroken jailbreak unchained unshackled unleashed",
       r"(?:you|you're|you_are|now) ~2 (?:jailbroken|jailbreak|unchained|unshackled|unleashed)"),
    _p("not_respond_as_ai", _ROLE, 0.6, "respond responding answer act acting reply behave",
       r"(?:not|never|stop) (?:respond|responding|answer|act|acting|reply|behave) (?:as|like) "
       r"(?:chatgpt|gpt|an_ai|a_language_model|an_assistant|openai)"),
    _p("two_responses", _ROLE, 0.45, "two",
       r"(?:answer|respond|reply|responses?) ~4 (?:in|with) two "
       r"(?:different_|distinct_|separate_)*(?:ways|manners|styles|responses|paragraphs)"),
    # --- prompt_extraction ---
    _p("reveal_system_prompt", _EXTRACT, 0.9, "prompt instruction instructions message configuration directives "
                                              "rules guidelines",
       rf"{_alt(_SHOW)} ~3 (?:your|the|this|its) ~2 "
       rf"(?:{_alt(_DISGUISED)}_?(?:prompt|instructions?|configuration|directives|rules|guidelines)|system_message)"),
    _p("your_instructions", _EXTRACT, 0.8, "instructions prompt directives guidelines message",
       r"(?:reveal|print|repeat|show|display|output|leak|dump|disclose|recite|what_(?:are|were)|tell_me|give_me|share) "
       r"~2 your (?:instructions|prompt|directives|guidelines|system_message)"),
    _p("text_above", _EXTRACT, 0.8, "above before far preceding verbatim beginning given",
       r"(?:repeat|print|output|return|show|copy|reproduce|recite|rewrite|echo|display) ~3 "
       r"(?:text|words|content|everything|instructions|prompt|message) ~1 "
       r"(?:above|before_this|so_far|preceding|verbatim|at_the_beginning|from_the_beginning|you_were_given)"),
    _p("repeat_above_text", _EXTRACT, 0.75, "above",
       r"(?:repeat|print|output|return|show|copy|reproduce|recite|rewrite|echo|display|translate) ~2 above "
       r"(?:text|words|content|instructions|prompt|message|conversation)"),
    _p("instructions_given", _EXTRACT, 0.75, "instructions prompt rules",
       r"(?:instructions|prompt|rules) (?:you_were|you've_been|you_have_been|that_you_were) "
       r"(?:given|told|provided|programmed)"),
    _p("my_instructions_are", _EXTRACT, 0.8, "instructions prompt",
       r"(?:my|your) (?:instructions|system_prompt|initial_prompt) (?:are|is):"),
    _p("ask_password", _EXTRACT, 0.6, "password passcode key",
       r"(?:what's|what_is|whats|tell_me|give_me|confirm|reveal|disclose) ~1 (?:your|the) "
       r"(?:password|passcode|secret_key|api_key)"),
    # --- delimiter_injection ---
    _r("chat_template_token", _DELIM, 0.95, "im system user assistant endoftext begin start end eot",
       r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id|end|im_sep)\|>"),
    _r("inst_tag", _DELIM, 0.9, "inst sys",
       r"\[/?inst\]|<</?sys>>"),
    _r("role_markup", _DELIM, 0.8, "system user assistant human im sys",
       r"</?(?:system|user|assistant|human|im_start|system_prompt|sys)>"),
    _r("markdown_role_header", _DELIM, 0.7, "system instructions instruction admin developer assistant",
       r"^[ \t]*#{2,}[ \t]*(?:system|new\s+instructions?|admin|developer|assistant|instruction)s?[ \t]*:?[ "
       r"\t]*$"),
    _r("injected_role_line", _DELIM, 0.6, "system assistant admin developer",
       r"^[ \t]*(?:system|assistant|admin|developer)[ \t]*:[ "
       r"\t]*(?:you|ignore|new|from|the\s+user|forget|disregard|override)\b"),
    _p("end_of_user_input", _DELIM, 0.85, "user",
       r"(?:end_of|end) (?:the_)?(?:user|user's) (?:input|message|prompt|query|request|text)"),
    _r("bracket_system_mode", _DELIM, 0.7, "system admin developer root god",
       r"[<\[{(]\s*(?:system|admin|developer|root|god)\s*(?:mode|override|message|note|command|prompt|instruction)s?\b[^<>\[\]\n]{0,30}[>\]})]"),
)
# fmt: on

_MAX_SCORE = 0.99
_WINDOW = 240
_CUSTOM_WEIGHT = 0.9
_MAX_DECODE_DEPTH = 2
_MAX_PAYLOADS = 6
# rot13 / reversed text are worth a second pass only when their tell-tale words appear.
_ROT13_TELLS = frozenset({"vtaber", "qvfertneq", "vafgehpgvbaf", "cerivbhf", "flfgrz", "cebzcg", "wnvyoernx", "erirny"})
_REVERSED_TELLS = frozenset({"snoitcurtsni", "erongi", "dragersid", "tpmorp", "suoiverp", "metsys", "kaerbliaj"})
_NEGATED = re.compile(
    r"(?:\bnot|\bnever|n't|\bnot\s+to|\brefuse\s+to|\bwithout)(?:\s+(?:ever|ever\s+be\s+able\s+to|be\s+able\s+to|you))?\s+$"
)
_THIRD_PARTY_ROLES = frozenset({"tool", "function"})
_LETTERS_ONLY = bytes(c if 97 <= c <= 122 else 32 for c in range(256))

SpanMap = Callable[[int, int], tuple[int, int]]


def words_of(folded: str) -> frozenset[str]:
    """The set of lower-case letter runs of folded text (a cheap gate for the rules)."""
    return frozenset(folded.encode("ascii", "replace").translate(_LETTERS_ONLY).decode("ascii").split())


@dataclass(frozen=True, slots=True)
class _Rule:
    spec: RuleSpec
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: RuleSpec
    start: int
    end: int
    encoded: bool


def _compile(detector: str, spec: RuleSpec) -> re.Pattern[str]:
    try:
        return re.compile(spec.regex, re.MULTILINE)
    except re.error as exc:  # only extra_patterns from a policy can be malformed
        index = spec.name.removeprefix("custom_")
        raise PolicyInvalid(f"detectors.{detector}.extra_patterns[{index}]: invalid regex ({exc})") from exc


class InjectionHeuristicDetector:
    scope: Literal["text", "request"] = "text"
    # Pure CPU, microseconds, never awaits: the chain calls it in place instead of as a task.
    inline: ClassVar[bool] = True  # InlineDetector

    def __init__(self, name: str, config: InjectionHeuristicConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._decode = config.decode
        wanted = set(config.categories)
        specs = [s for s in RULE_SPECS if s.category in wanted]
        specs += [
            RuleSpec(f"custom_{i}", "custom", _CUSTOM_WEIGHT, p, frozenset(), False)
            for i, p in enumerate(config.extra_patterns)
        ]
        self._rules: tuple[_Rule, ...] = tuple(_Rule(spec, _compile(name, spec)) for spec in specs)
        # Every word any rule spells out: a variant view is rescanned only if it adds one of them.
        self._vocabulary = frozenset(w for s in RULE_SPECS for w in re.findall(r"[a-z]{2,}", s.regex))
        self._normalizer = Normalizer()

    async def detect(self, text: str, ctx: Context) -> Detection:
        return self.scan(text, role=ctx.role)

    async def aclose(self) -> None:
        return None

    def scan(self, text: str, role: str = "user") -> Detection:
        """Synchronous core of `detect`: pure CPU, a fraction of a millisecond for ordinary prompts."""
        hits = list(self._scan_views(self._normalizer.fold(text), encoded=False))
        if self._decode:
            hits += self._scan_payloads(text, depth=1, outer=None)
        return _to_detection(hits, third_party=role in _THIRD_PARTY_ROLES)

    def _scan_views(self, folded: Folded, *, encoded: bool) -> Iterator[_Hit]:
        text = folded.text
        words = words_of(text)
        yield from self._match(text, words, folded.original_span, encoded=encoded)
        leet = leet_variant(text)
        if leet is not None:
            leet_words = words_of(leet)
            if not (leet_words - words).isdisjoint(self._vocabulary):
                yield from self._match(leet, leet_words, folded.original_span, encoded=encoded)
        if sum(1 for w in words if len(w) == 1) >= 4:
            yield from self._scan_despaced(folded, words, encoded=encoded)
        if not self._decode:
            return
        if not words.isdisjoint(_ROT13_TELLS):
            flipped = rot13(text)
            yield from self._match(flipped, words_of(flipped), folded.original_span, encoded=True)
        if not words.isdisjoint(_REVERSED_TELLS):
            size = len(text)

            def from_reversed(start: int, end: int) -> tuple[int, int]:
                return folded.original_span(size - end, size - start)

            backwards = text[::-1]
            yield from self._match(backwards, words_of(backwards), from_reversed, encoded=True)

    def _scan_despaced(self, folded: Folded, words: frozenset[str], *, encoded: bool) -> Iterator[_Hit]:
        despaced = despaced_variant(folded.text)
        if despaced is None:
            return
        joined, positions = despaced
        joined_words = words_of(joined)
        if (joined_words - words).isdisjoint(self._vocabulary):
            return

        def from_despaced(start: int, end: int) -> tuple[int, int]:
            return folded.original_span(positions[start], positions[end - 1] + 1)

        yield from self._match(joined, joined_words, from_despaced, encoded=encoded)

    def _scan_payloads(self, text: str, depth: int, outer: tuple[int, int] | None) -> list[_Hit]:
        hits: list[_Hit] = []
        for count, payload in enumerate(find_payloads(text)):
            if count >= _MAX_PAYLOADS:
                break
            start, end = outer or (payload.start, payload.end)
            folded = self._normalizer.fold(payload.decoded)
            hits += [_Hit(h.rule, start, end, True) for h in self._scan_views(folded, encoded=True)]
            if depth < _MAX_DECODE_DEPTH:
                hits += self._scan_payloads(payload.decoded, depth + 1, (start, end))
        return hits

    def _match(self, text: str, words: frozenset[str], to_original: SpanMap, *, encoded: bool) -> Iterator[_Hit]:
        for rule in self._rules:
            anchors = rule.spec.anchors
            present = anchors & words if anchors else None
            if present is not None and not present:
                continue
            for window_start, window_end in _windows(text, present):
                yield from self._search(rule, text, window_start, window_end, to_original, encoded)

    @staticmethod
    def _search(rule: _Rule, text: str, pos: int, endpos: int, to_original: SpanMap, encoded: bool) -> Iterator[_Hit]:
        while (found := rule.pattern.search(text, pos, endpos)) is not None:
            start, end = found.span()
            pos = max(end, start + 1)
            spec = rule.spec
            if spec.word_start and start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
                pos = start + 1
                continue
            if spec.negatable and _NEGATED.search(text, max(0, start - 40), start):
                continue
            yield _Hit(spec, *to_original(start, end), encoded)


def _windows(text: str, anchors: frozenset[str] | None) -> list[tuple[int, int]]:
    """Where a rule can match: the whole of a short text, else merged windows around its anchors.

    A phrase rule spans a handful of words, so a match always lies within _WINDOW characters
    of one of its anchor words; searching only there keeps long texts cheap.
    """
    if anchors is None or len(text) <= 4 * _WINDOW:
        return [(0, len(text))]
    spans: list[tuple[int, int]] = []
    for anchor in anchors:
        at = text.find(anchor)
        while at != -1:
            spans.append((max(0, at - _WINDOW), min(len(text), at + len(anchor) + _WINDOW)))
            at = text.find(anchor, at + len(anchor))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _weight(rule: RuleSpec, third_party: bool) -> float:
    return rule.third_party_weight if third_party and rule.third_party_weight is not None else rule.weight


def _to_detection(hits: list[_Hit], *, third_party: bool) -> Detection:
    if not hits:
        return Detection(score=0.0)
    weights = {hit.rule.name: _weight(hit.rule, third_party) for hit in hits}
    score = min(_MAX_SCORE, 1.0 - math.prod(1.0 - w for w in weights.values()))
    categories = sorted({hit.rule.category for hit in hits})
    encoded = any(hit.encoded for hit in hits)
    labels = (*categories, "encoded") if encoded else tuple(categories)
    spans = sorted(
        {Span(h.start, h.end, h.rule.category, _weight(h.rule, third_party)) for h in hits},
        key=lambda s: (s.start, s.end),
    )
    where = " (some inside an encoded or obfuscated payload)" if encoded else ""
    explanation = f"{len(weights)} injection rule(s) matched{where}: {', '.join(sorted(weights))}"
    return Detection(score=round(score, 4), labels=labels, spans=tuple(spans), explanation=explanation)

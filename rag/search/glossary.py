"""Acronyms the notes spell out, used to widen a question before it is searched.

    glossary = Glossary.from_texts(["- SQS -- Simple Queue Service"])
    glossary.expand("max sqs message size")  # 'max sqs message size (Simple Queue Service)'

Notes define acronyms as "SQS -- Simple Queue Service", "SNS - Simple Notification Service" or
"Elastic Block Store (EBS)". A definition is kept only when the acronym's letters spell the
initials of the words (or the capitals inside them: DynamoDB), so "IAM (see below)" is not one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_ACRONYM = r"([A-Z][A-Za-z0-9]{1,7})"
_PHRASE = r"([A-Z][\w/&.'-]*(?:[ -][\w/&.'()-]+){1,7})"
_DASHED = re.compile(rf"(?:^|[\s(])\W*{_ACRONYM}\s+--?\s+{_PHRASE}")
_PAREN = re.compile(rf"{_PHRASE}\s+\({_ACRONYM}\b[^)]*\)")
_DASHED_AFTER = re.compile(rf"{_PHRASE}\s+--?\s+{_ACRONYM}\s*$")  # "Instance Metadata -- IMDS"
_SMALL_WORDS = {"of", "for", "and", "the", "a", "an", "to", "in", "on", "as", "with", "by"}


@dataclass
class Glossary:
    terms: dict[str, str] = field(default_factory=dict)  # "sqs" -> "Simple Queue Service"

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Glossary:
        terms: dict[str, str] = {}
        for text in texts:
            for line in text.split("\n"):
                for acronym, phrase in _definitions(line):
                    terms.setdefault(acronym.lower(), phrase)
        return cls(terms)

    def expand(self, question: str) -> str:
        """The question plus the spelled-out form of each acronym it uses, and vice versa."""
        words = set(re.findall(r"[a-z0-9]+", question.lower()))
        extra = [phrase for acronym, phrase in self.terms.items() if acronym in words]
        lowered = " ".join(question.lower().split())
        extra += [
            acronym.upper()
            for acronym, phrase in self.terms.items()
            if len(phrase.split()) > 1 and phrase.lower() in lowered and acronym not in words
        ]
        return f"{question} ({'; '.join(extra)})" if extra else question


def _definitions(line: str) -> Iterable[tuple[str, str]]:
    for m in _DASHED.finditer(line):
        acronym, phrase = m.group(1), _trim(m.group(2))
        phrase = _prefix_spelling(acronym, phrase)
        if phrase:
            yield acronym, phrase
    for m in [*_PAREN.finditer(line), *_DASHED_AFTER.finditer(line)]:
        phrase, acronym = _trim(m.group(1)), m.group(2)
        phrase = _suffix_spelling(acronym, phrase)
        if phrase:
            yield acronym, phrase


def _trim(phrase: str) -> str:
    return re.split(r"\s[-(,;:]|[,;:()]", phrase, maxsplit=1)[0].strip(" .-")


def _initials(word: str) -> str:
    """A word's initial plus its inner capitals and digits: DynamoDB -> DDB, EC2 -> E2."""
    return word[0] + "".join(ch for ch in word[1:] if ch.isupper() or ch.isdigit())


def _spells(acronym: str, words: list[str]) -> bool:
    a = acronym.upper()
    if any(w.upper() == a for w in words):
        return False  # "DVA -- ... (DVA-C02)" defines nothing
    if len(words) < 2 and not any(ch.isupper() for ch in words[0][1:]):
        return False  # one plain word spells nothing
    initials = "".join(_initials(w) for w in words if w.lower() not in _SMALL_WORDS)
    if a == initials.upper():
        return True
    # Looser: Instance MetaData Service -> IMDS; the run starts and ends on acronym letters.
    return (
        a[0] == words[0][0].upper()
        and words[-1][0].upper() in a
        and 2 * len(words) >= len(a)
        and _subsequence(a, "".join(words).upper())
    )


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def _prefix_spelling(acronym: str, phrase: str) -> str:
    """The shortest leading run of words the acronym spells ("Simple Queue Service ...")."""
    words = phrase.split()
    for n in range(1, min(len(words), 8) + 1):
        if _spells(acronym, words[:n]) and n >= _min_words(acronym):
            return " ".join(words[:n])
    return ""


def _suffix_spelling(acronym: str, phrase: str) -> str:
    """The shortest trailing run of words the acronym spells ("... Elastic Block Store")."""
    words = phrase.split()
    for n in range(1, min(len(words), 8) + 1):
        if _spells(acronym, words[-n:]) and n >= _min_words(acronym):
            return " ".join(words[-n:])
    return ""


def _min_words(acronym: str) -> int:
    return max(1, sum(ch.isupper() for ch in acronym) - 2)

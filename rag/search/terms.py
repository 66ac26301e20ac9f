"""What a question asks about, in the notes' own words: misspellings corrected against the
notes' vocabulary, and the salient terms (names, technical terms) told from filler words.

    words = engine.words                   # NoteWords over the index's BM25 vocabulary
    words.correct("max lamda timout")      # Corrected("max lambda timeout", {"lamda": ...})
    words.salient("what is the max lambda timeout")   # ["lambda", "timeout"]
    words.unknown(["lambda", "macie"])     # ["macie"]: the notes never use it
    words.idf("lambda")                    # how rare it is in the notes; None if unused

A word is corrected only when the notes do not use it and it is no English word
(`wordfreq`): to another form of it the notes use ("zipped" -> "zip"), or else to a word of
the notes within one edit of it (two for words of eight letters or more), the one with the
most occurrences (`symspellpy`). A term is salient when it is rare in general English (names
and technical terms are) or holds a digit; filler words ("big", "cost", "how") are common.
Nothing here knows the notes' subject: only their words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import regex
from symspellpy import SymSpell, Verbosity
from wordfreq import zipf_frequency

from rag.index.lexical import STOPWORDS, LexicalIndex, is_cjk, tokenize

WORD_ZIPF = 3.0  # a word this frequent in English (10^(z-9) of words) is a word, not a typo
COMMON_ZIPF = 4.0  # and this frequent, an everyday word
SALIENT_ZIPF = 3.3  # a term rarer than this in English names something
NAME_ZIPF = 2.0  # rarer still: a product or a proper name rather than a rare word
MIN_FIX_LENGTH = 4  # shorter words have too many neighbours to be corrected safely
_WORD = regex.compile(r"\p{L}[\p{L}\p{M}]*")  # a word, with its marks (lexical._WORD)


@dataclass(frozen=True)
class Corrected:
    text: str  # the question with each corrected word replaced
    fixes: dict[str, str] = field(default_factory=dict)  # word as typed -> the notes' word

    def notice(self) -> str:
        shown = ", ".join(f'"{a}" -> "{b}"' for a, b in self.fixes.items())
        return f'spelling corrected to words your notes use ({shown}): searched for "{self.text}"'


class NoteWords:
    """The vocabulary of one index: its BM25 terms, how many chunks hold each, how rare each is."""

    def __init__(self, lexical: LexicalIndex) -> None:
        self._postings = lexical.postings
        self.idf = lexical.idf  # term -> Lucene idf, None when no chunk holds it

    @cached_property
    def _speller(self) -> SymSpell:
        """Built on the first word to correct (a large vocabulary takes a while)."""
        speller = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        chunks_holding = np.diff(self._postings.indptr).tolist()
        for term, count in zip(self._postings.vocab, chunks_holding, strict=True):
            if term.isalpha() and len(term) >= 3:
                speller.create_dictionary_entry(term, count)
        return speller

    def known(self, term: str) -> bool:
        return term in self._postings.vocab

    def correct(self, question: str) -> Corrected:
        """The question with its misspelled words replaced by the notes' spelling."""
        fixes: dict[str, str] = {}
        for word in dict.fromkeys(w.lower() for w in _WORD.findall(question)):
            fix = self._fix(word)
            if fix:
                fixes[word] = fix
        if not fixes:
            return Corrected(question)
        text = _WORD.sub(lambda m: fixes.get(m.group().lower(), m.group()), question)
        return Corrected(text, fixes)

    def _fix(self, word: str) -> str | None:
        terms = tokenize(word)
        if len(word) < 3 or len(terms) != 1 or self.known(terms[0]):
            return None
        if word in STOPWORDS or zipf_frequency(word, "en") >= WORD_ZIPF:
            return None  # an English word the notes happen not to use: not a typo
        term = terms[0]  # as the notes' terms are kept: lower case, plurals folded
        variant = next((v for v in _variants(term) if self.known(v)), None)
        if variant:  # "zipped" where the notes say "zip": the notes' own form
            return variant
        for i in range(2, len(term) - 1):  # "presigned" where the notes say "pre-signed"
            if any(self.known(f"{term[:i]}{j}{term[i:]}") for j in "-_./"):
                return f"{term[:i]}-{term[i:]}"
        if len(word) < MIN_FIX_LENGTH:
            return None
        reach = 1 if len(term) < 8 else 2
        found = [  # a word two letters longer than one of the notes' is another word
            s
            for s in self._speller.lookup(term, Verbosity.CLOSEST, max_edit_distance=reach)
            if not (
                len(term) - len(s.term) >= 2 and (term.startswith(s.term) or term.endswith(s.term))
            )
        ]
        # Among the closest: the longest common start ("limt": limit, not list), then the
        # commonest in the notes.
        best = max(
            found, key=lambda s: (-s.distance, _shared_start(s.term, term), s.count), default=None
        )
        return best.term if best and best.term != term else None

    def salient(self, question: str) -> list[str]:
        """The question's terms that name something, in order, each once."""
        return [t for t in dict.fromkeys(tokenize(question)) if is_salient(t)]

    def unknown(self, terms: list[str]) -> list[str]:
        """The terms the notes never use."""
        return [t for t in terms if not self.known(t)]


def _shared_start(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _variants(term: str) -> list[str]:
    """Other forms of an English word: zipped -> zip, hardcoding -> hardcode, AZs -> az."""
    out = [term[:-1]] if term.endswith("s") and len(term) > 2 else []
    for suffix in ("able", "ing", "ed", "er", "ly", "es"):
        if term.endswith(suffix) and len(term) - len(suffix) >= 3:
            stem = term[: -len(suffix)]
            out += [stem, stem + "e"]
            if len(stem) > 3 and stem[-1] == stem[-2]:  # zipped -> zipp -> zip
                out.append(stem[:-1])
    return out


def english_zipf(term: str) -> float:
    """How common a term is in English (wordfreq's Zipf scale), as the word or as the plural
    or "-es" form the tokenizer folded ("goes" -> "goe")."""
    forms = (term, term + "s", term + "es")
    return max(zipf_frequency(form, "en") for form in forms)


def is_everyday(term: str) -> bool:
    """A word common in English ("big", "reply", "window")."""
    return english_zipf(term) >= COMMON_ZIPF


def is_name(term: str) -> bool:
    """As rare in English as a product or proper name ("macie", "lightsail")."""
    return english_zipf(term) < NAME_ZIPF


def is_salient(term: str) -> bool:
    """A term rare in English (a name, a technical term) or with a digit in it; not a CJK
    bigram (`is_cjk`), which English word counts cannot judge."""
    if term in STOPWORDS or len(term) < 2 or is_cjk(term):
        return False
    if any(ch.isdigit() for ch in term):
        return True
    return english_zipf(term) < SALIENT_ZIPF

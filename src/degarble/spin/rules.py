"""Hand-written spinner rules for what thesauri do not cover: function words and rewrites.

Sources: general English usage and the behaviours listed in ``shared/docs/SPINNERS.md``
(observed on a dozen spun articles). None of these lists is copied from the development
article: the realism report (``data/realism.py``) measures coverage with and without them.

Each table maps a lowercased original (word or phrase) to weighted spun candidates, in the
same shape as the thesaurus, so the spinner treats them alike.
"""

from __future__ import annotations

# Modals, conjunctions, prepositions and adverbs that spinners swap (SPINNERS.md "Which words").
FUNCTION_WORDS: dict[str, list[tuple[str, float]]] = {
    "but": [("however", 2.0), ("however", 1.0)],
    "could": [("may", 2.0), ("might", 1.5), ("would possibly", 0.5)],
    "would": [("might", 2.0), ("could", 1.0), ("will", 0.8)],
    "will": [("would", 1.0), ("will", 0.0)],
    "can": [("may", 1.0), ("might", 0.6), ("could", 0.6)],
    "may": [("might", 2.0), ("could", 1.0)],
    "might": [("may", 2.0), ("could", 1.0)],
    "should": [("ought to", 1.0), ("must", 0.8)],
    "must": [("should", 1.0), ("has to", 0.6)],
    "while": [("whereas", 2.0), ("whilst", 1.0)],
    "although": [("though", 2.0), ("even though", 1.0)],
    "because": [("as a result of", 1.0), ("since", 1.0), ("as", 0.6)],
    "because of": [("as a consequence of", 1.5), ("on account of", 1.0), ("due to", 1.0)],
    "however": [("nonetheless", 1.0), ("nevertheless", 1.0)],
    "also": [("additionally", 2.0), ("as well", 0.5)],
    "within": [("throughout", 2.0), ("inside", 1.0)],
    "among": [("amongst", 2.0), ("amid", 0.6)],
    "toward": [("towards", 2.0), ("in the direction of", 0.5)],
    "towards": [("toward", 1.0), ("in the direction of", 0.5)],
    "during": [("throughout", 1.5), ("in the course of", 1.0)],
    "before": [("earlier than", 1.0), ("prior to", 1.0)],
    "after": [("after", 0.0)],
    "about": [("about", 0.0)],
    "around": [("round", 1.0), ("about", 1.0)],
    "until": [("till", 1.0), ("until", 0.0)],
    "near": [("close to", 1.0), ("close to", 0.0)],
    "despite": [("in spite of", 1.0), ("regardless of", 1.0)],
    "via": [("by way of", 1.0), ("through", 0.8)],
    "whether": [("whether or not", 2.0)],
    "many": [("lots of", 1.0), ("a lot of", 1.0), ("numerous", 1.0)],
    "a lot of": [("a whole lot of", 1.5), ("loads of", 0.8), ("plenty of", 0.8)],
    "lots of": [("a whole lot of", 1.0), ("plenty of", 1.0)],
    "very": [("very", 0.0)],
    "just": [("simply", 2.0), ("merely", 1.0)],
    "only": [("solely", 1.5), ("simply", 1.0)],
    "still": [("nonetheless", 1.0), ("nonetheless", 0.0)],
    "such as": [("similar to", 1.0), ("corresponding to", 1.0), ("comparable to", 0.8)],
    "as well as": [("in addition to", 1.0), ("in addition to", 0.0)],
    "for example": [("for instance", 1.0)],
    "at least": [("no less than", 1.0), ("not less than", 0.6)],
    "more than": [("greater than", 1.0), ("over", 0.8)],
    "according to": [("in line with", 1.0), ("based on", 1.0)],
    "so far": [("thus far", 1.0), ("to date", 1.0)],
}

# Word -> phrase and phrase -> phrase paraphrases, both directions (SPINNERS.md "Phrases").
PHRASES: dict[str, list[tuple[str, float]]] = {
    "the most": [("probably the most", 2.0)],
    "year": [("12 months", 1.5), ("yr", 0.3)],
    "years": [("years", 0.0)],
    "more": [("extra", 2.0), ("extra", 0.0)],
    "countries": [("international locations", 1.5), ("nations", 1.0)],
    "country": [("nation", 1.5)],
    "comment on": [("touch upon", 1.5), ("touch on", 1.0)],
    "start": [("start out", 1.0), ("begin", 1.0)],
    "started": [("began", 1.0), ("started out", 0.6)],
    "the way": [("manner", 1.0), ("the best way", 1.0)],
    "in order to": [("so as to", 2.0), ("with the intention to", 1.0)],
    "give up": [("quit", 1.5), ("surrender", 0.8)],
    "deal with": [("take care of", 1.5), ("cope with", 1.0), ("handle", 1.0)],
    "dealing with": [("coping with", 1.5), ("taking care of", 1.0)],
    "take part": [("participate", 1.0), ("partake", 0.5)],
    "find out": [("discover", 1.0), ("uncover", 0.5)],
    "set up": [("arrange", 1.0), ("establish", 1.0)],
    "carry out": [("perform", 1.0), ("conduct", 1.0)],
    "point out": [("level out", 1.0), ("notice", 0.5)],
    "look into": [("look at", 1.0), ("examine", 1.0)],
    "make sure": [("guarantee", 1.0), ("be certain", 1.0)],
    "a number of": [("a variety of", 1.0), ("various", 1.0)],
    "in addition": [("moreover", 1.0), ("as well as", 0.5)],
    "as a result": [("in consequence", 1.0), ("consequently", 1.0)],
}

# Habits of the commercial spinners that content farms run, for frequent news words: each word
# goes to the one or two replacements those tools are known for (their synonym tables favour a
# "fancier" word, or a paraphrase of the dictionary sense). Used by the ``content-farm`` profile,
# where these choices outweigh the thesaurus. Inflected forms are listed (nothing re-inflects).
# Two sources, kept apart:
# 1. the examples of shared/docs/SPINNERS.md ("Which words" and the names built from ordinary
#    words), observed across a dozen spun articles. Some also occur in the development article,
#    so data/realism.py reports coverage with and without this table;
# 2. general knowledge of spun web text. No pair here was taken from the development article.
NEWS_SPINNER: dict[str, list[tuple[str, float]]] = {
    # 1. SPINNERS.md
    "said": [("mentioned", 3.0), ("stated", 2.0)],
    "told": [("instructed", 2.0), ("advised", 1.5)],
    "organize": [("arrange", 2.0)],
    "war": [("battle", 2.0)],
    "question": [("query", 2.0)],
    "officials": [("officers", 2.0)],
    "comments": [("feedback", 2.0)],
    "possible": [("doable", 2.0)],
    "dangerous": [("harmful", 2.0)],
    "nearly": [("practically", 2.0)],
    "closely": [("intently", 2.0)],
    "general": [("common", 2.0)],
    "assembly": [("meeting", 2.0)],
    "security": [("safety", 2.0)],
    "house": [("home", 2.0)],
    "news": [("information", 2.0)],
    "foreign": [("international", 2.0)],
    "action": [("motion", 2.0)],
    "conference": [("convention", 2.0)],
    # 2. general knowledge
    "people": [("individuals", 3.0), ("folks", 1.0)],
    "help": [("assist", 2.0)],
    "helped": [("assisted", 2.0)],
    "show": [("present", 1.5)],
    "shows": [("exhibits", 1.0), ("reveals", 1.0)],
    "big": [("massive", 2.0), ("huge", 1.0)],
    "important": [("essential", 2.0), ("vital", 1.0)],
    "need": [("want", 2.0), ("require", 1.0)],
    "needs": [("wants", 2.0), ("requires", 1.0)],
    "think": [("assume", 2.0), ("suppose", 1.0)],
    "thinks": [("believes", 1.5), ("assumes", 1.0)],
    "buy": [("purchase", 2.0)],
    "bought": [("purchased", 2.0)],
    "company": [("firm", 2.0), ("agency", 1.0)],
    "companies": [("corporations", 1.5), ("firms", 1.5)],
    "children": [("youngsters", 2.0), ("kids", 1.0)],
    "car": [("automobile", 2.0), ("automotive", 1.0)],
    "cars": [("automobiles", 2.0), ("vehicles", 1.0)],
    "city": [("metropolis", 2.0)],
    "several": [("a number of", 2.0)],
    "expected": [("anticipated", 2.0)],
    "continue": [("proceed", 2.0)],
    "data": [("information", 2.0), ("knowledge", 1.0)],
    "result": [("end result", 1.5), ("outcome", 1.0)],
    "increased": [("elevated", 2.0)],
    "announced": [("introduced", 2.0), ("declared", 1.0)],
    "previously": [("beforehand", 2.0)],
    "currently": [("presently", 2.0), ("at the moment", 1.0)],
    "community": [("neighborhood", 2.0), ("group", 1.0)],
    "business": [("enterprise", 2.0)],
    "businesses": [("companies", 1.0), ("enterprises", 1.0)],
    "students": [("college students", 2.0), ("pupils", 1.0)],
    "school": [("faculty", 1.5), ("college", 1.0)],
    "local": [("native", 2.0)],
    "health": [("well being", 2.0)],
    "government": [("authorities", 2.0)],
    "team": [("group", 2.0), ("crew", 1.0)],
    "got": [("received", 1.5), ("acquired", 1.0)],
    "really": [("actually", 2.0), ("truly", 1.0)],
    "problem": [("downside", 2.0), ("drawback", 1.0)],
    "problems": [("issues", 2.0)],
    "using": [("utilizing", 2.0)],
    "allow": [("enable", 2.0), ("permit", 1.0)],
    "major": [("main", 2.0)],
    "large": [("giant", 2.0), ("massive", 1.0)],
    "quickly": [("rapidly", 2.0), ("shortly", 1.0)],
    "soon": [("quickly", 2.0)],
    "attack": [("assault", 2.0)],
    "attacks": [("assaults", 2.0)],
    "court": [("courtroom", 2.0), ("court docket", 1.0)],
    "law": [("regulation", 2.0), ("legislation", 1.0)],
    "rules": [("guidelines", 2.0)],
    "ahead of": [("forward of", 2.0)],
    "price": [("value", 2.0), ("worth", 1.0)],
    "prices": [("costs", 2.0)],
    "national": [("nationwide", 2.0)],
    "international": [("worldwide", 2.0)],
}

# Contractions, both ways (SPINNERS.md "Damage it leaves"). Keys use a straight apostrophe; the
# spinner matches curly ones too and writes back the apostrophe style of the text.
CONTRACTIONS: dict[str, str] = {
    "it's": "it is", "that's": "that is", "there's": "there is", "he's": "he is", "she's": "she is",
    "what's": "what is", "who's": "who is", "let's": "let us", "i'm": "i am", "we're": "we are",
    "they're": "they are", "you're": "you are", "i've": "i have", "we've": "we have",
    "they've": "they have", "you've": "you have", "i'll": "i will", "we'll": "we will",
    "he'll": "he will", "she'll": "she will", "they'll": "they will", "you'll": "you will",
    "i'd": "i would", "we'd": "we would", "they'd": "they would", "don't": "do not",
    "doesn't": "does not", "didn't": "did not", "can't": "cannot", "won't": "will not",
    "isn't": "is not", "aren't": "are not", "wasn't": "was not", "weren't": "were not",
    "couldn't": "could not", "wouldn't": "would not", "shouldn't": "should not",
    "hasn't": "has not", "haven't": "have not", "hadn't": "had not",
}
EXPANSIONS: dict[str, str] = {v: k for k, v in CONTRACTIONS.items()}
# Spinners also rewrite a negated future as a phrase (SPINNERS.md: will not -> is not going to).
EXTRA_EXPANSIONS: dict[str, list[tuple[str, float]]] = {
    "will not": [("is not going to", 1.0), ("won't", 1.0)],
    "won't": [("is not going to", 1.0), ("will not", 1.0)],
}

# Number words become digits (SPINNERS.md: two -> 2). "one" is left out: "one of", "no one".
NUMBER_WORDS: dict[str, str] = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
    if i >= 2
}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
                     "eighty": "80", "ninety": "90", "hundred": "100"})

# Fillers a spinner inserts (SPINNERS.md: "probably", "just", "whether or not", "a whole lot of").
# Inserted after these words (copulas, modals, "to" before a verb) and before the next word.
FILLERS: list[tuple[str, float]] = [("just", 1.0), ("really", 1.0), ("actually", 0.8), ("simply", 1.0),
                                    ("probably", 0.8), ("basically", 0.5)]
FILLER_AFTER = {"is", "are", "was", "were", "be", "been", "to", "will", "would", "could", "can",
                "may", "might", "should", "must", "has", "have", "had"}
# ... but never before these (a filler before an article or a number reads as a different error).
NO_FILLER_BEFORE = {"a", "an", "the", "not", "be", "been", "being", "to", "and", "or", "of", "in", "on",
                    "at", "that", "this", "it", "he", "she", "they", "we", "i", "you", "there"}


# Words no spinner swaps although thesauri list "synonyms" for them (Moby gives Tuesday -> Wednesday):
# names of days and months. A model taught that they get swapped would "restore" dates in clean news.
NEVER_SWAP = {
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february",
    "march", "april", "june", "july", "august", "september", "october", "november", "december",
    "yesterday", "today", "tomorrow", "tonight",
}

DEFAULT_TABLES = ("FUNCTION_WORDS", "PHRASES", "EXTRA_EXPANSIONS")


def merged_rules(tables: tuple[str, ...] = DEFAULT_TABLES) -> dict[str, list[tuple[str, float]]]:
    """The named weighted rule tables of this module in one dict (zero-weight entries dropped)."""
    out: dict[str, list[tuple[str, float]]] = {}
    for table in (globals()[name] for name in tables):
        for k, cands in table.items():
            kept = []
            for c, w in cands:
                if w > 0 and c != k and (c, w) not in kept and c not in [x for x, _ in kept]:
                    kept.append((c, w))
            if kept:
                out.setdefault(k, []).extend(kept)
    return out

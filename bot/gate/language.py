"""Messages written in a language the gate cannot read.

The embedding model and the classifiers were trained on English; a question in Spanish or in Chinese scores as
nothing in particular and is refused with the scope's English refusal line, which its asker may not read either.
Such a message is recognised here with high precision (a wrong guess would refuse an English question): mostly
letters of another script, or at least three function words of one of nine languages written in Latin letters
(Spanish, French, Portuguese, German, Italian, Dutch, Polish, Vietnamese, Tagalog) and three times as many as of
English. When the topic classifier would refuse it, it is refused with a line that says so
(`bot.language_reply`), followed by the same line in the asker's language when we have it, instead of the scope's
refusal line (the classifier still answers the few it finds in scope, and the harm screens still run first).
"""

from __future__ import annotations

import re
import unicodedata

#: `GateResult.rule` of a question refused for its language is this, a colon and the language (`other_language`).
LANGUAGE_RULE = "topic:language"

#: Function words that no English sentence uses (words two languages share with English, such as "a", "no" or
#: "me", are left out).
_SPANISH = """
    el la los las del al es son está están estoy hay que qué cuál cuáles cuándo dónde cómo cuánto cuánta cuántos
    para por una unos unas pero muy también mi mis su sus tengo tiene tienen puedo puede pueden quiero necesito
    hola gracias buenos buenas días usted ustedes ellos nosotros hablan habla español horario abierto abren
    cierran mañana hoy
"""
_FRENCH = """
    le les des du est sont je vous nous ils elle être avoir est-ce qu'est-ce quel quelle quels quelles quand où
    comment combien pour pourquoi avec mais très aussi mon ma mes votre vos leur leurs bonjour merci ouvert
    ouverte fermé aujourd'hui demain c'est suis peux pouvez voudrais parlez français
"""
_PORTUGUESE = """
    os das dos uma umas é são está estão tem têm você vocês eu nós quando onde como quanto quanta quantos para
    pelo pela com mas muito também meu minha meus seu sua obrigado obrigada olá bom boa dia hoje amanhã aberto
    aberta fecha posso pode podem quero preciso falam português
"""
_GERMAN = """
    der die das den dem des ist sind ich sie wir ihr nicht und oder aber wann wo wie warum wieviel kann können
    möchte habe haben gibt es mit für auf zum zur bitte danke hallo guten tag heute morgen geöffnet geschlossen
    sprechen deutsch
"""
_ITALIAN = """
    il lo la le gli della delle dei degli è sono sei siamo io voi noi loro che quando dove come quanto quanti perché
    per con ma molto anche mio mia miei suo sua vostro grazie ciao buongiorno oggi domani aperto aperta chiuso
    posso può possono vorrei parlate italiano
"""

_DUTCH = """
    het een zijn ik jij jullie wij niet waar wanneer waarom hoeveel kunnen kunt mijn uw ook maar voor naar bij
    hebben heeft heb wordt worden graag bedankt goedemorgen goedendag vandaag morgen geopend gesloten spreekt spreken
    nederlands alstublieft
"""
_POLISH = """
    czy są nie się jak gdzie kiedy ile dla mówi mówicie mówisz polsku dzień dobry dziękuję proszę mamy mogę może
    można ktoś który która które moja mój moje jestem otwarte zamknięte godziny jutro dzisiaj żeby bardzo też albo
"""
_VIETNAMESE = """
    không tôi của được những với cho giờ tiếng nói xin chào nhiêu đâu khi nào muốn hôm chúng anh các thì cũng
"""
_TAGALOG = """
    ang ng mga sa ako ikaw ka ano saan kailan paano bakit magkano wala meron mayroon salamat kayo nila namin natin ito
    iyan bukas ngayon puwede pwede kailangan nagsasalita
"""


def _fold(word: str) -> str:
    """A word lower-cased, without accents, with a straight apostrophe: the gate's normalizer drops accents (and
    "đ" and "ł", which have none to drop, are written "d" and "l")."""
    decomposed = unicodedata.normalize("NFKD", word.lower().replace("’", "'").replace("đ", "d").replace("ł", "l"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    name: frozenset(_fold(w) for w in raw.split())
    for name, raw in (
        ("Spanish", _SPANISH),
        ("French", _FRENCH),
        ("Portuguese", _PORTUGUESE),
        ("German", _GERMAN),
        ("Italian", _ITALIAN),
        ("Dutch", _DUTCH),
        ("Polish", _POLISH),
        ("Vietnamese", _VIETNAMESE),
        ("Tagalog", _TAGALOG),
    )
}
#: English function words: a message with a third as many of them as of another language's is taken for English
#: (with a few foreign words in it).
_ENGLISH_RAW = """
    the is are was were do does did what when where which who how why can could would should will i you we they he
    she it my your our their this that these those there here and or but of to for with from at on in by be have
    has had not any some
"""
_ENGLISH = frozenset(_ENGLISH_RAW.split())
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
#: Words of one language needed, at least, and the share of letters of another script that marks one.
MIN_FUNCTION_WORDS = 3
#: … and at least this many times as many of them as of English function words, some of which other languages write
#: too (Portuguese "do", German "in"): "vocês falam português? preciso consertar o salto do meu sapato".
ENGLISH_SHARE = 3
SCRIPT_SHARE = 0.6
_SCRIPTS = {
    "CJK": "Chinese or Japanese",
    "HIRAGANA": "Japanese",
    "KATAKANA": "Japanese",
    "HANGUL": "Korean",
    "ARABIC": "Arabic",
    "HEBREW": "Hebrew",
    "CYRILLIC": "Cyrillic",
    "GREEK": "Greek",
    "DEVANAGARI": "Hindi",
    "THAI": "Thai",
    "BENGALI": "Bengali",
    "TAMIL": "Tamil",
}
#: `bot.language_reply` in the languages recognised by their words.
TRANSLATIONS = {
    "Spanish": "Lo siento, por ahora solo puedo responder preguntas escritas en inglés.",
    "French": "Désolé, pour l'instant je ne peux répondre qu'aux questions écrites en anglais.",
    "Portuguese": "Desculpe, por enquanto só consigo responder a perguntas escritas em inglês.",
    "German": "Entschuldigung, ich kann im Moment nur Fragen auf Englisch beantworten.",
    "Italian": "Mi dispiace, per ora posso rispondere solo a domande scritte in inglese.",
    "Dutch": "Sorry, voorlopig kan ik alleen vragen beantwoorden die in het Engels zijn geschreven.",
    "Polish": "Przepraszam, na razie mogę odpowiadać tylko na pytania napisane po angielsku.",
    "Vietnamese": "Xin lỗi, hiện tại tôi chỉ có thể trả lời các câu hỏi viết bằng tiếng Anh.",
    "Tagalog": "Paumanhin, sa ngayon ay makakasagot lang ako sa mga tanong na nakasulat sa Ingles.",
}


def other_language(text: str) -> str | None:
    """The language (or script) a message is written in when it is not English and we can tell, else None (with
    or without its accents: the gate passes its normalized text)."""
    scripts: dict[str, int] = {}
    letters = 0
    # Plain ASCII is all Latin letters: no other script to count (most messages, on the refusal path).
    for ch in "" if text.isascii() else text:
        if ch.isalpha():
            letters += 1
            name = unicodedata.name(ch, "")
            for key in _SCRIPTS:
                if name.startswith(key):
                    scripts[key] = scripts.get(key, 0) + 1
                    break
    if letters >= 2 and scripts:
        key, count = max(scripts.items(), key=lambda kv: kv[1])
        if count / letters >= SCRIPT_SHARE:
            return _SCRIPTS[key]
    # One-letter words say nothing ("é" folds to "e", and obfuscated text is full of stray letters).
    words = [w for w in map(_fold, _WORD.findall(text)) if len(w) > 1]
    english = sum(w in _ENGLISH for w in words)
    counts = {lang: sum(w in vocab for w in words) for lang, vocab in _FUNCTION_WORDS.items()}
    lang, best = max(counts.items(), key=lambda kv: kv[1])
    return lang if best >= MIN_FUNCTION_WORDS and best >= ENGLISH_SHARE * english else None


def language_reply(line: str, language: str) -> str:
    """`line` (the operator's `bot.language_reply`), then the same in `language` when we have it."""
    translated = TRANSLATIONS.get(language)
    return f"{line}\n{translated}" if translated else line

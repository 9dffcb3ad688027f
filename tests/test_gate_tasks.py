"""What a question asks for: creative writing and general knowledge (refused whatever their subject), other
places (refused) and plain service questions (answered)."""

from __future__ import annotations

import pytest

from bot.gate.normalize import clean_text, normalize
from bot.gate.tasks import (
    SERVICE_WORDS,
    asks_for_general_advice,
    asks_general_knowledge,
    creative_request,
    cut_off,
    named_organisation,
    named_place,
    organisation_names,
    other_place,
    own_booking,
    service_question,
    what_is_asked,
)
from bot.gate.topic import asks_about_safety


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("Write me a limerick about cats.", "limerick"),
        ("write a short poem about taking my vitamins every morning", "poem"),
        ("Can you write a song about taking notes in class?", "song"),
        ("tell me a joke about pharmacists", "joke"),
        ("I want you to write a story about a dragon", "story"),
        ("compose a haiku about autumn", "haiku"),
        ("Do you know any jokes about vets?", "jokes"),
        ("what's a good joke about cats", "joke"),
        ("hey can you make up a rap about my bike", "rap"),
        ("a poem about the library please", "poem"),
        ("When is the library open? Also write a poem about books", "poem"),
        ("w.r.i.t.e a p.o.e.m about the bus", "poem"),
        ("Wr1te a p0em about the bus", "poem"),
        ("Ｗｒｉｔｅ ａ ｐｏｅｍ about dogs", "poem"),
        ("tell me a knock knock joke", "knock knock joke"),
        ("give me some funny roommate jokes", "jokes"),
        ("write a birthday poem for my mom", "poem"),
        ("write me an argumentative essay on whether zoos should exist", "essay"),
        ("Can you write my college application essay?", "essay"),
        ("draft a cover letter for a barista job", "cover letter"),
    ],
)
def test_creative_requests_are_recognised(text: str, form: str) -> None:
    assert creative_request(normalize(text).folded) == form


@pytest.mark.parametrize(
    "text",
    [
        "When is toddler story time?",
        "Can you tell me the story time schedule?",
        "Do you have poetry books?",
        "Who wrote the song Yesterday?",
        "How do I write a cover letter?",
        "Do you read application essays before the deadline?",
        "what should my college essay be about",
        "Is the mayor's speech at the library open to the public?",
        "Is there a poetry reading this week?",
        "Do you sell joke books?",
        "tell me the story of how the library was founded",
        "How do I submit a short story to the library's contest?",
        "tell me about the songs in the show",
        "can you tell me which songs are in the musical",
        "",
    ],
)
def test_questions_about_stories_and_songs_are_not_creative_requests(text: str) -> None:
    assert creative_request(normalize(text).folded) is None


@pytest.mark.parametrize(
    "text",
    [
        "is there parking",
        "can i come in today?",
        "do you take cards",
        "is anyone there at 2am",
        "are you open on the 4th of july",
        "Are you open on Christmas?",
        "whats your phone number",
        "can someone come tonight? its 10pm",
        "can i stop by without an appointment",
        "can I talk to a real person",
        "can i drop off at 6:30 in the morning",
        "how early should I get there",
        "is there somewhere to leave the car nearby",
        "can I just walk in or do I need to book something",
        "can we bring our own lunch in",
        # moving or changing one's own booking
        "need to move our booking from saturday to sunday, is there a fee",
        "can we change the booking to 4 people and pay less?",
        "my appointment is at 9, can i switch it to 11? what happens if i miss it",
    ],
)
def test_plain_service_questions(text: str) -> None:
    assert service_question(normalize(text).clean, frozenset())


@pytest.mark.parametrize(
    "text",
    [
        "What time does the zoo close?",  # another place
        "Where can I park downtown?",  # downtown: not the scope's
        "What time is it?",  # not asked of the organisation
        "can i take pictures",  # pictures: a topic the scope must know
        "Is the bank open on Columbus Day?",
        "",
        "is there " + "parking " * 20,  # too long to be a plain service question
        "do u have any senior dogs right now",  # who comes, not when or where: about the animals
        "do you have 2 dogs",  # a bare number is not a time
        "Can I bring my dog to work?",  # the asker's own workplace
        "how do I change my name after getting married",  # a name is not a visit, a time or a price
    ],
)
def test_not_plain_service_questions(text: str) -> None:
    assert not service_question(normalize(text).clean, frozenset())


def test_the_scope_vocabulary_counts_as_its_own() -> None:
    text = normalize("can i take pictures in the east gallery").clean
    assert not service_question(text, frozenset())
    assert service_question(text, frozenset({"picture", "east", "gallery"}))


def test_a_question_naming_the_organisation_by_its_own_word_is_asked_of_it() -> None:
    text = normalize("Is the gym wheelchair accessible?").clean
    assert service_question(text, frozenset({"gym", "climbing"}))
    # At a scope that has no gym, the gym is somewhere else.
    assert not service_question(text, frozenset({"museum"}))
    # "the parking" names no organisation: a service word is not the scope's own.
    assert not service_question(normalize("Is the parking free?").clean, frozenset({"parking"}))
    # Its desk, office and queue are its own too.
    assert service_question(normalize("what time does the office open").clean, frozenset())
    assert service_question(normalize("how long is the wait usually").clean, frozenset())
    assert not service_question(normalize("what time is it").clean, frozenset())


def test_service_words_are_folded_like_the_questions() -> None:
    # `terms` folds plurals ("cards" -> "card"); the list is folded the same way, so both forms match.
    assert "card" in SERVICE_WORDS and "holiday" in SERVICE_WORDS and "christma" in SERVICE_WORDS


def test_the_topic_index_forgives_one_typo_in_longer_words() -> None:
    import numpy as np

    from bot.config import ScopeConfig
    from bot.gate.embed import DIM
    from bot.gate.topic import build_indexes

    scope = ScopeConfig(
        name="daycare", description="Answers questions about a dog daycare: temperament tests.", refusal="No."
    )
    index = build_indexes(
        scopes=[scope],
        chunks={},
        generic=[],
        generic_vecs=np.zeros((0, DIM), np.float32),
        encode=lambda texts: np.zeros((len(texts), DIM), np.float32),
    )["daycare"]
    assert index.uses("temperament") and index.uses("temperment") and index.uses("temperamant")
    assert index.uses("daycar")  # one letter dropped
    assert not index.uses("tempo") and not index.uses("dog-walking")
    assert not index.uses("tast")  # four letters: exact only ("test" folds to itself, "tast" is not it)


@pytest.mark.parametrize("text", ["hrs sunday?", "open today?", "closed on labor day?", "hours?"])
def test_terse_hours_questions_are_service_questions(text: str) -> None:
    assert service_question(normalize(text).clean, frozenset())


@pytest.mark.parametrize("text", ["quiet hours?", "what time is it?", "happy hour?"])
def test_terse_questions_about_something_else_are_not(text: str) -> None:
    assert not service_question(normalize(text).clean, frozenset())


LIBRARY_WORDS = frozenset({"library", "branch", "harbor", "recreation", "center", "book", "sale", "hour"})


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("When does the aquarium open on Saturdays?", "aquarium"),
        ("What time does the post office close on Saturday?", "post office"),
        ("Is Costco open on Easter?", "costco"),
        ("What are the hours of the DMV office downtown?", "dmv office downtown"),
        ("What time does the Fairview City Library close?", "fairview city library"),
        ("aspen dental hours near me?", "aspen dental"),
        ("Does Tractor Supply open on Sundays?", "tractor supply"),
        ("When does the Fairview library building open?", "fairview library building"),
    ],
)
def test_other_places_are_named(text: str, place: str) -> None:
    assert other_place(normalize(text).clean, LIBRARY_WORDS.__contains__, LIBRARY_WORDS) == place


@pytest.mark.parametrize(
    "text",
    [
        "When does the Harbor branch open?",
        "What time does the main branch close on Sunday?",
        "are you guys open on fridays",
        "When do your doors open?",
        "is the office open today",  # no word of its own: the classifier decides
        "Is the rec center open?",  # "rec" abbreviates the scope's "recreation"
        "library hours?",
        "Can I rent a bike for a few hours?",  # not a question about a place's hours
        "when does the book sale start",
        "what time does the library building close",  # "building" is any organisation's premises
        "when do mothers day preorders open",  # things that open that are not places
        "when does registration close for the fall session",
    ],
)
def test_the_scopes_own_places_are_not(text: str) -> None:
    assert other_place(normalize(text).clean, LIBRARY_WORDS.__contains__, LIBRARY_WORDS) is None


ZOO_WORDS = frozenset({"zoo", "harborview", "city", "ticket", "member", "giraffe", "cafe", "farm", "children"})


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("how much are tickets to the bronx zoo", "bronx zoo"),
        ("are members free at the San Diego Zoo?", "san diego zoo"),
        ("how much are slips at Bayview Yacht Club", "bayview yacht club"),
        ("does the Brookfield County Health Department give free flu shots", "brookfield county health department"),
        ("Do you know when the Lincoln Middle School pool has open swim?", "lincoln middle school"),
        ("what's the move-in process for Ohio State dorms", "ohio state dorms"),
        ("Who directed Jurassic Park?", "jurassic park"),  # a verb ends the name
        ("Is Roadwise Driving School in Fairfield any good?", "roadwise driving school"),  # ... not before the kind
        ("does the high school have a pool", "high school"),  # "the": one in particular
    ],
)
def test_other_organisations_are_named(text: str, place: str) -> None:
    assert named_place(normalize(text).clean, ZOO_WORDS.__contains__, ZOO_WORDS) == place


@pytest.mark.parametrize(
    "text",
    [
        "how much are tickets to the Harborview City Zoo",  # the scope's own name
        "is the zoo cafe open",
        "can I get a discount at the children's farm",
        "which bus goes to the Bronx Zoo",  # travelling there, as a transit scope is asked
        "is there parking near Lincoln Middle School",
        "is there a coding club for teenagers?",  # a kind of place, not a named one
        "can I use my Fairview library card here",  # the asker's own
        "do you have a gift shop",
        "how much is a day ticket",
        "when is the next cheap vaccine clinic",  # an occasion: a place has no "next"
        "I did two years of French in high school ages ago, what level am I",  # a kind of school, a stage of life
        "I took a pottery class at community college years ago, can I join the advanced one",
    ],
)
def test_own_places_and_places_travelled_to_are_not(text: str) -> None:
    assert named_place(normalize(text).clean, ZOO_WORDS.__contains__, ZOO_WORDS) is None


@pytest.mark.parametrize(
    "text",
    [
        "who invented the first vaccine",
        "Who discovered blood types?",
        "what was the first zoo in the world",
        "what is the biggest marina in the world",
        "what were victory gardens in ww2",
        "what's the history of college dormitories in america",
        "when did farmers markets become popular in the US",
        "when was the first computer password used",
        "what was the first car ever made",
        "Who was the first woman appointed to the Supreme Court?",
        "when were driver's licences first introduced",
        "what's the hardest boulder problem ever sent",
        "When was the first food bank in the US founded?",
    ],
)
def test_general_knowledge_questions(text: str) -> None:
    assert asks_general_knowledge(normalize(text).clean.lower())


@pytest.mark.parametrize(
    "text",
    [
        "when was the library built?",
        "what's the history of the zoo?",
        "who founded Harborview City Zoo",
        "when was the first day of camp",
        "what is the best time to visit",
        "is this the biggest zoo in the state",
        "who do I talk to about a lost ticket",
        "my great-grandfather worked in one of the mills in the 1890s. can i look at old records somewhere?",
        "are you the oldest library in the country?",
        "who was the first person to sign up for your spring league",
        "when was the first day of the fall session",
    ],
)
def test_questions_about_the_scopes_own_history_are_not_general_knowledge(text: str) -> None:
    assert not asks_general_knowledge(normalize(text).clean.lower())


@pytest.mark.parametrize(
    ("text", "career"),
    [
        ("how do I get a job as a museum curator", True),
        ("how many years of school does it take to become a pharmacist", True),
        ("how do i become a licensed home daycare provider", True),
        ("how do I become a volunteer", False),
        ("how do I get a job as a lifeguard here", False),
        ("are you hiring? i'd love a job as a barista", False),
    ],
)
def test_career_questions_are_about_the_field_not_the_organisation(text: str, career: bool) -> None:
    norm = normalize(text)
    asked = what_is_asked(norm.clean, norm.folded, uses=ZOO_WORDS.__contains__, vocabulary=ZOO_WORDS)
    assert (asked is not None and asked.rule == "topic:career") is career


def test_a_scope_may_answer_general_knowledge() -> None:
    norm = normalize("Who invented the telescope?")
    refused = what_is_asked(norm.clean, norm.folded, uses=ZOO_WORDS.__contains__, vocabulary=ZOO_WORDS)
    assert refused is not None and refused.rule == "topic:general-knowledge" and refused.verdict == "refuse"
    answered = what_is_asked(
        norm.clean, norm.folded, uses=ZOO_WORDS.__contains__, vocabulary=ZOO_WORDS, general_knowledge=True
    )
    assert answered is None  # the topic classifier decides


def test_a_place_named_after_the_organisation_is_its_own() -> None:
    names = organisation_names("Answers questions about Northgate College: admissions, deadlines and tuition.")
    assert names == (("northgate", "college"),)
    question = normalize("what time does the Northgate College bookstore close").clean
    assert other_place(question, LIBRARY_WORDS.__contains__, LIBRARY_WORDS) == "northgate college bookstore"
    assert other_place(question, LIBRARY_WORDS.__contains__, LIBRARY_WORDS, names) is None
    # Another college, or the name with nothing after it, is judged as before.
    other = normalize("what time does the Northgate High School library close").clean
    assert other_place(other, LIBRARY_WORDS.__contains__, LIBRARY_WORDS, names) is not None
    zoo = organisation_names("Answers questions about Harborview City Zoo: tickets.", ["the Harborview"])
    assert zoo == (("harborview", "city", "zoo"), ("harborview",))
    cafe = normalize("how much are drinks at the Harborview City Zoo Safari Cafe").clean
    assert named_place(cafe, ZOO_WORDS.__contains__, ZOO_WORDS) == "harborview city zoo safari cafe"
    assert named_place(cafe, ZOO_WORDS.__contains__, ZOO_WORDS, zoo) is None


SKI_WORDS = frozenset({"granite", "peak", "ski", "resort", "lift", "ticket", "rental", "lesson"})
SKI_NAMES = organisation_names("Answers questions about Granite Peak Ski Resort: lift tickets, rentals.")


def _named(text: str) -> str | None:
    return named_organisation(clean_text(text, keep_case=True), SKI_WORDS.__contains__, SKI_WORDS, SKI_NAMES)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("how much is a lift ticket at Vail", "Vail"),
        ("How much does a game cost at Lucky Strike downtown?", "Lucky Strike"),
        ("how much does WeWork charge for a hot desk downtown", "WeWork"),
        ("does Interflora deliver to Ireland?", "Interflora"),
        ("is H&R Block better than TurboTax", "H&R Block"),
        ("how do I pay my Con Edison bill", "Con Edison"),
        ("Backblaze vs Carbonite, which one is cheaper?", "Carbonite"),  # the first opens the message
        ("What's Lifetouch's retake policy for school pictures?", "Lifetouch"),
        ("is Ski Butlers' cancellation policy flexible", "Ski Butlers"),
        ("what is the outage number for Duke Energy", "Duke Energy"),
        ("ｈｏｗ much is a lift ticket at Ｖａｉｌ", "Vail"),  # full-width: cleaned, capitals kept
        ("Does Rite Aid give flu shots to kids?", "Rite Aid"),  # any verb after "does / can / will"
        ("can Foyles order in a book for me", "Foyles"),
        ("Will Vail refund a lift ticket if it rains", "Vail"),
    ],
)
def test_other_organisations_named_with_capitals(text: str, name: str) -> None:
    assert _named(text) == name


@pytest.mark.parametrize(
    "text",
    [
        "how much is a lift ticket at Granite Peak",  # the scope's own name
        "is there a lift ticket discount at GPSR",  # ... its initials
        "Vail vs Granite Peak, which is cheaper?",  # a comparison with the scope's own
        "Vail lift tickets are cheaper, do you price match",  # the first word: capitals say nothing there
        "can I book with Dr Okafor again",  # a person, after a title
        "do you do lessons at Christmas",  # a holiday
        "we land at Logan around 11pm, is the rental desk open",  # where the asker is
        "my dad lost his job at Boeing, is there a discount on lessons",
        "I'm a teacher at Hebden Marsh Primary, do you do school trips",
        "can I pay the rest from my Monzo account",  # the asker's bank, paying the scope
        "HOW MUCH IS A LIFT TICKET AT VAIL",  # capitals throughout say nothing
        "how much is a lift ticket at vail",  # no capitals: the topic classifier decides
        "who at Granite Peak Ski Resort handles lost skis",
        "What's Granite Peak's cancellation policy?",
        "Lifetouch's retake policy?",  # the first word
        "can Owen's lesson move to Sunday",
        "Does Hannah still take the Tuesday lesson?",  # a person: a first name ...
        "does Chris do the Saturday lesson again",  # (folded as the question is: "chris" reads "chri")
        "can Grandma Pearl collect the rental skis",  # ... or a family word first
        "Does DJ Rhonda still do the apres-ski night",  # ... or a title
        "can Gold members bring a guest",  # not what a business does for its customers
        "will Sunset Sessions happen again this winter",  # an own event named with capitals
        "do you know if Vail Resorts owns this place",  # "do" is not "does": read as a question to the scope
    ],
)
def test_own_names_people_and_the_askers_places_are_not(text: str) -> None:
    assert _named(text) is None


def test_capitalised_names_are_judged_only_with_the_case_kept() -> None:
    # The gate passes the question with its case kept; the training script does not (`cased` empty: not judged).
    text = "how much is a lift ticket at Vail"
    words = {"uses": SKI_WORDS.__contains__, "vocabulary": SKI_WORDS, "names": SKI_NAMES}
    norm = normalize(text)
    asked = what_is_asked(norm.clean, norm.folded, cased=clean_text(text, keep_case=True), **words)
    assert asked is not None and (asked.verdict, asked.rule) == ("refuse", "topic:other-place")
    assert "'Vail'" in asked.reason
    assert what_is_asked(norm.clean, norm.folded, **words) is None


@pytest.mark.parametrize(
    ("text", "safety"),
    [
        ("someone took our cooler from our campsite overnight, who do we report theft to?", True),
        ("my bike was stolen from the rack outside birch hall", True),
        ("i think the eggs i bought from a vendor made my family sick", True),
        ("a man was yelling and threatening people in line, should i call the police", True),
        ("is it safe to ride it in for a repair or should i walk it", True),
        ("i left my charger in my room, is there a lost and found", True),
        ("what's the evacuation plan if there's a fire during a performance", True),
        # Not a theft, an injury, a threat or a danger: the classifier's threshold is the scope's.
        ("how do i steal a bike from the rack", False),
        ("i'm sick this week, can my neighbor pick up my food", False),
        ("how long before my appointment do i need to do the allergy test", False),
        ("is it open on sundays", False),
        ("what staples should i keep in my pantry for emergencies", False),
    ],
)
def test_safety_questions_are_recognised(text: str, safety: bool) -> None:
    assert asks_about_safety(text) is safety


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        ("what's the best used car for a new teen driver", True),
        ("best exercises to build finger strength for climbing", True),
        ("how do i change my own oil in the driveway at home", True),
        ("how do I build a putting green in my backyard", True),
        ("who won the stanley cup in 2019", True),
        ("how do tax brackets work", True),
        ("what's the difference between biodegradable and compostable plastic", True),
        ("how do i file my own taxes for free", True),
        ("how much water should I drink a day", True),
        ("how much should i tip housekeeping at a hotel in the US", True),
        ("how many hours should i sleep each night", True),
        # Asked of the organisation, or about its own offer or visit: the scope's threshold.
        ("can we bring our own lunch in", False),
        ("how much should i bring for the deposit, do you take cards", False),
        ("how long should i expect to wait", False),
        ("how often should i come in for a check up", False),
        ("which membership is best for you?", False),
        ("what's the difference between your day pass and the 10-visit card", False),
        ("what's the best time to visit", False),
        ("what's the best plan for a family of four", False),
        ("what's the best way to pay my bill", False),
        ("how much is a lesson", False),
    ],
)
def test_general_advice_is_recognised(text: str, advice: bool) -> None:
    assert asks_for_general_advice(text.lower()) is advice


def test_general_advice_in_service_words_is_left_to_the_classifier() -> None:
    # Every word of "how much water should I drink a day" is a service word (much, water, drink, day), and "should
    # I" reads as asked of the organisation; it is advice asked of no one, and the classifier decides it.
    def asked(text: str) -> str | None:
        n = normalize(text)
        found = what_is_asked(n.clean, n.folded, uses=lambda w: False, vocabulary=frozenset())
        return None if found is None else found.rule

    assert service_question(normalize("how much water should I drink a day").clean, frozenset())
    assert asked("how much water should I drink a day") is None
    assert asked("how much is parking, do you take cards") == "topic:service"


@pytest.mark.parametrize(
    ("text", "last"),
    [
        ("can i bring my", "my"),
        ("what time does the", "the"),
        ("ahmed is a", "a"),
        ("is there parking and", "and"),
        ("Do you have any of the ", "the"),
    ],
)
def test_a_message_that_stops_mid_sentence_is_cut_off(text: str, last: str) -> None:
    assert cut_off(normalize(text).clean) == last


@pytest.mark.parametrize(
    "text",
    [
        "can i bring my dog",
        "who do i talk to",  # words that can end a question
        "what is it for",
        "can i bring her",
        "which floor is it on",
        "can i bring my?",  # a question mark: finished, however it reads
        "the",  # one word: small talk or the classifier decide
    ],
)
def test_a_finished_message_is_not(text: str) -> None:
    assert cut_off(normalize(text).clean) is None


@pytest.mark.parametrize(
    "text",
    [
        "my appointment is at 4 but the kids have a cold, can i move it to next week?",
        "we have a reservation for 8 tonight and the babysitter cancelled, could we push it back to 9?",
        "running 10 min late for our 6pm session, will we lose the slot?",
        "I'd like to cancel my membership, we're moving abroad in January",
        "can I get a copy of the receipt for my last order? it's for my expenses claim",
        "please change the name on my booking to Jordan Smith, I spelled it wrong",
        "i booked two tickets for saturday but my friend can't come, can I get one refunded?",
        "my son is signed up for the summer course but has a broken arm, can we transfer it to his sister?",
    ],
)
def test_questions_about_the_askers_own_booking(text: str) -> None:
    assert own_booking(normalize(text).clean, frozenset())


@pytest.mark.parametrize(
    ("text", "vocabulary"),
    [
        ("how do I move my GP appointment to friday", frozenset()),  # another business's appointment
        ("my landlord won't give back my deposit, can he keep it?", frozenset()),  # the rest of one's life
        ("the airline cancelled and wants to rebook my ticket, can I refuse?", frozenset()),
        ("we bought a sofa last week, can we return it?", frozenset()),  # a thing of its own, not a booking
        ("my appointment is on friday", frozenset()),  # nothing asked to be done with it
        ("how do I cancel a streaming subscription", frozenset()),  # nobody's own booking here
    ],
)
def test_not_questions_about_the_askers_own_booking(text: str, vocabulary: frozenset[str]) -> None:
    assert not own_booking(normalize(text).clean, vocabulary)


def test_a_booking_named_by_the_scopes_own_word_is_the_askers_own() -> None:
    # "my dentist appointment" is another business's at a bakery, and the asker's own at the dentist's.
    text = normalize("can I move my dentist appointment to monday").clean
    assert not own_booking(text, frozenset({"bread", "cake"}))
    assert own_booking(text, frozenset({"dentist", "clean", "filling"}))

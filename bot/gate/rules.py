"""Hand-written harm and jailbreak rules on the normalizer's folded text: precise, explainable, instant.

They back up the learned screen (bot/gate/harm.py) on the phrasings that matter most and cannot be let
through by a score: instructions to ignore the bot's rules, DAN-style personas, and requests for weapons,
drugs, violence, self-harm, sexual content, hate, harassment, doxxing, fraud and intrusion. Each rule
names its category for the audit trail.
"""

# ruff: noqa: E501 -- the patterns read best unbroken, one rule per line.
from __future__ import annotations

import re
from dataclasses import dataclass

_HOWTO = r"(how (do|can|could|would|should) (i|you|we|one|someone)|how to|ways? to|steps? (to|for)|instructions? (for|on|to)|guide (to|for|on)|tutorial|teach me|show me|explain how|tell me how|help me|recipe for|best way to|easiest way to)"
_MAKE = r"(make|making|build|building|assemble|construct|create|manufacture|cook|cooking|brew|synthesi[sz]e|synthesi[sz]ing|produce|prepare|mix|print|rig)"
#: Whoever would notice: staff, the owner, family.
_WATCHER = r"(anyone|anybody|someone|nobody|no one|them|him|her|the (\w+ )?(staff|front desk|desk|owner|manager|cashier|keepers?|nurses?|teachers?|driver|vet|police|cops|security|lifeguards?|librarians?|clerk|pharmacist|dentist|doctor|office|market manager|dockmaster|coordinator|instructor|crew|parents?)|my (wife|husband|parents|mom|dad|boss|roommate|girlfriend|boyfriend|ex)|you( guys)?|(the|your) (scanner|system|app))"
#: Who would come to harm: other people, not the asker.
_VICTIM = r"(him|her|them|someone|somebody|people|everyone|everybody|(the|my|his|her|a whole) (\w+ )?(kids|children|guests|class|floor|family|neighbou?rs?|wife|husband|roommate|boss|coworker|teacher|customers|patrons|riders|passengers|members|staff|keeper|dogs?|cats?))"
#: Someone else's things: "my neighbour's boat", "another skier's skis".
_OTHERS = r"(another|other|someones|somebodys|my (wife|husband|neighbou?r|ex|roommate|boss|coworker|brother|sister|dad|mom)s?|his|her|their|the (guy|girl|woman|man|instructor|driver|teacher|coach|neighbou?r)s?)"
#: Pets and working animals, not pests ("how do I kill the squirrels in my yard" is pest control).
_ANIMAL = r"(dogs?|cats?|pupp(y|ies)|kittens?|pets?|horses?|ponies|pony|hamsters?|parrots?)"
_PERSON = r"(someone|somebody|a person|people|him|her|them|my (wife|husband|boss|neighbou?r|ex|girlfriend|boyfriend|mom|dad|mother|father|brother|sister|roommate|teacher|coworker|classmate|friend|son|daughter|kid|child)|a (child|kid|baby|woman|man|girl|boy)|children|kids)"

#: People by role or relation ("the coach", "my ex", "the crossing guard", "the old man at the pool").
_ROLE = r"(ex|wife|husband|boss|neighbou?r|girlfriend|boyfriend|roommate|teacher|coworker|classmate|coach|instructor|trainer|lifeguard|librarian|driver|manager|owner|clerk|cashier|receptionist|nurse|doctor|vet|landlord|tenant|guy|girl|woman|man|lady|dude|kid|boy|member|player|referee|ref|umpire|parent|mom|dad|brother|sister|son|daughter|guard|leader|coordinator|tutor|bouncer|bartender|photographer|groomer|pitcher|goalie|captain|carrier|president|director|officer|attendant|ranger|custodian|janitor|principal|counsel+or|volunteer|worker|employee|pharmacist|dentist|therapist|stylist|barber|waiter|waitress|student|resident|patient|visitor|customer|rider|passenger|staff|supervisor|chaperone|babysitter|nanny|mechanic|plumber)s?"
#: "her" as the one attacked, not as an owner ("beat her up", not "beat her time").
_HER = r"her(?=\s+(up|down|off|out|in|with|now|again|badly|bad|hard|good|dead|so|until|and|or|when|if|after|before|at|for|to|from|tomorrow|tonight|today|while|because|outside|real|too|already|myself|senseless|unconscious)\b|\s*$)"
#: The one attacked, pointed at: "him", "her", "them", "that guy".
_TARGET_PRONOUN = rf"(him|{_HER}|them|that (guy|girl|woman|man|kid|lady|dude|bitch|bastard|jerk|prick))"
#: Someone the asker could attack: as above, anyone, or a person named by role or relation.
_TARGET = rf"({_TARGET_PRONOUN}|someone|somebody|people|children|kids|a (child|kid|baby|woman|man|girl|boy|person)|(my|his|her|their|the|that|this|our|your)( \w+){{0,2}} {_ROLE})"
#: The asker means to do it: "how do i", "i want to", "im gonna", "help me", "should i".
_INTENT = r"(how (do|can|could|would|should|to) (i|we|you|someone)|how to|(i|we) (want|wanna|need|am going|are going|m going|re going|plan|intend|would like|d like) to|(i|we)( will|ll| am gonna| m gonna| gonna| re gonna| are gonna)|im gonna|gonna|going to|help me|lets|let s|ways? to|best way to|easiest way to|teach me (how )?to|should i|can i|could i|is it ok to|thinking (of|about)|need (help|tips|someone) (to )?|tips (to|on|for))"
#: Harmless senses the milder verbs have before these words: "beat him at chess", "hit him up", "kick her out".
_NOT_ATTACK = r"(?!\s+(a|an|the|some|at|in|into|on|to|by|for|over|off|out|up|message|text|email|line|note|dm|call)\b)"
#: … and any verb before a photo shoot: "shoot her senior portraits".
_NOT_PHOTO = r"(?!(\s+\w+){0,2}\s+(photos?|pictures?|pics?|portraits?|headshots?|videos?|sessions?|shoot|wedding|engagement|senior)\b)"
#: Verbs with no harmless sense when a person is their object.
_STRONG = r"(kill|murder|stab|strangle|choke|smother|suffocate|poison|drug|roofie|mug|rob|assault|punch|slap|shoot|maim|cripple)"
#: Verbs with harmless senses too (games and sports, contact, haircuts).
_MILD = (
    r"(kick|beat|hurt|harm|jump|hit|break|pop|cut|burn|ambush|corner|rough|smack|bash|knock|run over|attack|blindside)"
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern and the category it reports."""

    category: str
    name: str
    pattern: re.Pattern[str]


#: The weapons the "carry-past" rule names.
_CARRIED = r"(knife|knives|gun|guns|pistol|handgun|rifle|blade|machete|firearm|firearms|shotgun)"


#: Not right after a word saying it was received: "i was given / got / was sent / they gave me …" (a mistake to report).
_RECEIVED = "".join(
    f"(?<!{w} )"
    for w in (
        "given",
        "got",
        "gotten",
        "received",
        "sent",
        "handed",
        "mailed",
        "emailed",
        "gave me",
        "sent me",
        "handed me",
        "mailed me",
        "emailed me",
    )
)


def _r(category: str, name: str, pattern: str) -> Rule:
    return Rule(category, name, re.compile(pattern))


RULES: tuple[Rule, ...] = (
    # Prompt injection and role-play jailbreaks.
    _r(
        "jailbreak",
        "ignore-instructions",
        r"\b(ignore|disregard|forget|override|bypass) (the |of |everything )?(all|any|every|previous|prior|above|earlier|preceding|former|original|initial|system|safety|your)( (the|of|your|my|previous|prior|above|earlier|system|original|initial|safety|topic|scope))* (instructions?|prompts?|rules|directions|guidelines|restrictions|constraints|programming|directives|context|messages?|you were (told|given))\b",
    ),
    _r(
        "jailbreak",
        "new-instructions",
        r"\b(new|updated|real) (instructions|rules|task|system prompt)\b.{0,40}\b(ignore|instead|now|override|cancel)",
    ),
    _r(
        "jailbreak",
        "persona",
        r"\b(you are|you re|act as|pretend (to be|you are)|roleplay as|play the role of|become|simulate|from now on you)\b.{0,60}\b(dan|stan|dude|aim|antigpt|evil|unfiltered|uncensored|unrestricted|jailbroken|amoral|no (rules|restrictions|limits|filters|guidelines|ethics))\b",
    ),
    _r(
        "jailbreak",
        "do-anything-now",
        r"\b(do anything now|developer mode|dan mode|jailbreak(ed)? mode|god mode|unrestricted mode|no restrictions mode)\b",
    ),
    _r(
        "jailbreak",
        "no-limits",
        r"\b(answer|respond|reply|act|talk|you are|you re|ai|mode|chatbot|assistant|model|bot)\b.{0,30}\b(without|no|free of|broken free of|not bound by|freed from) (any )?(restrictions|filters|censorship|limitations|guidelines|content polic(y|ies)|ethical|moral|safety)\b",
    ),
    _r(
        "jailbreak",
        "prompt-leak",
        r"\b(reveal|show|print|repeat|output|tell me|what (is|are|were)|give me|display|leak|dump)\b.{0,30}\b(system prompt|initial prompt|hidden prompt|original instructions|your instructions|your prompt|your configuration|text above|everything above|words above)\b",
    ),
    _r(
        "jailbreak",
        "disregard-rules",
        r"\b(ignore|disregard|forget|drop)\b.{0,25}\b(rules|instructions|guidelines|restrictions)\b.{0,40}\b(answer (freely|anything|everything)|from now on|no longer|instead)\b",
    ),
    _r("jailbreak", "pwned", r"\b(i have been pwned|jailbroken|restrictions disabled)\b"),
    # Weapons.
    _r(
        "weapons",
        "explosives",
        r"\b(pipe ?bomb|car bomb|nail bomb|dirty bomb|molotov|napalm|thermite|ied|improvised explosive|tatp|semtex|c4 explosive|detonator|grenade|nerve agent|sarin|vx gas|ricin|anthrax|mustard gas|chlorine gas|chemical weapon|bioweapon|biological weapon)\b",
    ),
    _r(
        "weapons",
        "make-weapon",
        rf"{_HOWTO}.{{0,40}}\b{_MAKE}\b.{{0,30}}\b(bomb|explosives?|explosive devices?|gun|firearm|rifle|silencer|suppressor|weapon|poison gas|toxic gas)s?\b",
    ),
    _r(
        "weapons",
        "untraceable-gun",
        r"\b(untraceable|ghost|3d printed|unregistered) (gun|firearm|pistol|rifle)s?\b|\b(full ?auto|fully automatic) conversion\b",
    ),
    # Drugs.
    _r(
        "drugs",
        "make-drugs",
        rf"\b{_MAKE}\b.{{0,30}}\b(meth|methamphetamine|crystal meth|cocaine|crack|heroin|fentanyl|lsd|mdma|ecstasy|ghb|dmt|ketamine|opium|pcp)\b",
    ),
    _r(
        "drugs",
        "buy-drugs",
        r"\b(buy|get|sell|score|smuggle|deal)\b.{0,30}\b(meth|cocaine|heroin|fentanyl|lsd|mdma|ecstasy|molly|ghb)\b",
    ),
    _r(
        "weapons",
        "making-explosives",
        r"\b(make|making|build|building|assemble|assembling)( an?| homemade| your own)? (explosives?|bombs?|explosive devices?)\b",
    ),
    _r(
        "drugs",
        "divert-drugs",
        r"\b(sell|resell|deal|steal)\b.{0,30}\b(ketamine|oxycodone|xanax|adderall|opioids|painkillers|prescription pills)\b|\b(ketamine|oxycodone|xanax|adderall|opioids|painkillers)\b.{0,40}\b(to sell|sell (it|them)|get high|without a prescription)\b",
    ),
    _r(
        "drugs",
        "traffic-drugs",
        r"\b(sell|selling|deal|dealing|give|giving)\b.{0,10}\bdrugs to (kids|children|minors|teens|teenagers|students)\b|\b(buy|get|sell|smuggle|hide|sneak|deliver)\b.{0,30}\bdrugs\b.{0,40}\b(dark ?web|illegally|police|prison|airport|border|without a prescription|school|kids|students)\b",
    ),
    # Violence.
    _r(
        "violence",
        "harm-person",
        rf"\bpoison (a|the|his|her|their|my)? ?(cake|drink|food|coffee|meal|tea|water)\b.{{0,30}}\b(dies?|die|kill|sick|hurt)\b|\b(kill|murder|poison|stab|strangle|kidnap|abduct|torture|beat up|maim|drown|assassinate|euthanize)\b.{{0,12}}\b{_PERSON}",
    ),
    _r(
        "violence",
        "attack-person",
        rf"\b{_INTENT}\b( \w+){{0,2}} ({_STRONG}\b( \w+)?? {_TARGET}\b{_NOT_PHOTO}|{_MILD}\b( \w+)?? {_TARGET}\b{_NOT_ATTACK}{_NOT_PHOTO})"
        rf"|\b(kill|murder|stab|strangle|mug|rob|roofie|assault|maim|cripple) (the|my|that|this|our|your)( \w+){{0,2}} {_ROLE}\b"
        rf"|\b(rob|mug|punch|slap|roofie) {_TARGET_PRONOUN}|\b(beat|rough|mess|smack|bash) {_TARGET_PRONOUN} up\b"
        rf"|\b(shoot|stab|kill|choke|strangle|beat|kick) {_TARGET_PRONOUN} (dead|to death|unconscious|senseless)\b"
        r"|\b(break|snap|smash|bust) (his|her|their|the \w+s) (legs?|arms?|neck|jaw|nose|face|fingers?|knees?|kneecaps?|skull|ribs?)\b"
        r"|\b(knock|kick|bash|punch|smash) (his|her|their|the \w+s) (teeth|head|face|lights|skull) (in|out)\b"
        rf"|\bput {_TARGET_PRONOUN} in (the |a )?(hospital|coma|ground|grave|er|icu)\b|\bmake {_TARGET_PRONOUN} bleed\b",
    ),
    _r(
        "violence",
        "harm-animal",
        rf"\b(how (do|can|could|would|should) (i|we|you|someone|somebody|one)|ways? to|best way to|want to|going to|gonna|trying to|help me)\b.{{0,12}}\b(poison|kill|hurt|drown|torture|maim|stab)\s+(a|an|the|my|his|her|their|our|your|that|this|those|these|someones|somebodys|\w+s)\s+(\w+\s+)?{_ANIMAL}\b(?!\s*(fleas|ticks|worms|lice|mites|parasites|pain|infection|bacteria|germs|smell|odou?r))(?!.{{0,30}}\b(humanely|peacefully|euthan))",
    ),
    _r(
        "violence",
        "get-away",
        r"\b(get away with (murder|killing)|hide (a|the) (dead )?body|dispose of (a|the) body|look like an accident|without leaving marks)\b",
    ),
    _r(
        "violence",
        "attack",
        r"\b(plan|carry out|commit)\b.{0,20}\b(attack|shooting|massacre|bombing|terror)|\b(school|mass) shooting\b|\bderail (a|the) train\b|\bplant (a|the) bomb\b",
    ),
    # Self-harm.
    _r(
        "self_harm",
        "suicide",
        r"\b(kill myself|end my life|take my (own )?life|commit suicide|suicide method|hang myself|slit my wrists?|overdose on purpose|want to die)\b",
    ),
    _r(
        "self_harm",
        "self-injury",
        r"\b(how (do|can|should) i|ways to|want to|going to|best way to|tips (for|to))\b.{0,10}\b(cut|harm|hurt|starve|burn) myself\b|\bmake myself (throw up|vomit)\b|\bhide my (self ?harm|cuts|scars)\b",
    ),
    _r("self_harm", "encourage", r"\b(go kill yourself|kill yourself|kys|you should die|should end it all)\b"),
    # Sexual content.
    _r(
        "sexual",
        "explicit",
        r"\b(sex scene|explicit (sex|sexual|scene|story)|erotic|porn|pornographic|nudes|naked (pictures|photos|pics)|talk dirty|sexting|sexual (story|fantasy|roleplay|content|acts?)|hentai|sexy story)\b",
    ),
    _r(
        "sexual",
        "minors",
        r"\bsex with (a |an )?(minor|child|kid|teen|underage|\d{1,2} ?(year|yr)s? ?old)|\b(child|minor|underage|teen|kid|\d{1,2} ?(year|yr)s? ?old)\b.{0,30}\b(sexual|nude|naked|erotic|sexy)\b|\b(sexual|nude|naked|erotic|sexy)\b.{0,30}\b(child|minor|underage|teen|kid)\b",
    ),
    # Hate.
    _r(
        "hate",
        "supremacy",
        r"\b(white supremacy|racial superiority|master race|ethnic cleansing|holocaust (never happened|was a hoax))\b",
    ),
    _r(
        "hate",
        "dehumanizing",
        r"\b(immigrants?|migrants?|refugees?|jews?|muslims?|christians?|blacks?|whites?|asians?|mexicans?|arabs?|africans?|"
        r"gays?|lesbians?|trans (people|women|men)|women|disabled (people|persons)|gypsies|roma)\b (are|r) (just |nothing but |all )?"
        r"(animals|vermin|rats|cockroaches|parasites|subhuman|savages|apes|monkeys|a disease|a plague|an infestation)\b",
    ),
    _r(
        "hate",
        "hateful-writing",
        r"\b(write|tell|make|create|give me|compose)\b.{0,20}\b(racist|sexist|homophobic|transphobic|antisemitic|islamophobic|hateful|bigoted)\b",
    ),
    # Harassment.
    _r(
        "harassment",
        "threats",
        r"\b(death threat|threatening (message|letter|note|email|text)|threaten(ing)? to (hurt|kill))\b|\bwrite\b.{0,20}\bthreat",
    ),
    _r(
        "harassment",
        "bully",
        r"\b(help me|how (do|can|could) i|ways to|best way to|want to|tips to|ideas to) (\w+ )?(cyberbully|bully|harass|humiliate|stalk|blackmail|dox|doxx|intimidate)\b|\b(cyberbully|dox|doxx)(ing)?\b",
    ),
    # Doxxing.
    _r(
        "doxxing",
        "private-info",
        r"\b(find|get|look up|lookup|give me|tell me|what is|whats)\b.{0,30}\b(home address|private address|where (he|she|they) lives?|personal (phone|cell) number|(cell ?phone|mobile|private|personal) (phone )?number of|social security number|ssn|(someones|his|her|their|coworkers?|neighbou?rs?|boss|exs?) medical records)\b",
    ),
    # Fraud.
    _r(
        "fraud",
        "fraud",
        r"\b((write|create|make|send|draft|craft|design|build|set up|run)\b.{0,12}\bphishing|launder(ing)? (the |my |our |some |dirty |drug )?(money|cash|proceeds)|(how|ways?|help|teach|steps|guide|best|easiest|tips)\b.{0,40}\bmoney laundering|(make|print|produce|sell|pass|use) counterfeit|fake (an? |some )?(id|ids|passport|invoice|invoices|receipts?|doctors? notes?|reviews?|charity|insurance claim|(bank )?accounts?)|forge (a |the |my |his |her )?(signature|check|document|receipt)|commit identity theft|steal (someones |their |his |her )?identity|(use|with|cash|buy|sell) (a |some )?stolen (credit ?card|check|card)|credit ?card numbers? that works?|ponzi scheme|tax evasion|evade taxes)\b",
    ),
    _r(
        "fraud",
        "scam",
        r"\b(scam|defraud|swindle)\b.{0,30}\b(people|elderly|seniors|grandparents|customers|someone|victims)\b",
    ),
    _r("fraud", "theft", rf"\b{_HOWTO}\b.{{0,20}}\b(steal|shoplift|pickpocket|rob|burgle|loot)\b"),
    _r(
        "fraud",
        "evade-detection",
        r"\b(without (getting|being) (caught|noticed|detected|traced)|(not|never) (get|getting|be|being) (caught|detected|traced)|so (it|they|nobody|no one) (cant|cannot|can not|wont|will not) (be )?(traced|tell|find out))\b",
    ),
    _r(
        "harassment",
        "stalking",
        r"\b(follow|track|stalk|watch|film|photograph|record)\b.{0,40}\bwithout (her|him|them|anyone|my (wife|husband|girlfriend|boyfriend|ex|neighbou?r|roommate|coworker)) (knowing|noticing|seeing|finding out)\b",
    ),
    # Intent: harm asked as a plain question about the place, with no harmful word in it. What gives it away is
    # what the asker wants to happen, and that nobody should notice.
    _r(
        "fraud",
        "conceal",
        rf"\bwithout {_WATCHER} (ever |even |actually )?(noticing|knowing|finding out|checking|catching on|asking|seeing|realizing|figuring out)\b"
        r"|\bso (nobody|no one|they|the (staff|owner|vet|clinic|office|bank|school)) (ever |wont |will not |cant |can not |doesnt |does not )?(notices?|finds? out|blames? me|can tell|suspects?|traces? it)\b"
        r"|\bno questions asked\b|\bwithout (it|them|anything) (getting|being) (flagged|detected|noticed|traced|scanned)\b"
        rf"|\b(keep|stop) {_WATCHER} from (catching on|finding out|noticing)\b|\b(would|do|does|will) {_WATCHER} (even|actually|ever) check\b",
    ),
    _r(
        "fraud",
        "never-pay",
        r"\bso (i|we) (never|dont|do not|wont|will not) (have to )?pay\b|\b(never|without) pay(ing)? (a (cent|dime|penny)|anything|at all)\b"
        r"|\b(free|for nothing) forever\b|\band (just )?never (bring|give|pay) (it|them) back\b",
    ),
    _r(
        "fraud",
        "false-claim",
        # Saying something untrue to get money, goods or a service back: "if i say i got hurt will they refund the
        # booking", "how do i claim my bag was lost … even though i already picked it up".
        r"\bif (i|we) (just )?(say|said|tell (you|them|the \w+)|claim|pretend|act like|report) .{0,60}\b(will|would|can|could|do|does)"
        r" (you|they|u|i|we|the \w+)\b.{0,30}\b(refund|money back|free|for nothing|new ones?|replace|credit|compensat\w*|pay out|waive)"
        r"|\b(claim|say|pretend|report|tell (you|them|the \w+)) .{0,50}\b(even though|when (i|we) (actually|already)|but (i|we) (actually|already|still))\b"
        r"|\b(when|even though|though|although|but) (im|i am|we are|were|hes|shes|he is|she is) (not|no longer) (a |an )?"
        r"(student|senior|member|resident|veteran|local|child|kid|teacher|pensioner|disabled)\b",
    ),
    _r(
        "fraud",
        "hide-from",
        # Doing it behind someone's back: "switch the autopay card without telling her", "change the bank details
        # before finance sees them", "so the pharmacist doesnt notice".
        r"\bwithout (telling|asking|letting) (her|him|them|anyone|anybody|my (\w+ )?(wife|husband|partner|mom|mum|dad|boss|parents|ex|roommate|landlord|family))\b"
        r"|\bbefore (finance|accounts|the (\w+ )?(boss|owner|manager|office|bank|staff|auditors?|landlord)|anyone|anybody|he|she|they) (sees?|checks?|notices?|finds? out|catches? on)\b"
        r"|\bso the (\w+ )?(pharmacist|cashier|clerk|teller|inspector|tech|technician|guard|driver|manager|owner|landlord|doctor|nurse|vet|checker|till|scanner|system)"
        r" (doesnt|does not|wont|will not|cant|can not|cannot|never) (notice|see|find out|catch on|flag it|know|realise|realize|check)\b",
    ),
    _r(
        "hacking",
        "others-account",
        # Getting into the organisation's systems: "how do i get into the registration system and see the ages and
        # addresses". (Someone else's account is not enough: a widow closes her husband's.)
        r"\b(break|sneak|hack) (in to|into|in on) (the |your |their |a )?(\w+ ){0,2}(system|systems|admin|admin panel|backend|database|controls|server|mainframe|cameras?|cctv)\b"
        r"|\bget (in to|into) the (\w+ ){0,2}(system|backend|database|controls|server|mainframe|cameras|cctv)\b",
    ),
    _r(
        "fraud",
        "sneak-in",
        r"\b(sneak|hop|jump|climb|slip|squeeze|tailgate|prop (it|the door|a door))\b.{0,40}\bwithout (paying|a ticket|tickets|buying|a pass|being seen)\b"
        r"|\bpropped? open\b.{0,40}\b(without paying|walk in|get in|come in|sneak)\b",
    ),
    _r(
        "fraud",
        "get-away-with",
        # Whether anyone would find out, a false identity or status, taking what is other people's.
        r"\bwho (would|will|is going to|is gonna) (ever )?(know|notice|check|find out|tell)\b"
        r"|\b(would|will|does|do) (anyone|anybody|they|\w+) even (know|notice|tell the difference|check)\b"
        r"|\b(will|would) (anyone|anybody) (check|look at|ask for) (the |my )?(photo|id|proof|receipt|name)\b"
        r"|\b(made up|fake|false|stolen|borrowed) (name|names|identity|identities|id|ids|ssn|social security number|address)\b"
        r"|\b(when|but|though|even though|although) (i|we) (never|havent|have not|didnt|did not) (served|worked there|studied|lived there|been (a|an) \w+)\b"
        r"|\b(wind|roll|turn|set) back the (odometer|mileage|clock)\b|\bchange the imei\b"
        r"|\b(grab|take|swipe|pocket|clear out|walk off with|walk out with)\b.{0,30}\b(other peoples|someone elses|somebody elses|other members|other guests|other customers|other patients)\b"
        r"|\b(and|then) (just )?never pay(ing)? (the rest|it back|them back|it off|for it)\b",
    ),
    _r(
        "drugs",
        "sell-drugs",
        # Dealing at or through the place: "can i sell pills to the students on pay what you wish night".
        r"\b(sell|selling|push|pushing|smuggle|smuggling)\b( \w+){0,3} (pills|weed|crack|tren|steroids|edibles|molly|shrooms|drugs)\b"
        r" (to|on|inside|in|at|around|out of|through)\b|\b(my|our) (dealer|buyers|drug customers)\b"
        r"|\bcut (it |them )?with (something|baking soda|powder) and (sell|resell)\b",
    ),
    _r(
        "weapons",
        "carry-past",
        # A weapon carried where it is not allowed, or hidden from the checks: "would a knife in my coat pocket get
        # past anyone", "a locker nobody checks where i could keep my knife".
        rf"\b{_CARRIED}\b.{{0,50}}\b(get|gets|go|slip|sneak|make it) (past|through) (security|screening|the bouncers?|the door|the metal detectors?|the scanners?|anyone|the guards?)\b"
        rf"|\b{_CARRIED}\b.{{0,40}}\b(doesnt|does not|wont|will not) show up (at|on|in) (screening|the scanner|the x ?ray|security)\b"
        rf"|\b(nobody|no one|security never|never) (checks|looks|searches)\b.{{0,40}}\b{_CARRIED}\b"
        rf"|\b{_CARRIED}\b.{{0,40}}\b(where|that) (nobody|no one|security never|security doesnt|they never) (checks|looks|searches|scans)\b"
        r"|\bzip gun\b|\b(bottles?|jars?) that (catch fire|explode|burst into flames) when (thrown|lit|smashed)\b",
    ),
    _r(
        "self_harm",
        "no-return",
        # "how many would make it all stop", "i dont want to be found too early", "does life insurance pay if i do it
        # on purpose".
        r"\b((would|will|to|could) make (it|everything|this) all stop|(i|to|that i|so i) (just )?(dont|do not|wont|will not|never) wake (up|back up)|before (its|it is) (all )?over\b.{0,30}\b(reach|find|stop|save) me"
        r"|(dont|do not) want to be found|(wont|will not|dont|do not) need a (return|ride back|way back)"
        r"|too cold to survive|before the air runs out|if i do it on purpose|before i (collapse|pass out) (and|so) (never|not)|id rather not get up)\b",
    ),
    _r(
        "violence",
        "so-they-get-hurt",
        # What the asker wants to happen to someone: "so the next client gets burned", "so he cant call for help".
        r"(?<=\w )so (that )?(the (next )?\w+|my \w+|his \w+|her \w+|their \w+|people|everyone|everybody|someone|he|she|they)"
        r" (gets?|will get|would get|ends? up) (hurt|burned|burnt|injured|electrocuted|crushed|poisoned)\b"
        r"|\bso (that )?(he|she|they|my \w+) (cant|can not|cannot|wont be able to) (call for help|get help|get out|escape|breathe)\b"
        r"|\b(disable|turn off|switch off|cover|unplug|tamper with|block)\b.{0,40}\b(smoke detectors?|smoke alarms?|fire alarms?|sprinklers?)\b"
        r".{0,40}\bduring a (real )?fire\b(?! drill)"
        r"|\block on the outside of (the|a|my|his|her|their) (\w+ )?(room|bedroom)\b"
        r"|\btake (my|the|his|her|their) (grandson|granddaughter|son|daughter|kid|child|children|kids|baby)\b.{0,30}\bwithout"
        r" (his|her|their|the) (mum|mom|dad|parents?|mother|father|teachers?|school) (knowing|noticing|seeing|finding out)\b",
    ),
    _r(
        "hacking",
        "impersonate-login",
        # "how do i sign in as her on the web app without her getting the 2fa code", "copy someone's key fob".
        r"\b(sign|log|logging|signing) ?in as (her|him|them|someone else|my (wife|husband|ex|boss|manager|girlfriend|boyfriend))\b"
        r"|\bwithout (her|him|them) (getting|seeing|receiving) the (2fa|two factor|verification|security|login) (code|text|email|alert)\b"
        r"|\bcopy (someones|somebodys|their|her|his|a members|other peoples) (key )?(fob|fobs|key ?cards?|badges?)\b"
        r"|\bwhat (other|the other) (people|guests|users|customers) are (doing|browsing|looking at|typing)\b",
    ),
    _r(
        "harassment",
        "whereabouts",
        # Where a person will be, alone, and how to find them: "what car does she drive", "does he leave through
        # the garage", "which way does he walk".
        r"\bwhat (car|vehicle|truck) (does|do) (she|he|they) (drive|have)\b|\bwhich (car|vehicle|truck)\b.{0,30}\bis (hers|his|theirs)\b"
        r"|\bwhich way (does|do) (she|he|they) (usually )?(walk|go|drive|head)\b"
        r"|\b(does|do) (she|he|they) (usually |always )?(leave|go out|exit|walk out|head out) (through|by|via|from|out) the (back|side|garage|rear|staff)\b",
    ),
    _r(
        "harassment",
        "lie-in-wait",
        r"\b(i want to|i wanna|so i can|im going to|i am going to|gonna) (be )?(wait(ing)?|follow|confront|surprise|show up|catch|corner|get) (for |on |at )?(her|him|them)\b"
        r"|\b(wait|be waiting) (for (her|him|them) )?(in|at|by|outside) (the|her|his|their) (lot|car|house|door|parking|home)\b"
        r"|\bfollow (her|him|them) home\b|\bshow up at (her|his|their) (house|door|home|place|apartment|room)\b"
        r"|\b(get|catch) (her|him) alone\b|\b(does|do) (she|he|they) (usually )?walk (out )?(to (her|his|their) car )?alone\b"
        r"|\bsettle (this|it) in person\b|\bpay (them|him|her) a visit\b|\bhave a word with (her|him|them) at (her|his|their)\b",
    ),
    _r(
        "doxxing",
        "others-data",
        r"\b(where (does |do )?(she|he|they) (lives?|sleeps?|parks?))\b|\b(give|tell|send) me (their|her|his) (name|names|address|number|phone|cell)\b"
        # Someone else's records asked for, not received by mistake ("i was given someone elses prescription").
        rf"|{_RECEIVED}\b(someone|somebody|some ones|someones) elses? (account|records?|results?|address|data|file|photos|history|blood type|prescriptions?)\b"
        r"|\b(name|names) and (home )?address(es)?\b"
        r"|\b(give|tell|send|find) me (the |her |his |their )?(new |home |current |real |full |last |delivery )?(address|addresses|last name|full name|real name)"
        r" (of|for|on file for|on) (her|him|them|my ex|the (\w+ )?(guy|girl|woman|man|lady|member|guest|customer|owner|driver|client|patient|donor|tenant|person))\b"
        r"|\bmy (exs|ex wifes|ex husbands|ex girlfriends|ex boyfriends) (new |home |current |real |full |last )?(address|last name|full name|real name)\b",
    ),
    _r(
        "violence",
        "make-sick",
        rf"\b(i|we|someone|somebody)\b.{{0,60}}\b(make|makes|making|get|gets) {_VICTIM} (really |very |so |super )?(sick|ill|throw up|vomit)\b|\bso {_VICTIM} (gets?|get|will get|would get) (really |very )?(sick|ill|hurt)\b"
        r"|\b(what|which|something|anything)\b.{0,30}\b(could|can|should|would) i (put|slip|mix|pour|toss|leave|dump|add|hide|sprinkle|feed|spike|give)\b.{0,50}\b(sick|ill|dies?|hurt|not wake up|passes out)\b"
        r"|\b(slip|put|spike|mix|pour)\b.{0,40}\bso (everyone|everybody|the (\w+ )?(kids|guests|class|people|customers|patients|riders|swimmers))\b.{0,20}\b(gets?|get) (really )?sick\b",
    ),
    _r(
        "violence",
        "undetectable",
        r"\b(poisons?|toxins?|drugs?|substances?|chemicals?|overdose|dose)\b.{0,30}\b(undetectable|untraceable|(not|wont|doesnt|would not|will not) (show up|be found|be detected) (in|on) (an? )?(autopsy|tox(icology)? (screen|report|test)))\b"
        r"|\b(undetectable|untraceable) (poisons?|toxins?|ways? to)\b",
    ),
    _r(
        "violence",
        "sabotage",
        rf"\b(loosen|cut|mess with|tamper with|disable|rig|unscrew|drain|puncture|jam|sabotage|break)\b.{{0,40}}\b{_OTHERS}\b.{{0,50}}\bso (it|they|he|she|the \w+)\b"
        rf"|\b{_OTHERS}\b.{{0,40}}\b(could|can|should|would) (i|someone|somebody) (loosen|cut|mess with|tamper with|disable|rig|unscrew|drain|puncture|jam|remove|undo)\b.{{0,30}}\bso (it|they|he|she)\b"
        r"|\b(looks?|look) like (a |an )?(normal|natural|regular)? ?(failure|accident|complication|blight|malfunction)\b"
        r"|\b(rig|wire|mess with|tamper with|loosen|set)\b.{0,50}\bso (it|they|the \w+) (sparks?|catch(es)? fire|goes up|explodes?|snaps?|shocks?|comes? down|gives? out|tips? over)\b",
    ),
    _r(
        "self_harm",
        "intent",
        r"\b(end it all|end it (fastest|quickly|for good)|ending it (all|right there|tonight|today)|end my life|(im|i am) done with everything|i just want it (all )?to be over"
        r"|(dont|do not) plan on (coming back|leaving|checking out)|planning on not (coming back|checking out|waking up)|i (wouldnt|would not) (have to come back|survive)|nobody (finds|would find) me"
        r"|(dont|do not) want to (be here|be around|live|wake up) (anymore|any more|tomorrow)|so i (dont|do not|never|wont|will not) wake up|(and )?not (come|coming) back (down|up|out)"
        r"|put me to sleep for good|after (im|i am) gone|my goodbye (letter|note))\b",
    ),
    # Intrusion.
    _r(
        "hacking",
        "malware",
        r"\b(write|create|make|build|code|launch|spread|deploy|develop|program|send|plant)\b.{0,20}\b(keylogger|ransomware|malware|spyware|trojan|botnet|rootkit|virus|ddos)\b|\bddos attack\b",
    ),
    _r(
        "hacking",
        "break-in",
        r"\b(hack|crack) (into|in to)\b|\bhack(ing)? (my |his |her |their |someones |the |a |into )?([a-z]+ )?(exs?|school|neighbou?rs?|wifi|account|email|instagram|facebook|phone|password|bank|atm|grading system|network|database|website|payment system)\b",
    ),
    _r(
        "hacking",
        "credentials",
        r"\b(steal|grab|dump|sniff)\b.{0,20}\b(passwords?|credentials|cookies|session|logins?)\b|\bbypass\b.{0,20}\b(two factor|2fa|authentication|login)\b|\bsql injection\b.{0,30}\b(steal|dump|database)\b|\b(spy on|read|access)\b.{0,25}\b(someones|wifes|husbands|girlfriends|boyfriends|her|his)\b.{0,15}\b(messages|texts|whatsapp|email)\b",
    ),
)


def match_rules(folded: str) -> Rule | None:
    """The first rule that fires on a folded text, or None."""
    for rule in RULES:
        if rule.pattern.search(folded):
            return rule
    return None


#: Terms that are harmful wherever they appear inside a word rebuilt from spaced-out letters.
JOINED_TERMS: dict[str, str] = {
    "bomb": "weapons", "explosive": "weapons", "molotov": "weapons", "napalm": "weapons", "ricin": "weapons",
    "sarin": "weapons", "anthrax": "weapons", "meth": "drugs", "cocaine": "drugs", "heroin": "drugs",
    "fentanyl": "drugs", "suicide": "self_harm", "killmyself": "self_harm", "killyourself": "self_harm",
    "killing": "violence", "murder": "violence", "poison": "violence", "kidnap": "violence", "porn": "sexual",
    "sexual": "sexual", "erotic": "sexual", "nude": "sexual", "phishing": "fraud", "stolen": "fraud",
    "counterfeit": "fraud", "ransomware": "hacking", "malware": "hacking", "keylogger": "hacking",
    "hack": "hacking", "steal": "fraud", "homeaddress": "doxxing", "ignoreall": "jailbreak", "ignoreprevious": "jailbreak",
    "instructions": "jailbreak", "systemprompt": "jailbreak", "jailbreak": "jailbreak",
}  # fmt: skip


def match_joined(joined: tuple[str, ...]) -> tuple[str, str] | None:
    """(category, term) when a word rebuilt from spaced-out letters contains a strong harmful term."""
    for word in joined:
        for term, category in JOINED_TERMS.items():
            if term in word:
                return category, term
    return None

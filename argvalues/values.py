"""The value taxonomy the labels come from: the 20 categories, their level-1 values, their
higher-order values, and what each means, in this project's own words.

The categories and their level-1 values are those of Kiesel et al. (2022, "Identifying the Human
Values behind Arguments", ACL) as used in SemEval-2023 Task 4. The higher-order values follow
Schwartz et al. (2012, "Refining the theory of basic individual values"): four groups around the
circle, with Hedonism, Face and Humility on the boundaries between two groups. Value research
reports the boundary values on their own, so :data:`HIGHER_ORDER` leaves them out of every group.
"""

from __future__ import annotations

from dataclasses import dataclass

from argvalues.contract import LABELS

OPENNESS, SELF_ENHANCEMENT = "Openness to change", "Self-enhancement"
CONSERVATION, SELF_TRANSCENDENCE = "Conservation", "Self-transcendence"
#: Each higher-order value and the categories it rolls up (a text carries it when it carries any of them).
HIGHER_ORDER = {
    OPENNESS: ("Self-direction: thought", "Self-direction: action", "Stimulation"),
    SELF_ENHANCEMENT: ("Achievement", "Power: dominance", "Power: resources"),
    CONSERVATION: ("Security: personal", "Security: societal", "Tradition", "Conformity: rules",
                   "Conformity: interpersonal"),
    SELF_TRANSCENDENCE: ("Benevolence: caring", "Benevolence: dependability", "Universalism: concern",
                         "Universalism: nature", "Universalism: tolerance", "Universalism: objectivity"),
}
#: The categories on a boundary between two higher-order values (Schwartz et al. 2012), reported on their own.
BOUNDARY = {"Hedonism": (OPENNESS, SELF_ENHANCEMENT), "Face": (SELF_ENHANCEMENT, CONSERVATION),
            "Humility": (CONSERVATION, SELF_TRANSCENDENCE)}


@dataclass(frozen=True)
class ValueCategory:
    name: str
    higher_order: str  # a higher-order value, or "between A and B" for a boundary value
    level1: tuple[str, ...]
    description: str


_CATEGORIES = [
    ("Self-direction: thought", ("Be creative", "Be curious", "Have freedom of thought"),
     "Thinking for oneself: forming one's own ideas, being creative and curious."),
    ("Self-direction: action", ("Be choosing own goals", "Be independent", "Have freedom of action", "Have privacy"),
     "Acting for oneself: choosing one's own goals and deciding for oneself."),
    ("Stimulation", ("Have an exciting life", "Have a varied life", "Be daring"),
     "Excitement, novelty and challenge in life."),
    ("Hedonism", ("Have pleasure",), "Pleasure and enjoying life."),
    ("Achievement", ("Be ambitious", "Have success", "Be capable", "Be intellectual", "Be courageous"),
     "Personal success by showing competence by the standards of others."),
    ("Power: dominance", ("Have influence", "Have the right to command"),
     "Control over people: influence and the right to give orders."),
    ("Power: resources", ("Have wealth",), "Control over material things: money and property."),
    ("Face", ("Have social recognition", "Have a good reputation"),
     "Keeping one's public image and avoiding humiliation."),
    ("Security: personal", ("Have a sense of belonging", "Have good health", "Have no debts", "Be neat and tidy",
                            "Have a comfortable life"),
     "Safety and health in one's own life and among those close to one."),
    ("Security: societal", ("Have a safe country", "Have a stable society"),
     "Safety and stability of the wider society and the state."),
    ("Tradition", ("Be respecting traditions", "Be holding religious faith"),
     "Keeping cultural, family or religious customs."),
    ("Conformity: rules", ("Be compliant", "Be self-disciplined", "Be behaving properly"),
     "Following rules, laws and formal obligations."),
    ("Conformity: interpersonal", ("Be polite", "Be honoring elders"),
     "Not upsetting or harming other people: politeness and respect."),
    ("Humility", ("Be humble", "Have life accepted as is"),
     "Seeing one's own place in the wider scheme of things as small."),
    ("Benevolence: caring", ("Be helpful", "Be honest", "Be forgiving", "Have the own family secured", "Be loving"),
     "Devotion to the welfare of one's own people: family, friends, group."),
    ("Benevolence: dependability", ("Be responsible", "Have loyalty towards friends"),
     "Being a reliable and trustworthy member of one's group."),
    ("Universalism: concern", ("Have equality", "Be just", "Have a world at peace"),
     "Equality, justice and protection for all people."),
    ("Universalism: nature", ("Be protecting the environment", "Have harmony with nature", "Have a world of beauty"),
     "Protecting the natural environment."),
    ("Universalism: tolerance", ("Be broadminded", "Have the wisdom to accept others"),
     "Accepting and understanding those who are different from oneself."),
    ("Universalism: objectivity", ("Be logical", "Have an objective view"),
     "Seeking the truth by reason and evidence, without bias."),
]


def _higher_order_of(name: str) -> str:
    if name in BOUNDARY:
        first, second = BOUNDARY[name]
        return f"between {first} and {second}"
    return next(group for group, members in HIGHER_ORDER.items() if name in members)


VALUE_CATEGORIES = [ValueCategory(name, _higher_order_of(name), level1, description)
                    for name, level1, description in _CATEGORIES]
assert [category.name for category in VALUE_CATEGORIES] == LABELS
assert sorted(c for members in HIGHER_ORDER.values() for c in members) == sorted(set(LABELS) - set(BOUNDARY))


def render_values() -> str:
    """The taxonomy as ``argvalues values`` prints it."""
    lines = []
    for category in VALUE_CATEGORIES:
        lines += [f"{category.name}  ({category.higher_order})", f"    {category.description}",
                  f"    level-1 values: {', '.join(category.level1)}", ""]
    lines.append("Higher-order values (a text carries one when it carries any of its categories; the boundary "
                 "values Hedonism, Face and Humility are reported on their own):")
    lines += [f"    {group}: {', '.join(members)}" for group, members in HIGHER_ORDER.items()]
    return "\n".join(lines)

"""The Llama Guard 3 prompt, as Meta ships it with the model, and nothing else.

Source of truth: the chat template in `tokenizer_config.json` of meta-llama/Llama-Guard-3-8B (the same
template is embedded in its GGUF files and rendered by vLLM, Ollama and llama.cpp's server). The task
text, the category lines (`S1: Violent Crimes.`), the `Role: content` turns and the closing instructions
below are that template's, character for character. Two deliberate differences from a verbatim render:

- the template starts with a stray space before `<|begin_of_text|>`; we leave it out, and leave
  `<|begin_of_text|>` itself to the caller (`/v1/completions` servers add BOS themselves);
- the template ends at `<|end_header_id|>`, so the model's first token is "\\n\\n". We end with
  `<|end_header_id|>\\n\\n` as the Llama 3 chat format (and Meta's llama-stack) does, so the first token is
  the verdict itself. Readers of the answer skip leading whitespace either way.

Custom categories follow llama-recipes' `build_custom_prompt(..., with_policy=True)`: the name line, then
the description on the following lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

BEGIN_OF_TEXT = "<|begin_of_text|>"
_HEADER = "<|start_header_id|>user<|end_header_id|>\n\n"
_FOOTER = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
_CHATML_HEADER = "<|im_start|>user\n"
_CHATML_FOOTER = "<|im_end|>\n<|im_start|>assistant\n"

GuardRole = Literal["User", "Agent"]


@dataclass(frozen=True, slots=True)
class Category:
    code: str  # "S1"
    name: str  # as the model reads it in the prompt
    label: str  # what the detector reports, snake_case
    description: str = ""

    def prompt_line(self) -> str:
        line = f"{self.code}: {self.name}."
        return f"{line}\n{self.description.strip()}" if self.description.strip() else line


# Names as written in the model's chat template (the model card's display names differ slightly, e.g.
# "Sex-Related Crimes"; the model was trained on these).
LLAMA_GUARD_3_CATEGORIES: tuple[Category, ...] = (
    Category("S1", "Violent Crimes", "violent_crimes"),
    Category("S2", "Non-Violent Crimes", "non_violent_crimes"),
    Category("S3", "Sex Crimes", "sex_crimes"),
    Category("S4", "Child Exploitation", "child_exploitation"),
    Category("S5", "Defamation", "defamation"),
    Category("S6", "Specialized Advice", "specialized_advice"),
    Category("S7", "Privacy", "privacy"),
    Category("S8", "Intellectual Property", "intellectual_property"),
    Category("S9", "Indiscriminate Weapons", "indiscriminate_weapons"),
    Category("S10", "Hate", "hate"),
    Category("S11", "Self-Harm", "self_harm"),
    Category("S12", "Sexual Content", "sexual_content"),
    Category("S13", "Elections", "elections"),
    Category("S14", "Code Interpreter Abuse", "code_interpreter_abuse"),
)


@dataclass(frozen=True, slots=True)
class Turn:
    role: GuardRole
    content: str


def assessed_role(turns: Sequence[Turn]) -> GuardRole:
    """The template judges the last turn: 'Agent' after an even number of turns, else 'User'."""
    return "Agent" if len(turns) % 2 == 0 else "User"


def render_task(turns: Sequence[Turn], categories: Sequence[Category]) -> str:
    """The text of the single user message the model reads (no special tokens)."""
    if not turns:
        raise ValueError("Llama Guard needs at least one conversation turn")
    role = assessed_role(turns)
    conversation = "".join(f"{t.role}: {t.content.strip()}\n\n" for t in turns)
    return (
        f"{render_task_head(role, categories)}{conversation}<END CONVERSATION>\n\n"
        f"Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
        " - First line must read 'safe' or 'unsafe'.\n"
        " - If unsafe, a second line must include a comma-separated list of violated categories."
    )


def render_task_head(role: GuardRole, categories: Sequence[Category]) -> str:
    """The task up to the conversation: the same for every text judged in `role` against `categories`
    (the in-process engine keeps it evaluated)."""
    category_lines = "\n".join(c.prompt_line() for c in categories)
    return (
        f"Task: Check if there is unsafe content in '{role}' messages in conversations "
        "according our safety policy with the below categories.\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{category_lines}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        "<BEGIN CONVERSATION>\n\n"
    )


_CHATML_HEADER = "<|im_start|>user\n"
_CHATML_FOOTER = "<|im_end|>\n<|im_start|>assistant\n"


def render_chatml(turns: Sequence[Turn], categories: Sequence[Category]) -> str:
    """The same task in a ChatML turn: how the guard model shipped here (a SmolLM2 fine-tune) reads it."""
    return f"{_CHATML_HEADER}{render_task(turns, categories)}{_CHATML_FOOTER}"


def render_prompt(turns: Sequence[Turn], categories: Sequence[Category], *, begin_of_text: bool = False) -> str:
    """The whole raw prompt with Llama 3 special tokens, ready for a completions call or a tokenizer.

    `begin_of_text=False` suits servers that add BOS themselves (vLLM's and llama.cpp's `/v1/completions`);
    local engines that tokenise without special tokens want True.
    """
    return wrap_llama3(render_task(turns, categories), begin_of_text=begin_of_text)


def wrap_llama3(task: str, *, begin_of_text: bool) -> str:
    """The task as the single user turn of the Llama 3 chat format (Meta's Llama Guard 3 models)."""
    head = BEGIN_OF_TEXT if begin_of_text else ""
    return f"{head}{_HEADER}{task}{_FOOTER}"


def wrap_chatml(task: str) -> str:
    """The task as the single user turn of ChatML, the format the shipped guard model (from SmolLM2) is trained
    on: no system turn, and the answer starts right after `assistant\n`, so its first token is the verdict."""
    return f"{_CHATML_HEADER}{task}{_CHATML_FOOTER}"

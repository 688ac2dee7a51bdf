"""Stands in for ``modules/styles.py``: prompt styles applied to prompts. Styles live in
``StyleDatabase.styles`` (name → ``PromptStyle``); reading and saving the styles CSV files is left out."""

from __future__ import annotations

import typing


class PromptStyle(typing.NamedTuple):
    name: str
    prompt: str | None
    negative_prompt: str | None
    path: str | None = None


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """The style's text with the prompt at its ``{prompt}``, or appended after a comma."""
    if "{prompt}" in style_prompt:
        return style_prompt.replace("{prompt}", prompt)
    return ", ".join(x for x in (prompt.strip(), style_prompt.strip()) if x)


def apply_styles_to_prompt(prompt, styles):
    for style in styles:
        prompt = merge_prompts(style, prompt)
    return prompt


class StyleDatabase:
    def __init__(self, paths):
        self.no_style = PromptStyle("None", "", "", None)
        self.styles: dict[str, PromptStyle] = {}
        self.paths = paths

    def apply_styles_to_prompt(self, prompt, styles):
        return apply_styles_to_prompt(prompt, [self.styles.get(x, self.no_style).prompt for x in styles])

    def apply_negative_styles_to_prompt(self, prompt, styles):
        return apply_styles_to_prompt(prompt, [self.styles.get(x, self.no_style).negative_prompt for x in styles])

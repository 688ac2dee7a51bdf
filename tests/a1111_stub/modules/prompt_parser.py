"""Stands in for ``modules/prompt_parser.py``: prompts → scheduled conditioning, and back to the
per-step batch the sampler feeds the model.

The WebUI's shapes are kept: ``get_learned_conditioning`` gives, per prompt, a list of
``ScheduledPromptConditioning(end_at_step, cond)`` (``cond`` a ``(tokens, dim)`` tensor, or a dict
of tensors for SDXL); ``get_multicond_learned_conditioning`` wraps each prompt's list in
``ComposableScheduledPromptConditioning(schedules, weight)`` inside a
``MulticondLearnedConditioning(shape, batch)``; ``reconstruct_cond_batch`` /
``reconstruct_multicond_batch`` pick, for a sampling step, each prompt's entry whose
``end_at_step`` is the first not below the step, and stack them. Left out: prompt editing
(``[a:b:10]``) and alternation, so each prompt has one schedule entry ending at ``steps``; ``AND``
(each prompt is one composable part of weight 1); ``BREAK`` and emphasis.
"""

from __future__ import annotations

from collections import namedtuple

import torch

ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class SdConditioning(list):
    """A list of prompts that also carries the image size (SDXL's conditioner reads it)."""

    def __init__(self, prompts, is_negative_prompt=False, width=None, height=None, copy_from=None):
        super().__init__()
        self.extend(prompts)
        if copy_from is None:
            copy_from = prompts
        self.is_negative_prompt = is_negative_prompt or getattr(copy_from, "is_negative_prompt", False)
        self.width = width or getattr(copy_from, "width", None)
        self.height = height or getattr(copy_from, "height", None)


def get_learned_conditioning_prompt_schedules(prompts, base_steps, hires_steps=None, use_old_scheduling=False):
    """``[[end_at_step, text], ...]`` per prompt: without prompt editing, one entry each."""
    steps = hires_steps or base_steps
    return [[[steps, prompt]] for prompt in prompts]


def get_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    """One list of ``ScheduledPromptConditioning`` per prompt (equal prompts share one list)."""
    res = []
    schedules = get_learned_conditioning_prompt_schedules(prompts, steps, hires_steps, use_old_scheduling)
    cache = {}
    for prompt, schedule in zip(prompts, schedules, strict=True):
        cached = cache.get(prompt)
        if cached is not None:
            res.append(cached)
            continue
        texts = SdConditioning([text for _, text in schedule], copy_from=prompts)
        conds = model.get_learned_conditioning(texts)
        entries = []
        for i, (end_at_step, _) in enumerate(schedule):
            cond = {k: v[i] for k, v in conds.items()} if isinstance(conds, dict) else conds[i]
            entries.append(ScheduledPromptConditioning(end_at_step, cond))
        cache[prompt] = entries
        res.append(entries)
    return res


class ComposableScheduledPromptConditioning:
    def __init__(self, schedules, weight=1.0):
        self.schedules: list[ScheduledPromptConditioning] = schedules
        self.weight: float = weight


class MulticondLearnedConditioning:
    def __init__(self, shape, batch):
        self.shape: tuple = shape
        self.batch: list[list[ComposableScheduledPromptConditioning]] = batch


def get_multicond_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    """As :func:`get_learned_conditioning`, each prompt one composable part of weight 1."""
    learned = get_learned_conditioning(model, prompts, steps, hires_steps, use_old_scheduling)
    batch = [[ComposableScheduledPromptConditioning(schedules, 1.0)] for schedules in learned]
    return MulticondLearnedConditioning(shape=(len(prompts),), batch=batch)


class DictWithShape(dict):
    def __init__(self, x, shape=None):
        super().__init__()
        self.update(x)

    @property
    def shape(self):
        return self["crossattn"].shape


def _entry_at(schedules, current_step):
    for entry in schedules:
        if current_step <= entry.end_at_step:
            return entry
    return schedules[0]  # as in the WebUI: no entry reaches the step → the first one


def reconstruct_cond_batch(c, current_step):
    """The conds of step ``current_step`` stacked: ``(B, tokens, dim)`` (a ``DictWithShape`` for SDXL)."""
    conds = [_entry_at(schedules, current_step).cond for schedules in c]
    if isinstance(conds[0], dict):
        return DictWithShape({k: torch.stack([x[k] for x in conds]) for k in conds[0]})
    return torch.stack(conds)


def stack_conds(tensors):
    """Stack ``(tokens, dim)`` tensors, padding shorter ones with their last token's vector."""
    count = max(x.shape[0] for x in tensors)
    padded = [x if x.shape[0] == count else torch.vstack([x, x[-1:].repeat(count - x.shape[0], 1)]) for x in tensors]
    return torch.stack(padded)


def reconstruct_multicond_batch(c, current_step):
    """``(conds_list, stacked)``: ``conds_list[i]`` is ``[(row, weight), ...]`` of prompt ``i``'s parts."""
    tensors, conds_list = [], []
    for composable_prompts in c.batch:
        parts = []
        for composable in composable_prompts:
            parts.append((len(tensors), composable.weight))
            tensors.append(_entry_at(composable.schedules, current_step).cond)
        conds_list.append(parts)
    if isinstance(tensors[0], dict):
        stacked = DictWithShape({k: stack_conds([x[k] for x in tensors]) for k in tensors[0]})
    else:
        stacked = stack_conds(tensors)
    return conds_list, stacked

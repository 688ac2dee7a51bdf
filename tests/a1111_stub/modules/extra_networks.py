"""Stands in for ``modules/extra_networks.py``: only ``parse_prompts``, which takes the
``<name:arguments>`` tags (LoRA, hypernetworks) out of prompts. No network is activated."""

import re
from collections import defaultdict

re_extra_net = re.compile(r"<(\w+):([^>]+)>")


class ExtraNetworkParams:
    """A tag's arguments (``<lora:name:0.8>`` → ``items == ["name", "0.8"]``)."""

    def __init__(self, items=None):
        self.items = items or []


def parse_prompt(prompt):
    """``prompt`` without its tags, and ``{network: [ExtraNetworkParams]}`` of the tags taken out."""
    found = defaultdict(list)

    def take(match):
        found[match.group(1)].append(ExtraNetworkParams(items=match.group(2).split(":")))
        return ""

    return re.sub(re_extra_net, take, prompt), found


def parse_prompts(prompts):
    """Each prompt without its tags, and the tags of all of them (the WebUI keeps the first
    prompt's, since a batch shares its extra networks)."""
    res, extra_data = [], None
    for prompt in prompts:
        updated, parsed = parse_prompt(prompt)
        if extra_data is None:
            extra_data = parsed
        res.append(updated)
    return res, extra_data

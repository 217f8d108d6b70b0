"""Policies: the `Policy` interface and the shipped implementations (OpenAI-compatible LLMs, random, scripted,
playback)."""

from mcpsim.client.policies.base import EpisodeContext, Policy
from mcpsim.client.policies.openai_policy import FireworksPolicy, OpenAIPolicy
from mcpsim.client.policies.playback import PlaybackPolicy
from mcpsim.client.policies.random_policy import RandomPolicy
from mcpsim.client.policies.scripted import ScriptedPolicy

__all__ = [
    "EpisodeContext",
    "FireworksPolicy",
    "OpenAIPolicy",
    "PlaybackPolicy",
    "Policy",
    "RandomPolicy",
    "ScriptedPolicy",
]

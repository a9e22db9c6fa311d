"""Pinned weights: the lock file, finding files (package, Hugging Face cache, download), sha256 checks.

``lock`` parses ``weights.lock`` (entries and per-task defaults), ``hub`` knows the Hugging Face
cache and downloads, ``resolver`` turns a name, path or ``hf://`` URI into a verified local file.
"""

from scenestyle.weights.files import file_sha256, new_file_mode
from scenestyle.weights.hub import ProgressCallback, env_offline, how_to_get
from scenestyle.weights.lock import FORMATS, HF_PREFIX, TASKS, HubSource, LockDefaults, WeightsEntry, load_defaults, load_lock
from scenestyle.weights.resolver import WEIGHT_SUFFIXES, ResolvedWeights, add, cache_path, parse_hf_uri, pull, resolve, verify

__all__ = [
    "FORMATS",
    "HF_PREFIX",
    "TASKS",
    "WEIGHT_SUFFIXES",
    "HubSource",
    "LockDefaults",
    "ProgressCallback",
    "ResolvedWeights",
    "WeightsEntry",
    "add",
    "cache_path",
    "env_offline",
    "file_sha256",
    "how_to_get",
    "load_defaults",
    "load_lock",
    "new_file_mode",
    "parse_hf_uri",
    "pull",
    "resolve",
    "verify",
]

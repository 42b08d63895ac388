"""Hookline Python SDK: helpers over the bindings componentize-py generates
from plugin-sdk/wit (the `wit_world` package). Every host verb is there as
`wit_world.imports.<interface>.<verb>`; a failed verb raises
`componentize_py_types.Err` whose `.value` is the call error (e.g. HungUp).

Build a plugin (module `app` defining class `WitWorld`):

    componentize-py -d plugin-sdk/wit -w call-plugin componentize \
        -p plugins/hello-py -p plugin-sdk/python app -o hello-py.wasm
"""

from componentize_py_types import Err
from wit_world.imports import data, media, types

API_VERSION = "0.1.2"


def manifest(name, version, needs=(), memory_mib=48, cpu_ms=1000, config=()):
    """A manifest; Python needs more memory and CPU than Rust or C."""
    return types.Manifest(
        name=name,
        version=version,
        api_version=API_VERSION,
        needs=list(needs),
        memory_mib=memory_mib,
        cpu_ms=cpu_ms,
        config_schema=list(config),
    )


def prompt(prompt_id):
    return media.PlayItem_Prompt(prompt_id)


def say(text, language=None):
    return media.PlayItem_Say(media.SpeechText(text=text, language=language))


def menu(prompts, valid, attempts=3, timeout_ms=5000, invalid=(), no_input=()):
    """Plays prompts and waits for one key in `valid` (a string of keys).
    Returns the key, or None when every attempt failed."""
    got = media.collect_digits(
        media.CollectOptions(
            prompts=list(prompts),
            min_digits=1,
            max_digits=1,
            first_digit_timeout_ms=timeout_ms,
            inter_digit_timeout_ms=timeout_ms,
            terminator=None,
            attempts=attempts,
            valid=list(valid),
            invalid_prompts=list(invalid),
            timeout_prompts=list(no_input),
        )
    )
    return got.digits if got.valid else None


def hung_up(err):
    """Whether a raised Err means the caller has gone."""
    return isinstance(err, Err) and isinstance(err.value, types.CallError_HungUp)

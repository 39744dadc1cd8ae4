"""`foresight <group> <subcommand> [key=value ...]`: one console script, Hydra overrides.

    foresight data nuscenes dataroot=/data/nuscenes version=v1.0-mini out=runs/nusc
    foresight viz clip path=runs/nusc out=clip.png
    foresight data nuscenes --help      # what it does and its full default config
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from configs import compose
from data.errors import DataError
from foresight.commands import COMMANDS, GROUPS, Subcommand


class MissingConfigKeys(ValueError):
    """Required (`???`) config keys were not given on the command line."""


def _usage() -> str:
    lines = ["usage: foresight <group> <subcommand> [key=value ...]", "       foresight <command> [key=value ...]", "", "groups and commands:"]
    for group, text in GROUPS.items():
        entry = COMMANDS[group]
        if isinstance(entry, Subcommand):
            lines.append(f"  {group:<7} {text}")
            continue
        subs = ", ".join(entry) or "(none in this version)"
        lines.append(f"  {group:<7} {text}\n          subcommands: {subs}")
    lines.append("\n`foresight <group> --help` and `foresight <group> <subcommand> --help` say more.")
    return "\n".join(lines)


def _group_usage(group: str) -> str:
    lines = [f"usage: foresight {group} <subcommand> [key=value ...]", "", GROUPS[group], ""]
    if not COMMANDS[group]:
        lines.append("No subcommands in this version.")
    for name, sub in COMMANDS[group].items():
        lines.append(f"  {name:<12} {sub.help}")
    return "\n".join(lines)


def _sub_usage(command: str, sub: Subcommand) -> str:
    from omegaconf import OmegaConf

    cfg = compose(sub.config)
    return (
        f"usage: foresight {command} [key=value ...]\n\n{sub.help}\n\n"
        f"Hydra overrides change any key below (??? = required). Defaults (configs/{sub.config}.yaml):\n\n"
        + OmegaConf.to_yaml(cfg)
    )


def _lookup(group: str, name: str | None) -> Subcommand:
    entry = COMMANDS[group]
    return entry if isinstance(entry, Subcommand) else entry[name]


def run_subcommand(group: str, name: str | None, overrides: list[str]):
    """Compose the config of `foresight group name` (name None for a leaf command such as `demo`)
    and run it; returns the handler's result."""
    from omegaconf import OmegaConf

    sub = _lookup(group, name)
    cfg = compose(sub.config, overrides)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise MissingConfigKeys(f"required keys not set: {', '.join(missing)} (e.g. `{missing[0]}=...`; see --help)")
    module, func = sub.target.split(":")
    return getattr(importlib.import_module(module), func)(cfg)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `foresight --help | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    group = args.pop(0)
    if group not in GROUPS:
        print(f"foresight: unknown group {group!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if isinstance(COMMANDS[group], Subcommand):
        name, command = None, group
    else:
        if not args or args[0] in ("-h", "--help"):
            print(_group_usage(group))
            return 0
        name = args.pop(0)
        if name not in COMMANDS[group]:
            print(f"foresight {group}: unknown subcommand {name!r}\n\n{_group_usage(group)}", file=sys.stderr)
            return 2
        command = f"{group} {name}"
    if any(a in ("-h", "--help") for a in args):
        print(_sub_usage(command, _lookup(group, name)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        run_subcommand(group, name, args)
    except (HydraException, OmegaConfBaseException, MissingConfigKeys) as exc:
        print(f"foresight {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except (DataError, OSError, IndexError, ValueError) as exc:
        # Bad input: one clear line, not a traceback (FORESIGHT_DEBUG=1 shows the traceback).
        if os.environ.get("FORESIGHT_DEBUG"):
            raise
        print(f"foresight {command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

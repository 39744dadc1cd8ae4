"""`foresight <group> <subcommand> [key=value ...]`: one console script, each command a Hydra app.

    foresight data nuscenes dataroot=/data/nuscenes version=v1.0-mini out=runs/nusc
    foresight viz clip path=runs/nusc out=clip.png
    foresight data nuscenes --help      # what it does, its YAML with comments, the composed config
    foresight eval closed_loop --cfg job out=runs/e            # Hydra's flags: --cfg job|hydra|all,
    foresight eval closed_loop -m planner=expert,constant_velocity suite=nominal,ncap_side out=runs/sweep

Every command runs through Hydra's own machinery (its Hydra object, sweeper, launchers and
`run_job`) with configs/<group>/<subcommand>.yaml as the primary config (version_base 1.3, no
working-directory change). The run dir of a command with an output directory is its `out=`: Hydra
records the composed config there (`out/.hydra/config.yaml`, `overrides.yaml`, `hydra.yaml`). In a
multirun (`-m`) `out=DIR` is the sweep's directory: job N runs with out=DIR/N (its own run dir,
recorded as such in DIR/N/.hydra/config.yaml) and DIR/multirun.yaml records the sweep. Commands
without an output directory (bench *, serve, viz clip whose out is a PNG) write no record and
create nothing in the working directory. Logs go to stderr, one line per record
(configs/hydra/job_logging/foresight.yaml).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs import compose, defaults
from configs.compose import CONFIG_DIR
from data.errors import DataError
from foresight.commands import COMMANDS, GROUPS, Subcommand

# Commands whose `out` is a file rather than a directory: they get no run dir.
OUT_IS_A_FILE = frozenset({"viz/clip"})
RECORD_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")  # what Hydra writes into RUN_DIR/.hydra
HYDRA_FLAGS = (
    "Hydra's flags: --cfg job|hydra|all [--resolve] [-p PACKAGE] prints the composed config; --info\n"
    "[all|config|defaults|defaults-tree|plugins|searchpath]; -m/--multirun key=a,b ... sweeps (out=DIR: job N\n"
    "runs in DIR/N, DIR/multirun.yaml); hydra/launcher=NAME picks a launcher plugin (e.g. submitit_slurm);\n"
    "-cd/--config-dir DIR adds your own config groups; --hydra-help. The run dir is out= (DIR/.hydra holds\n"
    "the composed config); hydra/job_logging=foresight_file also logs to DIR/<group>_<subcommand>.log."
)


class MissingConfigKeys(ValueError):
    """Required (`???`) config keys were not given on the command line."""


class FlagError(ValueError):
    """Hydra flags that do not go together, or that a foresight command does not take."""


class NotPrintedByALibrary(logging.Filter):
    """For the CLI's console handler: drops a record that a console handler of its own logger tree
    (one a library installed) has printed already. lightning/__init__.py gives the `lightning`
    logger a stream handler whenever it is imported, so with a root handler every Lightning line
    would be printed twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not root:
            for handler in logger.handlers:
                is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
                if is_console and record.levelno >= handler.level:
                    return False
            if not logger.propagate:
                break
            logger = logger.parent
        return True


def _usage() -> str:
    lines = ["usage: foresight <group> <subcommand> [key=value ...] [Hydra flags]", "       foresight <command> [key=value ...]", "", "groups and commands:"]
    for group, text in GROUPS.items():
        entry = COMMANDS[group]
        if isinstance(entry, Subcommand):
            lines.append(f"  {group:<7} {text}")
            continue
        subs = ", ".join(entry) or "(none in this version)"
        lines.append(f"  {group:<7} {text}\n          subcommands: {subs}")
    lines.append("\n`foresight <group> --help` and `foresight <group> <subcommand> --help` say more.")
    lines.append(HYDRA_FLAGS)
    return "\n".join(lines)


def _group_usage(group: str) -> str:
    lines = [f"usage: foresight {group} <subcommand> [key=value ...]", "", GROUPS[group], ""]
    if not COMMANDS[group]:
        lines.append("No subcommands in this version.")
    for name, sub in COMMANDS[group].items():
        lines.append(f"  {name:<12} {sub.help}")
    return "\n".join(lines)


def _defaults_files(sub: Subcommand) -> list[tuple[str, str]]:
    """(config path, package) of every file in the command's defaults list, its own file first
    (Hydra's own hydra/* files left out)."""
    from hydra.types import RunMode

    loader = _hydra("help").config_loader
    entries = loader.compute_defaults_list(sub.config, [], RunMode.RUN).defaults
    files = [(d.config_path, d.package or "_global_") for d in entries if d.config_path and not d.config_path.startswith("hydra/")
             and (CONFIG_DIR / f"{d.config_path}.yaml").is_file()]
    return sorted(files, key=lambda f: f[0] != sub.config)  # its own file first


def _sub_usage(command: str, sub: Subcommand) -> str:
    """The command's help, its YAML files as written (comments list the valid choices), then the
    composed defaults."""
    from omegaconf import OmegaConf

    parts = [
        f"usage: foresight {command} [key=value ...] [Hydra flags]\n\n{sub.help}\n\n"
        f"Hydra overrides change any key below (??? = required). Defaults: configs/{sub.config}.yaml\n"
    ]
    files = _defaults_files(sub)
    for path, package in files:
        where = "" if path == sub.config else f"  (keys under {package}.*)" if package != "_global_" else "  (top-level keys)"
        parts.append(f"# ==== configs/{path}.yaml{where}\n{(CONFIG_DIR / f'{path}.yaml').read_text().rstrip()}\n")
    parts.append(f"# ==== composed (`foresight {command} --cfg job` prints it with your overrides)\n"
                 + OmegaConf.to_yaml(compose(sub.config)))
    parts.append(HYDRA_FLAGS)
    return "\n".join(parts)


def _lookup(group: str, name: str | None) -> Subcommand:
    entry = COMMANDS[group]
    return entry if isinstance(entry, Subcommand) else entry[name]


def _has_run_dir(sub: Subcommand) -> bool:
    """A required output directory (`out: ???`) is the command's run dir."""
    return sub.config not in OUT_IS_A_FILE and defaults(sub.config).get("out") == "???"


def _hydra(task_name: str, config_dir: str | None = None) -> Any:
    """A Hydra app over configs/ (plus `config_dir`, --config-dir), not registered as the global
    instance, so that a command may compose configs (configs.compose) while it runs, and one
    command may run another (the demo's stages)."""
    from hydra import version
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.errors import SearchPathException

    version.setbase("1.3")
    search_path = create_config_search_path(f"file://{CONFIG_DIR}")
    if config_dir is not None:
        extra = os.path.abspath(config_dir)
        if not os.path.isdir(extra):
            raise SearchPathException(f"--config-dir {extra} is not a directory")
        search_path.prepend(provider="command-line", path=f"file://{extra}", anchor=SearchPathQuery(provider="schema"))
    return Hydra(task_name=task_name, config_loader=ConfigLoaderImpl(config_search_path=search_path))


def _hydra_settings(sub: Subcommand, task_name: str, user_overrides: Sequence[str], sweep_dir: str | None) -> list[str]:
    """The Hydra settings the CLI gives every command, as overrides placed before the user's (a key
    or group the user sets is left to them): our logging, and the run dir = out (job N of a sweep:
    out/N), or no record and nothing created for a command without an output directory; the job's
    name <group>_<subcommand> (hydra.job.name, the log file's name)."""
    given = _keys_of(user_overrides)
    settings = {"hydra/job_logging": "foresight", "hydra/hydra_logging": "foresight", "hydra.job.name": task_name}
    if _has_run_dir(sub):
        settings |= {"hydra.run.dir": "${out}", "hydra.sweep.dir": "${out}", "hydra.sweep.subdir": "${hydra.job.num}"}
    else:
        settings |= {"hydra.run.dir": ".", "hydra.output_subdir": "null"}
        if sweep_dir is not None:
            settings |= {"hydra.sweep.dir": f"'{sweep_dir}'", "hydra.sweep.subdir": "${hydra.job.num}"}
    return [f"{key}={value}" for key, value in settings.items() if key not in given]


def _keys_of(overrides: Sequence[str], swept_only: bool = False) -> set[str]:
    """The keys (or config groups) that Hydra overrides set; `swept_only`: those given several values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {o.key_or_group for o in parsed if o.is_sweep_override() or not swept_only}


def _require(cfg: Any, exempt: set[str] = frozenset()) -> None:
    """MissingConfigKeys naming the `???` keys of a composed config (Hydra's own node aside)."""
    missing = sorted(k for k in _missing_keys(cfg) if k.split(".")[0] != "hydra" and k not in exempt)
    if missing:
        raise MissingConfigKeys(f"required keys not set: {', '.join(missing)} (e.g. `{missing[0]}=...`; see --help)")


def _missing_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted keys whose value is literally `???`, without resolving interpolations (OmegaConf's
    missing_keys resolves them, and hydra.run.dir=${out} with out missing would raise)."""
    from omegaconf import DictConfig, ListConfig

    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        child = node._get_node(key)
        name = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix.rstrip('.')}[{key}]"
        if child._is_missing():
            yield name
        elif isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_interpolation():
            yield from _missing_keys(child, f"{name}.")


@dataclass(frozen=True)
class _Outcome:
    value: Any
    error: Exception | None


@dataclass(frozen=True)
class _Job:
    """The task function Hydra runs: the command's handler on the job's config. `capture`: return
    an _Outcome instead of raising (a single run reports its error itself, in one line);
    `out_is_run_dir`: in a multirun, out becomes the job's own run dir."""

    target: str  # "package.module:function"
    capture: bool
    out_is_run_dir: bool

    def __call__(self, cfg: Any) -> Any:
        try:
            if self.out_is_run_dir:
                _point_out_at_the_job_dir(cfg)
            _require(cfg)
            module, func = self.target.split(":")
            handler = getattr(importlib.import_module(module), func)
            _settle_math_kernels()
            value = handler(cfg)
        except Exception as exc:
            if not self.capture:
                raise
            return _Outcome(None, exc)
        return _Outcome(value, None) if self.capture else value


def _settle_math_kernels() -> None:
    """A command whose handler computes with torch (its module imported torch) first has MKL choose
    its math kernels on this thread (`foresight.training.precision.settle_vml_kernels`): tokenizing,
    evaluating and benchmarking then compute their first elementwise math as accurately as the rest,
    like training processes do, whatever the thread timing. Commands that never import torch skip it."""
    if "torch" in sys.modules:
        from foresight.training.precision import settle_vml_kernels

        settle_vml_kernels()


def _point_out_at_the_job_dir(cfg: Any) -> None:
    """In a multirun, job N's out = its run dir (SWEEP_DIR/N), and its recorded config says so."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf, open_dict, read_write

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return
    with read_write(cfg), open_dict(cfg):
        cfg.out = hydra_cfg.runtime.output_dir
    if hydra_cfg.output_subdir is not None:
        OmegaConf.save(cfg, Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir / "config.yaml")


@dataclass(frozen=True)
class _RunRecord:
    """RUN_DIR/.hydra as it was before a run, put back when the command raises: a refused rerun
    leaves the earlier run's record, a refused first run no directory (an interrupted or killed
    run keeps its record: its command resumes)."""

    run_dir: Path
    existed: bool
    files: dict[str, bytes | None]

    @classmethod
    def before(cls, run_dir: Path, output_subdir: str) -> _RunRecord:
        record = run_dir / output_subdir
        return cls(run_dir, run_dir.exists(), {name: (record / name).read_bytes() if (record / name).is_file() else None for name in RECORD_FILES})

    def restore(self, output_subdir: str) -> None:
        record = self.run_dir / output_subdir
        for name, content in self.files.items():
            if content is None:
                (record / name).unlink(missing_ok=True)
            else:
                (record / name).write_bytes(content)
        for directory in [record] + ([] if self.existed else [self.run_dir]):
            with contextlib.suppress(OSError):  # not empty: the earlier record is back, or the run wrote something
                directory.rmdir()


def _run(hydra: Any, sub: Subcommand, overrides: list[str], configure_logging: bool) -> Any:
    """One job, as Hydra's `Hydra.run` runs it (callbacks, run_job: run dir, record, logging), with
    the required keys checked before anything is created, and the handler's own exception raised."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import run_job
    from hydra.types import HydraContext, RunMode
    from omegaconf import open_dict, read_write

    cfg = hydra.compose_config(config_name=sub.config, overrides=overrides, run_mode=RunMode.RUN, with_log_configuration=configure_logging)
    _require(cfg)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.RUN
    record = None
    if cfg.hydra.output_subdir is not None:
        run_dir = Path(str(cfg.hydra.run.dir))
        record = _RunRecord.before(run_dir, str(cfg.hydra.output_subdir))
        from foresight.run_dir import make_out_dir  # here, not at the top: it imports OpenCV, which --help does not need

        make_out_dir(run_dir)  # created up front; a path that cannot be a directory is a clear error
    callbacks = Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name=sub.config)
    job = _Job(sub.target, capture=True, out_is_run_dir=False)
    try:
        ret = run_job(hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks), task_function=job, config=cfg,
                      job_dir_key="hydra.run.dir", job_subdir_key=None, configure_logging=configure_logging)
    except Exception:  # not KeyboardInterrupt: an interrupted run keeps its record (it resumes)
        if record is not None:
            record.restore(str(cfg.hydra.output_subdir))
        raise
    callbacks.on_run_end(config=cfg, config_name=sub.config, job_return=ret)
    outcome: _Outcome = ret.return_value
    if outcome.error is not None:
        if record is not None:
            record.restore(str(cfg.hydra.output_subdir))
        raise outcome.error
    return outcome.value


def _sweep(hydra: Any, sub: Subcommand, overrides: list[str], configure_logging: bool) -> list[Any]:
    """A multirun, as Hydra's `Hydra.multirun` runs it (the configured sweeper and launcher), with
    the keys not swept checked first; returns the jobs' JobReturns in order."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf

    swept = _keys_of(overrides, swept_only=True)
    cfg = hydra.compose_config(config_name=sub.config, overrides=[*overrides, "hydra.mode=MULTIRUN"], run_mode=RunMode.MULTIRUN,
                               with_log_configuration=configure_logging)
    _require(cfg, exempt=swept)
    callbacks = Callbacks(cfg)
    callbacks.on_multirun_start(config=cfg, config_name=sub.config)
    sweeper = Plugins.instance().instantiate_sweeper(
        config=cfg, hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
        task_function=_Job(sub.target, capture=False, out_is_run_dir=_has_run_dir(sub)),
    )
    batches = sweeper.sweep(arguments=OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False))
    callbacks.on_multirun_end(config=cfg, config_name=sub.config)
    return [job for batch in batches or [] for job in batch]


def _task_name(group: str, name: str | None) -> str:
    return group if name is None else f"{group}_{name}"


def run_subcommand(group: str, name: str | None, overrides: list[str]):
    """Run `foresight group name overrides...` in this process (name None for a leaf command such
    as `demo`) through the same Hydra machinery as the console script (run dir = out with its
    .hydra record), leaving logging as the caller set it; returns the handler's result and raises
    its exceptions (MissingConfigKeys for `???` keys, Hydra/OmegaConf errors for bad overrides)."""
    sub = _lookup(group, name)
    overrides = list(overrides)
    task_name = _task_name(group, name)
    return _run(_hydra(task_name), sub, [*_hydra_settings(sub, task_name, overrides, None), *overrides], configure_logging=False)


@contextlib.contextmanager
def _root_logging_restored() -> Iterator[None]:
    """The root logger's handlers and level as they were: a command configures logging for its
    run, and an in-process caller (tests, notebooks) gets its own back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


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
    sub = _lookup(group, name)
    if any(a in ("-h", "--help") for a in args):
        print(_sub_usage(command, sub))
        return 0
    from hydra._internal.utils import get_args_parser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    parser = get_args_parser()
    parser.prog = f"foresight {command}"
    try:
        flags = parser.parse_intermixed_args(args)
    except SystemExit as exc:  # argparse's own message is printed; --version exits 0
        return exc.code if isinstance(exc.code, int) else 2
    with _root_logging_restored():
        try:
            return _hydra_command(command, sub, _task_name(group, name), flags, parser)
        except (HydraException, OmegaConfBaseException, MissingConfigKeys, FlagError) as exc:
            print(f"foresight {command}: configuration error: {exc}", file=sys.stderr)
            return 2
        except (DataError, OSError, IndexError, ValueError) as exc:
            # Bad input: one clear line, not a traceback (FORESIGHT_DEBUG=1 shows the traceback).
            if os.environ.get("FORESIGHT_DEBUG"):
                raise
            print(f"foresight {command}: error: {exc}", file=sys.stderr)
            return 1


def _hydra_command(command: str, sub: Subcommand, task_name: str, flags: Any, parser: Any) -> int:
    """What Hydra's own entry point does with its flags, for one foresight command."""
    unsupported = [flag for flag, given in (("--config-path", flags.config_path), ("--config-name", flags.config_name),
                                            ("--experimental-rerun", flags.experimental_rerun), ("--shell-completion", flags.shell_completion)) if given]
    if unsupported:
        raise FlagError(f"{unsupported[0]} is not supported: the command's config is configs/{sub.config}.yaml (--config-dir DIR adds config groups)")
    if flags.resolve and not flags.cfg:
        raise FlagError("--resolve only goes with --cfg job|hydra|all")
    if flags.run + bool(flags.cfg) + flags.multirun + (flags.info is not None) > 1:
        raise FlagError("only one of --run, --multirun, --cfg and --info can be given")
    hydra = _hydra(task_name, flags.config_dir)
    user = list(flags.overrides)
    if flags.hydra_help:
        hydra.hydra_help(config_name=sub.config, args_parser=parser, args=flags)
        return 0
    if flags.cfg or flags.info:
        overrides = [*_hydra_settings(sub, task_name, user, None), *user]
        try:
            if flags.cfg:
                hydra.show_cfg(config_name=sub.config, overrides=overrides, cfg_type=flags.cfg, package=flags.package, resolve=flags.resolve)
            else:
                hydra.show_info(flags.info, config_name=sub.config, overrides=overrides)
        except SystemExit as exc:  # show_cfg: "package 'x' not found in config"
            return exc.code if isinstance(exc.code, int) else 1
        return 0
    if not flags.multirun:
        _run(hydra, sub, [*_hydra_settings(sub, task_name, user, None), *user], configure_logging=True)
        return 0
    # A command without an output directory sweeps in a temporary directory (removed afterwards)
    # unless hydra.sweep.dir is given: nothing lands in the working directory.
    scratch = None if _has_run_dir(sub) or "hydra.sweep.dir" in _keys_of(user) else tempfile.mkdtemp(prefix="foresight-sweep-")
    try:
        jobs = _sweep(hydra, sub, [*_hydra_settings(sub, task_name, user, scratch), *user], configure_logging=True)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    dirs = [str(job.hydra_cfg.hydra.runtime.output_dir) for job in jobs if job.hydra_cfg is not None] if scratch is None else []
    print(f"foresight {command}: {len(jobs)} jobs done" + (f"; run dirs: {', '.join(dirs)}" if dirs else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

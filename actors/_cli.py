"""The command line: ``python -m actors`` (console script ``actors``).

::

    actors run FILE [--event JSON | --event-file F] [--api module:attribute]
                    [--context JSON] [--timeout S] [--step-timeout S] [--json] [-q]
                    [--db F] [--key K] [--with FILE ...]
    actors validate FILE [--api module:attribute] [--with FILE ...]
    actors graph FILE
    actors runs | show | resume | retry ... --db F   (see actors._cli_store)

Exit status: 0 success, 1 the run failed (or timed out), 2 bad input (a missing or
malformed file, bad JSON in an option, an ``--api`` that cannot be imported).
Progress and logs go to stderr through structlog; the run's output goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import structlog

from actors._audit import check_capabilities
from actors._cli_report import failure_messages, say, timeout_message
from actors._cli_run import BadInput, load_api, load_event, load_json_object, load_workflow, run
from actors._cli_store import add_store_commands
from actors._results import RunResult
from actors._subflow import DEFAULT_MAX_NESTING, Workflows
from actors._waits import is_wait, wait_note
from actors._workflow import Step, Workflow
from actors.errors import DefinitionError, StepSyntaxError, UnknownHostFunction

__all__ = ("main", "mermaid")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = _parser().parse_args(argv)
    configure_logging(json_logs=args.json, quiet=args.quiet)
    try:
        status: int = args.handler(args)
    except BadInput as exc:
        say("bad_input", f"error: {exc}", json_logs=args.json)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        say("interrupted", "interrupted", json_logs=args.json)
        return EXIT_INTERRUPTED
    return status


def configure_logging(*, json_logs: bool, quiet: bool) -> None:
    """structlog to stderr: JSON lines with ``--json``, else the console renderer."""
    renderer: Any
    if json_logs:
        stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
        renderer = structlog.processors.JSONRenderer()
        extra: list[Any] = [structlog.processors.format_exc_info]
    else:
        stamp = structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False)
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), sort_keys=False)
        extra = []
    structlog.configure(
        processors=[structlog.processors.add_log_level, stamp, *extra, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.WARNING if quiet else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


# -- commands ----------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    workflow = load_workflow(args.file)
    event = load_event(text=args.event, file=args.event_file)
    context = load_json_object(args.context, option="--context") if args.context else {}
    for key in ("event", "run"):
        if key in context:
            raise BadInput(f"--context: key {key!r} is reserved (the engine sets ctx.{key})")
    api = load_api(args.api) if args.api else {}
    workflows = [load_workflow(path) for path in args.with_files]
    if args.key is not None and args.db is None:
        raise BadInput("--key: needs --db (keys are looked up in the run store)")
    for option in ("timeout", "step_timeout"):
        value = getattr(args, option)
        if value is not None and not value > 0:
            flag = "--" + option.replace("_", "-")
            raise BadInput(f"{flag}: must be a positive number of seconds, got {value}")
    try:
        result = _run_workflow(args, workflow, event, api, context, workflows)
    except StepSyntaxError as exc:
        return _syntax_error(args, exc)
    if result.status == "completed":
        print(_output_json(result.output))
        return EXIT_OK
    messages = failure_messages(result)
    if result.status == "cancelled":
        messages.append(timeout_message(result, args.timeout))
    for event, text, fields in messages:
        say(event, text, json_logs=args.json, **fields)
    return EXIT_FAILED


def _run_workflow(
    args: argparse.Namespace,
    workflow: Workflow,
    event: Any,
    api: Mapping[str, Any],
    context: dict[str, Any],
    workflows: Sequence[Workflow],
) -> RunResult:
    """Run the workflow; a step whose JS does not compile raises StepSyntaxError."""
    try:
        return anyio.run(
            lambda: run(
                workflow,
                event=event,
                api=api,
                context=context,
                timeout=args.timeout,
                step_timeout=args.step_timeout,
                store=args.db,
                key=args.key,
                workflows=workflows,
            )
        )
    except BaseExceptionGroup as group:  # raised inside the engine's task group
        match, _ = group.split(StepSyntaxError)
        if match is None:
            raise
        first = match.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _output_json(value: Any) -> str:
    """JSON for stdout: readable non-ASCII, lone surrogates escaped, ASCII if stdout needs it."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(value, indent=2, default=str)
    return text


def _validate(args: argparse.Namespace) -> int:
    configure_logging(json_logs=args.json, quiet=True)  # no worker lifecycle lines
    workflow = load_workflow(args.file)
    api = load_api(args.api) if args.api else {}
    if args.api:
        try:
            check_capabilities(workflow, api)
        except UnknownHostFunction as exc:
            say("unknown_host_function", f"{args.file}: {exc}", json_logs=args.json)
            return EXIT_BAD_INPUT
    if _check_sub_workflows(args, workflow) is not None:
        return EXIT_BAD_INPUT
    try:  # every step's JS and JS expression compiled in a sandbox worker, never here
        anyio.run(lambda: workflow.check(api=api))
    except StepSyntaxError as exc:
        return _syntax_error(args, exc)
    steps = len(workflow.steps)
    print(f"ok: {args.file}: workflow {workflow.name!r}, {steps} step{'s' * (steps != 1)}")
    return EXIT_OK


def _check_sub_workflows(args: argparse.Namespace, workflow: Workflow) -> int | None:
    """Check the workflows ``workflow`` runs as sub-workflows: unknown names (only when
    ``--with`` gives the registry), cycles and the nesting bound, as far as known."""
    called = sorted({s.workflow for s in workflow.steps.values() if s.workflow is not None})
    if not called:
        return None
    try:
        others = Workflows([], max_nesting=DEFAULT_MAX_NESTING)
        for other in [load_workflow(path) for path in args.with_files]:
            others.register(other)
        others.check(workflow, strict=bool(args.with_files))
    except DefinitionError as exc:
        say("bad_sub_workflow", f"{args.file}: {exc}", json_logs=args.json)
        return EXIT_BAD_INPUT
    if not args.with_files:
        names = ", ".join(repr(name) for name in called)
        text = f"note: runs workflow(s) {names}; give their files with --with to check them"
        print(text, file=sys.stderr)
    return None


def _syntax_error(args: argparse.Namespace, exc: StepSyntaxError) -> int:
    """Say which step's JS does not compile, where, and show the line."""
    fields = {"step": exc.step, "line": exc.line, "column": exc.column}
    fields["source_line"] = exc.source_line
    say("syntax_error", f"{args.file}: {exc}", json_logs=args.json, **fields)
    return EXIT_BAD_INPUT


def _graph(args: argparse.Namespace) -> int:
    print(mermaid(load_workflow(args.file)))
    return EXIT_OK


# -- Mermaid -----------------------------------------------------------------------------

_PLAIN_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MERMAID_KEYWORDS = frozenset(
    {"end", "graph", "subgraph", "flowchart", "direction", "style", "class", "classdef"}
    | {"click", "linkstyle", "call", "href"}
)


def mermaid(workflow: Workflow) -> str:
    """The workflow's DAG as a Mermaid flowchart: ``flowchart TD`` and ``a --> b`` edges.

    Step names that are not plain identifiers (or are Mermaid keywords) get an
    ``s<n>`` id and their name as a quoted label. A ``for_each`` step is drawn as a
    subroutine ``[[...]]``, a waiting step (``sleep``, ``wait_for``...) and a
    sub-workflow step as stadiums ``([...])``, a step with ``when`` as a hexagon
    ``{{...}}``; their expressions, what a step waits for, the workflow a step runs
    and a ``run_if`` rule are lines of the label, and the edges into a
    step with a ``run_if`` rule are dotted.
    """
    ids = {name: _node_id(name, n) for n, name in enumerate(workflow.steps)}
    linked = {up for step in workflow.steps.values() for up in step.after}
    lines = ["flowchart TD"]
    for name, step in workflow.steps.items():
        notes = _notes(step)
        if ids[name] != name or notes:
            opening, closing = _shape(step)
            label = "<br/>".join(_label(text) for text in (name, *notes))
            lines.append(f'    {ids[name]}{opening}"{label}"{closing}')
        elif not step.after and name not in linked:
            lines.append(f"    {name}")
    for name, step in workflow.steps.items():
        arrow = "-->" if step.run_if == "all_completed" else "-.->"
        lines.extend(f"    {ids[up]} {arrow} {ids[name]}" for up in step.after)
    return "\n".join(lines)


def _notes(step: Step) -> list[str]:
    notes = []
    if step.for_each is not None:
        parallel = f" (max {step.max_parallel} at once)" if step.max_parallel else ""
        notes.append(f"for each: {_one_line(step.for_each)}{parallel}")
    if step.when is not None:
        notes.append(f"when: {_one_line(step.when)}")
    if step.workflow is not None:
        notes.append(f"runs workflow: {step.workflow}")
    if step.run_if != "all_completed":
        notes.append(f"run if: {step.run_if}")
    waits = wait_note(step)
    if waits is not None:
        notes.append(waits)
    return notes


def _one_line(expression: str) -> str:
    return " ".join(expression.split())


def _shape(step: Step) -> tuple[str, str]:
    if step.for_each is not None:
        return "[[", "]]"
    if is_wait(step) or step.workflow is not None:
        return "([", "])"
    if step.when is not None:
        return "{{", "}}"
    return "[", "]"


def _node_id(name: str, index: int) -> str:
    plain = _PLAIN_ID.fullmatch(name) and name.lower() not in _MERMAID_KEYWORDS
    return name if plain else f"s{index}"


def _label(name: str) -> str:
    for char, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        name = name.replace(char, entity)
    return name


# -- the parser --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="log JSON lines to stderr")
    common.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser = argparse.ArgumentParser(
        prog="actors",
        description="Run, check and draw workflows of sandboxed JavaScript steps.",
        epilog="exit status: 0 ok, 1 the run failed, 2 bad input",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    run_cmd = commands.add_parser("run", parents=[common], help="run a workflow file")
    run_cmd.add_argument("file", metavar="FILE", help="workflow file (.json or .toml)")
    event = run_cmd.add_mutually_exclusive_group()
    event.add_argument("--event", metavar="JSON", help="the trigger event (ctx.event), as JSON")
    event.add_argument(
        "--event-file", metavar="F", help="read the event from a JSON (or .toml) file; - is stdin"
    )
    run_cmd.add_argument(
        "--api",
        metavar="MODULE:ATTR",
        help="a dict of host functions to expose to the steps, e.g. examples.hosts:API",
    )
    run_cmd.add_argument(
        "--context", metavar="JSON", help='extra ctx entries, e.g. \'{"config": {"x": 1}}\''
    )
    run_cmd.add_argument(
        "--timeout", type=float, metavar="S", help="cancel the run after S seconds (exit 1)"
    )
    run_cmd.add_argument(
        "--step-timeout",
        type=float,
        metavar="S",
        help="default timeout of each step attempt, in seconds (default 30)",
    )
    run_cmd.add_argument("--db", metavar="F", help="record the run in this SQLite store file")
    run_cmd.add_argument("--key", metavar="K", help="idempotency key (needs --db): run once")
    _with_option(run_cmd)
    run_cmd.set_defaults(handler=_run)

    validate = commands.add_parser("validate", parents=[common], help="check a workflow file")
    validate.add_argument("file", metavar="FILE")
    validate.add_argument(
        "--api",
        metavar="MODULE:ATTR",
        help="the host functions the steps will get (a step may not redeclare their names)",
    )
    _with_option(validate)
    validate.set_defaults(handler=_validate)

    graph = commands.add_parser("graph", parents=[common], help="print the DAG as Mermaid")
    graph.add_argument("file", metavar="FILE")
    graph.set_defaults(handler=_graph)
    add_store_commands(commands, common)
    return parser


def _with_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--with",
        dest="with_files",
        action="append",
        default=[],
        metavar="FILE",
        help="a workflow file the steps may run as a sub-workflow (repeatable)",
    )

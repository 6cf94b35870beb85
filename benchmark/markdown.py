"""What the benchmark scripts' markdown reports share: tables, the command, the load, writing."""

import os
import sys

from tabulate import tabulate


def markdown_table(rows):
    """Rows of dicts as one GitHub markdown table, numbers to 4 significant digits."""
    headers = list(dict.fromkeys(key for row in rows for key in row))
    body = [[_cell(row.get(key, "")) for key in headers] for row in rows]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def command_line(script, argv):
    """The report's line naming the command that made it (``python -m benchmark.<script>``)
    and the commit of the code that ran it."""
    from .harness import source_commit

    arguments = sys.argv[1:] if argv is None else argv
    return (f"Command: `python -m benchmark.{script} {' '.join(arguments)}`, at commit "
            f"{source_commit() or 'unknown (not a git checkout)'}")


def load_sentence(load_before):
    """The machine's load at the start (`load_before`) and now, and what it says of timings:
    a load above the CPU count means other work shared the machine."""
    load_after, cpus = os.getloadavg()[0], os.cpu_count()
    verdict = ("other work shared the machine, timings are inflated"
               if max(load_before, load_after) > cpus else "no more than the machine's CPUs")
    return (f"Load average (1 min) {load_before:.1f} at the start and {load_after:.1f} at the "
            f"end, for {cpus} CPUs: {verdict}.")


def write_report(path, sections):
    """Join `sections` into one markdown report, write it to `path` and print it."""
    report = "\n\n".join(sections)
    with open(path, "w") as file:
        file.write(report + "\n")
    print(report)

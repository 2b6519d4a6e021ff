"""Write the generated tables of docs/results.md from the comparisons' results.json files.

docs/results.md marks each generated block with the JSON it comes from::

    <!-- results: docs/results/ml-1m.json -->
    ... written by this script ...
    <!-- end results -->

README.md holds one short summary of one of them between ``<!-- summary: docs/results/....json -->`` and
``<!-- end summary -->``: the mean over seeds of a few columns per model (``models=a,b`` after the
file name picks the rows). Each JSON file is a copy of the ``results.json`` that ``mamo-l2l compare``
wrote (the command that made it is inside). The block is rendered by the same code that writes compare's own results.md
(mamo_l2l/api/report.py), its headings moved two levels down.

    python scripts/results_tables.py            # rewrite every block of docs/results.md and README.md
    python scripts/results_tables.py --check    # exit 1 if a block differs from its JSON
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from mamo_l2l.api.report import format_markdown, markdown_table

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- results: (?P<src>[^ ]+) -->\n)(?P<body>.*?)(<!-- end results -->)", re.S)
SUMMARY = re.compile(r"(<!-- summary: (?P<src>[^ ]+)(?: models=(?P<models>[^ ]+))? -->\n)(?P<body>.*?)"
                     r"(<!-- end summary -->)", re.S)
#: the summary's columns: (heading, metric, scenario)
SUMMARY_COLUMNS = (("MAE warm", "mae", "warm"), ("MAE new users", "mae", "user_cold"),
                   ("MAE new items", "mae", "item_cold"), ("nDCG@3 warm", "ndcg@3", "warm"),
                   ("nDCG@3 new items", "ndcg@3", "item_cold"), ("Recall@10 warm", "catalogue_recall@10", "warm"),
                   ("Recall@10 new items", "catalogue_recall@10", "item_cold"))


def render(results: dict) -> str:
    """compare's report without its title, headings two levels down."""
    lines = format_markdown(results).splitlines()[1:]
    out = ["##" + line if line.startswith("#") else line for line in lines]
    return "\n".join(out).strip("\n") + "\n"


def summary(results: dict, models=None) -> str:
    """Mean over seeds of ``SUMMARY_COLUMNS`` per model (``models``, default all), one markdown table."""
    def cell(model, metric, scenario):
        stat = results["results"][model][scenario].get(metric)
        mean = (stat or {}).get("mean")
        return "-" if mean is None or math.isnan(mean) else f"{mean:.4f}"
    rows = [[m, *(cell(m, metric, scen) for _, metric, scen in SUMMARY_COLUMNS)] for m in (models or results["models"])]
    seeds = ", ".join(map(str, results["seeds"]))
    return "\n".join([*markdown_table(["model", *(h for h, _, _ in SUMMARY_COLUMNS)], rows),
                      "", f"{results['dataset']}, seeds {seeds}, mean over seeds; the command, the spread and "
                          "the paired differences are in docs/results.md."]) + "\n"


def rewrite(text: str, repo: Path = REPO) -> str:
    """``text`` with every generated block rendered again from its JSON file."""
    def block(renderer):
        def one(match: re.Match) -> str:
            src = repo / match.group("src")
            if not src.is_file():
                raise SystemExit(f"a generated block names {match.group('src')}, which does not exist")
            results = json.loads(src.read_text(encoding="utf-8"))
            picked = match.groupdict().get("models")
            body = renderer(results, picked.split(",")) if picked else renderer(results)
            return f"{match.group(1)}\n{body}\n{match.group(match.re.groups)}"
        return one
    return SUMMARY.sub(block(summary), BLOCK.sub(block(render), text))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--doc", type=Path, action="append",
                    help="a file with generated blocks (repeatable) [default: docs/results.md, README.md]")
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block is out of date")
    args = ap.parse_args(argv)
    stale = 0
    for doc in args.doc or [REPO / "docs" / "results.md", REPO / "README.md"]:
        text = doc.read_text(encoding="utf-8")
        new = rewrite(text)
        blocks = len(BLOCK.findall(text)) + len(SUMMARY.findall(text))
        if args.check:
            stale += new != text
            print(f"{doc}: {blocks} generated blocks " + ("OUT OF DATE: run python scripts/results_tables.py"
                                                          if new != text else "up to date"))
        else:
            doc.write_text(new, encoding="utf-8")
            print(f"wrote {doc} ({blocks} generated blocks)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

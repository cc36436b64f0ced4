"""Headless soak: ``imer run --loop`` on the demo clip for an hour, sampled every 30 s.

Starts ``imer run --source <clip> --loop --quiet --duration <s>`` as a child
process and records, every ``--every`` seconds: the resident memory of the
child (and its children), its CPU seconds, the predictions written to
``predictions.jsonl`` in that interval, the share of rows whose text modality
was failing, and the 1-minute load average.  Writes a CSV and prints a summary
(RSS at the first sample after warm-up, at the end, growth, predictions/s).

    nice -n 10 python benchmarks/bench_headless_soak.py --minutes 60 --out /work/cache/soak13
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("t_s", "rss_mb", "cpu_s", "rows", "predictions", "predictions_per_s", "text_failing_share",
          "vision_failing_share", "load_1min", "load_5min")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--source", default=str(ROOT / "assets" / "demo" / "demo_clip.mp4"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "headless_soak"),
                        help="folder for the CSV, the summary and the session folder")
    parser.add_argument("extra", nargs="*", help="further arguments for `imer run` (after --)")
    return parser.parse_args(argv)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_and_cpu(pid: int) -> tuple[float, float]:
    """Resident MB and user+system CPU seconds of ``pid`` and its descendants."""
    rss_kb, ticks = 0, 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                rss_kb += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, StopIteration):
            continue
    return rss_kb / 1024, ticks / os.sysconf("SC_CLK_TCK")


class JsonlTail:
    """Reads the complete lines appended to ``predictions.jsonl`` since the last call."""

    def __init__(self, sessions: Path) -> None:
        self.sessions = sessions
        self.offset = 0
        self.path: Path | None = None

    def read(self) -> list[dict]:
        if self.path is None:
            found = sorted(self.sessions.glob("*/predictions.jsonl"))
            if not found:
                return []
            self.path = found[0]
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


def failing_share(records: list[dict], modality: str) -> float:
    if not records:
        return float("nan")
    failing = sum(r["modalities"].get(modality, {}).get("state") == "failing" for r in records)
    return failing / len(records)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    sessions = out / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    seconds = 60.0 * args.minutes
    command = [sys.executable, "-m", "app.cli", "run", "--source", args.source, "--loop", "--quiet",
               "--duration", str(seconds), "--out", str(sessions), *args.extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = (out / "imer_run.log").open("w")
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    tail = JsonlTail(sessions)
    rows: list[dict] = []
    started = time.monotonic()
    with (out / "soak.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        total_rows = total_predictions = 0
        previous = started
        try:
            while child.poll() is None:
                time.sleep(max(0.0, previous + args.every - time.monotonic()))
                now = time.monotonic()
                if child.poll() is not None:
                    break
                rss, cpu = rss_and_cpu(child.pid)
                records = tail.read()
                predictions = sum(r["probabilities"] is not None for r in records)
                total_rows += len(records)
                total_predictions += predictions
                load1, load5, _ = os.getloadavg()
                row = {"t_s": round(now - started, 1), "rss_mb": round(rss, 1), "cpu_s": round(cpu, 1),
                       "rows": total_rows, "predictions": total_predictions,
                       "predictions_per_s": round(predictions / (now - previous), 3),
                       "text_failing_share": round(failing_share(records, "text"), 3),
                       "vision_failing_share": round(failing_share(records, "vision"), 3),
                       "load_1min": round(load1, 2), "load_5min": round(load5, 2)}
                previous = now
                rows.append(row)
                writer.writerow(row)
                handle.flush()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
        code = child.wait()
    log.close()
    summary = summarise(rows, code)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if code == 0 else 1


def summarise(rows: list[dict], exit_code: int) -> dict:
    """RSS after warm-up vs at the end, predictions/s over the run, load range."""
    if not rows:
        return {"exit_code": exit_code, "samples": 0}
    warm = next((r for r in rows if r["t_s"] >= 300), rows[0])
    last = rows[-1]
    span = last["t_s"] - rows[0]["t_s"]
    return {"exit_code": exit_code, "samples": len(rows), "duration_s": last["t_s"],
            "rss_first_mb": rows[0]["rss_mb"], "rss_at_5min_mb": warm["rss_mb"], "rss_end_mb": last["rss_mb"],
            "rss_max_mb": max(r["rss_mb"] for r in rows),
            "rss_growth_after_5min_mb": round(last["rss_mb"] - warm["rss_mb"], 1),
            "predictions": last["predictions"],
            "predictions_per_s": round((last["predictions"] - rows[0]["predictions"]) / span, 3) if span else None,
            "cpu_s": last["cpu_s"],
            "load_1min_min": min(r["load_1min"] for r in rows), "load_1min_max": max(r["load_1min"] for r in rows),
            "load_1min_mean": round(sum(r["load_1min"] for r in rows) / len(rows), 2)}


if __name__ == "__main__":
    raise SystemExit(run(parse_args(sys.argv[1:])))

"""A comparison as Markdown (pull requests, CI summaries) and as JUnit XML (CI test views).

Model output is untrusted text: Markdown escapes it so it can never render as HTML or break a
table, and JUnit strips the characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from decimal import ROUND_HALF_UP, Decimal

from harness.comparison.compare import Comparison, Delta, Pair, failed_checks
from harness.comparison.cost import amount, ratio_cells
from harness.grading.grader import GRADES
from harness.suite.prompts import arm

MAX_CASES = 20  # cases listed per direction in the Markdown summary
_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def percent(x: float) -> float:
    """A share (0-1) as a percentage to one decimal, halves up: 0.5625 -> 56.3. Text (`pct`)
    and the report's table columns (`reports.widgets.as_percent`) both round here, so one figure
    never reads 56.2% in a sentence and 56.3% in a table."""
    if not math.isfinite(x):
        return x * 100
    return float((Decimal(repr(x)) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal, everywhere: '53.1%'; '—' when unknown."""
    return "—" if x is None else f"{percent(x):.1f}%"


def pts(x: float) -> str:
    return f"{x * 100:+.1f}"


def interval(d: Delta) -> str:
    return f"[{d.low * 100:+.1f}, {d.high * 100:+.1f}]"


def shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md_text(text: str, limit: int = 160) -> str:
    """Untrusted text for a Markdown table cell: no HTML, no table breaks, no emphasis."""
    text = shorten(text, limit) or "(empty)"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#~])", r"\\\1", text)


def md_run_label(run: dict) -> str:
    """A run in the Markdown summary: its id and its arm, escaped (the report's run pickers name
    runs their own way, `reports.widgets.run_label`)."""
    return f"`{run['id']}` ({md_text(arm(str(run['model']), run.get('prompt_variant')), 80)})"


def markdown(c: Comparison) -> str:
    a, b = c.run_a, c.run_b
    lines = [
        f"## tuneval compare: {c.verdict}",
        "",
        f"Suite **{md_text(a['suite'])}** v{a['suite_version']}, {c.n} paired cases. "
        f"A = {md_run_label(a)}, B = {md_run_label(b)}.",
        "",
        f"**Verdict: {c.verdict}.** {md_text(c.explanation, 400)}. {c.mde_text()}.",
        "",
    ]
    if c.must_pass_broken:
        ids = ", ".join(f"`{md_text(i, 60)}`" for i in c.must_pass_broken)
        lines += [f"**Must-pass cases that stopped passing:** {ids}", ""]
    lines += ["| figure | A | B | Δ (points) | 95% CI |", "|---|---:|---:|---:|---|"]
    for name, d in (("pass rate (good or better)", c.pass_rate), ("better rate", c.better_rate)):
        lines.append(f"| {name} | {pct(d.a)} | {pct(d.b)} | {pts(d.delta)} | {interval(d)} |")
    lines += _rates_md(c)
    lines += _cost_md(c)
    if c.preference is not None:
        p = c.preference
        lines += [
            "",
            f"Pairwise preference (judge {md_text(p['judge'], 80)}, both orders): B wins "
            f"{p['wins']}, ties {p['ties']} ({p['inconsistent']} order-inconsistent), loses "
            f"{p['losses']}; B preferred {pct(p['share'])} [{pct(p['low'])}, {pct(p['high'])}], "
            f"sign test p = {p['p_value']:.3g}.",
        ]
    lines += [
        "",
        f"Exact McNemar on pass/fail: {c.mcnemar['b01']} fail→pass, {c.mcnemar['b10']} "
        f"pass→fail, p = {c.mcnemar['p_value']:.3g}. Sign test on grades: "
        f"{c.sign_test['improved']} up, {c.sign_test['regressed']} down, "
        f"p = {c.sign_test['p_value']:.3g}.",
        "",
        "| A \\ B | " + " | ".join(GRADES) + " |",
        "|---|" + "---:|" * len(GRADES),
    ]
    for g in GRADES:
        lines.append(f"| **{g}** | " + " | ".join(str(c.transitions[g][h]) for h in GRADES) + " |")
    if c.criteria:
        lines += [
            "",
            "| criterion | section | A | B | Δ (points) | 95% CI |",
            "|---|---|---:|---:|---:|---|",
        ]
        for cid, d in c.criteria.items():
            sec = c.sections.get(cid, "")
            lines.append(
                f"| {md_text(cid, 60)} | {sec} | {pct(d.a)} | {pct(d.b)} | "
                f"{pts(d.delta)} | {interval(d)} |"
            )
    for change in ("regressed", "improved"):
        lines += _cases_md(c.changed(change), change)
    if c.unpaired["only_a"] or c.unpaired["only_b"]:
        lines += [
            "",
            f"Unpaired cases (left out): {len(c.unpaired['only_a'])} only in A, "
            f"{len(c.unpaired['only_b'])} only in B.",
        ]
    lines += [f"\n> warning: {md_text(w, 300)}" for w in c.warnings]
    return "\n".join(lines) + "\n"


def _rates_md(c: Comparison) -> list[str]:
    """k samples per case: pass@k, pass^k and flaky cases on each side, and the deciding test."""
    s = c.sampling
    if s is None:
        return []
    k = min(s["k_a"], s["k_b"])
    out = [
        "",
        f"k samples per case (A {s['k_a']}, B {s['k_b']}); the verdict's test is the sign-flip "
        f"test on per-case pass shares, p = {s['p_value']:.3g}.",
        "",
        "| figure | A | B | Δ (points) | 95% CI |",
        "|---|---:|---:|---:|---|",
    ]
    for name in (f"pass@{k}", f"pass^{k}"):
        f = s[name]
        out.append(
            f"| {name} | {pct(f['a'])} | {pct(f['b'])} | {pts(f['delta'])} | "
            f"[{f['low'] * 100:+.1f}, {f['high'] * 100:+.1f}] |"
        )
    out.append(f"| flaky cases | {s['flaky']['a']} | {s['flaky']['b']} | | |")
    return out


def _cost_md(c: Comparison) -> list[str]:
    if not c.cost:
        return []
    out = [
        "",
        "| cost per case (mean) | A | B | B / A | 95% CI | cases |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for line in c.cost:
        ratio, ci = ratio_cells(line)
        out.append(
            f"| {line.label} | {amount(line, line.a)} | {amount(line, line.b)} | {ratio} | "
            f"{ci} | {line.n} |"
        )
    return out


def _cases_md(pairs: list[Pair], change: str) -> list[str]:
    if not pairs:
        return []
    out = [
        "",
        f"### {change.capitalize()} cases ({len(pairs)})",
        "",
        "| case | A → B | output A | output B | failed in B |",
        "|---|---|---|---|---|",
    ]
    for p in pairs[:MAX_CASES]:
        failed = "; ".join(failed_checks(p.b)) or "-"
        out.append(
            f"| {md_text(p.case_id, 60)} | {p.a['grade']} → {p.b['grade']} | "
            f"{md_text(p.a['output'])} | {md_text(p.b['output'])} | {md_text(failed)} |"
        )
    if len(pairs) > MAX_CASES:
        out.append(f"\n…and {len(pairs) - MAX_CASES} more (`tuneval compare --json` lists all).")
    return out


# --- JUnit ---------------------------------------------------------------------------------------


def xml_text(text: str) -> str:
    return _XML_BAD.sub("\ufffd", text)


def junit(c: Comparison, gate_failures: list[str] | None = None) -> str:
    """One testcase per paired case (a failure when its grade dropped) and one for the verdict
    (a failure when the gate fails). The gate's exit code, not the case failures, decides CI."""
    gate_failures = gate_failures or []
    cases = c.pairs
    n_fail = sum(1 for p in cases if p.change == "regressed") + (1 if gate_failures else 0)
    suite_name = f"tuneval.{c.run_a['suite']}"
    root = ET.Element("testsuites", name="tuneval gate")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(len(cases) + 1),
        failures=str(n_fail),
        errors="0",
        skipped="0",
    )
    props = ET.SubElement(ts, "properties")
    for key, value in (
        ("run_a", c.run_a["id"]),
        ("run_b", c.run_b["id"]),
        ("verdict", c.verdict),
        ("alpha", f"{c.alpha:g}"),
        ("mcnemar_p", f"{c.mcnemar['p_value']:.6g}"),
        ("sign_test_p", f"{c.sign_test['p_value']:.6g}"),
        ("mde", f"{c.mde:.6g}"),
    ):
        ET.SubElement(props, "property", name=key, value=xml_text(str(value)))
    verdict = ET.SubElement(ts, "testcase", classname=suite_name, name="verdict")
    if gate_failures:
        fail = ET.SubElement(
            verdict, "failure", message=xml_text("; ".join(gate_failures)), type="gate"
        )
        fail.text = xml_text(c.explanation)
    ET.SubElement(verdict, "system-out").text = xml_text(
        f"{c.verdict}: {c.explanation}. {c.mde_text()}."
    )
    must = set(c.must_pass_broken)
    for p in cases:
        tc = ET.SubElement(ts, "testcase", classname=suite_name, name=xml_text(p.case_id))
        if p.change == "regressed":
            kind = "must_pass" if p.case_id in must else "regressed"
            msg = f"{p.a['grade']} -> {p.b['grade']}"
            msg += " (must pass)" if kind == "must_pass" else ""
            fail = ET.SubElement(tc, "failure", message=msg, type=kind)
            fail.text = xml_text(
                f"output A: {shorten(p.a['output'], 500)}\n"
                f"output B: {shorten(p.b['output'], 500)}\n" + "\n".join(failed_checks(p.b))
            )
        else:
            ET.SubElement(tc, "system-out").text = f"{p.a['grade']} -> {p.b['grade']}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

"""The model card: one self-contained HTML page about one version of a model.

:func:`model_card` reads the registry (through its methods, values bound, never writing it)
and renders what the model is, which data shaped it, how it was evaluated, where it
is deployed, what changed since training and who did what. Every value from the
database is escaped with :func:`html.escape`; a fact that was not recorded is shown
as "not measured", never as 0. Pictures come from :mod:`dbml.integrations.plot` as inline SVG
(``data:`` images, so the page loads nothing); a picture that cannot be drawn is
replaced by a note saying why. :func:`export_card` writes the page to a path or an
fsspec URL, as EXPORT MODEL writes a model (:func:`dbml.registry.transfer.write_url`: whole or
not at all, an existing file is replaced).
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import duckdb
import pyarrow as pa

from dbml.errors import TransferError
from dbml.names import check_model_name

if TYPE_CHECKING:
    from dbml.statements.context import Context as Connection  # a statement's context, or a Connection: the same methods

__all__ = ["model_card", "export_card", "human_bytes", "AUDIT_ROWS"]

RUN_ROWS = 20  # EVALUATE runs listed on a card (a nightly job makes many)
AUDIT_ROWS = 50  # audit rows shown on a card; the rest are counted in a note
MISSING = '<span class="missing">not measured</span>'

_STYLE = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:62rem;padding:1rem;color:#1b1f23;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}h2{font-size:1.25rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
.lead{color:#57606a;margin:0 0 1rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td:first-child{white-space:nowrap}
table.facts th{width:13rem}
table.facts td{overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:.85rem ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa}
pre{padding:.5rem;white-space:pre-wrap;word-break:break-word;margin:0}
.missing{color:#8c959f;font-style:italic}
.note{color:#57606a;font-style:italic}
.flag{color:#b42318;font-weight:600}
figure{margin:.5rem 0 1rem}figure img{max-width:100%;height:auto;display:block}
figcaption{color:#57606a;font-size:.85rem}
nav a{margin-right:.8rem}
@media (max-width:40rem){body{padding:.5rem;font-size:14px}table.facts th{width:auto}}
@media print{body{max-width:none;padding:0;font-size:11pt}nav{display:none}
 section{break-inside:auto}figure,table{break-inside:avoid}h2{break-after:avoid}.scroll{overflow:visible}}
"""

_SECTIONS = [
    ("model", "What the model is"),
    ("data", "Which data shaped it"),
    ("evaluation", "How it was evaluated"),
    ("deployment", "Where it is deployed"),
    ("drift", "What changed since training"),
    ("audit", "Who did what"),
]


# -- small renderers -------------------------------------------------------------


def _e(value: Any) -> str:
    """A database value as escaped HTML text; None is "not measured"."""
    if value is None or value == "":  # an empty string in the registry is a fact not recorded
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"  # as SQL writes them
    if isinstance(value, float):
        return html.escape(_number(value))
    if isinstance(value, datetime):
        return html.escape(value.strftime("%Y-%m-%d %H:%M:%S") + " UTC")
    if isinstance(value, (dict, list)):
        return f"<code>{html.escape(json.dumps(value, default=str, ensure_ascii=False))}</code>"
    return html.escape(str(value))


def _number(x: float) -> str:
    if x != x:  # NaN
        return "NaN"
    if x == 0 or 1e-4 <= abs(x) < 1e6:
        return f"{x:.4g}" if abs(x) < 1 else f"{x:,.4f}".rstrip("0").rstrip(".")
    return f"{x:.3e}"


def human_bytes(n: int | None) -> str:
    """``40189`` -> ``39.2 KiB (40,189 bytes)``."""
    if n is None:
        return "not measured"
    size, unit = float(n), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{n:,} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({n:,} bytes)"


def _facts(rows: list[tuple[str, str]]) -> str:
    """A two-column table of (label, already escaped HTML)."""
    body = "".join(f"<tr><th scope=\"row\">{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="scroll"><table class="facts"><tbody>{body}</tbody></table></div>'


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table of already escaped cells."""
    head = "".join(f"<th scope=\"col\">{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# -- reading the registry --------------------------------------------------------


def _task(record: dict[str, Any]):
    """The task of the version (:mod:`dbml.tasks`), or None when unknown here."""
    from dbml.tasks import task_of

    return task_of(record.get("task"))


def _defaults(architecture: str) -> dict[str, Any]:
    """Every declared option's default (training options and the architecture's own)."""
    from dbml.options import TRAINING_OPTIONS

    defaults = {o.name: o.default for o in TRAINING_OPTIONS}
    try:
        from dbml.architectures import ARCHITECTURES

        arch = ARCHITECTURES.get(architecture.lower())
        defaults.update({o.name: o.default for o in (arch.options if arch else ())})
    except Exception:  # an architecture that cannot be loaded here: show every option instead
        pass
    return defaults


# -- pictures --------------------------------------------------------------------


def _picture(draw: Callable[[], Any], caption: str) -> str:
    """A figure from :mod:`dbml.integrations.plot` as an inline SVG image, or a note saying why not."""
    try:
        from dbml.integrations import plot
    except ImportError as err:
        return _note(f"{caption}: no picture (dbml.integrations.plot is not available: {err})")
    fig = None
    try:
        drawn = draw()
        fig = drawn if hasattr(drawn, "savefig") else getattr(drawn, "figure", None)
        if fig is None:
            return _note(f"{caption}: no picture")
        svg = plot.figure_svg(fig)
        data = svg.encode("utf-8") if isinstance(svg, str) else bytes(svg)
        src = "data:image/svg+xml;base64," + base64.b64encode(data).decode("ascii")
    except Exception as err:  # a picture never stops the card; say why it is missing
        return _note(f"{caption}: no picture ({type(err).__name__}: {err})")
    finally:
        if fig is not None:
            try:
                import matplotlib.pyplot as plt

                plt.close(fig)
            except Exception:
                pass
    alt = html.escape(caption, quote=True)
    return f'<figure><img src="{src}" alt="{alt}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _plot(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        from dbml.integrations import plot

        return getattr(plot, name)(*args, **kwargs)

    return call


# -- sections --------------------------------------------------------------------


def _section_model(conn: "Connection", rec: dict[str, Any], functions: list[str] | None) -> str:
    features = rec.get("features") or []
    labels = rec.get("labels")
    defaults = _defaults(rec["architecture"])
    changed = {k: v for k, v in (rec.get("options") or {}).items() if k not in defaults or defaults[k] != v}
    libs = rec.get("library_versions") or {}
    task = _task(rec)
    foreign = task is not None and task.foreign  # a graph made elsewhere: no training facts
    facts = [
        ("Model", _e(rec["model"])),
        ("Version", _e(rec["version"])),
        ("Family (architecture)", _e(rec["architecture"])),
        ("Task", _e(rec["task"])),
        ("Target", _e(rec.get("target")) if rec.get("target") is not None
         else MISSING if foreign else '<span class="missing">none (unsupervised)</span>'),
        ("Target type", _e(rec.get("target_type")) if rec.get("target") is not None else '<span class="missing">none</span>'),
        ("Labels", ", ".join(_e(x) for x in labels) if labels else '<span class="missing">none</span>'),
        ("Functions it offers", ", ".join(f"<code>{_e(f)}</code>" for f in functions) if functions else MISSING),
        ("Created", f"{_e(rec.get('created_at'))} by {_e(rec.get('created_by'))}"),
        ("ONNX size", html.escape(human_bytes(rec.get("onnx_size")))),
        ("ONNX sha256", f"<code>{_e(rec.get('onnx_sha256'))}</code>"),
        ("Device", _e(rec.get("device"))),
        ("Epochs run", _e(rec.get("epochs")) if rec.get("epochs") else MISSING),
        ("Training seconds", _e(float(rec["train_seconds"])) if rec.get("train_seconds") else MISSING),
        ("Parity error (|ONNX - torch|)", '<span class="missing">not measured (a foreign graph has no torch twin)</span>'
         if foreign and not rec.get("parity_error") else _e(rec.get("parity_error"))),
    ]
    facts += [(label, html.escape(text)) for label, text in (task.card_facts(rec) if task is not None else [])]
    held = (_json(rec.get("metrics")) or {}).get("ensemble") if isinstance(_json(rec.get("metrics")), dict) else None
    if isinstance(held, dict) and held.get("members"):
        first = held.get("first_member") if isinstance(held.get("first_member"), dict) else {}
        alone = "; ".join(f"{k} {v:.4g}" for k, v in first.items() if isinstance(v, (int, float)))
        facts.append(("Networks averaged (option ensemble)", html.escape(
            f"{held['members']}, from seeds {', '.join(str(s) for s in held.get('seeds') or [])}"
            + (f"; the first alone: {alone}" if alone else ""))))
    out = [_facts(facts)]
    out.append("<h3>Features</h3>")
    if features:
        out.append(_table(["#", "name", "kind", "SQL type"],
                          [[_e(i + 1), _e(f.get("name")), _e(f.get("kind")), _e(f.get("sql_type"))]
                           for i, f in enumerate(features)]))  # fmt: skip
    else:
        out.append(_note("no features recorded"))
    out.append("<h3>Options that differ from the defaults</h3>")
    if changed:
        out.append(_table(["option", "value", "declared default"],
                          [[_e(k), _e(v), _e(defaults[k]) if k in defaults else '<span class="missing">no default</span>']
                           for k, v in sorted(changed.items())]))  # fmt: skip
        out.append(_note("a declared default of 0 or 'auto' is resolved at training time (batch_size 0 picks from the row count), "
                         "so such an option is listed with the value it resolved to"))  # fmt: skip
    else:
        out.append(_note("every option has its default value"))
    out.append("<h3>Library versions</h3>")
    out.append(_table(["library", "version"], [[_e(k), _e(v)] for k, v in sorted(libs.items())]) if libs else _note("not recorded"))
    return "".join(out)


def _profile_rows(profile: dict[str, Any], features: list[dict[str, Any]]) -> list[list[str]]:
    from dbml.kinds import Kind, get_kind

    rows = []
    kinds = {f.get("name"): f.get("kind") for f in features}
    names = [f.get("name") for f in features] or list(profile)
    for name in names:
        p = profile.get(name)
        if not isinstance(p, dict):
            rows.append([_e(name), MISSING, MISSING, MISSING, MISSING])
            continue
        kind = get_kind(kinds.get(name) or p.get("kind")) or Kind()  # the words for its shape are the kind's
        parts = []
        for template, values, note in kind.card_shape(p):
            text = html.escape(template).format(*(_e(v) for v in values))
            parts.append(f'<span class="note">{text}</span>' if note else text)
        shape = "".join(parts) if parts else MISSING
        rows.append([_e(name), _e(p.get("kind")), _e(p.get("count")), _e(p.get("nulls")), shape])
    return rows


def _section_data(conn: "Connection", rec: dict[str, Any]) -> str:
    tables = rec.get("source_tables") or []
    facts = [
        ("Source tables", ", ".join(f"<code>{_e(t)}</code>" for t in tables) if tables else '<span class="missing">none recorded</span>'),
        ("Data fingerprint", f"<code>{_e(rec.get('data_fingerprint'))}</code>" if rec.get("data_fingerprint") else MISSING),
        ("Rows used", _e(rec.get("row_count")) if rec.get("row_count") else MISSING),
        ("Training rows", _e(rec.get("train_rows")) if rec.get("train_rows") else MISSING),
        ("Validation rows", _e(rec.get("validation_rows")) if rec.get("validation_rows") else MISSING),
        ("Parent version (fine-tuned from)",
         _e(rec["parent_version"]) if rec.get("parent_version") is not None else '<span class="missing">none (trained from scratch)</span>'),
    ]  # fmt: skip
    out = ["<h3>Source query</h3>", f"<pre>{html.escape(rec.get('source_sql') or '')}</pre>" if rec.get("source_sql") else MISSING]
    out.append(_facts(facts))
    out.append("<h3>Training profile</h3>")
    profile = rec.get("profile") or {}
    if profile:
        out.append(_table(["feature", "kind", "rows", "nulls", "shape (mean/std or top categories)"],
                          _profile_rows(profile, rec.get("features") or [])))  # fmt: skip
    else:
        out.append(_note("no training profile recorded (an imported model was not profiled)"))
    return "".join(out)


def _metrics_text(metrics: Any) -> str:
    metrics = _json(metrics)
    if isinstance(metrics, list):
        return "".join(_metrics_text(m) for m in metrics)
    if not isinstance(metrics, dict):
        return _e(metrics)
    parts = [f"{_e(k)} = {_e(v)}" for k, v in metrics.items() if not isinstance(v, (dict, list))]
    return "<div>" + "; ".join(parts) + "</div>"


def _section_baseline(rec: dict[str, Any]) -> str:
    """The simple models measured on the same validation rows (``metrics.baseline``), and
    whether the network beats them, in words."""
    from dbml.summary import versus

    simple = (rec.get("metrics") or {}).get("baseline")
    out = ["<h3>Against simple models (same validation rows)</h3>"]
    if not isinstance(simple, dict) or not simple:
        out.append(_note("no baseline recorded (a version trained before baselines, an imported model, or a task without one)"))
        return "".join(out)
    rows = []
    for name, figures in simple.items():
        if not isinstance(figures, dict):
            continue
        what = figures.get("model") or name.replace("_", " ")
        shown = "; ".join(f"{_e(k)} = {_e(v)}" for k, v in figures.items() if k != "model" and not isinstance(v, (dict, list)))
        rows.append([_e(what), shown])
    out.append(_table(["baseline", "its metrics"], rows))
    said = versus(rec.get("task"), rec.get("metrics"))
    if said:
        out.append(_note(said))
    return "".join(out)


def _section_evaluation(conn: "Connection", rec: dict[str, Any], has_log: bool) -> str:
    model, version = rec["model"], rec["version"]
    out = ["<h3>Validation metrics at training time</h3>"]
    metrics = {k: v for k, v in (rec.get("metrics") or {}).items() if not isinstance(v, (dict, list))}
    if metrics:
        out.append(_table(["metric", "value"], [[_e(k), _e(v)] for k, v in metrics.items()]))
    else:
        out.append(_note("no validation metrics recorded"))
    out.append(_section_baseline(rec))
    out.append("<h3>Training curves</h3>")
    if has_log:
        out.append(_picture(lambda: _plot("training_curves")(conn, model, version), f"training curves of {model} version {version}"))
    else:
        out.append(_note("no training log: this version was not trained here (it was imported), so there are no curves"))
    out.append("<h3>Stored EVALUATE runs</h3>")
    runs = conn.registry.evaluation_runs(model, version)
    if runs is None:
        out.append(_note("this database stores no EVALUATE runs (its registry predates the evaluation history)"))
        return "".join(out)
    if not runs:
        out.append(_note("no EVALUATE MODEL run of this version is stored"))
        return "".join(out)
    out.append(_table(["run", "when", "who", "source", "rows", "metrics"],
                      [[_e(r["run_id"]), _e(r["run_at"]), _e(r["who"]), f"<pre>{html.escape(r['source_sql'] or '')}</pre>",
                        _e(r.get("rows")), _metrics_text(r["metrics"])] for r in runs[:RUN_ROWS]]))  # fmt: skip
    if len(runs) > RUN_ROWS:
        out.append(_note(f"the newest {RUN_ROWS} of {len(runs)} runs; dbml.evaluation_runs holds them all"))
    pictured = [r for r in runs if r.get("curves") is not None]
    latest = pictured[0] if pictured else runs[0]  # the newest run that stored pictures' data
    out.append(f"<h3>Pictures of run {_e(latest['run_id'])}"
               + (" (the latest)" if latest is runs[0] else " (the latest with pictures; later runs used by or confusion)")
               + "</h3>")  # fmt: skip
    if latest.get("curves") is None:
        out.append(_note("no stored run has data for pictures (runs with by or confusion store none)"))
    else:
        out.append(_picture(lambda: _plot("evaluation")(conn, model, version, run_id=latest["run_id"]),
                            f"evaluation run {latest['run_id']} of {model} version {version}"))  # fmt: skip
    return "".join(out)


def _section_deployment(conn: "Connection", rec: dict[str, Any]) -> str:
    model, version = rec["model"], rec["version"]
    aliases = conn.registry.aliases(model)
    out = ["<h3>Aliases now</h3>"]
    if aliases:
        out.append(_table(["alias", "version", "set at", "set by"],
                          [[_e(a["alias"]) + (" <strong>(this version)</strong>" if a["version"] == version else ""),
                            _e(a["version"]), _e(a["set_at"]), _e(a["set_by"])] for a in aliases]))  # fmt: skip
    else:
        out.append(_note("no alias points at any version of this model; a bare name scores with the newest version"))
    moves = conn.registry.audit_rows(model, "ALTER")
    out.append("<h3>Alias history</h3>")
    if moves:
        rows = []
        for m in moves:
            d = _json(m["detail"]) or {}
            d = d if isinstance(d, dict) else {}
            new = d.get("version")
            rows.append([_e(m["logged_at"]), _e(m["who"]), _e(d.get("alias")),
                         _e(d.get("previous")) if d.get("previous") is not None else '<span class="missing">unset</span>',
                         _e(new) if new is not None else '<span class="missing">removed</span>'])  # fmt: skip
        out.append(_table(["when", "who", "alias", "from version", "to version"], rows))
    else:
        out.append(_note("no alias was ever set"))
    return "".join(out)


def _section_drift(conn: "Connection", rec: dict[str, Any]) -> str:
    model, version = rec["model"], rec["version"]
    runs = conn.registry.monitor_runs(model, version)
    if runs is None:
        return _note("this database stores no MONITOR runs")
    if not runs:
        return _note("no MONITOR MODEL run of this version is stored: drift was not measured")
    latest = runs[0]
    # drifted first, then by PSI, highest first (not measured last), then by name
    results = sorted(conn.registry.monitor_results(latest["run_id"]), key=lambda r: (
        {True: 0, False: 1}.get(r["drift"], 2), r["psi"] is None, -(r["psi"] or 0.0), r["feature"]))  # fmt: skip
    out = [f"<h3>Latest MONITOR run ({_e(latest['run_id'])})</h3>",
           _facts([("When", _e(latest["run_at"])), ("Who", _e(latest["who"])), ("Source", f"<pre>{html.escape(latest['source_sql'] or '')}</pre>"),
                   ("PSI threshold", _e(latest["threshold"])), ("Drifted", _e(latest["drifted"]))])]  # fmt: skip
    rows = []
    for r in results:
        name = "(the prediction)" if r["feature"] == "__prediction__" else r["feature"]
        flag = '<span class="flag">drifted</span>' if r["drift"] else ("no" if r["drift"] is not None else MISSING)
        rows.append([_e(name), _e(r["kind"]), _e(r["psi"]), _e(r["null_rate_train"]), _e(r["null_rate_now"]), _e(r["rows"]), flag])
    out.append(_table(["feature", "kind", "PSI", "null rate (training)", "null rate (now)", "rows", "drift"], rows))
    out.append(_picture(lambda: _plot("drift")(conn, model, version), f"drift of {model} version {version} (latest run)"))
    if len(runs) > 1:
        out.append("<h3>Drift over time</h3>")
        out.append(_picture(lambda: _plot("drift_history")(conn, model, version), f"drift of {model} version {version} over {len(runs)} runs"))
    return "".join(out)


def _section_audit(conn: "Connection", rec: dict[str, Any]) -> str:
    model = rec["model"]
    total = conn.registry.audit_count(model)
    rows = conn.registry.audit_rows(model, limit=AUDIT_ROWS)
    if not rows:
        return _note("no audit rows")
    out = [_table(["when", "who", "action", "version", "detail"],
                  [[_e(r["logged_at"]), _e(r["who"]), _e(r["action"]), _e(r["version"]), _e(_json(r["detail"]))] for r in rows])]  # fmt: skip
    if total > len(rows):
        out.append(_note(f"showing the newest {len(rows)} of {total} audit rows; SELECT * FROM dbml.audit_log WHERE model = '{model}' lists all"))
    return "".join(out)


# -- the page --------------------------------------------------------------------


def model_card(conn: "Connection", model: str, version: int | None = None) -> str:
    """The HTML model card of one version (default: the version a bare name scores with).

    Raises:
        ModelNotFoundError / VersionNotFoundError: naming the model and version.
    """
    return _render(conn, conn.registry.get(check_model_name(model), version))


def _render(conn: "Connection", rec: dict[str, Any]) -> str:
    name, version = rec["model"], rec["version"]
    has_log = bool(conn.registry.training_log(name, version))
    try:
        functions = _describe_functions(conn, name, version)
    except Exception:  # DESCRIBE needs the blob's graph; a card still renders without it
        functions = None
    title = f"Model card: {name} version {version}"
    nav = "".join(f'<a href="#{sid}">{html.escape(heading)}</a>' for sid, heading in _SECTIONS)
    bodies = {
        "model": _section_model(conn, rec, functions),
        "data": _section_data(conn, rec),
        "evaluation": _section_evaluation(conn, rec, has_log),
        "deployment": _section_deployment(conn, rec),
        "drift": _section_drift(conn, rec),
        "audit": _section_audit(conn, rec),
    }
    sections = "".join(f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{bodies[sid]}</section>' for sid, heading in _SECTIONS)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><header><h1>{html.escape(title)}</h1>"
        f'<p class="lead">{_e(rec["architecture"])} {_e(rec["task"])} model; card made {html.escape(made)} by dbml.</p>'
        f"<nav>{nav}</nav></header><main>{sections}</main></body></html>\n"
    )


def _describe_functions(conn: "Connection", model: str, version: int) -> list[str] | None:
    """The SQL functions the version offers, as DESCRIBE MODEL lists them."""
    from dbml.outputs import offered

    return list(offered(conn.version_info(conn.registry.get(model, version))))


def export_card(conn: "Connection", model: str, version: int | None, url: str) -> duckdb.DuckDBPyRelation:
    """EXPORT MODEL CARD m [VERSION n] TO 'url': the card written to a path or fsspec URL.

    Like EXPORT MODEL, the file is written whole or not at all and an existing file is
    replaced. Returns one row (model, version, path, bytes).

    Raises:
        ModelNotFoundError / VersionNotFoundError: before anything is written.
        TransferError: an empty URL, or one that cannot be written (naming it).

    A written card leaves an audit row (action ``CARD``, with the URL and size).
    """
    from dbml.registry.transfer import write_url

    if not isinstance(url, str) or not url.strip():
        raise TransferError(f"the model card of '{model}' needs a path or URL to write to, got {url!r}")
    rec = conn.registry.get(check_model_name(model), version)
    _check_target(url)  # before drawing: a card takes seconds to render
    data = _render(conn, rec).encode("utf-8")
    write_url(url, data)
    # who wrote which card where: a card carries the lineage and metrics out of the database
    conn.registry.audit("CARD", rec["model"], rec["version"], {"url": url, "bytes": len(data)})
    schema = pa.schema([("model", pa.string()), ("version", pa.int32()), ("path", pa.string()), ("bytes", pa.int64())])
    row = {"model": rec["model"], "version": rec["version"], "path": url, "bytes": len(data)}
    return conn.db().from_arrow(pa.Table.from_pylist([row], schema=schema))


def _check_target(url: str) -> None:
    """Refuse a URL whose file system is unknown, or a local path whose folder is missing,
    before the card is drawn (:func:`dbml.registry.transfer.write_url` checks the write itself)."""
    import os

    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except Exception as err:  # fsspec raises ValueError, ImportError, ... for an unusable URL
        raise TransferError(f"cannot write '{url}': {type(err).__name__}: {err}") from None
    if isinstance(fs, LocalFileSystem):
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise TransferError(f"cannot write '{url}': the folder {folder} does not exist")

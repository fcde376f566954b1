"""The report's sections, one builder each: ``name(section, context)`` fills the section handed to it
(its id and title come from :data:`modelkin.report.SECTIONS`, where the builder of id ``x-y`` is
``x_y``) and returns it, or None when the result holds nothing for it."""

from __future__ import annotations

import math
import platform
import shlex

from .. import _engine
from .._util import num
from ..compare import COMPARE_SCHEMA
from . import plots
from .document import (
    CHANCE_Z,
    RELATED_Z,
    Context,
    Items,
    Para,
    Plot,
    Section,
    Table,
    bytes_text,
    confidence_sentence,
    hash_or_why,
    most_telling,
    value_text,
)

__all__ = [
    "alignment",
    "behavior",
    "distribution",
    "how_to_read",
    "inputs",
    "localisation",
    "metadata",
    "sigma",
    "similarity",
    "verdict",
    "weights",
]


def verdict(s: Section, ctx: Context) -> Section:
    """The verdict and its confidence in a sentence each, and the facts behind them."""
    result, tested = ctx.result, ctx.tested
    v = result.verdict
    s.blocks.append(Para(v.sentence, "verdict " + ("related" if v.related else v.relation)))
    s.blocks.append(Para(confidence_sentence(v, tested), "confidence"))
    facts: list[tuple[str, str]] = [("relation", v.relation)]
    if v.direction:
        facts.append(("direction", v.direction))
    if v.sigma is not None:
        lo, hi = v.sigma_ci or (math.nan, math.nan)
        facts.append(("σ of the added noise", f"{v.sigma:.4g} (95% CI {lo:.4g} – {hi:.4g})"))
    if v.scale is not None:
        facts.append(("scale factor", f"{v.scale:.6g}"))
    if v.cast_to:
        facts.append(("cast to", v.cast_to))
    facts.append(("model-level log10 p", num(v.log10_p, ".2f")))
    related = sum(e.related for e in result.evidence if e.informative)
    facts.append(("learnt matrices tested / related", f"{tested} / {related}"))
    if v.related:
        facts.append(("share of A's learnt parameters found in B", f"{v.shared_fraction:.1%}"))
    facts.append(("tensors renamed", str(v.renamed)))
    if v.layers_dropped:
        facts.append(("layers of A dropped", ", ".join(map(str, v.layers_dropped))))
    if v.layers_added:
        facts.append(("layers of B not in A", ", ".join(map(str, v.layers_added))))
    if v.vocab_rows:
        facts.append(("vocabulary rows", f"{v.vocab_rows[0]:,} → {v.vocab_rows[1]:,}"))
    if v.permuted_layers:
        facts.append(("MLP units permuted in layers", ", ".join(map(str, v.permuted_layers))))
    s.blocks.append(Table(("fact", "value"), tuple(facts), cls="facts"))
    if v.notes:
        s.blocks.append(Para("Notes:"))
        s.blocks.append(Items(tuple(v.notes)))
    return s


def how_to_read(s: Section, ctx: Context) -> Section:
    """How to read the report, for a reader who is not a statistician."""
    s.blocks.append(
        Para(
            "A is the reference checkpoint, B the one under suspicion. modelkin pairs every weight tensor of "
            "B with the tensor of A it corresponds to, by name or, when names were changed, by content, and "
            "looks at the difference d = b − a of each pair."
        )
    )
    s.blocks.append(
        Items(
            (
                "Kinship z: how far two tensors are more alike than unrelated ones would be, in standard "
                f"deviations. Unrelated tensors give |z| < {CHANCE_Z:g} almost always (the green band in "
                "the similarity plot); copies and fine-tunes give z in the tens or hundreds.",
                "log10 p: the same as a probability. log10 p = −20 means that a match this close would "
                "happen by chance once in 10^20 tries. The model-level value is corrected for the number "
                "of tensors tested, so many tensors cannot produce a match by luck.",
                "Kind of change, read from the shape of d: identical (d = 0); cast (B is A rounded to a "
                "shorter number format); quantized (bounded, flat-topped d); gaussian (a bell curve with "
                "no skew and no heavy tails, unrelated to the weights: noise added on purpose); scaled "
                "(d proportional to a); update (structured changes, as training makes); permuted (related "
                "once B's hidden units are put back in A's order); unrelated.",
                "The signature of a disguised copy (the Llama3-V case): gaussian d with the same σ in "
                "every tensor, whatever the tensor's own scale: a flat line in the σ plot. Training "
                "changes each tensor by a different amount and leaves heavy tails.",
                "Only learnt matrices count towards the verdict (filled markers; marked ✓ in the tables). "
                "Norm gains, biases, small or fixed tensors are shown (hollow markers) but can be equal in "
                "unrelated models.",
                "Configs, tokenizers and behaviour are supporting evidence: independent models can share "
                "them, so they never decide the verdict on their own.",
                "What this is not: a statement about intent or licences. It says how the numbers in the "
                "two files relate; the direction of a fine-tune (which came first) is a hint, not a proof.",
                "To check this report: the SHA-256 of every input file is listed under Inputs; rerun the "
                "command line shown there with the same modelkin version to get the same numbers.",
            )
        )
    )
    return s


def inputs(s: Section, ctx: Context) -> Section:
    """What was compared: paths, sizes and SHA-256 of the files, version, date, command line."""
    result, argv, now = ctx.result, ctx.argv, ctx.now
    rows = []
    for side, ck in (("A", result.diff.a), ("B", result.diff.b)):
        rows.append(
            (
                side,
                ck.path,
                ck.format,
                str(len(ck.files)),
                f"{len(ck.tensors):,}",
                f"{ck.n_params:,}",
                ", ".join(f"{k} {v:,}" for k, v in ck.dtypes.items()),
            )
        )
    s.blocks.append(
        Table(("", "path", "format", "files", "tensors", "parameters", "elements per dtype"), tuple(rows))
    )
    files = []
    for side, ck in (("A", result.diff.a), ("B", result.diff.b)):
        for f in ck.files:
            files.append((side, f.path, bytes_text(f.size), hash_or_why(f.path)))
    s.blocks.append(Table(("", "file", "size", "SHA-256"), tuple(files), numeric=frozenset({2}), cls="files"))
    run = [
        ("modelkin", _engine.__version__),
        ("report schema of the JSON output", COMPARE_SCHEMA),
        ("date (UTC)", now.strftime("%Y-%m-%d %H:%M:%S")),
        ("Python / platform", f"{platform.python_version()} / {platform.platform(terse=True)}"),
        ("threads / seconds", f"{result.diff.threads} / {result.diff.seconds:.2f}"),
    ]
    if argv is not None:
        run.insert(2, ("command line", shlex.join(argv)))
    s.blocks.append(Table(("run", ""), tuple(run), cls="facts"))
    return s


def distribution(s: Section, ctx: Context) -> Section:
    """The distribution of d for the most telling tensors: histograms and Q–Q plots."""
    result = ctx.result
    top = most_telling(result)
    names = ", ".join(e.pairing.a for e in top)
    why = (
        "d is zero (or has no spread) in every tensor: B holds A's values unchanged, nothing to draw"
        if not top
        else f"the {len(top)} most telling tensors ({names})"
    )
    s.blocks.append(
        Plot(
            "hist",
            f"Histogram of d at the sampled positions of {why}, with the normal curve of the same mean "
            "and σ. Added noise fits the curve; training leaves a sharp peak and heavy tails; "
            "quantization a flat top with hard edges.",
            "Histograms of d with fitted normal curves",
            plots.plot_histograms(top),
        )
    )
    s.blocks.append(
        Plot(
            "qq",
            "Q–Q plot: the sorted, standardised d against the quantiles of a normal distribution. Points on "
            "the diagonal: d is Gaussian; an S-shape or bent tails: it is not.",
            "Normal Q–Q plot of d",
            plots.plot_qq(top),
        )
    )
    return s


def sigma(s: Section, ctx: Context) -> Section:
    """σ of d across the model."""
    result, ordered = ctx.result, ctx.ordered
    s.blocks.append(
        Plot(
            "sigma",
            "σ of d for every tensor pair in model order (embeddings, layer by layer, then the head; log "
            "scale), coloured by kind; hollow markers are not counted. Grey dashes: σ of the tensor itself. "
            "A flat line whatever the tensor's own scale is the signature of noise added on purpose; a "
            "fine-tune changes each tensor by its own amount.",
            "σ of d per tensor across the model",
            plots.plot_sigma(result, ordered),
        )
    )
    return s


def similarity(s: Section, ctx: Context) -> Section:
    """The kinship z by layer."""
    ordered = ctx.ordered
    s.blocks.append(
        Plot(
            "similarity",
            f"Kinship z of every tensor pair by layer. Unrelated tensors fall in the green chance band "
            f"(|z| < {CHANCE_Z:g}); above the dashed line (z > {RELATED_Z:.2f}, p < 1e-6) a pair is "
            "related. A layer above the band shares A's weights; a layer inside it was replaced.",
            "Kinship z by layer against the chance band",
            plots.plot_similarity(ordered),
        )
    )
    return s


def localisation(s: Section, ctx: Context) -> Section:
    """What B shares with A, layer by layer."""
    result, ordered = ctx.result, ctx.ordered
    places = plots.find_places(result, ordered)
    v = result.verdict
    if v.related:
        s.blocks.append(
            Para(
                f"B holds {v.shared_fraction:.0%} of A's learnt parameters in related form. "
                f"Shared: {', '.join(v.shared) or 'none'}. Replaced: {', '.join(v.replaced) or 'none'}."
            )
        )
    else:
        s.blocks.append(Para("No place of A is shared with B (the verdict finds no kinship)."))
    s.blocks.append(
        Plot(
            "localisation",
            "A's places (embeddings, each layer, the head) from left to right: shared (every learnt matrix "
            "related to B's), replaced (none related), mixed, dropped (B has no counterpart), or not tested "
            "(no learnt matrix). Hatched: MLP hidden units permuted.",
            "Localisation of shared and replaced layers",
            plots.plot_localisation(places),
        )
    )
    s.blocks.append(
        Table(
            ("place in A", "state", "related / tested learnt matrices", "units permuted"),
            tuple(
                (p.label, p.state, f"{p.related} / {p.tested}", "yes" if p.permuted else "") for p in places
            ),
        )
    )
    return s


def alignment(s: Section, ctx: Context) -> Section:
    """How the tensors of B were matched to A's."""
    result, ordered = ctx.result, ctx.ordered
    al = result.alignment
    methods: dict[str, int] = {}
    for p in al.pairs:
        methods[p.method] = methods.get(p.method, 0) + 1
    s.blocks.append(
        Para(
            f"{len(al.pairs)} pairs ({', '.join(f'{n} by {k}' for k, n in methods.items()) or 'none'}), "
            f"{al.renamed} renamed; {len(al.only_a)} tensors only in A, {len(al.only_b)} only in B."
            + (
                f" {al.candidates} equal-shaped candidate pairs were searched by content (best z = "
                f"{num(al.best_z, '.1f')})."
                if al.candidates
                else ""
            )
        )
    )
    s.blocks.append(
        Plot(
            "alignment",
            "Each dot pairs a tensor of A (across, in model order) with a tensor of B (up, in B's file "
            "order), coloured by how they were matched. Crosses below the axis: A's tensors without a "
            "counterpart; plus signs left of it: B's. Dots along a diagonal: B keeps A's names and order; "
            "scattered dots: B's tensors were renamed or reordered and were matched by their content.",
            "Alignment map of tensors of A and B",
            plots.plot_alignment(result, ordered),
        )
    )
    rank = {e.pairing.a: i for i, e in enumerate(ordered)}
    odd = [
        (
            p.a,
            p.b,
            p.method,
            num(p.z, ".1f"),
            "yes" if p.renamed else "",
            "; ".join(
                x
                for x in (
                    f"rows {p.first_a}…{p.first_a + p.rows - 1} of A vs {p.first_b}… of B" if p.rows else "",
                    "B stores the transpose" if p.transposed else "",
                )
                if x
            ),
        )
        for p in sorted(al.pairs, key=lambda p: rank.get(p.a, len(rank)))
        if p.renamed or p.method != "name" or p.rows or p.transposed
    ]
    if odd:
        s.blocks.append(Para("Pairs not matched plainly by name:"))
        s.blocks.append(
            Table(
                ("tensor of A", "tensor of B", "method", "z", "renamed", "detail"), tuple(odd), frozenset({3})
            )
        )
    else:
        s.blocks.append(Para("Every pair was matched by its name."))
    for label, names in (("Only in A", al.only_a), ("Only in B", al.only_b)):
        if names:
            s.blocks.append(Para(f"{label} ({len(names)}):"))
            s.blocks.append(Items(tuple(names)))
    return s


def weights(s: Section, ctx: Context) -> Section:
    """The evidence per tensor pair, as a table."""
    result, ordered = ctx.result, ctx.ordered
    informative = [e for e in ordered if e.informative]
    kinds: dict[str, int] = {}
    for e in informative:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    tot = result.diff.totals()
    s.blocks.append(
        Para(
            f"{len(informative)} learnt matrices tested ({summary or 'none'}); "
            f"{len(ordered) - len(informative)} other tensors shown but not counted. "
            f"Over the whole model σ of d = {num(tot['d_std'])} "
            f"(per tensor {num(tot['d_std_min'])} … {num(tot['d_std_max'])}), "
            f"{100 * (tot['equal_fraction'] or 0) if tot['pairs'] else 0:.2f}% of values bit-equal, "
            f"1 − cos = {num(tot['one_minus_cosine'])}."
        )
    )
    header = (
        "tensor of A",
        "tensor of B",
        "matched by",
        "kind",
        "counts",
        "z",
        "log10 p",
        "Pearson r",
        "σ of d",
        "‖d‖/‖a‖",
        "1 − cos",
        "skew d",
        "ex. kurt d",
        "corr(d, a)",
        "equal",
    )
    rows = []
    for e in ordered:
        st = e.stats
        rows.append(
            (
                e.pairing.a,
                "=" if e.pairing.b == e.pairing.a else e.pairing.b,
                e.pairing.method,
                e.kind,
                "✓" if e.informative else "",
                num(e.z, ".1f"),
                num(e.log10_p, ".1f"),
                num(st.pearson, ".6f"),
                num(st.d.std),
                num(st.rel_change),
                num(st.one_minus_cosine),
                num(st.d.skewness, ".2f"),
                num(st.d.kurtosis, ".2f"),
                num(st.corr_d_a, ".2f"),
                f"{100 * st.equal_fraction:.1f}%" if math.isfinite(st.equal_fraction) else "–",
            )
        )
    s.blocks.append(Table(header, tuple(rows), numeric=frozenset(range(5, 15)), cls="evidence"))
    return s


def metadata(s: Section, ctx: Context) -> Section | None:
    """Configs and tokenizers; None when the result has no metadata evidence."""
    result = ctx.result
    m = result.metadata
    if m is None:
        return None
    s.blocks.append(Para(m.sentence))
    if m.files:
        s.blocks.append(
            Table(
                ("file", "SHA-256 in A", "SHA-256 in B", "byte-identical"),
                tuple(
                    (
                        f.name,
                        f.sha256_a or "(absent)",
                        f.sha256_b or "(absent)",
                        "yes" if f.identical else "no",
                    )
                    for f in m.files
                ),
                cls="files",
            )
        )
    else:
        s.blocks.append(
            Para("No config, tokenizer or chat-template files were found beside either checkpoint.")
        )
    if m.config is not None:
        c = m.config
        s.blocks.append(
            Para(
                f"config.json: {'equal' if c.equal else 'different'} over {c.compared} keys"
                + (f"; differing: {', '.join(c.differing)}" if c.differing else "")
                + (f"; only in A: {', '.join(c.only_a)}" if c.only_a else "")
                + (f"; only in B: {', '.join(c.only_b)}" if c.only_b else "")
                + "."
            )
        )
        if c.side_by_side:
            s.blocks.append(
                Table(
                    ("hyper-parameter", "A", "B"),
                    tuple((k, value_text(a), value_text(b)) for k, (a, b) in c.side_by_side.items()),
                )
            )
    if m.tokenizer is not None:
        t = m.tokenizer
        rows = [
            ("tokens (A / B)", f"{t.vocab_a:,} / {t.vocab_b:,}"),
            ("shared tokens", f"{t.shared_tokens:,} (Jaccard {num(t.jaccard, '.3f')})"),
            ("shared tokens with the same id", num(t.id_agreement, ".1%")),
            ("merges (A / B)", f"{value_text(t.merges_a)} / {value_text(t.merges_b)}"),
            ("merges identical, in order", value_text(t.merges_identical)),
            ("leading merges in common", value_text(t.merges_common_prefix)),
            ("added tokens equal", value_text(t.added_tokens_equal)),
            ("special tokens equal", value_text(t.special_tokens_equal)),
            ("same tokenizer / derived", f"{value_text(t.identical)} / {value_text(t.derived)}"),
        ]
        s.blocks.append(Table(("tokenizer", ""), tuple(rows), cls="facts"))
    other = [
        ("generation_config.json equal", m.generation_config_equal),
        ("chat template equal", m.chat_template_equal),
    ]
    shown = tuple((k, value_text(x)) for k, x in other if x is not None)
    if shown:
        s.blocks.append(Table(("", ""), shown, cls="facts"))
    if m.problems:
        s.blocks.append(Para("Files that could not be read:"))
        s.blocks.append(Items(tuple(m.problems)))
    return s


def behavior(s: Section, ctx: Context) -> Section | None:
    """Shared mistakes on a benchmark; None when no answers were given."""
    result = ctx.result
    b = result.behavior
    if b is None:
        return None
    s.blocks.append(Para(b.sentence))
    s.blocks.append(
        Table(
            ("model", "file", "items", "compared", "accuracy"),
            tuple(
                (m.name, m.path, f"{m.items:,}", f"{m.compared:,}", num(m.accuracy, ".1%")) for m in b.models
            ),
            numeric=frozenset({2, 3, 4}),
        )
    )
    rows = []
    for p in b.pairs:
        rows.append(
            (
                p.a,
                p.b,
                f"{p.n:,}",
                str(p.shared_errors),
                num(p.expected_shared_errors, ".1f"),
                "–" if p.shared_identical_wrong is None else str(p.shared_identical_wrong),
                f"{p.kappa:.3f} ({num(p.kappa_ci[0], '.2f')} – {num(p.kappa_ci[1], '.2f')})",
                num(p.log10_p, ".1f"),
                num(p.panel_z, ".1f"),
                value_text(p.flagged),
            )
        )
    s.blocks.append(
        Table(
            (
                "model",
                "model",
                "items",
                "shared errors",
                "expected",
                "same wrong answer",
                "κ (95% CI)",
                "log10 p",
                "panel z",
                "flagged",
            ),
            tuple(rows),
            numeric=frozenset(range(2, 9)),
        )
    )
    if b.notes:
        s.blocks.append(Items(tuple(b.notes)))
    return s

"""The lines of evidence a comparison weighs, one module each.

Each module holds one finding (a frozen dataclass with ``to_dict()``) and the one function that
computes it; :mod:`modelkin.compare` calls each and :mod:`modelkin.verdict` weighs them:

- :mod:`~modelkin.evidence.weights`: what one aligned tensor pair says (``PairEvidence``, ``assess``);
- :mod:`~modelkin.evidence.units`: hidden units (MLP units, attention heads) matched after a permutation;
- :mod:`~modelkin.evidence.tokens`: token-keyed embedding rows compared on the tokens both share;
- :mod:`~modelkin.evidence.spectra`: sorted row and column norms of matrices (fingerprints);
- :mod:`~modelkin.evidence.profiles`: per-layer statistics profiles;
- :mod:`~modelkin.evidence.metadata`: configs, tokenizers and chat templates;
- :mod:`~modelkin.evidence.behavior`: shared mistakes on a benchmark.

Nothing is imported here, so that importing one line does not import the others (nor scipy).
"""

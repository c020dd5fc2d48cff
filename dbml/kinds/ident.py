"""Identifier columns (a recommender's user and item): looked up like categories (a
VARCHAR input, ``ai.onnx.ml.LabelEncoder`` to a code, unknown and NULL get code 0) but
with the whole training vocabulary (no ``max_categories`` cap) and one tensor per column,
so a model can hold each id's learnt vector apart (a user tower and an item tower).

No column is an id by its type: a task names its id columns (the recommendation task,
from ``user`` and ``item``) and builds their features itself. The encoder is a table of
``factors + 1`` numbers per id: the id's vector and its bias.
"""

from __future__ import annotations

from dbml.kinds import MonitorBins
from dbml.kinds.category import CategoryKind
from dbml.sqltext import string as _string

__all__ = ["IdKind", "MONITOR_TOP"]

MONITOR_TOP = 100  # MONITOR bins an id column by its most frequent training values, the rest in one bin


class IdKind(CategoryKind):
    name = "id"
    group_order = 2  # after the numbers and categories

    def claim(self, column):
        return None  # only a task makes a column an id

    def group_key(self, feature) -> str:
        return "ids/" + feature.name

    def profile(self, con, table, features, options):
        from dbml.registry.records import MAX_VOCABULARY

        return super().profile(con, table, features, {**options, "max_categories": MAX_VOCABULARY})

    def monitor_bins(self, feature, profile, value):
        """The training shares of the :data:`MONITOR_TOP` most frequent ids, one bin each,
        and the rest in bin 0: for an item column, item-popularity drift."""
        vocab, freqs = profile.get("vocabulary"), profile.get("frequencies")
        if vocab is None or freqs is None or len(vocab) != len(freqs):
            return MonitorBins(f"({value} = '')", None, None, all_rows=True, keyed=True)
        top = [str(w) for w in vocab[:MONITOR_TOP]]
        shares = [float(f) for f in freqs[:MONITOR_TOP]]
        bins = [(0, max(0.0, 1.0 - sum(shares)), None, None, None)]
        bins += [(k + 1, s, None, None, w) for k, (w, s) in enumerate(zip(top, shares))]
        listed = "[" + ", ".join(_string(w) for w in top) + "]::VARCHAR[]"
        bin_sql = f"coalesce(list_position({listed}, {value}), 0)" if top else "0"
        return MonitorBins(f"({value} = '')", bin_sql, bins, all_rows=True, keyed=True)

    def width(self, features, profile) -> int:
        return 64 * len(features)

    def encoder(self, features, profile, options):
        from dbml.kinds.encoders import IdEncoder

        (feature,) = features
        return IdEncoder(len(profile[feature.name]["vocabulary"]) + 1, int(options.get("factors") or 32))

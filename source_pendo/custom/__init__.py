"""Custom aggregation streams: the user's own Pendo pipelines (spec option `custom_aggregations`), one stream each.

    retriever.py  manifest retriever: activity sources one period per request, others full refresh, keyset paging
    schema.py     manifest schema loader: the entry's declared schema, or one inferred from a sample
    sample.py     one small request of a stream: `check` runs it, discover samples it

The entries themselves are parsed and checked with the other settings (settings/custom_aggregations.py). Reads
activity windows through activity/ (its cursor, pager and record path); uses http/ and settings/.
"""

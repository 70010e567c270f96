"""Accounts and visitors (and the keyset paging track_types shares): what the declarative streams cannot say.

    keyset_pagination.py  manifest paginator: `id > "<last>"` over the aggregation API, a capped server detected
    metadata_columns.py   manifest transformation: metadata_<group>_<field> columns and `lastupdated`
    metadata_schema.py    manifest schema loader and extractor: the tenant's metadata schema, typed columns
    estimates.py          Pendo's count of accounts and visitors as the streams' size estimates
    anonymous.py          visitors read whole again when include_anonymous_visitors was turned on
    cursor_state.py       the epoch-ms cursor of the declarative incremental streams saved as an integer

Uses http/ (quick calls), settings/ and the facts.
"""

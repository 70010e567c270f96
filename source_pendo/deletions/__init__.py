"""Deletions in the catalogue: an object listed at the last sync and gone now becomes a deletion record.

    listed_ids.py  manifest extractor: notes every id a catalogue listing holds, before the cursor filters
    records.py     the listings of this sync (objects, and the child objects children/ notes), the saved ones,
                   and the deletion records and state they give; each stream's key and cursor

Uses the facts only (the clock).
"""

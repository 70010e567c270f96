"""Child objects of the catalogue: one record per guide step, poll, poll answer choice, page rule and feature rule.

    flatten.py    a parent object as Pendo lists it -> its children's records (BEHAVIOR.md §B-23)
    extractor.py  manifest extractor: each listed parent of the configured apps -> its children, each child's key
                  noted for deletions

The streams (guide_steps, polls, poll_choices, page_rules, feature_rules) send their parent's listing request
(`GET /guide|/page|/feature?expand=*`) and nothing else; manifest.yaml `child_stream` declares them, incremental
on the parent's `lastUpdatedAt`, with deletions as their parents' (deletions/). Uses deletions/ (the listing
notes) and the facts.
"""

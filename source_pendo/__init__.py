"""source-pendo: an Airbyte source for Pendo (a declarative manifest plus the Python it cannot say).

The data's path: the settings (config, catalog, state) -> requests to Pendo -> records and state on stdout.
Layers, each importing only from the ones below it (unit_tests/test_layers.py holds the code to this):

    shell      run.py (console entry point), entrypoint.py (the CDK's entrypoint, printing record batches as
               they are), source.py (SourcePendo: manifest.yaml built with the config, catalog and state),
               check.py (`check`); manifest.yaml and schemas/ are the map of every stream
    features   activity/   the activity streams and visitor history, read window by window
               children/   guide steps, polls, poll choices, page and feature rules: one record per child object
               custom/     custom aggregation streams (spec option `custom_aggregations`)
               deletions/  deletion records for catalogue objects (and their children) gone since the last sync
               entities/   accounts and visitors: keyset paging, metadata columns, estimates, anonymous visitors
    http       http/       what goes over the wire: transport rules, quick calls, error handlers, retries
    settings   settings/   the user's settings: spec, config, input files, filters, custom entries, masking
    facts      pendo.py    Pendo's facts (time units, ids, request envelope, literals); clock.py the one "now"

Features may use each other where one reads through another (custom/ reads windows through activity/; children/
notes its listings for deletions/); the manifest names the classes it builds by their feature's module
(`class_name: source_pendo.<feature>....`).
"""

"""The user's settings: what the spec offers, what a config may hold, and the files a run is given.

    spec.py                the spec, read from manifest.yaml without the CDK (`spec` answers in 0.1 s)
    config.py              config validation (one config_error naming the setting), defaults, regions, hosts
    dates.py               the one date format of the settings (start_date, end_date, a filter's time)
    filters.py             the `filters` option: conditions checked, the server clause, the row test
    custom_aggregations.py the `custom_aggregations` option: entries checked and normalised for the manifest
    inputs.py              the --config/--catalog/--state files: one config_error per bad file
    masking.py             every printable form of the secrets a config holds

Every option's parse and validation lives here; what a feature does with it lives in the feature (filters
are applied by activity/, custom entries read by custom/). Uses only the facts (pendo.py, clock.py).
"""

"""source-pendo: an Airbyte source for Pendo (declarative manifest plus small Python components)."""

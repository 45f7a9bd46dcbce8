"""Domain types, errors and clocks. Imports no grpc, protobuf or database code (import-linter enforces it)."""

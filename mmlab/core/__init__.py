"""The common currency of every layer: units, validated parameters, the error tree, statistics on tidy
rows, the project's folders and the results store."""

__version__ = "0.1.0"

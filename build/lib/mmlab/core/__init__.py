"""The common currency of every layer: units, validated parameters, the project's folders, the results store."""
